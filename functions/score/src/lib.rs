//! The `score` function, invoked two ways, each a typed `aws_lambda_events` payload:
//! a DynamoDB Streams batch ([`Scorer::on_changes`]: each touched lead rescored once,
//! alerts delivered, records that met a store outage reported as `batchItemFailures`, so
//! one bad record neither blocks nor repeats the rest) and the EventBridge schedule
//! ([`Scorer::scheduled_round`]: the active rules followed, marked and set-aside leads
//! rescored, aged scores rescored, pending alerts delivered).

use aws_lambda_events::event::dynamodb::Event;
use aws_lambda_events::event::eventbridge::EventBridgeEvent;
use aws_lambda_events::event::streams::{DynamoDbBatchItemFailure, DynamoDbEventResponse};
use hotlead_app::Scorer;
use hotlead_app::scorer::{LeadChange, Round};
use serde::Deserialize;
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

/// What the function is invoked with: a DynamoDB Streams batch (it has `Records`) or an
/// EventBridge event (it has `detail-type` and `source`).
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum Invocation {
    Stream(Box<Event>),
    Schedule(Box<EventBridgeEvent>),
}

/// Why an invocation was not handled.
#[derive(Debug, thiserror::Error)]
pub enum InvocationError {
    #[error(
        "unexpected event (detail-type {detail_type:?}, source {from:?}); expected a DynamoDB Streams batch or the schedule"
    )]
    Unexpected { detail_type: String, from: String },
    #[error("not a DynamoDB Streams batch nor an EventBridge event: {0}")]
    Unreadable(String),
}

impl Invocation {
    /// Reads a payload; an unreadable one is an error saying what was expected.
    pub fn parse(payload: serde_json::Value) -> Result<Invocation, InvocationError> {
        serde_json::from_value(payload).map_err(|e| InvocationError::Unreadable(e.to_string()))
    }
}

/// What one invocation did.
#[derive(Debug, Clone, PartialEq)]
pub enum Answer {
    /// The stream's partial batch response, and the counts of the batch.
    Stream(DynamoDbEventResponse, Round),
    /// The scheduled round's counts.
    Schedule(Round),
}

impl Answer {
    /// What the function returns: the partial batch response, or the round's counts.
    pub fn into_response(self) -> serde_json::Value {
        match self {
            Answer::Stream(response, _) => serde_json::to_value(response),
            Answer::Schedule(round) => serde_json::to_value(round),
        }
        .unwrap_or_default()
    }

    /// The counts, for the metrics.
    pub fn round(&self) -> (&'static str, &Round) {
        match self {
            Answer::Stream(_, round) => ("stream", round),
            Answer::Schedule(round) => ("schedule", round),
        }
    }
}

/// Handles one invocation. Only the schedule's own events (`Scheduled Event` from
/// `aws.events`) run a round; any other EventBridge event is refused, naming it.
pub async fn handle_invocation(
    scorer: &Scorer,
    invocation: Invocation,
) -> Result<Answer, InvocationError> {
    match invocation {
        Invocation::Stream(event) => {
            let (response, round) = handle_batch(scorer, &event).await;
            Ok(Answer::Stream(response, round))
        }
        Invocation::Schedule(event)
            if event.detail_type == "Scheduled Event" && event.source == "aws.events" =>
        {
            Ok(Answer::Schedule(scorer.scheduled_round().await))
        }
        Invocation::Schedule(event) => Err(InvocationError::Unexpected {
            detail_type: event.detail_type.clone(),
            from: event.source.clone(),
        }),
    }
}

/// Handles one batch.
pub async fn handle(scorer: &Scorer, event: &Event) -> DynamoDbEventResponse {
    handle_batch(scorer, event).await.0
}

/// Handles one batch: the partial batch response and the counts for the metrics.
pub async fn handle_batch(scorer: &Scorer, event: &Event) -> (DynamoDbEventResponse, Round) {
    let outcome = scorer.on_changes(&changes(event)).await;
    let mut response = DynamoDbEventResponse::default();
    response.batch_item_failures = outcome
        .retry
        .into_iter()
        .map(|sequence| {
            let mut failure = DynamoDbBatchItemFailure::default();
            failure.item_identifier = Some(sequence);
            failure
        })
        .collect();
    (response, outcome.round)
}

/// The metrics namespace of the CloudWatch embedded metric format lines.
pub const METRICS_NAMESPACE: &str = "hotlead";

