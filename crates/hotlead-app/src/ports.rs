//! The narrow traits through which the services reach storage, delivery, the clock and id
//! generation. Each has an embedded adapter and an AWS adapter; the contract tests in
//! `tests/it/contract.rs` run against every store.

use std::collections::BTreeMap;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use hotlead_core::alert::AlertMessage;
use hotlead_core::identity::IdentityKey;
use hotlead_core::stage::{Change, LeadStage};
use hotlead_core::{Band, Event, Lead, Score};
use serde::{Deserialize, Serialize};

/// What caused a store error: the adapter's own error (rusqlite's, the AWS SDK's), kept
/// for logs and [`std::error::Error::source`].
pub type Cause = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Why a store operation failed. Every adapter maps its own errors into these, keeping
/// them as the cause. `Display` says what failed without the causes (a client may be
/// shown it); [`with_causes`] adds them, for logs and operators.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// No such thing is stored (a suggestion, a rules version).
    #[error("no {what} {id}")]
    NotFound { what: &'static str, id: String },
    /// Another writer changed the item first; the operation may be retried.
    #[error("conflicting update: {message}")]
    Conflict {
        message: String,
        source: Option<Cause>,
    },
    /// The store could not be reached or refused the request; retry later.
    #[error("store unavailable: {message}")]
    Unavailable {
        message: String,
        source: Option<Cause>,
    },
    /// Stored data could not be read back.
    #[error("stored data is corrupt: {message}")]
    Corrupt {
        message: String,
        source: Option<Cause>,
    },
    /// The store refused the request as it stands (an item too large, a key too long):
    /// retrying it unchanged cannot succeed.
    #[error("rejected by the store: {message}")]
    Rejected {
        message: String,
        source: Option<Cause>,
    },
}

impl StoreError {
    pub fn not_found(what: &'static str, id: impl Into<String>) -> Self {
        StoreError::NotFound {
            what,
            id: id.into(),
        }
    }

    pub fn conflict(message: impl Into<String>) -> Self {
        StoreError::Conflict {
            message: message.into(),
            source: None,
        }
    }

    pub fn unavailable(message: impl Into<String>) -> Self {
        StoreError::Unavailable {
            message: message.into(),
            source: None,
        }
    }

    pub fn corrupt(message: impl Into<String>) -> Self {
        StoreError::Corrupt {
            message: message.into(),
            source: None,
        }
    }

    pub fn rejected(message: impl Into<String>) -> Self {
        StoreError::Rejected {
            message: message.into(),
            source: None,
        }
    }

    /// The same error, caused by `cause`: `StoreError::unavailable("reading leads").because(e)`.
    pub fn because(mut self, cause: impl Into<Cause>) -> Self {
        match &mut self {
            StoreError::NotFound { .. } => {}
            StoreError::Conflict { source, .. }
            | StoreError::Unavailable { source, .. }
            | StoreError::Corrupt { source, .. }
            | StoreError::Rejected { source, .. } => *source = Some(cause.into()),
        }
        self
    }

    /// Whether the store itself is out (throttled, unreachable): the whole round stops
    /// and is retried, rather than blaming one lead or one alert.
    pub fn is_outage(&self) -> bool {
        matches!(self, StoreError::Unavailable { .. })
    }
}

/// An error and its causes, `error: cause: cause`, for logs and operators; never for
/// a client (a cause may quote stored data).
pub fn with_causes<E: std::error::Error + ?Sized>(error: &E) -> impl std::fmt::Display + '_ {
    WithCauses(error)
}

struct WithCauses<'a, E: ?Sized>(&'a E);

impl<E: std::error::Error + ?Sized> std::fmt::Display for WithCauses<'_, E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)?;
        let mut cause = self.0.source();
        while let Some(error) = cause {
            write!(f, ": {error}")?;
            cause = error.source();
        }
        Ok(())
    }
}

/// One accepted call to store: the event, the identity keys it carries, and attribute
/// updates (raw values under canonical names).
#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    pub event: Event,
    pub keys: Vec<IdentityKey>,
    pub attributes: Vec<(String, String)>,
    pub received_at: DateTime<Utc>,
    /// The id a new lead gets if this call creates one.
    pub new_lead_id: String,
    /// What the call says, in a digest ([`content_digest`]): a later call under the same
    /// message id is a duplicate only when its digest is the same.
    pub digest: String,
    /// How long the store keeps what this call leaves that is no lead's (see
    /// [`Retention`]).
    pub retention: Retention,
}

