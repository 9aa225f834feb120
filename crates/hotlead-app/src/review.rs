//! The learning loop as a service: outcomes in, suggestions stored for review, approval
//! creating the next rules version, rollback. Used alike by the CLI, the review API and
//! the `learn` function.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use hotlead_core::RuleSet;
use hotlead_core::identity::IdentityKey;
use hotlead_learn::table::RowError;
use hotlead_learn::{CurrentRules, Example, Hooks, LearnOptions, Outcome, Progress};
use serde::Serialize;

use crate::ports::{
    Clock, DealOutcome, LearningStore, NewRules, RulesVersion, Store, StoreError, StoredSuggestion,
    SuggestionStatus,
};

/// Both stores, as one adapter implements them.
pub trait Storage: Store + LearningStore {}

impl<T: Store + LearningStore> Storage for T {}

/// Why a review operation failed.
#[derive(Debug, thiserror::Error)]
pub enum ReviewError {
    #[error("{field}: {message}")]
    Invalid { field: String, message: String },
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    Learn(String),
    /// Something beside the store (the local outbox file) failed; retry later.
    #[error("{0}")]
    Unavailable(String),
    #[error(transparent)]
    Store(StoreError),
}

impl From<StoreError> for ReviewError {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::NotFound { .. } => ReviewError::NotFound(error.to_string()),
            StoreError::Conflict { message, .. } => ReviewError::Conflict(message),
            other => ReviewError::Store(other),
        }
    }
}

fn invalid(field: &str, message: impl Into<String>) -> ReviewError {
    ReviewError::Invalid {
        field: field.into(),
        message: message.into(),
    }
}

/// One outcome as a CRM sends it, before checking.
#[derive(Debug, Clone, Default, PartialEq, serde::Deserialize, schemars::JsonSchema)]
pub struct OutcomeInput {
    #[serde(default)]
    pub lead_id: Option<String>,
    #[serde(default)]
    pub email: Option<String>,
    /// `won` or `lost` (also `closed-won`, `受注`, `失注`, ...).
    #[serde(default)]
    pub outcome: Option<String>,
    /// `2026-03-31` or RFC 3339.
    #[serde(default)]
    pub closed_at: Option<String>,
    /// A number, or text like `1,200,000`.
    #[serde(default, deserialize_with = "text_or_number")]
    pub amount: Option<String>,
}

fn text_or_number<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    let value: Option<serde_json::Value> = serde::Deserialize::deserialize(d)?;
    Ok(match value {
        None | Some(serde_json::Value::Null) => None,
        Some(serde_json::Value::String(s)) => Some(s),
        Some(other) => Some(other.to_string()),
    })
}

/// What an import did: how many outcomes were stored, and each rejected row with its line
/// (a file line, or the position in a JSON list counting from 1) and field.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ImportReport {
    pub stored: usize,
    pub won: usize,
    pub lost: usize,
    pub rejected: Vec<RowError>,
    /// How many of `rejected` name a lead (by id or e-mail) that does not exist, rather
    /// than being malformed.
    #[serde(skip)]
    pub unknown_leads: usize,
}

/// An outcome row and its line in the file (or its position in a list, from 1).
pub type NumberedOutcome = (u64, OutcomeInput);

/// Reads `won`/`lost` in the words CRMs use.
pub fn parse_won(text: &str) -> Option<bool> {
    let t = text.trim().to_lowercase().replace(['_', ' '], "-");
    match t.as_str() {
        "won" | "win" | "closed-won" | "yes" | "true" | "1" | "受注" | "成約" => Some(true),
        "lost" | "lose" | "closed-lost" | "no" | "false" | "0" | "失注" | "不成約" => {
            Some(false)
        }
        _ => None,
    }
}

