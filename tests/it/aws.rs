//! The AWS adapters against the moto emulator: SNS routing by filter policy.

use aws_sdk_sqs::types::QueueAttributeName;
use hotlead_app::Notifier;
use hotlead_core::alert::{AlertMessage, Routing};
use hotlead_tests::aws::{config, unique};
use serde_json::{Value, json};

/// A topic with one SQS queue per territory, each subscribed with a filter policy.
pub struct Routed {
    pub topic_arn: String,
    pub queues: Vec<(String, String)>,
    pub sqs: aws_sdk_sqs::Client,
}

pub async fn routed_topic(territories: &[&str]) -> Routed {
    let sns = aws_sdk_sns::Client::new(&config().await);
    let topic_arn = sns
        .create_topic()
        .name(unique("alerts"))
        .send()
        .await
        .unwrap()
        .topic_arn
        .unwrap();
    route(&topic_arn, territories).await
}

/// A new queue subscribed to `topic_arn` with a filter policy (raw delivery); its URL.
pub async fn subscribed_queue(topic_arn: &str, name: &str, filter: Value) -> String {
    let config = config().await;
    let sns = aws_sdk_sns::Client::new(&config);
    let sqs = aws_sdk_sqs::Client::new(&config);
    let url = sqs
        .create_queue()
        .queue_name(unique(name))
        .send()
        .await
        .unwrap()
        .queue_url
        .unwrap();
    let arn = sqs
        .get_queue_attributes()
        .queue_url(&url)
        .attribute_names(QueueAttributeName::QueueArn)
        .send()
        .await
        .unwrap()
        .attributes
        .unwrap()[&QueueAttributeName::QueueArn]
        .clone();
    sns.subscribe()
        .topic_arn(topic_arn)
        .protocol("sqs")
        .endpoint(arn)
        .attributes("FilterPolicy", filter.to_string())
        .attributes("RawMessageDelivery", "true")
        .send()
        .await
        .unwrap();
    url
}

/// Subscribes one new queue per territory to `topic_arn`, filtered on `territory`.
pub async fn route(topic_arn: &str, territories: &[&str]) -> Routed {
    let mut queues = Vec::new();
    for territory in territories {
        let url = subscribed_queue(topic_arn, territory, json!({"territory": [territory]})).await;
        queues.push((territory.to_string(), url));
    }
    Routed {
        topic_arn: topic_arn.to_string(),
        queues,
        sqs: aws_sdk_sqs::Client::new(&config().await),
    }
}

impl Routed {
    /// Every message waiting in the territory's queue, parsed.
    pub async fn drain(&self, territory: &str) -> Vec<Value> {
        let url = &self.queues.iter().find(|(t, _)| t == territory).unwrap().1;
        let mut messages = Vec::new();
        loop {
            let out = self
                .sqs
                .receive_message()
                .queue_url(url)
                .max_number_of_messages(10)
                .wait_time_seconds(0)
                .send()
                .await
                .unwrap();
            let batch = out.messages.unwrap_or_default();
            if batch.is_empty() {
                return messages;
            }
            for message in batch {
                let body = message.body.unwrap_or_default();
                messages.push(serde_json::from_str(&body).unwrap_or(Value::String(body)));
                self.sqs
                    .delete_message()
                    .queue_url(url)
                    .receipt_handle(message.receipt_handle.unwrap())
                    .send()
                    .await
                    .unwrap();
            }
        }
    }
}

fn alert(lead: &str, territory: &str) -> AlertMessage {
    AlertMessage {
        lead_id: lead.into(),
        reason: "hot".into(),
        subject: format!("[Hot lead] {lead}"),
        body: format!("{lead} is now a hot lead.\nWhy:\n  +30  1,000+ employees"),
        score: 80.0,
        band: "hot".into(),
        grade: "A1".into(),
        routing: Routing {
            territory: territory.into(),
            owner: Some(format!("rep-{territory}@example.com")),
            product: None,
        },
        lead_url: format!("http://x/v1/leads/{lead}"),
    }
}

