//! Local alert delivery: one JSON line per delivered alert, appended to a file that a rep
//! (or `tail -f`) can read.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use hotlead_app::ports::{ReviewNote, ReviewNotifier};
use hotlead_app::{Notifier, NotifyError};
use hotlead_core::alert::AlertMessage;
use serde_json::json;

/// Appends delivered alerts to a JSON-lines file.
#[derive(Debug, Clone)]
pub struct FileOutbox {
    path: PathBuf,
    lock: Arc<Mutex<()>>,
}

impl FileOutbox {
    pub fn new(path: &Path) -> Self {
        FileOutbox {
            path: path.to_path_buf(),
            lock: Arc::new(Mutex::new(())),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl FileOutbox {
    /// Appends one line, in one write, so concurrent readers never see half a line.
    async fn append(&self, line: String) -> Result<(), NotifyError> {
        let (path, lock) = (self.path.clone(), self.lock.clone());
        tokio::task::spawn_blocking(move || {
            let _guard = lock
                .lock()
                .map_err(|_| NotifyError::transient("outbox lock poisoned"))?;
            if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
                std::fs::create_dir_all(parent)
                    .map_err(|e| NotifyError::transient(format!("{}: {e}", parent.display())))?;
            }
            let mut file = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&path)
                .map_err(|e| NotifyError::transient(format!("{}: {e}", path.display())))?;
            file.write_all(format!("{line}\n").as_bytes())
                .map_err(|e| NotifyError::transient(format!("{}: {e}", path.display())))
        })
        .await
        .map_err(|e| NotifyError::transient(format!("outbox task failed: {e}")))?
    }
}

/// Review notes for analysts, appended like alerts (to their own file).
#[async_trait]
impl ReviewNotifier for FileOutbox {
    async fn review_waiting(&self, note: &ReviewNote) -> Result<(), NotifyError> {
        let line =
            serde_json::to_string(note).map_err(|e| NotifyError::permanent(e.to_string()))?;
        self.append(line).await
    }
}

#[async_trait]
impl Notifier for FileOutbox {
    async fn deliver(&self, alert: &AlertMessage) -> Result<(), NotifyError> {
        let line = json!({
            "lead_id": alert.lead_id,
            "reason": alert.reason,
            "subject": alert.subject,
            "body": alert.body,
            "score": alert.score,
            "band": alert.band,
            "grade": alert.grade,
            "territory": alert.routing.territory,
            "owner": alert.routing.owner,
            "product": alert.routing.product,
            "lead_url": alert.lead_url,
        })
        .to_string();
        self.append(line).await
    }
}
