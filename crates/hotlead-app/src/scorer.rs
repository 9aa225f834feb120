//! Rescoring and alert delivery. Accepted events mark their lead; the scorer rescores
//! marked leads in batches (several events of one lead, one rescore), saves score, band
//! and explanation together with the alerts they raise, then delivers the outbox.
//! Locally it runs as a background task; on AWS the stream handler calls the same code.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration as StdDuration;

use chrono::{DateTime, Duration, Utc};
use hotlead_core::alert::{self, AlertReason, Presentation};
use hotlead_core::event::{Event, EventType};
use hotlead_core::stage::{Change, LeadStage};
use hotlead_core::{Band, RuleSet, Score, score};
use tokio::sync::Notify;

use serde::Serialize;

use crate::config::Config;
use crate::event_cache::{self, EventCache};
use crate::ports::{
    Clock, Dirty, FollowUpRecord, HistoryEntry, HistoryRead, HistoryUpdate, LearningStore,
    Notifier, NotifyError, OutboxEntry, RulesVersion, SaveOutcome, ScoreUpdate, SetAside, Store,
    StoreError, StoredLead, with_causes,
};

/// Leads rescored per store round trip.
pub const BATCH: usize = 100;
/// The least time between the starts of two busy rounds of [`Scorer::run`]: events that
/// come meanwhile are scored together in the next round, unless one of them may raise an
/// alert at once (see [`until_next_round`]).
pub const ROUND_GAP: StdDuration = StdDuration::from_millis(500);
/// The least time between the starts of two busy rounds whatever comes: a stream of calls
/// that may raise alerts (a flood of them from a public sender, say) paces the scorer
/// no faster than this.
pub const URGENT_GAP: StdDuration = StdDuration::from_millis(100);
/// Leads of a batch rescored at once: their reads run side by side on the store's read
/// connections, their scoring on the runtime's threads, and their saves share the
/// store's write transactions (one commit for many saves instead of one each).
pub const CONCURRENT_RESCORES: usize = 16;
/// A failed delivery is retried after this, doubling per attempt up to [`MAX_RETRY`].
pub const FIRST_RETRY: Duration = Duration::seconds(5);
pub const MAX_RETRY: Duration = Duration::minutes(30);
/// A score older than this is recomputed, so that decay shows without new events.
pub const RESCORE_AFTER: Duration = Duration::hours(1);
/// The most leads of a band the daily digest counts (beyond: "500+").
pub const DIGEST_COUNT: usize = 500;
/// A set-aside lead is retried after this, doubling per failure up to [`MAX_ASIDE`].
pub const FIRST_ASIDE: Duration = Duration::minutes(1);
pub const MAX_ASIDE: Duration = Duration::hours(1);
/// How long a deliverer holds its claim on an alert. A delivery that has not finished
/// within [`DELIVERY_TIMEOUT`] counts as failed, so a live deliverer never outlasts its
/// claim; a deliverer that died leaves the alert to others once the claim expires.
pub const CLAIM_LEASE: Duration = Duration::minutes(2);
pub const DELIVERY_TIMEOUT: StdDuration = StdDuration::from_secs(30);
/// Set-aside leads counted per round (the gauge tops out here).
pub const WAITING_LIMIT: usize = 1_000;

/// Counts of one delivery round.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Delivery {
    pub delivered: usize,
    /// Failed transiently: retried later with backoff.
    pub failed: usize,
    /// Refused as invalid by the notifier: marked failed, not retried.
    pub abandoned: usize,
    /// Claimed by another deliverer meanwhile: left to it.
    pub skipped: usize,
}

/// What one scheduled round did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Round {
    /// Leads rescored because the active rules version changed.
    pub rules_rescored: usize,
    /// Marked leads (new events) rescored.
    pub rescored: usize,
    /// Leads whose score had aged, rescored.
    pub aged: usize,
    /// Leads whose rescore failed for a reason of their own, set aside this round.
    pub set_aside: usize,
    #[serde(flatten)]
    pub delivery: Delivery,
    /// Steps that stopped on a store outage (each is retried next round).
    pub outages: usize,
    /// Leads set aside and waiting for a retry after the round (scheduled rounds only).
    pub waiting_aside: usize,
    /// Hot leads re-alerted because no rep acted by the follow-up deadline.
    pub realerted: usize,
}

/// What [`Scorer::on_changes`] did with a batch of changes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Changes {
    /// The records of leads that met a store outage: the feed should deliver them again.
    pub retry: Vec<String>,
    /// Counts: leads rescored, set aside, alerts delivered.
    pub round: Round,
}

/// A lead item changed, as a change feed (the DynamoDB stream) saw it: its id and change
/// counters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeadChange {
    /// The record's position in the feed (what a partial batch failure reports).
    pub sequence: String,
    pub lead_id: String,
    pub dirty_seq: i64,
    pub scored_seq: i64,
    pub merged: bool,
    /// The lead is set aside: the schedule retries it when due, not every change feed
    /// record (its own set-aside write is one).
    pub set_aside: bool,
    /// Failed rescores in a row so far.
    pub failures: u32,
}

impl LeadChange {
    /// Whether the change asks for a rescore: new events the saved score has not seen.
    /// A lead item written by a score save, or by setting it aside, does not.
    pub fn needs_rescore(&self) -> bool {
        !self.merged && !self.set_aside && self.dirty_seq > self.scored_seq
    }

