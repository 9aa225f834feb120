//! What every Lambda function's `main` shares: JSON logs, typed configuration from the
//! environment that fails fast naming what to set, SDK clients built once.

use hotlead_app::Config;
use hotlead_core::RuleSet;

/// JSON log lines for CloudWatch (`RUST_LOG` / `HOTLEAD_LOG` filter, default `info`).
/// Nothing in the product logs personal data.
pub fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("HOTLEAD_LOG")
        .or_else(|_| tracing_subscriber::EnvFilter::try_from_default_env())
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .json()
        .with_env_filter(filter)
        .without_time()
        .with_target(false)
        .try_init();
}

/// A configuration problem: which variable, and what is wrong.
#[derive(Debug, thiserror::Error)]
#[error("{variable}: {message}")]
pub struct EnvError {
    pub variable: String,
    pub message: String,
}

fn variable(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

/// A required variable.
pub fn required(name: &str) -> Result<String, EnvError> {
    variable(name).ok_or_else(|| EnvError {
        variable: name.into(),
        message: "is not set; the deployment template sets it".into(),
    })
}

/// The function configuration common to all functions.
#[derive(Debug)]
pub struct FunctionEnv {
    /// `HOTLEAD_TABLE`.
    pub table: String,
    /// `HOTLEAD_RULES`: a rules file in the package (default: the seed rules).
    pub rules: RuleSet,
    /// `HOTLEAD_CONFIG`: a server configuration file in the package (default: none);
    /// `HOTLEAD_PUBLIC_URL` fills its `public_url` when the file gives none.
    pub config: Config,
}

/// Reads the file a variable names and parses it with `parse`; errors name the variable.
fn from_file<T, E: std::fmt::Display>(
    name: &str,
    path: &str,
    parse: impl FnOnce(&str, &str) -> Result<T, E>,
) -> Result<T, EnvError> {
    let error = |message: String| EnvError {
        variable: name.into(),
        message,
    };
    let text = std::fs::read_to_string(path).map_err(|e| error(format!("{path}: {e}")))?;
    parse(path, &text).map_err(|e| error(e.to_string()))
}

impl FunctionEnv {
    pub fn from_env() -> Result<FunctionEnv, EnvError> {
        let table = required("HOTLEAD_TABLE")?;
        let rules = match variable("HOTLEAD_RULES") {
            Some(path) => from_file("HOTLEAD_RULES", &path, RuleSet::from_toml)?,
            None => RuleSet::from_toml("(bundled seed rules)", hotlead_core::rules::SEED).map_err(
                |e| EnvError {
                    variable: "HOTLEAD_RULES".into(),
                    message: e.to_string(),
                },
            )?,
        };
        let mut config = match variable("HOTLEAD_CONFIG") {
            Some(path) => from_file("HOTLEAD_CONFIG", &path, Config::from_toml)?,
            None => Config::default(),
        };
        // The public API's address (the template's), for links in alerts, unless the
        // configuration file names one (a custom domain).
        if config.public_url.is_none() {
            config.public_url = variable("HOTLEAD_PUBLIC_URL");
        }
        Ok(FunctionEnv {
            table,
            rules,
            config,
        })
    }
}
