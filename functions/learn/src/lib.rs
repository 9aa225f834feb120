//! The `learn` function: on its EventBridge schedule, learns from the stored outcomes
//! against the active rules, stores a pending suggestion and tells the analysts' topic
//! that a review is waiting, with the headline figures. Nothing live changes here.

use std::time::Instant;

use hotlead_app::ports::ReviewNotifier;
use hotlead_app::review::{LearnRun, Review, ReviewError, review_note};
use hotlead_learn::discover::DiscoverOptions;
use hotlead_learn::{LearnOptions, Split};
use serde_json::{Value, json};

/// What differs per deployment, from the environment.
#[derive(Debug, Clone)]
pub struct Settings {
    pub options: LearnOptions,
    /// Where the review API is, for links in the note.
    pub review_url: Option<String>,
    /// Signs the suggestion page's link the note ends with (the public API's
    /// `/s/{id}`), when the deployment has a link secret.
    pub links: Option<hotlead_app::links::Links>,
}

/// A setting that could not be read, by name.
#[derive(Debug)]
pub struct SettingError(pub String);

impl std::fmt::Display for SettingError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for SettingError {}

/// Reads the settings through `var` (the environment in production):
/// `HOTLEAD_LEARN_DISCOVER` (true/false, default true), `HOTLEAD_LEARN_SPLIT` (order or
/// random, default order), `HOTLEAD_LEARN_HOLDOUT_FRACTION` (0.2), `HOTLEAD_LEARN_SEED`,
/// `HOTLEAD_LEARN_MAX_RULES`, `HOTLEAD_LEARN_EXCLUDE` (attributes, comma-separated),
/// `HOTLEAD_CAPACITY_PER_WEEK`, `HOTLEAD_MIN_OUTCOMES` (200),
/// `HOTLEAD_MIN_WON` (30), `HOTLEAD_REVIEW_URL`.
pub fn settings(var: impl Fn(&str) -> Option<String>) -> Result<Settings, SettingError> {
    fn parse<T: std::str::FromStr>(
        name: &str,
        value: Option<String>,
    ) -> Result<Option<T>, SettingError> {
        value
            .filter(|v| !v.trim().is_empty())
            .map(|v| {
                v.trim()
                    .parse()
                    .map_err(|_| SettingError(format!("{name}: cannot read {v:?}")))
            })
            .transpose()
    }
    let discover = match var("HOTLEAD_LEARN_DISCOVER").as_deref().map(str::trim) {
        None | Some("") | Some("true") | Some("1") => true,
        Some("false") | Some("0") => false,
        Some(other) => {
            return Err(SettingError(format!(
                "HOTLEAD_LEARN_DISCOVER: expected true or false, got {other:?}"
            )));
        }
    };
    let split = match var("HOTLEAD_LEARN_SPLIT").as_deref().map(str::trim) {
        None | Some("") | Some("order") => Split::Order,
        Some("random") => Split::Random,
        Some(other) => {
            return Err(SettingError(format!(
                "HOTLEAD_LEARN_SPLIT: expected order or random, got {other:?}"
            )));
        }
    };
    let defaults = LearnOptions::default();
    let seed = parse("HOTLEAD_LEARN_SEED", var("HOTLEAD_LEARN_SEED"))?.unwrap_or(0);
    Ok(Settings {
        options: LearnOptions {
            discover: discover.then(DiscoverOptions::default),
            split,
            holdout_fraction: parse(
                "HOTLEAD_LEARN_HOLDOUT_FRACTION",
                var("HOTLEAD_LEARN_HOLDOUT_FRACTION"),
            )?
            .unwrap_or(defaults.holdout_fraction),
            seed,
            max_rules: parse("HOTLEAD_LEARN_MAX_RULES", var("HOTLEAD_LEARN_MAX_RULES"))?
                .unwrap_or(defaults.max_rules),
            capacity_per_week: parse(
                "HOTLEAD_CAPACITY_PER_WEEK",
                var("HOTLEAD_CAPACITY_PER_WEEK"),
            )?,
            leads_per_week: None,
            exclude: var("HOTLEAD_LEARN_EXCLUDE")
                .map(|v| {
                    v.split(',')
                        .map(str::trim)
                        .filter(|n| !n.is_empty())
                        .map(str::to_string)
                        .collect()
                })
                .unwrap_or_default(),
            min_outcomes: parse("HOTLEAD_MIN_OUTCOMES", var("HOTLEAD_MIN_OUTCOMES"))?
                .unwrap_or(defaults.min_outcomes),
            min_won: parse("HOTLEAD_MIN_WON", var("HOTLEAD_MIN_WON"))?.unwrap_or(defaults.min_won),
            bootstrap: defaults.bootstrap,
            fit: hotlead_learn::fit::FitOptions {
                seed,
                ..Default::default()
            },
        },
        review_url: var("HOTLEAD_REVIEW_URL").filter(|u| !u.trim().is_empty()),
        links: None,
    })
}

