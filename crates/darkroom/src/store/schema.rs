//! Where a database's schema stands against this build's migrations, checked before they
//! run: sqlx alone would refuse a database a newer Darkroom upgraded with "migration N was
//! previously applied but is missing", and would upgrade a large one without a word.

use sqlx::migrate::{Migrate, Migrator};

use super::StoreError;

/// The newest migration `migrations` holds: the schema version this build writes.
pub(super) fn latest(migrations: &Migrator) -> i64 {
    migrations.iter().map(|m| m.version).max().unwrap_or(0)
}

/// The newest migration the database records as applied; `None` for a new database. The
/// record's table is made when missing, as running `migrations` would make it, under the
/// same lock (PostgreSQL's advisory lock), so replicas starting together do not race.
///
/// # Errors
///
/// Database faults.
pub(super) async fn applied<C: Migrate>(
    connection: &mut C,
    migrations: &Migrator,
) -> Result<Option<i64>, StoreError> {
    connection.lock().await?;
    let table = &migrations.table_name;
    let listed = match connection.ensure_migrations_table(table).await {
        Ok(()) => connection.list_applied_migrations(table).await,
        Err(error) => Err(error),
    };
    connection.unlock().await?;
    Ok(listed?.iter().map(|migration| migration.version).max())
}

/// Refuses a schema newer than this build's, and says when an upgrade begins. `applied`
/// is the newest migration the database records, `None` for a new database.
///
/// # Errors
///
/// `SchemaNewer` when a newer Darkroom upgraded the database.
pub(super) fn before_migrating(
    engine: &'static str,
    applied: Option<i64>,
    expected: i64,
) -> Result<(), StoreError> {
    match applied {
        Some(applied) if applied > expected => Err(StoreError::SchemaNewer { applied, expected }),
        Some(applied) if applied < expected => {
            tracing::info!(
                store.engine = engine,
                schema.from = applied,
                schema.to = expected,
                "upgrading the database's schema; on a large database this takes a while, and \
                 the server starts once it is done"
            );
            Ok(())
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_newer_schema_is_refused_and_the_error_names_both_versions() {
        assert!(before_migrating("sqlite", None, 7).is_ok());
        assert!(before_migrating("sqlite", Some(3), 7).is_ok());
        assert!(before_migrating("sqlite", Some(7), 7).is_ok());
        let refused = before_migrating("postgres", Some(9), 7).unwrap_err();
        assert!(matches!(
            refused,
            StoreError::SchemaNewer {
                applied: 9,
                expected: 7
            }
        ));
        let message = refused.to_string();
        assert!(message.contains("version 9"), "{message}");
        assert!(message.contains("(7)"), "{message}");
    }
}
