//! Wiring only: logs, configuration from the environment, clients, then the router.

use std::sync::Arc;

use hotlead_api::Auth;
use hotlead_aws::runtime::{FunctionEnv, init_tracing};

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    init_tracing();
    let env = FunctionEnv::from_env()?;
    let write_key = std::env::var("HOTLEAD_WRITE_KEY")
        .ok()
        .filter(|k| !k.is_empty());
    let sdk = hotlead_aws::sdk_config().await;
    let store = Arc::new(hotlead_aws::DynamoStore::new(
        aws_sdk_dynamodb::Client::new(&sdk),
        env.table,
    ));
    lambda_http::run(ingest::app(
        store,
        env.config,
        Auth {
            write_key,
            admin_token: None,
            webhook_secret: None,
        },
    ))
    .await
}
