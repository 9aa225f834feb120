//! `hotlead serve`: the whole product on one machine: the API on the SQLite store, the
//! scorer as a background task, alerts appended to an outbox file.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use hotlead_api::{Auth, router};
use hotlead_app::erase::AlertArchive;
use hotlead_app::event_cache::EventCache;
use hotlead_app::links::{LinkKey, Links};
use hotlead_app::pages::LeadPages;
use hotlead_app::ports::{Clock, IdSource, LearningStore, Store};
use hotlead_app::review::{Review, Storage};
use hotlead_app::{Config, Ingest, Scorer, SystemClock, UuidIds};
use hotlead_core::RuleSet;
use hotlead_embedded::{FileOutbox, SqliteStore};
use tokio::net::TcpListener;
use tokio::sync::Notify;
use tokio::task::JoinHandle;

use crate::input;

/// The seed rules, used when no rules file is given.
pub const SEED_RULES: &str = hotlead_core::rules::SEED;

/// Where the data lives and how alerts go out.
#[derive(Debug, Clone)]
pub enum Backend {
    /// A SQLite file, and alerts appended to an outbox file (default: beside it).
    Embedded {
        db: PathBuf,
        outbox: Option<PathBuf>,
    },
    /// DynamoDB (a table made by `hotlead aws init`, read through its stream) and SNS.
    Aws(Box<AwsBackend>),
}

/// The AWS side of `serve --backend aws`.
#[derive(Debug, Clone)]
pub struct AwsBackend {
    pub config: aws_config::SdkConfig,
    pub table: String,
    pub alerts_topic_arn: String,
}

impl AwsBackend {
    /// From the standard AWS environment plus `HOTLEAD_TABLE` and
    /// `HOTLEAD_ALERTS_TOPIC_ARN`; fails fast naming what to set.
    pub async fn from_env() -> anyhow::Result<AwsBackend> {
        let required = |name: &str| {
            std::env::var(name).ok().filter(|v| !v.trim().is_empty()).with_context(|| {
                format!("{name} is not set; `hotlead aws init` creates the table and topics and prints their names")
            })
        };
        Ok(AwsBackend {
            table: required("HOTLEAD_TABLE")?,
            alerts_topic_arn: required("HOTLEAD_ALERTS_TOPIC_ARN")?,
            config: hotlead_aws::sdk_config().await,
        })
    }
}

/// What `serve` needs.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    pub host: String,
    pub port: u16,
    pub backend: Backend,
    pub rules: Option<PathBuf>,
    pub config: Option<PathBuf>,
    pub auth: Auth,
    /// How often the scorer retries deliveries when nothing wakes it.
    pub tick: Duration,
    /// Listen on a non-loopback address without an admin token (every lead readable by
    /// anyone who reaches it). Refused unless this is set.
    pub open_admin: bool,
    /// Memory the scorer may keep leads' events in between rescores, in bytes (see
    /// [`hotlead_app::event_cache`]).
    pub event_cache_bytes: usize,
}

