//! The AWS adapters: the [`hotlead_app::Store`] port on one DynamoDB table
//! ([`DynamoStore`]) and the [`hotlead_app::Notifier`] port on SNS ([`SnsNotifier`]).
//! Endpoints and credentials come from the standard AWS environment
//! (`AWS_ENDPOINT_URL` points them at an emulator).

mod dynamo;
mod sns;
pub mod table;

pub use dynamo::DynamoStore;
pub use sns::SnsNotifier;

/// The SDK configuration from the standard AWS environment.
pub async fn sdk_config() -> aws_config::SdkConfig {
    aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await
}