/// Outcome rows from a CSV export: columns `lead_id` or `email`, `outcome`, `closed_at`,
/// optional `amount` (any delimiter; see [`hotlead_learn::table`]).
pub fn outcome_rows(
    text: &str,
    delimiter: Option<u8>,
) -> Result<(Vec<NumberedOutcome>, Vec<RowError>), String> {
    let table = hotlead_learn::table::read_table(text, delimiter).map_err(|e| e.to_string())?;
    let column = |names: &[&str]| {
        names.iter().find_map(|n| {
            table
                .headers
                .iter()
                .position(|h| hotlead_core::lead::attribute_name(h) == *n)
        })
    };
    let lead = column(&["lead_id", "id"]);
    let email = column(&["email", "e_mail", "mail"]);
    let outcome = column(&["outcome", "result", "stage", "status"]);
    let closed = column(&["closed_at", "closed_date", "close_date", "closed"]);
    let amount = column(&["amount", "value", "deal_amount"]);
    if lead.is_none() && email.is_none() {
        return Err("line 1: the header row needs a `lead_id` or an `email` column".into());
    }
    if outcome.is_none() {
        return Err(
            "line 1: field `outcome`: the header row needs an `outcome` column (won or lost)"
                .into(),
        );
    }
    if closed.is_none() {
        return Err("line 1: field `closed_at`: the header row needs a `closed_at` column".into());
    }
    let get =
        |row: &hotlead_learn::table::Row, c: Option<usize>| c.and_then(|c| row.values[c].clone());
    let rows = table
        .rows
        .iter()
        .map(|row| {
            (
                row.line,
                OutcomeInput {
                    lead_id: get(row, lead),
                    email: get(row, email),
                    outcome: get(row, outcome),
                    closed_at: get(row, closed),
                    amount: get(row, amount),
                },
            )
        })
        .collect();
    Ok((rows, table.rejected))
}

/// A suggestion id that sorts by time: `s-<YYYYmmdd-HHMMSS>-<6 random hex digits>`.
pub fn new_suggestion_id(now: DateTime<Utc>) -> String {
    format!(
        "s-{}-{}",
        now.format("%Y%m%d-%H%M%S"),
        &uuid::Uuid::new_v4().simple().to_string()[..6]
    )
}

/// The learning loop's operations.
#[derive(Clone)]
pub struct Review {
    store: Arc<dyn Storage>,
    clock: Arc<dyn Clock>,
    archive: Option<Arc<dyn crate::erase::AlertArchive>>,
}

impl std::fmt::Debug for Review {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Review").finish_non_exhaustive()
    }
}

/// What a learning run stored.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "result", rename_all = "snake_case")]
pub enum LearnRun {
    ColdStart(hotlead_learn::ColdStart),
    Suggested(Box<StoredSuggestion>),
}

impl Review {
    pub fn new(store: Arc<dyn Storage>, clock: Arc<dyn Clock>) -> Self {
        Review {
            store,
            clock,
            archive: None,
        }
    }

    /// Where delivered alerts are kept, redacted when a lead is erased.
    pub fn with_alert_archive(mut self, archive: Arc<dyn crate::erase::AlertArchive>) -> Self {
        self.archive = Some(archive);
        self
    }

    pub(crate) fn alert_archive(&self) -> Option<&Arc<dyn crate::erase::AlertArchive>> {
        self.archive.as_ref()
    }

    /// The time, from the service's clock.
    pub fn now(&self) -> chrono::DateTime<chrono::Utc> {
        self.clock.now()
    }

    pub fn store(&self) -> &Arc<dyn Storage> {
        &self.store
    }

    /// Checks and stores outcomes; bad rows are reported and skipped, good rows kept.
    pub async fn import_outcomes(
        &self,
        rows: Vec<NumberedOutcome>,
    ) -> Result<ImportReport, ReviewError> {
        self.import_outcomes_with_progress(rows, &mut |_| {}).await
    }

