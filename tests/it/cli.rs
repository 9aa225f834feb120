//! The `hotlead` command line, as a user runs it.

use std::io::Write as _;

use hotlead::cli::{Cli, run};
use hotlead_tests::{repo_file, repo_root, time};
use serde_json::Value;

use clap::Parser as _;

fn run_in_process(args: &[&str]) -> anyhow::Result<String> {
    let cli = Cli::try_parse_from(std::iter::once("hotlead").chain(args.iter().copied()))?;
    let mut out = Vec::new();
    run(cli, &mut out, time("2026-11-20T00:00:00Z"))?;
    Ok(String::from_utf8(out)?)
}

/// Runs the real `hotlead` command line (built by cargo with this test crate) in the
/// repository root.
fn hotlead(args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_hotlead-under-test"))
        .args(args)
        .current_dir(repo_root())
        .output()
        .expect("hotlead runs")
}

fn stdout(output: &std::process::Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &std::process::Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn temp_file(name: &str, content: &str) -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join(name);
    std::fs::File::create(&path)
        .and_then(|mut f| f.write_all(content.as_bytes()))
        .expect("write temp file");
    (dir, path)
}

const SEED: &str = "examples/rules/seed.toml";

/// Scores the bundled sample leads and events with the seed rules, as of the README's time.
fn score_the_sample(extra: &[&str]) -> anyhow::Result<String> {
    let (rules, leads, events) = (
        repo_file(SEED),
        repo_file("examples/data/leads.csv"),
        repo_file("examples/data/events.jsonl"),
    );
    let mut args = vec![
        "score",
        "--rules",
        rules.to_str().unwrap(),
        "--leads",
        leads.to_str().unwrap(),
    ];
    args.extend([
        "--events",
        events.to_str().unwrap(),
        "--at",
        "2026-11-20T09:00:00+09:00",
    ]);
    args.extend(extra);
    run_in_process(&args)
}

#[test]
fn rules_check_prints_a_one_line_summary_and_exits_zero() {
    for file in [SEED, "examples/rules/saas.toml"] {
        let output = hotlead(&["rules", "check", file]);
        assert!(output.status.success(), "{file}: {}", stderr(&output));
        let text = stdout(&output);
        assert_eq!(text.lines().count(), 1, "{text}");
        assert!(text.contains("ok") && text.contains("version"), "{text}");
    }
}

#[test]
fn rules_check_names_file_line_column_and_field_of_each_problem() {
    let source = "name = \"t\"\nversion = 1\n[bands]\nhot = 80\nwarm = 40\n[groups.fit]\naxis = \"fit\"\n\n[[rules]]\nid = \"big\"\ngroup = \"fit\"\npoints = 10\nwhen = { attribute = \"employees\", gte = \"many\" }\n";
    let (_dir, path) = temp_file("bad.toml", source);
    let output = hotlead(&["rules", "check", path.to_str().expect("utf-8 path")]);
    assert_eq!(output.status.code(), Some(1));
    let message = stderr(&output);
    let expected = format!("{}:13:", path.display());
    assert!(message.contains(&expected), "{message}");
    assert!(message.contains("rules[0].when.gte"), "{message}");
    assert!(
        message.contains("expected f64") || message.contains("expected"),
        "{message}"
    );
}

#[test]
fn rules_check_reports_every_semantic_problem_at_its_place() {
    let source = r#"name = "t"
version = 1
[bands]
hot = 80
warm = 40
hot_exit = 90
[groups.fit]
axis = "fit"
[[rules]]
id = "a"
group = "nope"
points = 10
when = { attribute = "title", contains_list = "missing" }
[[rules]]
id = "a"
group = "fit"
points = 5
event = { type = "page", path = "/x" }
count = "every"
at_least = 3
"#;
    let error = hotlead_core::RuleSet::from_toml("r.toml", source).expect_err("invalid");
    let found: Vec<(usize, &str)> = error
        .diagnostics
        .iter()
        .map(|d| (d.line, d.field.as_str()))
        .collect();
    assert_eq!(
        found,
        [
            (6, "bands.hot_exit"),
            (11, "rules[0].group"),
            (13, "rules[0].when.contains_list"),
            (15, "rules[1].id"),
            (20, "rules[1].at_least"),
        ]
    );
    assert!(
        error
            .to_string()
            .starts_with("r.toml:6:12: bands.hot_exit: expected hot_exit between"),
        "{error}"
    );
}

