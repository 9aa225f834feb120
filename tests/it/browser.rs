//! A real browser: headless Chromium, driven over WebDriver (chromedriver), loads a site
//! with the tracking script, browses two pages, submits a plain HTML form, and the lead
//! shows up hot with those page views in its history. `scripts/test` installs Debian's
//! `chromium` and `chromium-driver`.

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use axum::response::Html;
use axum::routing::get;
use hotlead_tests::{AppSettings, spawn_app};
use serde_json::{Value, json};

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

const RULES: &str = r#"
name = "browser"
version = 1
[bands]
hot = 80
warm = 40
[groups.fit]
axis = "fit"
[groups.engagement]
axis = "engagement"
[[rules]]
id = "enterprise"
label = "1,000+ employees"
group = "fit"
points = 60
when = { attribute = "employees", gte = 1000 }
[[rules]]
id = "pricing"
label = "Viewed pricing"
group = "engagement"
points = 20
event = { type = "page", path = "/pricing*" }
"#;

struct Driver {
    process: Child,
    url: String,
    session: String,
    http: reqwest::Client,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.process.kill();
        let _ = self.process.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

impl Driver {
    async fn start(profile: &std::path::Path) -> Driver {
        for binary in [CHROMIUM, CHROMEDRIVER] {
            assert!(
                std::path::Path::new(binary).exists(),
                "{binary} is missing: this test needs Debian's chromium and chromium-driver; \
                 scripts/test installs them (apt-get install chromium chromium-driver)"
            );
        }
        let port = free_port();
        let process = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver starts");
        let url = format!("http://127.0.0.1:{port}");
        let http = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(20);
        while http.get(format!("{url}/status")).send().await.is_err() {
            assert!(
                Instant::now() < deadline,
                "chromedriver did not answer on {url}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let capabilities = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": CHROMIUM,
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-quic",
                         "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync",
                         // Headless Chrome names itself HeadlessChrome, which the bot filter drops;
                         // this browser plays a person's desktop Chrome.
                         "--user-agent=Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36",
                         format!("--user-data-dir={}", profile.display())]
            }
        }}});
        let mut driver = Driver {
            process,
            url,
            session: String::new(),
            http,
        };
        let created = driver
            .call(reqwest::Method::POST, "/session", capabilities)
            .await;
        driver.session = created["sessionId"]
            .as_str()
            .expect("a WebDriver session")
            .to_string();
        driver
    }

    async fn call(&self, method: reqwest::Method, path: &str, body: Value) -> Value {
        let mut request = self
            .http
            .request(method.clone(), format!("{}{path}", self.url));
        if method != reqwest::Method::GET {
            request = request.json(&body);
        }
        let response = request.send().await.expect("WebDriver answers");
        let value: Value = response.json().await.expect("WebDriver JSON");
        assert!(
            value["value"]["error"].is_null(),
            "WebDriver {path}: {value:#}"
        );
        value["value"].clone()
    }

    async fn go(&self, url: &str) {
        self.call(
            reqwest::Method::POST,
            &format!("/session/{}/url", self.session),
            json!({"url": url}),
        )
        .await;
    }

    async fn element(&self, css: &str) -> String {
        let found = self
            .call(
                reqwest::Method::POST,
                &format!("/session/{}/element", self.session),
                json!({"using": "css selector", "value": css}),
            )
            .await;
        found
            .as_object()
            .and_then(|o| o.values().next())
            .and_then(Value::as_str)
            .expect("an element id")
            .to_string()
    }

    async fn type_into(&self, css: &str, text: &str) {
        let element = self.element(css).await;
        self.call(
            reqwest::Method::POST,
            &format!("/session/{}/element/{element}/value", self.session),
            json!({"text": text}),
        )
        .await;
    }

    async fn click(&self, css: &str) {
        let element = self.element(css).await;
        self.call(
            reqwest::Method::POST,
            &format!("/session/{}/element/{element}/click", self.session),
            json!({}),
        )
        .await;
    }

    async fn current_url(&self) -> String {
        self.call(
            reqwest::Method::GET,
            &format!("/session/{}/url", self.session),
            Value::Null,
        )
        .await
        .as_str()
        .unwrap_or_default()
        .to_string()
    }

    async fn script(&self, source: &str) -> Value {
        self.call(
            reqwest::Method::POST,
            &format!("/session/{}/execute/sync", self.session),
            json!({"script": source, "args": []}),
        )
        .await
    }
}

