//! The checks behind the fuzz targets: one function per target, taking arbitrary bytes.
//! A panic is a finding. `crates/fuzz` (libFuzzer, nightly) runs them on generated
//! inputs; `tests/it/fuzz_corpus.rs` (stable, `cargo test`) replays every seed and crash
//! reproducer of `crates/fuzz/corpus/<target>/` through them.
//!
//! `crates/fuzz` compiles this very file (`#[path]`), so it uses only crates both have:
//! hotlead-core, hotlead-app, hotlead-api, hotlead-embedded, serde_json, tokio, chrono.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use hotlead_api::ApiError;
use hotlead_app::ingest::FormSubmission;
use hotlead_app::scorer::{ManualClock, SequentialIds};
use hotlead_app::{Config, FormOutcome, Ingest, IngestError, Store};
use hotlead_core::event::{Event, EventType, check_id};
use hotlead_core::identity::IdentityKey;
use hotlead_core::lead::{DERIVED_ATTRIBUTES, Lead, attribute_name};
use hotlead_core::normalize::{self, Interval};
use hotlead_core::{Points, RuleSet};
use hotlead_embedded::SqliteStore;
use serde_json::{Value, json};

/// A target's checks, on one input.
pub type Check = fn(&[u8]);

/// The fuzz targets, by name: each has `crates/fuzz/fuzz_targets/<name>.rs` and
/// `crates/fuzz/corpus/<name>/`.
pub const TARGETS: &[(&str, Check)] = &[
    ("form", form),
    ("segment", segment),
    ("normalize", normalize),
    ("rules", rules),
];

/// The server configuration the form checks run with: the shipped example (its forms'
/// field mappings, honeypots and thank-you pages).
const CONFIG: &str = include_str!("../examples/config/hotlead.toml");

/// "Now" of every check: received times are this.
fn now() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-11-02T09:00:00+09:00")
        .expect("a valid time")
        .with_timezone(&Utc)
}

/// An ingestion service on a fresh in-memory SQLite store, at [`now`].
fn ingest() -> (Ingest, Arc<SqliteStore>) {
    let store = Arc::new(SqliteStore::in_memory().expect("an in-memory store opens"));
    let config = Config::from_toml("hotlead.toml", CONFIG).expect("the example config is valid");
    let ingest = Ingest::new(
        store.clone(),
        Arc::new(ManualClock::at(now())),
        Arc::new(SequentialIds::default()),
        Arc::new(config),
        Arc::new(tokio::sync::Notify::new()),
    );
    (ingest, store)
}

fn block_on<F: std::future::Future>(future: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("a current-thread runtime")
        .block_on(future)
}

/// The lines of `text` (split at `\n`), as `source`-relative 1-based line numbers go.
fn line_count(text: &str) -> usize {
    text.split('\n').count()
}

// ---------------------------------------------------------------------------------------
// form

