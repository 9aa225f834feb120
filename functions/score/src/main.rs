//! Wiring only: logs, configuration from the environment, clients, then the handler.

use std::sync::Arc;

use hotlead_app::links::Links;
use hotlead_app::{Scorer, SystemClock};
use hotlead_aws::runtime::{FunctionEnv, init_tracing, required};
use lambda_runtime::{LambdaEvent, service_fn};

/// mimalloc, as `hotlead` uses: a score allocates its explanation's lists, and a batch of
/// leads scores about 6% faster with it than with the C library's allocator (see
/// docs/benchmarks.md, "Scoring one lead").
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    init_tracing();
    let env = FunctionEnv::from_env()?;
    let topic = required("HOTLEAD_ALERTS_TOPIC_ARN")?;
    let sdk = hotlead_aws::sdk_config().await;
    let store = Arc::new(hotlead_aws::DynamoStore::new(
        aws_sdk_dynamodb::Client::new(&sdk),
        env.table,
    ));
    // With the link secret (HOTLEAD_LINK_SECRET_ARN), alerts end with a signed link to the
    // lead's page on the public API (HOTLEAD_PUBLIC_URL); without, with the lead API's.
    let links = hotlead_aws::secrets::link_key_at_start(&sdk)
        .await?
        .map(|key| Arc::new(Links::for_config(key, &env.config)));
    let scorer = Scorer::new(
        store.clone(),
        Arc::new(hotlead_aws::SnsNotifier::new(
            aws_sdk_sns::Client::new(&sdk),
            topic,
        )),
        Arc::new(SystemClock),
        Arc::new(env.rules),
        Arc::new(env.config),
    )
    // HOTLEAD_RULES is the first version; approved suggestions and rollbacks follow.
    .with_rules_from(store);
    let scorer = match links {
        Some(links) => scorer.with_links(links),
        None => scorer,
    };
    let scorer = &scorer;
    lambda_runtime::run(service_fn(
        move |event: LambdaEvent<score::Invocation>| async move {
            let answer = score::handle_invocation(scorer, event.payload).await?;
            let (trigger, round) = answer.round();
            // CloudWatch Logs reads metrics from this line (embedded metric format).
            println!(
                "{}",
                score::metrics_line(round, trigger, chrono::Utc::now().timestamp_millis())
            );
            Ok::<_, lambda_runtime::Error>(answer.into_response())
        },
    ))
    .await
}