/// Serves the customer's web site on `listener`: two pages with the tracking script and
/// a contact form posting to the API.
fn serve_site(listener: tokio::net::TcpListener, api: &str) {
    let head = format!(
        "<meta charset=\"utf-8\"><script src=\"{api}/hotlead.js\" data-write-key=\"site-key\"></script>"
    );
    let index = format!(
        "<!doctype html><html><head>{head}<title>Home</title></head><body><h1>Welcome</h1><a href=\"/pricing.html\">Pricing</a></body></html>"
    );
    let pricing = format!(
        "<!doctype html><html><head>{head}<title>Pricing</title></head><body><h1>Pricing</h1><a href=\"/contact.html\">Contact</a></body></html>"
    );
    let contact = format!(
        "<!doctype html><html><head>{head}<title>Contact</title></head><body>\
         <form id=\"contact\" action=\"{api}/v1/forms/contact\" method=\"post\">\
         <input name=\"会社名\" id=\"company\"><input name=\"メールアドレス\" id=\"email\">\
         <input name=\"従業員数\" id=\"employees\"><input name=\"website\" id=\"hp\" style=\"display:none\">\
         <button type=\"submit\" id=\"send\">送信</button></form></body></html>"
    );
    let app = axum::Router::new()
        .route("/", get(move || async move { Html(index) }))
        .route("/pricing.html", get(move || async move { Html(pricing) }))
        .route("/contact.html", get(move || async move { Html(contact) }))
        .route(
            "/thanks.html",
            get(|| async {
                Html("<!doctype html><html><body><h1>ありがとうございました</h1></body></html>")
            }),
        );
    tokio::spawn(async move { axum::serve(listener, app).await.ok() });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_visitor_browses_two_pages_submits_the_form_and_turns_up_hot_with_its_page_views() {
    // The API's CORS settings name the site's origin, so the site takes its port first.
    let site_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let site = format!("http://{}", site_listener.local_addr().unwrap());
    let site_origin = site.clone();
    let config = format!(
        "cors_origins = [\"{site_origin}\"]\n[forms.contact]\nthank_you_url = \"{site_origin}/thanks.html\"\nhoneypot = \"website\"\n\
         fields = {{ \"会社名\" = \"company\", \"メールアドレス\" = \"email\", \"従業員数\" = \"employees\" }}\n"
    );
    let app = spawn_app(AppSettings {
        rules: Some(RULES.into()),
        config: Some(config),
        write_key: Some("site-key".into()),
        ..AppSettings::default()
    })
    .await;
    serve_site(site_listener, &app.url);

    let profile = tempfile::tempdir().unwrap();
    let browser = Driver::start(profile.path()).await;
    browser.go(&format!("{site}/")).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    browser.go(&format!("{site}/pricing.html")).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    browser.go(&format!("{site}/contact.html")).await;
    let anonymous_id = browser.script("return window.hotlead.anonymousId();").await;
    let hidden = browser
        .script("return document.querySelector(\"#contact input[name='anonymousId']\").value;")
        .await;
    assert_eq!(
        anonymous_id, hidden,
        "the helper put the anonymous id into the form"
    );
    browser.type_into("#company", "株式会社ブラウザ").await;
    browser.type_into("#email", "browser@example.co.jp").await;
    browser.type_into("#employees", "１，５００名").await;
    browser.click("#send").await;
    let deadline = Instant::now() + Duration::from_secs(15);
    while !browser.current_url().await.ends_with("/thanks.html") {
        assert!(
            Instant::now() < deadline,
            "the form did not reach the thank-you page: {}",
            browser.current_url().await
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let deadline = Instant::now() + Duration::from_secs(15);
    let lead = loop {
        let ranking: Value = app
            .client
            .get(format!("{}/v1/leads?band=hot", app.url))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if let Some(id) = ranking["leads"][0]["lead_id"].as_str() {
            break app.lead(id).await;
        }
        assert!(Instant::now() < deadline, "no hot lead appeared");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(lead["score"], 80, "{lead:#}");
    assert_eq!(lead["profile"]["company"]["raw"], "株式会社ブラウザ");
    let paths: Vec<&str> = lead["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["path"].as_str())
        .collect();
    for expected in ["/", "/pricing.html", "/contact.html"] {
        assert!(
            paths.contains(&expected),
            "the timeline lacks the view of {expected}: {paths:?}"
        );
    }
    let agent = lead["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .find_map(|e| e["user_agent"].as_str())
        .unwrap_or_default();
    assert!(
        agent.contains("Chrome"),
        "page views carry the browser's user agent: {agent}"
    );
}