/// How long what belongs to no lead is kept: events of visitors never linked to a lead
/// (their address, browser and pages), and the message ids kept to recognise retries.
/// A lead's own events are kept with the lead until it is erased.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Retention {
    /// Days an anonymous visitor's events are kept unless a lead links them.
    #[serde(default = "default_anonymous_days")]
    pub anonymous_days: u32,
    /// Days a message id is remembered, so that a retry within them is a duplicate.
    #[serde(default = "default_dedupe_days")]
    pub dedupe_days: u32,
}

fn default_anonymous_days() -> u32 {
    180
}

fn default_dedupe_days() -> u32 {
    30
}

impl Default for Retention {
    fn default() -> Self {
        Retention {
            anonymous_days: default_anonymous_days(),
            dedupe_days: default_dedupe_days(),
        }
    }
}

impl Retention {
    /// When an anonymous visitor's event received at `at` expires.
    pub fn anonymous_until(&self, at: DateTime<Utc>) -> DateTime<Utc> {
        at + chrono::Duration::days(i64::from(self.anonymous_days))
    }

    /// When the message id of a call received at `at` is forgotten.
    pub fn dedupe_until(&self, at: DateTime<Utc>) -> DateTime<Utc> {
        at + chrono::Duration::days(i64::from(self.dedupe_days))
    }
}

/// Whom [`Store::erase`] erases.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EraseSubject {
    /// A lead id (a merged lead's id stands for the lead it merged into).
    Lead(String),
    /// An identity key (the e-mail address, as normalised): the lead its link points at,
    /// one whose erasure stopped part way included, so that erasing by the address again
    /// finishes it. A link left pointing at no lead is removed.
    Key(IdentityKey),
}

/// What [`Store::erase`] removed.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct Erased {
    /// The lead erased (the id asked for may have been one merged into it).
    pub lead_id: String,
    /// Leads removed: the lead and every lead merged into it.
    pub leads: usize,
    /// Events removed, the visitor's anonymous ones included.
    pub events: usize,
    /// Identity links removed (e-mail, user id, anonymous ids).
    pub identities: usize,
    /// Alerts removed from the outbox (delivered or not).
    pub alerts: usize,
    /// Deal outcomes removed.
    pub outcomes: usize,
    /// Every lead id removed (the lead's and its merged leads'), for redacting what was
    /// delivered outside the store.
    pub lead_ids: Vec<String>,
}

/// What [`Store::sweep`] removed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct Swept {
    /// Anonymous visitors' events past their retention.
    pub anonymous_events: usize,
}

/// The digest of what a call says, for telling a retry (same message id, same content)
/// from a reused id (same message id, other content). The time is left out (a retry is
/// sent later, and its time may be corrected by `sentAt` differently), and so is the
/// address the server filled in; `extra` adds what the event does not hold (a form's
/// fields). SHA-256: a sender cannot make other content pass as a duplicate.
pub fn content_digest(event: &Event, extra: &[(&str, &str)]) -> String {
    use sha2::Digest;
    let mut value = serde_json::to_value(event).unwrap_or_default();
    if let serde_json::Value::Object(object) = &mut value {
        object.remove("timestamp");
        object.remove("ip");
    }
    let mut hasher = sha2::Sha256::new();
    hasher.update(value.to_string().as_bytes());
    for (name, text) in extra {
        hasher.update([0u8]);
        hasher.update(name.as_bytes());
        hasher.update([0u8]);
        hasher.update(text.as_bytes());
    }
    hex::encode(hasher.finalize())
}

/// What [`Store::record`] did.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Recorded {
    /// The message id was stored before: nothing changed.
    pub duplicate: bool,
    /// With `duplicate`: the call stored under that message id said something else. Nothing
    /// changed, and `lead_id` is `None` (the caller is not told whose id it reused).
    pub conflicting: bool,
    /// The lead the event belongs to; `None` while the visitor is anonymous.
    pub lead_id: Option<String>,
    /// Leads merged into `lead_id` by this call.
    pub merged: Vec<String>,
    /// Attributes of the call not stored: the lead holds as many as it may
    /// ([`hotlead_core::identity::MAX_ATTRIBUTES`], [`hotlead_core::identity::MAX_ATTRIBUTE_BYTES`]).
    pub dropped_attributes: Vec<String>,
}

