//! The locks the shared queries ask for, as PostgreSQL provides them.
//!
//! Transactions run at `READ COMMITTED`, so writers only wait for each other
//! on the rows they both touch. That is enough for the compare-and-set moves
//! and the event counter (both are single-row `UPDATE`s), but not for the
//! checks that count rows another transaction may be adding or removing at
//! the same time: those take a transaction-scoped advisory lock, released at
//! commit or rollback.

use super::Connection;
use crate::store::StoreError;

/// Appended to the `SELECT` of a claim: the head row is locked, and rows that
/// other claimers have locked are skipped rather than waited for, so racing
/// replicas each take a different job.
pub(super) const CLAIM: &str = " FOR UPDATE SKIP LOCKED";

/// Advisory lock keys: arbitrary, fixed, and used for nothing else.
const QUEUE_BOUND_KEY: i64 = 0x6461_726b_0001;
const DELETIONS_KEY: i64 = 0x6461_726b_0002;

/// Serializes submissions that check a queue bound (the whole queue's or an owner's), so
/// two racing ones cannot both see room for one more job.
pub(super) async fn queue_bound(connection: &mut Connection) -> Result<(), StoreError> {
    advisory(connection, QUEUE_BOUND_KEY).await
}

/// Serializes asset deletions and sweeps across replicas, so when two of
/// them remove the last assets of one blob, one of them sees it orphaned.
pub(super) async fn deletions(connection: &mut Connection) -> Result<(), StoreError> {
    advisory(connection, DELETIONS_KEY).await
}

async fn advisory(connection: &mut Connection, key: i64) -> Result<(), StoreError> {
    sqlx::query("SELECT pg_advisory_xact_lock($1)")
        .bind(key)
        .execute(&mut *connection)
        .await?;
    Ok(())
}
