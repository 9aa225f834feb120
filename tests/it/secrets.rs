//! Secrets read at start (`hotlead_aws::secrets`) against Secrets Manager in moto: the
//! value of a secret named by ARN, and a clear error for one that cannot be read.

use hotlead_aws::secrets::{Source, resolve, source};
use hotlead_tests::aws::{config, unique};

fn env(variable: &'static str, value: String) -> impl Fn(&str) -> Option<String> {
    move |name| (name == variable).then(|| value.clone())
}

#[tokio::test]
async fn a_secret_named_by_its_arn_is_read_once_at_start() {
    let client = aws_sdk_secretsmanager::Client::new(&config().await);
    let arn = client
        .create_secret()
        .name(unique("hotlead/write-key"))
        .secret_string("wk-from-secrets-manager")
        .send()
        .await
        .unwrap()
        .arn
        .unwrap();
    let from = source(
        "HOTLEAD_WRITE_KEY",
        env("HOTLEAD_WRITE_KEY_SECRET_ARN", arn.clone()),
    );
    assert_eq!(
        from,
        Source::SecretsManager {
            variable: "HOTLEAD_WRITE_KEY_SECRET_ARN".into(),
            id: arn
        }
    );
    let secret = resolve(&client, from).await.unwrap().unwrap();
    assert_eq!(secret.expose(), "wk-from-secrets-manager");
}

#[tokio::test]
async fn a_secret_that_does_not_exist_stops_the_start_naming_it() {
    let client = aws_sdk_secretsmanager::Client::new(&config().await);
    let missing = "arn:aws:secretsmanager:us-east-1:123456789012:secret:hotlead/nothing-AbCdEf";
    let from = source(
        "HOTLEAD_WEBHOOK_SECRET",
        env("HOTLEAD_WEBHOOK_SECRET_ARN", missing.to_string()),
    );
    let error = resolve(&client, from).await.unwrap_err().to_string();
    assert!(error.starts_with("HOTLEAD_WEBHOOK_SECRET_ARN: "), "{error}");
    assert!(error.contains(missing), "{error}");
}
