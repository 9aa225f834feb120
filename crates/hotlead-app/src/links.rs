//! Signed links to a lead's page: what an alert ends with, so that the rep who reads it
//! (on a phone, in a mail client) opens the lead without a login. A link names the lead
//! by its id only (no personal data), says until when it works and in which language,
//! and carries an HMAC-SHA256 of those under a server secret; changing any of them, or
//! the secret, makes it invalid. Checking a link is pure: the time is given.

use chrono::{DateTime, Duration, Utc};
use hmac::{Hmac, KeyInit, Mac};
use hotlead_core::alert::Language;
use sha2::Sha256;

/// The path of a lead's page: `/l/<lead id>`.
pub const PAGE_PATH: &str = "/l/";
/// Shortest secret accepted, in bytes.
pub const MIN_SECRET_BYTES: usize = 32;
/// How long a link works unless configured otherwise.
pub const DEFAULT_LINK_DAYS: u32 = 14;
/// Longest a link may be configured to work.
pub const MAX_LINK_DAYS: u32 = 90;

/// What a link is for, in what the signature covers: a link made for one purpose is no
/// good for another.
const PURPOSE: &[u8] = b"hotlead lead page v1";
/// The purpose of a suggestion page's link (read-only, for analysts).
const SUGGESTION_PURPOSE: &[u8] = b"hotlead suggestion page v1";
/// The path of a suggestion's read-only page: `/s/<suggestion id>`.
pub const SUGGESTION_PATH: &str = "/s/";
/// The purpose of the ranking page's link (the daily digest's).
const RANKING_PURPOSE: &[u8] = b"hotlead ranking page v1";
/// The path of the ranking page of hot and warm leads: `/r`.
pub const RANKING_PATH: &str = "/r";

/// The server secret links are signed with.
#[derive(Clone)]
pub struct LinkKey(Vec<u8>);

impl std::fmt::Debug for LinkKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LinkKey(..)")
    }
}

impl LinkKey {
    /// A key from secret bytes; `None` when shorter than [`MIN_SECRET_BYTES`].
    pub fn new(secret: &[u8]) -> Option<LinkKey> {
        (secret.len() >= MIN_SECRET_BYTES).then(|| LinkKey(secret.to_vec()))
    }

    /// A new random key of 32 bytes, from the operating system's generator (through two
    /// UUID v4, 244 random bits; the rest fixed by the UUID format).
    pub fn generate() -> LinkKey {
        let mut bytes = Vec::with_capacity(32);
        bytes.extend_from_slice(uuid::Uuid::new_v4().as_bytes());
        bytes.extend_from_slice(uuid::Uuid::new_v4().as_bytes());
        LinkKey(bytes)
    }

    /// The key as text (URL-safe base64), to keep in a file or a secret.
    pub fn to_text(&self) -> String {
        base64url(&self.0)
    }

    /// A key from its text ([`LinkKey::to_text`], surrounding space ignored); `None` when
    /// it is not base64 or shorter than [`MIN_SECRET_BYTES`].
    pub fn from_text(text: &str) -> Option<LinkKey> {
        unbase64url(text.trim()).and_then(|bytes| LinkKey::new(&bytes))
    }

    fn mac(&self, lead_id: &str, expires: i64, language: Language) -> Hmac<Sha256> {
        self.mac_of(
            PURPOSE,
            &[
                lead_id.as_bytes(),
                expires.to_string().as_bytes(),
                language.code().as_bytes(),
            ],
        )
    }

    fn mac_of(&self, purpose: &[u8], parts: &[&[u8]]) -> Hmac<Sha256> {
        // Lengths first: no two different lists of parts read the same.
        let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(&self.0)
            .unwrap_or_else(|_| unreachable!("HMAC takes a key of any length"));
        mac.update(purpose);
        for part in parts {
            mac.update(&(part.len() as u64).to_be_bytes());
            mac.update(part);
        }
        mac
    }
}

/// A lead page link, as its query reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeadLink {
    pub lead_id: String,
    /// Until when it works (whole seconds).
    pub expires: DateTime<Utc>,
    pub language: Language,
    /// The signature, URL-safe base64 without padding.
    pub signature: String,
}

