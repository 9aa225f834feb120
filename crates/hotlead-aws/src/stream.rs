//! Rescoring from the table's stream: the `score` Lambda (DynamoDB Streams event) and the
//! local stream poller of `hotlead serve --backend aws` both turn stream records into
//! [`LeadChange`]s and call [`rescore_changes`], which rescores each touched lead once
//! per batch and reports the records it could not process.

use std::collections::HashMap;
use std::time::Duration;

use aws_sdk_dynamodbstreams::types::{AttributeValue, ShardIteratorType};
use hotlead_app::{Scorer, StoreError};

/// A lead item changed: its id and change counters as the stream saw them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeadChange {
    /// The stream record's sequence number (what a partial batch failure reports).
    pub sequence: String,
    pub lead_id: String,
    pub dirty_seq: i64,
    pub scored_seq: i64,
    pub merged: bool,
}

impl LeadChange {
    /// Whether the change asks for a rescore: new events the saved score has not seen.
    /// A lead item written by a score save itself does not.
    pub fn needs_rescore(&self) -> bool {
        !self.merged && self.dirty_seq > self.scored_seq
    }

    /// Reads a lead change from a stream record's new image, given as string and number
    /// accessors; other items (events, dedupe keys, identities, alerts) give `None`.
    pub fn from_image(
        sequence: &str,
        text: impl Fn(&str) -> Option<String>,
        number: impl Fn(&str) -> Option<i64>,
    ) -> Option<LeadChange> {
        if text("SK").as_deref() != Some("LEAD") {
            return None;
        }
        Some(LeadChange {
            sequence: sequence.to_string(),
            lead_id: text("id")?,
            dirty_seq: number("dirty_seq").unwrap_or(0),
            scored_seq: number("scored_seq").unwrap_or(0),
            merged: text("merged_into").is_some(),
        })
    }
}

/// Rescores each lead the changes touch, once, with its newest change counter, then
/// delivers due alerts. Returns the sequence numbers of records whose lead could not be
/// rescored (the caller reports them as batch item failures, so they are retried).
pub async fn rescore_changes(scorer: &Scorer, changes: &[LeadChange]) -> Vec<String> {
    let mut order: Vec<&str> = Vec::new();
    let mut newest: HashMap<&str, i64> = HashMap::new();
    let mut sequences: HashMap<&str, Vec<String>> = HashMap::new();
    for change in changes.iter().filter(|c| c.needs_rescore()) {
        let lead = change.lead_id.as_str();
        if !newest.contains_key(lead) {
            order.push(lead);
        }
        let seq = newest.entry(lead).or_insert(change.dirty_seq);
        *seq = (*seq).max(change.dirty_seq);
        sequences
            .entry(lead)
            .or_default()
            .push(change.sequence.clone());
    }
    let mut failed = Vec::new();
    for lead in order {
        match scorer.rescore(lead, newest[lead]).await {
            // A conflict means a newer score is saved already: nothing is lost.
            Ok(_) | Err(StoreError::Conflict(_)) => {}
            Err(error) => {
                tracing::warn!(lead, %error, "rescoring failed; the records will be retried");
                failed.extend(sequences.remove(lead).unwrap_or_default());
            }
        }
    }
    if let Err(error) = scorer.deliver_pending().await {
        tracing::warn!(%error, "alert delivery failed; pending alerts are retried later");
    }
    failed
}

fn text_of(image: &HashMap<String, AttributeValue>, name: &str) -> Option<String> {
    image.get(name).and_then(|v| v.as_s().ok()).cloned()
}

fn number_of(image: &HashMap<String, AttributeValue>, name: &str) -> Option<i64> {
    image
        .get(name)
        .and_then(|v| v.as_n().ok())
        .and_then(|n| n.parse().ok())
}

/// Lead changes in a batch of records read with the DynamoDB Streams API.
pub fn changes_of(records: &[aws_sdk_dynamodbstreams::types::Record]) -> Vec<LeadChange> {
    records
        .iter()
        .filter_map(|record| {
            let change = record.dynamodb()?;
            let image = change.new_image()?;
            LeadChange::from_image(
                change.sequence_number().unwrap_or_default(),
                |n| text_of(image, n),
                |n| number_of(image, n),
            )
        })
        .collect()
}

