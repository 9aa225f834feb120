//! Labelled examples from a CRM export: one row per lead, an outcome column, an optional
//! close-date column. Columns named in `exclude` are dropped before anything sees them.

use chrono::{DateTime, NaiveDate, Utc};
use foldhash::HashMap;
use hotlead_core::Lead;
use hotlead_core::lead::{AttributeValue, DERIVED_ATTRIBUTES, attribute_name};

use crate::Example;
use crate::table::{Row, RowError, Table};

/// Which rows are won: `COLUMN=VALUE` (`y=yes`); every other present value is lost.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutcomeSpec {
    pub column: String,
    pub won: String,
}

impl std::str::FromStr for OutcomeSpec {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        match text.split_once('=') {
            Some((column, won)) if !column.trim().is_empty() && !won.trim().is_empty() => {
                Ok(OutcomeSpec {
                    column: column.trim().to_string(),
                    won: won.trim().to_string(),
                })
            }
            _ => Err(format!("expected COLUMN=VALUE (like y=yes), got {text:?}")),
        }
    }
}

/// Why a table cannot give examples at all.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DatasetError {
    #[error("line 1: field `{0}`: no such column in the header row")]
    NoColumn(String),
    #[error("line 1: field `{0}`: the outcome column cannot also be excluded")]
    OutcomeExcluded(String),
}

/// Column names that hold the lead id, the e-mail, and the close date, in order of
/// preference.
const ID_COLUMNS: &[&str] = &["lead_id", "id"];
const DATE_COLUMNS: &[&str] = &["closed_at", "closed_date", "close_date", "decided_at"];
/// Column names that hold when the lead came in.
const CREATED_COLUMNS: &[&str] = &[
    "created_at",
    "created_date",
    "create_date",
    "lead_created_at",
];

/// Reads a close date: RFC 3339 or `YYYY-MM-DD` (midnight UTC).
pub fn parse_date(text: &str) -> Option<DateTime<Utc>> {
    let text = text.trim();
    DateTime::parse_from_rfc3339(text)
        .map(|d| d.with_timezone(&Utc))
        .ok()
        .or_else(|| {
            NaiveDate::parse_from_str(text, "%Y-%m-%d")
                .or_else(|_| NaiveDate::parse_from_str(text, "%Y/%m/%d"))
                .ok()
                .and_then(|d| d.and_hms_opt(0, 0, 0))
                .map(|d| d.and_utc())
        })
}

/// Turns rows into examples. `default_decided_at` is used when there is no close-date
/// column. Rows with no outcome or a bad date are rejected with their line.
pub fn examples(
    table: &Table,
    outcome: &OutcomeSpec,
    exclude: &[String],
    default_decided_at: DateTime<Utc>,
) -> Result<(Vec<Example>, Vec<RowError>), DatasetError> {
    let canonical: Vec<String> = table.headers.iter().map(|h| attribute_name(h)).collect();
    let find = |name: &str| {
        let wanted = attribute_name(name);
        canonical.iter().position(|c| *c == wanted)
    };
    let outcome_column =
        find(&outcome.column).ok_or_else(|| DatasetError::NoColumn(outcome.column.clone()))?;
    let mut excluded = Vec::new();
    for name in exclude {
        let column = find(name).ok_or_else(|| DatasetError::NoColumn(name.clone()))?;
        if column == outcome_column {
            return Err(DatasetError::OutcomeExcluded(name.clone()));
        }
        excluded.push(column);
    }
    let id_column = ID_COLUMNS.iter().find_map(|c| find(c));
    let date_column = DATE_COLUMNS.iter().find_map(|c| find(c));
    let created_column = CREATED_COLUMNS.iter().find_map(|c| find(c));
    let won_value = outcome.won.trim().to_lowercase();

    // The attribute columns, with the name `Lead::set` files each under.
    let attribute_columns: Vec<(usize, String)> = (0..canonical.len())
        .filter(|&c| {
            c != outcome_column
                && Some(c) != id_column
                && Some(c) != date_column
                && Some(c) != created_column
                && !excluded.contains(&c)
        })
        .map(|c| (c, attribute_name(&canonical[c])))
        .collect();
    // Where no two columns share a name and none derives another attribute (the e-mail),
    // a lead's attributes can be laid out in name order at once.
    let mut by_name = attribute_columns.clone();
    by_name.sort_by(|a, b| a.1.cmp(&b.1));
    let at_once = by_name.windows(2).all(|w| w[0].1 != w[1].1)
        && by_name
            .iter()
            .all(|(_, name)| name != "email" && !DERIVED_ATTRIBUTES.contains(&name.as_str()));
    let attribute_columns = if at_once { by_name } else { attribute_columns };
    let columns = Columns {
        table,
        canonical: &canonical,
        attributes: &attribute_columns,
        outcome: outcome_column,
        id: id_column,
        date: date_column,
        created: created_column,
        won: &won_value,
        default_decided_at,
        at_once,
    };
    // Rows in chunks over the cores; each row's example depends on the row alone.
    const CHUNK: usize = 4_096;
    let chunks: Vec<&[Row]> = table.rows.chunks(CHUNK).collect();
    let workers = std::thread::available_parallelism().map_or(1, |n| n.get());
    let results = crate::sparse::parallel(&chunks, workers, |rows| columns.examples(rows));
    let mut out = Vec::with_capacity(table.rows.len());
    let mut rejected = table.rejected.clone();
    for result in results.into_iter().flatten() {
        match result {
            Ok(example) => out.push(example),
            Err(e) => rejected.push(e),
        }
    }
    rejected.sort_by_key(|r| r.line);
    Ok((out, rejected))
}

