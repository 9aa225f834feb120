//! The rep's lead page behind a signed link ([`crate::links`]): checks the link, then
//! reads what the page shows. The page is public (the link is the credential), so it
//! reads only: the lead, its events, and the active rules (their time zone, and their
//! filters to mark bots and internal traffic).

use std::sync::Arc;

use chrono::{DateTime, Utc};
use hotlead_core::alert::Routing;
use hotlead_core::stage::{Change, LeadStage, RepAction, Stages};
use hotlead_core::{Event, RuleSet};

use crate::config::Config;
use crate::links::{LeadLink, LinkError, Links};
use crate::ports::{ActionOutcome, ActionRecord, Clock, HistoryEntry, StoreError, StoredLead};
use crate::review::Storage;

/// Longest name a rep may sign an action with, in characters.
pub const MAX_BY_CHARS: usize = 100;
/// How many times an action is worked out again when the lead changed meanwhile.
const ACTION_ATTEMPTS: usize = 4;

/// Why a link opens no lead. The page says which, and shows nothing of the lead.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PageRefusal {
    /// Altered, incomplete, or signed with another secret.
    Invalid,
    Expired,
    /// The lead is no longer stored (erased).
    Gone,
}

/// What an opened link shows.
#[derive(Debug)]
pub struct PageView {
    pub lead: StoredLead,
    /// The lead's events, oldest first.
    pub events: Vec<Event>,
    /// The active rules, when there are any that compile.
    pub rules: Option<RuleSet>,
    pub link: LeadLink,
    pub now: DateTime<Utc>,
    /// Band and stage changes and reps' actions, oldest first.
    pub history: Vec<HistoryEntry>,
    /// Whose lead it is, as the company routes it.
    pub routing: Routing,
}

impl PageView {
    /// The stages of the active rules (none without rules).
    pub fn stages(&self) -> Stages {
        self.rules
            .as_ref()
            .map(|r| r.stages.clone())
            .unwrap_or_default()
    }
}

/// Why an action was not recorded, though the link is good.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ActionRefusal {
    /// The link does not open the lead.
    Page(PageRefusal),
    /// The request itself is wrong (no name, a reason not in the list): what to fix.
    Invalid(String),
}

/// A rep's action as the confirmation sends it.
#[derive(Debug, Clone)]
pub struct ActionRequest<'a> {
    pub action: RepAction,
    /// One of the rules' reject reasons (rejecting only).
    pub reason: Option<&'a str>,
    /// The rep's name, as they confirm it.
    pub by: &'a str,
    /// The confirmation's one-time token.
    pub token: &'a str,
}

/// What a recorded action did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Acted {
    pub lead_id: String,
    /// The token was recorded before (a second click): nothing changed.
    pub repeated: bool,
    /// The stage the action moved the lead to.
    pub stage: Option<String>,
}

/// A one-time token for a confirmation form: 32 hex digits.
pub fn new_token() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

fn is_token(text: &str) -> bool {
    (16..=64).contains(&text.len()) && text.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
}

/// Opens lead pages.
pub struct LeadPages {
    links: Arc<Links>,
    store: Arc<dyn Storage>,
    clock: Arc<dyn Clock>,
    config: Arc<Config>,
}

impl std::fmt::Debug for LeadPages {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LeadPages").finish_non_exhaustive()
    }
}

impl LeadPages {
    pub fn new(
        links: Arc<Links>,
        store: Arc<dyn Storage>,
        clock: Arc<dyn Clock>,
        config: Config,
    ) -> Self {
        LeadPages {
            links,
            store,
            clock,
            config: Arc::new(config),
        }
    }

    /// The links this server signs (alerts end with them).
    pub fn links(&self) -> &Arc<Links> {
        &self.links
    }

