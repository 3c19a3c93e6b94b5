//! A bearer token checked as a JWT access token (RFC 9068 in shape; RFC 8725's advice): an
//! algorithm from the allow-list (never `none`, never HMAC — the keys are public), the configured
//! issuer, the gateway among the audiences, `exp`/`nbf` within the leeway, `sub` present, and the
//! signature of the issuer's key. Issuer and expiry are read before any key is looked up, so a
//! token from elsewhere or out of date cannot make the gateway fetch keys. The JOSE work is the
//! `jsonwebtoken` crate's.

use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, Header, Validation};
use serde::Deserialize;
use serde_json::{Map, Value};

use super::Settings;
use super::keys::KeySet;

/// Tokens longer than this are refused unread (an RSA-4096 token with many claims is ~2 KiB).
pub const MAX_TOKEN: usize = 8 * 1024;

/// Why a token is refused: said to the caller in `error_description`, so never a secret and
/// never the token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Invalid {
    Malformed,
    TooLong,
    Algorithm(String),
    Issuer,
    Audience,
    Expired,
    NotYetValid,
    NoSubject,
    UnknownKey,
    Signature,
}

impl std::fmt::Display for Invalid {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Invalid::Malformed => f.write_str("the token is not a JWT"),
            Invalid::TooLong => write!(f, "the token is longer than {MAX_TOKEN} bytes"),
            Invalid::Algorithm(a) => write!(f, "the token's algorithm {a:?} is not accepted"),
            Invalid::Issuer => f.write_str("the token is from another issuer"),
            Invalid::Audience => f.write_str("the token is not for this gateway (aud)"),
            Invalid::Expired => f.write_str("the token has expired"),
            Invalid::NotYetValid => f.write_str("the token is not valid yet (nbf)"),
            Invalid::NoSubject => f.write_str("the token names no subject (sub)"),
            Invalid::UnknownKey => f.write_str("the token is signed with a key the issuer does not publish"),
            Invalid::Signature => f.write_str("the token's signature does not verify"),
        }
    }
}

/// What is read of a token before its signature is checked: only to decide whether to check
/// it at all.
pub struct Unverified {
    pub header: Header,
}

#[derive(Deserialize)]
struct Peek {
    iss: Option<String>,
    exp: Option<f64>,
}

/// The header, after the checks that need no key: size, algorithm, issuer, expiry.
pub fn precheck(token: &str, settings: &Settings) -> Result<Unverified, Invalid> {
    if token.len() > MAX_TOKEN {
        return Err(Invalid::TooLong);
    }
    let mut parts = token.split('.');
    let (Some(head), Some(payload), Some(_sig), None) = (parts.next(), parts.next(), parts.next(), parts.next()) else {
        return Err(Invalid::Malformed);
    };
    let header = match jsonwebtoken::decode_header(token) {
        Ok(h) => h,
        // An algorithm the crate does not know (`none` among them) fails the header's parse.
        Err(_) => {
            let alg = URL_SAFE_NO_PAD
                .decode(head)
                .ok()
                .and_then(|h| serde_json::from_slice::<Map<String, Value>>(&h).ok())
                .and_then(|h| h.get("alg").and_then(Value::as_str).map(|a| a.chars().take(16).collect::<String>()));
            return Err(alg.map_or(Invalid::Malformed, Invalid::Algorithm));
        }
    };
    if !settings.algorithms.contains(&header.alg) {
        return Err(Invalid::Algorithm(format!("{:?}", header.alg)));
    }
    let peek: Peek =
        URL_SAFE_NO_PAD.decode(payload).ok().and_then(|p| serde_json::from_slice(&p).ok()).ok_or(Invalid::Malformed)?;
    if peek.iss.as_deref() != Some(settings.issuer.as_str()) {
        return Err(Invalid::Issuer);
    }
    let now = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0.0, |d| d.as_secs_f64());
    if peek.exp.is_some_and(|exp| exp + settings.leeway.as_secs_f64() < now) {
        return Err(Invalid::Expired);
    }
    Ok(Unverified { header })
}

/// The token's claims, once its signature and claims are checked against `keys`.
pub fn verify(
    token: &str,
    unverified: &Unverified,
    keys: &KeySet,
    settings: &Settings,
) -> Result<Map<String, Value>, Invalid> {
    let alg = unverified.header.alg;
    let key = keys.find(unverified.header.kid.as_deref(), alg).ok_or(Invalid::UnknownKey)?;
    let validation = validation(alg, settings);
    let data = jsonwebtoken::decode::<Map<String, Value>>(token, key, &validation).map_err(|e| {
        use jsonwebtoken::errors::ErrorKind as E;
        match e.kind() {
            E::ExpiredSignature => Invalid::Expired,
            E::ImmatureSignature => Invalid::NotYetValid,
            E::InvalidIssuer => Invalid::Issuer,
            E::InvalidAudience => Invalid::Audience,
            E::MissingRequiredClaim(c) if c == "aud" => Invalid::Audience,
            E::MissingRequiredClaim(c) if c == "sub" => Invalid::NoSubject,
            E::MissingRequiredClaim(c) if c == "exp" => Invalid::Expired,
            E::InvalidAlgorithm => Invalid::Algorithm(format!("{alg:?}")),
            E::InvalidSignature | E::Crypto(_) => Invalid::Signature,
            _ => Invalid::Malformed,
        }
    })?;
    if data.claims.get("sub").and_then(Value::as_str).is_none_or(str::is_empty) {
        return Err(Invalid::NoSubject);
    }
    Ok(data.claims)
}

fn validation(alg: Algorithm, settings: &Settings) -> Validation {
    let mut v = Validation::new(alg);
    v.algorithms = vec![alg];
    v.leeway = settings.leeway.as_secs();
    v.validate_nbf = true;
    v.set_issuer(&[&settings.issuer]);
    v.set_audience(&settings.audiences);
    v.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
    v
}