impl Recorded {
    /// The answer to a call whose message id was stored before: the earlier call's lead
    /// if the content is the same, else a conflict that names no lead.
    pub fn duplicate_of(
        stored_digest: Option<&str>,
        digest: &str,
        lead_id: Option<String>,
    ) -> Self {
        // Calls stored before digests were kept have none: taken as the same.
        let conflicting = stored_digest.is_some_and(|d| d != digest);
        Recorded {
            duplicate: true,
            conflicting,
            lead_id: if conflicting { None } else { lead_id },
            ..Recorded::default()
        }
    }
}

/// A lead as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredLead {
    pub id: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// Raw attribute values by canonical name.
    pub attributes: BTreeMap<String, String>,
    /// Identity keys pointing at this lead (`email:..`, `user:..`, `anon:..`).
    pub identities: Vec<String>,
    /// The last saved score, with its explanation.
    pub score: Option<Score>,
    /// How many times the lead has entered the hot band.
    pub hot_crossings: u32,
    /// The stage the lead is in, when the rules have stages (or a rep acted).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stage: Option<LeadStage>,
    /// How many history entries the lead has (its own, not its merged leads'): the next
    /// entry is number `history_rev + 1`.
    #[serde(default)]
    pub history_rev: u32,
}

impl StoredLead {
    /// The lead as the scorer sees it: attributes normalised.
    pub fn to_lead(&self) -> Lead {
        Lead::from_raw(
            self.id.clone(),
            self.attributes
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str())),
        )
    }

    pub fn band(&self) -> Option<Band> {
        self.score.as_ref().map(|s| s.band)
    }
}

/// Where a read of a lead's events got to ([`Store::events_since`]); meaningful only to
/// the store that gave it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventsCursor {
    /// The lead whose events were read (a merged lead's id leads to its survivor).
    pub lead_id: String,
    /// Changes to the lead's events other than new ones (moved in or out, deleted)
    /// counted by the store: a different count means the earlier read is stale.
    pub generation: i64,
    /// The newest event the read saw, in the store's insertion order.
    pub position: i64,
}

/// What [`Store::events_since`] read.
#[derive(Debug, Clone, PartialEq)]
pub enum EventsRead {
    /// Every event of the lead, oldest first: what the reader held is replaced.
    All {
        events: Vec<Event>,
        /// For the next read; `None` when the store cannot read only new events.
        cursor: Option<EventsCursor>,
    },
    /// Only the events stored since the cursor given (none of them in the earlier read,
    /// in no particular order); the earlier ones are unchanged.
    Added {
        events: Vec<Event>,
        cursor: EventsCursor,
    },
}

/// A lead waiting to be rescored: `seq` counts the changes seen so far.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dirty {
    pub lead_id: String,
    pub seq: i64,
    /// How many rescores in a row failed (0 unless the lead was set aside).
    pub failures: u32,
}

impl Dirty {
    pub fn new(lead_id: impl Into<String>, seq: i64) -> Self {
        Dirty {
            lead_id: lead_id.into(),
            seq,
            failures: 0,
        }
    }
}

/// A lead whose rescoring failed for a reason of its own (not a store outage): it is
/// left out of rounds until `retry_at`, so that it cannot hold up other leads.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SetAside {
    pub lead_id: String,
    /// The change count the failed rescore saw; a newer change makes the lead due at once.
    pub seq: i64,
    /// Failed rescores in a row.
    pub failures: u32,
    /// The last failure, as the store or scorer reported it.
    pub reason: String,
    /// When the first failure in a row happened.
    pub since: DateTime<Utc>,
    pub retry_at: DateTime<Utc>,
}

/// An alert whose delivery failed for good (the notifier refused it as invalid): it is not
/// retried; operators see it here and in the failed-alerts metric.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FailedAlert {
    pub key: String,
    pub lead_id: String,
    pub attempts: u32,
    pub error: String,
    pub failed_at: DateTime<Utc>,
}

/// An alert waiting in the outbox.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OutboxEntry {
    /// One alert per key: `hot:<lead>:<crossing>` or `instant:<lead>:<alert>:<message>`.
    pub key: String,
    pub created_at: DateTime<Utc>,
    pub message: AlertMessage,
}

/// A pending alert and how often its delivery failed.
#[derive(Debug, Clone, PartialEq)]
pub struct Pending {
    pub entry: OutboxEntry,
    pub attempts: u32,
}