    /// [`Review::import_outcomes`], telling `progress` every 500 rows.
    pub async fn import_outcomes_with_progress(
        &self,
        rows: Vec<NumberedOutcome>,
        progress: &mut (dyn FnMut(Progress) + Send),
    ) -> Result<ImportReport, ReviewError> {
        let now = self.clock.now();
        let mut report = ImportReport::default();
        let mut good = Vec::new();
        let total = rows.len();
        for (done, (line, row)) in rows.into_iter().enumerate() {
            if (done + 1) % 500 == 0 || done + 1 == total {
                progress(Progress {
                    stage: "checking outcomes",
                    done: done + 1,
                    total,
                });
            }
            match self.check_outcome(&row, now).await {
                Ok(outcome) => good.push(outcome),
                Err(ReviewError::Invalid { field, message }) => report.rejected.push(RowError {
                    line,
                    field: Some(field),
                    message,
                }),
                Err(ReviewError::NotFound(field)) => {
                    report.unknown_leads += 1;
                    let message = if field == "email" {
                        "no lead has this e-mail address"
                    } else {
                        "no lead has this id"
                    };
                    report.rejected.push(RowError {
                        line,
                        field: Some(field),
                        message: message.into(),
                    });
                }
                Err(other) => return Err(other),
            }
        }
        for chunk in good.chunks(500) {
            self.store.put_outcomes(chunk).await?;
        }
        report.stored = good.len();
        report.won = good.iter().filter(|o| o.won).count();
        report.lost = report.stored - report.won;
        Ok(report)
    }

    /// Checks one outcome; a well-formed outcome whose lead does not exist is
    /// `NotFound` with the field that named it (`lead_id` or `email`).
    async fn check_outcome(
        &self,
        row: &OutcomeInput,
        now: DateTime<Utc>,
    ) -> Result<DealOutcome, ReviewError> {
        let won = match row.outcome.as_deref() {
            None => return Err(invalid("outcome", "is missing; expected won or lost")),
            Some(text) => parse_won(text)
                .ok_or_else(|| invalid("outcome", format!("expected won or lost, got {text:?}")))?,
        };
        let closed_at = match row.closed_at.as_deref() {
            None => {
                return Err(invalid(
                    "closed_at",
                    "is missing; expected a date like 2026-03-31",
                ));
            }
            Some(text) => hotlead_learn::dataset::parse_date(text).ok_or_else(|| {
                invalid(
                    "closed_at",
                    format!("expected a date like 2026-03-31, got {text:?}"),
                )
            })?,
        };
        if closed_at > now + chrono::Duration::days(1) {
            return Err(invalid("closed_at", "is in the future"));
        }
        let amount = match row
            .amount
            .as_deref()
            .map(str::trim)
            .filter(|a| !a.is_empty())
        {
            None => None,
            Some(text) => {
                let value: f64 = text
                    .replace([',', '¥', '$', '€'], "")
                    .trim()
                    .parse()
                    .map_err(|_| invalid("amount", format!("expected a number, got {text:?}")))?;
                if !value.is_finite() || value < 0.0 {
                    return Err(invalid("amount", "expected a number of 0 or more"));
                }
                Some(value)
            }
        };
        let lead_id = match (
            row.lead_id
                .as_deref()
                .map(str::trim)
                .filter(|v| !v.is_empty()),
            row.email.as_deref(),
        ) {
            (Some(id), _) => self
                .store
                .lead(id)
                .await?
                .map(|l| l.id)
                .ok_or_else(|| ReviewError::NotFound("lead_id".into()))?,
            (None, Some(email)) => {
                let key = IdentityKey::email(email)
                    .ok_or_else(|| invalid("email", "is not an e-mail address"))?;
                self.store
                    .lead_for(&key)
                    .await?
                    .ok_or_else(|| ReviewError::NotFound("email".into()))?
            }
            (None, None) => return Err(invalid("lead_id", "a lead_id or an email is needed")),
        };
        Ok(DealOutcome {
            lead_id,
            won,
            closed_at,
            amount,
            received_at: now,
        })
    }

