//! Shared helpers for the integration tests: paths in the repository, a built `hotlead`
//! binary, and small rules/leads/events builders.

use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use hotlead_core::{Event, RuleSet};
use serde_json::{Value, json};

pub mod fuzz_checks;

/// The repository root.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ sits in the repository")
        .to_path_buf()
}

/// A file of the repository, e.g. `examples/rules/seed.toml`.
pub fn repo_file(relative: &str) -> PathBuf {
    repo_root().join(relative)
}

/// Reads and compiles a rules file of the repository.
pub fn example_rules(relative: &str) -> RuleSet {
    let path = repo_file(relative);
    let source = std::fs::read_to_string(&path).expect("example rules file exists");
    RuleSet::from_toml(relative, &source).unwrap_or_else(|e| panic!("{e}"))
}

/// Compiles rules from TOML text, panicking with the diagnostics when invalid.
pub fn rules(source: &str) -> RuleSet {
    RuleSet::from_toml("test.toml", source).unwrap_or_else(|e| panic!("{e}"))
}

pub fn time(text: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(text)
        .expect("valid test time")
        .with_timezone(&Utc)
}

/// A Segment `page` call for `user` at `timestamp` on `path`.
pub fn page(message_id: &str, user: &str, timestamp: &str, path: &str) -> Event {
    segment(json!({
        "type": "page", "messageId": message_id, "userId": user, "timestamp": timestamp,
        "context": {"page": {"path": path}}
    }))
}

/// A Segment `track` call.
pub fn track(message_id: &str, user: &str, timestamp: &str, name: &str) -> Event {
    segment(json!({
        "type": "track", "messageId": message_id, "userId": user, "timestamp": timestamp, "event": name
    }))
}

pub fn segment(value: Value) -> Event {
    Event::from_segment(&value).unwrap_or_else(|e| panic!("test event {value}: {e}"))
}

/// A server started on port 0 with its own database and outbox in a temp directory.
pub struct TestApp {
    pub url: String,
    pub dir: tempfile::TempDir,
    pub outbox: PathBuf,
    pub client: reqwest::Client,
    running: hotlead::serve::Running,
}

impl std::fmt::Debug for TestApp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestApp").field("url", &self.url).finish()
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.running.stop();
    }
}

/// What a test server differs in.
#[derive(Debug, Default, Clone)]
pub struct AppSettings {
    /// Rules TOML (default: the seed rules).
    pub rules: Option<String>,
    /// Server config TOML.
    pub config: Option<String>,
    pub write_key: Option<String>,
    pub admin_token: Option<String>,
    pub webhook_secret: Option<String>,
}

/// Starts a server for one test.
pub async fn spawn_app(settings: AppSettings) -> TestApp {
    let dir = tempfile::tempdir().expect("temp dir");
    let write = |name: &str, text: &Option<String>| {
        text.as_ref().map(|t| {
            let path = dir.path().join(name);
            std::fs::write(&path, t).expect("write test file");
            path
        })
    };
    let options = hotlead::serve::ServeOptions {
        host: "127.0.0.1".into(),
        port: 0,
        backend: hotlead::serve::Backend::Embedded {
            db: dir.path().join("hotlead.db"),
            outbox: None,
        },
        rules: write("rules.toml", &settings.rules),
        config: write("hotlead.toml", &settings.config),
        auth: hotlead_api::Auth {
            write_key: settings.write_key,
            admin_token: settings.admin_token,
            webhook_secret: settings.webhook_secret,
        },
        tick: std::time::Duration::from_millis(50),
        open_admin: false,
        event_cache_bytes: hotlead_app::event_cache::DEFAULT_BYTES,
    };
    let running = hotlead::serve::start(options)
        .await
        .expect("the server starts");
    TestApp {
        url: running.url(),
        outbox: running.outbox.clone().unwrap_or_default(),
        dir,
        client: reqwest::Client::new(),
        running,
    }
}

impl TestApp {
    /// Alerts delivered so far, one JSON object each.
    pub fn alerts(&self) -> Vec<Value> {
        std::fs::read_to_string(&self.outbox)
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).expect("outbox lines are JSON"))
            .collect()
    }

    /// The lead as the API shows it.
    pub async fn lead(&self, id: &str) -> Value {
        self.client
            .get(format!("{}/v1/leads/{id}", self.url))
            .send()
            .await
            .expect("request")
            .json()
            .await
            .expect("JSON")
    }

    /// Waits (up to 10 s) until `check` holds for the lead.
    pub async fn wait_for_lead(&self, id: &str, check: impl Fn(&Value) -> bool) -> Value {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            let lead = self.lead(id).await;
            if check(&lead) {
                return lead;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "the lead never reached the expected state: {lead:#}"
            );
            tokio::time::sleep(std::time::Duration::from_millis(25)).await;
        }
    }

    /// Waits (up to 10 s) until `count` alerts were delivered, then a little longer to
    /// catch any extra one.
    pub async fn wait_for_alerts(&self, count: usize) -> Vec<Value> {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while self.alerts().len() < count {
            assert!(
                std::time::Instant::now() < deadline,
                "only {} alerts: {:#?}",
                self.alerts().len(),
                self.alerts()
            );
            tokio::time::sleep(std::time::Duration::from_millis(25)).await;
        }
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        self.alerts()
    }
}