#[test]
fn rules_check_of_a_missing_file_names_it() {
    let output = hotlead(&["rules", "check", "no/such/rules.toml"]);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr(&output).contains("no/such/rules.toml"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn score_prints_one_json_record_per_lead_with_its_reasons() {
    let text = score_the_sample(&[]).expect("scores");
    let records: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON line"))
        .collect();
    assert_eq!(records.len(), 7);
    let first = &records[0];
    assert_eq!(first["lead_id"], "L-1001");
    assert_eq!(first["score"], 80);
    assert_eq!(first["band"], "hot");
    assert_eq!(first["grade"], "A1");
    let contributions = first["contributions"].as_array().expect("contributions");
    let total: f64 = contributions
        .iter()
        .map(|c| c["points"].as_f64().unwrap())
        .sum();
    assert_eq!(total, 80.0);
    assert_eq!(first["alerts"][0]["alert"], "document-downloaded");
    // the link scanners and the resent message of L-1005 count for nothing
    let acme = &records[4];
    assert_eq!(acme["events"]["bots"], 2);
    assert_eq!(acme["events"]["duplicates"], 1);
    assert_eq!(acme["band"], "warm");
}

#[test]
fn score_is_the_same_for_the_same_inputs_and_time() {
    let args = [
        "score",
        "--rules",
        SEED,
        "--leads",
        "examples/data/leads.csv",
        "--events",
        "examples/data/events.jsonl",
        "--at",
        "2026-11-20T09:00:00+09:00",
    ];
    let (a, b) = (hotlead(&args), hotlead(&args));
    assert!(a.status.success(), "{}", stderr(&a));
    assert_eq!(a.stdout, b.stdout);
}

#[test]
fn score_writes_csv_with_a_column_per_group() {
    let text = score_the_sample(&["--format", "csv"]).expect("scores");
    let mut lines = text.lines();
    assert_eq!(
        lines.next(),
        Some("lead_id,score,band,grade,engagement,fit,alerts,contributions")
    );
    let first = lines.next().expect("a record");
    assert!(
        first.starts_with("L-1001,80,hot,A1,30,50,document-downloaded,"),
        "{first}"
    );
    assert!(first.contains("employees-1000-plus:30"), "{first}");
}

#[test]
fn score_reads_json_lines_leads_and_uses_the_time_given() {
    let (_dir, leads) = temp_file(
        "leads.jsonl",
        "{\"lead_id\": \"a\", \"employees\": 5000, \"capital\": \"600億円\"}\n\n{\"lead_id\": \"b\", \"employees\": null}\n",
    );
    let (_dir2, events) = temp_file(
        "events.jsonl",
        &["2026-01-01", "2026-01-02", "2026-01-03"]
            .iter()
            .enumerate()
            .map(|(i, d)| format!("{{\"type\":\"page\",\"messageId\":\"m{i}\",\"userId\":\"a\",\"timestamp\":\"{d}T00:00:00Z\",\"context\":{{\"page\":{{\"path\":\"/pricing\"}}}}}}\n"))
            .collect::<String>(),
    );
    let score_at = |at: &str| -> Vec<Value> {
        run_in_process(&[
            "score",
            "--rules",
            repo_file(SEED).to_str().unwrap(),
            "--leads",
            leads.to_str().unwrap(),
            "--events",
            events.to_str().unwrap(),
            "--at",
            at,
        ])
        .expect("scores")
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON"))
        .collect()
    };
    let in_january = score_at("2026-01-10T00:00:00Z");
    assert_eq!(in_january[0]["band"], "hot");
    assert_eq!(in_january[1]["score"], 0);
    let in_june = score_at("2026-06-01T00:00:00Z");
    assert_eq!(
        in_june[0]["score"], 50,
        "pricing views older than 90 days no longer count"
    );
    let before = score_at("2026-01-02T12:00:00Z");
    assert_eq!(before[0]["events"]["future"], 1);
}

#[test]
fn bad_leads_files_are_reported_with_file_line_and_field() {
    let cases = [
        (
            "leads.csv",
            "email,company\nx@y.jp,A\n",
            ":1: field `lead_id`: the header row has no `lead_id` column",
        ),
        (
            "leads.csv",
            "lead_id,email\na,x@y.jp\n ,z@y.jp\n",
            ":3: field `lead_id`: is empty",
        ),
        (
            "leads.csv",
            "lead_id,email\na,x@y.jp\na,z@y.jp\n",
            ":3: field `lead_id`: duplicate lead id \"a\"",
        ),
        (
            "leads.csv",
            "lead_id,email\na,x@y.jp,extra\n",
            ":2: not valid CSV: 3 fields where the header has 2",
        ),
        (
            "leads.jsonl",
            "{\"lead_id\": \"a\"}\n{\"lead_id\": \"b\", \"tags\": [1]}\n",
            ":2: field `tags`: expected a string",
        ),
        (
            "leads.jsonl",
            "{\"lead_id\": \"a\"}\nnot json\n",
            ":2: not valid JSON",
        ),
        (
            "leads.jsonl",
            "{\"email\": \"a@b.jp\"}\n",
            ":1: field `lead_id`: expected a non-empty string",
        ),
    ];
    for (name, content, expected) in cases {
        let (_dir, path) = temp_file(name, content);
        let output = hotlead(&["score", "--rules", SEED, "--leads", path.to_str().unwrap()]);
        assert_eq!(output.status.code(), Some(1), "{content}");
        let message = stderr(&output);
        assert!(
            message.contains(&format!("{}{expected}", path.display())),
            "{content:?}: {message}"
        );
        assert!(
            output.stdout.is_empty(),
            "nothing is printed for a bad input"
        );
    }
}

#[test]
fn bad_events_files_are_reported_with_file_line_and_field() {
    let (_dir, path) = temp_file(
        "events.jsonl",
        "{\"type\":\"page\",\"messageId\":\"m1\",\"userId\":\"a\",\"timestamp\":\"2026-01-01T00:00:00Z\"}\n{\"type\":\"page\",\"messageId\":\"m2\",\"userId\":\"a\",\"timestamp\":\"last tuesday\"}\n",
    );
    let output = hotlead(&[
        "score",
        "--rules",
        SEED,
        "--leads",
        "examples/data/leads.csv",
        "--events",
        path.to_str().unwrap(),
    ]);
    assert_eq!(output.status.code(), Some(1));
    let message = stderr(&output);
    assert!(
        message.contains(&format!(
            "{}:2: field `timestamp`: expected an RFC 3339",
            path.display()
        )),
        "{message}"
    );
}

#[test]
fn a_non_utf8_file_is_named_not_garbled() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sjis.csv");
    std::fs::write(
        &path,
        b"lead_id,company\na,\x8a\x94\x8e\xae\x89\xef\x8e\xd0\n",
    )
    .unwrap();
    let output = hotlead(&["score", "--rules", SEED, "--leads", path.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(1));
    assert!(stderr(&output).contains("not UTF-8"), "{}", stderr(&output));
}

#[test]
fn a_bad_time_is_a_usage_error() {
    let output = hotlead(&[
        "score",
        "--rules",
        SEED,
        "--leads",
        "examples/data/leads.csv",
        "--at",
        "tomorrow",
    ]);
    assert_eq!(output.status.code(), Some(2));
    assert!(stderr(&output).contains("RFC 3339"), "{}", stderr(&output));
}

#[test]
fn every_command_explains_itself_with_an_example() {
    for args in [
        vec!["--help"],
        vec!["rules", "--help"],
        vec!["rules", "check", "--help"],
        vec!["rules", "schema", "--help"],
        vec!["score", "--help"],
    ] {
        let output = hotlead(&args);
        assert!(output.status.success(), "{args:?}");
        let text = stdout(&output);
        assert!(
            text.contains("Example") || args == ["rules", "--help"],
            "{args:?}: {text}"
        );
        assert!(text.contains("Usage"), "{args:?}: {text}");
    }
}

#[test]
fn rules_schema_prints_the_json_schema() {
    let text = run_in_process(&["rules", "schema"]).expect("prints");
    let schema: Value = serde_json::from_str(&text).expect("JSON");
    assert_eq!(schema["title"], "hotlead rules");
}

#[test]
fn a_reader_that_stops_reading_is_not_an_error() {
    use std::io::Read as _;
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_hotlead-under-test"))
        .args([
            "score",
            "--rules",
            SEED,
            "--leads",
            "examples/data/leads.csv",
            "--format",
            "text",
        ])
        .current_dir(repo_root())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let status = child.wait().unwrap();
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    assert!(status.success(), "{stderr}");
    assert!(!stderr.contains("error"), "{stderr}");
}

#[test]
fn serve_logs_no_personal_data_while_it_stores_scores_and_alerts() {
    use std::io::{BufRead as _, Read as _};
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("hotlead.db");
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_hotlead-under-test"))
        .args(["serve", "--port", "0", "--db", db.to_str().unwrap()])
        .env("HOTLEAD_LOG", "debug")
        .current_dir(repo_root())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut first = String::new();
    stdout.read_line(&mut first).unwrap();
    let url = first.trim().rsplit(' ').next().unwrap().to_string();
    assert!(url.starts_with("http://127.0.0.1:"), "{first}");

    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let client = reqwest::Client::new();
        let form = [
            ("email", "hanako.secret@private-example.co.jp"),
            ("name", "秘密 花子"),
            ("phone", "03-5871-2946"),
            ("employees", "1,200名"),
            ("capital", "600億円"),
            ("anonymousId", "b-9"),
        ];
        let response = client.post(format!("{url}/v1/forms/contact")).form(&form).send().await.unwrap();
        assert!(response.status().is_success());
        for i in 0..3 {
            let call = serde_json::json!({"type": "page", "messageId": format!("p{i}"), "anonymousId": "b-9",
                "timestamp": chrono::Utc::now().to_rfc3339(), "context": {"page": {"path": "/pricing"}}});
            client.post(format!("{url}/v1/page")).json(&call).send().await.unwrap();
        }
        // A rejected call is logged too, if at all, without its content.
        client.post(format!("{url}/v1/forms/contact")).form(&[("email", "not-an-address@")]).send().await.unwrap();
    });
    let outbox = dir.path().join("alerts.jsonl");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    while !std::fs::read_to_string(&outbox)
        .unwrap_or_default()
        .contains("secret")
    {
        assert!(
            std::time::Instant::now() < deadline,
            "no alert was delivered"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    std::thread::sleep(std::time::Duration::from_millis(300));
    let _ = child.kill();
    let _ = child.wait();
    let mut logs = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut logs)
        .unwrap();
    assert!(
        logs.contains("alert delivered"),
        "the logs say what happened: {logs}"
    );
    for personal in [
        "hanako",
        "private-example",
        "秘密",
        "花子",
        "5871-2946",
        "not-an-address",
    ] {
        assert!(
            !logs.contains(personal),
            "the logs contain {personal:?}:\n{logs}"
        );
    }
}

#[test]
fn an_operator_imports_crm_attributes_lists_and_retries_set_aside_leads_and_lists_failed_alerts() {
    use hotlead_app::ports::{LearningStore, OutboxEntry, ScoreUpdate, SetAside, Store};
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("hotlead.db");
    let db = db.to_str().unwrap();
    let (_csv_dir, csv) = temp_file(
        "crm.csv",
        "email,company,crm_territory\ntaro@example.co.jp,株式会社サンプル,west\nnot-an-address,X,east\n,Y,east\n",
    );
    let csv = csv.to_str().unwrap();
    let out = run_in_process(&["leads", "import", csv, "--db", db]).unwrap();
    assert!(
        out.contains("1 lead(s) updated, 0 unchanged, 2 row(s) skipped"),
        "{out}"
    );
    let again = run_in_process(&["leads", "import", csv, "--db", db]).unwrap();
    assert!(again.contains("0 lead(s) updated, 1 unchanged"), "{again}");
    let bad_header = temp_file("crm.csv", "mail address,company\nx,y\n");
    let error = run_in_process(&[
        "leads",
        "import",
        bad_header.1.to_str().unwrap(),
        "--db",
        db,
    ])
    .unwrap_err()
    .to_string();
    assert!(error.contains("crm.csv:1: field `email`"), "{error}");

    let now = time("2026-11-20T00:00:00Z");
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let lead_id = runtime.block_on(async {
        let store = hotlead_embedded::SqliteStore::open(std::path::Path::new(db)).unwrap();
        let key = hotlead_core::identity::IdentityKey::email("taro@example.co.jp").unwrap();
        let lead_id = store.lead_for(&key).await.unwrap().unwrap();
        let lead = store.lead(&lead_id).await.unwrap().unwrap();
        assert_eq!(
            lead.attributes["crm_territory"], "west",
            "the import may set it"
        );
        let seq = store.dirty(now, 10).await.unwrap()[0].seq;
        store
            .set_aside(&SetAside {
                lead_id: lead_id.clone(),
                seq,
                failures: 3,
                reason: "stored data is corrupt: a test".into(),
                since: now,
                retry_at: now + chrono::Duration::hours(1),
            })
            .await
            .unwrap();
        assert!(store.dirty(now, 10).await.unwrap().is_empty());
        let rules = hotlead_core::RuleSet::from_toml("seed", hotlead_core::rules::SEED).unwrap();
        let score = hotlead_core::score(&rules, &lead.to_lead(), &[], now, None);
        let other = store
            .record(hotlead_app::ports::Record {
                event: hotlead_tests::page("m-other", "u-other", "2026-11-19T00:00:00Z", "/"),
                keys: vec![
                    hotlead_core::identity::IdentityKey::email("hanako@example.co.jp").unwrap(),
                ],
                attributes: vec![],
                received_at: now,
                new_lead_id: "L-other".into(),
                digest: String::new(),
                retention: Default::default(),
            })
            .await
            .unwrap();
        let other = other.lead_id.unwrap();
        let message = hotlead_core::alert::AlertMessage {
            lead_id: other.clone(),
            reason: "hot".into(),
            subject: "s".into(),
            body: "b".into(),
            score: 80.0,
            band: "hot".into(),
            grade: "A1".into(),
            routing: Default::default(),
            lead_url: "http://x".into(),
        };
        store
            .save_score(ScoreUpdate {
                history: Default::default(),
                follow_up: None,
                lead_id: other.clone(),
                seen_seq: 1,
                score: hotlead_core::Score {
                    lead_id: other.clone(),
                    ..score
                },
                hot_crossings: 1,
                alerts: vec![OutboxEntry {
                    key: format!("hot:{other}:1"),
                    created_at: now,
                    message,
                }],
            })
            .await
            .unwrap();
        store
            .alert_abandoned(&format!("hot:{other}:1"), "InvalidParameter: Subject", now)
            .await
            .unwrap();
        lead_id
    });
    drop(runtime);

    let listed = run_in_process(&["leads", "set-aside", "--db", db]).unwrap();
    assert!(listed.contains("1 lead(s) set aside"), "{listed}");
    assert!(
        listed.contains(&lead_id) && listed.contains("failed 3 time(s)"),
        "{listed}"
    );
    assert!(
        listed.contains("stored data is corrupt: a test"),
        "{listed}"
    );
    let json: Value = serde_json::from_str(
        &run_in_process(&["leads", "set-aside", "--db", db, "--format", "json"]).unwrap(),
    )
    .unwrap();
    assert_eq!(json[0]["lead_id"], lead_id.as_str());
    let error = run_in_process(&["leads", "retry", "L-nobody", "--db", db])
        .unwrap_err()
        .to_string();
    assert!(error.contains("L-nobody is not set aside"), "{error}");
    let retried = run_in_process(&["leads", "retry", "--all", "--db", db]).unwrap();
    assert!(
        retried.contains("1 lead(s) due for a retry now"),
        "{retried}"
    );
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let store = hotlead_embedded::SqliteStore::open(std::path::Path::new(db)).unwrap();
        let due = store.dirty(now, 10).await.unwrap();
        assert_eq!(due.len(), 1, "due at once");
        assert_eq!(
            (due[0].lead_id.as_str(), due[0].failures),
            (lead_id.as_str(), 3)
        );
    });
    drop(runtime);
    let failed = run_in_process(&["alerts", "failed", "--db", db]).unwrap();
    assert!(failed.contains("1 alert(s) failed for good"), "{failed}");
    assert!(failed.contains("InvalidParameter: Subject"), "{failed}");
}