/// What turning a row into an example needs to know about the table's columns.
struct Columns<'a> {
    table: &'a Table,
    canonical: &'a [String],
    /// (column, attribute name) of the columns that become attributes: by name where
    /// `at_once`, else in the columns' order.
    attributes: &'a [(usize, String)],
    at_once: bool,
    outcome: usize,
    id: Option<usize>,
    date: Option<usize>,
    created: Option<usize>,
    won: &'a str,
    default_decided_at: DateTime<Utc>,
}

impl Columns<'_> {
    /// Each row's example, or why it is rejected. Exports repeat a handful of values per
    /// column, so each distinct value of a column is normalised once (as `Lead::set`
    /// would) and copied after that.
    fn examples(&self, rows: &[Row]) -> Vec<Result<Example, RowError>> {
        let mut parsed: Vec<HashMap<&str, AttributeValue>> =
            vec![HashMap::default(); self.attributes.len()];
        rows.iter()
            .map(|row| self.example(row, &mut parsed))
            .collect()
    }

    fn example<'r>(
        &self,
        row: &'r Row,
        parsed: &mut [HashMap<&'r str, AttributeValue>],
    ) -> Result<Example, RowError> {
        let table = self.table;
        let Some(label) = &row.values[self.outcome] else {
            return Err(RowError {
                line: row.line,
                field: Some(table.headers[self.outcome].clone()),
                message: "no outcome".into(),
            });
        };
        // A date column's value: none, a date, or a row rejected naming the field.
        let date = |column: Option<usize>| -> Result<Option<DateTime<Utc>>, RowError> {
            match column.map(|c| (c, &row.values[c])) {
                None | Some((_, None)) => Ok(None),
                Some((c, Some(text))) => parse_date(text).map(Some).ok_or_else(|| RowError {
                    line: row.line,
                    field: Some(table.headers[c].clone()),
                    message: format!("expected a date like 2026-03-31, got {text:?}"),
                }),
            }
        };
        let (decided_at, created_at) = match (date(self.date), date(self.created)) {
            (Ok(decided), Ok(created)) => (decided.unwrap_or(self.default_decided_at), created),
            (Err(e), _) | (_, Err(e)) => return Err(e),
        };
        let id = self
            .id
            .and_then(|c| row.values[c].clone())
            .unwrap_or_else(|| format!("line-{}", row.line));
        let mut lead = Lead::new(id.clone());
        if self.at_once {
            // What `Lead::from_raw` would insert one by one, in name order (gathered at
            // their full length first: the map is built from them in one go).
            let mut entries = Vec::with_capacity(self.attributes.len());
            for ((c, name), cache) in self.attributes.iter().zip(parsed.iter_mut()) {
                let Some(raw) = row.values[*c].as_deref().filter(|r| !r.trim().is_empty()) else {
                    continue;
                };
                let value = cache
                    .entry(raw)
                    .or_insert_with(|| AttributeValue::parse(name, raw));
                entries.push((name.clone(), value.clone()));
            }
            lead.attributes = entries.into_iter().collect();
        } else {
            // As `Lead::from_raw` builds it, column by column.
            for ((c, name), cache) in self.attributes.iter().zip(parsed.iter_mut()) {
                let Some(raw) = row.values[*c].as_deref() else {
                    continue;
                };
                if name == "email" || DERIVED_ATTRIBUTES.contains(&name.as_str()) {
                    // Derived attributes follow the e-mail: `Lead::set` keeps them right.
                    lead.set(&self.canonical[*c], raw);
                } else if raw.trim().is_empty() {
                    lead.attributes.remove(name);
                } else {
                    let value = cache
                        .entry(raw)
                        .or_insert_with(|| AttributeValue::parse(name, raw));
                    lead.attributes.insert(name.clone(), value.clone());
                }
            }
        }
        Ok(Example {
            lead,
            id,
            line: row.line,
            events: Vec::new(),
            won: label.trim().to_lowercase() == self.won,
            decided_at,
            created_at,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::table::read_table;

    #[test]
    fn outcome_exclusion_ids_and_dates() {
        let table = read_table(
            "lead_id;plan;duration;closed_at;y\n\
             a;pro;100;2026-01-02;yes\n\
             b;free;5;2026-01-03;no\n\
             c;free;7;2026-01-04;\n\
             d;pro;9;yesterday;no\n",
            None,
        )
        .unwrap();
        let outcome: OutcomeSpec = "y=yes".parse().unwrap();
        let now = parse_date("2026-06-01").unwrap();
        let (got, rejected) = examples(&table, &outcome, &["duration".to_string()], now).unwrap();
        assert_eq!(got.len(), 2);
        assert!(got[0].won && !got[1].won);
        assert_eq!(got[0].id, "a");
        assert!(got[0].lead.get("duration").is_none());
        assert!(got[0].lead.get("plan").is_some());
        assert_eq!(got[0].decided_at, parse_date("2026-01-02").unwrap());
        let lines: Vec<u64> = rejected.iter().map(|r| r.line).collect();
        assert_eq!(lines, [4, 5]);
        assert_eq!(rejected[1].field.as_deref(), Some("closed_at"));

        assert_eq!(
            examples(&table, &"won=1".parse().unwrap(), &[], now),
            Err(DatasetError::NoColumn("won".into()))
        );
        assert_eq!(
            examples(&table, &outcome, &["y".to_string()], now),
            Err(DatasetError::OutcomeExcluded("y".into()))
        );
        assert!("y".parse::<OutcomeSpec>().is_err());
    }

    #[test]
    fn a_creation_date_is_read_and_never_an_attribute_and_a_bad_one_names_its_field() {
        let table = read_table(
            "lead_id,created_at,plan,y\n\
             a,2026-01-02,pro,yes\n\
             b,,free,no\n\
             c,soon,free,no\n",
            None,
        )
        .unwrap();
        let now = parse_date("2026-06-01").unwrap();
        let (got, rejected) = examples(&table, &"y=yes".parse().unwrap(), &[], now).unwrap();
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].created_at, parse_date("2026-01-02"));
        assert_eq!(got[1].created_at, None);
        assert_eq!(got[0].decided_at, now);
        assert!(got[0].lead.get("created_at").is_none());
        assert_eq!(rejected.len(), 1);
        assert_eq!(rejected[0].line, 4);
        assert_eq!(rejected[0].field.as_deref(), Some("created_at"));
    }

    #[test]
    fn leads_are_the_leads_lead_from_raw_builds() {
        // Names in and out of order, repeated values, numbers and ranges; then the same
        // with an e-mail (its domain is derived) and two columns of one name.
        for text in [
            "lead_id;Plan;age;Job Title;y\n\
             a;pro;41;Head of Sales;yes\n\
             b;free;;engineer;no\n\
             c;pro;100〜499名;;no\n\
             d; free ;41;Head of  Sales;yes\n",
            "lead_id,plan,Email,Email Domain,PLAN,y\n\
             a,pro,Someone@Example.com,x.com,team,yes\n\
             b,free,bad address,,,no\n\
             c,,someone@customer.jp,y.jp,pro,no\n",
        ] {
            let table = read_table(text, None).unwrap();
            let now = parse_date("2026-06-01").unwrap();
            let (got, rejected) = examples(&table, &"y=yes".parse().unwrap(), &[], now).unwrap();
            assert!(rejected.is_empty());
            assert_eq!(got.len(), table.rows.len());
            for (example, row) in got.iter().zip(&table.rows) {
                let attributes = table
                    .headers
                    .iter()
                    .zip(&row.values)
                    .filter(|(h, _)| !["lead_id", "y"].contains(&h.as_str()))
                    .filter_map(|(h, v)| v.as_deref().map(|v| (h.as_str(), v)));
                let want = Lead::from_raw(example.id.clone(), attributes);
                assert_eq!(example.lead, want, "line {}", row.line);
            }
        }
    }
}
