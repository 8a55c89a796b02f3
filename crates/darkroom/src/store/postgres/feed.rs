//! The events every replica commits, as PostgreSQL announces them: a trigger on the
//! events table notifies `darkroom_events.<schema>` with the job id and sequence number,
//! delivered only once the transaction commits, and this feed listens there.
//!
//! Notifications sent while the listening connection was down are gone; the feed says so
//! (`Gap`) once it is back, and readers catch up from the table.

use async_trait::async_trait;
use sqlx::PgPool;
use sqlx::postgres::PgListener;

use crate::store::{EventFeed, FeedNotice, StoreError};

#[derive(Debug)]
pub(super) struct PgEventFeed {
    listener: PgListener,
}

impl PgEventFeed {
    pub(super) async fn listen(pool: &PgPool) -> Result<Self, StoreError> {
        let schema: String = sqlx::query_scalar("SELECT current_schema()")
            .fetch_one(pool)
            .await?;
        let mut listener = PgListener::connect_with(pool).await?;
        listener
            .listen(&format!("darkroom_events.{schema}"))
            .await?;
        Ok(Self { listener })
    }
}

#[async_trait]
impl EventFeed for PgEventFeed {
    async fn next(&mut self) -> Result<FeedNotice, StoreError> {
        loop {
            let Some(notification) = self.listener.try_recv().await? else {
                return Ok(FeedNotice::Gap);
            };
            let payload = notification.payload();
            let parsed = payload
                .split_once(' ')
                .and_then(|(job_id, seq)| Some((job_id.parse().ok()?, seq.parse().ok()?)));
            match parsed {
                Some((job_id, seq)) => return Ok(FeedNotice::Committed { job_id, seq }),
                None => tracing::warn!(payload, "malformed event notification ignored"),
            }
        }
    }
}
