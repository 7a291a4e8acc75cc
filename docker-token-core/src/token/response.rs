//! The token endpoint's success body (protocol.md §4.3) and its RFC 3339 timestamp.

use std::fmt;
use std::time::{SystemTime, UNIX_EPOCH};

use super::IssuedToken;

/// The JSON body of a successful token response:
/// `{"token":…,"access_token":…,"expires_in":…,"issued_at":…[,"refresh_token":…]}`.
///
/// Both `token` and `access_token` carry the JWT (POST parsers of docker and containerd
/// read only `access_token`); `expires_in` is the token's real lifetime in whole seconds;
/// `issued_at` is RFC 3339 UTC. `Debug` redacts the token and the refresh token.
#[derive(Clone, PartialEq, Eq, serde::Serialize)]
pub struct TokenResponse {
    /// The JWT.
    pub token: String,
    /// The same JWT, under its OAuth2 name.
    pub access_token: String,
    /// Lifetime in seconds (`exp - iat`).
    pub expires_in: u64,
    /// When the token was issued, e.g. `2026-11-22T03:56:56Z`.
    pub issued_at: String,
    /// A refresh token, only when the client asked for one (`offline_token=true`,
    /// `access_type=offline`); omitted from the JSON when `None`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<String>,
}

impl TokenResponse {
    /// Adds a refresh token, builder style.
    #[must_use]
    pub fn with_refresh_token(mut self, refresh_token: impl Into<String>) -> Self {
        self.refresh_token = Some(refresh_token.into());
        self
    }
}