/// A new score to save, with the alerts it raises, written together.
#[derive(Debug, Clone, PartialEq)]
pub struct ScoreUpdate {
    pub lead_id: String,
    /// The change count the score was computed from (see [`Dirty::seq`]).
    pub seen_seq: i64,
    pub score: Score,
    pub hot_crossings: u32,
    pub alerts: Vec<OutboxEntry>,
    /// The band and stage changes the score makes, saved with it.
    pub history: HistoryUpdate,
    /// With a hot alert: its follow-up record (kept if one of that crossing exists).
    pub follow_up: Option<FollowUpRecord>,
}

/// One hot alert's follow-up: when the rep was alerted, by when a first action is due
/// (the rules' `respond_within_hours` in business time), and what happened: the first
/// action, a re-alert after the deadline passed, or closed without one (the lead was no
/// longer hot by then).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FollowUpRecord {
    pub lead_id: String,
    /// The hot crossing the alert was for.
    pub crossing: u32,
    pub territory: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    pub alerted_at: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub due_at: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_action_at: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_action: Option<hotlead_core::stage::RepAction>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub escalated_at: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub closed_at: Option<DateTime<Utc>>,
}

impl FollowUpRecord {
    /// Waiting for a first action, neither re-alerted nor closed.
    pub fn is_open(&self) -> bool {
        self.first_action_at.is_none() && self.escalated_at.is_none() && self.closed_at.is_none()
    }
}

/// What a lead's history held when a change to it was worked out: the change is saved
/// only while the lead still holds it, so that two writers racing cannot both record
/// the same move, nor one record a move from a band or stage the lead has left.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HistoryRead {
    /// The lead's band (`None`: never scored).
    pub band: Option<Band>,
    /// The lead's [`StoredLead::history_rev`].
    pub history_rev: u32,
}

/// The history a score writes: entries numbered from `read.history_rev + 1`, and the new
/// stage. With `read`, the score is saved only while the lead's band is `read.band`,
/// and, when there are entries, its history is still at `read.history_rev`; otherwise
/// the save is a [`StoreError::Conflict`] (the lead is rescored from what is stored).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct HistoryUpdate {
    pub read: Option<HistoryRead>,
    pub entries: Vec<HistoryEntry>,
    pub stage: Option<LeadStage>,
}

/// One entry of a lead's history: a band change, a stage change, or a rep's action.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HistoryEntry {
    pub lead_id: String,
    /// Its number in the lead's history, from 1.
    pub rev: u32,
    pub at: DateTime<Utc>,
    /// Who made it: `rules <name> v<version>` for the rules, or the rep's name.
    pub by: String,
    #[serde(flatten)]
    pub change: Change,
}

/// A rep's action to record: its entries (the action, then the stage it moves the lead
/// to, if any), numbered from `read_rev + 1`, and the lead's new stage.
#[derive(Debug, Clone, PartialEq)]
pub struct ActionRecord {
    pub lead_id: String,
    /// The confirmation's one-time token: the same token twice records once.
    pub token: String,
    /// The lead's [`StoredLead::history_rev`] the action was worked out from.
    pub read_rev: u32,
    pub entries: Vec<HistoryEntry>,
    pub stage: Option<LeadStage>,
    /// The hot crossing whose follow-up this action may be the first action of (the
    /// lead's crossing count; 0: none).
    pub crossing: u32,
}

/// What [`Store::record_action`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ActionOutcome {
    /// Recorded, and the lead is marked for rescoring.
    Recorded,
    /// The token was recorded before: nothing changed.
    Repeated,
}

/// What [`Store::save_score`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SaveOutcome {
    /// Saved, and the lead is clean.
    Saved,
    /// Saved, but events arrived meanwhile: the lead stays marked for rescoring.
    SavedStillDirty,
}

/// Where a ranking page ended: the last lead's score (hundredths) and id, written
/// `"<hundredths>:<lead id>"`. The next page starts after it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RankCursor {
    pub score_hundredths: i64,
    pub lead_id: String,
}

impl RankCursor {
    pub fn parse(text: &str) -> Option<RankCursor> {
        let (score, id) = text.split_once(':')?;
        Some(RankCursor {
            score_hundredths: score.parse().ok()?,
            lead_id: id.to_string(),
        })
    }

    /// The cursor after `lead` (a lead with no score ranks as 0).
    pub fn after(lead: &StoredLead) -> RankCursor {
        let score_hundredths = lead.score.as_ref().map_or(0, |s| s.score.hundredths());
        RankCursor {
            score_hundredths,
            lead_id: lead.id.clone(),
        }
    }

