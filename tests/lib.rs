//! Shared helpers for the integration tests: paths in the repository, a built `hotlead`
//! binary, and small rules/leads/events builders.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

use chrono::{DateTime, Utc};
use hotlead_core::{Event, RuleSet};
use serde_json::{Value, json};

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

/// The `hotlead` binary, built once per test run with the cargo that runs the tests, so
/// it is never stale.
pub fn hotlead_bin() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let status = Command::new(cargo)
            .args(["build", "--quiet", "-p", "hotlead", "--bin", "hotlead"])
            .current_dir(repo_root())
            .status()
            .expect("cargo runs");
        assert!(status.success(), "building the hotlead binary failed");
        // target/debug/deps/it-xxxx -> target/debug/hotlead
        let exe = std::env::current_exe().expect("test executable path");
        let dir = exe
            .parent()
            .and_then(Path::parent)
            .expect("target/<profile>/deps");
        let bin = dir.join(format!("hotlead{}", std::env::consts::EXE_SUFFIX));
        assert!(bin.exists(), "no binary at {}", bin.display());
        bin
    })
}

/// Runs the real `hotlead` binary with `args` in the repository root.
pub fn hotlead(args: &[&str]) -> Output {
    Command::new(hotlead_bin())
        .args(args)
        .current_dir(repo_root())
        .output()
        .expect("hotlead runs")
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
