//! A real browser: headless Chromium, driven over WebDriver (chromedriver), loads a site
//! with the tracking script, browses two pages, submits a plain HTML form, and the lead
//! shows up hot with those page views in its history. Then the script's privacy: consent,
//! Do Not Track and Global Privacy Control, the URLs it sends, the forms it touches.
//! `scripts/test` installs Debian's `chromium` and `chromium-driver`.

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

pub(crate) struct Driver {
    process: Child,
    url: String,
    session: String,
    http: reqwest::Client,
}

impl Drop for Driver {
    fn drop(&mut self) {
        // Ends the WebDriver session first, which quits the browser: killing chromedriver
        // alone leaves chromium and its helpers running after the test.
        if let Some(address) = self.url.strip_prefix("http://")
            && !self.session.is_empty()
            && let Ok(mut stream) = std::net::TcpStream::connect(address)
        {
            use std::io::{Read, Write};
            let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
            let request = format!(
                "DELETE /session/{} HTTP/1.1\r\nHost: {address}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                self.session
            );
            if stream.write_all(request.as_bytes()).is_ok() {
                // Its answer comes once the browser has quit.
                let mut answer = [0u8; 512];
                let _ = stream.read(&mut answer);
            }
        }
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
    pub(crate) async fn start(profile: &std::path::Path) -> Driver {
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
        match self.try_call(method, path, body).await {
            Ok(value) => value,
            Err(answer) => panic!("WebDriver {path}: {answer:#}"),
        }
    }

    /// A WebDriver command's value, or what WebDriver answered instead.
    async fn try_call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Value,
    ) -> Result<Value, Value> {
        let mut request = self
            .http
            .request(method.clone(), format!("{}{path}", self.url));
        if method != reqwest::Method::GET {
            request = request.json(&body);
        }
        let response = request.send().await.expect("WebDriver answers");
        let value: Value = response.json().await.expect("WebDriver JSON");
        if value["value"]["error"].is_null() {
            Ok(value["value"].clone())
        } else {
            Err(value)
        }
    }

    pub(crate) async fn go(&self, url: &str) {
        self.call(
            reqwest::Method::POST,
            &format!("/session/{}/url", self.session),
            json!({"url": url}),
        )
        .await;
    }