    /// Reads a lead change from a stream record's new image, given as string and number
    /// accessors; other items (events, dedupe keys, identities, alerts) give `None`.
    pub fn from_image(
        sequence: &str,
        text: impl Fn(&str) -> Option<String>,
        number: impl Fn(&str) -> Option<i64>,
    ) -> Option<LeadChange> {
        if text("SK").as_deref() != Some("LEAD") {
            return None;
        }
        Some(LeadChange {
            sequence: sequence.to_string(),
            lead_id: text("id")?,
            dirty_seq: number("dirty_seq").unwrap_or(0),
            scored_seq: number("scored_seq").unwrap_or(0),
            merged: text("merged_into").is_some(),
            set_aside: text("dirty_pk").as_deref() == Some("ASIDE"),
            failures: number("aside_failures")
                .and_then(|n| u32::try_from(n).ok())
                .unwrap_or(0),
        })
    }
}

/// Why a lead's rescore failed.
#[derive(Debug)]
enum Failed {
    Store(StoreError),
    /// The rescore panicked: a defect, met on this lead's data.
    Panicked,
}

impl Failed {
    /// The failure of a rescore's task that did not return: it panicked (a defect, met
    /// on this lead's data: the lead is set aside), or it was cancelled (the runtime is
    /// shutting down: nothing is wrong with the lead).
    fn of_task(error: tokio::task::JoinError, lead_id: &str) -> Failed {
        if error.is_panic() {
            tracing::error!(
                lead = lead_id,
                "rescoring this lead panicked; it is set aside"
            );
            Failed::Panicked
        } else {
            Failed::Store(StoreError::unavailable("a rescore was cancelled"))
        }
    }
}

/// The failure of a rescore that never answered (its task was dropped unjoined).
fn unfinished() -> Failed {
    Failed::Store(StoreError::unavailable("a rescore did not finish"))
}

impl std::fmt::Display for Failed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failed::Store(error) => write!(f, "{}", with_causes(error)),
            Failed::Panicked => f.write_str(
                "rescoring this lead panicked: a defect of hotlead met on this lead's data \
                 (the server's log has the panic); it is tried again later",
            ),
        }
    }
}

/// What saving one rescore did.
#[derive(Debug, Clone, Copy)]
struct Rescored {
    outcome: SaveOutcome,
    /// Alerts saved with the score (each in the outbox once by its key).
    alerts: usize,
}

/// Counts of one pass over marked or aged leads.
#[derive(Debug, Clone, Copy, Default)]
struct Pass {
    saved: usize,
    set_aside: usize,
    /// Alerts delivered during the pass (scheduled rounds deliver after each batch that
    /// raised one, so an alert does not wait for the rest of the pass).
    delivery: Delivery,
}

impl Delivery {
    fn add(&mut self, other: Delivery) {
        self.delivered += other.delivered;
        self.failed += other.failed;
        self.abandoned += other.abandoned;
        self.skipped += other.skipped;
    }
}

