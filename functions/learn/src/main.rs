//! Wiring only: logs, configuration from the environment, clients, then the handler.

use std::sync::Arc;

use hotlead_app::SystemClock;
use hotlead_app::ports::Clock;
use hotlead_app::review::Review;
use hotlead_aws::runtime::{init_tracing, required};
use lambda_runtime::{LambdaEvent, service_fn};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    init_tracing();
    let table = required("HOTLEAD_TABLE")?;
    let topic = required("HOTLEAD_ANALYSTS_TOPIC_ARN")?;
    let mut settings = learn::settings(|name| std::env::var(name).ok())?;
    let sdk = hotlead_aws::sdk_config().await;
    // The suggestion page's link secret (HOTLEAD_LINK_SECRET_ARN) and the public API's
    // address (HOTLEAD_PUBLIC_URL): with both, the note links a read-only page.
    if let (Some(key), Some(public_url)) = (
        hotlead_aws::secrets::link_key_at_start(&sdk).await?,
        std::env::var("HOTLEAD_PUBLIC_URL")
            .ok()
            .filter(|u| !u.trim().is_empty()),
    ) {
        settings.links = Some(hotlead_app::links::Links::new(
            key,
            &public_url,
            hotlead_app::links::DEFAULT_LINK_DAYS,
        ));
    }
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let review = Review::new(
        Arc::new(hotlead_aws::DynamoStore::new(
            aws_sdk_dynamodb::Client::new(&sdk),
            table,
        )),
        clock.clone(),
    );
    let notifier = hotlead_aws::SnsReviewNotifier::new(aws_sdk_sns::Client::new(&sdk), topic);
    let (review, notifier, settings, clock) = (&review, &notifier, &settings, &clock);
    lambda_runtime::run(service_fn(
        move |_event: LambdaEvent<serde_json::Value>| async move {
            let id = hotlead_app::review::new_suggestion_id(clock.now());
            learn::handle(review, notifier, settings, id)
                .await
                .map_err(|e| {
                    lambda_runtime::Error::from(hotlead_app::ports::with_causes(&e).to_string())
                })
        },
    ))
    .await
}
