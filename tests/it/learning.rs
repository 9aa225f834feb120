//! The learning loop as its users meet it: `hotlead learn` on a CRM export, outcomes over
//! HTTP (admin token or signed webhook), suggestions reviewed, approval rescoring leads.

use std::io::Write as _;
use std::path::Path;

use clap::Parser as _;
use hmac::{Hmac, KeyInit, Mac};
use hotlead::cli::{Cli, run};
use hotlead_tests::{AppSettings, TestApp, spawn_app, time};
use reqwest::StatusCode;
use serde_json::{Value, json};
use sha2::Sha256;

fn hotlead(args: &[&str]) -> anyhow::Result<String> {
    let cli = Cli::try_parse_from(std::iter::once("hotlead").chain(args.iter().copied()))?;
    let mut out = Vec::new();
    run(cli, &mut out, time("2026-11-20T00:00:00Z"))?;
    Ok(String::from_utf8(out)?)
}

fn write(dir: &Path, name: &str, content: &str) -> String {
    let path = dir.join(name);
    std::fs::File::create(&path)
        .and_then(|mut f| f.write_all(content.as_bytes()))
        .expect("write test file");
    path.display().to_string()
}

/// A CRM export: `;`-separated, quoted, `unknown` for missing values. Won deals are big
/// companies in manufacturing; `duration` is known only after the outcome (it leaks it).
fn export(rows: usize) -> String {
    let mut text =
        String::from("\"lead_id\";\"employees\";\"industry\";\"region\";\"duration\";\"y\"\n");
    for i in 0..rows {
        let big = i % 3 == 0;
        let industry = ["製造業", "IT", "小売"][i % 3];
        let won = (big && i % 7 != 0) || i % 11 == 0;
        text.push_str(&format!(
            "\"D-{i}\";{};\"{industry}\";\"{}\";{};\"{}\"\n",
            if big { 2000 + i } else { 40 + i % 50 },
            if i % 5 == 0 { "unknown" } else { "east" },
            if won { 900 } else { 30 },
            if won { "yes" } else { "no" }
        ));
    }
    text
}

#[test]
fn learn_on_an_export_writes_a_suggestion_rules_and_a_report() {
    let dir = tempfile::tempdir().unwrap();
    let mut csv = export(600);
    csv.push_str("\"D-bad\";12\n");
    let data = write(dir.path(), "deals.csv", &csv);
    let out = dir.path().join("out");
    let summary: Value = serde_json::from_str(
        &hotlead(&[
            "learn",
            "--leads",
            &data,
            "--outcome",
            "y=yes",
            "--discover",
            "--exclude",
            "duration",
            "--format",
            "json",
            "--out",
            out.to_str().unwrap(),
        ])
        .unwrap(),
    )
    .unwrap();
    let auc = summary["suggested"]["auc"].as_f64().unwrap();
    assert!(auc > 0.75, "{summary:#}");
    assert!(summary["suggested"]["fit_seconds"].as_f64().unwrap() >= 0.0);
    assert!(summary["suggested"]["threshold"].is_number());
    assert!(summary["current"].is_null());
    assert_eq!(summary["rejected_rows"], 1);
    assert_eq!(summary["data"]["outcomes"], 600);

    // The files: the rules are accepted by `hotlead score`, and never use `duration`.
    let rules = std::fs::read_to_string(out.join("rules.toml")).unwrap();
    assert!(!rules.contains("duration"), "{rules}");
    let leads = write(
        dir.path(),
        "leads.csv",
        "lead_id,employees,industry\nA,5000,製造業\nB,20,小売\n",
    );
    let scored = hotlead(&[
        "score",
        "--rules",
        out.join("rules.toml").to_str().unwrap(),
        "--leads",
        &leads,
    ])
    .unwrap();
    let scores: Vec<Value> = scored
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(scores[0]["score"].as_f64().unwrap() > scores[1]["score"].as_f64().unwrap());
    let report = std::fs::read_to_string(out.join("report.html")).unwrap();
    assert!(report.contains("<svg") && !report.contains("<script"));
    let suggestion: Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("suggestion.json")).unwrap())
            .unwrap();
    assert_eq!(suggestion["data"]["holdout"], 120);
    let split = std::fs::read_to_string(out.join("split.csv")).unwrap();
    assert_eq!(
        split.lines().filter(|l| l.ends_with(",holdout")).count(),
        120
    );

    // The same data and seed give the same suggestion.
    let again = dir.path().join("again");
    hotlead(&[
        "learn",
        "--leads",
        &data,
        "--outcome",
        "y=yes",
        "--discover",
        "--exclude",
        "duration",
        "--format",
        "json",
        "--out",
        again.to_str().unwrap(),
    ])
    .unwrap();
    let mut first = suggestion;
    let mut second: Value =
        serde_json::from_str(&std::fs::read_to_string(again.join("suggestion.json")).unwrap())
            .unwrap();
    first["suggested"]["fit_seconds"] = json!(null);
    second["suggested"]["fit_seconds"] = json!(null);
    assert_eq!(first, second);
}

