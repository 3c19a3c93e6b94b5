//! A token as a credential source hands it over (the value and, when known, when it expires),
//! and as it is used (`Current`: the ready header and when to renew it). Shared by the sources
//! (`credentials`) and the OAuth client (`oauth_client`), which is one of them.
//! Parses what token commands print: a bare token, or JSON in the shapes `az`, `gcloud` and
//! OAuth token endpoints use; without an expiry field, a JWT's `exp` claim.

use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http::HeaderValue;

use base64::Engine;
use serde_json::Value;

#[derive(Clone, PartialEq, Eq)]
pub struct IssuedToken {
    pub value: String,
    pub expires_at: Option<SystemTime>,
}

impl fmt::Debug for IssuedToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IssuedToken").field("value", &"<redacted>").field("expires_at", &self.expires_at).finish()
    }
}

/// The token in use, as a ready header, and when to renew it.
#[derive(Clone)]
pub(crate) struct Current {
    pub(crate) header: HeaderValue,
    /// When to refresh ahead of expiry (two thirds of the lifetime), if the expiry is known.
    pub(crate) refresh_at: Option<SystemTime>,
    /// After this the token is not used any more: requests wait for a fresh one.
    pub(crate) stale_at: Option<SystemTime>,
}

impl Current {
    /// Not stale yet.
    pub(crate) fn usable(&self) -> bool {
        self.stale_at.is_none_or(|t| SystemTime::now() < t)
    }

    /// A placeholder that is never usable (a stored token that is not a valid header).
    pub(crate) fn invalid() -> Self {
        Current {
            header: HeaderValue::from_static("Bearer -"),
            refresh_at: None,
            stale_at: Some(SystemTime::UNIX_EPOCH),
        }
    }

    pub(crate) fn new(token: &IssuedToken, fetched: SystemTime) -> Result<Self, String> {
        Self::with_scheme("Bearer", token, fetched)
    }

