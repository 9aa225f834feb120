//! Fault-injecting adapters, for tests (the `faults` feature): wrappers around any
//! [`Store`] and [`Notifier`] that fail on a schedule a test sets, so the same fault runs
//! against every store. Nothing in the product uses them.

use std::collections::HashSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use hotlead_core::alert::AlertMessage;
use hotlead_core::{Band, Event};

use crate::ports::{
    ActionOutcome, ActionRecord, Dirty, EraseSubject, Erased, EventsCursor, EventsRead,
    FailedAlert, HistoryEntry, Pending, RankingPage, Record, Recorded, Retention, SaveOutcome,
    ScoreUpdate, SetAside, Store, StoreError, StoredLead, Swept,
};
use crate::{Notifier, NotifyError};

/// What a [`FaultyStore`] does wrong.
#[derive(Debug, Default)]
pub struct StoreFaults {
    /// Reading these leads (or their events) fails as corrupt data, every time.
    pub corrupt_leads: Mutex<HashSet<String>>,
    /// Reading these leads fails as an outage (throttling, say), every time.
    pub unreachable_leads: Mutex<HashSet<String>>,
    /// Reading these leads panics, every time (a defect met on a lead's data).
    pub panicking_leads: Mutex<HashSet<String>>,
    /// When set, reading a lead waits for a permit of this semaphore first.
    pub read_gate: Mutex<Option<Arc<tokio::sync::Semaphore>>>,
    /// Reads waiting at the gate now (a read given up while waiting counts out).
    pub reads_waiting: AtomicUsize,
    /// The next this many `record` calls fail as unavailable, storing nothing.
    pub record_outages: AtomicUsize,
    /// The next this many `record` calls store the call, then fail as unavailable
    /// (the answer was lost on the way back).
    pub record_lost_answers: AtomicUsize,
    /// The next this many reads of the rescoring marks fail as unavailable.
    pub dirty_outages: AtomicUsize,
    /// After this many more stored calls, the next `record` fails as unavailable
    /// (once).
    pub record_outage_after: Mutex<Option<usize>>,
}

fn take(counter: &AtomicUsize) -> bool {
    counter
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
        .is_ok()
}

/// Wraps a store and injects [`StoreFaults`].
pub struct FaultyStore {
    pub inner: Arc<dyn Store>,
    pub faults: Arc<StoreFaults>,
}

impl std::fmt::Debug for FaultyStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FaultyStore")
            .field("faults", &self.faults)
            .finish_non_exhaustive()
    }
}

impl FaultyStore {
    pub fn new(inner: Arc<dyn Store>) -> Self {
        FaultyStore {
            inner,
            faults: Arc::new(StoreFaults::default()),
        }
    }

    /// The fault injected into reading lead `id`, if any.
    fn read_fault(&self, id: &str) -> Option<StoreError> {
        let has = |set: &Mutex<HashSet<String>>| set.lock().expect("faults lock").contains(id);
        if has(&self.faults.unreachable_leads) {
            Some(StoreError::unavailable(format!("injected: reading {id}")))
        } else if has(&self.faults.corrupt_leads) {
            Some(StoreError::corrupt(format!("injected: lead {id}")))
        } else {
            None
        }
    }

    pub fn corrupt(&self, lead_id: &str) {
        self.faults
            .corrupt_leads
            .lock()
            .expect("faults lock")
            .insert(lead_id.to_string());
    }
}

