//! Secrets a function reads once, when it starts (before it serves anything), and keeps
//! for the life of its execution environment.
//!
//! For a secret `NAME` (e.g. `HOTLEAD_WRITE_KEY`):
//! - `NAME_SECRET_ARN` set (`NAME_ARN` for a name ending in `_SECRET`, as
//!   `HOTLEAD_WEBHOOK_SECRET_ARN`; the deployment template sets it): the value is the
//!   `SecretString` of that Secrets Manager secret (an ARN or a name). If it cannot be
//!   read, the function does not start; the error names the variable and the secret,
//!   never a value.
//! - otherwise `NAME` itself, a plain value in the environment: for local use only
//!   (`hotlead serve`, a function run by hand against an emulator).
//! - neither: no secret.
//!
//! A rotated value reaches a function only with a new execution environment (see
//! docs/operations.md, "Rotating a secret").

use std::fmt;

use aws_sdk_secretsmanager::Client;
use aws_sdk_secretsmanager::error::DisplayErrorContext;

/// A secret value. Its `Debug` never shows the value, so it cannot reach a log by a
/// `{:?}`; [`Secret::expose`] hands it over where it is used.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Secret {
        Secret(value.into())
    }

    /// The value, for the one place that checks a credential with it.
    pub fn expose(self) -> String {
        self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

/// Why a configured secret could not be read. Names the variable and the secret id (an
/// ARN or a name, which are not secret), never a value.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error("{variable}: cannot read the secret {id} from Secrets Manager: {reason}")]
    Unreadable {
        variable: String,
        id: String,
        reason: String,
    },
    #[error(
        "{variable}: the secret {id} has no usable value (it is empty, blank or binary; \
         store the value as a plain SecretString)"
    )]
    NoValue { variable: String, id: String },
    #[error("{variable}: the secret is shorter than {min} bytes; use a longer random value")]
    TooShort { variable: String, min: usize },
}

/// Where the secret `name` comes from, as the environment says.
#[derive(Debug, PartialEq, Eq)]
pub enum Source {
    /// `<name>_SECRET_ARN`: a Secrets Manager secret id.
    SecretsManager { variable: String, id: String },
    /// `<name>` itself (local use).
    Plain(Secret),
    /// Neither is set.
    Absent,
}

/// The variable naming the Secrets Manager secret that holds `name`: `<name>_SECRET_ARN`
/// (`HOTLEAD_WRITE_KEY_SECRET_ARN`), or `<name>_ARN` when `name` already ends in
/// `_SECRET` (`HOTLEAD_WEBHOOK_SECRET_ARN`).
pub fn arn_variable(name: &str) -> String {
    if name.ends_with("_SECRET") {
        format!("{name}_ARN")
    } else {
        format!("{name}_SECRET_ARN")
    }
}

/// Decides where `name` comes from; `env` reads a variable (`std::env::var` in a function).
/// Empty and blank values count as unset.
pub fn source(name: &str, env: impl Fn(&str) -> Option<String>) -> Source {
    let set = |variable: &str| env(variable).filter(|v| !v.trim().is_empty());
    let variable = arn_variable(name);
    if let Some(id) = set(&variable) {
        if set(name).is_some() {
            tracing::warn!(
                ignored = name,
                used = %variable,
                "both a secret id and a plain value are set; the plain value is ignored"
            );
        }
        return Source::SecretsManager {
            variable,
            id: id.trim().to_string(),
        };
    }
    match set(name) {
        Some(value) => Source::Plain(Secret(value)),
        None => Source::Absent,
    }
}

/// Reads the secret `name` as [`source`] decides, from the process environment. Called
/// once at start; the caller keeps the value.
pub async fn read(sdk: &aws_config::SdkConfig, name: &str) -> Result<Option<Secret>, SecretError> {
    resolve(
        &Client::new(sdk),
        source(name, |variable| std::env::var(variable).ok()),
    )
    .await
}

