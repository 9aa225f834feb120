//! Where in the rules file a field is: turns a field path (`rules[2].when.gte`) into a
//! line and column, using the spans of the parsed TOML document.

use std::fmt;
use std::ops::Range;

use toml::de::{DeTable, DeValue};

/// One step of a field path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Segment {
    Key(String),
    Index(usize),
}

/// A path to a field of the rules file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FieldPath(pub Vec<Segment>);

impl FieldPath {
    pub fn root() -> Self {
        FieldPath(Vec::new())
    }

    pub fn key(&self, key: &str) -> Self {
        let mut path = self.clone();
        path.0.push(Segment::Key(key.to_string()));
        path
    }

    pub fn index(&self, index: usize) -> Self {
        let mut path = self.clone();
        path.0.push(Segment::Index(index));
        path
    }

    pub(crate) fn from_serde(path: &serde_path_to_error::Path) -> Self {
        use serde_path_to_error::Segment as S;
        FieldPath(
            path.iter()
                .filter_map(|segment| match segment {
                    S::Seq { index } => Some(Segment::Index(*index)),
                    S::Map { key } => Some(Segment::Key(key.clone())),
                    S::Enum { variant } => Some(Segment::Key(variant.clone())),
                    S::Unknown => None,
                })
                .collect(),
        )
    }
}

impl fmt::Display for FieldPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            return f.write_str("(file)");
        }
        for (i, segment) in self.0.iter().enumerate() {
            match segment {
                Segment::Key(key) if i == 0 => write!(f, "{key}")?,
                Segment::Key(key) => write!(f, ".{key}")?,
                Segment::Index(index) => write!(f, "[{index}]")?,
            }
        }
        Ok(())
    }
}

/// The byte span of the deepest item of `path` present in the document: the value itself
/// when the whole path resolves, else the table or array where it stops.
pub fn span_of(document: &DeTable<'_>, whole: Range<usize>, path: &FieldPath) -> Range<usize> {
    let mut span = whole;
    let mut table = Some(document);
    let mut array = None;
    for segment in &path.0 {
        let next = match (segment, table, array) {
            (Segment::Key(key), Some(t), _) => t
                .iter()
                .find(|(k, _)| k.get_ref().as_ref() == key.as_str())
                .map(|(k, v)| (k.span(), v)),
            (Segment::Index(i), _, Some(a)) => {
                let items: &toml::de::DeArray<'_> = a;
                items.get(*i).map(|v| (v.span(), v))
            }
            _ => None,
        };
        let Some((key_span, value)) = next else { break };
        // An `[[rules]]` table's own span can be empty; fall back to its key.
        span = if value.span().is_empty() {
            key_span
        } else {
            value.span()
        };
        (table, array) = match value.get_ref() {
            DeValue::Table(t) => (Some(t), None),
            DeValue::Array(a) => (None, Some(a)),
            _ => (None, None),
        };
    }
    span
}

/// 1-based line and column (in characters) of a byte offset.
pub fn line_column(source: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(source.len());
    let before = source.get(..offset).unwrap_or(source);
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let column = before[line_start..].chars().count() + 1;
    (line, column)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_print_like_the_file_reads() {
        let path = FieldPath::root()
            .key("rules")
            .index(2)
            .key("when")
            .key("gte");
        assert_eq!(path.to_string(), "rules[2].when.gte");
        assert_eq!(FieldPath::root().to_string(), "(file)");
    }

    #[test]
    fn finds_nested_values() {
        let source = "name = \"x\"\n[[rules]]\nid = \"a\"\n[[rules]]\nid = \"b\"\nwhen = { attribute = \"employees\", gte = 10 }\n";
        let document = DeTable::parse(source).unwrap();
        let whole = document.span();
        let document = document.into_inner();
        let path = FieldPath::root()
            .key("rules")
            .index(1)
            .key("when")
            .key("gte");
        let span = span_of(&document, whole.clone(), &path);
        assert_eq!(&source[span.clone()], "10");
        assert_eq!(line_column(source, span.start), (6, 41));
        let missing = FieldPath::root().key("rules").index(1).key("group");
        let span = span_of(&document, whole, &missing);
        assert_eq!(line_column(source, span.start).0, 4);
    }
}