/// One log line in CloudWatch's embedded metric format: CloudWatch Logs turns it into
/// the metrics the template's alarms watch (`LeadsSetAside`, `LeadsWaitingAside`,
/// `AlertsFailedForGood`, `AlertsRetrying`, `AlertsDelivered`, `LeadsRescored`,
/// `StoreOutages`), with the dimension `Function` = `score`. `at_ms`: milliseconds since
/// the epoch.
pub fn metrics_line(round: &Round, trigger: &str, at_ms: i64) -> String {
    let metrics: [(&str, usize); 7] = [
        ("LeadsSetAside", round.set_aside),
        ("LeadsWaitingAside", round.waiting_aside),
        ("AlertsFailedForGood", round.delivery.abandoned),
        ("AlertsRetrying", round.delivery.failed),
        ("AlertsDelivered", round.delivery.delivered),
        (
            "LeadsRescored",
            round.rescored + round.aged + round.rules_rescored,
        ),
        ("StoreOutages", round.outages),
    ];
    let mut line = serde_json::json!({
        "_aws": {
            "Timestamp": at_ms,
            "CloudWatchMetrics": [{
                "Namespace": METRICS_NAMESPACE,
                "Dimensions": [["Function"]],
                "Metrics": metrics.iter().map(|(name, _)| serde_json::json!({"Name": name, "Unit": "Count"})).collect::<Vec<_>>(),
            }],
        },
        "Function": "score",
        "trigger": trigger,
    });
    for (name, value) in metrics {
        line[name] = serde_json::json!(value);
    }
    line.to_string()
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use chrono::Utc;
    use hotlead_app::faults::FaultyStore;
    use hotlead_app::ports::Store;
    use hotlead_app::{Config, SystemClock};
    use hotlead_core::RuleSet;
    use hotlead_embedded::SqliteStore;

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

    fn scorer_on(store: Arc<dyn Store>) -> Scorer {
        let dir = std::env::temp_dir().join(format!("score-fn-{}", std::process::id()));
        Scorer::new(
            store,
            Arc::new(hotlead_embedded::FileOutbox::new(&dir.join("alerts.jsonl"))),
            Arc::new(SystemClock),
            Arc::new(RuleSet::from_toml("seed", hotlead_core::rules::SEED).unwrap()),
            Arc::new(Config::default()),
        )
    }

    /// SQLite, except that reading `L-bad` fails as an outage and `L-corrupt` as corrupt.
    fn scorer() -> Scorer {
        let store = FaultyStore::new(Arc::new(SqliteStore::in_memory().unwrap()));
        store
            .faults
            .unreachable_leads
            .lock()
            .unwrap()
            .insert("L-bad".into());
        store.corrupt("L-corrupt");
        scorer_on(Arc::new(store))
    }

    fn payload(text: &str) -> serde_json::Value {
        serde_json::from_str(text).unwrap()
    }

    #[tokio::test]
    async fn invocations_are_told_apart_and_strangers_named() {
        let schedule = payload(include_str!("../fixtures/eventbridge-schedule.json"));
        assert!(matches!(
            Invocation::parse(schedule),
            Ok(Invocation::Schedule(_))
        ));
        let batch = payload(include_str!("../fixtures/dynamodb-stream-batch.json"));
        assert!(matches!(
            Invocation::parse(batch),
            Ok(Invocation::Stream(_))
        ));
        let stranger = Invocation::parse(serde_json::json!({
            "detail-type": "Object Created", "source": "aws.s3", "detail": {}
        }))
        .unwrap();
        let error = handle_invocation(&scorer(), stranger).await.unwrap_err();
        assert!(error.to_string().contains("Object Created"), "{error}");
        let error = Invocation::parse(serde_json::json!({"hello": 1})).unwrap_err();
        assert!(error.to_string().contains("DynamoDB Streams"), "{error}");
    }

    #[tokio::test]
    async fn the_schedule_rescores_marked_leads_retries_alerts_and_rescores_aged_leads() {
        let store = Arc::new(SqliteStore::in_memory().unwrap());
        let ingest = hotlead_app::Ingest::new(
            store.clone(),
            Arc::new(SystemClock),
            Arc::new(hotlead_app::UuidIds),
            Arc::new(Config::default()),
            Arc::new(tokio::sync::Notify::new()),
        );
        let call = serde_json::json!({"type": "identify", "userId": "u1", "messageId": "m1",
            "timestamp": Utc::now().to_rfc3339(), "traits": {"email": "a@example.co.jp"}});
        let lead = ingest.call(&call, None).await.unwrap().lead_id.unwrap();
        let schedule = payload(include_str!("../fixtures/eventbridge-schedule.json"));
        let answer = handle_invocation(
            &scorer_on(store.clone()),
            Invocation::parse(schedule).unwrap(),
        )
        .await
        .unwrap();
        let Answer::Schedule(round) = answer else {
            panic!("the schedule answers with its round");
        };
        assert_eq!((round.rescored, round.aged, round.outages), (1, 0, 0));
        assert!(store.lead(&lead).await.unwrap().unwrap().score.is_some());
        assert_eq!(Answer::Schedule(round).into_response()["rescored"], 1);
        let line: serde_json::Value =
            serde_json::from_str(&metrics_line(&round, "schedule", 1_795_341_600_000)).unwrap();
        assert_eq!(line["_aws"]["CloudWatchMetrics"][0]["Namespace"], "hotlead");
        assert_eq!(line["LeadsRescored"], 1);
        assert_eq!(line["LeadsSetAside"], 0);
        let names: Vec<&str> = line["_aws"]["CloudWatchMetrics"][0]["Metrics"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["Name"].as_str().unwrap())
            .collect();
        for name in &names {
            assert!(line[name].is_number(), "{name} has no value");
        }
    }

    #[tokio::test]
    async fn an_outage_is_reported_as_a_batch_item_failure_and_a_broken_lead_is_not() {
        let scorer = scorer();
        let mut batch = event();
        // A third lead whose data cannot be read: set aside, its records acknowledged.
        let mut corrupt = batch.records[0].clone();
        corrupt.change.sequence_number = Some("300".into());
        let image = corrupt.change.new_image.inner_mut();
        image.insert("id".into(), AttributeValue::S("L-corrupt".into()));
        batch.records.push(corrupt);
        let response = handle(&scorer, &batch).await;
        let failed: Vec<Option<String>> = response
            .batch_item_failures
            .into_iter()
            .map(|f| f.item_identifier)
            .collect();
        assert_eq!(failed, [Some("200".to_string())]);
    }
}