    /// Parses a cursor a store was given; a bad one is the caller's bug, reported as such.
    pub fn given(text: &str) -> Result<RankCursor, StoreError> {
        RankCursor::parse(text)
            .ok_or_else(|| StoreError::corrupt(format!("ranking cursor {text:?}")))
    }
}

impl std::fmt::Display for RankCursor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.score_hundredths, self.lead_id)
    }
}

/// A page of the ranking.
#[derive(Debug, Clone, PartialEq)]
pub struct RankingPage {
    pub leads: Vec<StoredLead>,
    /// Pass back to get the next page; `None` on the last.
    pub next: Option<String>,
}

/// Storage of leads, events, identity links, scores and the alert outbox.
#[async_trait]
pub trait Store: Send + Sync {
    /// Stores one call atomically: ignores a message id seen before; resolves the identity
    /// keys (creating a lead, or merging leads into the oldest, which takes their events,
    /// keys and attributes); links the keys; attaches earlier anonymous events of the
    /// anonymous ids; updates attributes; marks the lead for rescoring.
    async fn record(&self, record: Record) -> Result<Recorded, StoreError>;

    /// A lead by id; a merged lead's id leads to the lead it merged into.
    async fn lead(&self, id: &str) -> Result<Option<StoredLead>, StoreError>;

    /// All events of a lead, oldest first.
    async fn events(&self, lead_id: &str) -> Result<Vec<Event>, StoreError>;

    /// A lead's events for a reader that may hold them from an earlier read: with
    /// `since` (the cursor that read gave) and nothing but new events stored on the lead
    /// since, only those ([`EventsRead::Added`]); otherwise all of them
    /// ([`EventsRead::All`]). A store that cannot tell always answers with all (this
    /// default). Either way, what the reader then holds is what [`Store::events`] gives.
    async fn events_since(
        &self,
        lead_id: &str,
        since: Option<&EventsCursor>,
    ) -> Result<EventsRead, StoreError> {
        let _ = since;
        Ok(EventsRead::All {
            events: self.events(lead_id).await?,
            cursor: None,
        })
    }

    /// A lead (as [`Store::lead`]) and its events (as [`Store::events_since`]), read at
    /// one point in time where the store can (this default reads one, then the other).
    async fn lead_with_events(
        &self,
        id: &str,
        since: Option<&EventsCursor>,
    ) -> Result<Option<(StoredLead, EventsRead)>, StoreError> {
        let Some(lead) = self.lead(id).await? else {
            return Ok(None);
        };
        let events = self.events_since(&lead.id, since).await?;
        Ok(Some((lead, events)))
    }

    /// Leads by score, highest first (ties by id), optionally of one band.
    async fn ranking(
        &self,
        band: Option<Band>,
        limit: usize,
        cursor: Option<&str>,
    ) -> Result<RankingPage, StoreError>;

    /// Leads marked for rescoring, oldest mark first, then set-aside leads whose retry is
    /// due at `now`. A set-aside lead whose retry is not due is left out; a new change to
    /// it makes it due at once.
    async fn dirty(&self, now: DateTime<Utc>, limit: usize) -> Result<Vec<Dirty>, StoreError>;

    /// Sets a lead aside after a failed rescore, unless it changed since `aside.seq` (then
    /// it stays marked and is tried again). Leaves it out of `scored_before` too. A saved
    /// score clears it.
    async fn set_aside(&self, aside: &SetAside) -> Result<(), StoreError>;

    /// Leads set aside and waiting for their retry, at most `limit` (a store may pick
    /// them by retry time), oldest failure first.
    async fn set_aside_leads(&self, limit: usize) -> Result<Vec<SetAside>, StoreError>;

    /// Leads whose last score was computed before `before`, oldest first: rescoring them
    /// lets decay and windows take effect on leads that have gone quiet. Set-aside leads
    /// are left out.
    async fn scored_before(
        &self,
        before: DateTime<Utc>,
        limit: usize,
    ) -> Result<Vec<Dirty>, StoreError>;

    /// Saves a score, its alerts and its history atomically; alerts whose key exists are
    /// ignored. See [`HistoryUpdate`] for when it is a conflict.
    async fn save_score(&self, update: ScoreUpdate) -> Result<SaveOutcome, StoreError>;

    /// A lead's history, the leads merged into it included, oldest first. Empty for a
    /// lead not stored.
    async fn history(&self, lead_id: &str) -> Result<Vec<HistoryEntry>, StoreError>;

