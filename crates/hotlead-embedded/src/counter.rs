//! The [`RequestCounter`] port in the process's memory: `hotlead serve` is one process, so
//! its counts need no file. Counts of ended windows are dropped as new ones begin, and
//! the number of clients counted at once is bounded, so a sender rotating addresses
//! cannot grow the map without end.

use std::collections::HashMap;
use std::sync::Mutex;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use hotlead_app::StoreError;
use hotlead_app::ports::RequestCounter;

/// Clients counted in one window at most; past it, new clients are admitted uncounted
/// until the window ends (the socket's own limits still hold).
pub const MAX_CLIENTS_PER_WINDOW: usize = 100_000;

/// The counts of one window: its end, and each key's count.
#[derive(Debug, Default)]
struct Window {
    end: Option<DateTime<Utc>>,
    counts: HashMap<String, u32>,
}

/// Counts in memory, one window at a time.
#[derive(Debug, Default)]
pub struct MemoryRequestCounter {
    window: Mutex<Window>,
}

impl MemoryRequestCounter {
    pub fn new() -> Self {
        MemoryRequestCounter::default()
    }
}

#[async_trait]
impl RequestCounter for MemoryRequestCounter {
    async fn count(
        &self,
        key: &str,
        window_end: DateTime<Utc>,
        limit: u32,
    ) -> Result<bool, StoreError> {
        let mut guard = self
            .window
            .lock()
            .map_err(|_| StoreError::unavailable("the request counter was poisoned"))?;
        let Window {
            end: current,
            counts,
        } = &mut *guard;
        match *current {
            Some(end) if end == window_end => {}
            // A request of an ended window arriving late counts in no window.
            Some(end) if end > window_end => return Ok(true),
            _ => {
                *current = Some(window_end);
                counts.clear();
            }
        }
        if !counts.contains_key(key) && counts.len() >= MAX_CLIENTS_PER_WINDOW {
            return Ok(true);
        }
        let count = counts.entry(key.to_string()).or_insert(0);
        if *count >= limit {
            return Ok(false);
        }
        *count += 1;
        Ok(true)
    }
}
