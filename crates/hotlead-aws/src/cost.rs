//! Counting the requests the SDK sends, per operation: how the request costs in
//! `docs/benchmarks.md` are measured, and a way to watch them in production.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use aws_sdk_dynamodb::config::interceptors::BeforeTransmitInterceptorContextRef;
use aws_sdk_dynamodb::config::{ConfigBag, Intercept, RuntimeComponents};
use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::orchestrator::Metadata;

/// DynamoDB operations that write.
pub const WRITE_OPERATIONS: &[&str] = &[
    "PutItem",
    "UpdateItem",
    "DeleteItem",
    "TransactWriteItems",
    "BatchWriteItem",
];
/// DynamoDB operations that read.
pub const READ_OPERATIONS: &[&str] = &[
    "GetItem",
    "BatchGetItem",
    "Query",
    "Scan",
    "TransactGetItems",
];

/// Counts every request sent (each retry too), by operation name.
#[derive(Debug, Clone, Default)]
pub struct RequestCounter {
    counts: Arc<Mutex<BTreeMap<String, u64>>>,
}

impl RequestCounter {
    /// Counts so far, by operation.
    pub fn counts(&self) -> BTreeMap<String, u64> {
        self.counts.lock().map(|c| c.clone()).unwrap_or_default()
    }

    /// Read and write requests since the last call, and resets the counts.
    pub fn take(&self) -> (u64, u64) {
        let counts = self
            .counts
            .lock()
            .map(|mut c| std::mem::take(&mut *c))
            .unwrap_or_default();
        let sum = |ops: &[&str]| {
            counts
                .iter()
                .filter(|(op, _)| ops.contains(&op.as_str()))
                .map(|(_, n)| n)
                .sum()
        };
        (sum(READ_OPERATIONS), sum(WRITE_OPERATIONS))
    }
}

impl Intercept for RequestCounter {
    fn name(&self) -> &'static str {
        "RequestCounter"
    }

    fn read_before_transmit(
        &self,
        _context: &BeforeTransmitInterceptorContextRef<'_>,
        _components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        if let (Some(metadata), Ok(mut counts)) = (cfg.load::<Metadata>(), self.counts.lock()) {
            *counts.entry(metadata.name().to_string()).or_default() += 1;
        }
        Ok(())
    }
}