    /// `new`, sent with another authorization scheme (`DPoP` for a DPoP-bound token).
    pub(crate) fn with_scheme(scheme: &str, token: &IssuedToken, fetched: SystemTime) -> Result<Self, String> {
        let mut header = HeaderValue::try_from(format!("{scheme} {}", token.value))
            .map_err(|_| "yields a token that is not a valid header value".to_owned())?;
        header.set_sensitive(true);
        let (refresh_at, stale_at) = match token.expires_at {
            Some(exp) => {
                let life = exp.duration_since(fetched).unwrap_or_default();
                let margin = (life / 10).min(Duration::from_secs(30));
                (Some(fetched + life * 2 / 3), Some(exp - margin))
            }
            None => (None, None),
        };
        Ok(Current { header, refresh_at, stale_at })
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TokenParseError {
    #[error("printed nothing on stdout")]
    Empty,
    #[error("printed JSON without an accessToken or access_token string")]
    NoTokenField,
    #[error("printed JSON that does not parse: {0}")]
    BadJson(String),
    #[error("printed more than one word; expected a bare token or a JSON object")]
    NotAToken,
    #[error("printed a token with characters not allowed in an HTTP header")]
    BadCharacters,
}

pub fn parse_command_output(stdout: &str, now: SystemTime) -> Result<IssuedToken, TokenParseError> {
    let text = stdout.trim();
    if text.is_empty() {
        return Err(TokenParseError::Empty);
    }
    let token = if text.starts_with('{') {
        let v: Value = serde_json::from_str(text).map_err(|e| TokenParseError::BadJson(e.to_string()))?;
        let value = ["accessToken", "access_token", "token"]
            .iter()
            .find_map(|k| v.get(*k).and_then(Value::as_str))
            .ok_or(TokenParseError::NoTokenField)?
            .to_owned();
        let expires_at = expiry_from_json(&v, now);
        IssuedToken { value, expires_at }
    } else {
        if text.split_whitespace().nth(1).is_some() {
            return Err(TokenParseError::NotAToken);
        }
        IssuedToken { value: text.to_owned(), expires_at: None }
    };
    finish(token)
}

/// A token read from a file or an environment variable (an optional `Bearer ` prefix is dropped).
pub fn from_plain(text: &str) -> Result<IssuedToken, TokenParseError> {
    let text = text.trim();
    let text = text.strip_prefix("Bearer ").or_else(|| text.strip_prefix("bearer ")).unwrap_or(text).trim();
    if text.is_empty() {
        return Err(TokenParseError::Empty);
    }
    if text.split_whitespace().nth(1).is_some() {
        return Err(TokenParseError::NotAToken);
    }
    finish(IssuedToken { value: text.to_owned(), expires_at: None })
}

fn finish(mut token: IssuedToken) -> Result<IssuedToken, TokenParseError> {
    if !token.value.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(TokenParseError::BadCharacters);
    }
    if token.expires_at.is_none() {
        token.expires_at = jwt_expiry(&token.value);
    }
    Ok(token)
}

fn expiry_from_json(v: &Value, now: SystemTime) -> Option<SystemTime> {
    let number =
        |k: &str| v.get(k).and_then(|x| x.as_f64().or_else(|| x.as_str().and_then(|s| s.trim().parse::<f64>().ok())));
    if let Some(secs) = number("expires_in").or_else(|| number("expiresIn")) {
        return (secs >= 0.0).then(|| now + Duration::from_secs_f64(secs));
    }
    for key in ["expires_at", "expiresAt", "expires_on", "expiresOn", "expiry", "expiration"] {
        if let Some(n) = number(key) {
            return epoch(n);
        }
        if let Some(s) = v.get(key).and_then(Value::as_str)
            && let Some(t) = parse_datetime(s)
        {
            return Some(t);
        }
    }
    None
}

/// Epoch seconds, or milliseconds when the number is too large to be seconds.
fn epoch(n: f64) -> Option<SystemTime> {
    if !n.is_finite() || n <= 0.0 {
        return None;
    }
    let secs = if n > 1e11 { n / 1000.0 } else { n };
    Some(UNIX_EPOCH + Duration::from_secs_f64(secs))
}

// RFC 3339 both ways, on Howard Hinnant's day-count algorithms: mcpgate's one copy of a calendar
// (HTTP dates are httpdate's, which has no RFC 3339 and no parts to build one from). No crate for
// these two functions: the leanest that reads offsets, jiff 1.0 with default features off (no
// time-zone data), is about 111,000 lines in two crates, 11 s of CPU in a clean debug build, and
// made a stripped release binary that parses and prints one timestamp 242 KB larger (2.4% of
// mcpgate's) — for some 40 lines here (docs/ARCHITECTURE.md, Dependencies). A time without an
// offset (`az`'s local `expiresOn`) needs the system's time-zone rules either way: `mktime`.

/// `2026-12-01T20:02:27Z`: when a token expires, as `mcpgate status` prints it.
pub fn rfc3339(t: SystemTime) -> String {
    let secs = t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let (y, m, d) = civil_from_days((secs / 86_400) as i64);
    let rem = secs % 86_400;
    format!("{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z", rem / 3600, rem % 3600 / 60, rem % 60)
}

/// `2026-12-01T20:02:27.123Z`: with milliseconds (the audit trail's times).
pub fn rfc3339_millis(t: SystemTime) -> String {
    let whole = rfc3339(t);
    let millis = t.duration_since(UNIX_EPOCH).map_or(0, |d| d.subsec_millis());
    format!("{}.{millis:03}Z", whole.trim_end_matches('Z'))
}

/// `YYYY-MM-DD[T ]HH:MM:SS[.frac][Z|±HH:MM]`; without a zone it is local time (as `az` prints it).
pub fn parse_datetime(s: &str) -> Option<SystemTime> {
    let s = s.trim();
    let b = s.as_bytes();
    if b.len() < 19
        || b[4] != b'-'
        || b[7] != b'-'
        || !(b[10] == b'T' || b[10] == b' ')
        || b[13] != b':'
        || b[16] != b':'
    {
        return None;
    }
    let num = |r: std::ops::Range<usize>| s.get(r)?.parse::<i64>().ok();
    let (y, mo, d, h, mi, sec) = (num(0..4)?, num(5..7)?, num(8..10)?, num(11..13)?, num(14..16)?, num(17..19)?);
    let mut rest = &s[19..];
    if let Some(r) = rest.strip_prefix('.') {
        let digits = r.bytes().take_while(u8::is_ascii_digit).count();
        rest = &r[digits..];
    }
    let offset = match rest {
        "" => None,
        "Z" | "z" => Some(0),
        _ => {
            let sign = match rest.as_bytes()[0] {
                b'+' => 1,
                b'-' => -1,
                _ => return None,
            };
            let hm = rest[1..].replace(':', "");
            if hm.len() != 4 {
                return None;
            }
            let oh: i64 = hm[..2].parse().ok()?;
            let om: i64 = hm[2..].parse().ok()?;
            Some(sign * (oh * 3600 + om * 60))
        }
    };
    let secs = match offset {
        Some(off) => days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + sec - off,
        None => local_to_epoch(y, mo, d, h, mi, sec)?,
    };
    u64::try_from(secs).ok().map(|s| UNIX_EPOCH + Duration::from_secs(s))
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Hinnant's `days_from_civil`).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (m + if m > 2 { -3 } else { 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The inverse: days since 1970-01-01 to (year, month, day) (Hinnant's `civil_from_days`).
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(month <= 2), month, day)
}