/// The scorer service. Its operations, one per kind of trigger, are what every runner
/// calls (the `serve` loop, the local stream poller, the `score` Lambda):
/// [`Scorer::on_changes`] for a batch of changed leads, [`Scorer::scheduled_round`] for a
/// timer.
#[derive(Clone)]
pub struct Scorer {
    store: Arc<dyn Store>,
    notifier: Arc<dyn Notifier>,
    clock: Arc<dyn Clock>,
    rules: Arc<RwLock<Arc<RuleSet>>>,
    config: Arc<Config>,
    /// Where the active rules version is kept, when rules are versioned.
    rules_store: Option<Arc<dyn LearningStore>>,
    /// Signs the lead page links alerts end with; without, alerts link the lead API.
    links: Option<Arc<crate::links::Links>>,
    /// The local day whose digest this process put in the outbox (or found there).
    digest_day: Arc<std::sync::Mutex<Option<chrono::NaiveDate>>>,
    /// Leads' events between rescores (see [`crate::event_cache`]).
    events: Arc<EventCache>,
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
            links: None,
            digest_day: Arc::new(std::sync::Mutex::new(None)),
            events: Arc::new(EventCache::of_bytes(event_cache::DEFAULT_BYTES)),
        }
    }

    /// Keeps recently rescored leads' events between rescores in `cache` (instead of
    /// [`event_cache::DEFAULT_BYTES`] of them; a cache of no events: every rescore reads
    /// all of its lead's events).
    pub fn with_event_cache(mut self, cache: EventCache) -> Self {
        self.events = Arc::new(cache);
        self
    }

    /// Alerts link a signed, expiring lead page (see [`crate::links`]).
    pub fn with_links(mut self, links: Arc<crate::links::Links>) -> Self {
        self.links = Some(links);
        self
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
                StoreError::corrupt(format!("active rules version {}", active.version)).because(e)
            })?;
        self.set_rules(Arc::new(rules));
        tracing::info!(version = active.version, name = %active.name, source = %active.source, "rules changed");
        Ok((Some(active), true))
    }

    /// Picks up the active rules version and rescores every lead scored before it took
    /// effect; alerts for leads that turn hot go out as usual. The cut-off is stored, so
    /// any process (or Lambda instance) finishes a rescoring another one began.
    async fn follow_rules_pass(&self) -> Result<Pass, StoreError> {
        let (active, _) = self.refresh_rules().await?;
        let Some(since) = active.and_then(|a| a.activated_at) else {
            return Ok(Pass::default());
        };
        let pass = self.rescore_all(Some(since), false).await?;
        if pass.saved > 0 {
            tracing::info!(count = pass.saved, "rescored leads with the active rules");
        }
        Ok(pass)
    }

    /// Whether `event` may raise an alert at once with the rules in use: a form, an
    /// identify (a visitor who becomes a person), or an event an instant alert rule takes.
    /// (A page view can also take a lead over the hot line; under a stream of events its
    /// alert comes with the next round, see [`until_next_round`].)
    pub fn may_alert_at_once(&self, event: &Event) -> bool {
        event.kind == EventType::Identify
            || (event.kind == EventType::Track
                && event.name.as_deref() == Some(crate::ingest::FORM_SUBMITTED))
            || self
                .rules()
                .alerts
                .iter()
                .any(|alert| alert.matcher.matches(event))
    }

    /// The rules in use.
    pub fn rules(&self) -> Arc<RuleSet> {
        match self.rules.read() {
            Ok(rules) => rules.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Rescores every marked lead (and set-aside leads whose retry is due); returns how
    /// many rescores were saved. A lead that fails for a reason of its own is set aside
    /// and the others go on; a store outage stops the pass.
    pub async fn rescore_marked(&self) -> Result<usize, StoreError> {
        Ok(self.rescore_all(None, false).await?.saved)
    }

    /// Rescores leads whose score is older than `age`, so that decay and windows lower
    /// (or, for expiring penalties, raise) the scores of leads that have gone quiet, and
    /// the ranking and bands stay true. Returns how many were rescored.
    pub async fn rescore_aged(&self, age: Duration) -> Result<usize, StoreError> {
        Ok(self
            .rescore_all(Some(self.clock.now() - age), false)
            .await?
            .saved)
    }

    /// Rescores marked leads (`cutoff` none) or leads last scored before `cutoff` (fixed,
    /// so leads rescored in this run are not due again), batch after batch, until none is
    /// left or a batch makes no progress. A marked lead is rescored once per pass: one
    /// marked again meanwhile (events keep coming) ends the pass, so that the round goes
    /// on to deliver alerts; the next round (which its new events asked for) takes it.
    /// The leads of a batch are rescored [`CONCURRENT_RESCORES`] at a time; with
    /// `deliver`, alerts a batch raised are delivered before the next batch.
    async fn rescore_all(
        &self,
        cutoff: Option<DateTime<Utc>>,
        deliver: bool,
    ) -> Result<Pass, StoreError> {
        let mut pass = Pass::default();
        let mut rescored = std::collections::HashSet::new();
        loop {
            let batch = match cutoff {
                None => self.store.dirty(self.clock.now(), BATCH).await?,
                Some(cutoff) => self.store.scored_before(cutoff, BATCH).await?,
            };
            if batch.is_empty() {
                return Ok(pass);
            }
            if cutoff.is_none() && batch.iter().any(|mark| rescored.contains(&mark.lead_id)) {
                return Ok(pass);
            }
            if cutoff.is_none() {
                rescored.extend(batch.iter().map(|mark| mark.lead_id.clone()));
            }
            let mut progress = false;
            let mut raised = false;
            let mut outage = None;
            for (mark, result) in self.rescore_batch(batch).await {
                match result {
                    Ok(saved) => {
                        pass.saved += 1;
                        raised |= saved.alerts > 0;
                        // A marked lead that got new events meanwhile comes back in the
                        // next batch; that alone is no progress.
                        progress |= cutoff.is_some() || saved.outcome == SaveOutcome::Saved;
                    }
                    // Someone else saved first: the mark tells whether to go again.
                    Err(Failed::Store(StoreError::Conflict { .. })) => {}
                    Err(Failed::Store(error)) if error.is_outage() => {
                        outage.get_or_insert(error);
                    }
                    Err(failed) => {
                        if outage.is_none() {
                            self.set_aside(&mark.lead_id, mark.seq, mark.failures, &failed)
                                .await?;
                            pass.set_aside += 1;
                            progress = true;
                        }
                    }
                }
            }
            if let Some(error) = outage {
                return Err(error);
            }
            if deliver && raised {
                match self.deliver_pending().await {
                    Ok(delivery) => pass.delivery.add(delivery),
                    // The round delivers again at its end.
                    Err(error) => {
                        tracing::warn!(error = %with_causes(&error), "delivering alerts during a pass failed; the round retries")
                    }
                }
            }
            if !progress {
                return Ok(pass);
            }
        }
    }

    /// Rescores the leads of `batch`, [`CONCURRENT_RESCORES`] at a time (each lead once:
    /// a batch names a lead once); the results in the batch's order.
    async fn rescore_batch(&self, batch: Vec<Dirty>) -> Vec<(Dirty, Result<Rescored, Failed>)> {
        use tracing::Instrument;
        let mut results: Vec<Option<Result<Rescored, Failed>>> =
            batch.iter().map(|_| None).collect();
        // Each rescore on a task of its own (see [`Scorer::rescore_guarded`]); the set
        // aborts those left when its caller is dropped (a scorer stopped), so they end
        // with it, as if they ran in line.
        let mut tasks = tokio::task::JoinSet::new();
        let mut places = HashMap::new();
        let mut waiting = batch.iter().enumerate();
        loop {
            while tasks.len() < CONCURRENT_RESCORES {
                let Some((index, mark)) = waiting.next() else {
                    break;
                };
                let (scorer, lead_id, seq) = (self.clone(), mark.lead_id.clone(), mark.seq);
                let task = tasks.spawn(
                    async move { scorer.rescore_counted(&lead_id, seq).await }
                        .instrument(tracing::Span::current()),
                );
                places.insert(task.id(), index);
            }
            let (id, result) = match tasks.join_next_with_id().await {
                Some(Ok((id, result))) => (id, result.map_err(Failed::Store)),
                Some(Err(error)) => {
                    let id = error.id();
                    let lead = places.get(&id).map_or("", |&i| batch[i].lead_id.as_str());
                    (id, Err(Failed::of_task(error, lead)))
                }
                None => break,
            };
            if let Some(index) = places.remove(&id) {
                results[index] = Some(result);
            }
        }
        batch
            .into_iter()
            .zip(results)
            .map(|(mark, result)| (mark, result.unwrap_or_else(|| Err(unfinished()))))
            .collect()
    }

    /// Sets a lead aside after a failure of its own, with a growing delay before its
    /// next try, so that it holds up no other lead.
    async fn set_aside(
        &self,
        lead_id: &str,
        seq: i64,
        failures: u32,
        failed: &Failed,
    ) -> Result<(), StoreError> {
        let now = self.clock.now();
        let failures = failures.saturating_add(1);
        let retry_at = now + aside_delay(failures);
        let reason = failed.to_string();
        tracing::warn!(lead = lead_id, failures, error = %reason, %retry_at, "lead set aside");
        self.store
            .set_aside(&SetAside {
                lead_id: lead_id.to_string(),
                seq,
                failures,
                reason,
                since: now,
                retry_at,
            })
            .await
    }

    /// Handles a batch of changed leads from a change feed (the DynamoDB stream): each
    /// lead that asks for it is rescored once, with its newest change counter, then due
    /// alerts are delivered. A lead that fails for a reason of its own is set aside (the
    /// schedule retries it); the records of leads that failed on a store outage are
    /// returned, for the feed to deliver again.
    pub async fn on_changes(&self, changes: &[LeadChange]) -> Changes {
        let mut round = Round::default();
        // Score with the active rules version; the schedule rescores older scores.
        if let Err(error) = self.refresh_rules().await {
            tracing::error!(error = %with_causes(&error), "reading the active rules failed; scoring with the last known");
        }
        // Each lead once, in the order first seen, with its newest change counter and all
        // its records.
        let mut leads: Vec<(&LeadChange, i64, Vec<String>)> = Vec::new();
        let mut index: HashMap<&str, usize> = HashMap::new();
        for change in changes.iter().filter(|c| c.needs_rescore()) {
            let at = *index.entry(change.lead_id.as_str()).or_insert_with(|| {
                leads.push((change, change.dirty_seq, Vec::new()));
                leads.len() - 1
            });
            let (_, seq, sequences) = &mut leads[at];
            *seq = (*seq).max(change.dirty_seq);
            sequences.push(change.sequence.clone());
        }
        let mut failed = Vec::new();
        for (change, seq, sequences) in leads {
            let lead = change.lead_id.as_str();
            let error = match self.rescore_guarded(lead, seq).await {
                Ok(_) => {
                    round.rescored += 1;
                    continue;
                }
                // A conflict means a newer score is saved already: nothing is lost.
                Err(Failed::Store(StoreError::Conflict { .. })) => continue,
                Err(Failed::Store(error)) if error.is_outage() => error,
                Err(failed) => match self.set_aside(lead, seq, change.failures, &failed).await {
                    Ok(()) => {
                        round.set_aside += 1;
                        continue;
                    }
                    Err(aside) => aside,
                },
            };
            round.outages += 1;
            tracing::warn!(lead, error = %with_causes(&error), "rescoring failed; the records will be retried");
            failed.extend(sequences);
        }
        match self.deliver_pending().await {
            Ok(delivery) => round.delivery = delivery,
            Err(error) => {
                round.outages += 1;
                tracing::warn!(error = %with_causes(&error), "alert delivery failed; pending alerts are retried later");
            }
        }
        Changes {
            retry: failed,
            round,
        }
    }

    /// The timer's round: follow the active rules version, rescore marked leads (so a
    /// lead whose change-feed records were lost is scored within one period), retry
    /// set-aside leads that are due, rescore aged scores, deliver pending alerts. Each
    /// step runs even when an earlier one met a store outage.
    pub async fn scheduled_round(&self) -> Round {
        let mut round = Round::default();
        self.events.prune(self.clock.now());
        let passes = [
            ("following the active rules", self.follow_rules_pass().await),
            ("rescoring marked leads", self.rescore_all(None, true).await),
            (
                "rescoring aged leads",
                self.rescore_all(Some(self.clock.now() - RESCORE_AFTER), true)
                    .await,
            ),
        ];
        let [rules_rescored, rescored, aged] = passes.map(|(step, result)| match result {
            Ok(pass) => {
                round.set_aside += pass.set_aside;
                round.delivery.add(pass.delivery);
                pass.saved
            }
            Err(error) => {
                round.outages += 1;
                tracing::error!(error = %with_causes(&error), step, "a scoring step failed; retrying next round");
                0
            }
        });
        (round.rules_rescored, round.rescored, round.aged) = (rules_rescored, rescored, aged);
        match self.follow_up_pass().await {
            Ok(raised) => round.realerted = raised,
            Err(error) => {
                round.outages += 1;
                tracing::error!(error = %with_causes(&error), "following up hot alerts failed; retrying next round");
            }
        }
        if let Err(error) = self.digest_pass().await {
            round.outages += 1;
            tracing::error!(error = %with_causes(&error), "the daily digest failed; retrying next round");
        }
        match self.deliver_pending().await {
            Ok(delivery) => round.delivery.add(delivery),
            Err(error) => {
                round.outages += 1;
                tracing::error!(error = %with_causes(&error), "delivering alerts failed; retrying next round");
            }
        }
        match self.store.set_aside_leads(WAITING_LIMIT).await {
            Ok(waiting) => round.waiting_aside = waiting.len(),
            Err(error) => {
                round.outages += 1;
                tracing::error!(error = %with_causes(&error), "counting set-aside leads failed");
            }
        }
        if round.waiting_aside > 0 {
            tracing::warn!(
                count = round.waiting_aside,
                "leads set aside: `hotlead leads set-aside` lists them"
            );
        }
        if round != Round::default() {
            tracing::info!(
                rescored = round.rescored,
                aged = round.aged,
                rules_rescored = round.rules_rescored,
                set_aside = round.set_aside,
                delivered = round.delivery.delivered,
                failed = round.delivery.failed,
                abandoned = round.delivery.abandoned,
                outages = round.outages,
                waiting_aside = round.waiting_aside,
                realerted = round.realerted,
                "scoring round"
            );
        }
        round
    }

    /// Rescores one lead as of now and saves the result with the alerts it raises.
    pub async fn rescore(&self, lead_id: &str, seen_seq: i64) -> Result<SaveOutcome, StoreError> {
        Ok(self.rescore_counted(lead_id, seen_seq).await?.outcome)
    }

    /// [`Scorer::rescore_counted`] on a task of its own (a batch of one: see
    /// [`Scorer::rescore_batch`]), so that a rescore that panics (a defect, met on one
    /// lead's data) fails that lead alone: it is set aside like a lead whose data cannot
    /// be read, and the other leads, the rest of the round and the next rounds go on (a
    /// change feed's batch naming it is not retried). This holds where a panic unwinds
    /// (`hotlead serve`, the CLI); the packaged Lambda functions abort on a panic
    /// (`scripts/package`), and their stream's retries and failure destination take over.
    async fn rescore_guarded(&self, lead_id: &str, seen_seq: i64) -> Result<Rescored, Failed> {
        let mut results = self
            .rescore_batch(vec![Dirty::new(lead_id, seen_seq)])
            .await;
        results
            .pop()
            .map_or_else(|| Err(unfinished()), |(_, result)| result)
    }

    /// [`Scorer::rescore`], saying how many alerts the save raised.
    async fn rescore_counted(&self, lead_id: &str, seen_seq: i64) -> Result<Rescored, StoreError> {
        let Some((stored, held)) = self.events.read(&*self.store, lead_id).await? else {
            return Err(StoreError::conflict(format!("lead {lead_id} is gone")));
        };
        if stored.id != lead_id {
            // Merged since it was listed: `seen_seq` counts the merged lead's changes, not
            // those of the lead it went into, which the merge marked and which is
            // rescored on that mark of its own.
            self.events.put_back(held, self.clock.now());
            return Err(StoreError::conflict(format!(
                "lead {lead_id} was merged into another lead"
            )));
        }
        let events = &held.events;
        let rules = self.rules();
        let now = self.clock.now();
        let lead = stored.to_lead();
        let previous = stored.band();
        let mut result = score(&rules, &lead, events, now, previous);
        // Flood control: at most one instant alert per lead and rule per its quiet time;
        // what is held back is counted in the score.
        let carried = stored
            .score
            .as_ref()
            .map(|s| s.instant.clone())
            .unwrap_or_default();
        let throttled = if result.excluded.is_none() {
            alert::throttle(&rules, &carried, &result.alerts, now)
        } else {
            alert::Throttled {
                raise: Vec::new(),
                state: carried,
            }
        };
        result.instant = throttled.state;

        let mut reasons = Vec::new();
        let mut hot_crossings = stored.hot_crossings;
        if result.band == Band::Hot && previous != Some(Band::Hot) {
            hot_crossings += 1;
            reasons.push(AlertReason::BecameHot {
                crossing: hot_crossings,
            });
        }
        if result.excluded.is_none() {
            reasons.extend(throttled.raise.into_iter().map(AlertReason::Instant));
        }
        // What an alert needs (its link signed, its routing, the activity it shows) is
        // made only when one is due: most rescores raise none.
        let mut follow_up = None;
        let alerts = if reasons.is_empty() {
            Vec::new()
        } else {
            let routing = self.config.routing_for(&lead);
            if reasons
                .iter()
                .any(|r| matches!(r, AlertReason::BecameHot { .. }))
            {
                follow_up = Some(FollowUpRecord {
                    lead_id: stored.id.clone(),
                    crossing: hot_crossings,
                    territory: routing.territory.clone(),
                    owner: routing.owner.clone(),
                    alerted_at: now,
                    due_at: rules.stages.sla.as_ref().map(|sla| sla.deadline(now)),
                    first_action_at: None,
                    first_action: None,
                    escalated_at: None,
                    closed_at: None,
                });
            }
            self.compose_alerts(
                &rules, &stored, &lead, &result, events, &reasons, routing, now,
            )
        };
        let history = history_of(&rules, &stored, &lead, &result, now);
        let raised = alerts.len();
        let outcome = self
            .store
            .save_score(ScoreUpdate {
                lead_id: stored.id.clone(),
                seen_seq,
                score: result,
                hot_crossings,
                alerts,
                history,
                follow_up,
            })
            .await;
        // What was read stays true whether or not the save went through.
        self.events.put_back(held, now);
        let outcome = outcome?;
        Ok(Rescored {
            outcome,
            alerts: raised,
        })
    }

    /// The alerts of `reasons` for a lead scored `score`, routed by `routing`.
    #[allow(clippy::too_many_arguments)]
    fn compose_alerts(
        &self,
        rules: &RuleSet,
        stored: &StoredLead,
        lead: &hotlead_core::Lead,
        score: &Score,
        events: &[hotlead_core::Event],
        reasons: &[AlertReason],
        routing: hotlead_core::alert::Routing,
        now: DateTime<Utc>,
    ) -> Vec<OutboxEntry> {
        let presentation = Presentation {
            language: self.config.language,
            offset: rules.utc_offset,
            lead_url: match &self.links {
                Some(links) => links.url(&links.link(&stored.id, now, self.config.language)),
                None => self.config.lead_url(&stored.id),
            },
        };
        // What a rep reads as recent activity: what the rules saw, not bots or our office.
        let seen: Vec<_> = events
            .iter()
            .filter(|e| rules.filters.drops(e).is_none() && e.timestamp <= now)
            .cloned()
            .collect();
        reasons
            .iter()
            .map(|reason| OutboxEntry {
                key: reason.dedupe_key(&stored.id),
                created_at: now,
                message: alert::compose(lead, score, reason, &seen, routing.clone(), &presentation),
            })
            .collect()
    }

    /// The team lead's daily digest (`[digest]`), once a day from its time on (Monday to
    /// Friday unless `weekends`): the number of hot and warm leads and the signed link to
    /// their ranking page. Needs the link secret. `true` when it was put in the outbox
    /// now (the key `digest:<local date>` makes it once, whichever copy runs first).
    pub async fn digest_pass(&self) -> Result<bool, StoreError> {
        use chrono::Datelike;
        let (Some(send_at), Some(links)) = (self.config.digest.send_at(), &self.links) else {
            return Ok(false);
        };
        let rules = self.rules();
        let now = self.clock.now();
        let local = now.with_timezone(&rules.utc_offset);
        let day = local.date_naive();
        let weekend = matches!(day.weekday(), chrono::Weekday::Sat | chrono::Weekday::Sun);
        if local.time() < send_at
            || (weekend && !self.config.digest.weekends)
            || *self.digest_day.lock().unwrap_or_else(|e| e.into_inner()) == Some(day)
        {
            return Ok(false);
        }
        let count = |band| async move {
            let page = self.store.ranking(Some(band), DIGEST_COUNT, None).await?;
            Ok::<_, StoreError>((page.leads.len(), page.next.is_some()))
        };
        let (hot, warm) = (count(Band::Hot).await?, count(Band::Warm).await?);
        let number = |(n, more): (usize, bool)| if more { format!("{n}+") } else { n.to_string() };
        let url = links.ranking_url(now);
        let (subject, body) = match self.config.language {
            alert::Language::Ja => (
                format!(
                    "[hotlead] 本日のリード: ホット {} 件、ウォーム {} 件",
                    number(hot),
                    number(warm)
                ),
                format!(
                    "{} 時点のホットリードは {} 件、ウォームリードは {} 件です。\n一覧 (スコア順、理由と担当つき):\n{url}\n",
                    local.format("%Y-%m-%d %H:%M"),
                    number(hot),
                    number(warm)
                ),
            ),
            alert::Language::En => (
                format!(
                    "[hotlead] Today's leads: {} hot, {} warm",
                    number(hot),
                    number(warm)
                ),
                format!(
                    "As of {}, {} leads are hot and {} warm.\nThe list (by score, with reasons and stages):\n{url}\n",
                    local.format("%Y-%m-%d %H:%M"),
                    number(hot),
                    number(warm)
                ),
            ),
        };
        let notice = OutboxEntry {
            key: format!("digest:{day}"),
            created_at: now,
            message: hotlead_core::alert::AlertMessage {
                lead_id: String::new(),
                reason: "digest".into(),
                subject,
                body,
                score: 0.0,
                band: String::new(),
                grade: String::new(),
                routing: hotlead_core::alert::Routing {
                    territory: self.config.routing.default_territory.clone(),
                    owner: self.config.digest.owner.clone(),
                    product: self.config.routing.product.clone(),
                },
                lead_url: url,
            },
        };
        let added = self.store.add_notice(&notice).await?;
        *self.digest_day.lock().unwrap_or_else(|e| e.into_inner()) = Some(day);
        if added {
            tracing::info!(
                hot = hot.0,
                warm = warm.0,
                "the daily digest is in the outbox"
            );
        }
        Ok(added)
    }

    /// Hot alerts past their follow-up deadline with no rep's action: each re-alerts once
    /// (to the rules' `escalate_to`, else the lead's owner again), while the lead is still
    /// hot at that crossing; otherwise the follow-up is closed without one. Returns how
    /// many re-alerts were raised.
    pub async fn follow_up_pass(&self) -> Result<usize, StoreError> {
        let now = self.clock.now();
        let rules = self.rules();
        let mut raised = 0;
        for record in self.store.overdue_follow_ups(now, BATCH).await? {
            let stored = self.store.lead(&record.lead_id).await?;
            let alert = match &stored {
                Some(stored)
                    if stored.band() == Some(Band::Hot)
                        && stored.hot_crossings == record.crossing
                        && stored.id == record.lead_id =>
                {
                    let Some(score) = &stored.score else { continue };
                    let events = self.store.events(&stored.id).await?;
                    let lead = stored.to_lead();
                    let mut routing = self.config.routing_for(&lead);
                    if let Some(to) = rules
                        .stages
                        .sla
                        .as_ref()
                        .and_then(|s| s.escalate_to.clone())
                    {
                        routing.owner = Some(to);
                    }
                    let reason = AlertReason::FollowUpMissed {
                        crossing: record.crossing,
                        alerted_at: record.alerted_at,
                    };
                    self.compose_alerts(
                        &rules,
                        stored,
                        &lead,
                        score,
                        &events,
                        &[reason],
                        routing,
                        now,
                    )
                    .pop()
                }
                _ => None,
            };
            let escalates = alert.is_some();
            if self
                .store
                .end_follow_up(&record.lead_id, record.crossing, now, alert)
                .await?
                && escalates
            {
                tracing::info!(lead = %record.lead_id, crossing = record.crossing, "a hot lead had no rep's action by its deadline: re-alerted");
                raised += 1;
            }
        }
        Ok(raised)
    }

    /// Delivers due alerts, each claimed first (so two deliverers never publish one
    /// alert), with a time limit shorter than the claim. A transient failure stays
    /// pending with a growing delay; a permanent one (the notifier refused the alert as
    /// invalid) marks it failed for good.
    pub async fn deliver_pending(&self) -> Result<Delivery, StoreError> {
        let mut report = Delivery::default();
        for pending in self.store.pending_alerts(self.clock.now(), BATCH).await? {
            let key = &pending.entry.key;
            let now = self.clock.now();
            if !self.store.claim_alert(key, now, now + CLAIM_LEASE).await? {
                report.skipped += 1;
                continue;
            }
            let attempts = pending.attempts + 1;
            let result = match tokio::time::timeout(
                DELIVERY_TIMEOUT,
                self.notifier.deliver(&pending.entry.message),
            )
            .await
            {
                Ok(result) => result,
                Err(_) => Err(NotifyError::transient(format!(
                    "no answer within {} s",
                    DELIVERY_TIMEOUT.as_secs()
                ))),
            };
            match result {
                Ok(()) => {
                    self.store.alert_delivered(key, self.clock.now()).await?;
                    tracing::info!(key = %key, reason = %pending.entry.message.reason,
                        territory = %pending.entry.message.routing.territory, "alert delivered");
                    report.delivered += 1;
                }
                Err(error) if error.permanent => {
                    self.store
                        .alert_abandoned(key, &error.message, self.clock.now())
                        .await?;
                    tracing::error!(key = %key, attempts, error = %error.message, "alert failed for good; it is not retried");
                    report.abandoned += 1;
                }
                Err(error) => {
                    let delay = retry_delay(attempts);
                    self.store
                        .alert_failed(key, &error.message, self.clock.now() + delay)
                        .await?;
                    tracing::warn!(key = %key, attempts, error = %error.message, "alert delivery failed; will retry");
                    report.failed += 1;
                }
            }
        }
        Ok(report)
    }

    /// Rescores marked leads and delivers until nothing is left to do now.
    pub async fn run_once(&self) -> Result<Delivery, StoreError> {
        self.rescore_marked().await?;
        self.deliver_pending().await
    }

    /// The background loop of `hotlead serve`: a [`Scorer::scheduled_round`] when woken
    /// by new events, and every `tick`; see [`until_next_round`] for the pace under a
    /// stream of events.
    pub async fn run(self, wake: Arc<Notify>, urgent: Arc<Notify>, tick: StdDuration) {
        loop {
            let started = tokio::time::Instant::now();
            let round = self.scheduled_round().await;
            let pace = Pace {
                gap: ROUND_GAP,
                urgent: &urgent,
            };
            until_next_round(&round, started, &wake, pace, tick).await;
        }
    }
}

/// How far apart busy rounds start: `gap`, or [`URGENT_GAP`] once `urgent` is notified.
#[derive(Debug, Clone, Copy)]
pub struct Pace<'a> {
    pub gap: StdDuration,
    pub urgent: &'a Notify,
}

