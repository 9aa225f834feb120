//! Wiring only: logs, configuration from the environment, clients, then the router.

use std::sync::Arc;

use hotlead_aws::runtime::{FunctionEnv, init_tracing};

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    init_tracing();
    let env = FunctionEnv::from_env()?;
    let sdk = hotlead_aws::sdk_config().await;
    let store = Arc::new(hotlead_aws::DynamoStore::new(
        aws_sdk_dynamodb::Client::new(&sdk),
        env.table,
    ));
    let secret = std::env::var("HOTLEAD_WEBHOOK_SECRET")
        .ok()
        .filter(|s| !s.trim().is_empty());
    lambda_http::run(review::app(
        store,
        Arc::new(hotlead_app::SystemClock),
        secret,
    ))
    .await
}