/// One scheduled run. A failed note leaves the suggestion stored (and says so).
pub async fn handle(
    review: &Review,
    notifier: &dyn ReviewNotifier,
    settings: &Settings,
    id: String,
) -> Result<Value, ReviewError> {
    let started = Instant::now();
    let seconds = move || started.elapsed().as_secs_f64();
    let mut progress = |p: hotlead_learn::Progress| {
        if p.done == p.total {
            tracing::info!(stage = p.stage, count = p.total, "learning step done");
        }
    };
    let run = review
        .learn(id, &settings.options, &mut progress, &seconds)
        .await?;
    match run {
        LearnRun::ColdStart(cold) => {
            tracing::info!(
                outcomes = cold.outcomes,
                won = cold.won,
                lost = cold.lost,
                need_outcomes = cold.need_outcomes,
                need_won = cold.need_won,
                "not enough outcomes to learn from yet"
            );
            Ok(json!({"result": "cold_start", "message": cold.message}))
        }
        LearnRun::Suggested(stored) => {
            let page = settings
                .links
                .as_ref()
                .map(|links| links.suggestion_url(&stored.id, review.now()));
            let note = review_note(&stored, settings.review_url.as_deref(), page.as_deref());
            let notified = match notifier.review_waiting(&note).await {
                Ok(()) => true,
                Err(error) => {
                    tracing::error!(%error, suggestion = %stored.id, "telling the analysts failed; the suggestion is stored");
                    false
                }
            };
            tracing::info!(suggestion = %stored.id, suggested_auc = stored.suggestion.suggested.auc,
                current_auc = ?stored.suggestion.current.as_ref().map(|c| c.auc), seconds = seconds(), "suggestion stored for review");
            Ok(json!({
                "result": "suggested",
                "id": stored.id,
                "notified": notified,
                "current_auc": stored.suggestion.current.as_ref().map(|c| c.auc),
                "suggested_auc": stored.suggestion.suggested.auc,
                "outcomes": stored.suggestion.data.outcomes,
            }))
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use async_trait::async_trait;
    use chrono::{Duration, TimeZone, Utc};
    use hotlead_app::ports::{NotifyError, Record, ReviewNote};
    use hotlead_app::review::{OutcomeInput, Review, Storage};
    use hotlead_app::scorer::ManualClock;
    use hotlead_core::identity::IdentityKey;

    use super::*;

    #[derive(Default)]
    struct Notes(Mutex<Vec<ReviewNote>>);

    #[async_trait]
    impl ReviewNotifier for Notes {
        async fn review_waiting(&self, note: &ReviewNote) -> Result<(), NotifyError> {
            self.0.lock().unwrap().push(note.clone());
            Ok(())
        }
    }

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

    async fn store_with_outcomes(count: usize) -> (Review, Arc<dyn Storage>) {
        let store: Arc<dyn Storage> = Arc::new(hotlead_embedded::SqliteStore::in_memory().unwrap());
        let t0 = Utc.with_ymd_and_hms(2026, 10, 1, 0, 0, 0).unwrap();
        let clock = Arc::new(ManualClock::at(t0 + Duration::days(60)));
        let review = Review::new(store.clone(), clock);
        review
            .install(hotlead_core::rules::SEED, "bundled seed rules")
            .await
            .unwrap();
        let mut rows = Vec::new();
        for i in 0..count {
            let big = i % 3 == 0;
            let email = format!("p{i}@c{i}.co.jp");
            let event = serde_json::json!({"type": "identify", "messageId": format!("m{i}"),
                "userId": format!("u{i}"), "timestamp": (t0 + Duration::hours(i as i64)).to_rfc3339(),
                "traits": {"email": email}});
            store
                .record(Record {
                    event: hotlead_core::Event::from_segment(&event).unwrap(),
                    keys: vec![IdentityKey::email(&email).unwrap()],
                    attributes: vec![
                        (
                            "employees".into(),
                            if big {
                                "2500".into()
                            } else {
                                format!("{}", 10 + i % 80)
                            },
                        ),
                        (
                            "industry".into(),
                            if big {
                                "製造業".into()
                            } else {
                                "小売".into()
                            },
                        ),
                    ],
                    received_at: t0 + Duration::hours(i as i64),
                    new_lead_id: format!("L-{i}"),
                    digest: String::new(),
                    retention: Default::default(),
                })
                .await
                .unwrap();
            let won = big != (i % 17 == 0);
            rows.push((
                i as u64 + 1,
                OutcomeInput {
                    email: Some(email),
                    outcome: Some(if won { "won" } else { "lost" }.into()),
                    closed_at: Some(
                        (t0 + Duration::days(30 + (i % 20) as i64))
                            .format("%Y-%m-%d")
                            .to_string(),
                    ),
                    ..OutcomeInput::default()
                },
            ));
        }
        let report = review.import_outcomes(rows).await.unwrap();
        assert_eq!(report.stored, count);
        (review, store)
    }

    #[tokio::test]
    async fn a_scheduled_run_stores_a_pending_suggestion_and_tells_the_analysts() {
        let (review, store) = store_with_outcomes(300).await;
        let mut settings =
            settings(env(&[("HOTLEAD_REVIEW_URL", "https://review.example.com")])).unwrap();
        settings.links = Some(hotlead_app::links::Links::new(
            hotlead_app::links::LinkKey::new(&[3u8; 32]).unwrap(),
            "https://api.example.com",
            14,
        ));
        let schedule: Value =
            serde_json::from_str(include_str!("../fixtures/eventbridge-schedule.json")).unwrap();
        assert_eq!(schedule["detail-type"], "Scheduled Event");
        let notes = Notes::default();
        let result = handle(&review, &notes, &settings, "s-1".into())
            .await
            .unwrap();
        assert_eq!(result["result"], "suggested");
        assert_eq!(result["notified"], true);
        let stored = store.suggestion("s-1").await.unwrap().unwrap();
        assert_eq!(stored.review, hotlead_app::ports::SuggestionStatus::Pending);
        assert!(stored.suggestion.current.is_some());
        let notes = notes.0.lock().unwrap().clone();
        assert_eq!(notes.len(), 1);
        assert!(
            notes[0]
                .body
                .contains("https://review.example.com/v1/suggestions/s-1/report")
        );
        assert!(
            notes[0].body.contains("https://api.example.com/s/s-1?e="),
            "the note links the suggestion's read-only page: {}",
            notes[0].body
        );
        assert!(notes[0].subject.contains("AUC"));
        // Nothing live changed: the seed rules are still the only version.
        assert_eq!(store.rules_history().await.unwrap().len(), 1);
    }

    #[tokio::test]
    async fn too_few_outcomes_store_nothing_and_say_how_many_are_missing() {
        let (review, store) = store_with_outcomes(60).await;
        let notes = Notes::default();
        let result = handle(&review, &notes, &settings(env(&[])).unwrap(), "s-1".into())
            .await
            .unwrap();
        assert_eq!(result["result"], "cold_start");
        assert!(
            result["message"]
                .as_str()
                .unwrap()
                .contains("140 more outcomes")
        );
        assert!(store.suggestions(10).await.unwrap().is_empty());
        assert!(notes.0.lock().unwrap().is_empty());
    }

    #[test]
    fn settings_are_read_or_refused_by_name() {
        let s = settings(env(&[
            ("HOTLEAD_LEARN_EXCLUDE", "duration, call_notes"),
            ("HOTLEAD_LEARN_DISCOVER", "false"),
            ("HOTLEAD_CAPACITY_PER_WEEK", "40"),
            ("HOTLEAD_LEARN_SPLIT", "random"),
        ]))
        .unwrap();
        assert!(s.options.discover.is_none());
        assert_eq!(s.options.exclude, ["duration", "call_notes"]);
        assert_eq!(s.options.capacity_per_week, Some(40.0));
        assert_eq!(s.options.split, Split::Random);
        let error = settings(env(&[("HOTLEAD_MIN_WON", "many")])).unwrap_err();
        assert!(error.0.contains("HOTLEAD_MIN_WON"));
    }
}
