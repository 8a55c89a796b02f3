//! API key rows: created, listed, found by hash or id, revoked.

use super::Connection;
use time::OffsetDateTime;

use crate::auth::ApiKey;
use crate::store::StoreError;
use crate::store::rows::{KEY_COLUMNS, KeyRow, to_micros};

pub(super) async fn insert(connection: &mut Connection, key: &ApiKey) -> Result<(), StoreError> {
    let limit = |value: Option<u32>| value.map(i64::from);
    let inserted = sqlx::query(
        "INSERT INTO api_keys (id, name, role, hash, shown, requests_per_minute, burst, \
         max_queued, max_streams, created_at, revoked_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, NULL)",
    )
    .bind(&key.id)
    .bind(&key.name)
    .bind(key.role.as_str())
    .bind(&key.hash)
    .bind(&key.shown)
    .bind(limit(key.limits.requests_per_minute))
    .bind(limit(key.limits.burst))
    .bind(limit(key.limits.max_queued))
    .bind(limit(key.limits.max_streams))
    .bind(to_micros(key.created_at))
    .execute(&mut *connection)
    .await;
    match inserted {
        Ok(_) => Ok(()),
        // The id and hash are random; a clash is the live name.
        Err(error) if StoreError::is_unique_violation(&error) => Err(StoreError::KeyNameTaken {
            name: key.name.clone(),
        }),
        Err(error) => Err(error.into()),
    }
}

pub(super) async fn all(connection: &mut Connection) -> Result<Vec<ApiKey>, StoreError> {
    let sql = format!("SELECT {KEY_COLUMNS} FROM api_keys ORDER BY created_at, id");
    let rows: Vec<KeyRow> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .fetch_all(&mut *connection)
        .await?;
    rows.into_iter().map(ApiKey::try_from).collect()
}

/// Every live key.
pub(super) async fn live(connection: &mut Connection) -> Result<Vec<ApiKey>, StoreError> {
    let sql = format!("SELECT {KEY_COLUMNS} FROM api_keys WHERE revoked_at IS NULL ORDER BY id");
    let rows: Vec<KeyRow> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .fetch_all(&mut *connection)
        .await?;
    rows.into_iter().map(ApiKey::try_from).collect()
}

/// The live key whose `column` (`hash` or `id`) is `value`.
pub(super) async fn live_by(
    connection: &mut Connection,
    column: KeyColumn,
    value: &str,
) -> Result<Option<ApiKey>, StoreError> {
    let column = match column {
        KeyColumn::Hash => "hash",
        KeyColumn::Id => "id",
    };
    let sql =
        format!("SELECT {KEY_COLUMNS} FROM api_keys WHERE {column} = $1 AND revoked_at IS NULL");
    let row: Option<KeyRow> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(value)
        .fetch_optional(&mut *connection)
        .await?;
    row.map(ApiKey::try_from).transpose()
}

#[derive(Debug, Clone, Copy)]
pub(super) enum KeyColumn {
    Hash,
    Id,
}

pub(super) async fn count_live(connection: &mut Connection) -> Result<u64, StoreError> {
    let live: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM api_keys WHERE revoked_at IS NULL")
        .fetch_one(&mut *connection)
        .await?;
    Ok(u64::try_from(live).unwrap_or_default())
}

pub(super) async fn revoke(
    connection: &mut Connection,
    key: &str,
    at: OffsetDateTime,
) -> Result<ApiKey, StoreError> {
    let id: Option<String> = sqlx::query_scalar(
        "UPDATE api_keys SET revoked_at = $1 \
         WHERE (id = $2 OR name = $2) AND revoked_at IS NULL RETURNING id",
    )
    .bind(to_micros(at))
    .bind(key)
    .fetch_optional(&mut *connection)
    .await?;
    let not_found = || StoreError::KeyNotFound {
        key: key.to_owned(),
    };
    let id = id.ok_or_else(not_found)?;
    let sql = format!("SELECT {KEY_COLUMNS} FROM api_keys WHERE id = $1");
    let row: KeyRow = sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(id)
        .fetch_one(&mut *connection)
        .await?;
    ApiKey::try_from(row)
}
