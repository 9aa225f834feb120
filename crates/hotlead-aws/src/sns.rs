//! The [`Notifier`] port on SNS: each alert is published to the reps' topic with message
//! attributes (`territory`, `owner`, `product`, `band`, `reason`) that subscription
//! filter policies route on; e-mail subscribers get the subject and readable body, other
//! protocols a JSON document.

use async_trait::async_trait;
use aws_sdk_sns::Client;
use aws_sdk_sns::error::ProvideErrorMetadata;
use aws_sdk_sns::operation::publish::PublishError;
use aws_sdk_sns::types::MessageAttributeValue;
use hotlead_app::{Notifier, NotifyError};
use hotlead_core::alert::{AlertMessage, MAX_SUBJECT_CHARS, one_line};
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

/// Longest message attribute value sent, in characters (filter policies match on them;
/// nothing longer is meaningful).
const MAX_ATTRIBUTE_CHARS: usize = 256;
/// Longest e-mail body sent, in bytes: the message (the body and a JSON document with it,
/// twice) stays well below SNS's 256 KB.
const MAX_BODY_BYTES: usize = 60_000;

/// A `String` message attribute: one line, bounded; `None` when nothing is left (SNS
/// refuses empty values).
fn attribute(value: &str) -> Result<Option<MessageAttributeValue>, NotifyError> {
    let value = one_line(value, MAX_ATTRIBUTE_CHARS);
    if value.is_empty() {
        return Ok(None);
    }
    MessageAttributeValue::builder()
        .data_type("String")
        .string_value(value)
        .build()
        .map(Some)
        .map_err(|e| NotifyError::permanent(e.to_string()))
}

/// SNS subjects: UTF-8 with no line breaks or control characters, fewer than 100
/// characters; never empty.
fn subject(text: &str) -> String {
    let subject = one_line(text, MAX_SUBJECT_CHARS);
    if subject.is_empty() {
        "hotlead".to_string()
    } else {
        subject
    }
}

/// The body cut to [`MAX_BODY_BYTES`] on a character boundary.
fn body(text: &str) -> &str {
    if text.len() <= MAX_BODY_BYTES {
        return text;
    }
    let mut end = MAX_BODY_BYTES;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

/// Publish errors SNS answers for a message it will never take as it is (a parameter out
/// of its limits): retrying cannot help. Every other error (throttling, an outage, a
/// missing permission or topic, which an operator can fix) is transient.
fn publish_error(error: aws_sdk_sns::error::SdkError<PublishError>) -> NotifyError {
    let permanent = matches!(
        error.code(),
        Some("InvalidParameter" | "ParameterValueInvalid" | "InvalidParameterValue")
    );
    let text = aws_sdk_sns::error::DisplayErrorContext(error).to_string();
    if permanent {
        NotifyError::permanent(text)
    } else {
        NotifyError::transient(text)
    }
}

#[async_trait]
impl Notifier for SnsNotifier {
    async fn deliver(&self, alert: &AlertMessage) -> Result<(), NotifyError> {
        let body = body(&alert.body);
        let document = json!({
            "lead_id": alert.lead_id, "reason": alert.reason, "subject": alert.subject, "body": body,
            "score": alert.score, "band": alert.band, "grade": alert.grade,
            "territory": alert.routing.territory, "owner": alert.routing.owner, "product": alert.routing.product,
            "lead_url": alert.lead_url,
        });
        let message =
            json!({"default": document.to_string(), "email": body, "sqs": document.to_string()})
                .to_string();
        let mut request = self
            .client
            .publish()
            .topic_arn(&self.topic_arn)
            .subject(subject(&alert.subject))
            .message(message)
            .message_structure("json");
        let attributes = [
            ("territory", Some(alert.routing.territory.as_str())),
            ("band", Some(alert.band.as_str())),
            ("reason", alert.reason.split(':').next()),
            ("owner", alert.routing.owner.as_deref()),
            ("product", alert.routing.product.as_deref()),
        ];
        for (name, value) in attributes {
            if let Some(value) = attribute(value.unwrap_or_default())? {
                request = request.message_attributes(name, value);
            }
        }
        request.send().await.map_err(publish_error)?;
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
        let document =
            serde_json::to_string(note).map_err(|e| NotifyError::permanent(e.to_string()))?;
        let message = json!({"default": document, "email": note.body, "sqs": document}).to_string();
        self.client
            .publish()
            .topic_arn(&self.topic_arn)
            .subject(subject(&note.subject))
            .message(message)
            .message_structure("json")
            .set_message_attributes(
                attribute("review")?
                    .map(|kind| std::collections::HashMap::from([("kind".to_string(), kind)])),
            )
            .send()
            .await
            .map_err(publish_error)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subjects_have_no_control_characters_and_fewer_than_100_characters() {
        let long = format!("[ホットリード] 株式会社\tテスト {} 様", "長".repeat(300));
        for text in [long.as_str(), "a\tb\u{7}c", &"x".repeat(100), "\t\n"] {
            let subject = subject(text);
            assert!(subject.chars().count() < 100, "{subject}");
            assert!(!subject.chars().any(char::is_control), "{subject:?}");
            assert!(!subject.trim().is_empty());
        }
    }

    #[test]
    fn bodies_are_cut_on_a_character_boundary_and_attributes_never_empty() {
        let text = "長".repeat(MAX_BODY_BYTES);
        let cut = body(&text);
        assert!(cut.len() <= MAX_BODY_BYTES && cut.chars().all(|c| c == '長'));
        assert!(attribute(" \t ").unwrap().is_none());
        let long = attribute(&"a".repeat(1_000)).unwrap().unwrap();
        assert_eq!(
            long.string_value().unwrap().chars().count(),
            MAX_ATTRIBUTE_CHARS
        );
    }
}
