//! The rep's lead page behind a signed link ([`crate::links`]): checks the link, then
//! reads what the page shows. The page is public (the link is the credential), so it
//! reads only: the lead, its events, and the active rules (their time zone, and their
//! filters to mark bots and internal traffic).

use std::sync::Arc;

use chrono::{DateTime, Utc};
use hotlead_core::{Event, RuleSet};

use crate::links::{LeadLink, LinkError, Links};
use crate::ports::{Clock, StoreError, StoredLead};
use crate::review::Storage;

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
}

/// Opens lead pages.
pub struct LeadPages {
    links: Arc<Links>,
    store: Arc<dyn Storage>,
    clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for LeadPages {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LeadPages").finish_non_exhaustive()
    }
}

impl LeadPages {
    pub fn new(links: Arc<Links>, store: Arc<dyn Storage>, clock: Arc<dyn Clock>) -> Self {
        LeadPages {
            links,
            store,
            clock,
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
        // A page still opens without rules (dates in JST, nothing marked).
        let rules = match self.store.active_rules().await {
            Ok(Some(version)) => RuleSet::from_toml("active rules", &version.text).ok(),
            Ok(None) => None,
            Err(error) => {
                tracing::warn!(error = %crate::ports::with_causes(&error), "the lead page is shown without the active rules");
                None
            }
        };
        Ok(Ok(PageView {
            lead,
            events,
            rules,
            link,
            now,
        }))
    }
}