/// Waits, after a round that `started` then, until the next is due: when `wake` is
/// notified or `tick` has passed. After a busy round (one that rescored more than one
/// lead), not before the pace's gap from its start ([`ROUND_GAP`] for `hotlead serve`),
/// unless its `urgent` is notified (a call that may raise an alert at once, see
/// [`Scorer::may_alert_at_once`]), and then not before [`URGENT_GAP`]: under a stream of
/// page views a lead is rescored once per gap with everything that came meanwhile instead
/// of once per event, and ingestion keeps most of the CPU, while a form's alert waits
/// out no more than the short gap. A quiet round (one lead: a form) is followed at once.
pub async fn until_next_round(
    round: &Round,
    started: tokio::time::Instant,
    wake: &Notify,
    pace: Pace<'_>,
    tick: StdDuration,
) {
    tokio::select! {
        () = wake.notified() => {}
        () = tokio::time::sleep(tick) => {}
    }
    if round.rescored + round.aged + round.rules_rescored > 1 {
        tokio::select! {
            () = tokio::time::sleep_until(started + pace.gap.min(tick)) => {}
            () = pace.urgent.notified() => {
                tokio::time::sleep_until(started + URGENT_GAP.min(pace.gap).min(tick)).await;
            }
        }
    }
}

/// `first`, doubling per try after the first, up to `max`.
fn doubling(first: Duration, max: Duration, tries: u32) -> Duration {
    let factor = 1i64 << tries.saturating_sub(1).min(20);
    (first * factor as i32).min(max)
}

