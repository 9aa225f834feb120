//! Reading leads and events files. Every error names the file, the line and the field.

use std::collections::{BTreeSet, HashMap};
use std::fmt;
use std::path::{Path, PathBuf};

use hotlead_core::{Event, Lead};
use serde_json::Value;

/// A problem in an input file, at a line, in a field.
#[derive(Debug)]
pub struct InputError {
    pub file: PathBuf,
    pub line: Option<u64>,
    pub field: Option<String>,
    pub message: String,
}

impl fmt::Display for InputError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
        }
        if let Some(field) = &self.field {
            write!(f, ": field `{field}`")?;
        }
        write!(f, ": {}", self.message)
    }
}

impl std::error::Error for InputError {}

impl InputError {
    fn new(
        file: &Path,
        line: Option<u64>,
        field: Option<&str>,
        message: impl Into<String>,
    ) -> Self {
        InputError {
            file: file.to_path_buf(),
            line,
            field: field.map(str::to_string),
            message: message.into(),
        }
    }
}

/// Reads a whole UTF-8 text file, without a byte-order mark.
pub fn read_text(path: &Path) -> Result<String, InputError> {
    let bytes = std::fs::read(path)
        .map_err(|e| InputError::new(path, None, None, format!("cannot read: {e}")))?;
    let text = String::from_utf8(bytes).map_err(|e| {
        let line = e.as_bytes()[..e.utf8_error().valid_up_to()]
            .iter()
            .filter(|b| **b == b'\n')
            .count() as u64
            + 1;
        InputError::new(
            path,
            Some(line),
            None,
            "not UTF-8 text (a Shift_JIS export? save it as UTF-8)",
        )
    })?;
    Ok(text
        .strip_prefix('\u{feff}')
        .map(str::to_string)
        .unwrap_or(text))
}

fn is_json_lines(path: &Path) -> bool {
    matches!(
        path.extension()
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase)
            .as_deref(),
        Some("jsonl" | "ndjson" | "json")
    )
}

/// Reads leads from CSV (a header row of attribute names, one column `lead_id`) or from
/// JSON lines (`.jsonl`, `.ndjson`, `.json`: one object per line with `lead_id`).
pub fn read_leads(path: &Path) -> Result<Vec<Lead>, InputError> {
    let text = read_text(path)?;
    let mut seen = BTreeSet::new();
    let mut leads = Vec::new();
    let mut push = |lead: Lead, line: u64| {
        if !seen.insert(lead.id.clone()) {
            return Err(InputError::new(
                path,
                Some(line),
                Some("lead_id"),
                format!("duplicate lead id {:?}", lead.id),
            ));
        }
        leads.push(lead);
        Ok(())
    };
    if is_json_lines(path) {
        for (index, line) in text.lines().enumerate() {
            let number = index as u64 + 1;
            if line.trim().is_empty() {
                continue;
            }
            let lead = lead_from_json(line).map_err(|(field, message)| {
                InputError::new(path, Some(number), field.as_deref(), message)
            })?;
            push(lead, number)?;
        }
        return Ok(leads);
    }

    let mut reader = csv::ReaderBuilder::new()
        .flexible(false)
        .from_reader(text.as_bytes());
    let headers = reader
        .headers()
        .map_err(|e| {
            InputError::new(
                path,
                Some(1),
                None,
                format!("cannot read the header row: {e}"),
            )
        })?
        .clone();
    let names: Vec<String> = headers
        .iter()
        .map(hotlead_core::lead::attribute_name)
        .collect();
    let id_column = names.iter().position(|n| n == "lead_id").ok_or_else(|| {
        InputError::new(
            path,
            Some(1),
            Some("lead_id"),
            "the header row has no `lead_id` column",
        )
    })?;
    for record in reader.records() {
        let record = record.map_err(|e| {
            let line = e.position().map(|p| p.line());
            InputError::new(
                path,
                line,
                None,
                format!("not valid CSV: {}", csv_error_words(&e)),
            )
        })?;
        let line = record.position().map_or(0, |p| p.line());
        let id = record.get(id_column).unwrap_or_default().trim();
        if id.is_empty() {
            return Err(InputError::new(
                path,
                Some(line),
                Some("lead_id"),
                "is empty; every lead needs an id",
            ));
        }
        let attributes = names
            .iter()
            .zip(record.iter())
            .enumerate()
            .filter(|(i, _)| *i != id_column)
            .map(|(_, (name, value))| (name.as_str(), value));
        push(Lead::from_raw(id, attributes), line)?;
    }
    Ok(leads)
}

fn csv_error_words(error: &csv::Error) -> String {
    match error.kind() {
        csv::ErrorKind::UnequalLengths {
            expected_len, len, ..
        } => {
            format!("{len} fields where the header has {expected_len}")
        }
        _ => error.to_string(),
    }
}

fn lead_from_json(line: &str) -> Result<Lead, (Option<String>, String)> {
    let value: Value =
        serde_json::from_str(line).map_err(|e| (None, format!("not valid JSON: {e}")))?;
    let Value::Object(object) = value else {
        return Err((None, "expected a JSON object".into()));
    };
    let id = match object.get("lead_id") {
        Some(Value::String(s)) if !s.trim().is_empty() => s.trim().to_string(),
        Some(Value::Number(n)) => n.to_string(),
        _ => return Err((Some("lead_id".into()), "expected a non-empty string".into())),
    };
    let mut lead = Lead::new(id);
    for (name, value) in &object {
        if name == "lead_id" {
            continue;
        }
        let text = match value {
            Value::Null => continue,
            Value::String(s) => s.clone(),
            Value::Number(n) => n.to_string(),
            Value::Bool(b) => b.to_string(),
            _ => {
                return Err((
                    Some(name.clone()),
                    "expected a string, a number or a boolean".into(),
                ));
            }
        };
        lead.set(name, &text);
    }
    Ok(lead)
}

/// Events read from a JSON-lines file, grouped by `userId`.
#[derive(Debug, Default)]
pub struct Events {
    pub by_user: HashMap<String, Vec<Event>>,
    /// Events with no `userId` (anonymous only): they cannot be joined to a lead.
    pub anonymous: usize,
}

/// Reads Segment-shaped events, one JSON object per line.
pub fn read_events(path: &Path) -> Result<Events, InputError> {
    let text = read_text(path)?;
    let mut events = Events::default();
    for (index, line) in text.lines().enumerate() {
        let number = index as u64 + 1;
        if line.trim().is_empty() {
            continue;
        }
        let value: Value = serde_json::from_str(line).map_err(|e| {
            InputError::new(path, Some(number), None, format!("not valid JSON: {e}"))
        })?;
        let event = Event::from_segment(&value)
            .map_err(|e| InputError::new(path, Some(number), Some(&e.field), e.message))?;
        match &event.user_id {
            Some(user) => events.by_user.entry(user.clone()).or_default().push(event),
            None => events.anonymous += 1,
        }
    }
    Ok(events)
}