#[test]
fn learn_compares_against_the_current_rules_on_the_same_hold_out() {
    let dir = tempfile::tempdir().unwrap();
    let data = write(dir.path(), "deals.csv", &export(600));
    let rules = write(
        dir.path(),
        "rules.toml",
        r#"
name = "ours"
version = 4
[bands]
hot = 30
warm = 10
[groups.fit]
axis = "fit"
[[rules]]
id = "retail"
group = "fit"
points = 30
when = { attribute = "industry", equals = "小売" }
[[rules]]
id = "big"
group = "fit"
points = 10
when = { attribute = "employees", gte = 1000 }
"#,
    );
    let learn = [
        "learn",
        "--leads",
        &data,
        "--outcome",
        "y=yes",
        "--rules",
        &rules,
        "--split",
        "order",
    ];
    let summary: Value = serde_json::from_str(
        &hotlead(&[&learn[..], &["--format", "json", "--max-rules", "1"]].concat()).unwrap(),
    )
    .unwrap();
    let current = summary["current"]["auc"].as_f64().unwrap();
    let suggested = summary["suggested"]["auc"].as_f64().unwrap();
    assert!(suggested > current + 0.2, "{summary:#}");
    assert_eq!(summary["suggested"]["rules_with_points"], 1);
    assert_eq!(summary["suggested"]["rules"], "ours v5");

    // Read as an analyst would: the text starts with what changes.
    let text = hotlead(&learn).unwrap();
    let first: Vec<&str> = text.lines().take_while(|l| !l.is_empty()).collect();
    assert!(
        first[0].contains(" points: ") && first[0].contains("removed"),
        "{text}"
    );
    assert!(
        first.iter().any(|l| l.trim_start().starts_with("removed")
            && l.contains("[retail]")
            && l.contains("30 -> -")),
        "{text}"
    );
    assert!(
        first
            .iter()
            .any(|l| l.starts_with("Thresholds: hot 30 -> ")),
        "{text}"
    );
    assert!(
        first
            .iter()
            .any(|l| l.starts_with("Hot list on the ") && l.contains("stay hot")),
        "{text}"
    );
}

#[test]
fn bad_exports_are_refused_with_file_line_and_field_and_small_ones_wait_for_more() {
    let dir = tempfile::tempdir().unwrap();
    let data = write(dir.path(), "deals.csv", &export(600));
    let error = hotlead(&[
        "learn",
        "--leads",
        &data,
        "--outcome",
        "won=1",
        "--discover",
    ])
    .unwrap_err()
    .to_string();
    assert!(error.contains("deals.csv:line 1: field `won`"), "{error}");
    let error = hotlead(&[
        "learn",
        "--leads",
        &data,
        "--outcome",
        "y=yes",
        "--discover",
        "--exclude",
        "y",
    ])
    .unwrap_err()
    .to_string();
    assert!(error.contains("field `y`"), "{error}");
    let error = hotlead(&["learn", "--leads", &data, "--outcome", "y=yes"])
        .unwrap_err()
        .to_string();
    assert!(error.contains("--discover"), "{error}");
    assert!(hotlead(&["learn", "--leads", &data, "--outcome", "y"]).is_err());

    let small = write(dir.path(), "small.csv", &export(120));
    let text = hotlead(&[
        "learn",
        "--leads",
        &small,
        "--outcome",
        "y=yes",
        "--discover",
    ])
    .unwrap();
    assert!(text.contains("need 80 more outcomes"), "{text}");
    let cold: Value = serde_json::from_str(
        &hotlead(&[
            "learn",
            "--leads",
            &small,
            "--outcome",
            "y=yes",
            "--discover",
            "--format",
            "json",
        ])
        .unwrap(),
    )
    .unwrap();
    assert_eq!(cold["result"], "cold_start");
    assert_eq!(cold["need_outcomes"], 80);
}