#[tokio::test]
async fn sns_alerts_reach_only_the_queue_whose_filter_policy_matches_their_territory() {
    let routed = routed_topic(&["east", "west"]).await;
    let notifier =
        hotlead_aws::SnsNotifier::new(aws_sdk_sns::Client::new(&config().await), &routed.topic_arn);
    notifier.deliver(&alert("L-1", "east")).await.unwrap();
    notifier.deliver(&alert("L-2", "west")).await.unwrap();
    notifier.deliver(&alert("L-3", "north")).await.unwrap();
    let east = routed.drain("east").await;
    let west = routed.drain("west").await;
    assert_eq!(east.len(), 1, "{east:#?}");
    assert_eq!(west.len(), 1, "{west:#?}");
    assert_eq!(east[0]["lead_id"], "L-1");
    assert_eq!(east[0]["owner"], "rep-east@example.com");
    assert!(
        east[0]["body"]
            .as_str()
            .unwrap()
            .contains("1,000+ employees")
    );
    assert_eq!(west[0]["lead_id"], "L-2");
}

/// `serve --backend aws` on a fresh table and topics, alerts routed east / west as the
/// example configuration routes them (Tokyo is east), scoring every `tick`.
async fn serve_on_moto(
    tick: std::time::Duration,
) -> (hotlead_aws::Provisioned, Routed, hotlead::serve::Running) {
    let config = config().await;
    let made = hotlead_aws::provision(
        &config,
        &unique("hotlead"),
        &unique("alerts"),
        &unique("analysts"),
    )
    .await
    .unwrap();
    let routed = route(&made.alerts_topic_arn, &["east", "west"]).await;
    let backend = hotlead::serve::AwsBackend {
        config: config.clone(),
        table: made.table.clone(),
        alerts_topic_arn: made.alerts_topic_arn.clone(),
    };
    let running = hotlead::serve::start(hotlead::serve::ServeOptions {
        host: "127.0.0.1".into(),
        port: 0,
        backend: hotlead::serve::Backend::Aws(Box::new(backend)),
        rules: None,
        config: Some(hotlead_tests::repo_file("examples/config/hotlead.toml")),
        auth: hotlead_api::Auth::default(),
        tick,
        open_admin: false,
        event_cache_bytes: hotlead_app::event_cache::DEFAULT_BYTES,
    })
    .await
    .unwrap();
    (made, routed, running)
}

/// A Tokyo form from a large company, then three pricing views from its browser: a hot
/// lead under the seed rules. Its id.
async fn hot_lead_over_http(client: &reqwest::Client, url: &str) -> String {
    let form = [
        ("email", "yamada@sample.co.jp"),
        ("company", "株式会社サンプル"),
        ("employees", "１，２００名"),
        ("capital", "600億円"),
        ("prefecture", "東京都"),
        ("anonymousId", "browser-1"),
    ];
    let stored: Value = client
        .post(format!("{url}/v1/forms/contact"))
        .form(&form)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    for i in 0..3 {
        let call = json!({"type": "page", "messageId": format!("p{i}"), "anonymousId": "browser-1",
            "timestamp": chrono::Utc::now().to_rfc3339(), "context": {"page": {"path": "/pricing"}}});
        let response = client
            .post(format!("{url}/v1/page"))
            .json(&call)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), reqwest::StatusCode::OK);
    }
    stored["lead_id"].as_str().unwrap().to_string()
}

