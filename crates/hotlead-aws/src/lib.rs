//! The AWS adapters: the [`hotlead_app::Store`] port on one DynamoDB table
//! ([`DynamoStore`]) and the [`hotlead_app::Notifier`] port on SNS ([`SnsNotifier`]).
//! Endpoints and credentials come from the standard AWS environment
//! (`AWS_ENDPOINT_URL` points them at an emulator).

pub mod cost;
pub mod counter;
mod dynamo;
mod erase;
pub mod iam;
mod learning;
pub mod runtime;
pub mod secrets;
mod sns;
pub mod stream;
pub mod table;
#[cfg(test)]
mod test_http;

pub use dynamo::DynamoStore;
pub use sns::{SnsNotifier, SnsReviewNotifier};

/// The HTTPS client every SDK client uses: rustls on ring, the platform's root
/// certificates. (The SDK's default client is the same on aws-lc, which costs about a
/// megabyte per Lambda artifact.)
pub fn http_client() -> aws_smithy_runtime_api::client::http::SharedHttpClient {
    use aws_smithy_http_client::tls::{self, rustls_provider::CryptoMode};
    aws_smithy_http_client::Builder::new()
        .tls_provider(tls::Provider::Rustls(CryptoMode::Ring))
        .build_https()
}

/// The SDK configuration from the standard AWS environment, retrying throttled and
/// failed requests up to 5 times with exponential backoff and jitter.
pub async fn sdk_config() -> aws_config::SdkConfig {
    aws_config::defaults(aws_config::BehaviorVersion::latest())
        .http_client(http_client())
        .retry_config(aws_config::retry::RetryConfig::standard().with_max_attempts(5))
        .load()
        .await
}

/// What `hotlead aws init` made.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Provisioned {
    pub table: String,
    pub stream_arn: Option<String>,
    pub alerts_topic_arn: String,
    pub analysts_topic_arn: String,
}

/// Creates the table (with its stream) and the two topics.
pub async fn provision(
    config: &aws_config::SdkConfig,
    table: &str,
    alerts_topic: &str,
    analysts_topic: &str,
) -> Result<Provisioned, String> {
    let dynamo = aws_sdk_dynamodb::Client::new(config);
    let stream_arn = table::create_table(&dynamo, table).await?;
    let sns = aws_sdk_sns::Client::new(config);
    let topic = |name: String| {
        let sns = sns.clone();
        async move {
            sns.create_topic()
                .name(&name)
                .send()
                .await
                .map_err(|e| {
                    format!(
                        "cannot create topic {name}: {}",
                        aws_sdk_sns::error::DisplayErrorContext(e)
                    )
                })?
                .topic_arn
                .ok_or_else(|| format!("topic {name} has no ARN"))
        }
    };
    Ok(Provisioned {
        table: table.to_string(),
        stream_arn,
        alerts_topic_arn: topic(alerts_topic.to_string()).await?,
        analysts_topic_arn: topic(analysts_topic.to_string()).await?,
    })
}

/// The stream ARN of an existing table.
pub async fn stream_arn(config: &aws_config::SdkConfig, table: &str) -> Result<String, String> {
    let described = aws_sdk_dynamodb::Client::new(config)
        .describe_table()
        .table_name(table)
        .send()
        .await
        .map_err(|e| {
            format!(
                "cannot describe table {table}: {}",
                aws_sdk_dynamodb::error::DisplayErrorContext(e)
            )
        })?;
    described
        .table()
        .and_then(|t| t.latest_stream_arn())
        .map(str::to_string)
        .ok_or_else(|| format!("table {table} has no stream; create it with `hotlead aws init`"))
}