    /// The labelled leads: each outcome's lead with its events, as of its close date.
    /// Leads are read a few dozen at a time, concurrently.
    pub async fn examples(&self) -> Result<Vec<Example>, ReviewError> {
        const IN_FLIGHT: usize = 32;
        let outcomes = self.store.outcomes().await?;
        let mut examples = Vec::with_capacity(outcomes.len());
        for (chunk_index, chunk) in outcomes.chunks(IN_FLIGHT).enumerate() {
            let mut reads = tokio::task::JoinSet::new();
            for (i, outcome) in chunk.iter().cloned().enumerate() {
                let store = self.store.clone();
                let line = (chunk_index * IN_FLIGHT + i) as u64 + 1;
                reads.spawn(async move {
                    let Some(lead) = store.lead(&outcome.lead_id).await? else {
                        return Ok::<_, StoreError>(None);
                    };
                    let events = store.events(&lead.id).await?;
                    Ok(Some(Example {
                        id: lead.id.clone(),
                        line,
                        lead: lead.to_lead(),
                        events,
                        won: outcome.won,
                        decided_at: outcome.closed_at,
                        created_at: Some(lead.created_at),
                    }))
                });
            }
            let mut read = Vec::with_capacity(chunk.len());
            while let Some(result) = reads.join_next().await {
                let example =
                    result.map_err(|e| StoreError::unavailable("reading leads").because(e))??;
                read.extend(example);
            }
            read.sort_by_key(|e| e.line);
            examples.extend(read);
        }
        Ok(examples)
    }

    /// The active rules (text and compiled), if any version is stored.
    pub async fn active(&self) -> Result<Option<(RulesVersion, RuleSet)>, ReviewError> {
        match self.store.active_rules().await? {
            None => Ok(None),
            Some(version) => {
                let rules = RuleSet::from_toml(
                    &format!("rules version {}", version.version),
                    &version.text,
                )
                .map_err(|e| ReviewError::Learn(format!("the active rules do not compile: {e}")))?;
                Ok(Some((version, rules)))
            }
        }
    }

    /// Learns from the stored outcomes against the active rules and stores a pending
    /// suggestion (or reports a cold start).
    pub async fn learn(
        &self,
        id: String,
        options: &LearnOptions,
        progress: &mut dyn FnMut(Progress),
        seconds: &dyn Fn() -> f64,
    ) -> Result<LearnRun, ReviewError> {
        let examples = self.examples().await?;
        let active = self.active().await?;
        let current = active.as_ref().map(|(v, r)| CurrentRules {
            text: &v.text,
            rules: r,
        });
        let mut hooks = Hooks { progress, seconds };
        let outcome = hotlead_learn::learn(&examples, current, options, &mut hooks)
            .map_err(|e| ReviewError::Learn(e.to_string()))?;
        match outcome {
            Outcome::ColdStart(cold) => Ok(LearnRun::ColdStart(cold)),
            Outcome::Suggested(suggestion) => {
                let stored = StoredSuggestion {
                    id,
                    created_at: self.clock.now(),
                    review: SuggestionStatus::Pending,
                    suggestion: *suggestion,
                };
                self.store.save_suggestion(&stored).await?;
                Ok(LearnRun::Suggested(Box::new(stored)))
            }
        }
    }

    pub async fn suggestion(&self, id: &str) -> Result<StoredSuggestion, ReviewError> {
        self.store
            .suggestion(id)
            .await?
            .ok_or_else(|| ReviewError::NotFound(format!("no suggestion {id}")))
    }

    /// Approves a pending suggestion: its rules become the next version, active now.
    pub async fn approve(&self, id: &str, by: &str) -> Result<RulesVersion, ReviewError> {
        let stored = self.suggestion(id).await?;
        if stored.review != SuggestionStatus::Pending {
            return Err(ReviewError::Conflict(format!(
                "suggestion {id} is already {}",
                stored.review.name()
            )));
        }
        let rules = RuleSet::from_toml("suggested rules", &stored.suggestion.rules_toml)
            .map_err(|e| ReviewError::Learn(format!("the suggested rules do not compile: {e}")))?;
        Ok(self
            .store
            .approve(
                id,
                by,
                NewRules {
                    name: rules.name.clone(),
                    source: format!("suggestion {id}"),
                    text: stored.suggestion.rules_toml.clone(),
                    at: self.clock.now(),
                },
            )
            .await?)
    }