    /// Records a rep's action atomically: its entries, the lead's new stage, its token,
    /// and a mark for rescoring. `Repeated` when the token was recorded before;
    /// `Conflict` when the lead's history is no longer at `read_rev` (work it out again);
    /// `NotFound` when the lead is not stored (erased, or merged meanwhile).
    async fn record_action(&self, action: &ActionRecord) -> Result<ActionOutcome, StoreError>;

    /// Puts a notice that concerns no lead (the daily digest) in the outbox, once per key:
    /// `false` when its key is there already. It names no lead, so no erasure touches it.
    async fn add_notice(&self, notice: &OutboxEntry) -> Result<bool, StoreError>;

    /// Follow-ups past their deadline at `now` and still open, oldest deadline first.
    async fn overdue_follow_ups(
        &self,
        now: DateTime<Utc>,
        limit: usize,
    ) -> Result<Vec<FollowUpRecord>, StoreError>;

    /// Ends an open follow-up at `at`, atomically: with `alert`, re-alerted (the alert put
    /// in the outbox unless its key exists); without, closed. `false` when it was not
    /// open any more (a rep acted meanwhile, another scorer ended it) or is not stored.
    async fn end_follow_up(
        &self,
        lead_id: &str,
        crossing: u32,
        at: DateTime<Utc>,
        alert: Option<OutboxEntry>,
    ) -> Result<bool, StoreError>;

    /// Follow-ups of alerts made from `since` to before `until`, oldest first, at most
    /// `limit`.
    async fn follow_ups(
        &self,
        since: DateTime<Utc>,
        until: DateTime<Utc>,
        limit: usize,
    ) -> Result<Vec<FollowUpRecord>, StoreError>;

    /// Alerts not yet delivered (nor failed for good) whose next attempt is due at `now`
    /// and which no deliverer holds a claim on.
    async fn pending_alerts(
        &self,
        now: DateTime<Utc>,
        limit: usize,
    ) -> Result<Vec<Pending>, StoreError>;

    /// Claims a pending alert for delivery until `until`, atomically: `true` for the one
    /// caller that got it; `false` when it is delivered, failed for good, or claimed by
    /// another deliverer whose claim has not expired at `now`.
    async fn claim_alert(
        &self,
        key: &str,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<bool, StoreError>;

    async fn alert_delivered(&self, key: &str, at: DateTime<Utc>) -> Result<(), StoreError>;

    /// Records a failed attempt and releases the claim; the alert stays pending until
    /// `retry_at`.
    async fn alert_failed(
        &self,
        key: &str,
        error: &str,
        retry_at: DateTime<Utc>,
    ) -> Result<(), StoreError>;

    /// Records that the alert can never be delivered as it is: it is not retried again.
    async fn alert_abandoned(
        &self,
        key: &str,
        error: &str,
        at: DateTime<Utc>,
    ) -> Result<(), StoreError>;

    /// Alerts that failed for good, newest first.
    async fn failed_alerts(&self, limit: usize) -> Result<Vec<FailedAlert>, StoreError>;

    /// Erases a person: the lead `who` stands for and every lead merged into it, their
    /// identity links, events (anonymous ones the lead linked included) and the message
    /// ids kept for them, outbox entries with their bodies, deal outcomes, scores and
    /// explanations. `None` when no lead has that id or key (never stored, or erased
    /// before): erasing twice is erasing once. A call arriving meanwhile either lands
    /// before and is erased, or after, as a new lead. An erasure that stopped part way
    /// (the process died, the store failed) is finished by erasing again, by the lead's
    /// id or by its e-mail address.
    async fn erase(
        &self,
        who: &EraseSubject,
        at: DateTime<Utc>,
    ) -> Result<Option<Erased>, StoreError>;

    /// The lead ids an erasure of `who` removes now: the lead's (an erasure under way
    /// included) then those of the leads merged into it; empty when there is none. Read
    /// before erasing, so that what was delivered outside the store can be redacted
    /// whatever happens to the erasure.
    async fn erasable_ids(&self, who: &EraseSubject) -> Result<Vec<String>, StoreError>;

    /// Removes what `retention` says has expired at `now`: anonymous visitors' events no
    /// lead linked. A store that expires items by itself (DynamoDB's TTL on `expires_at`)
    /// removes nothing here.
    async fn sweep(&self, now: DateTime<Utc>, retention: Retention) -> Result<Swept, StoreError>;
}

/// Why a delivery failed. A transient failure (the service is down, throttled) stays
/// pending and is retried with backoff; a permanent one (the service refused the message
/// as invalid) would fail the same way for ever, so the alert is marked failed.
#[derive(Debug, thiserror::Error)]
#[error("delivery failed: {message}")]
pub struct NotifyError {
    pub message: String,
    pub permanent: bool,
}

impl NotifyError {
    pub fn transient(message: impl Into<String>) -> Self {
        NotifyError {
            message: message.into(),
            permanent: false,
        }
    }

