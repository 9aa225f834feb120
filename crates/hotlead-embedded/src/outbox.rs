//! Local alert delivery: one JSON line per delivered alert, appended to a file that a rep
//! (or `tail -f`) can read.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use hotlead_app::erase::AlertArchive;
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
    /// Where the ids of leads erased are remembered, beside the outbox file.
    fn erased_path(&self) -> PathBuf {
        erased_path(&self.path)
    }

    /// Appends one line, in one write, so concurrent readers never see half a line. With
    /// `lead_id`, not for a lead erased (by this process or another: the file is locked
    /// across processes while it is appended to or redacted).
    async fn append(&self, line: String, lead_id: Option<&str>) -> Result<(), NotifyError> {
        let (path, lock) = (self.path.clone(), self.lock.clone());
        let erased = self.erased_path();
        let lead_id = lead_id.map(str::to_string);
        tokio::task::spawn_blocking(move || {
            let _guard = lock
                .lock()
                .map_err(|_| NotifyError::transient("outbox lock poisoned"))?;
            let failed =
                |e: std::io::Error| NotifyError::transient(format!("{}: {e}", path.display()));
            if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
                std::fs::create_dir_all(parent)
                    .map_err(|e| NotifyError::transient(format!("{}: {e}", parent.display())))?;
            }
            let mut file = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&path)
                .map_err(failed)?;
            file.lock().map_err(failed)?;
            if let Some(lead_id) = lead_id
                && erased_ids(&erased).map_err(failed)?.contains(&lead_id)
            {
                return Err(NotifyError::permanent("the lead was erased"));
            }
            file.write_all(format!("{line}\n").as_bytes())
                .map_err(failed)
        })
        .await
        .map_err(|e| NotifyError::transient(format!("outbox task failed: {e}")))?
    }
}

/// The file of erased lead ids beside an outbox file: `alerts.jsonl.erased`.
fn erased_path(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".erased");
    PathBuf::from(name)
}

/// The lead ids remembered as erased (one per line; none when there is no file).
fn erased_ids(path: &Path) -> std::io::Result<std::collections::BTreeSet<String>> {
    match std::fs::read_to_string(path) {
        Ok(text) => Ok(text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .map(str::to_string)
            .collect()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Default::default()),
        Err(e) => Err(e),
    }
}

/// Adds lead ids to the erased ones, synced before anything is redacted.
fn remember_erased(path: &Path, lead_ids: &[String]) -> std::io::Result<()> {
    let known = erased_ids(path)?;
    let new: Vec<&String> = lead_ids.iter().filter(|id| !known.contains(*id)).collect();
    if new.is_empty() {
        return Ok(());
    }
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)?;
    }
    // A last line cut short (a crash mid-write) must not swallow the next id.
    let torn = std::fs::read(path).is_ok_and(|b| b.last().is_some_and(|c| *c != b'\n'));
    let mut text = String::from(if torn { "\n" } else { "" });
    for id in new {
        text.push_str(id);
        text.push('\n');
    }
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)?;
    file.write_all(text.as_bytes())?;
    file.sync_all()
}

/// Review notes for analysts, appended like alerts (to their own file).
#[async_trait]
impl ReviewNotifier for FileOutbox {
    async fn review_waiting(&self, note: &ReviewNote) -> Result<(), NotifyError> {
        let line =
            serde_json::to_string(note).map_err(|e| NotifyError::permanent(e.to_string()))?;
        self.append(line, None).await
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
        self.append(line, Some(&alert.lead_id)).await
    }
}

/// What a redacted alert's line becomes (padded with spaces to the line's length).
const REDACTED: &str = r#"{"redacted":true}"#;