/// The AWS emulator (moto) the AWS tests run against.
pub mod aws {
    use aws_sdk_dynamodb::config::Credentials;

    /// How to get an emulator, for failure messages.
    pub const HOW_TO_START: &str = "these tests run against the moto AWS emulator: scripts/test installs and starts it; \
        by hand: python3 -m venv .venv && .venv/bin/pip install 'moto[server]==5.2.5' && .venv/bin/python scripts/moto-server.py 127.0.0.1 5050, \
        then export HOTLEAD_TEST_AWS_ENDPOINT=http://127.0.0.1:5050";

    /// The emulator's endpoint, checked to answer. Only a loopback endpoint is accepted,
    /// so the tests never touch a real account.
    pub fn endpoint() -> String {
        let endpoint = std::env::var("HOTLEAD_TEST_AWS_ENDPOINT")
            .unwrap_or_else(|_| panic!("HOTLEAD_TEST_AWS_ENDPOINT is not set; {HOW_TO_START}"));
        let host = endpoint
            .trim_start_matches("http://")
            .split('/')
            .next()
            .unwrap_or_default()
            .to_string();
        assert!(
            host.starts_with("127.0.0.1:") || host.starts_with("localhost:"),
            "{endpoint} is not a local emulator"
        );
        std::net::TcpStream::connect(&host)
            .unwrap_or_else(|e| panic!("nothing answers at {endpoint} ({e}); {HOW_TO_START}"));
        endpoint
    }

    /// SDK configuration for the emulator, with dummy credentials.
    pub async fn config() -> aws_config::SdkConfig {
        aws_config::defaults(aws_config::BehaviorVersion::latest())
            .http_client(hotlead_aws::http_client())
            .endpoint_url(endpoint())
            .region(aws_config::Region::new("us-east-1"))
            .credentials_provider(Credentials::new("test", "test", None, None, "moto"))
            .load()
            .await
    }

    /// A unique name for a test's own table or topic.
    pub fn unique(prefix: &str) -> String {
        static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        format!("{prefix}-{}-{nanos}-{n}", std::process::id())
    }

    /// A DynamoDB store on a new table of its own.
    pub async fn fresh_table() -> hotlead_aws::DynamoStore {
        let client = aws_sdk_dynamodb::Client::new(&config().await);
        let table = unique("hotlead-test");
        hotlead_aws::table::create_table(&client, &table)
            .await
            .expect("the table is created");
        hotlead_aws::DynamoStore::new(client, table)
    }
}

/// A real suggestion, learned from 300 hand-made leads (won leads are on the `pro` plan).
pub fn a_suggestion() -> hotlead_learn::Suggestion {
    let decided = time("2026-10-01T00:00:00Z");
    let examples: Vec<hotlead_learn::Example> = (0..300)
        .map(|i| {
            let won = i % 3 == 0;
            let plan = if won || i % 7 == 0 { "pro" } else { "free" };
            hotlead_learn::Example {
                id: format!("L-{i}"),
                line: i as u64 + 2,
                lead: hotlead_core::Lead::from_raw(format!("L-{i}"), [("plan", plan)]),
                events: Vec::new(),
                won,
                decided_at: decided,
                created_at: None,
            }
        })
        .collect();
    let options = hotlead_learn::LearnOptions {
        discover: Some(Default::default()),
        min_outcomes: 100,
        min_won: 10,
        ..Default::default()
    };
    let mut progress = |_| {};
    let seconds = || 0.0;
    let mut hooks = hotlead_learn::Hooks {
        progress: &mut progress,
        seconds: &seconds,
    };
    match hotlead_learn::learn(&examples, None, &options, &mut hooks) {
        Ok(hotlead_learn::Outcome::Suggested(s)) => *s,
        other => panic!("expected a suggestion, got {other:?}"),
    }
}

/// The fault-injecting adapters (`hotlead-app`'s `faults` feature).
pub use hotlead_app::faults;