    /// Opens the page of `lead_id` for a link's query (`e`, `l`, `s`): the view, or why
    /// not. A store failure is an error (the caller answers 503).
    pub async fn open(
        &self,
        lead_id: &str,
        expires: Option<&str>,
        language: Option<&str>,
        signature: Option<&str>,
    ) -> Result<Result<PageView, PageRefusal>, StoreError> {
        let now = self.clock.now();
        let link = match self.links.check(lead_id, expires, language, signature, now) {
            Ok(link) => link,
            Err(LinkError::Expired) => return Ok(Err(PageRefusal::Expired)),
            Err(LinkError::Invalid) => return Ok(Err(PageRefusal::Invalid)),
        };
        let Some(lead) = self.store.lead(&link.lead_id).await? else {
            return Ok(Err(PageRefusal::Gone));
        };
        let events = self.store.events(&lead.id).await?;
        let history = self.store.history(&lead.id).await?;
        let rules = self.rules().await;
        let routing = self.config.routing_for(&lead.to_lead());
        Ok(Ok(PageView {
            lead,
            events,
            rules,
            link,
            now,
            history,
            routing,
        }))
    }

    /// The active rules. A page still opens without them (dates in JST, nothing
    /// marked, no stages).
    async fn rules(&self) -> Option<RuleSet> {
        match self.store.active_rules().await {
            Ok(Some(version)) => RuleSet::from_toml("active rules", &version.text).ok(),
            Ok(None) => None,
            Err(error) => {
                tracing::warn!(error = %crate::ports::with_causes(&error), "the lead page is shown without the active rules");
                None
            }
        }
    }

    /// Records a rep's action from a confirmation: the link must open the lead; the
    /// name is required; a reject needs one of the active rules' reasons. The action
    /// and the stage it enters (the active rules say which) are stored with the time and
    /// the name; the same token twice records once.
    pub async fn act(
        &self,
        lead_id: &str,
        link: (Option<&str>, Option<&str>, Option<&str>),
        request: &ActionRequest<'_>,
    ) -> Result<Result<Acted, ActionRefusal>, StoreError> {
        let now = self.clock.now();
        let (expires, language, signature) = link;
        if let Err(error) = self.links.check(lead_id, expires, language, signature, now) {
            return Ok(Err(ActionRefusal::Page(match error {
                LinkError::Expired => PageRefusal::Expired,
                LinkError::Invalid => PageRefusal::Invalid,
            })));
        }
        let by = hotlead_core::alert::one_line(request.by, MAX_BY_CHARS + 1);
        if by.is_empty() || by.chars().count() > MAX_BY_CHARS {
            return Ok(Err(ActionRefusal::Invalid(format!(
                "give your name (1 to {MAX_BY_CHARS} characters)"
            ))));
        }
        if !is_token(request.token) {
            return Ok(Err(ActionRefusal::Invalid(
                "the confirmation is incomplete; open the lead page and try again".into(),
            )));
        }
        let stages = self.rules().await.map(|r| r.stages).unwrap_or_default();
        let reason = match request.action {
            RepAction::Reject => match request.reason {
                Some(reason) if stages.reject_reasons.iter().any(|r| r == reason) => {
                    Some(reason.to_string())
                }
                _ => {
                    return Ok(Err(ActionRefusal::Invalid(
                        "pick one of the listed reasons to reject".into(),
                    )));
                }
            },
            _ => None,
        };
        for _ in 0..ACTION_ATTEMPTS {
            let Some(lead) = self.store.lead(lead_id).await? else {
                return Ok(Err(ActionRefusal::Page(PageRefusal::Gone)));
            };
            let record = action_record(&lead, &stages, request, reason.clone(), &by, now);
            let stage = record.stage.as_ref().map(|s| s.id.clone());
            match self.store.record_action(&record).await {
                Ok(outcome) => {
                    tracing::info!(lead = %lead.id, action = %request.action, "a rep's action is recorded");
                    return Ok(Ok(Acted {
                        lead_id: lead.id,
                        repeated: outcome == ActionOutcome::Repeated,
                        stage,
                    }));
                }
                // Changed meanwhile, or merged into another lead: read it again (a lead
                // erased meanwhile reads as gone).
                Err(StoreError::Conflict { .. } | StoreError::NotFound { .. }) => continue,
                Err(error) => return Err(error),
            }
        }
        Err(StoreError::conflict(format!(
            "lead {lead_id} kept changing while an action was recorded"
        )))
    }
}

