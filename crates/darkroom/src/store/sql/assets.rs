//! Asset records and the expiry sweep that retires jobs, their outputs and
//! lapsed uploads, reporting which blobs lost their last reference.

use std::collections::BTreeSet;

use super::Connection;
use time::OffsetDateTime;

use super::events::size;
use super::{jobs, locks};
use crate::artifacts::BlobHash;
use crate::jobs::model::{Asset, AssetId, JobId, JobState};
use crate::store::rows::{ASSET_COLUMNS, AssetRow, parse, to_micros};
use crate::store::{AssetRemoval, StoreError, Sweep, Transition};

pub(super) async fn insert(connection: &mut Connection, asset: &Asset) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO assets (id, hash, size_bytes, content_type, file_path, owner, job_id, \
         created_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
    )
    .bind(asset.id.to_string())
    .bind(asset.hash.as_str())
    .bind(size(asset.size_bytes))
    .bind(asset.content_type.as_str())
    .bind(asset.file_path.as_deref())
    .bind(asset.owner.as_deref())
    .bind(asset.job_id.map(|id| id.to_string()))
    .bind(to_micros(asset.created_at))
    .bind(asset.expires_at.map(to_micros))
    .execute(&mut *connection)
    .await?;
    Ok(())
}

pub(super) async fn find(
    connection: &mut Connection,
    id: AssetId,
) -> Result<Option<Asset>, StoreError> {
    let sql = format!("SELECT {ASSET_COLUMNS} FROM assets WHERE id = $1");
    let row: Option<AssetRow> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(id.to_string())
        .fetch_optional(&mut *connection)
        .await?;
    row.map(Asset::try_from).transpose()
}

pub(super) async fn with_hash(
    connection: &mut Connection,
    hash: &BlobHash,
) -> Result<Vec<Asset>, StoreError> {
    let sql = format!("SELECT {ASSET_COLUMNS} FROM assets WHERE hash = $1 ORDER BY created_at, id");
    let rows: Vec<AssetRow> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(hash.as_str())
        .fetch_all(&mut *connection)
        .await?;
    rows.into_iter().map(Asset::try_from).collect()
}

pub(super) async fn delete(
    connection: &mut Connection,
    id: AssetId,
) -> Result<AssetRemoval, StoreError> {
    locks::deletions(connection).await?;
    let asset = find(connection, id)
        .await?
        .ok_or(StoreError::AssetNotFound(id))?;
    let user: Option<String> =
        sqlx::query_scalar("SELECT job_id FROM job_outputs WHERE asset_id = $1")
            .bind(id.to_string())
            .fetch_optional(&mut *connection)
            .await?;
    if let Some(job_id) = user {
        let job_id = parse("job id", &job_id)?;
        return Err(StoreError::AssetInUse {
            asset_id: id,
            job_id,
        });
    }

    remove_rows(connection, &[id]).await?;
    let orphaned_blob = orphaned(connection, [asset.hash.clone()]).await?.pop();
    Ok(AssetRemoval {
        asset,
        orphaned_blob,
    })
}

/// Retires due jobs one by one through the state machine (so each gets its
/// `expired` event), then drops their outputs and assets, lapsed uploads no
/// job output points at, and lapsed idempotency keys.
pub(super) async fn sweep_expired(
    connection: &mut Connection,
    now: OffsetDateTime,
    limit: u32,
) -> Result<Sweep, StoreError> {
    locks::deletions(connection).await?;
    let mut sweep = Sweep::default();
    let mut doomed = Vec::new();
    for (job_id, state) in due_jobs(connection, now, limit).await? {
        let expire = Transition::new(job_id, state, JobState::Expired, now);
        jobs::transition(connection, &expire, None).await?;
        sqlx::query("DELETE FROM job_outputs WHERE job_id = $1")
            .bind(job_id.to_string())
            .execute(&mut *connection)
            .await?;
        doomed.extend(assets_of_job(connection, job_id).await?);
        sweep.expired_jobs.push(job_id);
    }
    doomed.extend(lapsed_uploads(connection, now).await?);

    sqlx::query("DELETE FROM idempotency_keys WHERE expires_at <= $1")
        .bind(to_micros(now))
        .execute(&mut *connection)
        .await?;

    let (ids, hashes): (Vec<AssetId>, BTreeSet<BlobHash>) = doomed.into_iter().unzip();
    remove_rows(connection, &ids).await?;
    sweep.deleted_assets = ids;
    sweep.orphaned_blobs = orphaned(connection, hashes).await?;
    Ok(sweep)
}

/// Final jobs past their deadline, the longest overdue first.
async fn due_jobs(
    connection: &mut Connection,
    now: OffsetDateTime,
    limit: u32,
) -> Result<Vec<(JobId, JobState)>, StoreError> {
    let rows: Vec<(String, String)> = sqlx::query_as(
        "SELECT id, state FROM jobs WHERE state IN ($1, $2, $3) AND expires_at <= $4 \
         ORDER BY expires_at, id LIMIT $5",
    )
    .bind(JobState::Succeeded.as_str())
    .bind(JobState::Failed.as_str())
    .bind(JobState::Canceled.as_str())
    .bind(to_micros(now))
    .bind(i64::from(limit))
    .fetch_all(&mut *connection)
    .await?;
    rows.iter()
        .map(|(id, state)| Ok((parse("job id", id)?, parse("job state", state)?)))
        .collect()
}

async fn assets_of_job(
    connection: &mut Connection,
    job_id: JobId,
) -> Result<Vec<(AssetId, BlobHash)>, StoreError> {
    let rows = sqlx::query_as("SELECT id, hash FROM assets WHERE job_id = $1")
        .bind(job_id.to_string())
        .fetch_all(&mut *connection)
        .await?;
    asset_refs(&rows)
}

async fn lapsed_uploads(
    connection: &mut Connection,
    now: OffsetDateTime,
) -> Result<Vec<(AssetId, BlobHash)>, StoreError> {
    let rows = sqlx::query_as(
        "SELECT id, hash FROM assets WHERE job_id IS NULL AND expires_at <= $1 \
         AND NOT EXISTS (SELECT 1 FROM job_outputs WHERE job_outputs.asset_id = assets.id)",
    )
    .bind(to_micros(now))
    .fetch_all(&mut *connection)
    .await?;
    asset_refs(&rows)
}

fn asset_refs(rows: &[(String, String)]) -> Result<Vec<(AssetId, BlobHash)>, StoreError> {
    rows.iter()
        .map(|(id, hash)| Ok((parse("asset id", id)?, parse("blob hash", hash)?)))
        .collect()
}

async fn remove_rows(connection: &mut Connection, ids: &[AssetId]) -> Result<(), StoreError> {
    for id in ids {
        sqlx::query("DELETE FROM assets WHERE id = $1")
            .bind(id.to_string())
            .execute(&mut *connection)
            .await?;
    }
    Ok(())
}

/// The hashes among `hashes` that no asset row refers to any more.
async fn orphaned(
    connection: &mut Connection,
    hashes: impl IntoIterator<Item = BlobHash>,
) -> Result<Vec<BlobHash>, StoreError> {
    let mut orphans = Vec::new();
    for hash in hashes {
        let users: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM assets WHERE hash = $1")
            .bind(hash.as_str())
            .fetch_one(&mut *connection)
            .await?;
        if users == 0 {
            orphans.push(hash);
        }
    }
    Ok(orphans)
}
