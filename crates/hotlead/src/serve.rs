//! `hotlead serve`: the whole product on one machine: the API on the SQLite store, the
//! scorer as a background task, alerts appended to an outbox file.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use hotlead_api::{Auth, router};
use hotlead_app::ports::{Clock, IdSource};
use hotlead_app::{Config, Ingest, Scorer, SystemClock, UuidIds};
use hotlead_core::RuleSet;
use hotlead_embedded::{FileOutbox, SqliteStore};
use tokio::net::TcpListener;
use tokio::sync::Notify;
use tokio::task::JoinHandle;

use crate::input;

/// The seed rules, used when no rules file is given.
pub const SEED_RULES: &str = include_str!("../../../examples/rules/seed.toml");

/// What `serve` needs.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    pub host: String,
    pub port: u16,
    pub db: PathBuf,
    pub rules: Option<PathBuf>,
    pub outbox: Option<PathBuf>,
    pub config: Option<PathBuf>,
    pub auth: Auth,
    /// How often the scorer retries deliveries when nothing wakes it.
    pub tick: Duration,
}

/// A running server.
#[derive(Debug)]
pub struct Running {
    pub addr: SocketAddr,
    pub outbox: PathBuf,
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

/// Opens the store, starts the scorer and binds the API. Returns once listening.
pub async fn start(options: ServeOptions) -> anyhow::Result<Running> {
    let rules = Arc::new(load_rules_or_seed(options.rules.as_deref())?);
    let mut config = load_config(options.config.as_deref())?;
    let listener = TcpListener::bind((options.host.as_str(), options.port))
        .await
        .with_context(|| format!("cannot listen on {}:{}", options.host, options.port))?;
    let addr = listener.local_addr()?;
    if config.public_url.is_none() {
        config.public_url = Some(format!("http://{addr}"));
    }
    let config = Arc::new(config);
    let store = Arc::new(
        SqliteStore::open(&options.db)
            .with_context(|| format!("cannot open the database {}", options.db.display()))?,
    );
    let outbox_path = options
        .outbox
        .clone()
        .unwrap_or_else(|| default_outbox(&options.db));
    let notifier = Arc::new(FileOutbox::new(&outbox_path));
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let ids: Arc<dyn IdSource> = Arc::new(UuidIds);
    let wake = Arc::new(Notify::new());

    let scorer = Scorer::new(
        store.clone(),
        notifier,
        clock.clone(),
        rules.clone(),
        config.clone(),
    );
    let scorer_task = tokio::spawn(scorer.run(wake.clone(), options.tick));
    let ingest = Ingest::new(store, clock, ids, config, wake);
    let app = router(ingest, options.auth.clone());
    let server = tokio::spawn(async move {
        if let Err(error) = axum::serve(listener, app).await {
            tracing::error!(%error, "server stopped");
        }
    });
    Ok(Running {
        addr,
        outbox: outbox_path,
        rules,
        server,
        scorer: scorer_task,
    })
}