/// A form submission: the first line is the request's `Content-Type` (optionally a tab
/// and the form id, else `contact`), the rest is the body. The body goes through
/// [`hotlead_api::parse_form_fields`] exactly as the handler does, then through
/// [`Ingest::form`] on an in-memory SQLite store, twice (a double submit).
pub fn form(data: &[u8]) {
    let (header, body) = match data.iter().position(|&b| b == b'\n') {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &[][..]),
    };
    let header = String::from_utf8_lossy(header);
    let (content_type, form_id) = header.split_once('\t').unwrap_or((&header, "contact"));
    // As the handler reads the header (`media_type`).
    let media = content_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();

    let parsed = hotlead_api::parse_form_fields(&media, body);
    let (fields, plain_form) = match (media.as_str(), parsed) {
        ("application/x-www-form-urlencoded", Err(e)) => {
            panic!("an urlencoded body is always readable, got {e:?}")
        }
        ("application/x-www-form-urlencoded" | "application/json", Ok(parsed)) => parsed,
        ("application/json", Err(ApiError::Malformed(_) | ApiError::Invalid { .. })) => return,
        (_, Err(ApiError::UnsupportedMediaType(_))) => return,
        (media, other) => panic!("media type {media:?}: unexpected {other:?}"),
    };
    assert_eq!(plain_form, media == "application/x-www-form-urlencoded");
    if media == "application/json" {
        let object: serde_json::Map<String, Value> =
            serde_json::from_slice(body).expect("the body parsed as a JSON object");
        let given = object.values().filter(|v| !v.is_null()).count();
        assert_eq!(fields.len(), given, "one field per non-null value");
    }

    let submission = FormSubmission {
        form_id: form_id.to_string(),
        fields,
        wants_redirect: plain_form,
        ..FormSubmission::default()
    };
    let (ingest, store) = ingest();
    block_on(async {
        let first = ingest.form(submission.clone()).await;
        let outcome = match first {
            Ok(outcome) => outcome,
            Err(IngestError::Invalid { field, message }) => {
                assert!(!message.is_empty(), "an error for `{field}` says why");
                return;
            }
            Err(other) => panic!("a form on a fresh store failed with {other:?}"),
        };
        let thank_you = ingest
            .config()
            .thank_you_url(submission.form_id.trim())
            .map(str::to_string);
        match &outcome {
            FormOutcome::Ignored { redirect } => {
                assert_eq!(*redirect, thank_you.filter(|_| plain_form));
                let page = store
                    .ranking(None, 10, None)
                    .await
                    .expect("the store answers");
                assert!(
                    page.leads.is_empty(),
                    "a honeypot submission stores no lead"
                );
            }
            FormOutcome::Stored {
                lead_id,
                duplicate,
                redirect,
                ..
            } => {
                assert!(!duplicate, "the first submission on a fresh store is new");
                assert_eq!(*redirect, thank_you.filter(|_| plain_form));
                let stored = store
                    .lead(lead_id)
                    .await
                    .expect("the store answers")
                    .expect("the stored lead is there");
                check_stored_attributes(&stored.attributes);
                let email = stored
                    .attributes
                    .get("email")
                    .expect("a stored form lead has an e-mail address");
                let key = IdentityKey::email(email).expect("its e-mail address is valid");
                assert!(
                    stored.identities.contains(&key.storage_key()),
                    "the lead is found by its address: {:?} not in {:?}",
                    key.storage_key(),
                    stored.identities
                );
                assert_eq!(
                    stored.to_lead().email(),
                    normalize::email(email).as_deref(),
                    "the lead read back has its address"
                );
            }
        }
        // A double submit is the same submission: one event, the same lead.
        match (outcome, ingest.form(submission).await) {
            (
                FormOutcome::Stored { lead_id, .. },
                Ok(FormOutcome::Stored {
                    lead_id: again,
                    duplicate,
                    ..
                }),
            ) => {
                assert!(duplicate, "a double submit is a duplicate");
                assert_eq!(lead_id, again);
            }
            (FormOutcome::Ignored { .. }, Ok(FormOutcome::Ignored { .. })) => {}
            (first, second) => panic!("submitted twice: {first:?}, then {second:?}"),
        }
    });
}

/// Attributes as stored are by canonical name, so a lead read back is the lead stored.
fn check_stored_attributes(attributes: &std::collections::BTreeMap<String, String>) {
    for name in attributes.keys() {
        assert_eq!(
            attribute_name(name),
            *name,
            "a stored attribute name is canonical"
        );
    }
}

// ---------------------------------------------------------------------------------------
// segment

