//! CRM exports as they arrive: CSV with `,`, `;` or tab, quoted fields, and `unknown` or
//! empty cells for missing values. Bad rows are reported by line and skipped.

use serde::Serialize;

/// A row that could not be used, by its line in the file (the header is line 1).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RowError {
    pub line: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    pub message: String,
}

impl std::fmt::Display for RowError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "line {}", self.line)?;
        if let Some(field) = &self.field {
            write!(f, ": field `{field}`")?;
        }
        write!(f, ": {}", self.message)
    }
}

/// Why a whole file cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TableError {
    #[error("line 1: the file is empty; expected a header row")]
    Empty,
    #[error("line 1: field `{0}`: the header row names this column twice")]
    DuplicateColumn(String),
    #[error("line 1: the header row has an empty column name (column {0})")]
    EmptyColumn(usize),
    #[error("line {line}: not valid CSV: {message}")]
    Csv { line: u64, message: String },
}

/// One data row: its line and a value per column (`None` when missing).
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    pub line: u64,
    pub values: Vec<Option<String>>,
}

/// A parsed export.
#[derive(Debug, Clone, PartialEq)]
pub struct Table {
    pub headers: Vec<String>,
    pub delimiter: u8,
    pub rows: Vec<Row>,
    /// Rows skipped, with the reason.
    pub rejected: Vec<RowError>,
}

impl Table {
    pub fn column(&self, name: &str) -> Option<usize> {
        self.headers.iter().position(|h| h == name)
    }
}

/// The words CRM exports use for "no value".
pub fn is_missing(value: &str) -> bool {
    let value = value.trim();
    value.is_empty()
        || [
            "unknown",
            "n/a",
            "na",
            "null",
            "none",
            "nan",
            "-",
            "不明",
            "未回答",
        ]
        .iter()
        .any(|word| value.eq_ignore_ascii_case(word))
}

/// Guesses the delimiter from the header row: the most frequent of `,`, `;`, tab and `|`
/// outside quotes (`,` when none appears).
pub fn detect_delimiter(text: &str) -> u8 {
    let header = first_record(text);
    let mut counts = [(b',', 0usize), (b';', 0), (b'\t', 0), (b'|', 0)];
    let mut quoted = false;
    for byte in header.bytes() {
        if byte == b'"' {
            quoted = !quoted;
        } else if !quoted && let Some(entry) = counts.iter_mut().find(|(d, _)| *d == byte) {
            entry.1 += 1;
        }
    }
    counts
        .iter()
        .max_by_key(|(d, n)| (*n, *d == b','))
        .filter(|(_, n)| *n > 0)
        .map_or(b',', |(d, _)| *d)
}

/// The text up to the first line break outside quotes.
fn first_record(text: &str) -> &str {
    let mut quoted = false;
    for (i, c) in text.char_indices() {
        match c {
            '"' => quoted = !quoted,
            '\n' | '\r' if !quoted => return &text[..i],
            _ => {}
        }
    }
    text
}