/// Why a link does not open the page. None of them says more than this to the caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkError {
    /// The signature is missing, malformed, or does not match: altered, or signed with
    /// another secret (revoked by rotating it).
    Invalid,
    /// Past its expiry.
    Expired,
}

/// Makes and checks links.
#[derive(Debug, Clone)]
pub struct Links {
    key: LinkKey,
    base_url: String,
    valid_for: Duration,
}

impl Links {
    /// Links to pages under `base_url` (the public address, no trailing slash needed),
    /// working for `days` days.
    pub fn new(key: LinkKey, base_url: &str, days: u32) -> Links {
        Links {
            key,
            base_url: base_url.trim_end_matches('/').to_string(),
            valid_for: Duration::days(i64::from(days.clamp(1, MAX_LINK_DAYS))),
        }
    }

    /// Links to the pages of the public address `config` names, working the days it says.
    pub fn for_config(key: LinkKey, config: &crate::Config) -> Links {
        Links::new(key, config.base_url(), config.link_days())
    }

    /// The link signed at `now`, in `language`.
    pub fn link(&self, lead_id: &str, now: DateTime<Utc>, language: Language) -> LeadLink {
        let expires = now.timestamp() + self.valid_for.num_seconds();
        let signature = base64url(
            &self
                .key
                .mac(lead_id, expires, language)
                .finalize()
                .into_bytes(),
        );
        LeadLink {
            lead_id: lead_id.to_string(),
            expires: DateTime::from_timestamp(expires, 0).unwrap_or(now),
            language,
            signature,
        }
    }

    /// The link's full URL.
    pub fn url(&self, link: &LeadLink) -> String {
        format!(
            "{}{PAGE_PATH}{}?e={}&l={}&s={}",
            self.base_url,
            percent(&link.lead_id),
            link.expires.timestamp(),
            link.language.code(),
            link.signature
        )
    }

    /// Checks a link as the page receives it: the lead id from the path, the rest from
    /// the query (`e`, `l`, `s`). The signature is compared in constant time; an
    /// invalid signature is reported before an expiry, so an altered expiry is invalid.
    pub fn check(
        &self,
        lead_id: &str,
        expires: Option<&str>,
        language: Option<&str>,
        signature: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<LeadLink, LinkError> {
        let expires: i64 = expires
            .and_then(|e| e.parse().ok())
            .ok_or(LinkError::Invalid)?;
        let language = language
            .and_then(Language::from_code)
            .ok_or(LinkError::Invalid)?;
        let signature = signature.ok_or(LinkError::Invalid)?;
        let given = unbase64url(signature).ok_or(LinkError::Invalid)?;
        self.key
            .mac(lead_id, expires, language)
            .verify_slice(&given)
            .map_err(|_| LinkError::Invalid)?;
        let expires_at = DateTime::from_timestamp(expires, 0).ok_or(LinkError::Invalid)?;
        if now >= expires_at {
            return Err(LinkError::Expired);
        }
        Ok(LeadLink {
            lead_id: lead_id.to_string(),
            expires: expires_at,
            language,
            signature: signature.to_string(),
        })
    }
}

impl Links {
    /// The URL of a suggestion's read-only page, signed at `now` (the analysts' note ends
    /// with it): `/s/<id>?e=<expiry>&s=<signature>`.
    pub fn suggestion_url(&self, id: &str, now: DateTime<Utc>) -> String {
        let (expires, signature) = self.sign(SUGGESTION_PURPOSE, Some(id), now);
        format!(
            "{}{SUGGESTION_PATH}{}?e={expires}&s={signature}",
            self.base_url,
            percent(id)
        )
    }