/// The first alerts to reach `territory`'s queue, failing after `within`.
async fn first_alerts(routed: &Routed, territory: &str, within: std::time::Duration) -> Vec<Value> {
    let deadline = std::time::Instant::now() + within;
    loop {
        let alerts = routed.drain(territory).await;
        if !alerts.is_empty() {
            return alerts;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no alert reached the {territory} queue within {within:?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

/// `serve --backend aws` reads its stream every tick, and at once when its own ingest
/// stored something: a form's alert does not wait for the tick (an hour here).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_on_aws_scores_what_it_ingested_without_waiting_for_the_tick() {
    let (_made, routed, running) = serve_on_moto(std::time::Duration::from_secs(3600)).await;
    let client = reqwest::Client::new();
    let lead_id = hot_lead_over_http(&client, &running.url()).await;
    let east = first_alerts(&routed, "east", std::time::Duration::from_secs(20)).await;
    assert_eq!(east.len(), 1, "{east:#?}");
    assert_eq!(east[0]["lead_id"], lead_id.as_str());
    running.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_form_and_events_over_http_alert_exactly_the_right_territory_once_through_the_stream_and_sns()
 {
    let config = config().await;
    let (made, routed, running) = serve_on_moto(std::time::Duration::from_millis(100)).await;
    let client = reqwest::Client::new();
    let lead_id = hot_lead_over_http(&client, &running.url()).await;
    let mut east = first_alerts(&routed, "east", std::time::Duration::from_secs(30)).await;
    tokio::time::sleep(std::time::Duration::from_millis(800)).await;
    east.extend(routed.drain("east").await);
    assert_eq!(east.len(), 1, "{east:#?}");
    assert_eq!(east[0]["lead_id"], lead_id.as_str());
    assert_eq!(east[0]["reason"], "hot");
    let body = east[0]["body"].as_str().unwrap();
    assert!(
        body.contains("従業員1,000名以上") && body.contains("価格ページ"),
        "{body}"
    );
    assert!(routed.drain("west").await.is_empty());
    // The alert ends with the lead page's signed link; the page opens from the table.
    let start = body.find("/l/").expect("a lead page link in the alert");
    let path: String = body[start..]
        .chars()
        .take_while(|c| !c.is_whitespace())
        .collect();
    let page = client
        .get(format!("{}{path}", running.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), reqwest::StatusCode::OK, "{path}");
    let html = page.text().await.unwrap();
    assert!(
        html.contains("株式会社サンプル") && html.contains("従業員1,000名以上"),
        "{html}"
    );
    let altered = client
        .get(format!(
            "{}{}",
            running.url(),
            path.replace("&l=ja", "&l=en")
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(altered.status(), reqwest::StatusCode::FORBIDDEN);
    assert!(!altered.text().await.unwrap().contains("株式会社サンプル"));
    // The rep accepts the lead from the page: the action and the stage land in the table.
    assert!(
        html.contains("MQL"),
        "the seed rules made it an MQL: {html}"
    );
    let (page_path, query) = path.split_once('?').unwrap();
    let accept = format!("{}{page_path}/accept?{query}", running.url());
    let no_redirects = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let recorded = no_redirects
        .post(&accept)
        .form(&[("by", "佐藤"), ("token", "aws-0123456789abcdef")])
        .send()
        .await
        .unwrap();
    assert_eq!(recorded.status(), reqwest::StatusCode::SEE_OTHER);
    let html = client
        .get(format!("{}{path}", running.url()))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        html.contains("MQL → SQL") && html.contains("佐藤"),
        "{html}"
    );

    // Replaying the whole stream through the `score` function's handler sends nothing new.
    running.stop();
    let streams = aws_sdk_dynamodbstreams::Client::new(&config);
    let records = hotlead_aws::stream::read_all(&streams, made.stream_arn.as_deref().unwrap())
        .await
        .unwrap();
    let changes = hotlead_aws::stream::changes_of(&records);
    assert!(
        changes
            .iter()
            .any(|c| c.lead_id == lead_id && c.needs_rescore())
    );
    let store = std::sync::Arc::new(hotlead_aws::DynamoStore::new(
        aws_sdk_dynamodb::Client::new(&config),
        &made.table,
    ));
    let notifier = std::sync::Arc::new(hotlead_aws::SnsNotifier::new(
        aws_sdk_sns::Client::new(&config),
        &made.alerts_topic_arn,
    ));
    let scorer = hotlead_app::Scorer::new(
        store,
        notifier,
        std::sync::Arc::new(hotlead_app::SystemClock),
        std::sync::Arc::new(hotlead::serve::load_rules_or_seed(None).unwrap()),
        std::sync::Arc::new(hotlead_app::Config::default()),
    );
    let response = score::handle(&scorer, &lambda_event(&records)).await;
    assert!(response.batch_item_failures.is_empty());
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    assert!(
        routed.drain("east").await.is_empty(),
        "a replayed batch alerts nobody again"
    );
    assert!(routed.drain("west").await.is_empty());
}

#[tokio::test]
async fn a_web_event_costs_one_write_request_and_every_operation_is_counted() {
    use std::sync::Arc;

    use hotlead_app::ingest::FormSubmission;
    use hotlead_app::ports::Store;
    use hotlead_aws::cost::RequestCounter;

    let config = config().await;
    let counter = RequestCounter::default();
    let client = aws_sdk_dynamodb::Client::from_conf(
        aws_sdk_dynamodb::config::Builder::from(&config)
            .interceptor(counter.clone())
            .build(),
    );
    let table = unique("hotlead-cost");
    hotlead_aws::table::create_table(&client, &table)
        .await
        .unwrap();
    let store = Arc::new(hotlead_aws::DynamoStore::new(client, &table));
    let clock = Arc::new(hotlead_app::SystemClock);
    let app_config = Arc::new(hotlead_app::Config::default());
    let ingest = hotlead_app::Ingest::new(
        store.clone(),
        clock.clone(),
        Arc::new(hotlead_app::UuidIds),
        app_config.clone(),
        Arc::new(tokio::sync::Notify::new()),
    );
    let outbox = tempfile::tempdir().unwrap();
    let scorer = hotlead_app::Scorer::new(
        store.clone(),
        Arc::new(hotlead_embedded::FileOutbox::new(
            &outbox.path().join("alerts.jsonl"),
        )),
        clock,
        Arc::new(hotlead::serve::load_rules_or_seed(None).unwrap()),
        app_config,
    );
    counter.take();
    let mut rows: Vec<(&str, u64, u64)> = Vec::new();
    let form = |email: &str, id: &str| FormSubmission {
        form_id: "contact".into(),
        fields: vec![
            ("email".into(), email.into()),
            ("employees".into(), "1,200名".into()),
            ("anonymousId".into(), "b-1".into()),
        ],
        idempotency_key: Some(id.into()),
        ..FormSubmission::default()
    };
    let page = |id: &str, anonymous: &str| json!({"type": "page", "messageId": id, "anonymousId": anonymous, "timestamp": chrono::Utc::now().to_rfc3339(), "context": {"page": {"path": "/pricing"}}});

    let lead_id = match ingest.form(form("a@b.jp", "f1")).await.unwrap() {
        hotlead_app::FormOutcome::Stored { lead_id, .. } => lead_id,
        other => panic!("{other:?}"),
    };
    let (r, w) = counter.take();
    rows.push(("form submission, new lead", r, w));
    ingest.form(form("a@b.jp", "f2")).await.unwrap();
    let (r, w) = counter.take();
    rows.push(("form submission, known lead", r, w));
    ingest.call(&page("p1", "b-1"), None).await.unwrap();
    let (r, w) = counter.take();
    rows.push(("web event of a known visitor", r, w));
    assert_eq!(
        w, 1,
        "a web event costs one write request on the request path"
    );
    ingest
        .call(&page("p2", "someone-else"), None)
        .await
        .unwrap();
    let (r, w) = counter.take();
    rows.push(("web event of an anonymous visitor", r, w));
    assert_eq!(w, 1);
    ingest.call(&page("p1", "b-1"), None).await.unwrap();
    let (r, w) = counter.take();
    rows.push(("repeated message id", r, w));
    assert_eq!(w, 1);
    let batch: Vec<Value> = (0..10).map(|i| page(&format!("bt{i}"), "b-1")).collect();
    ingest.batch(&batch).await.unwrap();
    let (r, w) = counter.take();
    rows.push(("batch of 10 web events (total)", r, w));
    assert_eq!(w, 10);
    let dirty = store.dirty(chrono::Utc::now(), 10).await.unwrap();
    counter.take();
    scorer.rescore(&lead_id, dirty[0].seq).await.unwrap();
    let (r, w) = counter.take();
    rows.push(("rescore one lead (no alert)", r, w));
    store.lead(&lead_id).await.unwrap();
    store.events(&lead_id).await.unwrap();
    let (r, w) = counter.take();
    rows.push(("lead profile + timeline (GET /v1/leads/{id})", r, w));
    store
        .ranking(Some(hotlead_core::Band::Warm), 50, None)
        .await
        .unwrap();
    let (r, w) = counter.take();
    rows.push(("ranking page of 50 (GET /v1/leads?band=warm)", r, w));
    scorer.deliver_pending().await.unwrap();
    let (r, w) = counter.take();
    rows.push(("outbox check, nothing pending", r, w));

    println!("| operation | read requests | write requests |\n|---|---|---|");
    for (label, r, w) in &rows {
        println!("| {label} | {r} | {w} |");
    }
}

/// Stream records read with the DynamoDB Streams API, in the shape Lambda delivers them.
fn lambda_event(
    records: &[aws_sdk_dynamodbstreams::types::Record],
) -> aws_lambda_events::event::dynamodb::Event {
    use aws_sdk_dynamodbstreams::types::AttributeValue;
    let records: Vec<Value> = records
        .iter()
        .filter_map(|record| {
            let change = record.dynamodb()?;
            let mut image = serde_json::Map::new();
            for (name, value) in change.new_image()? {
                match value {
                    AttributeValue::S(text) => image.insert(name.clone(), json!({"S": text})),
                    AttributeValue::N(number) => image.insert(name.clone(), json!({"N": number})),
                    _ => None,
                };
            }
            Some(json!({
                "eventID": record.event_id(), "eventName": "MODIFY", "eventVersion": "1.1", "eventSource": "aws:dynamodb",
                "awsRegion": "us-east-1",
                "dynamodb": {"NewImage": image, "SequenceNumber": change.sequence_number(), "SizeBytes": 1, "StreamViewType": "NEW_IMAGE"}
            }))
        })
        .collect();
    serde_json::from_value(json!({"Records": records})).expect("a Lambda DynamoDB Streams event")
}

/// The `learn` function on DynamoDB: outcomes in, a pending suggestion stored in the
/// table, and the analysts' topic told, with the headline figures.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_learn_function_stores_a_suggestion_in_dynamodb_and_tells_the_analysts() {
    use std::sync::Arc;

    use hotlead_app::ports::{LearningStore, Record, Store};
    use hotlead_app::review::{OutcomeInput, Review};
    use hotlead_core::identity::IdentityKey;

    let config = config().await;
    let store = Arc::new(hotlead_tests::aws::fresh_table().await);
    let sns = aws_sdk_sns::Client::new(&config);
    let topic_arn = sns
        .create_topic()
        .name(unique("analysts"))
        .send()
        .await
        .unwrap()
        .topic_arn
        .unwrap();
    let sqs = aws_sdk_sqs::Client::new(&config);
    let queue = subscribed_queue(&topic_arn, "analysts", json!({"kind": ["review"]})).await;

    let t0 = hotlead_tests::time("2026-09-01T00:00:00Z");
    let review = Review::new(store.clone(), Arc::new(hotlead_app::SystemClock));
    review
        .install(hotlead_core::rules::SEED, "bundled seed rules")
        .await
        .unwrap();
    let mut rows = Vec::new();
    for i in 0..120usize {
        let big = i % 3 == 0;
        let email = format!("p{i}@c{i}.co.jp");
        let event = json!({"type": "identify", "messageId": format!("m{i}"), "userId": format!("u{i}"),
            "timestamp": (t0 + chrono::Duration::hours(i as i64)).to_rfc3339(), "traits": {"email": email}});
        store
            .record(Record {
                event: hotlead_core::Event::from_segment(&event).unwrap(),
                keys: vec![IdentityKey::email(&email).unwrap()],
                attributes: vec![(
                    "employees".into(),
                    if big { "2500".into() } else { "30".into() },
                )],
                received_at: t0 + chrono::Duration::hours(i as i64),
                new_lead_id: format!("L-{i}"),
                digest: String::new(),
                retention: Default::default(),
            })
            .await
            .unwrap();
        rows.push((
            i as u64 + 1,
            OutcomeInput {
                email: Some(email),
                outcome: Some(if big != (i % 13 == 0) { "won" } else { "lost" }.into()),
                closed_at: Some("2026-10-15".into()),
                ..OutcomeInput::default()
            },
        ));
    }
    assert_eq!(review.import_outcomes(rows).await.unwrap().stored, 120);

    let mut settings = learn::settings(|name| match name {
        "HOTLEAD_MIN_OUTCOMES" => Some("100".into()),
        "HOTLEAD_MIN_WON" => Some("10".into()),
        "HOTLEAD_LEARN_SPLIT" => Some("random".into()),
        _ => None,
    })
    .unwrap();
    let links = hotlead_app::links::Links::new(
        hotlead_app::links::LinkKey::new(&[4u8; 32]).unwrap(),
        "https://api.example.com",
        14,
    );
    settings.links = Some(links.clone());
    let notifier = hotlead_aws::SnsReviewNotifier::new(sns, &topic_arn);
    let result = learn::handle(&review, &notifier, &settings, "s-aws-1".into())
        .await
        .unwrap();
    assert_eq!(result["result"], "suggested", "{result:#}");
    assert_eq!(result["notified"], true);
    let stored = store.suggestion("s-aws-1").await.unwrap().unwrap();
    assert_eq!(stored.review.name(), "pending");
    assert_eq!(stored.suggestion.data.outcomes, 120);

    let out = sqs
        .receive_message()
        .queue_url(&queue)
        .max_number_of_messages(10)
        .send()
        .await
        .unwrap();
    let messages = out.messages.unwrap_or_default();
    assert_eq!(messages.len(), 1);
    let note: Value = serde_json::from_str(messages[0].body.as_deref().unwrap()).unwrap();
    assert_eq!(note["suggestion_id"], "s-aws-1");
    assert!(note["suggested_auc"].as_f64().unwrap() > 0.5);
    // The note's link opens the suggestion's read-only page from the table.
    let body = note["body"].as_str().unwrap();
    let start = body
        .find("https://api.example.com/s/s-aws-1?")
        .expect("a page link in the note");
    let url: String = body[start..]
        .chars()
        .take_while(|c| !c.is_whitespace())
        .collect();
    let (_, query) = url.split_once('?').unwrap();
    let part = |name: &str| {
        query
            .split('&')
            .find_map(|p| p.strip_prefix(&format!("{name}=")))
            .map(str::to_string)
    };
    let pages = hotlead_app::pages::LeadPages::new(
        std::sync::Arc::new(links),
        store.clone(),
        std::sync::Arc::new(hotlead_app::SystemClock),
        hotlead_app::Config::default(),
    );
    let opened = pages
        .open_suggestion("s-aws-1", part("e").as_deref(), part("s").as_deref())
        .await
        .unwrap()
        .expect("the signed link opens the suggestion");
    assert_eq!(opened.id, "s-aws-1");
    let refused = pages
        .open_suggestion("s-aws-1", part("e").as_deref(), Some("AAAA"))
        .await
        .unwrap();
    assert!(refused.is_err());
}

/// A lead whose name and company hold tabs, line breaks, emoji, markup and 300 characters
/// still makes an alert SNS takes; and the template's catch-all subscription (territory
/// `anything-but` the subscribed ones) takes every territory nobody subscribed to.
#[tokio::test]
async fn a_hostile_name_is_deliverable_and_the_catch_all_takes_unsubscribed_territories() {
    let routed = routed_topic(&["east"]).await;
    let catch_all = subscribed_queue(
        &routed.topic_arn,
        "catch-all",
        json!({"territory": [{"anything-but": ["east"]}]}),
    )
    .await;
    let notifier =
        hotlead_aws::SnsNotifier::new(aws_sdk_sns::Client::new(&config().await), &routed.topic_arn);
    let rules = hotlead_core::RuleSet::from_toml("seed", hotlead_core::rules::SEED).unwrap();
    let name = format!("山田\t太郎\r\n<b>😀</b>{}", "長".repeat(300));
    let lead = hotlead_core::Lead::from_raw(
        "L-hostile",
        [
            ("email", "taro@example.co.jp"),
            ("name", name.as_str()),
            ("company", "株式会社\tテスト\n\u{202E}Bcc: x@example.com"),
        ],
    );
    let score = hotlead_core::score(
        &rules,
        &lead,
        &[],
        hotlead_tests::time("2026-11-20T00:00:00Z"),
        None,
    );
    for territory in ["east", "nowhere"] {
        let message = hotlead_core::alert::compose(
            &lead,
            &score,
            &hotlead_core::alert::AlertReason::BecameHot { crossing: 1 },
            &[],
            Routing {
                territory: territory.into(),
                owner: Some("\t".into()),
                product: None,
            },
            &hotlead_core::alert::Presentation {
                language: hotlead_core::alert::Language::Ja,
                offset: rules.utc_offset,
                lead_url: "https://leads.example.com/v1/leads/L-hostile".into(),
            },
        );
        notifier.deliver(&message).await.expect("SNS takes it");
    }
    let east = routed.drain("east").await;
    assert_eq!(east.len(), 1, "{east:#?}");
    let subject = east[0]["subject"].as_str().unwrap();
    assert!(
        subject.chars().count() < 100 && !subject.chars().any(char::is_control),
        "{subject:?}"
    );
    assert!(subject.contains("山田 太郎"), "{subject}");
    let sqs = &routed.sqs;
    let out = sqs
        .receive_message()
        .queue_url(&catch_all)
        .max_number_of_messages(10)
        .send()
        .await
        .unwrap();
    let caught: Vec<Value> = out
        .messages
        .unwrap_or_default()
        .into_iter()
        .map(|m| serde_json::from_str(&m.body.unwrap_or_default()).unwrap())
        .collect();
    assert_eq!(caught.len(), 1, "{caught:#?}");
    assert_eq!(caught[0]["territory"], "nowhere");
}