#[async_trait]
impl Store for FaultyStore {
    async fn record(&self, record: Record) -> Result<Recorded, StoreError> {
        if take(&self.faults.record_outages) {
            return Err(StoreError::unavailable("injected outage"));
        }
        {
            let mut after = self.faults.record_outage_after.lock().expect("faults lock");
            match *after {
                Some(0) => {
                    *after = None;
                    return Err(StoreError::unavailable("injected outage"));
                }
                Some(n) => *after = Some(n - 1),
                None => {}
            }
        }
        let recorded = self.inner.record(record).await?;
        if take(&self.faults.record_lost_answers) {
            return Err(StoreError::unavailable("injected lost answer"));
        }
        Ok(recorded)
    }
    async fn lead(&self, id: &str) -> Result<Option<StoredLead>, StoreError> {
        let gate = self.faults.read_gate.lock().expect("faults lock").clone();
        if let Some(gate) = gate {
            struct Waiting<'a>(&'a AtomicUsize);
            impl Drop for Waiting<'_> {
                fn drop(&mut self) {
                    self.0.fetch_sub(1, Ordering::SeqCst);
                }
            }
            self.faults.reads_waiting.fetch_add(1, Ordering::SeqCst);
            let waiting = Waiting(&self.faults.reads_waiting);
            let _permit = gate.acquire().await;
            drop(waiting);
        }
        if self
            .faults
            .panicking_leads
            .lock()
            .expect("faults lock")
            .contains(id)
        {
            panic!("injected: a defect met reading a lead");
        }
        if let Some(fault) = self.read_fault(id) {
            return Err(fault);
        }
        self.inner.lead(id).await
    }
    async fn events(&self, lead_id: &str) -> Result<Vec<Event>, StoreError> {
        // A merged lead's id stands for the lead it merged into.
        let current = self.inner.lead(lead_id).await?.map(|l| l.id);
        if let Some(fault) = current.as_deref().and_then(|id| self.read_fault(id)) {
            return Err(fault);
        }
        self.inner.events(lead_id).await
    }
    async fn events_since(
        &self,
        lead_id: &str,
        since: Option<&EventsCursor>,
    ) -> Result<EventsRead, StoreError> {
        let current = self.inner.lead(lead_id).await?.map(|l| l.id);
        if let Some(fault) = current.as_deref().and_then(|id| self.read_fault(id)) {
            return Err(fault);
        }
        self.inner.events_since(lead_id, since).await
    }
    async fn ranking(
        &self,
        band: Option<Band>,
        limit: usize,
        cursor: Option<&str>,
    ) -> Result<RankingPage, StoreError> {
        self.inner.ranking(band, limit, cursor).await
    }
    async fn dirty(&self, now: DateTime<Utc>, limit: usize) -> Result<Vec<Dirty>, StoreError> {
        if take(&self.faults.dirty_outages) {
            return Err(StoreError::unavailable("injected outage"));
        }
        self.inner.dirty(now, limit).await
    }
    async fn set_aside(&self, aside: &SetAside) -> Result<(), StoreError> {
        self.inner.set_aside(aside).await
    }
    async fn set_aside_leads(&self, limit: usize) -> Result<Vec<SetAside>, StoreError> {
        self.inner.set_aside_leads(limit).await
    }
    async fn scored_before(
        &self,
        before: DateTime<Utc>,
        limit: usize,
    ) -> Result<Vec<Dirty>, StoreError> {
        self.inner.scored_before(before, limit).await
    }
    async fn save_score(&self, update: ScoreUpdate) -> Result<SaveOutcome, StoreError> {
        self.inner.save_score(update).await
    }
    async fn history(&self, lead_id: &str) -> Result<Vec<HistoryEntry>, StoreError> {
        self.inner.history(lead_id).await
    }
    async fn record_action(&self, action: &ActionRecord) -> Result<ActionOutcome, StoreError> {
        self.inner.record_action(action).await
    }
    async fn add_notice(&self, notice: &crate::ports::OutboxEntry) -> Result<bool, StoreError> {
        self.inner.add_notice(notice).await
    }
    async fn overdue_follow_ups(
        &self,
        now: DateTime<Utc>,
        limit: usize,
    ) -> Result<Vec<crate::ports::FollowUpRecord>, StoreError> {
        self.inner.overdue_follow_ups(now, limit).await
    }
    async fn end_follow_up(
        &self,
        lead_id: &str,
        crossing: u32,
        at: DateTime<Utc>,
        alert: Option<crate::ports::OutboxEntry>,
    ) -> Result<bool, StoreError> {
        self.inner.end_follow_up(lead_id, crossing, at, alert).await
    }
    async fn follow_ups(
        &self,
        since: DateTime<Utc>,
        until: DateTime<Utc>,
        limit: usize,
    ) -> Result<Vec<crate::ports::FollowUpRecord>, StoreError> {
        self.inner.follow_ups(since, until, limit).await
    }
    async fn pending_alerts(
        &self,
        now: DateTime<Utc>,
        limit: usize,
    ) -> Result<Vec<Pending>, StoreError> {
        self.inner.pending_alerts(now, limit).await
    }
    async fn alert_delivered(&self, key: &str, at: DateTime<Utc>) -> Result<(), StoreError> {
        self.inner.alert_delivered(key, at).await
    }
    async fn alert_failed(
        &self,
        key: &str,
        error: &str,
        retry_at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        self.inner.alert_failed(key, error, retry_at).await
    }
    async fn claim_alert(
        &self,
        key: &str,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        self.inner.claim_alert(key, now, until).await
    }
    async fn alert_abandoned(
        &self,
        key: &str,
        error: &str,
        at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        self.inner.alert_abandoned(key, error, at).await
    }
    async fn failed_alerts(&self, limit: usize) -> Result<Vec<FailedAlert>, StoreError> {
        self.inner.failed_alerts(limit).await
    }
    async fn erase(
        &self,
        who: &EraseSubject,
        at: DateTime<Utc>,
    ) -> Result<Option<Erased>, StoreError> {
        self.inner.erase(who, at).await
    }
    async fn erasable_ids(&self, who: &EraseSubject) -> Result<Vec<String>, StoreError> {
        self.inner.erasable_ids(who).await
    }
    async fn sweep(&self, now: DateTime<Utc>, retention: Retention) -> Result<Swept, StoreError> {
        self.inner.sweep(now, retention).await
    }
}

