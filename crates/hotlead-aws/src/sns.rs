//! The [`Notifier`] port on SNS: each alert is published to the reps' topic with message
//! attributes (`territory`, `owner`, `product`, `band`, `reason`) that subscription
//! filter policies route on; e-mail subscribers get the subject and readable body, other
//! protocols a JSON document.

use async_trait::async_trait;
use aws_sdk_sns::Client;
use aws_sdk_sns::types::MessageAttributeValue;
use hotlead_app::{Notifier, NotifyError};
use hotlead_core::alert::AlertMessage;
use serde_json::json;

/// Publishes alerts to one topic.
#[derive(Debug, Clone)]
pub struct SnsNotifier {
    client: Client,
    topic_arn: String,
}

impl SnsNotifier {
    pub fn new(client: Client, topic_arn: impl Into<String>) -> Self {
        SnsNotifier {
            client,
            topic_arn: topic_arn.into(),
        }
    }
}

fn attribute(value: &str) -> Result<MessageAttributeValue, NotifyError> {
    MessageAttributeValue::builder()
        .data_type("String")
        .string_value(value)
        .build()
        .map_err(|e| NotifyError(e.to_string()))
}

/// SNS subjects: at most 100 characters, no line breaks.
fn subject(text: &str) -> String {
    text.replace(['\r', '\n'], " ").chars().take(100).collect()
}

#[async_trait]
impl Notifier for SnsNotifier {
    async fn deliver(&self, alert: &AlertMessage) -> Result<(), NotifyError> {
        let document = json!({
            "lead_id": alert.lead_id, "reason": alert.reason, "subject": alert.subject, "body": alert.body,
            "score": alert.score, "band": alert.band, "grade": alert.grade,
            "territory": alert.routing.territory, "owner": alert.routing.owner, "product": alert.routing.product,
            "lead_url": alert.lead_url,
        });
        let message = json!({"default": document.to_string(), "email": alert.body, "sqs": document.to_string()}).to_string();
        let mut request = self
            .client
            .publish()
            .topic_arn(&self.topic_arn)
            .subject(subject(&alert.subject))
            .message(message)
            .message_structure("json")
            .message_attributes("territory", attribute(&alert.routing.territory)?)
            .message_attributes("band", attribute(&alert.band)?)
            .message_attributes(
                "reason",
                attribute(alert.reason.split(':').next().unwrap_or("hot"))?,
            );
        if let Some(owner) = &alert.routing.owner {
            request = request.message_attributes("owner", attribute(owner)?);
        }
        if let Some(product) = &alert.routing.product {
            request = request.message_attributes("product", attribute(product)?);
        }
        request
            .send()
            .await
            .map_err(|e| NotifyError(aws_sdk_sns::error::DisplayErrorContext(e).to_string()))?;
        Ok(())
    }
}

/// Publishes review notes to the analysts' topic.
#[derive(Debug, Clone)]
pub struct SnsReviewNotifier {
    client: Client,
    topic_arn: String,
}

impl SnsReviewNotifier {
    pub fn new(client: Client, topic_arn: impl Into<String>) -> Self {
        SnsReviewNotifier {
            client,
            topic_arn: topic_arn.into(),
        }
    }
}

#[async_trait]
impl hotlead_app::ports::ReviewNotifier for SnsReviewNotifier {
    async fn review_waiting(
        &self,
        note: &hotlead_app::ports::ReviewNote,
    ) -> Result<(), NotifyError> {
        let document = serde_json::to_string(note).map_err(|e| NotifyError(e.to_string()))?;
        let message = json!({"default": document, "email": note.body, "sqs": document}).to_string();
        self.client
            .publish()
            .topic_arn(&self.topic_arn)
            .subject(subject(&note.subject))
            .message(message)
            .message_structure("json")
            .message_attributes("kind", attribute("review")?)
            .send()
            .await
            .map_err(|e| NotifyError(aws_sdk_sns::error::DisplayErrorContext(e).to_string()))?;
        Ok(())
    }
}