impl TokenResponse {
    /// The JSON body, as `serde_json` would write it (same field order and escaping), in
    /// one allocation. The token endpoint answers every pull and push with this; the
    /// values are nearly always JSON-safe (a JWT, digits, a timestamp), so each is checked
    /// once and copied instead of being escaped byte by byte.
    #[must_use]
    pub fn to_json(&self) -> Vec<u8> {
        let refresh = self.refresh_token.as_deref();
        let mut out = Vec::with_capacity(
            96 + self.token.len()
                + self.access_token.len()
                + self.issued_at.len()
                + refresh.map_or(0, |r| r.len() + 20),
        );
        out.extend_from_slice(br#"{"token":"#);
        let clean = push_json_str(&mut out, &self.token);
        out.extend_from_slice(br#","access_token":"#);
        if clean && self.access_token == self.token {
            // the same JWT twice (always, from `From<IssuedToken>`): checked once
            push_raw_str(&mut out, &self.token);
        } else {
            push_json_str(&mut out, &self.access_token);
        }
        out.extend_from_slice(br#","expires_in":"#);
        out.extend_from_slice(self.expires_in.to_string().as_bytes());
        out.extend_from_slice(br#","issued_at":"#);
        push_json_str(&mut out, &self.issued_at);
        if let Some(r) = refresh {
            out.extend_from_slice(br#","refresh_token":"#);
            push_json_str(&mut out, r);
        }
        out.push(b'}');
        out
    }
}

/// Whether JSON needs an escape for any byte: a control character, `"` or backslash. Folded
/// per 64-byte chunk without an early exit inside it, so that the compiler vectorizes it
/// (a JWT is 1–3 KiB and is checked on every token response).
fn needs_escape(bytes: &[u8]) -> bool {
    bytes.chunks(64).any(|chunk| {
        chunk.iter().fold(false, |bad, &b| {
            bad | (b < 0x20) | (b == b'"') | (b == b'\\')
        })
    })
}

/// Appends `s` as a JSON string: copied when nothing in it needs escaping, else written by
/// `serde_json` (which escapes `"`, backslash and control characters). Returns whether it
/// was copied as is.
fn push_json_str(out: &mut Vec<u8>, s: &str) -> bool {
    if needs_escape(s.as_bytes()) {
        // writing a &str into a Vec cannot fail
        let _ = serde_json::to_writer(&mut *out, s);
        false
    } else {
        push_raw_str(out, s);
        true
    }
}

/// Appends `"s"`; `s` must need no escaping.
fn push_raw_str(out: &mut Vec<u8>, s: &str) {
    out.push(b'"');
    out.extend_from_slice(s.as_bytes());
    out.push(b'"');
}

impl From<IssuedToken> for TokenResponse {
    fn from(issued: IssuedToken) -> Self {
        Self {
            access_token: issued.token.clone(),
            token: issued.token,
            expires_in: issued.expires_in,
            issued_at: rfc3339(issued.issued_at),
            refresh_token: None,
        }
    }
}

impl fmt::Debug for TokenResponse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenResponse")
            .field("token", &"***")
            .field("expires_in", &self.expires_in)
            .field("issued_at", &self.issued_at)
            .field("refresh_token", &self.refresh_token.as_ref().map(|_| "***"))
            .finish_non_exhaustive()
    }
}

/// Formats a time as RFC 3339 UTC with whole seconds: `2026-11-22T03:56:56Z`. Times
/// before 1970 print as the epoch, times after 9999 as `9999-12-31T23:59:59Z`.
///
/// ```
/// use std::time::{Duration, UNIX_EPOCH};
/// let t = UNIX_EPOCH + Duration::from_secs(1_795_319_816);
/// assert_eq!(docker_token_core::token::rfc3339(t), "2026-11-22T03:56:56Z");
/// ```
#[must_use]
pub fn rfc3339(time: SystemTime) -> String {
    const MAX_SECS: u64 = 253_402_300_799; // 9999-12-31T23:59:59Z
    let secs = time
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
        .min(MAX_SECS);
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (year, month, day) = civil_from_days(days);
    // written digit by digit: this runs on every token response, and `format!` costs
    // several times the rest of the function
    let mut out = *b"0000-00-00T00:00:00Z";
    for (at, width, n) in [
        (0, 4, year),
        (5, 2, month),
        (8, 2, day),
        (11, 2, rem / 3600),
        (14, 2, rem % 3600 / 60),
        (17, 2, rem % 60),
    ] {
        let mut n = n;
        for d in out.iter_mut().skip(at).take(width).rev() {
            // n % 10 < 10
            *d = b'0' + (n % 10) as u8;
            n /= 10;
        }
    }
    out.iter().map(|&b| char::from(b)).collect()
}

/// Days since 1970-01-01 to a proleptic Gregorian (year, month, day); H. Hinnant's
/// `civil_from_days`, restricted to non-negative day counts.
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468; // days since 0000-03-01
    let era = z / 146_097;
    let doe = z - era * 146_097; // [0, 146096]
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365; // [0, 399]
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100); // [0, 365], March-based
    let mp = (5 * doy + 2) / 153; // [0, 11]
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn rfc3339_matches_gnu_date() {
        // Expected values printed by `date -u -d @<secs> +%Y-%m-%dT%H:%M:%SZ`.
        let cases = [
            (0, "1970-01-01T00:00:00Z"),
            (951_782_400, "2000-02-29T00:00:00Z"),
            (1_234_567_890, "2009-02-13T23:31:30Z"),
            (1_795_319_816, "2026-11-22T03:56:56Z"),
            (4_107_542_399, "2100-02-28T23:59:59Z"),
            (253_402_300_799, "9999-12-31T23:59:59Z"),
        ];
        for (secs, expected) in cases {
            assert_eq!(
                rfc3339(UNIX_EPOCH + Duration::from_secs(secs)),
                expected,
                "{secs}"
            );
        }
    }

    #[test]
    fn rfc3339_clamps_out_of_range_times() {
        assert_eq!(
            rfc3339(UNIX_EPOCH - Duration::from_secs(5)),
            "1970-01-01T00:00:00Z"
        );
        let far = UNIX_EPOCH + Duration::from_secs(300_000_000_000);
        assert_eq!(rfc3339(far), "9999-12-31T23:59:59Z");
    }

    #[test]
    fn every_day_of_a_leap_cycle_round_trips() {
        // Walk 400 years day by day and check the calendar advances consistently.
        let (mut y, mut m, mut d) = (1970, 1, 1);
        for days in 0..146_097 {
            assert_eq!(civil_from_days(days), (y, m, d));
            let leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
            let month_len = match m {
                2 if leap => 29,
                2 => 28,
                4 | 6 | 9 | 11 => 30,
                _ => 31,
            };
            d += 1;
            if d > month_len {
                d = 1;
                m += 1;
                if m > 12 {
                    m = 1;
                    y += 1;
                }
            }
        }
    }

    #[test]
    fn to_json_is_what_serde_json_writes() {
        let odd = [
            "a.b.c",
            "",
            "quote\" back\\slash",
            "ctl\u{0}\n\t\u{1f}\u{7f}",
            "naïve ✓ \u{2028}",
            "</script>",
        ];
        for s in odd {
            for refresh in [None, Some(s)] {
                let r = TokenResponse {
                    token: s.to_owned(),
                    access_token: format!("{s}x"),
                    expires_in: 18_446_744_073_709_551_615,
                    issued_at: s.to_owned(),
                    refresh_token: refresh.map(str::to_owned),
                };
                assert_eq!(
                    String::from_utf8(r.to_json()).unwrap(),
                    serde_json::to_string(&r).unwrap(),
                    "{s:?}"
                );
            }
        }
    }

    #[test]
    fn serializes_both_token_fields_and_skips_missing_refresh_token() {
        let issued = IssuedToken {
            token: "a.b.c".to_owned(),
            jti: "j".to_owned(),
            issued_at: UNIX_EPOCH + Duration::from_secs(1_795_319_816),
            expires_in: 300,
        };
        let v = serde_json::to_value(TokenResponse::from(issued.clone())).unwrap();
        assert_eq!(
            v,
            serde_json::json!({
                "token": "a.b.c", "access_token": "a.b.c", "expires_in": 300,
                "issued_at": "2026-11-22T03:56:56Z"
            })
        );
        assert!(v["expires_in"].is_u64());
        let with = TokenResponse::from(issued).with_refresh_token("r-secret");
        let v = serde_json::to_value(&with).unwrap();
        assert_eq!(v["refresh_token"], "r-secret");
        let debug = format!("{with:?}");
        assert!(
            !debug.contains("a.b.c") && !debug.contains("r-secret"),
            "{debug}"
        );
    }
}