/// Local wall-clock time to epoch seconds, through the C library's time-zone rules.
fn local_to_epoch(y: i64, mo: i64, d: i64, h: i64, mi: i64, s: i64) -> Option<i64> {
    // SAFETY: `tm` is plain data, zero is a valid value for every field, and mktime only reads
    // and normalizes the struct we own.
    unsafe {
        let mut tm: libc::tm = std::mem::zeroed();
        tm.tm_year = i32::try_from(y - 1900).ok()?;
        tm.tm_mon = i32::try_from(mo - 1).ok()?;
        tm.tm_mday = i32::try_from(d).ok()?;
        tm.tm_hour = i32::try_from(h).ok()?;
        tm.tm_min = i32::try_from(mi).ok()?;
        tm.tm_sec = i32::try_from(s).ok()?;
        tm.tm_isdst = -1;
        let t = libc::mktime(&mut tm);
        (t != -1).then_some(t)
    }
}

/// The `exp` claim of a JWT, read without verifying it: only to know when to refresh.
pub fn jwt_expiry(token: &str) -> Option<SystemTime> {
    let mut parts = token.split('.');
    let (_, payload, _) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() {
        return None;
    }
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(payload.trim_end_matches('=')).ok()?;
    let claims: Value = serde_json::from_slice(&bytes).ok()?;
    epoch(claims.get("exp")?.as_f64()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(secs)
    }

    #[test]
    fn shapes() {
        let now = at(1_000);
        let t = parse_command_output("abc\n", now).unwrap();
        assert_eq!((t.value.as_str(), t.expires_at), ("abc", None));
        let t = parse_command_output(r#"{"access_token":"x","expires_in":60}"#, now).unwrap();
        assert_eq!(t.expires_at, Some(at(1_060)));
        let t = parse_command_output(r#"{"accessToken":"x","expires_on":"2000"}"#, now).unwrap();
        assert_eq!(t.expires_at, Some(at(2_000)));
        let t = parse_command_output(r#"{"accessToken":"x","expiresOn":"2024-01-02T03:04:05Z"}"#, now).unwrap();
        assert_eq!(t.expires_at, Some(at(1_704_164_645)));
        let t = parse_command_output(r#"{"accessToken":"x","expires_at":1704164645000}"#, now).unwrap();
        assert_eq!(t.expires_at, Some(at(1_704_164_645)));
        let t = parse_command_output(r#"{"accessToken":"x","expiresOn":"2024-01-02 03:04:05.123456"}"#, now).unwrap();
        assert!(t.expires_at.is_some(), "local time parses");
        assert_eq!(parse_command_output("  ", now), Err(TokenParseError::Empty));
        assert_eq!(parse_command_output("not a token", now), Err(TokenParseError::NotAToken));
        assert_eq!(parse_command_output(r#"{"token_type":"x"}"#, now), Err(TokenParseError::NoTokenField));
        assert!(matches!(parse_command_output("{", now), Err(TokenParseError::BadJson(_))));
    }

    #[test]
    fn rfc3339_both_ways() {
        assert_eq!(rfc3339(UNIX_EPOCH), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(at(1_704_164_645)), "2024-01-02T03:04:05Z");
        assert_eq!(rfc3339(at(951_782_400)), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339(at(1_798_761_599)), "2026-12-31T23:59:59Z");
        assert_eq!(parse_datetime("2024-01-02T05:04:05+02:00"), Some(at(1_704_164_645)));
        assert_eq!(parse_datetime("2024-01-02T03:04:05.5z"), Some(at(1_704_164_645)));
        // Every day from 1970 to 2100 and back, leap days and century years included.
        for day in 0..47_482u64 {
            let t = at(day * 86_400 + day % 86_400);
            assert_eq!(parse_datetime(&rfc3339(t)), Some(t), "{}", rfc3339(t));
        }
    }

    #[test]
    fn jwt_exp() {
        let b64 = |s: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s);
        let jwt = format!("{}.{}.sig", b64(r#"{"alg":"none"}"#), b64(r#"{"exp":1700000000}"#));
        let t = parse_command_output(&jwt, at(0)).unwrap();
        assert_eq!(t.expires_at, Some(at(1_700_000_000)));
        assert_eq!(jwt_expiry("a.b"), None);
        assert_eq!(jwt_expiry("a.!!!.c"), None);
    }

    #[test]
    fn plain_and_debug() {
        let t = from_plain("Bearer s3cret\n").unwrap();
        assert_eq!(t.value, "s3cret");
        assert!(!format!("{t:?}").contains("s3cret"));
        assert!(from_plain("a\u{7}b").is_err());
    }
}