/// 5 s, 10 s, 20 s, ... up to 30 min.
pub fn retry_delay(attempts: u32) -> Duration {
    doubling(FIRST_RETRY, MAX_RETRY, attempts)
}

/// 1 min, 2 min, 4 min, ... up to an hour.
pub fn aside_delay(failures: u32) -> Duration {
    doubling(FIRST_ASIDE, MAX_ASIDE, failures)
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

/// The history a new score makes: a band change (the first score's band included), and
/// the stage the rules move the lead to; saved only while the lead still holds what
/// they were worked out from.
fn history_of(
    rules: &RuleSet,
    stored: &StoredLead,
    lead: &hotlead_core::Lead,
    score: &Score,
    now: DateTime<Utc>,
) -> HistoryUpdate {
    let by = format!("rules {} v{}", rules.name, rules.version);
    let mut entries = Vec::new();
    let mut push = |change| {
        entries.push(HistoryEntry {
            lead_id: stored.id.clone(),
            rev: stored.history_rev + entries.len() as u32 + 1,
            at: now,
            by: by.clone(),
            change,
        })
    };
    let previous = stored.band();
    if previous != Some(score.band) {
        push(Change::Band {
            from: previous,
            to: score.band,
            score: score.score,
            rules: score.rules.clone(),
        });
    }
    let stage = rules
        .stages
        .after_rescore(stored.stage.as_ref(), lead, score)
        .map(|next| {
            push(Change::Stage {
                from: stored.stage.as_ref().map(|s| s.id.clone()),
                to: next.id.clone(),
            });
            LeadStage {
                id: next.id.clone(),
                since: now,
                by_rep: false,
            }
        });
    HistoryUpdate {
        read: Some(HistoryRead {
            band: previous,
            history_rev: stored.history_rev,
        }),
        entries,
        stage,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// After a busy round the next waits out the gap, or only the short one when a call
    /// that may raise an alert at once comes; a quiet round is followed as soon as
    /// anything comes; the tick bounds both gaps.
    #[tokio::test(start_paused = true)]
    async fn a_busy_round_waits_out_the_gap_or_the_short_one_after_an_urgent_call() {
        let tick = StdDuration::from_secs(60);
        let busy = Round {
            rescored: 2,
            ..Round::default()
        };
        let quiet = Round {
            rescored: 1,
            ..Round::default()
        };
        let waited = |round: Round, urgent_call: bool, tick: StdDuration| async move {
            let (wake, urgent) = (Notify::new(), Notify::new());
            let started = tokio::time::Instant::now();
            wake.notify_one();
            if urgent_call {
                urgent.notify_one();
            }
            let pace = Pace {
                gap: ROUND_GAP,
                urgent: &urgent,
            };
            until_next_round(&round, started, &wake, pace, tick).await;
            started.elapsed()
        };
        assert_eq!(waited(busy, false, tick).await, ROUND_GAP);
        assert_eq!(waited(busy, true, tick).await, URGENT_GAP);
        assert_eq!(waited(quiet, false, tick).await, StdDuration::ZERO);
        assert_eq!(waited(quiet, true, tick).await, StdDuration::ZERO);
        // A tick shorter than the gaps bounds them.
        let short = StdDuration::from_millis(50);
        assert_eq!(waited(busy, false, short).await, short);
        assert_eq!(waited(busy, true, short).await, short);
        // Nothing comes: the next round is at the tick.
        let (wake, urgent) = (Notify::new(), Notify::new());
        let started = tokio::time::Instant::now();
        let pace = Pace {
            gap: ROUND_GAP,
            urgent: &urgent,
        };
        until_next_round(&busy, started, &wake, pace, tick).await;
        assert_eq!(started.elapsed(), tick);
    }

    #[test]
    fn retries_back_off_to_a_ceiling() {
        assert_eq!(retry_delay(1), Duration::seconds(5));
        assert_eq!(retry_delay(2), Duration::seconds(10));
        assert_eq!(retry_delay(5), Duration::seconds(80));
        assert_eq!(retry_delay(40), MAX_RETRY);
        assert_eq!(aside_delay(1), Duration::minutes(1));
        assert_eq!(aside_delay(3), Duration::minutes(4));
        assert_eq!(aside_delay(99), MAX_ASIDE);
    }
}