#[test]
fn serve_names_a_bad_setting_instead_of_panicking() {
    let (_dir, config) = temp_file(
        "hotlead.toml",
        "language = \"ja\"\ncors_origins = [\"*\"]\n",
    );
    let db = tempfile::tempdir().unwrap();
    let output = hotlead(&[
        "serve",
        "--port",
        "0",
        "--config",
        config.to_str().unwrap(),
        "--db",
        db.path().join("hotlead.db").to_str().unwrap(),
    ]);
    assert!(!output.status.success());
    let error = stderr(&output);
    assert!(!error.contains("panicked"), "{error}");
    assert!(
        error.contains("hotlead.toml:2:") && error.contains("cors_origins[0]"),
        "{error}"
    );
}

#[test]
fn an_operator_reads_a_leads_history_as_text_and_json() {
    use hotlead_app::ports::{ActionRecord, HistoryEntry, Store};
    use hotlead_core::stage::{Change, LeadStage, RepAction};
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("hotlead.db");
    let now = time("2026-11-20T00:00:00Z");
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let store = hotlead_embedded::SqliteStore::open(&db).unwrap();
        store
            .record(hotlead_app::ports::Record {
                event: hotlead_tests::page("m-1", "u-1", "2026-11-19T00:00:00Z", "/"),
                keys: vec![
                    hotlead_core::identity::IdentityKey::email("taro@example.co.jp").unwrap(),
                ],
                attributes: vec![],
                received_at: now,
                new_lead_id: "L-1".into(),
                digest: String::new(),
                retention: Default::default(),
            })
            .await
            .unwrap();
        let entry = |rev, change| HistoryEntry {
            lead_id: "L-1".into(),
            rev,
            at: now,
            by: "Sato".into(),
            change,
        };
        store
            .record_action(&ActionRecord {
                lead_id: "L-1".into(),
                crossing: 0,
                token: "0123456789abcdef".into(),
                read_rev: 0,
                entries: vec![
                    entry(
                        1,
                        Change::Action {
                            action: RepAction::Reject,
                            reason: Some("予算なし".into()),
                        },
                    ),
                    entry(
                        2,
                        Change::Stage {
                            from: None,
                            to: "recycled".into(),
                        },
                    ),
                ],
                stage: Some(LeadStage {
                    id: "recycled".into(),
                    since: now,
                    by_rep: true,
                }),
            })
            .await
            .unwrap();
    });
    drop(runtime);
    let db = db.to_str().unwrap();
    let text = run_in_process(&["leads", "history", "L-1", "--db", db]).unwrap();
    assert_eq!(
        text,
        "L-1: stage recycled since 2026-11-20 00:00:00 UTC; 2 change(s)\n\
         2026-11-20 00:00:00 UTC  reject: 予算なし  by Sato\n\
         2026-11-20 00:00:00 UTC  stage - -> recycled  by Sato\n"
    );
    let json: Value = serde_json::from_str(
        &run_in_process(&["leads", "history", "L-1", "--db", db, "--format", "json"]).unwrap(),
    )
    .unwrap();
    assert_eq!(json["stage"]["id"], "recycled");
    assert_eq!(json["history"][0]["kind"], "action");
    assert_eq!(json["history"][0]["reason"], "予算なし");
    let error = run_in_process(&["leads", "history", "L-404", "--db", db]).unwrap_err();
    assert!(error.to_string().contains("no lead \"L-404\""), "{error}");
}

