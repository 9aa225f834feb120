//! Normalisation of raw form and CRM values before any rule sees them.
//!
//! Japanese web forms send full-width digits and letters (`１，０００名`), ranges
//! (`100〜499名`), amounts in 万/億 (`3,000万円`, `1億5,000万円`), company names with legal
//! suffixes (`株式会社サンプル`) and full-width e-mail addresses. Every value is NFKC-folded
//! first; then the attribute's kind decides what else happens. The raw value is always
//! kept beside the normalised one.

use serde::Serialize;
use unicode_normalization::UnicodeNormalization;

/// A closed, open or half-open numeric interval. A single number is the interval
/// `[n, n]`; `1,000名以上` is `[1000, +inf)`; `100名未満` is `(-inf, 100)`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Interval {
    pub low: Option<Bound>,
    pub high: Option<Bound>,
}

/// One end of an [`Interval`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Bound {
    pub value: f64,
    pub inclusive: bool,
}

impl Interval {
    pub fn exact(value: f64) -> Self {
        let bound = Some(Bound {
            value,
            inclusive: true,
        });
        Interval {
            low: bound,
            high: bound,
        }
    }

    /// The single number this interval stands for, when it is one.
    pub fn as_exact(&self) -> Option<f64> {
        match (self.low, self.high) {
            (Some(low), Some(high)) if low.value == high.value => Some(low.value),
            _ => None,
        }
    }

    /// True when every value in the interval is `>= threshold`.
    pub fn all_at_least(&self, threshold: f64) -> bool {
        self.low.is_some_and(|b| b.value >= threshold)
    }

    /// True when every value in the interval is `> threshold`.
    pub fn all_above(&self, threshold: f64) -> bool {
        self.low
            .is_some_and(|b| b.value > threshold || (b.value == threshold && !b.inclusive))
    }

    /// True when every value in the interval is `<= threshold`.
    pub fn all_at_most(&self, threshold: f64) -> bool {
        self.high.is_some_and(|b| b.value <= threshold)
    }

    /// True when every value in the interval is `< threshold`.
    pub fn all_below(&self, threshold: f64) -> bool {
        self.high
            .is_some_and(|b| b.value < threshold || (b.value == threshold && !b.inclusive))
    }
}

impl Serialize for Interval {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        if let Some(exact) = self.as_exact() {
            return serializer.serialize_f64(exact);
        }
        let mut map = serializer.serialize_map(None)?;
        if let Some(low) = self.low {
            map.serialize_entry(if low.inclusive { "gte" } else { "gt" }, &low.value)?;
        }
        if let Some(high) = self.high {
            map.serialize_entry(if high.inclusive { "lte" } else { "lt" }, &high.value)?;
        }
        map.end()
    }
}

/// How a value of a given attribute is normalised.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ValueKind {
    Email,
    Company,
    Phone,
    /// Free text; if it reads as a quantity, its number is kept too.
    Text,
}

impl ValueKind {
    /// The normaliser used for a canonical attribute name.
    pub fn for_attribute(name: &str) -> Self {
        match name {
            "email" => ValueKind::Email,
            "company" => ValueKind::Company,
            "phone" => ValueKind::Phone,
            _ => ValueKind::Text,
        }
    }
}

/// NFKC, then the dashes and tildes that forms use interchangeably folded to ASCII, then
/// whitespace trimmed and collapsed.
pub fn fold(raw: &str) -> String {
    if raw.is_ascii() {
        return ascii_fold(raw);
    }
    unicode_fold(raw)
}