/// A Segment call (or a `{"batch": [...]}`) as JSON: [`Event::from_segment`], then the
/// ingestion service's checks and storing ([`Ingest::call`], [`Ingest::batch`]) on an
/// in-memory SQLite store.
pub fn segment(data: &[u8]) {
    let Ok(value) = serde_json::from_slice::<Value>(data) else {
        return;
    };
    check_event(&value);
    if let Some(calls) = value.get("batch").and_then(Value::as_array) {
        for call in calls {
            check_event(call);
        }
    }

    let (ingest, store) = ingest();
    block_on(async {
        // As `/v1/<type>` gives it: a call without `type` takes the route's.
        let route = value.get("type").is_none().then_some(EventType::Page);
        match ingest.call(&value, route).await {
            Ok(recorded) => {
                assert!(!recorded.duplicate, "a fresh store has seen nothing");
                assert!(
                    !recorded.conflicting,
                    "a fresh store has seen no message id"
                );
                if let Some(lead_id) = &recorded.lead_id {
                    let lead = store.lead(lead_id).await.expect("the store answers");
                    let lead = lead.expect("the call's lead is stored");
                    check_stored_attributes(&lead.attributes);
                }
                let again = ingest.call(&value, route).await;
                let again = again.expect("the same call again is accepted");
                assert!(again.duplicate, "the same call twice is a duplicate");
                assert_eq!(again.lead_id, recorded.lead_id);
            }
            Err(error) => check_ingest_error(&error),
        }
        if let Some(calls) = value.get("batch").and_then(Value::as_array) {
            match ingest.batch(calls).await {
                Ok(results) => assert_eq!(results.len(), calls.len(), "one result per call"),
                Err(error @ IngestError::TooMany { .. }) => {
                    assert!(
                        calls.len() > hotlead_app::ingest::MAX_BATCH_CALLS,
                        "{error}"
                    )
                }
                Err(error) => check_ingest_error(&error),
            }
        }
    });
}

fn check_ingest_error(error: &IngestError) {
    match error {
        IngestError::Invalid { field, message } => {
            assert!(!field.is_empty() && !message.is_empty(), "{error}");
        }
        other => panic!("a call on a fresh store failed with {other:?}"),
    }
}

/// [`Event::from_segment`]: an event it makes is one the product can keep (checked ids,
/// a name for a track call, the same event back from its stored JSON form).
fn check_event(value: &Value) {
    let event = match Event::from_segment(value) {
        Ok(event) => event,
        Err(error) => {
            assert!(!error.field.is_empty(), "an error names its field: {error}");
            assert!(!error.message.is_empty(), "{error}");
            return;
        }
    };
    for (field, id) in [
        ("messageId", Some(&*event.message_id)),
        ("userId", event.user_id.as_deref()),
        ("anonymousId", event.anonymous_id.as_deref()),
    ] {
        if let Some(id) = id {
            assert!(!id.is_empty(), "{field} is not empty");
            assert_eq!(id.trim(), id, "{field} is trimmed");
            assert!(check_id(field, id).is_ok(), "{field} {id:?} is a valid id");
        }
    }
    assert!(
        event.user_id.is_some() || event.anonymous_id.is_some() || event.kind == EventType::Alias,
        "an event names who did it"
    );
    if event.kind == EventType::Track {
        assert!(event.name.is_some(), "a track call has its event name");
    }
    let stored = serde_json::to_value(&event).expect("an event serialises");
    let back: Event = serde_json::from_value(stored).expect("a stored event reads back");
    assert_eq!(back, event, "an event reads back as it was stored");
}

// ---------------------------------------------------------------------------------------
// normalize

/// Normalisation: each line of the text is an attribute, `name<TAB>value` (a line without
/// a tab is a value of `note`). Every name and value (and the whole text) goes through
/// the normalisers; the attributes make a [`Lead`].
pub fn normalize(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    check_value(&text);
    let mut pairs = Vec::new();
    for line in text.split('\n') {
        let (name, value) = line.split_once('\t').unwrap_or(("note", line));
        check_value(name);
        check_value(value);
        pairs.push((name, value));
    }
    check_lead(&pairs);
}

