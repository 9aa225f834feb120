//! Rescoring and alert delivery. Accepted events mark their lead; the scorer rescores
//! marked leads in batches (several events of one lead, one rescore), saves score, band
//! and explanation together with the alerts they raise, then delivers the outbox.
//! Locally it runs as a background task; on AWS the stream handler calls the same code.

use std::sync::{Arc, RwLock};
use std::time::Duration as StdDuration;

use chrono::{DateTime, Duration, Utc};
use hotlead_core::alert::{self, AlertReason, Presentation};
use hotlead_core::{Band, RuleSet, score};
use tokio::sync::Notify;

use crate::config::Config;
use crate::ports::{
    Clock, LearningStore, Notifier, OutboxEntry, RulesVersion, SaveOutcome, ScoreUpdate, Store,
    StoreError,
};

/// Leads rescored per store round trip.
pub const BATCH: usize = 100;
/// A failed delivery is retried after this, doubling per attempt up to [`MAX_RETRY`].
pub const FIRST_RETRY: Duration = Duration::seconds(5);
pub const MAX_RETRY: Duration = Duration::minutes(30);
/// A score older than this is recomputed, so that decay shows without new events.
pub const RESCORE_AFTER: Duration = Duration::hours(1);

/// Counts of one delivery round.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Delivery {
    pub delivered: usize,
    pub failed: usize,
}

/// The scorer service.
#[derive(Clone)]
pub struct Scorer {
    store: Arc<dyn Store>,
    notifier: Arc<dyn Notifier>,
    clock: Arc<dyn Clock>,
    rules: Arc<RwLock<Arc<RuleSet>>>,
    config: Arc<Config>,
    /// Where the active rules version is kept, when rules are versioned.
    rules_store: Option<Arc<dyn LearningStore>>,
}

impl std::fmt::Debug for Scorer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Scorer").finish_non_exhaustive()
    }
}

impl Scorer {
    pub fn new(
        store: Arc<dyn Store>,
        notifier: Arc<dyn Notifier>,
        clock: Arc<dyn Clock>,
        rules: Arc<RuleSet>,
        config: Arc<Config>,
    ) -> Self {
        Scorer {
            store,
            notifier,
            clock,
            rules: Arc::new(RwLock::new(rules)),
            config,
            rules_store: None,
        }
    }

    /// Follows the active rules version in `store`: each round checks it, and a change
    /// swaps the rules and rescores every lead.
    pub fn with_rules_from(mut self, store: Arc<dyn LearningStore>) -> Self {
        self.rules_store = Some(store);
        self
    }

    /// Uses `rules` from now on.
    pub fn set_rules(&self, rules: Arc<RuleSet>) {
        match self.rules.write() {
            Ok(mut current) => *current = rules,
            Err(poisoned) => *poisoned.into_inner() = rules,
        }
    }

    /// Switches to the active stored rules version if it changed; returns the active
    /// version (if rules are versioned) and whether it changed.
    pub async fn refresh_rules(&self) -> Result<(Option<RulesVersion>, bool), StoreError> {
        let Some(store) = &self.rules_store else {
            return Ok((None, false));
        };
        let Some(active) = store.active_rules().await? else {
            return Ok((None, false));
        };
        let current = self.rules();
        if active.version == current.version && active.name == current.name {
            return Ok((Some(active), false));
        }
        let rules = RuleSet::from_toml(&format!("rules version {}", active.version), &active.text)
            .map_err(|e| {
                StoreError::Corrupt(format!("active rules version {}: {e}", active.version))
            })?;
        self.set_rules(Arc::new(rules));
        tracing::info!(version = active.version, name = %active.name, source = %active.source, "rules changed");
        Ok((Some(active), true))
    }