/// Reads every record currently in the stream, from the oldest (for replays and tests).
pub async fn read_all(
    client: &aws_sdk_dynamodbstreams::Client,
    stream_arn: &str,
) -> Result<Vec<aws_sdk_dynamodbstreams::types::Record>, String> {
    let described = client
        .describe_stream()
        .stream_arn(stream_arn)
        .send()
        .await
        .map_err(|e| aws_sdk_dynamodbstreams::error::DisplayErrorContext(e).to_string())?;
    let shards = described
        .stream_description()
        .map(|d| d.shards().to_vec())
        .unwrap_or_default();
    let mut records = Vec::new();
    for shard in shards {
        let Some(shard_id) = shard.shard_id() else {
            continue;
        };
        let mut iterator = client
            .get_shard_iterator()
            .stream_arn(stream_arn)
            .shard_id(shard_id)
            .shard_iterator_type(ShardIteratorType::TrimHorizon)
            .send()
            .await
            .map_err(|e| aws_sdk_dynamodbstreams::error::DisplayErrorContext(e).to_string())?
            .shard_iterator;
        while let Some(current) = iterator.take() {
            let out = client
                .get_records()
                .shard_iterator(current)
                .send()
                .await
                .map_err(|e| aws_sdk_dynamodbstreams::error::DisplayErrorContext(e).to_string())?;
            let batch = out.records.unwrap_or_default();
            if batch.is_empty() {
                break;
            }
            records.extend(batch);
            iterator = out.next_shard_iterator;
        }
    }
    Ok(records)
}

/// The local stand-in for the `score` Lambda: follows every shard of the stream from its
/// newest record and feeds each batch to [`rescore_changes`]; between batches it rescores
/// leads still marked (changes made while it was not running), retries pending alerts
/// and rescores aged leads. Runs until the task is dropped.
pub async fn poll(
    client: aws_sdk_dynamodbstreams::Client,
    stream_arn: String,
    scorer: Scorer,
    tick: Duration,
) {
    let mut iterators: HashMap<String, Option<String>> = HashMap::new();
    loop {
        scorer.follow_rules().await;
        if let Err(error) = poll_once(&client, &stream_arn, &scorer, &mut iterators).await {
            tracing::warn!(%error, "reading the stream failed; retrying");
        }
        // The stream is read from its newest record on: changes made while no poller ran
        // (or before its iterator was taken) are found by their rescoring mark instead.
        if let Err(error) = scorer.rescore_marked().await {
            tracing::warn!(%error, "rescoring marked leads failed; retrying");
        }
        if let Err(error) = scorer.deliver_pending().await {
            tracing::warn!(%error, "alert delivery failed; retrying");
        }
        if let Err(error) = scorer
            .rescore_aged(hotlead_app::scorer::RESCORE_AFTER)
            .await
        {
            tracing::warn!(%error, "rescoring aged leads failed; retrying");
        }
        tokio::time::sleep(tick).await;
    }
}

async fn poll_once(
    client: &aws_sdk_dynamodbstreams::Client,
    stream_arn: &str,
    scorer: &Scorer,
    iterators: &mut HashMap<String, Option<String>>,
) -> Result<(), String> {
    let error = |e: &dyn std::fmt::Display| e.to_string();
    let described = client
        .describe_stream()
        .stream_arn(stream_arn)
        .send()
        .await
        .map_err(|e| error(&aws_sdk_dynamodbstreams::error::DisplayErrorContext(e)))?;
    for shard in described
        .stream_description()
        .map(|d| d.shards().to_vec())
        .unwrap_or_default()
    {
        let Some(shard_id) = shard.shard_id().map(str::to_string) else {
            continue;
        };
        if !iterators.contains_key(&shard_id) {
            let iterator = client
                .get_shard_iterator()
                .stream_arn(stream_arn)
                .shard_id(&shard_id)
                .shard_iterator_type(ShardIteratorType::Latest)
                .send()
                .await
                .map_err(|e| error(&aws_sdk_dynamodbstreams::error::DisplayErrorContext(e)))?
                .shard_iterator;
            iterators.insert(shard_id.clone(), iterator);
        }
        let Some(Some(current)) = iterators.get(&shard_id).cloned() else {
            continue;
        };
        let out = client
            .get_records()
            .shard_iterator(current.clone())
            .send()
            .await
            .map_err(|e| error(&aws_sdk_dynamodbstreams::error::DisplayErrorContext(e)))?;
        let records = out.records.unwrap_or_default();
        let failed = rescore_changes(scorer, &changes_of(&records)).await;
        if failed.is_empty() {
            iterators.insert(shard_id, out.next_shard_iterator);
        } else {
            // Keep the iterator: the same batch is read again next round.
            tracing::warn!(
                count = failed.len(),
                "some stream records failed; retrying the batch"
            );
        }
    }
    Ok(())
}
