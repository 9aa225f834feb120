//! The events of recently rescored leads, kept between rescores so that a rescore reads
//! only the events stored since the last one ([`Store::events_since`]): a lead that keeps
//! browsing is rescored again and again, and reading (and parsing) its whole history each
//! time made the scorer's reads grow with it.
//!
//! What a rescore holds is always what [`Store::events`] would give (the store says when
//! an earlier read is stale: events moved in or out, or deleted). The cache is bounded
//! by the memory its events take ([`Event::footprint`]; or, for tests, by their number;
//! least recently used leads go first) and forgets a lead unused for [`IDLE`], so that an
//! erased person's events do not stay in memory for long.

use std::collections::HashMap;
use std::sync::Mutex;

use chrono::{DateTime, Duration, Utc};
use hotlead_core::Event;

use crate::ports::{EventsCursor, EventsRead, Store, StoreError, StoredLead};

/// Bytes of events kept at most, over all leads, by default ([`Event::footprint`]). A page
/// call of the tracking script counts about 1.3 KB (and takes about 1.7 KB of resident
/// memory, with the allocator's rounding), so this holds about 200,000 of them; an event a
/// sender makes large counts for what it takes.
pub const DEFAULT_BYTES: usize = 256 << 20;
/// A lead's events not used for this long are forgotten.
pub const IDLE: Duration = Duration::minutes(10);
/// A lead used this recently is in use: past the budget, it is not evicted to keep
/// another (see [`EventCache::put_back`]).
pub const IN_USE: Duration = Duration::seconds(30);

struct Entry {
    events: Vec<Event>,
    /// What `events` count against the budget.
    weight: usize,
    /// What the entry counts against it: `weight` and, counted in bytes, the entry
    /// itself (its lead's id, twice, and the room its list has for more events).
    charged: usize,
    cursor: EventsCursor,
    used: DateTime<Utc>,
    /// Order of use, for eviction (the clock may stand still).
    turn: u64,
}

#[derive(Default)]
struct Inner {
    entries: HashMap<String, Entry>,
    /// What `entries` count against the budget (their `charged`).
    held: usize,
    turn: u64,
    /// When every lead held was in use at the last eviction: the time the first of them
    /// stops being in use. Until then no lead can be evicted, and the leads are not
    /// looked through again (that would cost a pass over them for each lead put back).
    nothing_to_evict_before: Option<DateTime<Utc>>,
}

/// What a cache's budget counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Unit {
    /// Events, whatever their size (for tests).
    Events,
    /// Bytes: each event's [`Event::footprint`], and each lead's entry for itself.
    Bytes,
}

/// Leads' events between rescores; see the module.
pub struct EventCache {
    budget: usize,
    unit: Unit,
    inner: Mutex<Inner>,
}

impl std::fmt::Debug for EventCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventCache")
            .field("budget", &self.budget)
            .finish_non_exhaustive()
    }
}

/// A lead's events as read for one rescore, with what puts them back in the cache.
#[derive(Debug)]
pub struct Held {
    pub events: Vec<Event>,
    cursor: Option<EventsCursor>,
    weight: usize,
}

/// The order [`Store::events`] gives: oldest first, then by message id.
fn order(a: &Event, b: &Event) -> std::cmp::Ordering {
    a.timestamp
        .cmp(&b.timestamp)
        .then_with(|| a.message_id.cmp(&b.message_id))
}

impl EventCache {
    /// A cache of at most `budget` events (0: none kept), whatever their size.
    pub fn new(budget: usize) -> Self {
        EventCache {
            budget,
            unit: Unit::Events,
            inner: Mutex::new(Inner::default()),
        }
    }

    /// A cache of events taking at most `bytes` of memory, about ([`Event::footprint`]).
    pub fn of_bytes(bytes: usize) -> Self {
        EventCache {
            budget: bytes,
            unit: Unit::Bytes,
            inner: Mutex::new(Inner::default()),
        }
    }

    /// What `events` count against the budget.
    fn weight(&self, events: &[Event]) -> usize {
        match self.unit {
            Unit::Events => events.len(),
            Unit::Bytes => events.iter().map(Event::footprint).sum(),
        }
    }

