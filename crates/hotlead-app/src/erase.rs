//! Erasing a person on request (GDPR Art. 17, APPI): everything the store holds of them
//! ([`Store::erase`]), and what was delivered to a local outbox file
//! ([`AlertArchive::redact`]). Alerts already sent by e-mail are the recipients' mail;
//! what the service keeps of them is erased.

use async_trait::async_trait;
use hotlead_core::identity::IdentityKey;
use serde::Serialize;

use crate::ports::{Erased, NotifyError, StoreError};
use crate::review::{Review, ReviewError};

/// Where delivered alerts are kept by the service itself (the local outbox file), so
/// that an erased lead's can be redacted. SNS keeps nothing to redact.
#[async_trait]
pub trait AlertArchive: Send + Sync {
    /// Replaces every delivered alert of these leads by a line that says only that it
    /// was redacted; returns how many. Redacting twice redacts nothing more.
    async fn redact(&self, lead_ids: &[String]) -> Result<usize, NotifyError>;
}

/// Whom to erase.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EraseTarget {
    /// A lead id (a merged lead's id stands for the lead it merged into).
    Id(String),
    /// An e-mail address, as the person gives it.
    Email(String),
}

/// What an erasure removed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Erasure {
    #[serde(flatten)]
    pub erased: Erased,
    /// Delivered alerts redacted in the local outbox file.
    pub alerts_redacted: usize,
}

impl Review {
    /// Erases a person. `Ok(None)` when no lead has that id or address (never stored, or
    /// erased before). Logged with counts and the lead id only.
    pub async fn erase(&self, target: &EraseTarget) -> Result<Option<Erasure>, ReviewError> {
        let id = match target {
            EraseTarget::Id(id) => id.clone(),
            EraseTarget::Email(raw) => {
                let Some(key) = IdentityKey::email(raw) else {
                    return Err(ReviewError::Invalid {
                        field: "email".into(),
                        message: "not an e-mail address".into(),
                    });
                };
                match self.store().lead_for(&key).await? {
                    Some(id) => id,
                    None => return Ok(None),
                }
            }
        };
        let erased = self
            .store()
            .erase(&id, self.now())
            .await
            .map_err(|e| match (target, e) {
                // Asked by address: say which lead to erase again, as the address may no
                // longer lead to it.
                (EraseTarget::Email(_), e) if !matches!(e, StoreError::Rejected { .. }) => {
                    ReviewError::Unavailable(format!(
                        "erasing lead {id} stopped part way ({e}); erase it again by its id"
                    ))
                }
                (_, e) => e.into(),
            })?;
        // The outbox file is redacted after the store: a failure here is reported, and
        // erasing again (the lead is gone by then) still redacts the id asked for.
        let lead_ids = match &erased {
            Some(erased) => erased.lead_ids.clone(),
            None => vec![id.clone()],
        };
        let alerts_redacted = match self.alert_archive() {
            Some(archive) => archive.redact(&lead_ids).await.map_err(|e| {
                ReviewError::Unavailable(format!(
                    "the lead was erased from the store, but redacting delivered alerts failed: {}; erase it again",
                    e.message
                ))
            })?,
            None => 0,
        };
        let Some(erased) = erased else {
            if alerts_redacted > 0 {
                tracing::info!(lead = %id, alerts_redacted, "delivered alerts of an erased lead redacted");
            }
            return Ok(None);
        };
        tracing::info!(
            lead = %erased.lead_id,
            leads = erased.leads,
            events = erased.events,
            identities = erased.identities,
            alerts = erased.alerts,
            outcomes = erased.outcomes,
            alerts_redacted,
            "lead erased"
        );
        Ok(Some(Erasure {
            erased,
            alerts_redacted,
        }))
    }
}
