//! The relay's loop, the same for both backends: claim a batch, publish it, mark it; back off
//! while publishing fails.

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::{RelayConfig, Result};

/// What one batch did.
pub(crate) enum Step {
    /// `published` rows went out, `failed` did not; `full` when the batch was full (more may be due).
    Batch {
        published: u64,
        failed: u64,
        full: bool,
    },
    /// The test hook ended the relay after publishing without marking.
    Crashed,
}

/// What a relay did since it started.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RelayTotals {
    /// Rows published and marked.
    pub published: u64,
    /// Failed publishes of rows (each retry counts).
    pub failed: u64,
    /// Batches claimed.
    pub batches: u64,
}

#[derive(Default)]
struct Counters {
    published: AtomicU64,
    failed: AtomicU64,
    batches: AtomicU64,
}

/// A running relay: [`RelayHandle::stop`] ends it after the batch in hand.
pub struct RelayHandle {
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
    counters: Arc<Counters>,
}

impl std::fmt::Debug for RelayHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RelayHandle")
            .field("totals", &self.totals())
            .finish_non_exhaustive()
    }
}

impl RelayHandle {
    /// What the relay did so far.
    pub fn totals(&self) -> RelayTotals {
        RelayTotals {
            published: self.counters.published.load(Ordering::Relaxed),
            failed: self.counters.failed.load(Ordering::Relaxed),
            batches: self.counters.batches.load(Ordering::Relaxed),
        }
    }

    /// Whether the relay's task ended (stopped, or ended by the test hook).
    pub fn is_finished(&self) -> bool {
        self.task.is_finished()
    }

    /// Stops the relay once the batch in hand is marked, and waits for it; returns its totals.
    pub async fn stop(self) -> RelayTotals {
        let _ = self.stop.send(true);
        if let Err(error) = self.task.await {
            tracing::error!(%error, "the outbox relay's task failed");
        }
        RelayHandle::totals_of(&self.counters)
    }

    fn totals_of(counters: &Counters) -> RelayTotals {
        RelayTotals {
            published: counters.published.load(Ordering::Relaxed),
            failed: counters.failed.load(Ordering::Relaxed),
            batches: counters.batches.load(Ordering::Relaxed),
        }
    }
}

/// Spawns the loop around `step` (one batch per call).
pub(crate) fn spawn<F, Fut>(config: RelayConfig, mut step: F) -> RelayHandle
where
    F: FnMut() -> Fut + Send + 'static,
    Fut: Future<Output = Result<Step>> + Send,
{
    let (stop, mut stopped) = watch::channel(false);
    let counters = Arc::new(Counters::default());
    let totals = counters.clone();
    let task = tokio::spawn(async move {
        let mut failures = 0u32;
        while !*stopped.borrow() {
            let wait = match step().await {
                Ok(Step::Crashed) => return,
                Ok(Step::Batch {
                    published,
                    failed,
                    full,
                }) => {
                    totals.published.fetch_add(published, Ordering::Relaxed);
                    totals.failed.fetch_add(failed, Ordering::Relaxed);
                    if published + failed > 0 {
                        totals.batches.fetch_add(1, Ordering::Relaxed);
                    }
                    if failed > 0 {
                        failures += 1;
                        config.backoff(failures)
                    } else {
                        failures = 0;
                        if full {
                            Duration::ZERO
                        } else {
                            config.poll_interval
                        }
                    }
                }
                Err(error) => {
                    failures += 1;
                    let wait = config.backoff(failures);
                    tracing::warn!(%error, ?wait, "the outbox relay could not move a batch; trying again");
                    wait
                }
            };
            if wait.is_zero() {
                continue;
            }
            tokio::select! {
                _ = stopped.changed() => {}
                _ = tokio::time::sleep(wait) => {}
            }
        }
    });
    RelayHandle {
        stop,
        task,
        counters,
    }
}
