//! Erasing a person on request (GDPR Art. 17, APPI): everything the store holds of them
//! ([`Store::erase`]), and what was delivered to a local outbox file
//! ([`AlertArchive::redact`]). Alerts already sent by e-mail are the recipients' mail;
//! what the service keeps of them is erased.

use async_trait::async_trait;
use hotlead_core::identity::IdentityKey;
use serde::Serialize;

use crate::ports::{EraseSubject, Erased, NotifyError};
use crate::review::{Review, ReviewError};

/// Where delivered alerts are kept by the service itself (the local outbox file), so
/// that an erased lead's can be redacted. SNS keeps nothing to redact.
#[async_trait]
pub trait AlertArchive: Send + Sync {
    /// Remembers these leads as to be erased, before the store erases them (so that a
    /// failure at any step afterwards is made good by erasing again): from then on no
    /// alert of theirs is added to the archive.
    async fn remember(&self, lead_ids: &[String]) -> Result<(), NotifyError>;

    /// Remembers these leads as erased, so that no alert of theirs is added to the
    /// archive from then on (by this process or another), and replaces every delivered
    /// alert of every lead it remembers by a line that says only that it was redacted;
    /// returns how many lines. Redacting twice redacts nothing more; redacting after a
    /// failure finishes the work, whatever ids are given.
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
    /// erased before). Logged with counts and the lead id only. Erasing again after a
    /// failure part way finishes the work, asked by the id or by the address.
    pub async fn erase(&self, target: &EraseTarget) -> Result<Option<Erasure>, ReviewError> {
        let (who, asked) = match target {
            EraseTarget::Id(id) => (EraseSubject::Lead(id.clone()), Some(id.clone())),
            EraseTarget::Email(raw) => {
                let Some(key) = IdentityKey::email(raw) else {
                    return Err(ReviewError::Invalid {
                        field: "email".into(),
                        message: "not an e-mail address".into(),
                    });
                };
                (EraseSubject::Key(key), None)
            }
        };
        if let Some(archive) = self.alert_archive() {
            let ids = self.store().erasable_ids(&who).await?;
            archive.remember(&ids).await.map_err(|e| {
                ReviewError::Unavailable(format!(
                    "nothing was erased: the outbox file could not be prepared: {}",
                    e.message
                ))
            })?;
        }
        let erased = self.store().erase(&who, self.now()).await?;
        // The outbox file is redacted after the store. The archive remembers every lead
        // it was asked to redact, so a failure here is made good by erasing again (the
        // store then finds nothing, and the archive redacts what it remembers).
        let lead_ids = match (&erased, asked) {
            (Some(erased), _) => erased.lead_ids.clone(),
            (None, Some(id)) => vec![id],
            (None, None) => Vec::new(),
        };
        let alerts_redacted = match self.alert_archive() {
            Some(archive) => archive.redact(&lead_ids).await.map_err(|e| {
                ReviewError::Unavailable(format!(
                    "the lead was erased from the store, but redacting delivered alerts of {} failed: {}; erase again",
                    lead_ids.join(", "),
                    e.message
                ))
            })?,
            None => 0,
        };
        let Some(erased) = erased else {
            if alerts_redacted > 0 {
                tracing::info!(
                    alerts_redacted,
                    "delivered alerts of an erased lead redacted"
                );
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