    pub fn permanent(message: impl Into<String>) -> Self {
        NotifyError {
            message: message.into(),
            permanent: true,
        }
    }
}

/// Delivers alerts to reps.
#[async_trait]
pub trait Notifier: Send + Sync {
    async fn deliver(&self, alert: &AlertMessage) -> Result<(), NotifyError>;
}

/// A note to analysts: a suggestion waits for review, with its headline figures.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReviewNote {
    pub suggestion_id: String,
    pub subject: String,
    pub body: String,
    pub current_auc: Option<f64>,
    pub suggested_auc: f64,
    pub outcomes: usize,
    pub hot_threshold: i64,
}

/// Counts a client's requests in fixed windows, shared by every copy of the service (the
/// per-client limit of the public routes: [`crate::throttle`]).
#[async_trait]
pub trait RequestCounter: Send + Sync {
    /// Counts `weight` requests of `key` (1, or a batch's calls) in the window ending at
    /// `window_end`, unless that would pass `limit`. Returns whether they were counted
    /// (admitted). The count of a window is forgotten after it ends.
    async fn count(
        &self,
        key: &str,
        window_end: DateTime<Utc>,
        limit: u32,
        weight: u32,
    ) -> Result<bool, StoreError>;
}

/// Tells analysts that a suggestion waits for review.
#[async_trait]
pub trait ReviewNotifier: Send + Sync {
    async fn review_waiting(&self, note: &ReviewNote) -> Result<(), NotifyError>;
}

/// The time.
pub trait Clock: Send + Sync {
    fn now(&self) -> DateTime<Utc>;
}

/// The system clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// New lead ids.
pub trait IdSource: Send + Sync {
    fn new_lead_id(&self) -> String;
}

/// Random lead ids: `L-` and a UUID v4.
#[derive(Debug, Clone, Copy, Default)]
pub struct UuidIds;

impl IdSource for UuidIds {
    fn new_lead_id(&self) -> String {
        format!("L-{}", uuid::Uuid::new_v4().simple())
    }
}

/// A closed deal: the lead, won or lost, when, and for how much.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DealOutcome {
    pub lead_id: String,
    pub won: bool,
    pub closed_at: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub amount: Option<f64>,
    pub received_at: DateTime<Utc>,
}

/// Where a suggestion stands in review.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum SuggestionStatus {
    Pending,
    Approved {
        at: DateTime<Utc>,
        by: String,
        /// The rules version the approval created.
        rules_version: u32,
    },
    Rejected {
        at: DateTime<Utc>,
        by: String,
        reason: String,
    },
}

impl SuggestionStatus {
    pub fn name(&self) -> &'static str {
        match self {
            SuggestionStatus::Pending => "pending",
            SuggestionStatus::Approved { .. } => "approved",
            SuggestionStatus::Rejected { .. } => "rejected",
        }
    }
}

/// A stored suggestion: the learning run's result and its review.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredSuggestion {
    pub id: String,
    pub created_at: DateTime<Utc>,
    pub review: SuggestionStatus,
    pub suggestion: hotlead_learn::Suggestion,
}

/// A suggestion in a list: enough to choose one to open.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SuggestionHead {
    pub id: String,
    pub created_at: DateTime<Utc>,
    pub review: SuggestionStatus,
    pub current_auc: Option<f64>,
    pub suggested_auc: f64,
    pub outcomes: usize,
}

impl From<&StoredSuggestion> for SuggestionHead {
    fn from(s: &StoredSuggestion) -> Self {
        SuggestionHead {
            id: s.id.clone(),
            created_at: s.created_at,
            review: s.review.clone(),
            current_auc: s.suggestion.current.as_ref().map(|c| c.auc),
            suggested_auc: s.suggestion.suggested.auc,
            outcomes: s.suggestion.data.outcomes,
        }
    }
}

/// One version of the rules as stored: numbered 1, 2, ... in the order they were added.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RulesVersion {
    pub version: u32,
    pub name: String,
    pub created_at: DateTime<Utc>,
    /// What made it: `file <path>`, `suggestion <id>`, ...
    pub source: String,
    pub text: String,
    /// When it last became the active version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub activated_at: Option<DateTime<Utc>>,
    pub active: bool,
}