/// [`read`] for a function's `main`: the value handed over as the plain string the router
/// takes; a failure is logged (naming the secret, not a value) and returned, so the
/// function stops before it serves.
pub async fn read_at_start(
    sdk: &aws_config::SdkConfig,
    name: &str,
) -> Result<Option<String>, SecretError> {
    match read(sdk, name).await {
        Ok(secret) => Ok(secret.map(Secret::expose)),
        Err(error) => {
            tracing::error!(error = %error, "a configured secret cannot be read; not starting");
            Err(error)
        }
    }
}

/// The secret that signs the rep's lead page links (`HOTLEAD_LINK_SECRET`, by its ARN on
/// AWS), read once at start; `None` when none is configured (alerts then link the lead
/// API instead of a page). One shorter than [`hotlead_app::links::MIN_SECRET_BYTES`]
/// stops the start.
pub async fn link_key_at_start(
    sdk: &aws_config::SdkConfig,
) -> Result<Option<hotlead_app::links::LinkKey>, SecretError> {
    const NAME: &str = "HOTLEAD_LINK_SECRET";
    let Some(value) = read_at_start(sdk, NAME).await? else {
        return Ok(None);
    };
    hotlead_app::links::LinkKey::new(value.trim().as_bytes())
        .map(Some)
        .ok_or_else(|| {
            let error = SecretError::TooShort {
                variable: NAME.into(),
                min: hotlead_app::links::MIN_SECRET_BYTES,
            };
            tracing::error!(error = %error, "the link secret is too short; not starting");
            error
        })
}

