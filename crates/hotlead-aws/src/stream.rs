//! Reading the table's stream: stream records become [`LeadChange`]s for
//! [`Scorer::on_changes`], the one operation the `score` Lambda and the local poller of
//! `hotlead serve --backend aws` both call.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use aws_sdk_dynamodbstreams::types::{AttributeValue, ShardIteratorType};
use hotlead_app::Scorer;
use hotlead_app::scorer::{LeadChange, Pace, URGENT_GAP, until_next_round};
use tokio::sync::Notify;

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
/// newest record and feeds each batch to [`Scorer::on_changes`]; between batches it runs
/// the [`Scorer::scheduled_round`] the schedule runs on AWS (marked leads, including those
/// changed while no poller ran, set-aside leads due, aged scores, pending alerts). Polls
/// every `tick`, and at once when `wake` is notified (by the ingest of the same process;
/// busy rounds at least [`URGENT_GAP`] apart, see [`until_next_round`]).
/// Runs until the task is dropped.
pub async fn poll(
    client: aws_sdk_dynamodbstreams::Client,
    stream_arn: String,
    scorer: Scorer,
    tick: Duration,
    wake: Arc<Notify>,
) {
    // The stream's batches are read between rounds: they keep the short gap.
    let urgent = Notify::new();
    let pace = Pace {
        gap: URGENT_GAP,
        urgent: &urgent,
    };
    let mut iterators: HashMap<String, Option<String>> = HashMap::new();
    loop {
        let started = tokio::time::Instant::now();
        if let Err(error) = poll_once(&client, &stream_arn, &scorer, &mut iterators).await {
            tracing::warn!(%error, "reading the stream failed; retrying");
        }
        // The stream is read from its newest record on: changes made while no poller ran
        // (or before its iterator was taken) are found by their rescoring mark instead.
        let round = scorer.scheduled_round().await;
        // Woken by this process's own ingest at once (a form's alert should not wait for
        // the tick), else every tick; under a stream of events, one round per gap.
        until_next_round(&round, started, &wake, pace, tick).await;
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
        let failed = scorer.on_changes(&changes_of(&records)).await.retry;
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