/// Whether `host` only accepts connections from this machine.
fn is_loopback(host: &str) -> bool {
    host == "localhost"
        || host
            .trim_matches(|c| c == '[' || c == ']')
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// A running server.
#[derive(Debug)]
pub struct Running {
    pub addr: SocketAddr,
    /// Where the data is, in words.
    pub storage: String,
    /// The outbox file of the embedded backend.
    pub outbox: Option<PathBuf>,
    pub rules: Arc<RuleSet>,
    pub server: JoinHandle<()>,
    pub scorer: JoinHandle<()>,
}

impl Running {
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn stop(&self) {
        self.server.abort();
        self.scorer.abort();
    }
}

/// How often `serve` removes what retention says has expired (embedded store).
const SWEEP_PERIOD: Duration = Duration::from_secs(3_600);

/// Removes expired anonymous events now and every `period` (see [`Store::sweep`]); a
/// failed sweep is logged and tried again at the next.
async fn sweep_every(
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    retention: hotlead_app::ports::Retention,
    period: Duration,
) {
    let mut ticks = tokio::time::interval(period);
    loop {
        ticks.tick().await;
        match store.sweep(clock.now(), retention).await {
            Ok(swept) if swept.anonymous_events > 0 => {
                tracing::info!(
                    anonymous_events = swept.anonymous_events,
                    "expired events removed"
                );
            }
            Ok(_) => {}
            Err(error) => tracing::warn!(%error, "the retention sweep failed; trying again later"),
        }
    }
}

/// The outbox file's default place: beside the database.
pub fn default_outbox(db: &Path) -> PathBuf {
    db.with_file_name("alerts.jsonl")
}

pub fn load_rules_or_seed(path: Option<&Path>) -> anyhow::Result<RuleSet> {
    match path {
        Some(path) => crate::cli::load_rules(path),
        None => Ok(RuleSet::from_toml("(bundled seed rules)", SEED_RULES)?),
    }
}

pub fn load_config(path: Option<&Path>) -> anyhow::Result<Config> {
    match path {
        Some(path) => Ok(Config::from_toml(
            &path.display().to_string(),
            &input::read_text(path)?,
        )?),
        None => Ok(Config::default()),
    }
}

/// Makes the rules file given (or, on a store that has none yet, the seed rules) the
/// active version, unless it already is; returns the active rules.
pub async fn install_rules(review: &Review, path: Option<&Path>) -> anyhow::Result<RuleSet> {
    let version = match path {
        Some(path) => {
            let text = input::read_text(path)?;
            // Checked first, so that a bad file is reported with its name and lines.
            RuleSet::from_toml(&path.display().to_string(), &text)?;
            review
                .install(&text, &format!("file {}", path.display()))
                .await?
        }
        None => match review.store().active_rules().await? {
            Some(active) => active,
            None => review.install(SEED_RULES, "bundled seed rules").await?,
        },
    };
    Ok(RuleSet::from_toml(
        &format!("rules version {}", version.version),
        &version.text,
    )?)
}

/// The review service and a scorer following the active rules, on one store; the rules
/// file (or the seed) is installed as a version first.
async fn services<S: Storage + 'static>(
    store: Arc<S>,
    notifier: Arc<dyn hotlead_app::Notifier>,
    archive: Option<Arc<dyn AlertArchive>>,
    clock: &Arc<dyn Clock>,
    config: &Arc<Config>,
    options: &ServeOptions,
    links: Arc<Links>,
) -> anyhow::Result<(Review, Arc<RuleSet>, Scorer, Arc<LeadPages>)> {
    let pages = Arc::new(LeadPages::new(
        links.clone(),
        store.clone() as Arc<dyn Storage>,
        clock.clone(),
        Config::clone(config),
    ));
    let mut review = Review::new(store.clone() as Arc<dyn Storage>, clock.clone());
    if let Some(archive) = archive {
        review = review.with_alert_archive(archive);
    }
    let rules = Arc::new(install_rules(&review, options.rules.as_deref()).await?);
    let scorer = Scorer::new(
        store.clone(),
        notifier,
        clock.clone(),
        rules.clone(),
        config.clone(),
    )
    .with_rules_from(store as Arc<dyn LearningStore>)
    .with_links(links)
    .with_event_cache(EventCache::of_bytes(options.event_cache_bytes));
    Ok((review, rules, scorer, pages))
}

/// The secret of the lead page links of an embedded database: `<db>.link-key` beside it,
/// made at the first start (readable by its owner only), so that links survive restarts.
/// Deleting the file revokes every link made so far. The file is written whole under a
/// name of its own, then linked to its place (which fails if another process got there
/// first: its key is used), so no process ever reads a half-written key.
fn link_key_beside(db: &Path) -> anyhow::Result<LinkKey> {
    let mut name = db.as_os_str().to_owned();
    name.push(".link-key");
    let path = PathBuf::from(name);
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("cannot make the directory {}", dir.display()))?;
    }
    for _ in 0..3 {
        match std::fs::read_to_string(&path) {
            Ok(text) => {
                warn_if_readable_by_others(&path);
                return LinkKey::from_text(&text).with_context(|| {
                    format!(
                        "{}: not a link secret (delete the file to make a new one; every link made so far stops working)",
                        path.display()
                    )
                });
            }
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
            Err(error) => {
                return Err(error)
                    .with_context(|| format!("cannot read the link secret {}", path.display()));
            }
        }
        let key = LinkKey::generate();
        let mut staged = path.clone().into_os_string();
        static STAGED: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = STAGED.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        staged.push(format!(".{}-{n}.new", std::process::id()));
        let staged = PathBuf::from(staged);
        let _ = std::fs::remove_file(&staged);
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let linked = options
            .open(&staged)
            .and_then(|mut file| {
                use std::io::Write as _;
                file.write_all(key.to_text().as_bytes())?;
                file.sync_all()
            })
            .and_then(|()| std::fs::hard_link(&staged, &path));
        let _ = std::fs::remove_file(&staged);
        match linked {
            Ok(()) => return Ok(key),
            // Another process made it first: read its key.
            Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(error) => {
                return Err(error)
                    .with_context(|| format!("cannot write the link secret {}", path.display()));
            }
        }
    }
    anyhow::bail!("cannot make the link secret {}", path.display())
}