/// Redacts in place: each line of an erased lead is overwritten, byte for byte, by
/// [`REDACTED`] and spaces, so that no line is moved or lost. The file stays locked
/// meanwhile, so nothing is appended to it (by this or another process) until it is done.
fn redact_file(
    path: &Path,
    lead_ids: &std::collections::BTreeSet<String>,
) -> std::io::Result<usize> {
    use std::io::{Read, Seek, SeekFrom};
    let mut file = match std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
    {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(e),
    };
    file.lock()?;
    let mut content = Vec::new();
    file.read_to_end(&mut content)?;
    let mut redacted = 0;
    let mut offset = 0u64;
    for line in content.split_inclusive(|b| *b == b'\n') {
        let text = line.strip_suffix(b"\n").unwrap_or(line);
        let erased = serde_json::from_slice::<serde_json::Value>(text)
            .ok()
            .and_then(|v| {
                v.get("lead_id")
                    .and_then(|l| l.as_str())
                    .map(str::to_string)
            })
            .is_some_and(|id| lead_ids.contains(&id));
        if erased && text.len() >= REDACTED.len() {
            let mut replacement = REDACTED.as_bytes().to_vec();
            replacement.resize(text.len(), b' ');
            file.seek(SeekFrom::Start(offset))?;
            file.write_all(&replacement)?;
            redacted += 1;
        }
        offset += line.len() as u64;
    }
    if redacted > 0 {
        file.sync_all()?;
    }
    Ok(redacted)
}

#[async_trait]
impl AlertArchive for FileOutbox {
    async fn remember(&self, lead_ids: &[String]) -> Result<(), NotifyError> {
        let (lock, lead_ids) = (self.lock.clone(), lead_ids.to_vec());
        let erased = self.erased_path();
        tokio::task::spawn_blocking(move || {
            let _guard = lock
                .lock()
                .map_err(|_| NotifyError::transient("outbox lock poisoned"))?;
            remember_erased(&erased, &lead_ids)
                .map_err(|e| NotifyError::transient(format!("{}: {e}", erased.display())))
        })
        .await
        .map_err(|e| NotifyError::transient(format!("outbox task failed: {e}")))?
    }

    async fn redact(&self, lead_ids: &[String]) -> Result<usize, NotifyError> {
        let (path, lock, lead_ids) = (self.path.clone(), self.lock.clone(), lead_ids.to_vec());
        let erased = self.erased_path();
        tokio::task::spawn_blocking(move || {
            let _guard = lock
                .lock()
                .map_err(|_| NotifyError::transient("outbox lock poisoned"))?;
            // Remembered first: an alert of these leads on its way to the file is refused
            // from now on, and a redaction that fails below is finished by the next one.
            remember_erased(&erased, &lead_ids)
                .map_err(|e| NotifyError::transient(format!("{}: {e}", erased.display())))?;
            let mut all = erased_ids(&erased)
                .map_err(|e| NotifyError::transient(format!("{}: {e}", erased.display())))?;
            all.extend(lead_ids);
            redact_file(&path, &all)
                .map_err(|e| NotifyError::transient(format!("{}: {e}", path.display())))
        })
        .await
        .map_err(|e| NotifyError::transient(format!("outbox task failed: {e}")))?
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacting_overwrites_only_the_erased_leads_lines_in_place() {
        let dir = std::env::temp_dir().join(format!("hotlead-redact-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("alerts.jsonl");
        let lines = [
            r#"{"lead_id":"L-1","subject":"山田 太郎 (yamada@example.co.jp)"}"#,
            r#"{"lead_id":"L-2","subject":"other"}"#,
            r#"{"lead_id":"L-1","subject":"again"}"#,
        ];
        std::fs::write(&path, lines.join("\n") + "\n").unwrap();
        assert_eq!(redact_file(&path, &["L-1".to_string()].into()).unwrap(), 2);
        let after = std::fs::read_to_string(&path).unwrap();
        assert_eq!(after.len(), lines.join("\n").len() + 1);
        assert!(
            !after.contains("L-1") && !after.contains("yamada"),
            "{after}"
        );
        let parsed: Vec<serde_json::Value> = after
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(parsed[0], serde_json::json!({"redacted": true}));
        assert_eq!(parsed[1]["lead_id"], "L-2");
        assert_eq!(redact_file(&path, &["L-1".to_string()].into()).unwrap(), 0);
        assert_eq!(
            redact_file(&dir.join("none.jsonl"), &["L-1".to_string()].into()).unwrap(),
            0
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