const TOKEN: &str = "review-token";
const SECRET: &str = "crm-shared-secret";

fn bearer(app: &TestApp, request: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
    let _ = app;
    request.header("authorization", format!("Bearer {TOKEN}"))
}

async fn get(app: &TestApp, route: &str) -> reqwest::Response {
    bearer(app, app.client.get(format!("{}{route}", app.url)))
        .send()
        .await
        .unwrap()
}

async fn post(app: &TestApp, route: &str, body: &Value) -> reqwest::Response {
    bearer(app, app.client.post(format!("{}{route}", app.url)))
        .json(body)
        .send()
        .await
        .unwrap()
}

/// The signature of `body` sent at `timestamp` (unix seconds), as a CRM computes it.
fn signature(timestamp: i64, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(SECRET.as_bytes()).unwrap();
    mac.update(format!("{timestamp}.").as_bytes());
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// Forty leads from a form: every third one a big manufacturer.
async fn leads(app: &TestApp) -> Vec<(String, bool)> {
    let mut out = Vec::new();
    for i in 0..45 {
        let big = i % 3 == 0;
        let response = app
            .client
            .post(format!("{}/v1/forms/contact", app.url))
            .form(&[
                ("email", format!("person{i}@company{i}.co.jp")),
                (
                    "employees",
                    if big {
                        "3000".into()
                    } else {
                        format!("{}", 20 + i)
                    },
                ),
                (
                    "industry",
                    if big {
                        "製造業".into()
                    } else {
                        "小売".to_string()
                    },
                ),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        let body: Value = response.json().await.unwrap();
        out.push((body["lead_id"].as_str().unwrap().to_string(), big));
    }
    out
}

async fn wait_for_version(app: &TestApp, lead: &str, version: u64) -> Value {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    loop {
        let lead: Value = get(app, &format!("/v1/leads/{lead}"))
            .await
            .json()
            .await
            .unwrap();
        if lead["explanation"]["rules"]["version"] == version {
            return lead;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "never rescored: {lead:#}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outcomes_in_suggestion_reviewed_approval_rescores_every_lead_and_alerts_new_hot_ones() {
    let app = spawn_app(AppSettings {
        admin_token: Some(TOKEN.into()),
        webhook_secret: Some(SECRET.into()),
        // 45 forms from one address in a few seconds: past the default limit.
        config: Some("[client_limits]\nforms_per_minute = 0\n".into()),
        ..AppSettings::default()
    })
    .await;
    let leads = leads(&app).await;
    let closed = chrono::Utc::now().date_naive().to_string();
    let outcome = |(id, big): &(String, bool), i: usize| {
        json!({"lead_id": id, "outcome": if *big != (i.is_multiple_of(13)) { "won" } else { "lost" },
               "closed_at": closed, "amount": if *big { json!(1_500_000) } else { json!(null) }})
    };
    let first: Vec<Value> = leads[..30]
        .iter()
        .enumerate()
        .map(|(i, l)| outcome(l, i))
        .collect();
    let mut with_bad = first.clone();
    with_bad.push(json!({"email": "nobody@example.co.jp", "outcome": "won", "closed_at": closed}));
    with_bad.push(json!({"lead_id": leads[0].0, "outcome": "maybe", "closed_at": closed}));

    // The admin token: good rows kept, bad ones reported by index and field.
    let response = post(&app, "/v1/outcomes", &json!({"outcomes": with_bad})).await;
    assert_eq!(response.status(), StatusCode::OK);
    let report: Value = response.json().await.unwrap();
    assert_eq!(report["stored"], 30);
    assert_eq!(
        report["rejected"][0],
        json!({"index": 30, "field": "email", "message": "no lead has this e-mail address"})
    );
    assert_eq!(report["rejected"][1]["field"], "outcome");

    // A CRM webhook signs its body; a wrong signature or none is refused.
    let rest: Vec<Value> = leads[30..]
        .iter()
        .enumerate()
        .map(|(i, l)| outcome(l, i + 30))
        .collect();
    let body = serde_json::to_vec(&rest).unwrap();
    let now = chrono::Utc::now().timestamp();
    let send = |sig: Option<(i64, String)>| {
        let mut request = app
            .client
            .post(format!("{}/v1/outcomes", app.url))
            .header("content-type", "application/json")
            .body(body.clone());
        if let Some((timestamp, sig)) = sig {
            request = request
                .header("x-hotlead-timestamp", timestamp.to_string())
                .header("x-hotlead-signature", sig);
        }
        request.send()
    };
    assert_eq!(send(None).await.unwrap().status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        send(Some((now, signature(now, b"something else"))))
            .await
            .unwrap()
            .status(),
        StatusCode::FORBIDDEN
    );
    // A request captured ten minutes ago does not pass again, nor with a new timestamp.
    let old = now - 600;
    assert_eq!(
        send(Some((old, signature(old, &body))))
            .await
            .unwrap()
            .status(),
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        send(Some((now, signature(old, &body))))
            .await
            .unwrap()
            .status(),
        StatusCode::FORBIDDEN
    );
    let signed = send(Some((now, signature(now, &body)))).await.unwrap();
    assert_eq!(signed.status(), StatusCode::OK);
    assert_eq!(signed.json::<Value>().await.unwrap()["stored"], 15);
    let all_bad = post(
        &app,
        "/v1/outcomes",
        &json!([{"lead_id": leads[0].0, "outcome": "won"}]),
    )
    .await;
    assert_eq!(all_bad.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        all_bad.json::<Value>().await.unwrap()["field"],
        "outcomes[0].closed_at"
    );

    // Learn against the active seed rules (version 1), as the scheduled job does.
    let db = app.dir.path().join("hotlead.db").display().to_string();
    let output = tokio::task::spawn_blocking(move || {
        hotlead(&[
            "suggestions",
            "learn",
            "--db",
            &db,
            "--discover",
            "--min-outcomes",
            "40",
            "--min-won",
            "10",
            "--split",
            "random",
            "--holdout-fraction",
            "0.3",
            "--format",
            "json",
        ])
        .unwrap()
    })
    .await
    .unwrap();
    let learned: Value = serde_json::from_str(&output).unwrap();
    let id = learned["id"].as_str().unwrap().to_string();
    assert!(learned["current"]["auc"].is_number());

    let list: Value = get(&app, "/v1/suggestions").await.json().await.unwrap();
    assert_eq!(list["suggestions"][0]["id"], id.as_str());
    assert_eq!(list["suggestions"][0]["review"]["status"], "pending");
    let report = get(&app, &format!("/v1/suggestions/{id}/report")).await;
    assert_eq!(report.status(), StatusCode::OK);
    assert!(
        report.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    assert!(report.text().await.unwrap().contains("<svg"));
    assert_eq!(
        get(&app, "/v1/suggestions/s-none").await.status(),
        StatusCode::NOT_FOUND
    );
    let no_reason = post(&app, &format!("/v1/suggestions/{id}/reject"), &json!({})).await;
    assert_eq!(no_reason.status(), StatusCode::UNPROCESSABLE_ENTITY);

    // Nothing changes until it is approved.
    let before = wait_for_version(&app, &leads[0].0, 1).await;
    assert_eq!(before["explanation"]["rules"]["name"], "seed");
    let approved = post(
        &app,
        &format!("/v1/suggestions/{id}/approve"),
        &json!({"by": "analyst"}),
    )
    .await;
    assert_eq!(approved.status(), StatusCode::OK);
    assert_eq!(approved.json::<Value>().await.unwrap()["rules_version"], 2);
    let again = post(&app, &format!("/v1/suggestions/{id}/approve"), &json!({})).await;
    assert_eq!(again.status(), StatusCode::CONFLICT);

    // Every lead is rescored with version 2 in the background; the seed rules made nobody
    // hot, the learned ones do, and each newly hot lead alerts once.
    let mut hot = 0;
    for (lead, _) in &leads {
        let rescored = wait_for_version(&app, lead, 2).await;
        hot += usize::from(rescored["band"] == "hot");
    }
    assert!(hot > 0);
    let alerts = app.wait_for_alerts(hot).await;
    assert_eq!(
        alerts.iter().filter(|a| a["reason"] == "hot").count(),
        hot,
        "{alerts:#?}"
    );

    let history: Value = get(&app, "/v1/rules").await.json().await.unwrap();
    assert_eq!(history["versions"][0]["version"], 2);
    assert_eq!(history["versions"][0]["active"], true);
    assert_eq!(history["versions"][0]["source"], format!("suggestion {id}"));

    // Rolling back makes version 1 active and rescores again.
    let rollback = post(&app, "/v1/rules/1/activate", &json!({})).await;
    assert_eq!(rollback.status(), StatusCode::OK);
    wait_for_version(&app, &leads[0].0, 1).await;
    assert_eq!(
        post(&app, "/v1/rules/9/activate", &json!({}))
            .await
            .status(),
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        app.client
            .get(format!("{}/v1/suggestions", app.url))
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::UNAUTHORIZED
    );
}

#[test]
fn the_review_loop_runs_from_the_command_line_on_the_embedded_database() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("hotlead.db");
    let db = db.to_str().unwrap();
    hotlead(&["demo", "--dir", dir.path().to_str().unwrap()]).unwrap();
    let history = hotlead(&["rules", "history", "--db", db]).unwrap();
    assert!(
        history.contains("* v1") && history.contains("bundled seed rules"),
        "{history}"
    );

    // The demo's leads with made-up outcomes; one bad row of each kind.
    let ids: Vec<String> = tokio::runtime::Runtime::new().unwrap().block_on(async {
        use hotlead_app::ports::Store as _;
        let store = hotlead_embedded::SqliteStore::open(Path::new(db)).unwrap();
        let page = store.ranking(None, 100, None).await.unwrap();
        page.leads.into_iter().map(|l| l.id).collect()
    });
    assert!(ids.len() >= 30);
    let mut csv = String::from("lead_id\toutcome\tclosed_at\tamount\n");
    for (i, id) in ids.iter().take(30).enumerate() {
        let won = i % 3 == 0;
        csv.push_str(&format!(
            "{id}\t{}\t2026-11-0{}\t{}\n",
            if won { "受注" } else { "失注" },
            1 + i % 9,
            if won { "1,200,000" } else { "" }
        ));
    }
    csv.push_str(&format!(
        "L-9999\twon\t2026-11-01\t\n{}\twon\tsoon\t\n{}\twon\t2026-11-01\tmany\n",
        ids[0], ids[1]
    ));
    let file = write(dir.path(), "deals.tsv", &csv);
    let report: Value = serde_json::from_str(
        &hotlead(&["outcomes", "import", &file, "--db", db, "--format", "json"]).unwrap(),
    )
    .unwrap();
    assert_eq!(report["stored"], 30);
    assert_eq!(report["won"], 10);
    let rejected: Vec<(u64, String)> = report["rejected"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["line"].as_u64().unwrap(),
                r["field"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(
        rejected,
        [
            (32, "lead_id".into()),
            (33, "closed_at".into()),
            (34, "amount".into())
        ]
    );

    let cold = hotlead(&["suggestions", "learn", "--db", db, "--discover"]).unwrap();
    assert!(cold.contains("170 more outcomes"), "{cold}");
    let learned: Value = serde_json::from_str(
        &hotlead(&[
            "suggestions",
            "learn",
            "--db",
            db,
            "--discover",
            "--min-outcomes",
            "20",
            "--min-won",
            "5",
            "--split",
            "random",
            "--holdout-fraction",
            "0.3",
            "--format",
            "json",
        ])
        .unwrap(),
    )
    .unwrap();
    let id = learned["id"].as_str().unwrap();
    let list = hotlead(&["suggestions", "list", "--db", db]).unwrap();
    assert!(list.contains(id) && list.contains("pending"), "{list}");
    let report = dir.path().join("report.html");
    hotlead(&[
        "suggestions",
        "show",
        id,
        "--db",
        db,
        "--report",
        report.to_str().unwrap(),
    ])
    .unwrap();
    let report = std::fs::read_to_string(&report).unwrap();
    assert!(report.contains("<svg"));
    // The report leads with the diff and shows the selection path.
    let diff = report.find("What changes").expect("the diff");
    assert!(diff < report.find("Hold-out figures").unwrap());
    assert!(report.contains("What each rule buys"));
    let shown = hotlead(&["suggestions", "show", id, "--db", db]).unwrap();
    // After its heading line, the notes and the diff.
    assert!(
        shown
            .lines()
            .skip(1)
            .find(|l| !l.starts_with("NOTE:"))
            .is_some_and(|l| l.contains(" points: ")),
        "{shown}"
    );
    let error = hotlead(&["suggestions", "reject", id, "--db", db, "--reason", " "])
        .unwrap_err()
        .to_string();
    assert!(error.contains("reason"), "{error}");
    hotlead(&[
        "suggestions",
        "reject",
        id,
        "--db",
        db,
        "--reason",
        "too few deals yet",
    ])
    .unwrap();
    let error = hotlead(&["suggestions", "approve", id, "--db", db])
        .unwrap_err()
        .to_string();
    assert!(error.contains("already rejected"), "{error}");
    assert!(
        !hotlead(&["rules", "history", "--db", db])
            .unwrap()
            .contains("v2")
    );

    let rules = write(dir.path(), "next.toml", hotlead_core::rules::SEED);
    let installed = hotlead(&["rules", "install", &rules, "--db", db]).unwrap();
    assert!(
        installed.contains("version 1"),
        "the same rules are not a new version: {installed}"
    );
    let changed = write(
        dir.path(),
        "changed.toml",
        &hotlead_core::rules::SEED.replace("hot = 80", "hot = 75"),
    );
    assert!(
        hotlead(&["rules", "install", &changed, "--db", db])
            .unwrap()
            .contains("version 2")
    );
    hotlead(&["rules", "rollback", "1", "--db", db]).unwrap();
    assert!(
        hotlead(&["rules", "history", "--db", db])
            .unwrap()
            .contains("* v1")
    );
    let error = hotlead(&["rules", "rollback", "7", "--db", db])
        .unwrap_err()
        .to_string();
    assert!(error.contains("no rules version 7"), "{error}");
}

#[tokio::test]
async fn a_missing_suggestion_or_rules_version_is_a_404_that_names_it() {
    let app = spawn_app(AppSettings {
        admin_token: Some(TOKEN.into()),
        ..Default::default()
    })
    .await;
    for (route, body, message) in [
        (
            "/v1/suggestions/s-none/approve",
            json!({"by": "analyst"}),
            "no suggestion s-none",
        ),
        (
            "/v1/suggestions/s-none/reject",
            json!({"reason": "no such"}),
            "no suggestion s-none",
        ),
        ("/v1/rules/9/activate", json!({}), "no rules version 9"),
    ] {
        let response = post(&app, route, &body).await;
        assert_eq!(response.status(), StatusCode::NOT_FOUND, "{route}");
        let error: Value = response.json().await.unwrap();
        assert_eq!(
            error,
            json!({"error": "not_found", "message": message}),
            "{route}"
        );
    }
}

#[test]
fn the_command_line_names_a_missing_suggestion_or_rules_version() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("hotlead.db");
    let db = db.to_str().unwrap();
    for (args, message) in [
        (
            vec!["suggestions", "approve", "s-none", "--db", db],
            "no suggestion s-none",
        ),
        (
            vec![
                "suggestions",
                "reject",
                "s-none",
                "--db",
                db,
                "--reason",
                "no such",
            ],
            "no suggestion s-none",
        ),
        (
            vec!["rules", "rollback", "3", "--db", db],
            "no rules version 3",
        ),
    ] {
        let error = hotlead(&args).unwrap_err();
        assert_eq!(format!("{error:#}"), message, "{args:?}");
    }
}

/// Leads, their closed deals (by the admin API) and a learning run: the id of the pending
/// suggestion it made.
async fn a_pending_suggestion(app: &TestApp) -> String {
    let leads = leads(app).await;
    let closed = chrono::Utc::now().date_naive().to_string();
    let outcomes: Vec<Value> = leads
        .iter()
        .enumerate()
        .map(|(i, (id, big))| {
            json!({"lead_id": id, "outcome": if *big != (i.is_multiple_of(13)) { "won" } else { "lost" },
                   "closed_at": closed})
        })
        .collect();
    let stored = post(app, "/v1/outcomes", &json!({"outcomes": outcomes})).await;
    assert_eq!(stored.status(), StatusCode::OK);
    let db = app.dir.path().join("hotlead.db").display().to_string();
    let output = tokio::task::spawn_blocking(move || {
        hotlead(&[
            "suggestions",
            "learn",
            "--db",
            &db,
            "--discover",
            "--min-outcomes",
            "40",
            "--min-won",
            "10",
            "--split",
            "random",
            "--holdout-fraction",
            "0.3",
            "--format",
            "json",
        ])
        .unwrap()
    })
    .await
    .unwrap();
    let learned: Value = serde_json::from_str(&output).unwrap();
    learned["id"].as_str().unwrap().to_string()
}

/// An analyst signs in with the admin token, opens the suggestion under review in a
/// browser (headline figures, current and suggested points, charts), approves it, and the
/// active rules version changes. A form from another origin, or without the sign-in,
/// decides nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_analyst_approves_a_suggestion_on_its_page_and_the_active_rules_change() {
    use crate::browser::{Driver, screenshots_dir};
    let app = spawn_app(AppSettings {
        admin_token: Some(TOKEN.into()),
        config: Some("[client_limits]\nforms_per_minute = 0\n".into()),
        ..AppSettings::default()
    })
    .await;
    let id = a_pending_suggestion(&app).await;
    let profile = tempfile::tempdir().unwrap();
    let driver = Driver::start(profile.path()).await;
    driver.window(1280, 900).await;
    driver
        .go(&format!("{}/review/suggestions/{id}", app.url))
        .await;
    assert!(
        driver.current_url().await.ends_with("/review/login"),
        "not signed in: the sign-in form"
    );
    driver.type_into("#token", "not-the-token").await;
    driver.click_and_load("#sign-in").await;
    let text = driver.text().await;
    assert!(text.contains("That is not the admin token."), "{text}");
    driver.type_into("#token", TOKEN).await;
    driver.click_and_load("#sign-in").await;
    assert!(driver.current_url().await.ends_with("/review"));
    let text = driver.text().await;
    assert!(text.contains("Active rules: seed v1"), "{text}");
    assert!(text.contains(&id), "{text}");
    let cookie = driver
        .script("return document.cookie;")
        .await
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(
        !cookie.contains("hotlead_review"),
        "the session cookie is HTTP-only: {cookie}"
    );

    driver
        .click_and_load(&format!("a[href='/review/suggestions/{id}']"))
        .await;
    let text = driver.text().await;
    for expected in [
        "pending review",
        "What changes",
        "Hot threshold:",
        "Hold-out AUC",
        "Top-decile lift",
        "Points: current and suggested",
        "Hold-out charts",
        "Approve",
    ] {
        assert!(text.contains(expected), "{expected:?} on the page: {text}");
    }
    assert_eq!(
        driver
            .script("return document.querySelectorAll('svg').length > 2;")
            .await,
        true
    );
    assert_eq!(driver.script("return document.scripts.length;").await, 0);
    driver
        .screenshot(&screenshots_dir().join("review-page-desktop.png"))
        .await;
    driver.window(390, 844).await;
    driver
        .screenshot(&screenshots_dir().join("review-page-phone.png"))
        .await;

    // Forged decisions: signed in but from another origin; from this origin, not signed in.
    let plain = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let host = app.url.trim_start_matches("http://").to_string();
    let session = format!(
        "hotlead_review={}",
        hotlead_api::review_page::session_value(TOKEN)
    );
    let forged = plain
        .post(format!("{}/review/suggestions/{id}/approve", app.url))
        .header("origin", "https://evil.example")
        .header("cookie", &session)
        .form(&[("by", "mallory")])
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), StatusCode::FORBIDDEN);
    let anonymous = plain
        .post(format!("{}/review/suggestions/{id}/approve", app.url))
        .header("origin", format!("http://{host}"))
        .form(&[("by", "mallory")])
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), StatusCode::FORBIDDEN);
    let versions: Value = get(&app, "/v1/rules").await.json().await.unwrap();
    assert_eq!(versions["versions"][0]["version"], 1, "nothing decided");

    // The analysts' note's signed link (as the learn function makes it on AWS) opens the
    // same suggestion read-only on the public routes; an altered one shows nothing.
    let key = std::fs::read_to_string(app.dir.path().join("hotlead.db.link-key")).unwrap();
    let links = hotlead_app::links::Links::new(
        hotlead_app::links::LinkKey::from_text(&key).unwrap(),
        &app.url,
        14,
    );
    let url = links.suggestion_url(&id, chrono::Utc::now());
    let read_only = plain.get(&url).send().await.unwrap();
    assert_eq!(read_only.status(), StatusCode::OK);
    let html = read_only.text().await.unwrap();
    assert!(
        html.contains("pending review") && html.contains("Hold-out AUC"),
        "{html}"
    );
    assert!(html.contains(&format!("hotlead suggestions approve {id} --backend aws")));
    assert!(!html.contains("<form"), "read-only: no form");
    let altered = plain.get(url.replace("s=", "s=A")).send().await.unwrap();
    assert_eq!(altered.status(), StatusCode::FORBIDDEN);
    assert!(!altered.text().await.unwrap().contains("Hold-out AUC"));
    driver.go(&url).await;
    driver
        .screenshot(&screenshots_dir().join("suggestion-read-only-phone.png"))
        .await;

    driver.window(1280, 900).await;
    driver
        .go(&format!("{}/review/suggestions/{id}", app.url))
        .await;
    driver.type_into("#approve-by", "Aiko Tanaka").await;
    driver.click_and_load("#approve").await;
    let after = driver.current_url().await;
    assert!(
        after.ends_with(&format!("/review/suggestions/{id}?done=approved")),
        "{after}"
    );
    let text = driver.text().await;
    assert!(
        text.contains("Approved: the suggested rules are the active version now."),
        "{text}"
    );
    assert!(text.contains("approved by Aiko Tanaka"), "{text}");
    assert!(
        !text.contains("Approve: make these rules active"),
        "decided: no more buttons"
    );
    let versions: Value = get(&app, "/v1/rules").await.json().await.unwrap();
    assert_eq!(versions["versions"][0]["version"], 2);
    assert_eq!(versions["versions"][0]["active"], true);
    assert_eq!(
        versions["versions"][0]["source"],
        format!("suggestion {id}")
    );
    driver.go(&format!("{}/review", app.url)).await;
    assert!(
        driver.text().await.contains(" v2"),
        "the list shows the new active version"
    );
    // The JSON admin routes take the browser's sign-in too.
    driver.go(&format!("{}/v1/rules", app.url)).await;
    assert!(driver.text().await.contains("\"version\""));
}