/// The entries and stage a rep's action on `lead` makes.
fn action_record(
    lead: &StoredLead,
    stages: &Stages,
    request: &ActionRequest<'_>,
    reason: Option<String>,
    by: &str,
    now: DateTime<Utc>,
) -> ActionRecord {
    let mut entries = vec![HistoryEntry {
        lead_id: lead.id.clone(),
        rev: lead.history_rev + 1,
        at: now,
        by: by.to_string(),
        change: Change::Action {
            action: request.action,
            reason,
        },
    }];
    let current = lead.stage.as_ref().map(|s| s.id.as_str());
    let stage = stages
        .entered_by(request.action)
        .filter(|next| current != Some(next.id.as_str()))
        .map(|next| {
            entries.push(HistoryEntry {
                lead_id: lead.id.clone(),
                rev: lead.history_rev + 2,
                at: now,
                by: by.to_string(),
                change: Change::Stage {
                    from: current.map(str::to_string),
                    to: next.id.clone(),
                },
            });
            LeadStage {
                id: next.id.clone(),
                since: now,
                by_rep: true,
            }
        });
    ActionRecord {
        lead_id: lead.id.clone(),
        token: request.token.to_string(),
        read_rev: lead.history_rev,
        entries,
        stage,
        crossing: lead.hot_crossings,
    }
}

/// What the ranking page shows: hot, then warm leads by score.
#[derive(Debug)]
pub struct RankingView {
    pub hot: crate::ports::RankingPage,
    pub warm: crate::ports::RankingPage,
    pub now: DateTime<Utc>,
}

/// Leads per band on the ranking page.
pub const RANKING_LEADS: usize = 200;

impl LeadPages {
    /// The ranking of hot and warm leads, at most [`RANKING_LEADS`] of each.
    pub async fn ranking(&self) -> Result<RankingView, StoreError> {
        use hotlead_core::Band;
        Ok(RankingView {
            hot: self
                .store
                .ranking(Some(Band::Hot), RANKING_LEADS, None)
                .await?,
            warm: self
                .store
                .ranking(Some(Band::Warm), RANKING_LEADS, None)
                .await?,
            now: self.clock.now(),
        })
    }

    /// Opens the ranking page for its link's query (`e`, `s`).
    pub async fn open_ranking(
        &self,
        expires: Option<&str>,
        signature: Option<&str>,
    ) -> Result<Result<RankingView, PageRefusal>, StoreError> {
        match self
            .links
            .check_ranking(expires, signature, self.clock.now())
        {
            Err(LinkError::Expired) => Ok(Err(PageRefusal::Expired)),
            Err(LinkError::Invalid) => Ok(Err(PageRefusal::Invalid)),
            Ok(()) => Ok(Ok(self.ranking().await?)),
        }
    }

    /// Opens a suggestion's read-only page for its link's query (`e`, `s`).
    pub async fn open_suggestion(
        &self,
        id: &str,
        expires: Option<&str>,
        signature: Option<&str>,
    ) -> Result<Result<crate::ports::StoredSuggestion, PageRefusal>, StoreError> {
        match self
            .links
            .check_suggestion(id, expires, signature, self.clock.now())
        {
            Err(LinkError::Expired) => return Ok(Err(PageRefusal::Expired)),
            Err(LinkError::Invalid) => return Ok(Err(PageRefusal::Invalid)),
            Ok(()) => {}
        }
        Ok(self.store.suggestion(id).await?.ok_or(PageRefusal::Gone))
    }

    /// Whose lead it is and the stages, for a confirmation page.
    pub fn config(&self) -> &Config {
        &self.config
    }
}
