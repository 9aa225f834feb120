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

/// Clients counted apart in one window at most; past it, new clients of the window share
/// one count (`overflow`), so a sender rotating through more addresses than this is
/// still limited, by the limit of one client.
pub const MAX_CLIENTS_PER_WINDOW: usize = 100_000;

/// The key the clients past [`MAX_CLIENTS_PER_WINDOW`] share.
const OVERFLOW: &str = "overflow";

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
        weight: u32,
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
        let key = if !counts.contains_key(key) && counts.len() >= MAX_CLIENTS_PER_WINDOW {
            OVERFLOW
        } else {
            key
        };
        let count = counts.entry(key.to_string()).or_insert(0);
        if count.saturating_add(weight) > limit {
            return Ok(false);
        }
        *count += weight;
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn window(minute: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_790_000_040 + minute * 60, 0).unwrap()
    }

    /// Past the clients it counts apart, new clients share one count: rotating addresses
    /// does not escape the limit.
    #[tokio::test]
    async fn clients_past_the_map_share_one_count() {
        let counter = MemoryRequestCounter::new();
        for i in 0..MAX_CLIENTS_PER_WINDOW {
            assert!(
                counter
                    .count(&format!("k{i}"), window(0), 3, 1)
                    .await
                    .unwrap()
            );
        }
        let admitted = {
            let mut n = 0;
            for i in 0..10 {
                n += usize::from(
                    counter
                        .count(&format!("new{i}"), window(0), 3, 1)
                        .await
                        .unwrap(),
                );
            }
            n
        };
        assert_eq!(admitted, 3);
        // The next window starts afresh.
        assert!(counter.count("new0", window(1), 3, 1).await.unwrap());
    }

    /// A batch counts its calls; one that would pass the limit is refused whole.
    #[tokio::test]
    async fn a_weight_counts_whole() {
        let counter = MemoryRequestCounter::new();
        assert!(counter.count("k", window(0), 10, 8).await.unwrap());
        assert!(!counter.count("k", window(0), 10, 3).await.unwrap());
        assert!(counter.count("k", window(0), 10, 2).await.unwrap());
        assert!(!counter.count("k", window(0), 10, 1).await.unwrap());
    }
}
