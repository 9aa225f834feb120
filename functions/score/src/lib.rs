//! The `score` function: a DynamoDB Streams batch in, each touched lead rescored once,
//! alerts delivered, and the records that could not be processed reported as
//! `batchItemFailures` so that one bad record neither blocks nor repeats the rest.

use aws_lambda_events::event::dynamodb::Event;
use aws_lambda_events::event::streams::{DynamoDbBatchItemFailure, DynamoDbEventResponse};
use hotlead_app::{Scorer, StoreError};
use hotlead_aws::stream::{LeadChange, rescore_changes};
use serde_dynamo::AttributeValue;

/// The lead changes in a stream batch; other items are ignored.
pub fn changes(event: &Event) -> Vec<LeadChange> {
    event
        .records
        .iter()
        .filter_map(|record| {
            let image = record.change.new_image.inner();
            let text = |name: &str| match image.get(name) {
                Some(AttributeValue::S(value)) => Some(value.clone()),
                _ => None,
            };
            let number = |name: &str| match image.get(name) {
                Some(AttributeValue::N(value)) => value.parse().ok(),
                _ => None,
            };
            LeadChange::from_image(
                record.change.sequence_number.as_deref().unwrap_or_default(),
                text,
                number,
            )
        })
        .collect()
}

/// What the function was invoked with.
#[derive(Debug)]
pub enum Invocation {
    /// A DynamoDB Streams batch.
    Stream(Box<Event>),
    /// The EventBridge schedule: retry pending alerts, rescore leads whose scores aged.
    Schedule,
}

impl Invocation {
    /// Tells a stream batch from a scheduled event; anything else is an error naming it.
    pub fn parse(payload: serde_json::Value) -> Result<Invocation, String> {
        if payload.get("Records").is_some() {
            return serde_json::from_value(payload)
                .map(|e| Invocation::Stream(Box::new(e)))
                .map_err(|e| format!("not a DynamoDB Streams event: {e}"));
        }
        match payload
            .get("detail-type")
            .and_then(serde_json::Value::as_str)
        {
            Some("Scheduled Event") => Ok(Invocation::Schedule),
            other => Err(format!(
                "unexpected event (detail-type {other:?}); expected a DynamoDB Streams batch or the schedule"
            )),
        }
    }
}

/// Handles one invocation; the answer is the stream's batch response, or a summary of
/// the scheduled round.
pub async fn handle_invocation(
    scorer: &Scorer,
    invocation: Invocation,
) -> Result<serde_json::Value, StoreError> {
    match invocation {
        Invocation::Stream(event) => {
            // Score with the active rules version; the schedule rescores older scores.
            if let Err(error) = scorer.refresh_rules().await {
                tracing::error!(%error, "reading the active rules failed; scoring with the last known");
            }
            Ok(serde_json::to_value(handle(scorer, &event).await).unwrap_or_default())
        }
        Invocation::Schedule => {
            scorer.follow_rules().await;
            let delivery = scorer.deliver_pending().await?;
            let rescored = scorer
                .rescore_aged(hotlead_app::scorer::RESCORE_AFTER)
                .await?;
            Ok(
                serde_json::json!({"delivered": delivery.delivered, "failed": delivery.failed, "rescored": rescored}),
            )
        }
    }
}

