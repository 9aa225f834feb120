//! The shape of the workspace, checked from `cargo metadata`: the domain and the learning
//! code stay pure. A dependency on a runtime, an AWS crate, a database or an HTTP stack
//! (directly or through another crate) fails here.

use std::collections::{BTreeSet, HashMap};

use serde_json::Value;

/// Crates the pure ones must never reach, by name or name prefix.
const FORBIDDEN: &[&str] = &[
    "tokio",
    "aws-",
    "aws_",
    "rusqlite",
    "libsqlite3-sys",
    "axum",
    "hyper",
    "reqwest",
    "lambda_",
    "tower",
];

/// The machine's target triple, as rustc names it.
fn host() -> String {
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let output = std::process::Command::new(rustc)
        .arg("-vV")
        .output()
        .expect("rustc -vV runs");
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("host: ").map(str::to_string))
        .expect("rustc -vV names the host")
}

fn metadata() -> Value {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    // This platform's dependencies only: they are what the build downloaded.
    let output = std::process::Command::new(cargo)
        .args([
            "metadata",
            "--format-version",
            "1",
            "--offline",
            "--filter-platform",
        ])
        .arg(host())
        .current_dir(hotlead_tests::repo_root())
        .output()
        .expect("cargo metadata runs");
    assert!(
        output.status.success(),
        "cargo metadata failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("cargo metadata prints JSON")
}

/// Every crate `package` builds with (normal and build dependencies, not dev ones),
/// transitively, by name.
fn dependencies_of(metadata: &Value, package: &str) -> BTreeSet<String> {
    let names: HashMap<&str, &str> = metadata["packages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p["id"].as_str().unwrap(), p["name"].as_str().unwrap()))
        .collect();
    let nodes: HashMap<&str, &Value> = metadata["resolve"]["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| (n["id"].as_str().unwrap(), n))
        .collect();
    let root = names
        .iter()
        .find(|(_, name)| **name == package)
        .map(|(id, _)| *id)
        .unwrap_or_else(|| panic!("{package} is a workspace member"));
    let mut seen = BTreeSet::new();
    let mut stack = vec![root];
    while let Some(id) = stack.pop() {
        for dep in nodes[id]["deps"].as_array().unwrap() {
            let not_dev = dep["dep_kinds"]
                .as_array()
                .unwrap()
                .iter()
                .any(|k| k["kind"].as_str() != Some("dev"));
            let dep_id = dep["pkg"].as_str().unwrap();
            if not_dev && seen.insert(names[dep_id].to_string()) {
                stack.push(dep_id);
            }
        }
    }
    seen
}

#[test]
fn the_domain_and_the_learning_code_reach_no_runtime_cloud_database_or_http_crate() {
    let metadata = metadata();
    for package in ["hotlead-core", "hotlead-learn"] {
        let dependencies = dependencies_of(&metadata, package);
        assert!(
            dependencies.contains("serde"),
            "{package}: the walk found its dependencies"
        );
        let forbidden: Vec<&String> = dependencies
            .iter()
            .filter(|d| FORBIDDEN.iter().any(|f| d.starts_with(f)))
            .collect();
        assert!(
            forbidden.is_empty(),
            "{package} must stay pure (no I/O, no runtime), but depends on {forbidden:?}"
        );
    }
}

#[test]
fn the_check_sees_a_forbidden_dependency_where_there_is_one() {
    let dependencies = dependencies_of(&metadata(), "hotlead-app");
    assert!(
        dependencies.contains("tokio"),
        "hotlead-app uses tokio: {dependencies:?}"
    );
}
