//! `docs/openapi.json` and the router say the same: every route of the router is in the
//! document and answers; every operation of the document is a route; the request fields
//! of the typed bodies and queries are the same on both sides.

use std::collections::BTreeSet;

use hotlead_tests::{AppSettings, repo_file, spawn_app};
use serde_json::Value;

fn document() -> Value {
    let text = std::fs::read_to_string(repo_file("docs/openapi.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

/// (method, path) of every operation in the document.
fn documented(doc: &Value) -> BTreeSet<(String, String)> {
    let mut ops = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            ops.insert((method.to_uppercase(), path.clone()));
        }
    }
    ops
}

/// (method, path) of every `.route(...)` in the router's source.
fn routed() -> BTreeSet<(String, String)> {
    let pattern =
        regex::Regex::new(r#"\.route\(\s*"([^"]+)",\s*(get|post|segment_route)\(([^\n]*)"#)
            .unwrap();
    let mut routes = BTreeSet::new();
    for file in [
        "crates/hotlead-api/src/lib.rs",
        "crates/hotlead-api/src/review.rs",
    ] {
        let source = std::fs::read_to_string(repo_file(file)).unwrap();
        for capture in pattern.captures_iter(&source) {
            let method = match &capture[2] {
                "get" => "GET",
                _ => "POST",
            };
            routes.insert((method.to_string(), capture[1].to_string()));
            // A second method on the same route: `get(read).delete(erase)`, `get(show).post(act)`.
            if capture[3].contains(".delete(") {
                routes.insert(("DELETE".to_string(), capture[1].to_string()));
            }
            if capture[3].contains(".post(") {
                routes.insert(("POST".to_string(), capture[1].to_string()));
            }
        }
    }
    routes
}

#[test]
fn the_document_is_openapi_3_1_and_lists_exactly_the_routes() {
    let doc = document();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3.1"));
    let documented = documented(&doc);
    let routed = routed();
    assert!(
        routed.len() >= 20,
        "the route pattern found too little: {routed:?}"
    );
    let missing: Vec<_> = routed.difference(&documented).collect();
    let extra: Vec<_> = documented.difference(&routed).collect();
    assert!(
        missing.is_empty(),
        "routes not in docs/openapi.json: {missing:?}"
    );
    assert!(
        extra.is_empty(),
        "operations in docs/openapi.json with no route: {extra:?}"
    );
}

#[tokio::test]
async fn every_documented_operation_answers_from_the_router() {
    let app = spawn_app(AppSettings::default()).await;
    for (method, path) in documented(&document()) {
        let url = format!(
            "{}{}",
            app.url,
            path.replace("{version}", "1").replace(['{', '}'], "")
        );
        let request = match method.as_str() {
            "GET" => app.client.get(&url),
            "POST" => app.client.post(&url),
            "DELETE" => app.client.delete(&url),
            other => panic!("unexpected method {other}"),
        };
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let body = response.text().await.unwrap_or_default();
        assert_ne!(status, 405, "{method} {path}: method not allowed");
        assert!(
            !(status == 404 && body.contains("no such route")),
            "{method} {path}: no such route"
        );
    }
}

fn properties(schema: &Value) -> BTreeSet<String> {
    schema["properties"]
        .as_object()
        .map(|p| p.keys().cloned().collect())
        .unwrap_or_default()
}

fn query_parameters(doc: &Value, path: &str) -> BTreeSet<String> {
    doc["paths"][path]["get"]["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["in"] == "query")
        .map(|p| p["name"].as_str().unwrap().to_string())
        .collect()
}

fn schema_of<T: schemars::JsonSchema>() -> Value {
    serde_json::to_value(schemars::schema_for!(T)).unwrap()
}

#[test]
fn request_fields_are_the_same_in_the_document_and_the_code() {
    let doc = document();
    let schemas = &doc["components"]["schemas"];
    assert_eq!(
        properties(&schemas["Outcome"]),
        properties(&schema_of::<hotlead_app::review::OutcomeInput>())
    );
    assert_eq!(
        properties(&schemas["Decision"]),
        properties(&schema_of::<hotlead_api::Decision>())
    );
    assert_eq!(
        query_parameters(&doc, "/v1/leads"),
        properties(&schema_of::<hotlead_api::RankingQuery>())
    );
    assert_eq!(
        query_parameters(&doc, "/v1/suggestions"),
        properties(&schema_of::<hotlead_api::ListQuery>())
    );
}