fn unicode_fold(raw: &str) -> String {
    let nfkc: String = raw.nfkc().collect();
    let mapped: String = nfkc
        .chars()
        .map(|c| match c {
            // wave dash and its look-alikes read as a range mark
            '\u{301C}' | '\u{FF5E}' | '\u{223C}' | '\u{2053}' => '~',
            // hyphen, minus and dash look-alikes
            '\u{2010}' | '\u{2011}' | '\u{2012}' | '\u{2013}' | '\u{2014}' | '\u{2015}'
            | '\u{2212}' | '\u{FE63}' => '-',
            '\u{3001}' => ',',
            c if c.is_whitespace() => ' ',
            c => c,
        })
        .collect();
    mapped.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Normalised text used for comparisons: folded and lower-cased, then NFKC again (a
/// lower-case letter may compose with the mark after it where the capital does not:
/// `J` + caron stays two characters, `ǰ` is one), so that normalised text normalises to
/// itself.
pub fn text(raw: &str) -> String {
    if raw.is_ascii() {
        // NFKC leaves ASCII as it is and no ASCII character is mapped: folding is the
        // whitespace, lower-casing is ASCII's.
        let mut folded = ascii_fold(raw);
        folded.make_ascii_lowercase();
        return folded;
    }
    fold(raw).to_lowercase().nfkc().collect()
}

/// [`fold`] of ASCII text: words separated by one space, without the NFKC pass.
fn ascii_fold(raw: &str) -> String {
    let mut folded = String::with_capacity(raw.len());
    for word in raw.split_whitespace() {
        if !folded.is_empty() {
            folded.push(' ');
        }
        folded.push_str(word);
    }
    folded
}

/// `ＴＥＳＴ＠ＥＸＡＭＰＬＥ．ＣＯＭ` -> `test@example.com`. Returns `None` when the value is not
/// shaped like an address (one `@`, a non-empty local part, a dotted domain). The spaces
/// dropped may leave a letter beside a combining mark (NFKC reads `´` as a space and a
/// combining acute), so the address is composed again: one address, one spelling.
pub fn email(raw: &str) -> Option<String> {
    let folded: String = text(raw).replace(' ', "").nfkc().collect();
    let folded = folded.trim_start_matches("mailto:").to_string();
    let (local, domain) = folded.split_once('@')?;
    let valid = !local.is_empty()
        && !domain.contains('@')
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !domain.contains("..");
    valid.then_some(folded)
}

/// The domain part of a normalised e-mail address.
pub fn email_domain(normalised_email: &str) -> Option<&str> {
    normalised_email.split_once('@').map(|(_, domain)| domain)
}

const COMPANY_PREFIXES_AND_SUFFIXES: &[&str] = &[
    "株式会社",
    "有限会社",
    "合同会社",
    "合資会社",
    "合名会社",
    "一般社団法人",
    "一般財団法人",
    "(株)",
    "(有)",
    "(同)",
];

const COMPANY_LATIN_SUFFIXES: &[&str] = &[
    "co., ltd.",
    "co.,ltd.",
    "co., ltd",
    "co.,ltd",
    "co. ltd.",
    "corporation",
    "corp.",
    "corp",
    "inc.",
    "inc",
    "k.k.",
    "kk",
    "ltd.",
    "ltd",
    "llc",
    "gmbh",
];

/// `株式会社サンプル`, `サンプル(株)`, `Sample Co., Ltd.` -> `サンプル` / `sample`: the name
/// without its legal form, lower-cased, so that spellings of one company compare equal.
pub fn company(raw: &str) -> String {
    let mut name = text(raw);
    for affix in COMPANY_PREFIXES_AND_SUFFIXES {
        name = name.replace(affix, " ");
    }
    let mut name = name.trim().to_string();
    loop {
        let before = name.len();
        for suffix in COMPANY_LATIN_SUFFIXES {
            if let Some(stripped) = name.strip_suffix(suffix)
                && (stripped.is_empty() || stripped.ends_with([' ', ',']))
            {
                name = stripped.trim_end_matches([' ', ',']).to_string();
            }
        }
        if name.len() == before {
            break;
        }
    }
    name.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// `０３ー１２３４ー５６７８` -> `0312345678`, `+81 3-1234-5678` -> `+81312345678`.
pub fn phone(raw: &str) -> String {
    let folded = fold(raw);
    let mut out = String::new();
    for c in folded.chars() {
        if c.is_ascii_digit() || (c == '+' && out.is_empty()) {
            out.push(c);
        }
    }
    out
}

/// Reads a quantity: `１，０００名` -> 1000, `100〜499名` -> [100, 499], `500億円` -> 5e10,
/// `3,000万円` -> 3e7, `1億5,000万円` -> 1.5e8, `1,000名以上` -> [1000, inf),
/// `100名未満` -> (-inf, 100), `5000+` -> [5000, inf). `None` when the text is not a quantity.
pub fn quantity(raw: &str) -> Option<Interval> {
    let mut s = fold(raw).to_lowercase().replace(' ', "");
    for filler in ["約", "およそ", "approx.", "approx", "ca.", "about"] {
        if s.contains(filler) {
            s = s.replace(filler, "");
        }
    }
    if s.is_empty() {
        return None;
    }

    // Open-ended qualifiers.
    for (suffix, make) in OPEN_SUFFIXES {
        if let Some(rest) = s.strip_suffix(suffix) {
            let value = amount(rest, None)?;
            return Some(make(value));
        }
    }
    if let Some(rest) = s.strip_prefix('~') {
        let value = amount(rest, None)?;
        return Some(Interval {
            low: None,
            high: Some(Bound {
                value,
                inclusive: true,
            }),
        });
    }

    // A range `a~b` (also `a-b`, `aからb`); a leading minus is a sign, not a range mark.
    let split = s
        .char_indices()
        .skip(1)
        .find(|&(_, c)| c == '~' || c == '-')
        .map(|(i, c)| (i, c.len_utf8()))
        .or_else(|| s.find("から").map(|i| (i, "から".len())));
    if let Some((at, len)) = split {
        let (left, right) = (&s[..at], &s[at + len..]);
        let high_scale = trailing_scale(right);
        let high = amount(right, None)?;
        let low = amount(left, high_scale)?;
        if low > high {
            return None;
        }
        return Some(Interval {
            low: Some(Bound {
                value: low,
                inclusive: true,
            }),
            high: Some(Bound {
                value: high,
                inclusive: true,
            }),
        });
    }
    amount(&s, None).map(Interval::exact)
}

type OpenEnd = fn(f64) -> Interval;
const OPEN_SUFFIXES: &[(&str, OpenEnd)] = &[
    ("以上", |v| Interval {
        low: Some(Bound {
            value: v,
            inclusive: true,
        }),
        high: None,
    }),
    ("超", |v| Interval {
        low: Some(Bound {
            value: v,
            inclusive: false,
        }),
        high: None,
    }),
    ("+", |v| Interval {
        low: Some(Bound {
            value: v,
            inclusive: true,
        }),
        high: None,
    }),
    ("~", |v| Interval {
        low: Some(Bound {
            value: v,
            inclusive: true,
        }),
        high: None,
    }),
    ("以下", |v| Interval {
        low: None,
        high: Some(Bound {
            value: v,
            inclusive: true,
        }),
    }),
    ("未満", |v| Interval {
        low: None,
        high: Some(Bound {
            value: v,
            inclusive: false,
        }),
    }),
];

const UNIT_WORDS: &[&str] = &[
    "円",
    "名",
    "人",
    "社",
    "件",
    "回",
    "yen",
    "jpy",
    "¥",
    "people",
    "persons",
    "employees",
];

fn scale_of(c: char) -> Option<f64> {
    match c {
        '兆' => Some(1e12),
        '億' => Some(1e8),
        '万' => Some(1e4),
        '千' => Some(1e3),
        '百' => Some(1e2),
        _ => None,
    }
}

/// The scale of the last number in `s` (`499名` -> none, `5億円` -> 1e8), used so that
/// `1〜5億円` reads as 1億〜5億.
fn trailing_scale(s: &str) -> Option<f64> {
    let s = strip_units(s);
    let mut scale = None;
    for c in s.chars().rev() {
        match scale_of(c) {
            Some(f) => scale = Some(scale.unwrap_or(1.0) * f),
            None => break,
        }
    }
    scale
}

fn strip_units(s: &str) -> &str {
    let mut s = s.trim_start_matches(['¥', '\\']);
    loop {
        let before = s.len();
        for unit in UNIT_WORDS {
            s = s.strip_suffix(unit).unwrap_or(s);
        }
        if s.len() == before {
            return s;
        }
    }
}

/// A number with optional Japanese scale characters, compound (`1億5,000万`). A bare
/// number takes `default_scale` when given.
fn amount(s: &str, default_scale: Option<f64>) -> Option<f64> {
    let s = strip_units(s);
    let chars: Vec<char> = s.chars().collect();
    if chars.is_empty() {
        return None;
    }
    let mut total = 0.0;
    let mut i = 0;
    let mut any_scale = false;
    while i < chars.len() {
        let start = i;
        if chars[i] == '-' && i == 0 {
            i += 1;
        }
        let mut digits = String::new();
        while i < chars.len() && (chars[i].is_ascii_digit() || chars[i] == ',' || chars[i] == '.') {
            if chars[i] != ',' {
                digits.push(chars[i]);
            }
            i += 1;
        }
        if digits.is_empty() || !valid_grouping(&chars[start..i]) {
            return None;
        }
        let mut number: f64 = digits.parse().ok()?;
        if chars[start] == '-' {
            number = -number;
        }
        let mut scale = 1.0;
        let mut scaled = false;
        while i < chars.len() {
            match scale_of(chars[i]) {
                Some(f) => {
                    scale *= f;
                    scaled = true;
                    i += 1;
                }
                None => break,
            }
        }
        if !scaled && i < chars.len() {
            return None;
        }
        any_scale |= scaled;
        total += number * scale;
    }
    if !any_scale && let Some(scale) = default_scale {
        total *= scale;
    }
    total.is_finite().then_some(total)
}

/// Thousands separators only in thousands positions: `1,000` yes, `1,00` no.
fn valid_grouping(chars: &[char]) -> bool {
    let text: String = chars.iter().collect();
    let int_part = text.trim_start_matches('-').split('.').next().unwrap_or("");
    if !int_part.contains(',') {
        return text.matches('.').count() <= 1;
    }
    let groups: Vec<&str> = int_part.split(',').collect();
    groups[0].len() <= 3
        && !groups[0].is_empty()
        && groups[1..].iter().all(|g| g.len() == 3)
        && text.matches('.').count() <= 1
}

#[cfg(test)]
mod tests {
    use super::*;

    fn range(low: Option<f64>, high: Option<f64>) -> Interval {
        Interval {
            low: low.map(|value| Bound {
                value,
                inclusive: true,
            }),
            high: high.map(|value| Bound {
                value,
                inclusive: true,
            }),
        }
    }

    #[test]
    fn quantities_from_japanese_forms() {
        let cases: &[(&str, Option<Interval>)] = &[
            ("１，０００名", Some(Interval::exact(1000.0))),
            ("1000", Some(Interval::exact(1000.0))),
            ("約300人", Some(Interval::exact(300.0))),
            ("100〜499名", Some(range(Some(100.0), Some(499.0)))),
            ("100～499名", Some(range(Some(100.0), Some(499.0)))),
            ("1,000-4,999名", Some(range(Some(1000.0), Some(4999.0)))),
            (
                "１００名から４９９名",
                Some(range(Some(100.0), Some(499.0))),
            ),
            ("500億円", Some(Interval::exact(5e10))),
            ("3,000万円", Some(Interval::exact(3e7))),
            ("1億5,000万円", Some(Interval::exact(1.5e8))),
            ("１億５０００万円", Some(Interval::exact(1.5e8))),
            ("5百万円", Some(Interval::exact(5e6))),
            ("1兆円", Some(Interval::exact(1e12))),
            ("1〜5億円", Some(range(Some(1e8), Some(5e8)))),
            ("¥12,000,000", Some(Interval::exact(1.2e7))),
            ("0.5", Some(Interval::exact(0.5))),
            ("-20", Some(Interval::exact(-20.0))),
            ("1,000名以上", Some(range(Some(1000.0), None))),
            ("5000+", Some(range(Some(5000.0), None))),
            ("〜99名", Some(range(None, Some(99.0)))),
            (
                "100名未満",
                Some(Interval {
                    low: None,
                    high: Some(Bound {
                        value: 100.0,
                        inclusive: false,
                    }),
                }),
            ),
            (
                "1000名超",
                Some(Interval {
                    low: Some(Bound {
                        value: 1000.0,
                        inclusive: false,
                    }),
                    high: None,
                }),
            ),
            ("未定", None),
            ("", None),
            ("abc", None),
            ("1,00", None),
            ("500-100", None),
            ("12a", None),
            ("2026-10-01", None),
        ];
        for (raw, expected) in cases {
            assert_eq!(quantity(raw), *expected, "quantity({raw:?})");
        }
    }

    #[test]
    fn emails_fold_full_width_forms_and_case() {
        let cases = [
            ("ＴＥＳＴ＠ＥＸＡＭＰＬＥ．ＣＯＭ", Some("test@example.com")),
            (
                "  Taro.Yamada@Example.co.jp ",
                Some("taro.yamada@example.co.jp"),
            ),
            ("mailto:a@b.jp", Some("a@b.jp")),
            ("no-at-sign.example.com", None),
            ("a@@b.com", None),
            ("a@localhost", None),
            ("@example.com", None),
        ];
        for (raw, expected) in cases {
            assert_eq!(email(raw).as_deref(), expected, "email({raw:?})");
        }
        assert_eq!(email_domain("test@example.com"), Some("example.com"));
    }

    #[test]
    fn a_normalised_address_normalises_to_itself() {
        // Found by the `normalize` fuzz target: NFKC reads `´` as a space and a combining
        // acute; dropping the space left `e` + U+0301, which a second pass composed to
        // `é`, so one address had two spellings (two identity keys).
        let once = email("te\u{b4}st@example.jp").unwrap();
        assert_eq!(once, "t\u{e9}st@example.jp");
        assert_eq!(email(&once).as_deref(), Some(once.as_str()));
        assert_eq!(
            email("t\u{e9}st@example.jp").as_deref(),
            Some(once.as_str())
        );
    }

    #[test]
    fn normalised_text_normalises_to_itself() {
        // `J` + combining caron has no precomposed capital; its lower case `j` + caron
        // composes to `ǰ`. Lower-casing after NFKC left it in two pieces.
        for raw in ["J\u{30c}ob", "W\u{30a}", "Ｊ\u{30c} Inc."] {
            let once = text(raw);
            assert_eq!(text(&once), once, "text({raw:?})");
            let name = company(raw);
            assert_eq!(company(&name), name, "company({raw:?})");
        }
        assert_eq!(text("J\u{30c}"), "\u{1f0}");
        assert_eq!(text("J\u{30c}"), text("\u{1f0}"));
    }

    #[test]
    fn company_names_lose_their_legal_form() {
        let cases = [
            ("株式会社サンプル", "サンプル"),
            ("サンプル株式会社", "サンプル"),
            ("(株)サンプル", "サンプル"),
            ("㈱サンプル", "サンプル"),
            ("サンプル（株）", "サンプル"),
            ("Sample Co., Ltd.", "sample"),
            ("ＳＡＭＰＬＥ Inc.", "sample"),
            ("Acme Corporation", "acme"),
            ("Kinco", "kinco"),
        ];
        for (raw, expected) in cases {
            assert_eq!(company(raw), expected, "company({raw:?})");
        }
    }

    #[test]
    fn phones_keep_digits_and_a_leading_plus() {
        let cases = [
            ("０３ー１２３４ー５６７８", "0312345678"),
            ("03-1234-5678", "0312345678"),
            ("+81 (3) 1234 5678", "+81312345678"),
            ("０３－１２３４－５６７８", "0312345678"),
        ];
        for (raw, expected) in cases {
            assert_eq!(phone(raw), expected, "phone({raw:?})");
        }
    }

    proptest::proptest! {
        /// The ASCII shortcut gives what the NFKC path gives.
        #[test]
        fn ascii_text_folds_as_unicode_text_does(raw in "[\\x00-\\x7F]{0,24}") {
            proptest::prop_assert_eq!(fold(&raw), unicode_fold(&raw));
            let slow: String = unicode_fold(&raw).to_lowercase().nfkc().collect();
            proptest::prop_assert_eq!(text(&raw), slow);
        }
    }

    #[test]
    fn text_folds_width_space_and_case() {
        assert_eq!(text("  ＩＴ・通信 　業 "), "it・通信 業");
        assert_eq!(text("Ｄｉｒｅｃｔｏｒ"), "director");
    }

    #[test]
    fn intervals_compare_by_all_of_their_values() {
        let mid = quantity("100〜499名").unwrap();
        assert!(mid.all_at_least(100.0));
        assert!(!mid.all_at_least(101.0));
        assert!(mid.all_below(500.0));
        assert!(!mid.all_below(499.0));
        assert!(mid.all_at_most(499.0));
        let under = quantity("100名未満").unwrap();
        assert!(under.all_below(100.0));
        assert!(!under.all_at_least(0.0));
        let over = quantity("1000名超").unwrap();
        assert!(over.all_above(1000.0));
        assert!(!over.all_at_most(1e9));
    }
}