/// Properties of the normalisers on one value.
fn check_value(raw: &str) {
    // Folding and the comparison form are stable: a normalised value normalises to
    // itself, so a value compares the same however often it was normalised.
    let folded = normalize::fold(raw);
    assert_eq!(normalize::fold(&folded), folded, "fold is idempotent");
    assert_eq!(folded.trim(), folded, "folded text is trimmed");
    assert!(!folded.contains("  "), "folded text has single spaces");
    let text = normalize::text(raw);
    assert_eq!(normalize::text(&text), text, "text is idempotent");
    let name = attribute_name(raw);
    assert_eq!(attribute_name(&name), name, "attribute_name is idempotent");
    let company = normalize::company(raw);
    assert_eq!(
        normalize::company(&company),
        company,
        "company is idempotent"
    );

    let phone = normalize::phone(raw);
    assert!(
        phone
            .char_indices()
            .all(|(i, c)| c.is_ascii_digit() || (c == '+' && i == 0)),
        "a phone number is digits and a leading plus: {phone:?}"
    );
    assert_eq!(normalize::phone(&phone), phone, "phone is idempotent");

    if let Some(email) = normalize::email(raw) {
        assert_eq!(
            normalize::email(&email).as_deref(),
            Some(email.as_str()),
            "email is idempotent"
        );
        assert!(!email.contains(char::is_whitespace), "{email:?}");
        assert_eq!(email.matches('@').count(), 1, "{email:?}");
        let domain = normalize::email_domain(&email).expect("an address has a domain");
        assert!(
            domain.contains('.') && !domain.starts_with('.'),
            "{email:?}"
        );
        assert_eq!(
            IdentityKey::email(raw).map(|k| k.storage_key()),
            Some(format!("email:{email}")),
            "an address is its identity key"
        );
    }

    if let Some(quantity) = normalize::quantity(raw) {
        check_interval(raw, &quantity);
        assert_eq!(
            normalize::quantity(&folded),
            Some(quantity),
            "a quantity reads the folded text"
        );
    }
}

fn check_interval(raw: &str, interval: &Interval) {
    assert!(
        interval.low.is_some() || interval.high.is_some(),
        "{raw:?}: an interval has an end"
    );
    for bound in [interval.low, interval.high].into_iter().flatten() {
        assert!(
            bound.value.is_finite(),
            "{raw:?}: bounds are finite: {interval:?}"
        );
    }
    if let (Some(low), Some(high)) = (interval.low, interval.high) {
        assert!(
            low.value <= high.value,
            "{raw:?}: low <= high: {interval:?}"
        );
        assert!(
            low.value < high.value || (low.inclusive && high.inclusive),
            "{raw:?}: a single number is a closed interval: {interval:?}"
        );
    }
    // The comparisons rules use agree with the interval's ends.
    if let Some(low) = interval.low {
        assert!(interval.all_at_least(low.value));
        assert!(!interval.all_above(low.value) || !low.inclusive);
    }
    if let Some(high) = interval.high {
        assert!(interval.all_at_most(high.value));
        assert!(!interval.all_below(high.value) || !high.inclusive);
    }
}

/// A lead built from raw pairs: canonical names, derived attributes derived, and the
/// same lead again from what the store keeps (its raw values by name).
fn check_lead(pairs: &[(&str, &str)]) {
    let lead = Lead::from_raw("L-fuzz", pairs.iter().copied());
    for (name, value) in &lead.attributes {
        assert_eq!(attribute_name(name), *name, "attribute names are canonical");
        assert!(
            !value.raw.trim().is_empty(),
            "{name}: blank values are missing"
        );
        if !DERIVED_ATTRIBUTES.contains(&name.as_str())
            && hotlead_core::normalize::ValueKind::for_attribute(name)
                == hotlead_core::normalize::ValueKind::Text
        {
            assert_eq!(value.number, normalize::quantity(&value.raw), "{name}");
            if let Some(number) = &value.number {
                check_interval(&value.raw, number);
            }
        }
    }
    match lead.get("email") {
        Some(email) => assert_eq!(
            lead.email().map(str::to_string),
            normalize::email(&email.raw),
            "the lead's address is its e-mail attribute's"
        ),
        None => assert!(lead.get("email_domain").is_none(), "no address, no domain"),
    }
    // What the store keeps: raw values by canonical name (`StoredLead::to_lead`).
    let stored: Vec<(String, String)> = lead
        .attributes
        .iter()
        .map(|(name, value)| (name.clone(), value.raw.clone()))
        .collect();
    let reloaded = Lead::from_raw(
        "L-fuzz",
        stored.iter().map(|(n, v)| (n.as_str(), v.as_str())),
    );
    assert_eq!(
        reloaded, lead,
        "a lead read back from the store is the same lead"
    );
}