    /// Picks up the active rules version and rescores every lead scored before it took
    /// effect; alerts for leads that turn hot go out as usual. The cut-off is stored, so
    /// any process (or Lambda instance) finishes a rescoring another one began. Errors are
    /// logged and retried next round.
    pub async fn follow_rules(&self) {
        let active = match self.refresh_rules().await {
            Ok((active, _)) => active,
            Err(error) => {
                tracing::error!(%error, "reading the active rules failed");
                return;
            }
        };
        let Some(since) = active.and_then(|a| a.activated_at) else {
            return;
        };
        match self.rescore_all(Some(since)).await {
            Ok(0) => {}
            Ok(count) => tracing::info!(count, "rescored leads with the active rules"),
            Err(error) => tracing::error!(%error, "rescoring with the active rules failed"),
        }
    }

    /// The rules in use.
    pub fn rules(&self) -> Arc<RuleSet> {
        match self.rules.read() {
            Ok(rules) => rules.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Rescores every marked lead; returns how many rescores were saved.
    pub async fn rescore_marked(&self) -> Result<usize, StoreError> {
        self.rescore_all(None).await
    }

    /// Rescores leads whose score is older than `age`, so that decay and windows lower
    /// (or, for expiring penalties, raise) the scores of leads that have gone quiet, and
    /// the ranking and bands stay true. Returns how many were rescored.
    pub async fn rescore_aged(&self, age: Duration) -> Result<usize, StoreError> {
        self.rescore_all(Some(self.clock.now() - age)).await
    }

    /// Rescores marked leads (`cutoff` none) or leads last scored before `cutoff` (fixed,
    /// so leads rescored in this run are not due again), batch after batch, until none is
    /// left or a batch makes no progress.
    async fn rescore_all(&self, cutoff: Option<DateTime<Utc>>) -> Result<usize, StoreError> {
        let mut saved = 0;
        loop {
            let batch = match cutoff {
                None => self.store.dirty(BATCH).await?,
                Some(cutoff) => self.store.scored_before(cutoff, BATCH).await?,
            };
            if batch.is_empty() {
                return Ok(saved);
            }
            let mut progress = false;
            for mark in batch {
                match self.rescore(&mark.lead_id, mark.seq).await {
                    Ok(outcome) => {
                        saved += 1;
                        // A marked lead that got new events meanwhile comes back in the
                        // next batch; that alone is no progress.
                        progress |= cutoff.is_some() || outcome == SaveOutcome::Saved;
                    }
                    // Someone else saved first: the mark tells whether to go again.
                    Err(StoreError::Conflict(_)) => {}
                    Err(e) => return Err(e),
                }
            }
            if !progress {
                return Ok(saved);
            }
        }
    }

    /// Rescores one lead as of now and saves the result with the alerts it raises.
    pub async fn rescore(&self, lead_id: &str, seen_seq: i64) -> Result<SaveOutcome, StoreError> {
        let Some(stored) = self.store.lead(lead_id).await? else {
            return Err(StoreError::Conflict(format!("lead {lead_id} is gone")));
        };
        let events = self.store.events(&stored.id).await?;
        let rules = self.rules();
        let now = self.clock.now();
        let lead = stored.to_lead();
        let previous = stored.band();
        let result = score(&rules, &lead, &events, now, previous);

        let mut reasons = Vec::new();
        let mut hot_crossings = stored.hot_crossings;
        if result.band == Band::Hot && previous != Some(Band::Hot) {
            hot_crossings += 1;
            reasons.push(AlertReason::BecameHot {
                crossing: hot_crossings,
            });
        }
        if result.excluded.is_none() {
            reasons.extend(result.alerts.iter().cloned().map(AlertReason::Instant));
        }
        let presentation = Presentation {
            language: self.config.language,
            offset: rules.utc_offset,
            lead_url: self.config.lead_url(&stored.id),
        };
        let routing = self.config.routing_for(&lead);
        // What a rep reads as recent activity: what the rules saw, not bots or our office.
        let seen: Vec<_> = events
            .iter()
            .filter(|e| rules.filters.drops(e).is_none() && e.timestamp <= now)
            .cloned()
            .collect();
        let alerts = reasons
            .iter()
            .map(|reason| OutboxEntry {
                key: reason.dedupe_key(&stored.id),
                created_at: now,
                message: alert::compose(
                    &lead,
                    &result,
                    reason,
                    &seen,
                    routing.clone(),
                    &presentation,
                ),
            })
            .collect();
        self.store
            .save_score(ScoreUpdate {
                lead_id: stored.id.clone(),
                seen_seq,
                score: result,
                hot_crossings,
                alerts,
            })
            .await
    }

    /// Delivers due alerts; failures stay pending with a growing delay.
    pub async fn deliver_pending(&self) -> Result<Delivery, StoreError> {
        let mut report = Delivery::default();
        let now = self.clock.now();
        for pending in self.store.pending_alerts(now, BATCH).await? {
            match self.notifier.deliver(&pending.entry.message).await {
                Ok(()) => {
                    self.store
                        .alert_delivered(&pending.entry.key, self.clock.now())
                        .await?;
                    tracing::info!(key = %pending.entry.key, reason = %pending.entry.message.reason,
                        territory = %pending.entry.message.routing.territory, "alert delivered");
                    report.delivered += 1;
                }
                Err(error) => {
                    let delay = retry_delay(pending.attempts + 1);
                    self.store
                        .alert_failed(&pending.entry.key, &error.to_string(), now + delay)
                        .await?;
                    tracing::warn!(key = %pending.entry.key, attempts = pending.attempts + 1, %error, "alert delivery failed; will retry");
                    report.failed += 1;
                }
            }
        }
        Ok(report)
    }

    /// Rescores and delivers until nothing is left to do now.
    pub async fn run_once(&self) -> Result<Delivery, StoreError> {
        self.rescore_marked().await?;
        self.deliver_pending().await
    }

    /// The background loop: woken by new events, and every `tick` to retry deliveries
    /// and to rescore leads whose score is older than [`RESCORE_AFTER`].
    pub async fn run(self, wake: Arc<Notify>, tick: StdDuration) {
        loop {
            self.follow_rules().await;
            if let Err(error) = self.run_once().await {
                tracing::error!(%error, "scoring round failed; retrying");
            }
            match self.rescore_aged(RESCORE_AFTER).await {
                Ok(0) => {}
                Ok(count) => tracing::info!(count, "rescored leads whose scores had aged"),
                Err(error) => tracing::error!(%error, "rescoring aged leads failed; retrying"),
            }
            tokio::select! {
                () = wake.notified() => {}
                () = tokio::time::sleep(tick) => {}
            }
        }
    }
}

/// 5 s, 10 s, 20 s, ... up to 30 min.
pub fn retry_delay(attempts: u32) -> Duration {
    let factor = 1i64 << attempts.saturating_sub(1).min(20);
    (FIRST_RETRY * factor as i32).min(MAX_RETRY)
}

/// A clock fixed by hand, for demos and tests.
#[derive(Debug, Default)]
pub struct ManualClock(RwLock<Option<DateTime<Utc>>>);

impl ManualClock {
    pub fn at(time: DateTime<Utc>) -> Self {
        ManualClock(RwLock::new(Some(time)))
    }

    pub fn set(&self, time: DateTime<Utc>) {
        if let Ok(mut now) = self.0.write() {
            *now = Some(time);
        }
    }
}

impl Clock for ManualClock {
    fn now(&self) -> DateTime<Utc> {
        self.0
            .read()
            .ok()
            .and_then(|t| *t)
            .unwrap_or(DateTime::<Utc>::MIN_UTC)
    }
}

/// Sequential lead ids (`L-0001`, ...), for demos and tests.
#[derive(Debug, Default)]
pub struct SequentialIds(std::sync::atomic::AtomicU64);

impl crate::ports::IdSource for SequentialIds {
    fn new_lead_id(&self) -> String {
        let n = self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
        format!("L-{n:04}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_back_off_to_a_ceiling() {
        assert_eq!(retry_delay(1), Duration::seconds(5));
        assert_eq!(retry_delay(2), Duration::seconds(10));
        assert_eq!(retry_delay(5), Duration::seconds(80));
        assert_eq!(retry_delay(40), MAX_RETRY);
    }
}