/// A notifier that records what it delivers, can be down for a number of calls, and
/// can take its time (so that two deliverers overlap).
#[derive(Debug, Default)]
pub struct FaultyNotifier {
    /// The next this many deliveries fail (transiently).
    pub outages: AtomicUsize,
    /// Alerts whose subject contains this are refused as invalid, every time.
    pub refuse_subjects_with: Mutex<Option<String>>,
    /// How long each delivery takes.
    pub latency: Mutex<Duration>,
    pub delivered: Mutex<Vec<AlertMessage>>,
}

impl FaultyNotifier {
    pub fn down_for(calls: usize) -> Arc<Self> {
        let notifier = FaultyNotifier::default();
        notifier.outages.store(calls, Ordering::SeqCst);
        Arc::new(notifier)
    }

    pub fn slow(latency: Duration) -> Arc<Self> {
        let notifier = FaultyNotifier::default();
        *notifier.latency.lock().expect("latency lock") = latency;
        Arc::new(notifier)
    }

    /// The delivered alerts' lead id and reason, in delivery order.
    pub fn delivered(&self) -> Vec<(String, String)> {
        self.delivered
            .lock()
            .expect("delivered lock")
            .iter()
            .map(|a| (a.lead_id.clone(), a.reason.clone()))
            .collect()
    }
}

#[async_trait]
impl Notifier for FaultyNotifier {
    async fn deliver(&self, alert: &AlertMessage) -> Result<(), NotifyError> {
        let latency = *self.latency.lock().expect("latency lock");
        if !latency.is_zero() {
            tokio::time::sleep(latency).await;
        }
        if take(&self.outages) {
            return Err(NotifyError::transient("injected: mail server unavailable"));
        }
        if let Some(refused) = &*self.refuse_subjects_with.lock().expect("refusal lock")
            && alert.subject.contains(refused.as_str())
        {
            return Err(NotifyError::permanent(
                "injected: InvalidParameter: Subject",
            ));
        }
        self.delivered
            .lock()
            .expect("delivered lock")
            .push(alert.clone());
        Ok(())
    }
}