    pub(crate) async fn element(&self, css: &str) -> String {
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

    pub(crate) async fn type_into(&self, css: &str, text: &str) {
        let element = self.element(css).await;
        self.call(
            reqwest::Method::POST,
            &format!("/session/{}/element/{element}/value", self.session),
            json!({"text": text}),
        )
        .await;
    }

    pub(crate) async fn click(&self, css: &str) {
        let element = self.element(css).await;
        self.call(
            reqwest::Method::POST,
            &format!("/session/{}/element/{element}/click", self.session),
            json!({}),
        )
        .await;
    }

    /// Clicks what leads to another page (a link, a form's button) and waits until that
    /// page has loaded: WebDriver answers a click before the navigation it starts ends.
    pub(crate) async fn click_and_load(&self, css: &str) {
        self.script("window.__hotleadOldPage = true; return null;")
            .await;
        self.click(css).await;
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let loaded = self
                .try_script(
                    "return !window.__hotleadOldPage && document.readyState === 'complete';",
                )
                .await;
            if loaded == Some(Value::Bool(true)) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "clicking {css} never loaded another page"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Runs `source` in the page, answering `None` where the page is between documents.
    async fn try_script(&self, source: &str) -> Option<Value> {
        self.try_call(
            reqwest::Method::POST,
            &format!("/session/{}/execute/sync", self.session),
            json!({"script": source, "args": []}),
        )
        .await
        .ok()
    }

    pub(crate) async fn current_url(&self) -> String {
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

    /// The page's text, as a person reads it.
    pub(crate) async fn text(&self) -> String {
        self.script("return document.body.innerText;")
            .await
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    /// Sizes the browser's window (a phone's width, a desktop's).
    pub(crate) async fn window(&self, width: u32, height: u32) {
        self.call(
            reqwest::Method::POST,
            &format!("/session/{}/window/rect", self.session),
            json!({"width": width, "height": height}),
        )
        .await;
    }

    /// Writes what the window shows to `path` (PNG).
    pub(crate) async fn screenshot(&self, path: &std::path::Path) {
        use base64::Engine;
        let png = self
            .call(
                reqwest::Method::GET,
                &format!("/session/{}/screenshot", self.session),
                Value::Null,
            )
            .await;
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(png.as_str().expect("a base64 PNG"))
            .expect("base64");
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, bytes).unwrap();
    }

    pub(crate) async fn script(&self, source: &str) -> Value {
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

/// Put before the tracking script: records every call the page sends (fetch or beacon) in
/// `window.__sent`, the body parsed, so a test sees what left the browser, and what did not.
const RECORDER: &str = "<script>window.__sent=[];(function(){\
    var f=window.fetch;window.fetch=function(u,o){var b=null;try{b=JSON.parse(o.body)}catch(e){}\
    window.__sent.push({url:String(u),body:b});return f.apply(this,arguments)};\
    var s=navigator.sendBeacon&&navigator.sendBeacon.bind(navigator);\
    if(s)navigator.sendBeacon=function(u,d){window.__sent.push({url:String(u),body:String(d)});return s(u,d)};\
    })();</script>";

/// A page of the privacy tests: `before` runs first (it may set the browser's privacy
/// signals), then the recorder, then the tracking script with `attributes`.
fn privacy_page(api: &str, before: &str, attributes: &str, body: &str) -> String {
    format!(
        "<!doctype html><html><head><meta charset=\"utf-8\">{before}{RECORDER}\
         <script src=\"{api}/hotlead.js\" data-write-key=\"site-key\" {attributes}></script>\
         <title>Page</title></head><body>{body}</body></html>"
    )
}

/// The API, and a site on its own origin (named in the API's CORS settings) serving the
/// pages `pages` makes from the API's URL.
async fn site_with_pages(
    pages: impl FnOnce(&str) -> Vec<(&'static str, String)>,
) -> (String, hotlead_tests::TestApp) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let site = format!("http://{}", listener.local_addr().unwrap());
    let config = format!(
        "cors_origins = [\"{site}\"]\n[forms.contact]\nthank_you_url = \"{site}/thanks.html\"\n\
         fields = {{ \"email\" = \"email\" }}\n"
    );
    let app = spawn_app(AppSettings {
        rules: Some(RULES.into()),
        config: Some(config),
        write_key: Some("site-key".into()),
        ..AppSettings::default()
    })
    .await;
    let mut router = axum::Router::new();
    for (path, html) in pages(&app.url) {
        router = router.route(path, get(move || async move { Html(html) }));
    }
    tokio::spawn(async move { axum::serve(listener, router).await.ok() });
    (site, app)
}

impl Driver {
    /// Waits (up to 10 s) until `expression` is truthy in the page, and answers its value.
    async fn wait_for(&self, expression: &str) -> Value {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let value = self.script(&format!("return {expression};")).await;
            if !matches!(&value, Value::Null | Value::Bool(false))
                && value != json!(0)
                && value != json!("")
            {
                return value;
            }
            assert!(
                Instant::now() < deadline,
                "the page never had {expression}; sent: {:#}",
                self.script("return window.__sent;").await
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The calls the page sent so far (see [`RECORDER`]).
    async fn sent(&self) -> Vec<Value> {
        self.script("return window.__sent;")
            .await
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    async fn cookies(&self) -> String {
        self.script("return document.cookie;")
            .await
            .as_str()
            .unwrap_or_default()
            .to_string()
    }
}

/// Links the browser's anonymous id to a lead by e-mail, as a later form would, and
/// answers the lead with its timeline once the page views `paths` are in it.
async fn lead_of_visitor(
    app: &hotlead_tests::TestApp,
    anonymous_id: &str,
    paths: &[&str],
) -> Value {
    let answer: Value = app
        .client
        .post(format!("{}/v1/identify", app.url))
        .json(&json!({"writeKey": "site-key", "messageId": format!("id-{anonymous_id}"),
            "anonymousId": anonymous_id, "traits": {"email": format!("{anonymous_id}@example.jp")}}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let lead_id = answer["lead_id"]
        .as_str()
        .unwrap_or_else(|| panic!("no lead: {answer}"))
        .to_string();
    app.wait_for_lead(&lead_id, |lead| {
        paths.iter().all(|path| {
            lead["timeline"]
                .as_array()
                .is_some_and(|t| t.iter().any(|e| e["path"] == *path))
        })
    })
    .await
}

fn time_of(value: &Value) -> chrono::DateTime<chrono::Utc> {
    value
        .as_str()
        .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
        .unwrap_or_else(|| panic!("an ISO time: {value}"))
        .to_utc()
}

const API_FORM: &str = "<form id=\"api\" action=\"API/v1/forms/contact\" method=\"post\"><input name=\"email\"></form>";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_consent_required_nothing_is_stored_or_sent_until_the_site_grants_it_and_revoking_stops_it()
 {
    let (site, app) = site_with_pages(|api| {
        let form = API_FORM.replace("API", api);
        vec![
            (
                "/consent.html",
                privacy_page(api, "", "data-consent=\"required\"", &form),
            ),
            (
                "/queued.html",
                privacy_page(
                    api,
                    "<script>window.hotlead = window.hotlead || []; hotlead.push([\"consent\", true]);</script>",
                    "data-consent=\"required\" async",
                    "",
                ),
            ),
        ]
    })
    .await;
    let profile = tempfile::tempdir().unwrap();
    let browser = Driver::start(profile.path()).await;

    browser.go(&format!("{site}/consent.html")).await;
    browser
        .wait_for("window.hotlead && window.hotlead.loaded")
        .await;
    tokio::time::sleep(Duration::from_millis(1000)).await;
    assert!(
        !browser.cookies().await.contains("hl_anon"),
        "no cookie before consent: {}",
        browser.cookies().await
    );
    assert_eq!(
        browser.sent().await,
        Vec::<Value>::new(),
        "no call before consent"
    );
    assert_eq!(
        browser.script("return hotlead.anonymousId();").await,
        Value::Null
    );
    assert_eq!(
        browser
            .script("return document.querySelectorAll(\"#api input[name='anonymousId']\").length;")
            .await,
        0,
        "no anonymous id in the form before consent"
    );

    assert_eq!(browser.script("return hotlead.consent(true);").await, true);
    browser.wait_for("window.__sent.length").await;
    let sent = browser.sent().await;
    assert_eq!(sent.len(), 1, "the held page view, once: {sent:#?}");
    let call = &sent[0]["body"];
    assert_eq!(call["type"], "page", "{call:#}");
    let anonymous_id = browser
        .script("return hotlead.anonymousId();")
        .await
        .as_str()
        .expect("an anonymous id once consent is given")
        .to_string();
    assert_eq!(call["anonymousId"], anonymous_id.as_str());
    assert!(
        browser
            .cookies()
            .await
            .contains(&format!("hl_anon={anonymous_id}")),
        "the cookie is set once consent is given: {}",
        browser.cookies().await
    );
    let held_for = time_of(&call["sentAt"]) - time_of(&call["timestamp"]);
    assert!(
        held_for >= chrono::Duration::milliseconds(800),
        "timestamp is when the page view happened, sentAt when it was sent after consent: {call:#}"
    );
    assert_eq!(
        browser
            .script("return document.querySelector(\"#api input[name='anonymousId']\").value;")
            .await,
        anonymous_id.as_str(),
        "consent puts the anonymous id into the API's form"
    );
    let lead = lead_of_visitor(&app, &anonymous_id, &["/consent.html"]).await;
    let views = lead["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["path"] == "/consent.html")
        .count();
    assert_eq!(views, 1, "the held page view is stored once: {lead:#}");

    assert_eq!(
        browser.script("return hotlead.consent(false);").await,
        false
    );
    assert!(
        !browser.cookies().await.contains("hl_anon"),
        "revoking deletes the cookie: {}",
        browser.cookies().await
    );
    assert_eq!(
        browser
            .script("return document.querySelectorAll(\"#api input[name='anonymousId']\").length;")
            .await,
        0,
        "revoking takes the anonymous id back out of the form"
    );
    browser
        .script("hotlead.track('Clicked after revoking'); hotlead.page(); return null;")
        .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(browser.sent().await.len(), 1, "nothing sent after revoking");
    assert_eq!(
        browser.script("return hotlead.anonymousId();").await,
        Value::Null
    );
    assert!(!browser.cookies().await.contains("hl_anon"));

    // Consent queued before the script (loaded async) runs: the page view goes at once.
    browser.go(&format!("{site}/queued.html")).await;
    let call = browser
        .wait_for("window.__sent[0] && window.__sent[0].body")
        .await;
    assert_eq!(call["type"], "page", "{call:#}");
    assert!(call["sentAt"].is_string(), "{call:#}");
    assert!(browser.cookies().await.contains("hl_anon="));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn do_not_track_and_global_privacy_control_stop_the_cookie_and_every_call_unless_the_site_overrides()
 {
    const GPC: &str =
        "<script>Object.defineProperty(navigator, 'globalPrivacyControl', {value: true});</script>";
    const DNT: &str =
        "<script>Object.defineProperty(navigator, 'doNotTrack', {value: '1'});</script>";
    let (site, _app) = site_with_pages(|api| {
        let form = API_FORM.replace("API", api);
        vec![
            ("/gpc.html", privacy_page(api, GPC, "", &form)),
            ("/dnt.html", privacy_page(api, DNT, "", &form)),
            (
                "/gpc-consent.html",
                privacy_page(api, GPC, "data-consent=\"required\"", &form),
            ),
            (
                "/override.html",
                privacy_page(api, GPC, "data-respect-privacy-signals=\"false\"", &form),
            ),
        ]
    })
    .await;
    let profile = tempfile::tempdir().unwrap();
    let browser = Driver::start(profile.path()).await;

    // The site overriding the signal: it sends, and the cookie is set.
    browser.go(&format!("{site}/override.html")).await;
    let call = browser
        .wait_for("window.__sent[0] && window.__sent[0].body")
        .await;
    assert_eq!(call["type"], "page", "{call:#}");
    assert!(
        browser.cookies().await.contains("hl_anon="),
        "with the override the cookie is set: {}",
        browser.cookies().await
    );

    for page in ["gpc.html", "dnt.html", "gpc-consent.html"] {
        browser.go(&format!("{site}/{page}")).await;
        browser
            .wait_for("window.hotlead && window.hotlead.loaded")
            .await;
        if page == "gpc-consent.html" {
            assert_eq!(
                browser.script("return hotlead.consent(true);").await,
                false,
                "the site's consent does not override the visitor's signal"
            );
        }
        browser
            .script("hotlead.track('Clicked'); hotlead.identify('u-1', {}); hotlead.attachForms(); return null;")
            .await;
        tokio::time::sleep(Duration::from_millis(1000)).await;
        assert_eq!(
            browser.sent().await,
            Vec::<Value>::new(),
            "{page}: nothing sent"
        );
        assert!(
            !browser.cookies().await.contains("hl_anon"),
            "{page}: no cookie (the one set before is deleted): {}",
            browser.cookies().await
        );
        assert_eq!(
            browser.script("return hotlead.anonymousId();").await,
            Value::Null,
            "{page}"
        );
        assert_eq!(
            browser
                .script(
                    "return document.querySelectorAll(\"#api input[name='anonymousId']\").length;"
                )
                .await,
            0,
            "{page}: no anonymous id in the form"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn page_urls_and_referrers_keep_only_the_campaign_parameters_and_never_the_fragment() {
    let (site, app) = site_with_pages(|api| {
        vec![
            (
                "/start.html",
                privacy_page(
                    api,
                    "",
                    "",
                    "<a id=\"next\" href=\"/pricing.html?email=a@b.jp&utm_source=x&token=secret#frag\">Pricing</a>",
                ),
            ),
            ("/pricing.html", privacy_page(api, "", "", "")),
            (
                "/ads.html",
                privacy_page(api, "", "data-keep-params=\"gclid, ref_*\"", ""),
            ),
        ]
    })
    .await;
    let profile = tempfile::tempdir().unwrap();
    let browser = Driver::start(profile.path()).await;

    browser
        .go(&format!(
            "{site}/start.html?session=abc&utm_medium=mail#top"
        ))
        .await;
    let start = browser
        .wait_for("window.__sent[0] && window.__sent[0].body")
        .await;
    browser.click("#next").await;
    browser
        .wait_for("location.pathname === '/pricing.html'")
        .await;
    let pricing = browser
        .wait_for("window.__sent[0] && window.__sent[0].body")
        .await;
    browser
        .go(&format!(
            "{site}/ads.html?gclid=g1&ref_code=r&utm_source=y&other=z#f"
        ))
        .await;
    let ads = browser
        .wait_for("window.__sent[0] && window.__sent[0].body")
        .await;

    assert_eq!(
        start["context"]["page"]["url"],
        format!("{site}/start.html?utm_medium=mail"),
        "{start:#}"
    );
    assert_eq!(
        pricing["context"]["page"]["url"],
        format!("{site}/pricing.html?utm_source=x"),
        "{pricing:#}"
    );
    assert_eq!(
        pricing["context"]["page"]["referrer"],
        format!("{site}/start.html?utm_medium=mail"),
        "{pricing:#}"
    );
    assert_eq!(pricing["context"]["campaign"], json!({"source": "x"}));
    assert_eq!(
        ads["context"]["page"]["url"],
        format!("{site}/ads.html?gclid=g1&ref_code=r"),
        "data-keep-params replaces the default list: {ads:#}"
    );
    assert_eq!(ads["context"]["campaign"], json!({"source": "y"}));
    for call in [&start, &pricing, &ads] {
        assert!(
            time_of(&call["sentAt"]) >= time_of(&call["timestamp"]),
            "every call carries sentAt: {call:#}"
        );
    }

    let anonymous_id = pricing["anonymousId"].as_str().unwrap().to_string();
    let lead = lead_of_visitor(
        &app,
        &anonymous_id,
        &["/start.html", "/pricing.html", "/ads.html"],
    )
    .await;
    let stored = |path: &str| {
        lead["timeline"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["path"] == path)
            .cloned()
            .unwrap()
    };
    let view = stored("/pricing.html");
    assert_eq!(
        view["url"],
        format!("{site}/pricing.html?utm_source=x"),
        "{view:#}"
    );
    assert_eq!(
        view["referrer"],
        format!("{site}/start.html?utm_medium=mail"),
        "{view:#}"
    );
    assert_eq!(view["campaign"]["source"], "x", "{view:#}");
    assert_eq!(
        stored("/ads.html")["url"],
        format!("{site}/ads.html?gclid=g1&ref_code=r")
    );
    let timeline = lead["timeline"].to_string();
    for secret in ["a@b.jp", "secret", "session", "frag", "#top", "other=z"] {
        assert!(
            !timeline.contains(secret),
            "{secret} was stored: {timeline}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_anonymous_id_goes_only_into_forms_posting_to_this_api() {
    let (site, _app) = site_with_pages(|api| {
        let forms = format!(
            "<form id=\"api\" action=\"{api}/v1/forms/contact\" method=\"post\"></form>\
             <form id=\"elsewhere\" action=\"https://forms.example.com/v1/forms/contact\" method=\"post\"></form>\
             <form id=\"self\" method=\"post\"></form>\
             <form id=\"relative\" action=\"/v1/forms/contact\" method=\"post\"></form>\
             <form id=\"other-route\" action=\"{api}/v1/track\" method=\"post\"></form>\
             <form id=\"skipped\" action=\"{api}/v1/forms/contact\" method=\"post\" data-hotlead-skip></form>"
        );
        vec![("/forms.html", privacy_page(api, "", "", &forms))]
    })
    .await;
    let profile = tempfile::tempdir().unwrap();
    let browser = Driver::start(profile.path()).await;
    browser.go(&format!("{site}/forms.html")).await;
    browser.wait_for("window.__sent.length").await;
    // Forms added later, then the site's call.
    let api = browser.script("return hotlead.api;").await;
    browser
        .script(&format!(
            "var a = document.createElement('form'); a.id = 'late-api'; \
             a.setAttribute('action', {api} + '/v1/forms/contact'); document.body.appendChild(a); \
             var b = document.createElement('form'); b.id = 'late-elsewhere'; \
             b.setAttribute('action', 'https://forms.example.com/subscribe'); document.body.appendChild(b); \
             hotlead.attachForms(); return null;"
        ))
        .await;
    let with_id = browser
        .script(
            "return Array.prototype.map.call(document.querySelectorAll('form'), function (f) { \
             var i = f.querySelector(\"input[name='anonymousId']\"); return [f.id, i ? i.value : null]; });",
        )
        .await;
    let anonymous_id = browser.script("return hotlead.anonymousId();").await;
    assert!(anonymous_id.is_string());
    assert_eq!(
        with_id,
        json!([
            ["api", anonymous_id],
            ["elsewhere", null],
            ["self", null],
            ["relative", null],
            ["other-route", null],
            ["skipped", null],
            ["late-api", anonymous_id],
            ["late-elsewhere", null]
        ])
    );
}

/// A lead made hot through the API (a form, then three pricing page views), and the
/// link of its alert as the outbox holds it: `(lead id, lead, link, alerts)`.
async fn hot_lead_and_its_link(
    app: &hotlead_tests::TestApp,
) -> (String, Value, String, Vec<Value>) {
    let form = app
        .client
        .post(format!("{}/v1/forms/contact", app.url))
        .form(&[
            ("email", "hanako.sato@sample-seiki.co.jp"),
            ("name", "佐藤 花子"),
            ("company", "サンプル精機株式会社"),
            ("title", "情報システム部 部長"),
            ("employees", "1,200名"),
            ("capital", "600億円"),
            ("phone", "03-1234-5678"),
            ("anonymousId", "page-browser"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(form.status(), 200);
    let lead_id = form.json::<Value>().await.unwrap()["lead_id"]
        .as_str()
        .unwrap()
        .to_string();
    // Scored warm on the form alone before the visits arrive, so the lead's history is
    // always — → WARM, then WARM → HOT (the scorer may otherwise see everything at once).
    app.wait_for_lead(&lead_id, |l| l["band"] == "warm").await;
    for i in 0..3 {
        let call = json!({"type": "page", "messageId": format!("lp-{i}"), "anonymousId": "page-browser",
            "timestamp": (chrono::Utc::now() - chrono::Duration::minutes(10 - i)).to_rfc3339(),
            "context": {"page": {"path": "/pricing", "url": "https://www.example.co.jp/pricing"}, "userAgent": "Mozilla/5.0"}});
        let response = app
            .client
            .post(format!("{}/v1/page", app.url))
            .json(&call)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
    }
    let lead = app.wait_for_lead(&lead_id, |l| l["band"] == "hot").await;
    let alerts = app.wait_for_alerts(1).await;
    let link = alerts[0]["lead_url"].as_str().unwrap().to_string();
    (lead_id, lead, link, alerts)
}

/// A rep opens a real alert's link, sees the lead an MQL (the seed rules' stages), accepts
/// it through the confirmation page, and the page shows it an SQL with the action in its
/// history; the history API says the same. A reject needs a listed reason; a second
/// click records once; an altered link records nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rep_accepts_a_lead_from_its_page_and_its_stage_and_history_change() {
    let app = spawn_app(AppSettings {
        config: Some(
            "language = \"en\"\n[routing]\ndefault_owner = \"inside-sales@example.com\"\n".into(),
        ),
        ..AppSettings::default()
    })
    .await;
    let (lead_id, _, link, _) = hot_lead_and_its_link(&app).await;
    app.wait_for_lead(&lead_id, |l| l["stage"]["id"] == "mql")
        .await;
    let profile = tempfile::tempdir().unwrap();
    let driver = Driver::start(profile.path()).await;
    driver.window(390, 844).await;
    driver.go(&link).await;
    let text = driver.text().await;
    assert!(text.contains("Stage\nMQL · inside-sales"), "{text}");
    assert!(text.contains("inside-sales@example.com"), "{text}");
    assert!(text.contains("Band — → WARM (50)"), "{text}");
    assert!(text.contains("Stage — → MQL"), "{text}");
    assert!(text.contains("Band WARM → HOT (80)"), "{text}");

    driver
        .click_and_load("form[action$='/accept'] button")
        .await;
    assert!(
        driver
            .current_url()
            .await
            .contains(&format!("/l/{lead_id}/accept?"))
    );
    let text = driver.text().await;
    assert!(text.contains("Accept: サンプル精機株式会社"), "{text}");
    let by = driver
        .script("return document.getElementById('by').value;")
        .await;
    assert_eq!(
        by, "inside-sales@example.com",
        "the name starts as the lead's owner"
    );
    driver
        .script("document.getElementById('by').value = '';")
        .await;
    driver.type_into("#by", "Ichiro Suzuki").await;
    driver.click_and_load("#confirm").await;
    let after = driver.current_url().await;
    assert!(
        after.contains(&format!("/l/{lead_id}?")) && after.contains("done=accept"),
        "{after}"
    );
    let text = driver.text().await;
    assert!(text.contains("Recorded: Accepted"), "{text}");
    assert!(text.contains("Stage\nSQL · sales"), "{text}");
    assert!(text.contains("Stage MQL → SQL"), "{text}");
    assert!(text.contains("Ichiro Suzuki"), "{text}");
    driver
        .script("document.getElementById('follow-up').scrollIntoView();")
        .await;
    driver
        .screenshot(&screenshots_dir().join("lead-page-accepted-en-phone.png"))
        .await;

    let history = app
        .client
        .get(format!("{}/v1/leads/{lead_id}/history", app.url))
        .send()
        .await
        .unwrap();
    assert_eq!(history.status(), 200);
    let history: Value = history.json().await.unwrap();
    assert_eq!(history["stage"]["id"], "sql");
    assert_eq!(history["stage"]["by_rep"], true);
    let entries = history["history"].as_array().unwrap();
    let kinds: Vec<(&str, &str)> = entries
        .iter()
        .map(|e| {
            (
                e["kind"].as_str().unwrap(),
                e["to"].as_str().or(e["action"].as_str()).unwrap(),
            )
        })
        .collect();
    assert_eq!(
        kinds,
        vec![
            ("band", "warm"),
            ("stage", "mql"),
            ("band", "hot"),
            ("action", "accept"),
            ("stage", "sql")
        ],
        "{history:#}"
    );
    assert_eq!(entries[3]["by"], "Ichiro Suzuki");
    assert_eq!(entries[0]["by"], "rules seed v1");
    // The accept was the first action on the hot alert: the follow-up figures count it.
    let figures: Value = app
        .client
        .get(format!("{}/v1/follow-up", app.url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(figures["respond_within_hours"], 2.0, "{figures:#}");
    assert_eq!(figures["total"]["alerts"], 1, "{figures:#}");
    assert_eq!(figures["total"]["answered"], 1, "{figures:#}");
    assert_eq!(figures["territories"][0]["territory"], "unassigned");
    // The team lead's ranking page lists the lead among the hot ones, with its stage, and
    // links to its page.
    driver.window(1280, 900).await;
    driver.go(&format!("{}/review/leads", app.url)).await;
    let text = driver.text().await;
    assert!(text.contains("HOT (1)"), "{text}");
    assert!(text.contains("サンプル精機株式会社 佐藤 花子"), "{text}");
    assert!(text.contains("A1 · sql"), "{text}");
    driver
        .screenshot(&screenshots_dir().join("ranking-page-desktop.png"))
        .await;
    driver.click_and_load("table#hot a").await;
    assert!(
        driver
            .current_url()
            .await
            .contains(&format!("/l/{lead_id}?"))
    );
    assert!(driver.text().await.contains("Stage\nSQL"));
    let bad = app
        .client
        .get(format!("{}/v1/follow-up?since=yesterday", app.url))
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 422);

    // The confirmation page of a reject, and its form, through plain HTTP.
    let plain = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let (path, query) = link.split_once('?').unwrap();
    let confirm_url = format!("{path}/reject?{query}");
    driver.go(&confirm_url).await;
    driver
        .screenshot(&screenshots_dir().join("lead-page-reject-en-phone.png"))
        .await;
    let page = plain.get(&confirm_url).send().await.unwrap();
    assert_eq!(page.status(), 200);
    let page = page.text().await.unwrap();
    let token = page
        .split("name=\"token\" value=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .unwrap()
        .to_string();
    let post = |fields: Vec<(&'static str, String)>, url: String| {
        let plain = plain.clone();
        async move { plain.post(url).form(&fields).send().await.unwrap() }
    };
    let count = || async {
        app.client
            .get(format!("{}/v1/leads/{lead_id}/history", app.url))
            .send()
            .await
            .unwrap()
            .json::<Value>()
            .await
            .unwrap()["history"]
            .as_array()
            .unwrap()
            .len()
    };
    for bad in [
        vec![("by", "Suzuki".to_string()), ("token", token.clone())],
        vec![
            ("by", "Suzuki".to_string()),
            ("token", token.clone()),
            ("reason", "not a listed reason".to_string()),
        ],
        vec![
            ("by", " ".to_string()),
            ("token", token.clone()),
            ("reason", "予算なし".to_string()),
        ],
    ] {
        let response = post(bad, confirm_url.clone()).await;
        assert_eq!(response.status(), 422);
        let text = response.text().await.unwrap();
        assert!(text.contains("class=\"problem\""), "{text}");
    }
    let altered = confirm_url.replace("s=", "s=A");
    let good = vec![
        ("by", "Suzuki".to_string()),
        ("token", token.clone()),
        ("reason", "予算なし".to_string()),
    ];
    let response = post(good.clone(), altered).await;
    assert_eq!(response.status(), 403);
    assert_eq!(count().await, 5, "nothing recorded by a refused request");
    for _ in 0..2 {
        let response = post(good.clone(), confirm_url.clone()).await;
        assert_eq!(response.status(), 303);
        let location = response.headers()["location"].to_str().unwrap();
        assert!(
            location.starts_with(&format!("../{lead_id}?")) && location.ends_with("&done=reject"),
            "{location}"
        );
    }
    assert_eq!(count().await, 7, "the second click recorded nothing");
    let lead = app.lead(&lead_id).await;
    assert_eq!(lead["stage"]["id"], "recycled");
}

/// Where the lead page's screenshots go: `HOTLEAD_SCREENSHOTS` (scripts/screenshots sets
/// it to `docs/screenshots`), else `target/screenshots`.
pub(crate) fn screenshots_dir() -> std::path::PathBuf {
    match std::env::var_os("HOTLEAD_SCREENSHOTS") {
        Some(dir) => dir.into(),
        None => std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/screenshots"),
    }
}

/// A rep opens the link of a real alert (from the outbox) in a browser: the lead page shows
/// the company, the score and band, and every reason of the explanation; it runs no
/// script. The same link altered shows nothing of the lead. In Japanese and English, at a
/// desktop's and a phone's width (screenshots written for review).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_alerts_link_opens_the_lead_page_and_an_altered_link_shows_nothing() {
    for language in ["ja", "en"] {
        let app = spawn_app(AppSettings {
            config: Some(format!("language = \"{language}\"\n")),
            ..AppSettings::default()
        })
        .await;
        let (lead_id, lead, link, alerts) = hot_lead_and_its_link(&app).await;
        assert!(
            link.starts_with(&format!("{}/l/{lead_id}?", app.url)),
            "the alert links the lead page: {link}"
        );
        assert!(
            !link.contains("sato") && !link.contains("sample"),
            "no personal data in the link: {link}"
        );
        let body = alerts[0]["body"].as_str().unwrap();
        assert!(body.contains(&link), "the alert's text ends with the link");

        let profile = tempfile::tempdir().unwrap();
        let driver = Driver::start(profile.path()).await;
        let shots = screenshots_dir();
        for (width, height, device) in [(1280, 900, "desktop"), (390, 844, "phone")] {
            driver.window(width, height).await;
            driver.go(&link).await;
            let text = driver.text().await;
            assert!(text.contains("サンプル精機株式会社"), "{text}");
            assert!(text.contains(&lead["score"].to_string()), "{text}");
            assert!(text.contains("HOT"), "{text}");
            for contribution in lead["explanation"]["contributions"].as_array().unwrap() {
                let label = contribution["label"].as_str().unwrap();
                assert!(
                    text.contains(label),
                    "the reason {label:?} is on the page: {text}"
                );
            }
            assert!(
                text.contains(if language == "ja" { "理由" } else { "Why" }),
                "{text}"
            );
            assert_eq!(driver.script("return document.scripts.length;").await, 0);
            assert_eq!(
                driver.script("return document.documentElement.lang;").await,
                language
            );
            if device == "phone" {
                let scroll = driver
                    .script("return document.documentElement.scrollWidth <= window.innerWidth;")
                    .await;
                assert_eq!(scroll, true, "no sideways scrolling on a phone");
            }
            driver
                .screenshot(&shots.join(format!("lead-page-{language}-{device}.png")))
                .await;
        }
        // Altered: another lead's id, a longer expiry, a changed signature.
        let (path, query) = link.split_once('?').unwrap();
        let expiry: i64 = query
            .split('&')
            .find_map(|p| p.strip_prefix("e="))
            .unwrap()
            .parse()
            .unwrap();
        for altered in [
            format!("{}X?{query}", path),
            link.replace(&format!("e={expiry}"), &format!("e={}", expiry + 86_400)),
            format!("{}A", &link[..link.len() - 1]).replace("AA", "AB"),
            format!("{path}?e={expiry}"),
        ] {
            if altered == link {
                continue;
            }
            let response = app.client.get(&altered).send().await.unwrap();
            assert_eq!(response.status(), 403, "{altered}");
            driver.go(&altered).await;
            let text = driver.text().await;
            assert!(!text.contains("サンプル精機"), "{text}");
            assert!(!text.contains("佐藤"), "{text}");
            assert!(
                text.contains(if language == "ja" {
                    "無効"
                } else {
                    "not valid"
                }),
                "{text}"
            );
        }
        driver.window(390, 844).await;
        driver.go(&format!("{path}A?{query}")).await;
        driver
            .screenshot(&shots.join(format!("lead-page-refused-{language}.png")))
            .await;
        // Erasing the lead makes its links dead.
        let erased = app
            .client
            .delete(format!("{}/v1/leads/{lead_id}", app.url))
            .send()
            .await
            .unwrap();
        assert_eq!(erased.status(), 200);
        let response = app.client.get(&link).send().await.unwrap();
        assert_eq!(response.status(), 404);
        let text = response.text().await.unwrap();
        assert!(
            !text.contains("サンプル精機") && !text.contains("hanako"),
            "{text}"
        );
    }
}
