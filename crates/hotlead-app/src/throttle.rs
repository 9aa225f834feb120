//! The per-client limit of the public routes. The write key of the tracking script and the
//! form endpoint are public, so one sender could flood them; each client address gets a
//! number of requests per minute (calls and forms apart), counted by a
//! [`RequestCounter`](crate::ports::RequestCounter) that every copy of the service shares
//! (DynamoDB on AWS, the process's memory under `hotlead serve`). Past its limit a client
//! is answered 429 with the seconds to wait, and nothing is stored.
//!
//! The counter is given no address: the key is a SHA-256 digest of the address (IPv6: of
//! its /64, the block one subscriber holds) and the route, forgotten a minute after its
//! window. (Not a secret: an IPv4 address can be found again by hashing every address;
//! the tracking script's events keep the visitor's address anyway.)

use std::net::IpAddr;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The length of a counting window, in seconds.
pub const WINDOW_SECONDS: i64 = 60;
/// The largest limit a setting may ask for.
pub const MAX_PER_MINUTE: u32 = 1_000_000;

/// Requests one client address may make per minute (`[client_limits]`); 0 turns a limit
/// off.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientLimits {
    /// Segment calls (`/v1/page`, `/v1/track`, ..., each call of a `/v1/batch` counting):
    /// default 600, a page view every 0.1 s, far more than people behind one address make.
    #[serde(default = "default_calls_per_minute")]
    pub calls_per_minute: u32,
    /// Form submissions (`/v1/forms/{id}`): default 30.
    #[serde(default = "default_forms_per_minute")]
    pub forms_per_minute: u32,
}

fn default_calls_per_minute() -> u32 {
    600
}

fn default_forms_per_minute() -> u32 {
    30
}

impl Default for ClientLimits {
    fn default() -> Self {
        ClientLimits {
            calls_per_minute: default_calls_per_minute(),
            forms_per_minute: default_forms_per_minute(),
        }
    }
}

/// Which of a client's limits a request counts against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    Calls,
    Forms,
}

impl ClientLimits {
    /// The limit of `route`; `None` when it is off.
    pub fn limit(&self, route: Route) -> Option<u32> {
        let limit = match route {
            Route::Calls => self.calls_per_minute,
            Route::Forms => self.forms_per_minute,
        };
        (limit > 0).then_some(limit)
    }
}

/// The counter's key of a client on a route: a digest, so the address itself is never
/// stored. An IPv6 address counts by its /64 (one subscriber's block, whose addresses a
/// sender may rotate through freely); an IPv4-mapped IPv6 address as the IPv4 one.
pub fn client_key(client: IpAddr, route: Route) -> String {
    let block = match client {
        IpAddr::V4(v4) => v4.octets().to_vec(),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => v4.octets().to_vec(),
            None => v6.octets()[..8].to_vec(),
        },
    };
    let route = match route {
        Route::Calls => "calls",
        Route::Forms => "forms",
    };
    let mut digest = Sha256::new();
    digest.update(b"hotlead client limit\0");
    digest.update(&block);
    let digest = digest.finalize();
    let hex: String = digest[..16].iter().map(|b| format!("{b:02x}")).collect();
    format!("{route}:{hex}")
}

/// The end of the window `now` falls in.
pub fn window_end(now: DateTime<Utc>) -> DateTime<Utc> {
    let start = now.timestamp().div_euclid(WINDOW_SECONDS) * WINDOW_SECONDS;
    DateTime::from_timestamp(start + WINDOW_SECONDS, 0).unwrap_or(now)
}

/// Whole seconds from `now` until the window ends (at least 1): the `Retry-After`.
pub fn retry_after(now: DateTime<Utc>) -> u64 {
    let left = (window_end(now) - now).num_milliseconds();
    u64::try_from((left + 999) / 1000).unwrap_or(1).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text).unwrap().to_utc()
    }

    #[test]
    fn windows_are_whole_minutes_and_retry_after_counts_to_their_end() {
        assert_eq!(
            window_end(at("2026-12-01T10:00:00Z")),
            at("2026-12-01T10:01:00Z")
        );
        assert_eq!(
            window_end(at("2026-12-01T10:00:59.900Z")),
            at("2026-12-01T10:01:00Z")
        );
        assert_eq!(retry_after(at("2026-12-01T10:00:59.900Z")), 1);
        assert_eq!(retry_after(at("2026-12-01T10:00:00Z")), 60);
        assert_eq!(retry_after(at("2026-12-01T10:00:30.5Z")), 30);
    }

    #[test]
    fn keys_hide_the_address_and_group_an_ipv6_block() {
        let v4: IpAddr = "203.0.113.7".parse().unwrap();
        let key = client_key(v4, Route::Forms);
        assert!(key.starts_with("forms:") && !key.contains("203"), "{key}");
        assert_eq!(key.len(), "forms:".len() + 32);
        assert_ne!(key, client_key(v4, Route::Calls));
        assert_ne!(
            key,
            client_key("203.0.113.8".parse().unwrap(), Route::Forms)
        );
        // One /64 is one client; the next /64 is another.
        let a = client_key("2001:db8:1:2::1".parse().unwrap(), Route::Calls);
        let b = client_key("2001:db8:1:2:ffff::9".parse().unwrap(), Route::Calls);
        let c = client_key("2001:db8:1:3::1".parse().unwrap(), Route::Calls);
        assert_eq!(a, b);
        assert_ne!(a, c);
        // An IPv4-mapped address is the IPv4 client.
        assert_eq!(
            client_key("::ffff:203.0.113.7".parse().unwrap(), Route::Forms),
            key
        );
    }

    #[test]
    fn zero_turns_a_limit_off() {
        let limits = ClientLimits {
            calls_per_minute: 0,
            forms_per_minute: 5,
        };
        assert_eq!(limits.limit(Route::Calls), None);
        assert_eq!(limits.limit(Route::Forms), Some(5));
        assert_eq!(ClientLimits::default().limit(Route::Calls), Some(600));
    }
}
