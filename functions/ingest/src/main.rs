//! Wiring only: logs, configuration from the environment, clients, then the router.

use std::sync::Arc;

use hotlead_api::Auth;
use hotlead_app::SystemClock;
use hotlead_app::links::Links;
use hotlead_app::pages::LeadPages;
use hotlead_aws::runtime::{FunctionEnv, init_tracing};

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    init_tracing();
    let env = FunctionEnv::from_env()?;
    let sdk = hotlead_aws::sdk_config().await;
    // Read once, before serving: HOTLEAD_WRITE_KEY_SECRET_ARN on AWS (a secret that
    // cannot be read stops the start), HOTLEAD_WRITE_KEY for local use.
    let write_key = hotlead_aws::secrets::read_at_start(&sdk, "HOTLEAD_WRITE_KEY").await?;
    let store = Arc::new(hotlead_aws::DynamoStore::new(
        aws_sdk_dynamodb::Client::new(&sdk),
        env.table,
    ));
    // The lead pages' link secret (HOTLEAD_LINK_SECRET_ARN): with it, the public API
    // serves the rep's lead pages the score function's alerts link to.
    let pages = hotlead_aws::secrets::link_key_at_start(&sdk)
        .await?
        .map(|key| {
            Arc::new(LeadPages::new(
                Arc::new(Links::for_config(key, &env.config)),
                store.clone(),
                Arc::new(SystemClock),
                env.config.clone(),
            ))
        });
    lambda_http::run(ingest::app(
        store.clone(),
        store,
        env.config,
        Auth {
            write_key,
            admin_token: None,
            webhook_secret: None,
        },
        pages,
    ))
    .await
}