#[test]
fn an_operator_reads_the_follow_up_figures_per_territory() {
    use hotlead_app::ports::{FollowUpRecord, OutboxEntry, ScoreUpdate, Store};
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("hotlead.db");
    let now = time("2026-11-20T00:00:00Z");
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let store = hotlead_embedded::SqliteStore::open(&db).unwrap();
        let rules = hotlead_core::RuleSet::from_toml("seed", hotlead_core::rules::SEED).unwrap();
        hotlead_app::ports::LearningStore::add_rules(
            &store,
            hotlead_app::ports::NewRules {
                name: "seed".into(),
                source: "file seed.toml".into(),
                text: hotlead_core::rules::SEED.into(),
                at: now,
            },
        )
        .await
        .unwrap();
        for (i, territory) in ["east", "east", "west"].iter().enumerate() {
            let id = format!("L-{i}");
            store
                .record(hotlead_app::ports::Record {
                    event: hotlead_tests::page(
                        &format!("m-{i}"),
                        &format!("u-{i}"),
                        "2026-11-19T00:00:00Z",
                        "/",
                    ),
                    keys: vec![
                        hotlead_core::identity::IdentityKey::email(&format!("p{i}@example.co.jp"))
                            .unwrap(),
                    ],
                    attributes: vec![],
                    received_at: now,
                    new_lead_id: id.clone(),
                    digest: String::new(),
                    retention: Default::default(),
                })
                .await
                .unwrap();
            let lead = store.lead(&id).await.unwrap().unwrap();
            let score = hotlead_core::score(&rules, &lead.to_lead(), &[], now, None);
            let alerted = now - chrono::Duration::days(2);
            store
                .save_score(ScoreUpdate {
                    lead_id: id.clone(),
                    seen_seq: 1,
                    score,
                    hot_crossings: 1,
                    alerts: vec![OutboxEntry {
                        key: format!("hot:{id}:1"),
                        created_at: alerted,
                        message: hotlead_core::alert::AlertMessage {
                            lead_id: id.clone(),
                            reason: "hot".into(),
                            subject: "s".into(),
                            body: "b".into(),
                            score: 80.0,
                            band: "hot".into(),
                            grade: "A1".into(),
                            routing: Default::default(),
                            lead_url: "http://x".into(),
                        },
                    }],
                    history: Default::default(),
                    follow_up: Some(FollowUpRecord {
                        lead_id: id.clone(),
                        crossing: 1,
                        territory: territory.to_string(),
                        owner: None,
                        alerted_at: alerted,
                        due_at: Some(alerted + chrono::Duration::hours(2)),
                        first_action_at: None,
                        first_action: None,
                        escalated_at: None,
                        closed_at: None,
                    }),
                })
                .await
                .unwrap();
        }
    });
    drop(runtime);
    let db = db.to_str().unwrap();
    let text = run_in_process(&["leads", "follow-up", "--db", db]).unwrap();
    assert!(
        text.starts_with("hot alerts of the last 30 day(s); deadline 2 business hour(s)\n"),
        "{text}"
    );
    let east = text.lines().find(|l| l.starts_with("east")).unwrap();
    let numbers: Vec<&str> = east.split_whitespace().collect();
    assert_eq!(
        numbers,
        ["east", "2", "0", "-", "0", "2", "0", "0"],
        "{text}"
    );
    let json: Value = serde_json::from_str(
        &run_in_process(&[
            "leads",
            "follow-up",
            "--db",
            db,
            "--format",
            "json",
            "--days",
            "1",
        ])
        .unwrap(),
    )
    .unwrap();
    assert_eq!(
        json["total"]["alerts"], 0,
        "the alerts are two days old: {json:#}"
    );
    let error = run_in_process(&["leads", "follow-up", "--db", db, "--days", "0"]).unwrap_err();
    assert!(error.to_string().contains("--days"), "{error}");
}
