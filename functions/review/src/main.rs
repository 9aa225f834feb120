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
    lambda_http::run(review::app(store)).await
}
