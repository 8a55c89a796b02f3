//! The locks the shared queries ask for, as SQLite provides them: none.
//!
//! Every write transaction starts with `BEGIN IMMEDIATE`, which takes the
//! database's one write lock up front, so each is already serialized with
//! every other writer, in this process or another.

use super::Connection;
use crate::store::StoreError;

/// Appended to the `SELECT` of a claim; the write lock already excludes
/// racing claimers.
pub(super) const CLAIM: &str = "";

/// Held while the queue bound is checked and a job inserted.
pub(super) async fn queue_bound(_connection: &mut Connection) -> Result<(), StoreError> {
    Ok(())
}

/// Held while assets are deleted and orphaned blobs counted.
pub(super) async fn deletions(_connection: &mut Connection) -> Result<(), StoreError> {
    Ok(())
}