    /// What a lead's entry holding `events` (of `weight`) counts against the budget.
    fn charge(&self, lead_id: &str, events: &Vec<Event>, weight: usize) -> usize {
        if self.unit == Unit::Events {
            return weight;
        }
        // The map's slot with the entry, the lead's id as the map's key and in the
        // cursor, and the list's room for more events.
        let entry = size_of::<(String, Entry)>() + 2 * (lead_id.len() + 16);
        let room = (events.capacity() - events.len()) * size_of::<Event>();
        weight + entry + room
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // The cache holds nothing that a panic elsewhere could leave half-written.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Lead `lead_id` and its events: the held ones with those stored since, or all of
    /// them; `None` when there is no such lead (what was held for it is forgotten). The
    /// entry is taken out while the caller works ([`EventCache::put_back`] returns it);
    /// a rescore of the same lead meanwhile reads everything.
    pub async fn read(
        &self,
        store: &dyn Store,
        lead_id: &str,
    ) -> Result<Option<(StoredLead, Held)>, StoreError> {
        let taken = {
            let mut inner = self.lock();
            let entry = inner.entries.remove(lead_id);
            if let Some(entry) = &entry {
                inner.held -= entry.charged;
            }
            entry
        };
        let (mut events, mut weight, since) = match taken {
            Some(entry) => (entry.events, entry.weight, Some(entry.cursor)),
            None => (Vec::new(), 0, None),
        };
        let Some((lead, read)) = store.lead_with_events(lead_id, since.as_ref()).await? else {
            return Ok(None);
        };
        let held = match read {
            EventsRead::All {
                events: all,
                cursor,
            } => Held {
                weight: self.weight(&all),
                events: all,
                cursor,
            },
            EventsRead::Added {
                events: added,
                cursor,
            } => {
                if !added.is_empty() {
                    weight += self.weight(&added);
                    let appended = events.len();
                    events.extend(added);
                    let in_order = events[appended.saturating_sub(1)..]
                        .is_sorted_by(|a, b| order(a, b).is_le());
                    if !in_order {
                        events.sort_by(order);
                    }
                }
                Held {
                    events,
                    cursor: Some(cursor),
                    weight,
                }
            }
        };
        Ok(Some((lead, held)))
    }

    /// Keeps `held` for the next rescore of its lead (when the store gave a cursor and
    /// it fits the budget), evicting the least recently used leads not in use past the
    /// budget, or, when all are in use, not keeping it.
    pub fn put_back(&self, held: Held, now: DateTime<Utc>) {
        let Some(cursor) = held.cursor else { return };
        let charged = self.charge(&cursor.lead_id, &held.events, held.weight);
        if self.budget == 0 || charged > self.budget {
            return;
        }
        let mut inner = self.lock();
        inner.turn += 1;
        let turn = inner.turn;
        inner.held += charged;
        let cursor_lead = cursor.lead_id.clone();
        let replaced = inner.entries.insert(
            cursor_lead.clone(),
            Entry {
                events: held.events,
                weight: held.weight,
                charged,
                cursor,
                used: now,
                turn,
            },
        );
        if let Some(replaced) = replaced {
            inner.held -= replaced.charged;
        }
        if inner.held <= self.budget {
            return;
        }
        // Every lead held was still in use at the last eviction (see below): none can go
        // before `nothing_to_evict_before`.
        if inner.nothing_to_evict_before.is_none_or(|time| now >= time) {
            // Down to three quarters, so that eviction is not paid on every put; only
            // leads not used for [`IN_USE`] go. When every lead held is in use (more
            // leads are busy than the budget holds, each rescored in turn), the lead put
            // back is not kept instead: evicting the least recently used lead would
            // evict the one rescored next, and so on round the cycle, so that every read
            // read everything; this way the leads held keep being read in part.
            let in_use = now - IN_USE;
            let mut by_use: Vec<(u64, String)> = inner
                .entries
                .iter()
                .filter(|(id, entry)| entry.used < in_use && **id != cursor_lead)
                .map(|(id, entry)| (entry.turn, id.clone()))
                .collect();
            by_use.sort_unstable();
            inner.nothing_to_evict_before = if by_use.is_empty() {
                (inner.entries.values().map(|entry| entry.used))
                    .min()
                    .map(|used| used + IN_USE)
            } else {
                None
            };
            let target = self.budget - self.budget / 4;
            for (_, id) in by_use {
                if inner.held <= target {
                    break;
                }
                if let Some(entry) = inner.entries.remove(&id) {
                    inner.held -= entry.charged;
                }
            }
        }
        if inner.held > self.budget
            && let Some(entry) = inner.entries.remove(&cursor_lead)
        {
            inner.held -= entry.charged;
        }
    }

    /// Forgets the leads not used since `now - IDLE`.
    pub fn prune(&self, now: DateTime<Utc>) {
        let idle_before = now - IDLE;
        let mut inner = self.lock();
        let mut freed = 0;
        inner.entries.retain(|_, entry| {
            let keep = entry.used >= idle_before;
            if !keep {
                freed += entry.charged;
            }
            keep
        });
        inner.held -= freed;
    }

    /// Leads held now, and what their events count against the budget.
    pub fn size(&self) -> (usize, usize) {
        let inner = self.lock();
        (inner.entries.len(), inner.held)
    }
}