/// Reads a table; `delimiter` overrides detection. A row with the wrong number of fields
/// is rejected with its line; the rest are kept.
pub fn read_table(text: &str, delimiter: Option<u8>) -> Result<Table, TableError> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    if text.trim().is_empty() {
        return Err(TableError::Empty);
    }
    let delimiter = delimiter.unwrap_or_else(|| detect_delimiter(text));
    let mut reader = csv::ReaderBuilder::new()
        .delimiter(delimiter)
        .flexible(true)
        .has_headers(false)
        .from_reader(text.as_bytes());
    let mut record = csv::StringRecord::new();
    match reader.read_record(&mut record) {
        Ok(true) => {}
        Ok(false) => return Err(TableError::Empty),
        Err(e) => {
            return Err(TableError::Csv {
                line: 1,
                message: e.to_string(),
            });
        }
    }
    let headers: Vec<String> = record.iter().map(|h| h.trim().to_string()).collect();
    for (i, header) in headers.iter().enumerate() {
        if header.is_empty() {
            return Err(TableError::EmptyColumn(i + 1));
        }
        if headers[..i].contains(header) {
            return Err(TableError::DuplicateColumn(header.clone()));
        }
    }
    let mut rows = Vec::new();
    let mut rejected = Vec::new();
    // Lines counted from byte offsets: the reader's own count is off with CRLF endings.
    let bytes = text.as_bytes();
    let (mut counted_to, mut line_at) = (0usize, 1u64);
    let mut line_of = |byte: u64| -> u64 {
        let mut byte = (byte as usize).min(bytes.len());
        // A record that follows `\r\n` is reported from its `\n`.
        while byte < bytes.len() && matches!(bytes[byte], b'\n' | b'\r') {
            byte += 1;
        }
        if byte >= counted_to {
            line_at += bytes[counted_to..byte]
                .iter()
                .filter(|b| **b == b'\n')
                .count() as u64;
            counted_to = byte;
        }
        line_at
    };
    loop {
        match reader.read_record(&mut record) {
            Ok(false) => break,
            Ok(true) => {
                let line = record.position().map_or(0, |p| line_of(p.byte()));
                if record.len() == 1 && record.get(0).is_some_and(|v| v.trim().is_empty()) {
                    continue;
                }
                if record.len() != headers.len() {
                    rejected.push(RowError {
                        line,
                        field: None,
                        message: format!(
                            "{} fields where the header has {}",
                            record.len(),
                            headers.len()
                        ),
                    });
                    continue;
                }
                let values = record
                    .iter()
                    .map(|v| (!is_missing(v)).then(|| v.trim().to_string()))
                    .collect();
                rows.push(Row { line, values });
            }
            Err(e) => {
                let line = e.position().map_or(0, |p| line_of(p.byte()));
                match e.kind() {
                    csv::ErrorKind::Utf8 { .. } => rejected.push(RowError {
                        line,
                        field: None,
                        message: "not UTF-8 text".into(),
                    }),
                    _ => {
                        return Err(TableError::Csv {
                            line,
                            message: e.to_string(),
                        });
                    }
                }
            }
        }
    }
    Ok(Table {
        headers,
        delimiter,
        rows,
        rejected,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detects_each_delimiter_and_reads_quotes_and_missing_values() {
        for (delimiter, text) in [
            (b',', "a,b\n\"x, y\",unknown\n"),
            (b';', "\"a\";\"b\"\n\"x; y\";\n"),
            (b'\t', "a\tb\n\"x\ty\"\tNA\n"),
            (b';', "a;b\r\nx;\r\n"),
        ] {
            let table = read_table(text, None).unwrap();
            assert_eq!(table.delimiter, delimiter);
            assert_eq!(table.headers, ["a", "b"]);
            assert_eq!(table.rows.len(), 1);
            assert_eq!(table.rows[0].line, 2, "{text:?}");
            assert_eq!(table.rows[0].values[1], None);
            assert!(table.rows[0].values[0].as_deref().unwrap().starts_with('x'));
        }
    }

    #[test]
    fn short_rows_are_rejected_by_line_and_the_rest_kept() {
        let table = read_table("a,b\n1,2\n3\n4,5\n", None).unwrap();
        assert_eq!(table.rows.len(), 2);
        assert_eq!(table.rejected.len(), 1);
        assert_eq!(table.rejected[0].line, 3);
        assert_eq!(table.rows[0].line, 2);
        assert_eq!(table.rows[1].line, 4);
    }

    #[test]
    fn header_problems_are_errors() {
        assert_eq!(read_table("", None), Err(TableError::Empty));
        assert_eq!(
            read_table("a,a\n1,2\n", None),
            Err(TableError::DuplicateColumn("a".into()))
        );
        assert_eq!(read_table("a,,b\n", None), Err(TableError::EmptyColumn(2)));
    }
}
