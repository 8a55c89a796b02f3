//! Reads shared by the requests waiting for them: one query answers every caller that
//! arrived before it started.
//!
//! Each request without a key asks whether any live key exists, and `darkroom keys` may
//! create or revoke one from another process at any moment, so the answer cannot be kept
//! in memory. Rather than one query per request, callers queue for rounds: a round runs
//! one query, and a caller takes the result of the first round that started after it
//! arrived, so it still sees every commit made before its request (the same guarantee as
//! a query of its own), while a burst of requests costs a few queries instead of one each.

use std::sync::{Mutex, PoisonError};

/// Numbers of the rounds started and finished, and the last finished one's result.
#[derive(Debug, Default)]
struct Progress {
    started: u64,
    finished: u64,
    result: u64,
}

/// Shares a read among the callers waiting for it.
#[derive(Debug, Default)]
pub(super) struct Rounds {
    /// Held by the caller running a round: rounds run one at a time, in turn.
    turn: tokio::sync::Mutex<()>,
    progress: Mutex<Progress>,
}

impl Rounds {
    /// The result of `read`, run by this caller or by a round that started after it called.
    ///
    /// # Errors
    ///
    /// What `read` failed with, in a round this caller ran.
    pub(super) async fn read<E, F>(&self, read: impl FnOnce() -> F) -> Result<u64, E>
    where
        F: Future<Output = Result<u64, E>>,
    {
        let arrived = self.progress().started;
        let _turn = self.turn.lock().await;
        {
            let progress = self.progress();
            if progress.finished > arrived {
                return Ok(progress.result);
            }
        }

        let round = {
            let mut progress = self.progress();
            progress.started += 1;
            progress.started
        };
        let result = read().await?;
        let mut progress = self.progress();
        progress.finished = round;
        progress.result = result;
        Ok(result)
    }

    fn progress(&self) -> std::sync::MutexGuard<'_, Progress> {
        self.progress.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU64, Ordering};

    use super::*;

    #[tokio::test]
    async fn a_caller_never_takes_a_result_read_before_it_arrived() {
        let rounds = Rounds::default();
        let value = AtomicU64::new(1);
        let reads = AtomicU64::new(0);
        let read = || async {
            reads.fetch_add(1, Ordering::SeqCst);
            Ok::<_, ()>(value.load(Ordering::SeqCst))
        };
        assert_eq!(rounds.read(read).await, Ok(1));
        // A change committed after that round: the next caller must see it.
        value.store(2, Ordering::SeqCst);
        assert_eq!(rounds.read(read).await, Ok(2));
        assert_eq!(reads.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn callers_waiting_together_share_one_round() {
        let rounds = Arc::new(Rounds::default());
        let reads = Arc::new(AtomicU64::new(0));
        // The first caller holds its round open until the others are queued behind it.
        let (release, released) = tokio::sync::oneshot::channel::<()>();
        let first = {
            let (rounds, reads) = (Arc::clone(&rounds), Arc::clone(&reads));
            tokio::spawn(async move {
                rounds
                    .read(|| async move {
                        reads.fetch_add(1, Ordering::SeqCst);
                        let _ = released.await;
                        Ok::<_, ()>(7)
                    })
                    .await
            })
        };
        while rounds.progress().started == 0 {
            tokio::task::yield_now().await;
        }
        let waiting: Vec<_> = (0..5)
            .map(|_| {
                let (rounds, reads) = (Arc::clone(&rounds), Arc::clone(&reads));
                tokio::spawn(async move {
                    rounds
                        .read(|| async move {
                            reads.fetch_add(1, Ordering::SeqCst);
                            Ok::<_, ()>(8)
                        })
                        .await
                })
            })
            .collect();
        for _ in 0..10 {
            tokio::task::yield_now().await;
        }
        release.send(()).unwrap();

        assert_eq!(first.await.unwrap(), Ok(7));
        for waiter in waiting {
            assert_eq!(waiter.await.unwrap(), Ok(8));
        }
        // The round already running when they came was not theirs; one more served all.
        assert_eq!(reads.load(Ordering::SeqCst), 2);
    }
}
