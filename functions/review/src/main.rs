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
    // Read once, before serving: HOTLEAD_WEBHOOK_SECRET_ARN on AWS (a secret that cannot
    // be read stops the start), HOTLEAD_WEBHOOK_SECRET for local use.
    let secret = hotlead_aws::secrets::read_at_start(&sdk, "HOTLEAD_WEBHOOK_SECRET").await?;
    lambda_http::run(review::app(
        store,
        Arc::new(hotlead_app::SystemClock),
        secret,
    ))
    .await
}