/// Turns a [`Source`] into the value: one `GetSecretValue` call for a Secrets Manager
/// secret (the SDK retries throttling and transient faults).
pub async fn resolve(client: &Client, source: Source) -> Result<Option<Secret>, SecretError> {
    let (variable, id) = match source {
        Source::SecretsManager { variable, id } => (variable, id),
        Source::Plain(secret) => {
            tracing::info!("a secret is given in plain in the environment (local use)");
            return Ok(Some(secret));
        }
        Source::Absent => return Ok(None),
    };
    let out = client
        .get_secret_value()
        .secret_id(&id)
        .send()
        .await
        .map_err(|e| SecretError::Unreadable {
            variable: variable.clone(),
            id: id.clone(),
            reason: DisplayErrorContext(e).to_string(),
        })?;
    match out.secret_string() {
        Some(value) if !value.trim().is_empty() => {
            tracing::info!(variable = %variable, secret = %id, "secret read from Secrets Manager");
            Ok(Some(Secret(value.to_string())))
        }
        _ => Err(SecretError::NoValue { variable, id }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_http::{FakeHttp, json_error, json_ok};

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let pairs: Vec<(String, String)> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |name| {
            pairs
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.clone())
        }
    }

    fn client(fake: &FakeHttp) -> Client {
        Client::from_conf(
            aws_sdk_secretsmanager::Config::builder()
                .behavior_version(aws_sdk_secretsmanager::config::BehaviorVersion::latest())
                .region(aws_sdk_secretsmanager::config::Region::new(
                    "ap-northeast-1",
                ))
                .credentials_provider(aws_sdk_secretsmanager::config::Credentials::new(
                    "AKIDTEST", "test", None, None, "test",
                ))
                .retry_config(aws_sdk_secretsmanager::config::retry::RetryConfig::disabled())
                .http_client(fake.client())
                .build(),
        )
    }

    const ARN: &str =
        "arn:aws:secretsmanager:ap-northeast-1:123456789012:secret:hotlead/write-key-AbCdEf";

    #[test]
    fn the_secret_id_wins_over_a_plain_value_and_blank_counts_as_unset() {
        let both = env(&[
            ("HOTLEAD_WRITE_KEY_SECRET_ARN", ARN),
            ("HOTLEAD_WRITE_KEY", "plain"),
        ]);
        assert_eq!(
            source("HOTLEAD_WRITE_KEY", both),
            Source::SecretsManager {
                variable: "HOTLEAD_WRITE_KEY_SECRET_ARN".into(),
                id: ARN.into()
            }
        );
        let plain = env(&[
            ("HOTLEAD_WRITE_KEY_SECRET_ARN", " "),
            ("HOTLEAD_WRITE_KEY", "k"),
        ]);
        assert_eq!(
            source("HOTLEAD_WRITE_KEY", plain),
            Source::Plain(Secret::new("k"))
        );
        assert_eq!(source("HOTLEAD_WRITE_KEY", env(&[])), Source::Absent);
    }

    #[test]
    fn the_variables_are_the_ones_the_template_sets() {
        assert_eq!(
            arn_variable("HOTLEAD_WRITE_KEY"),
            "HOTLEAD_WRITE_KEY_SECRET_ARN"
        );
        assert_eq!(
            arn_variable("HOTLEAD_WEBHOOK_SECRET"),
            "HOTLEAD_WEBHOOK_SECRET_ARN"
        );
    }

    #[test]
    fn debug_never_shows_the_value() {
        let shown = format!("{:?}", Source::Plain(Secret::new("s3cr3t-value")));
        assert!(!shown.contains("s3cr3t-value"), "{shown}");
    }

    #[tokio::test]
    async fn a_configured_secret_is_read_with_one_get_secret_value_call() {
        let fake = FakeHttp::new(|request| {
            assert_eq!(request.target, "secretsmanager.GetSecretValue");
            assert_eq!(request.body["SecretId"], ARN);
            json_ok(
                serde_json::json!({"ARN": ARN, "Name": "hotlead/write-key", "SecretString": "wk-123"}),
            )
        });
        let source = source(
            "HOTLEAD_WRITE_KEY",
            env(&[("HOTLEAD_WRITE_KEY_SECRET_ARN", ARN)]),
        );
        let secret = resolve(&client(&fake), source).await.unwrap().unwrap();
        assert_eq!(secret.expose(), "wk-123");
        assert_eq!(fake.requests().len(), 1);
    }

    #[tokio::test]
    async fn an_unreadable_secret_is_an_error_naming_the_variable_and_the_secret() {
        let fake = FakeHttp::new(|_| {
            json_error(
                400,
                "ResourceNotFoundException",
                "Secrets Manager can't find the specified secret.",
            )
        });
        let source = source(
            "HOTLEAD_WRITE_KEY",
            env(&[("HOTLEAD_WRITE_KEY_SECRET_ARN", ARN)]),
        );
        let error = resolve(&client(&fake), source)
            .await
            .unwrap_err()
            .to_string();
        assert!(
            error.starts_with("HOTLEAD_WRITE_KEY_SECRET_ARN: "),
            "{error}"
        );
        assert!(error.contains(ARN), "{error}");
        assert!(error.contains("ResourceNotFoundException"), "{error}");
    }

    #[tokio::test]
    async fn a_secret_without_a_string_value_is_refused() {
        let fake = FakeHttp::new(|_| {
            json_ok(
                serde_json::json!({"ARN": ARN, "Name": "hotlead/write-key", "SecretBinary": "AAEC"}),
            )
        });
        let source = source(
            "HOTLEAD_WRITE_KEY",
            env(&[("HOTLEAD_WRITE_KEY_SECRET_ARN", ARN)]),
        );
        let error = resolve(&client(&fake), source).await.unwrap_err();
        assert!(matches!(error, SecretError::NoValue { .. }), "{error}");
    }

    #[tokio::test]
    async fn a_plain_value_or_none_makes_no_call() {
        let fake = FakeHttp::new(|_| panic!("no call expected"));
        let plain = source(
            "HOTLEAD_WEBHOOK_SECRET",
            env(&[("HOTLEAD_WEBHOOK_SECRET", "h")]),
        );
        assert_eq!(
            resolve(&client(&fake), plain).await.unwrap(),
            Some(Secret::new("h"))
        );
        let none = source("HOTLEAD_WEBHOOK_SECRET", env(&[]));
        assert_eq!(resolve(&client(&fake), none).await.unwrap(), None);
        assert!(fake.requests().is_empty());
    }
}
