//! Listing jobs: filters by state, owner and template, newest first, with
//! offset or keyset (cursor) paging and the total count.

use sqlx::QueryBuilder;

use super::{Connection, Db};

use crate::jobs::model::Job;
use crate::store::rows::{JOB_COLUMNS, JobRow, to_micros};
use crate::store::{JobCursor, JobPage, JobQuery, StoreError};

pub(super) async fn list(
    connection: &mut Connection,
    query: &JobQuery,
) -> Result<JobPage, StoreError> {
    let mut count = QueryBuilder::<Db>::new("SELECT COUNT(*) FROM jobs");
    push_filters(&mut count, query);
    let total: i64 = count
        .build_query_scalar()
        .fetch_one(&mut *connection)
        .await?;

    let mut page = QueryBuilder::<Db>::new(format!("SELECT {JOB_COLUMNS} FROM jobs"));
    push_filters(&mut page, query);
    if let Some(cursor) = query.after {
        let created_at = to_micros(cursor.created_at);
        page.push(" AND (created_at < ").push_bind(created_at);
        page.push(" OR (created_at = ").push_bind(created_at);
        page.push(" AND id < ")
            .push_bind(cursor.id.to_string())
            .push("))");
    }
    // One row past the limit says whether another page follows.
    page.push(" ORDER BY created_at DESC, id DESC LIMIT ")
        .push_bind(i64::from(query.limit) + 1);
    page.push(" OFFSET ")
        .push_bind(i64::try_from(query.offset).unwrap_or(i64::MAX));
    let rows: Vec<JobRow> = page.build_query_as().fetch_all(&mut *connection).await?;

    let mut jobs = rows
        .into_iter()
        .map(Job::try_from)
        .collect::<Result<Vec<_>, _>>()?;
    let more = jobs.len() > query.limit as usize;
    jobs.truncate(query.limit as usize);
    let next = if more {
        jobs.last().map(JobCursor::of)
    } else {
        None
    };
    Ok(JobPage {
        jobs,
        total: u64::try_from(total).unwrap_or_default(),
        next,
    })
}

fn push_filters(builder: &mut QueryBuilder<Db>, query: &JobQuery) {
    builder.push(" WHERE 1 = 1");
    if !query.states.is_empty() {
        builder.push(" AND state IN (");
        let mut states = builder.separated(", ");
        for state in &query.states {
            states.push_bind(state.as_str());
        }
        builder.push(")");
    }
    if let Some(owner) = &query.owner {
        builder.push(" AND owner = ").push_bind(owner.clone());
    }
    if let Some(template) = &query.template {
        builder.push(" AND template = ").push_bind(template.clone());
    }
}