// ---------------------------------------------------------------------------------------
// rules

/// A rules file: [`RuleSet::from_toml`] on the text. An invalid file is reported with
/// every diagnostic inside the file; a valid one scores a few leads.
pub fn rules(data: &[u8]) {
    let Ok(source) = std::str::from_utf8(data) else {
        return;
    };
    let rules = match RuleSet::from_toml("fuzz.toml", source) {
        Ok(rules) => rules,
        Err(error) => {
            assert_eq!(error.file, "fuzz.toml");
            assert!(!error.diagnostics.is_empty(), "an error has a diagnostic");
            let lines: Vec<&str> = source.split('\n').collect();
            for d in &error.diagnostics {
                assert!(
                    (1..=line_count(source)).contains(&d.line),
                    "line {} in 1..={}: {d:?}",
                    d.line,
                    lines.len()
                );
                let width = lines[d.line - 1].chars().count();
                assert!(
                    (1..=width + 1).contains(&d.column),
                    "column {} in 1..={}: {d:?}",
                    d.column,
                    width + 1
                );
                assert!(!d.field.is_empty(), "{d:?}");
                assert!(!d.message.trim().is_empty(), "{d:?}");
            }
            assert!(!error.to_string().is_empty());
            return;
        }
    };
    let leads = [
        Lead::from_raw("L-1", []),
        Lead::from_raw(
            "L-2",
            [
                ("email", "yamada@sample.co.jp"),
                ("company", "株式会社サンプル"),
                ("title", "情報システム部 部長"),
                ("employees", "1,000名以上"),
                ("capital", "1億2000万円"),
                ("industry", "製造業"),
                ("prefecture", "東京都"),
            ],
        ),
        Lead::from_raw("L-3", [("email", "taro@gmail.com"), ("employees", "10")]),
    ];
    let at = |minutes: i64| {
        (now() - chrono::Duration::minutes(minutes))
            .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
    };
    let events: Vec<Event> = [
        json!({"type": "page", "messageId": "p1", "anonymousId": "a", "timestamp": at(30),
               "context": {"page": {"path": "/pricing", "url": "https://www.example.co.jp/pricing?utm_source=google"}}}),
        json!({"type": "page", "messageId": "p2", "anonymousId": "a", "timestamp": at(5),
               "context": {"page": {"path": "/case-studies/a"}, "ip": "203.0.113.9", "userAgent": "Mozilla/5.0"}}),
        json!({"type": "track", "messageId": "t1", "userId": "L-2", "event": "Form Submitted",
               "timestamp": at(10), "properties": {"form_id": "contact"}}),
        json!({"type": "track", "messageId": "t2", "userId": "L-2", "event": "Demo Requested",
               "timestamp": at(60 * 24 * 40)}),
    ]
    .iter()
    .map(|v| Event::from_segment(v).expect("a valid fixture event"))
    .collect();
    for lead in &leads {
        for previous in [None, Some(hotlead_core::Band::Hot)] {
            let score = hotlead_core::score(&rules, lead, &events, now(), previous);
            let sum: Points = score.contributions.iter().map(|c| c.points).sum();
            assert_eq!(
                score.score, sum,
                "the total is the sum of the contributions"
            );
            let again = hotlead_core::score(&rules, lead, &events, now(), previous);
            assert_eq!(again, score, "scoring is deterministic");
        }
    }
}