/// A link secret others may read lets them sign links to any lead: said in the log.
fn warn_if_readable_by_others(path: &Path) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        if let Ok(meta) = std::fs::metadata(path)
            && meta.permissions().mode() & 0o077 != 0
        {
            tracing::warn!(
                file = %path.display(),
                "the link secret is readable by other users: anyone who reads it can open every lead page (chmod 600 it, or delete it to revoke every link)"
            );
        }
    }
    #[cfg(not(unix))]
    let _ = path;
}

/// A backend opened, with its scorer running.
struct Opened {
    store: Arc<dyn Store>,
    /// The rep's lead pages.
    pages: Arc<LeadPages>,
    /// Each client's requests per minute.
    counter: Arc<dyn hotlead_app::ports::RequestCounter>,
    review: Review,
    rules: Arc<RuleSet>,
    scorer_task: JoinHandle<()>,
    storage: String,
    outbox: Option<PathBuf>,
}

/// Opens the store, starts the scorer and binds the API. Returns once listening.
pub async fn start(options: ServeOptions) -> anyhow::Result<Running> {
    if !is_loopback(&options.host) && options.auth.admin_token.is_none() {
        if !options.open_admin {
            anyhow::bail!(
                "refusing to listen on {} without an admin token: anyone who reaches it could read every lead \
                 and change the rules. Set --admin-token (or HOTLEAD_ADMIN_TOKEN), listen on 127.0.0.1, \
                 or pass --open-admin to accept that",
                options.host
            );
        }
        tracing::warn!(
            host = %options.host,
            "listening beyond this machine WITHOUT an admin token (--open-admin): the lead and review routes are open to anyone who reaches them"
        );
    }
    let mut config = load_config(options.config.as_deref())?;
    let listener = TcpListener::bind((options.host.as_str(), options.port))
        .await
        .with_context(|| format!("cannot listen on {}:{}", options.host, options.port))?;
    let addr = listener.local_addr()?;
    if config.public_url.is_none() {
        config.public_url = Some(format!("http://{addr}"));
    }
    let config = Arc::new(config);
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let ids: Arc<dyn IdSource> = Arc::new(UuidIds);
    let wake = Arc::new(Notify::new());
    let urgent = Arc::new(Notify::new());
    // The embedded scorer, whose rules tell which calls may raise an alert at once.
    let mut urgent_rules = None;
    let Opened {
        store,
        pages,
        counter,
        review,
        rules,
        scorer_task,
        storage,
        outbox,
    } = match &options.backend {
        Backend::Embedded { db, outbox } => {
            let links = Arc::new(Links::for_config(link_key_beside(db)?, &config));
            let store = Arc::new(
                SqliteStore::open(db)
                    .with_context(|| format!("cannot open the database {}", db.display()))?,
            );
            let outbox_path = outbox.clone().unwrap_or_else(|| default_outbox(db));
            let notifier = Arc::new(FileOutbox::new(&outbox_path));
            let (review, rules, scorer, pages) = services(
                store.clone(),
                notifier.clone(),
                Some(notifier),
                &clock,
                &config,
                &options,
                links,
            )
            .await?;
            let sweeper = sweep_every(store.clone(), clock.clone(), config.retention, SWEEP_PERIOD);
            urgent_rules = Some(scorer.clone());
            let scoring = scorer.run(wake.clone(), urgent.clone(), options.tick);
            let task = tokio::spawn(async move {
                tokio::join!(scoring, sweeper);
            });
            let storage = format!(
                "database {}, alerts appended to {}",
                db.display(),
                outbox_path.display()
            );
            Opened {
                store,
                pages,
                counter: Arc::new(hotlead_embedded::MemoryRequestCounter::new()),
                review,
                rules,
                scorer_task: task,
                storage,
                outbox: Some(outbox_path),
            }
        }
        Backend::Aws(aws) => {
            // No file to keep a secret in: links made by this process work until it stops.
            let links = Arc::new(Links::for_config(LinkKey::generate(), &config));
            let store = Arc::new(hotlead_aws::DynamoStore::new(
                aws_sdk_dynamodb::Client::new(&aws.config),
                &aws.table,
            ));
            let notifier = Arc::new(hotlead_aws::SnsNotifier::new(
                aws_sdk_sns::Client::new(&aws.config),
                &aws.alerts_topic_arn,
            ));
            let stream_arn = hotlead_aws::stream_arn(&aws.config, &aws.table)
                .await
                .map_err(anyhow::Error::msg)?;
            let (review, rules, scorer, pages) = services(
                store.clone(),
                notifier,
                None,
                &clock,
                &config,
                &options,
                links,
            )
            .await?;
            let streams = aws_sdk_dynamodbstreams::Client::new(&aws.config);
            let task = tokio::spawn(hotlead_aws::stream::poll(
                streams,
                stream_arn,
                scorer,
                options.tick,
                wake.clone(),
            ));
            let storage = format!(
                "DynamoDB table {} (read through its stream), alerts to SNS {}",
                aws.table, aws.alerts_topic_arn
            );
            Opened {
                store: store.clone(),
                pages,
                counter: store,
                review,
                rules,
                scorer_task: task,
                storage,
                outbox: None,
            }
        }
    };
    let mut ingest = Ingest::new(store, clock, ids, config, wake)
        .with_client_limits(counter)
        .with_pages(pages);
    if let Some(scorer) = urgent_rules {
        ingest = ingest.with_urgent(urgent, scorer);
    }
    // The socket's peer is the visitor's address (or a trusted proxy's, see
    // `trusted_proxies`).
    let app = router(ingest, review, options.auth.clone()).layer(axum::middleware::map_request(
        |mut request: axum::extract::Request| async move {
            let peer = request
                .extensions()
                .get::<axum::extract::ConnectInfo<SocketAddr>>()
                .map(|info| info.0.ip());
            if let Some(ip) = peer {
                request.extensions_mut().insert(hotlead_api::ClientAddr(ip));
            }
            request
        },
    ));
    let server = tokio::spawn(async move {
        let app = app.into_make_service_with_connect_info::<SocketAddr>();
        if let Err(error) = axum::serve(listener, app).await {
            tracing::error!(%error, "server stopped");
        }
    });
    Ok(Running {
        addr,
        storage,
        outbox,
        rules,
        server,
        scorer: scorer_task,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "hotlead-link-key-{name}-{}-{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or(0)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    /// The link secret is made once, in a directory made for it, readable by its owner
    /// only, and the same key is read by every later start; a file that holds no key stops
    /// the start naming it.
    #[test]
    fn the_link_secret_is_made_once_beside_the_database() {
        let dir = temp_dir("once");
        let db = dir.join("data").join("hotlead.db");
        let first = link_key_beside(&db).unwrap();
        let again = link_key_beside(&db).unwrap();
        assert_eq!(first.to_text(), again.to_text());
        let file = dir.join("data").join("hotlead.db.link-key");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(&file).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600, "{mode:o}");
        }
        let left: Vec<_> = std::fs::read_dir(dir.join("data"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(left.len(), 1, "no staged file is left: {left:?}");
        std::fs::write(&file, "").unwrap();
        let error = format!("{:#}", link_key_beside(&db).unwrap_err());
        assert!(
            error.contains("hotlead.db.link-key") && error.contains("not a link secret"),
            "{error}"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// Starts racing for the first key all end with the same one.
    #[test]
    fn concurrent_first_starts_share_one_key() {
        let dir = temp_dir("race");
        let db = dir.join("hotlead.db");
        let keys: Vec<String> = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..8)
                .map(|_| scope.spawn(|| link_key_beside(&db).unwrap().to_text()))
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        assert!(keys.iter().all(|k| k == &keys[0]), "{keys:?}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