/// Handles one batch.
pub async fn handle(scorer: &Scorer, event: &Event) -> DynamoDbEventResponse {
    let failed = rescore_changes(scorer, &changes(event)).await;
    let mut response = DynamoDbEventResponse::default();
    response.batch_item_failures = failed
        .into_iter()
        .map(|sequence| {
            let mut failure = DynamoDbBatchItemFailure::default();
            failure.item_identifier = Some(sequence);
            failure
        })
        .collect();
    response
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use async_trait::async_trait;
    use chrono::{DateTime, Utc};
    use hotlead_app::ports::{
        Dirty, Pending, RankingPage, Record, Recorded, SaveOutcome, ScoreUpdate, Store, StoredLead,
    };
    use hotlead_app::{Config, SystemClock};
    use hotlead_core::{Band, Event as DomainEvent, RuleSet};

    use super::*;

    fn event() -> Event {
        serde_json::from_str(include_str!("../fixtures/dynamodb-stream-batch.json"))
            .expect("a DynamoDB Streams event")
    }

    #[test]
    fn only_lead_items_with_unscored_changes_ask_for_a_rescore() {
        let changes = changes(&event());
        let ids: Vec<(&str, bool)> = changes
            .iter()
            .map(|c| (c.lead_id.as_str(), c.needs_rescore()))
            .collect();
        assert_eq!(
            ids,
            [("L-good", true), ("L-bad", true), ("L-scored", false)]
        );
    }

    /// A store that fails for `L-bad` and knows no other lead.
    struct FlakyStore;

    #[async_trait]
    impl Store for FlakyStore {
        async fn record(&self, _: Record) -> Result<Recorded, StoreError> {
            Err(StoreError::Unavailable("not used".into()))
        }
        async fn lead(&self, id: &str) -> Result<Option<StoredLead>, StoreError> {
            if id == "L-bad" {
                Err(StoreError::Unavailable("throttled".into()))
            } else {
                Ok(None)
            }
        }
        async fn events(&self, _: &str) -> Result<Vec<DomainEvent>, StoreError> {
            Ok(Vec::new())
        }
        async fn ranking(
            &self,
            _: Option<Band>,
            _: usize,
            _: Option<&str>,
        ) -> Result<RankingPage, StoreError> {
            Ok(RankingPage {
                leads: Vec::new(),
                next: None,
            })
        }
        async fn dirty(&self, _: usize) -> Result<Vec<Dirty>, StoreError> {
            Ok(Vec::new())
        }
        async fn scored_before(
            &self,
            _: DateTime<Utc>,
            _: usize,
        ) -> Result<Vec<Dirty>, StoreError> {
            Ok(Vec::new())
        }
        async fn save_score(&self, _: ScoreUpdate) -> Result<SaveOutcome, StoreError> {
            Ok(SaveOutcome::Saved)
        }
        async fn pending_alerts(
            &self,
            _: DateTime<Utc>,
            _: usize,
        ) -> Result<Vec<Pending>, StoreError> {
            Ok(Vec::new())
        }
        async fn alert_delivered(&self, _: &str, _: DateTime<Utc>) -> Result<(), StoreError> {
            Ok(())
        }
        async fn alert_failed(&self, _: &str, _: &str, _: DateTime<Utc>) -> Result<(), StoreError> {
            Ok(())
        }
    }

    fn scorer() -> Scorer {
        let dir = std::env::temp_dir().join(format!("score-fn-{}", std::process::id()));
        Scorer::new(
            Arc::new(FlakyStore),
            Arc::new(hotlead_embedded::FileOutbox::new(&dir.join("alerts.jsonl"))),
            Arc::new(SystemClock),
            Arc::new(RuleSet::from_toml("seed", hotlead_core::rules::SEED).unwrap()),
            Arc::new(Config::default()),
        )
    }

    #[test]
    fn invocations_are_told_apart_and_strangers_named() {
        let schedule =
            serde_json::from_str(include_str!("../fixtures/eventbridge-schedule.json")).unwrap();
        assert!(matches!(
            Invocation::parse(schedule),
            Ok(Invocation::Schedule)
        ));
        let batch =
            serde_json::from_str(include_str!("../fixtures/dynamodb-stream-batch.json")).unwrap();
        assert!(matches!(
            Invocation::parse(batch),
            Ok(Invocation::Stream(_))
        ));
        let error =
            Invocation::parse(serde_json::json!({"detail-type": "Object Created"})).unwrap_err();
        assert!(error.contains("Object Created"), "{error}");
    }

    #[tokio::test]
    async fn the_schedule_retries_alerts_and_rescores_aged_leads() {
        let schedule =
            serde_json::from_str(include_str!("../fixtures/eventbridge-schedule.json")).unwrap();
        let answer = handle_invocation(&scorer(), Invocation::parse(schedule).unwrap())
            .await
            .unwrap();
        assert_eq!(
            answer,
            serde_json::json!({"delivered": 0, "failed": 0, "rescored": 0})
        );
    }

    #[tokio::test]
    async fn a_failing_lead_is_reported_alone_as_a_batch_item_failure() {
        let scorer = scorer();
        let response = handle(&scorer, &event()).await;
        let failed: Vec<Option<String>> = response
            .batch_item_failures
            .into_iter()
            .map(|f| f.item_identifier)
            .collect();
        assert_eq!(failed, [Some("200".to_string())]);
    }
}