    /// Checks a suggestion page's link (as [`Links::check`] does a lead page's).
    pub fn check_suggestion(
        &self,
        id: &str,
        expires: Option<&str>,
        signature: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<(), LinkError> {
        self.verify(SUGGESTION_PURPOSE, Some(id), expires, signature, now)
    }

    /// The URL of the ranking page of hot and warm leads, signed at `now` (the daily
    /// digest ends with it): `/r?e=<expiry>&s=<signature>`.
    pub fn ranking_url(&self, now: DateTime<Utc>) -> String {
        let (expires, signature) = self.sign(RANKING_PURPOSE, None, now);
        format!("{}{RANKING_PATH}?e={expires}&s={signature}", self.base_url)
    }

    /// Checks the ranking page's link.
    pub fn check_ranking(
        &self,
        expires: Option<&str>,
        signature: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<(), LinkError> {
        self.verify(RANKING_PURPOSE, None, expires, signature, now)
    }

    /// The parts a page link of `purpose` signs: what it names (if anything), then its
    /// expiry.
    fn mac_for(&self, purpose: &[u8], id: Option<&str>, expires: i64) -> Hmac<Sha256> {
        let expires = expires.to_string();
        match id {
            Some(id) => self
                .key
                .mac_of(purpose, &[id.as_bytes(), expires.as_bytes()]),
            None => self.key.mac_of(purpose, &[expires.as_bytes()]),
        }
    }

    /// The expiry and signature of a link of `purpose` made at `now`.
    fn sign(&self, purpose: &[u8], id: Option<&str>, now: DateTime<Utc>) -> (i64, String) {
        let expires = now.timestamp() + self.valid_for.num_seconds();
        let signature = base64url(&self.mac_for(purpose, id, expires).finalize().into_bytes());
        (expires, signature)
    }

    /// Checks a link of `purpose`: the signature first (in constant time), then the expiry.
    fn verify(
        &self,
        purpose: &[u8],
        id: Option<&str>,
        expires: Option<&str>,
        signature: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<(), LinkError> {
        let expires: i64 = expires
            .and_then(|e| e.parse().ok())
            .ok_or(LinkError::Invalid)?;
        let given = signature.and_then(unbase64url).ok_or(LinkError::Invalid)?;
        self.mac_for(purpose, id, expires)
            .verify_slice(&given)
            .map_err(|_| LinkError::Invalid)?;
        if now.timestamp() >= expires {
            return Err(LinkError::Expired);
        }
        Ok(())
    }
}

fn base64url(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

fn unbase64url(text: &str) -> Option<Vec<u8>> {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(text)
        .ok()
}

/// `text` percent-encoded, but for ASCII letters, digits and the bytes of `keep`: a path
/// segment keeps `-._~`, an address in a `mailto:` link `@._+-`.
pub fn percent_encoded(text: &str, keep: &[u8]) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || keep.contains(&byte) {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// A path segment, percent-encoded (lead ids are plain, but nothing here assumes it).
fn percent(segment: &str) -> String {
    percent_encoded(segment, b"-._~")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn links() -> Links {
        Links::new(
            LinkKey::new(&[7u8; 32]).unwrap(),
            "https://leads.example.com/",
            14,
        )
    }

    fn now() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-12-01T09:00:00Z")
            .unwrap()
            .with_timezone(&Utc)
    }

    fn parts(url: &str) -> (String, String, String, String) {
        let rest = url.strip_prefix("https://leads.example.com/l/").unwrap();
        let (id, query) = rest.split_once('?').unwrap();
        let mut e = String::new();
        let mut l = String::new();
        let mut s = String::new();
        for pair in query.split('&') {
            let (k, v) = pair.split_once('=').unwrap();
            match k {
                "e" => e = v.to_string(),
                "l" => l = v.to_string(),
                "s" => s = v.to_string(),
                _ => panic!("{k}"),
            }
        }
        (id.to_string(), e, l, s)
    }

    #[test]
    fn a_link_opens_until_it_expires_and_not_once_altered() {
        let links = links();
        let link = links.link("L-42", now(), Language::Ja);
        let url = links.url(&link);
        let (id, e, l, s) = parts(&url);
        assert_eq!(id, "L-42");
        let check = |id: &str, e: &str, l: &str, s: &str, at| {
            links.check(id, Some(e), Some(l), Some(s), at)
        };
        assert_eq!(check(&id, &e, &l, &s, now()), Ok(link.clone()));
        let later = now() + Duration::days(14);
        assert_eq!(check(&id, &e, &l, &s, later), Err(LinkError::Expired));
        assert_eq!(check("L-43", &e, &l, &s, now()), Err(LinkError::Invalid));
        let longer = (e.parse::<i64>().unwrap() + 86_400).to_string();
        assert_eq!(check(&id, &longer, &l, &s, later), Err(LinkError::Invalid));
        assert_eq!(check(&id, &e, "en", &s, now()), Err(LinkError::Invalid));
        let mut flipped = s.clone().into_bytes();
        flipped[3] = if flipped[3] == b'A' { b'B' } else { b'A' };
        let flipped = String::from_utf8(flipped).unwrap();
        assert_eq!(check(&id, &e, &l, &flipped, now()), Err(LinkError::Invalid));
        assert_eq!(check(&id, &e, &l, &s[..10], now()), Err(LinkError::Invalid));
        assert_eq!(
            links.check(&id, None, Some(&l), Some(&s), now()),
            Err(LinkError::Invalid)
        );
        let other = Links::new(
            LinkKey::new(&[8u8; 32]).unwrap(),
            "https://leads.example.com",
            14,
        );
        assert_eq!(
            other.check(&id, Some(&e), Some(&l), Some(&s), now()),
            Err(LinkError::Invalid),
            "another secret (rotated) revokes every link"
        );
    }

    #[test]
    fn a_suggestion_link_opens_its_page_only_and_not_a_lead_page() {
        let links = links();
        let url = links.suggestion_url("s-20261201-1", now());
        let rest = url.strip_prefix("https://leads.example.com/s/").unwrap();
        let (id, query) = rest.split_once('?').unwrap();
        let (e, s) = query.split_once('&').unwrap();
        let (e, s) = (e.strip_prefix("e=").unwrap(), s.strip_prefix("s=").unwrap());
        assert_eq!(id, "s-20261201-1");
        assert_eq!(links.check_suggestion(id, Some(e), Some(s), now()), Ok(()));
        assert_eq!(
            links.check_suggestion(id, Some(e), Some(s), now() + Duration::days(14)),
            Err(LinkError::Expired)
        );
        assert_eq!(
            links.check_suggestion("s-20261201-2", Some(e), Some(s), now()),
            Err(LinkError::Invalid)
        );
        assert_eq!(
            links.check(id, Some(e), Some("ja"), Some(s), now()),
            Err(LinkError::Invalid),
            "a suggestion's link opens no lead page"
        );
        let lead = links.link("L-1", now(), Language::Ja);
        assert_eq!(
            links.check_suggestion(
                "L-1",
                Some(&lead.expires.timestamp().to_string()),
                Some(&lead.signature),
                now()
            ),
            Err(LinkError::Invalid),
            "a lead page's link opens no suggestion"
        );
    }

    #[test]
    fn a_ranking_link_opens_only_the_ranking() {
        let links = links();
        let url = links.ranking_url(now());
        let query = url.strip_prefix("https://leads.example.com/r?").unwrap();
        let (e, s) = query.split_once('&').unwrap();
        let (e, s) = (e.strip_prefix("e=").unwrap(), s.strip_prefix("s=").unwrap());
        assert_eq!(links.check_ranking(Some(e), Some(s), now()), Ok(()));
        assert_eq!(
            links.check_ranking(Some(e), Some(s), now() + Duration::days(15)),
            Err(LinkError::Expired)
        );
        let later = (e.parse::<i64>().unwrap() + 1).to_string();
        assert_eq!(
            links.check_ranking(Some(&later), Some(s), now()),
            Err(LinkError::Invalid)
        );
        let suggestion = links.suggestion_url("", now());
        let (_, query) = suggestion.split_once('?').unwrap();
        let (se, ss) = query.split_once('&').unwrap();
        assert_eq!(
            links.check_ranking(se.strip_prefix("e="), ss.strip_prefix("s="), now()),
            Err(LinkError::Invalid),
            "another purpose's link opens no ranking"
        );
    }

    #[test]
    fn a_short_secret_is_refused_and_the_key_is_not_printed() {
        assert!(LinkKey::new(&[1u8; 31]).is_none());
        assert_eq!(
            format!("{:?}", LinkKey::new(&[1u8; 32]).unwrap()),
            "LinkKey(..)"
        );
    }

    #[test]
    fn a_generated_key_round_trips_as_text_and_differs_each_time() {
        let key = LinkKey::generate();
        let again = LinkKey::from_text(&format!(" {}\n", key.to_text())).unwrap();
        assert_eq!(again.0, key.0);
        assert_eq!(key.0.len(), 32);
        assert_ne!(LinkKey::generate().0, key.0);
        assert!(LinkKey::from_text("not base64!").is_none());
        assert!(LinkKey::from_text(&base64url(&[1u8; 16])).is_none());
    }
}
