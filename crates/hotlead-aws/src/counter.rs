//! The [`RequestCounter`] port on the table: one item per client and minute
//! (`RATE#<key>`, `W#<window end>`), counted by a conditional `ADD`, so every copy of the
//! `ingest` function shares the count and none can pass the limit. The item expires a
//! minute after its window (`expires_at`); the stream consumer reads only lead items
//! (the template's filter), so the counts cost no scoring.

use async_trait::async_trait;
use aws_sdk_dynamodb::error::ProvideErrorMetadata;
use chrono::{DateTime, Utc};
use hotlead_app::StoreError;
use hotlead_app::ports::RequestCounter;

use crate::DynamoStore;
use crate::dynamo::{conditional, key, n};

/// The partition-key prefix of the counts.
pub const RATE_PREFIX: &str = "RATE#";

#[async_trait]
impl RequestCounter for DynamoStore {
    async fn count(
        &self,
        client: &str,
        window_end: DateTime<Utc>,
        limit: u32,
        weight: u32,
    ) -> Result<bool, StoreError> {
        let end = window_end.timestamp();
        let Some(room) = limit.checked_sub(weight) else {
            return Ok(false);
        };
        let out = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key(
                &format!("{RATE_PREFIX}{client}"),
                &format!("W#{end}"),
            )))
            .update_expression("ADD n :weight SET expires_at = :expires")
            .condition_expression("attribute_not_exists(n) OR n <= :room")
            .expression_attribute_values(":weight", n(weight))
            .expression_attribute_values(":room", n(room))
            .expression_attribute_values(":expires", n(end + crate::counter::KEEP_SECONDS))
            .send()
            .await;
        match out {
            // One address's item written past what DynamoDB takes for one key: that
            // address is flooding, and is refused rather than let through.
            Err(error)
                if matches!(
                    error.code(),
                    Some(
                        "ProvisionedThroughputExceededException"
                            | "ThrottlingException"
                            | "RequestLimitExceeded"
                    )
                ) =>
            {
                Ok(false)
            }
            out => conditional(out),
        }
    }
}

/// Seconds a count is kept after its window ends.
pub const KEEP_SECONDS: i64 = 60;