    pub async fn reject(&self, id: &str, by: &str, reason: &str) -> Result<(), ReviewError> {
        if reason.trim().is_empty() {
            return Err(invalid("reason", "say why the suggestion is rejected"));
        }
        self.suggestion(id).await?;
        Ok(self
            .store
            .reject(id, by, reason.trim(), self.clock.now())
            .await?)
    }

    pub async fn rollback(&self, version: u32) -> Result<RulesVersion, ReviewError> {
        Ok(self.store.activate_rules(version, self.clock.now()).await?)
    }

    /// Makes `text` the active rules unless it already is (comparing everything but the
    /// version line); returns the active version.
    pub async fn install(&self, text: &str, source: &str) -> Result<RulesVersion, ReviewError> {
        let rules =
            RuleSet::from_toml(source, text).map_err(|e| invalid("rules", e.to_string()))?;
        if let Some(active) = self.store.active_rules().await?
            && same_rules(&active.text, text)
        {
            return Ok(active);
        }
        Ok(self
            .store
            .add_rules(NewRules {
                name: rules.name,
                source: source.to_string(),
                text: text.to_string(),
                at: self.clock.now(),
            })
            .await?)
    }
}

/// The analysts' note for a stored suggestion; `review_url` is where the review API is,
/// `page_url` the suggestion's signed read-only page.
pub fn review_note(
    stored: &StoredSuggestion,
    review_url: Option<&str>,
    page_url: Option<&str>,
) -> crate::ports::ReviewNote {
    let s = &stored.suggestion;
    let current = s.current.as_ref().map(|c| c.auc);
    let mut body = format!(
        "A suggestion of new rule weights waits for review: {}.\n\n{}\n\nLearned from {} closed deals ({} won, {} lost), evaluated on {} held out.\nHold-out AUC: {} current, {:.3} suggested. Top-decile lift: {:.2}.\nSuggested hot threshold: {} ({}).\n",
        stored.id,
        hotlead_learn::report::diff_lines(s).join("\n"),
        s.data.outcomes,
        s.data.won,
        s.data.lost,
        s.data.holdout,
        current.map_or("no".to_string(), |a| format!("{a:.3}")),
        s.suggested.auc,
        s.suggested.top_decile_lift,
        s.thresholds.hot,
        s.thresholds.reason,
    );
    if let Some(page) = page_url {
        body.push_str(&format!(
            "\nOpen it (figures, points side by side, charts; read-only): {page}\n"
        ));
    }
    if let Some(url) = review_url {
        let url = url.trim_end_matches('/');
        body.push_str(&format!(
            "\nReport: {url}/v1/suggestions/{0}/report\nApprove: POST {url}/v1/suggestions/{0}/approve\nReject: POST {url}/v1/suggestions/{0}/reject with a reason\n",
            stored.id
        ));
    } else {
        body.push_str(&format!(
            "\nReview it with: hotlead suggestions show {0} --report report.html; then approve or reject it.\n",
            stored.id
        ));
    }
    crate::ports::ReviewNote {
        suggestion_id: stored.id.clone(),
        subject: format!(
            "hotlead: new rule weights to review (AUC {} -> {:.3})",
            current.map_or("-".to_string(), |a| format!("{a:.3}")),
            s.suggested.auc
        ),
        body,
        current_auc: current,
        suggested_auc: s.suggested.auc,
        outcomes: s.data.outcomes,
        hot_threshold: s.thresholds.hot,
    }
}

fn same_rules(a: &str, b: &str) -> bool {
    crate::ports::with_version(a, 0) == crate::ports::with_version(b, 0)
}