/// A new rules version to store and make active.
#[derive(Debug, Clone, PartialEq)]
pub struct NewRules {
    pub name: String,
    pub source: String,
    /// The rules text; its `version` is set to the number the store gives it.
    pub text: String,
    pub at: DateTime<Utc>,
}

/// Storage for the learning loop: deal outcomes, suggestions under review, and the
/// versioned rules with the active one. The contract tests run against every adapter.
#[async_trait]
pub trait LearningStore: Send + Sync {
    /// The (current, unmerged) lead an identity key points at.
    async fn lead_for(&self, key: &IdentityKey) -> Result<Option<String>, StoreError>;

    /// Stores outcomes; a lead's later outcome replaces its earlier one. An outcome of a
    /// lead no longer stored (erased since it was looked up) is not stored.
    async fn put_outcomes(&self, outcomes: &[DealOutcome]) -> Result<(), StoreError>;

    /// All outcomes, by lead id.
    async fn outcomes(&self) -> Result<Vec<DealOutcome>, StoreError>;

    async fn save_suggestion(&self, suggestion: &StoredSuggestion) -> Result<(), StoreError>;

    /// Suggestions, newest first.
    async fn suggestions(&self, limit: usize) -> Result<Vec<SuggestionHead>, StoreError>;

    async fn suggestion(&self, id: &str) -> Result<Option<StoredSuggestion>, StoreError>;

    /// Approves a pending suggestion and, atomically, adds its rules as the next version
    /// and makes it active. `NotFound` when there is no such suggestion, `Conflict` when
    /// it is not pending.
    async fn approve(
        &self,
        id: &str,
        by: &str,
        rules: NewRules,
    ) -> Result<RulesVersion, StoreError>;

    /// Rejects a pending suggestion with a reason. `NotFound` when there is no such
    /// suggestion, `Conflict` when it is not pending.
    async fn reject(
        &self,
        id: &str,
        by: &str,
        reason: &str,
        at: DateTime<Utc>,
    ) -> Result<(), StoreError>;

    /// Adds rules as the next version and makes it active.
    async fn add_rules(&self, rules: NewRules) -> Result<RulesVersion, StoreError>;

    /// Makes an earlier version active again. `NotFound` when there is no such version.
    async fn activate_rules(
        &self,
        version: u32,
        at: DateTime<Utc>,
    ) -> Result<RulesVersion, StoreError>;

    /// Every version, newest first.
    async fn rules_history(&self) -> Result<Vec<RulesVersion>, StoreError>;

    /// The active version, if any was stored.
    async fn active_rules(&self) -> Result<Option<RulesVersion>, StoreError>;
}

/// Sets the `version` of a rules text to `version`, keeping the rest as written.
pub fn with_version(text: &str, version: u32) -> String {
    let mut lines: Vec<String> = Vec::new();
    let mut replaced = false;
    let mut in_root = true;
    for line in text.lines() {
        let trimmed = line.trim_start();
        if trimmed.starts_with('[') {
            in_root = false;
        }
        if in_root
            && !replaced
            && trimmed.starts_with("version")
            && trimmed[7..].trim_start().starts_with('=')
        {
            lines.push(format!("version = {version}"));
            replaced = true;
        } else {
            lines.push(line.to_string());
        }
    }
    if !replaced {
        lines.insert(0, format!("version = {version}"));
    }
    let mut out = lines.join("\n");
    out.push('\n');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_store_error_keeps_its_cause_out_of_its_message() {
        fn sendable<E: std::error::Error + Send + Sync + 'static>(_: &E) {}
        let cause = std::io::Error::other("disk full at /var/lib/hotlead");
        let error = StoreError::unavailable("reading lead L-1").because(cause);
        sendable(&error);
        assert!(error.is_outage());
        assert_eq!(error.to_string(), "store unavailable: reading lead L-1");
        let source = std::error::Error::source(&error).expect("the cause is kept");
        assert!(source.downcast_ref::<std::io::Error>().is_some());
        assert_eq!(
            with_causes(&error).to_string(),
            "store unavailable: reading lead L-1: disk full at /var/lib/hotlead"
        );
        let missing = StoreError::not_found("rules version", "7");
        assert!(!missing.is_outage());
        assert_eq!(missing.to_string(), "no rules version 7");
        assert!(std::error::Error::source(&missing).is_none());
    }
}
