//! The AWS adapters against the moto emulator: SNS routing by filter policy.

use aws_sdk_sqs::types::QueueAttributeName;
use hotlead_app::Notifier;
use hotlead_core::alert::{AlertMessage, Routing};
use hotlead_tests::aws::{config, unique};
use serde_json::{Value, json};

/// A topic with one SQS queue per territory, each subscribed with a filter policy.
pub struct Routed {
    pub topic_arn: String,
    pub queues: Vec<(String, String)>,
    pub sqs: aws_sdk_sqs::Client,
}

pub async fn routed_topic(territories: &[&str]) -> Routed {
    let config = config().await;
    let sns = aws_sdk_sns::Client::new(&config);
    let sqs = aws_sdk_sqs::Client::new(&config);
    let topic_arn = sns.create_topic().name(unique("alerts")).send().await.unwrap().topic_arn.unwrap();
    let mut queues = Vec::new();
    for territory in territories {
        let url = sqs.create_queue().queue_name(unique(territory)).send().await.unwrap().queue_url.unwrap();
        let arn = sqs
            .get_queue_attributes()
            .queue_url(&url)
            .attribute_names(QueueAttributeName::QueueArn)
            .send()
            .await
            .unwrap()
            .attributes
            .unwrap()[&QueueAttributeName::QueueArn]
            .clone();
        sns.subscribe()
            .topic_arn(&topic_arn)
            .protocol("sqs")
            .endpoint(arn)
            .attributes("FilterPolicy", json!({"territory": [territory]}).to_string())
            .attributes("RawMessageDelivery", "true")
            .send()
            .await
            .unwrap();
        queues.push((territory.to_string(), url));
    }
    Routed { topic_arn, queues, sqs }
}

impl Routed {
    /// Every message waiting in the territory's queue, parsed.
    pub async fn drain(&self, territory: &str) -> Vec<Value> {
        let url = &self.queues.iter().find(|(t, _)| t == territory).unwrap().1;
        let mut messages = Vec::new();
        loop {
            let out = self.sqs.receive_message().queue_url(url).max_number_of_messages(10).wait_time_seconds(0).send().await.unwrap();
            let batch = out.messages.unwrap_or_default();
            if batch.is_empty() {
                return messages;
            }
            for message in batch {
                let body = message.body.unwrap_or_default();
                messages.push(serde_json::from_str(&body).unwrap_or(Value::String(body)));
                self.sqs.delete_message().queue_url(url).receipt_handle(message.receipt_handle.unwrap()).send().await.unwrap();
            }
        }
    }
}

fn alert(lead: &str, territory: &str) -> AlertMessage {
    AlertMessage {
        lead_id: lead.into(),
        reason: "hot".into(),
        subject: format!("[Hot lead] {lead}"),
        body: format!("{lead} is now a hot lead.\nWhy:\n  +30  1,000+ employees"),
        score: 80.0,
        band: "hot".into(),
        grade: "A1".into(),
        routing: Routing { territory: territory.into(), owner: Some(format!("rep-{territory}@example.com")), product: None },
        lead_url: format!("http://x/v1/leads/{lead}"),
    }
}

#[tokio::test]
async fn sns_alerts_reach_only_the_queue_whose_filter_policy_matches_their_territory() {
    let routed = routed_topic(&["east", "west"]).await;
    let notifier = hotlead_aws::SnsNotifier::new(aws_sdk_sns::Client::new(&config().await), &routed.topic_arn);
    notifier.deliver(&alert("L-1", "east")).await.unwrap();
    notifier.deliver(&alert("L-2", "west")).await.unwrap();
    notifier.deliver(&alert("L-3", "north")).await.unwrap();
    let east = routed.drain("east").await;
    let west = routed.drain("west").await;
    assert_eq!(east.len(), 1, "{east:#?}");
    assert_eq!(west.len(), 1, "{west:#?}");
    assert_eq!(east[0]["lead_id"], "L-1");
    assert_eq!(east[0]["owner"], "rep-east@example.com");
    assert!(east[0]["body"].as_str().unwrap().contains("1,000+ employees"));
    assert_eq!(west[0]["lead_id"], "L-2");
}
