//! The handler attempts running right now and since when: what [`Bus::health`](crate::Bus::health)
//! looks at to tell a stuck handler.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The running handler attempts.
#[derive(Debug, Default)]
pub(crate) struct InFlight {
    next: AtomicU64,
    /// By attempt id; foldhash, since two lookups per handled message hash here.
    running: Mutex<foldhash::HashMap<u64, (Instant, &'static str)>>,
}

/// One running attempt; it leaves [`InFlight`] when dropped (finished, timed out or cancelled).
pub(crate) struct Running<'a> {
    in_flight: &'a InFlight,
    id: u64,
    pub started: Instant,
}

impl InFlight {
    /// Notes that `handler` starts an attempt now.
    pub fn start(&self, handler: &'static str) -> Running<'_> {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let started = Instant::now();
        self.lock().insert(id, (started, handler));
        Running {
            in_flight: self,
            id,
            started,
        }
    }

    /// The longest-running attempt: its handler and how long it has run.
    pub fn longest(&self) -> Option<(&'static str, Duration)> {
        self.lock()
            .values()
            .min_by_key(|(started, _)| *started)
            .map(|(started, handler)| (*handler, started.elapsed()))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, foldhash::HashMap<u64, (Instant, &'static str)>> {
        self.running.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Drop for Running<'_> {
    fn drop(&mut self) {
        self.in_flight.lock().remove(&self.id);
    }
}
