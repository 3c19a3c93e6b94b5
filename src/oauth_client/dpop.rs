//! DPoP (RFC 9449, the MCP DPoP extension SEP-1932): tokens bound to a key of the client's, so
//! that a token that leaks (a log, a proxy, a compromised server) is useless without the key.
//!
//! This module owns the key (ES256, P-256, made with ring), the proofs signed with it (one per
//! request: `htm`, `htu`, a fresh `jti`, `iat`, the server's `nonce` if it gave one, and `ath`,
//! the token's hash, where a token goes along), and the nonces servers hand out (RFC 9449 §8,
//! §9), remembered per origin. When to use DPoP is the credential's decision (`super::OAuth`);
//! where proofs go on the wire is the token endpoint's (`super::token`) and the upstream's
//! (`crate::upstream`).
//!
//! Secrets: the private key never leaves this module but sealed in the credential store
//! (`to_stored`); no `Debug` shows more than the key's thumbprint. A proof holds no secret (the
//! token's hash, not the token) but only proves anything for seconds: it is not logged either.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use http::{HeaderMap, HeaderName, HeaderValue, Uri};
use ring::rand::{SecureRandom, SystemRandom};
use ring::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair};

/// The request header carrying a proof.
pub const DPOP: HeaderName = HeaderName::from_static("dpop");
/// The response header carrying a server's nonce.
pub const DPOP_NONCE: HeaderName = HeaderName::from_static("dpop-nonce");
/// The one algorithm mcpgate signs proofs with.
pub const ALG: &str = "ES256";
/// Longest nonce kept: a server's nonce is a short opaque value (RFC 9449 §8.1), and anything
/// longer would be copied into every proof after it.
pub const MAX_NONCE: usize = 1024;
/// Origins whose nonce one `Nonces` remembers (a credential has two: its authorization servers'
/// and its MCP server's, where a legacy endpoint or two may add origins): a bound on what hostile
/// answers can make it keep.
const MAX_ORIGINS: usize = 16;

/// When mcpgate asks for DPoP-bound tokens.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Mode {
    /// Where the servers ask for it: the MCP server takes DPoP-bound tokens (its challenge uses
    /// the `DPoP` scheme, or its resource metadata lists ES256 in
    /// `dpop_signing_alg_values_supported` or sets `dpop_bound_access_tokens_required`) and the
    /// authorization server lists ES256 in its `dpop_signing_alg_values_supported` (or does not
    /// say). A Bearer token is accepted if that is what the authorization server issues anyway,
    /// unless the resource requires DPoP.
    #[default]
    Auto,
    /// `--dpop`: every token request carries a proof, and a token that comes back unbound
    /// (`token_type` Bearer) is refused rather than sent where it could be replayed.
    Require,
    /// `--no-dpop`: never (an authorization server that advertises DPoP in front of a server
    /// that does not take it).
    Off,
}

/// A DPoP key pair. No `Debug` derive: it holds the private key.
pub struct Key {
    pair: EcdsaKeyPair,
    /// The PKCS#8 document, kept to store the key with the token it binds.
    pkcs8: Vec<u8>,
    /// The public key as a JWK, members in RFC 7638 order (so it is also the thumbprint input).
    jwk: String,
    thumbprint: String,
}

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("dpop::Key").field("jkt", &self.thumbprint).finish_non_exhaustive()
    }
}

impl Drop for Key {
    fn drop(&mut self) {
        // Best effort: this PKCS#8 copy of the private key does not linger in freed memory (ring's
        // key pair and any base64url copy made for the store are not ours to zero).
        for b in self.pkcs8.iter_mut() {
            // SAFETY: a valid, aligned, exclusively borrowed byte.
            unsafe { std::ptr::write_volatile(b, 0) };
        }
    }
}

impl Key {
    /// A new key pair.
    pub fn generate() -> Result<Key, String> {
        let rng = SystemRandom::new();
        let doc = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
            .map_err(|_| "could not generate a DPoP key".to_owned())?;
        Key::from_pkcs8(doc.as_ref())
    }

    fn from_pkcs8(pkcs8: &[u8]) -> Result<Key, String> {
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8, &SystemRandom::new())
            .map_err(|_| "the stored DPoP key is not a P-256 key".to_owned())?;
        // An uncompressed point: 0x04 ‖ x ‖ y, 32 bytes each.
        let point = pair.public_key().as_ref();
        let (x, y) = (B64.encode(&point[1..33]), B64.encode(&point[33..65]));
        let jwk = jwk_p256(&x, &y);
        let thumbprint = thumbprint_of(&jwk);
        Ok(Key { pair, pkcs8: pkcs8.to_vec(), jwk, thumbprint })
    }

    /// The key as the credential store keeps it (sealed with the token it binds).
    pub fn to_stored(&self) -> String {
        B64.encode(&self.pkcs8)
    }

    pub fn from_stored(s: &str) -> Result<Key, String> {
        let der = B64.decode(s.trim()).map_err(|_| "the stored DPoP key is damaged".to_owned())?;
        Key::from_pkcs8(&der)
    }

    /// The RFC 7638 thumbprint (`jkt`) the authorization server binds tokens to.
    pub fn thumbprint(&self) -> &str {
        &self.thumbprint
    }

    /// A proof for one request: `htm` its method, `htu` its URI as `htu` gives it, the server's
    /// `nonce` if it gave one, and the access token it accompanies, if any (hashed into `ath`).
    pub fn proof(&self, htm: &str, htu: &str, nonce: Option<&str>, token: Option<&str>) -> Result<String, String> {
        let rng = SystemRandom::new();
        // 128 random bits: unique per proof, so a server tracking `jti`s sees no replay.
        let mut jti = [0u8; 16];
        rng.fill(&mut jti).map_err(|_| "no randomness for a DPoP proof".to_owned())?;
        let iat = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
        let header = format!(r#"{{"typ":"dpop+jwt","alg":"{ALG}","jwk":{}}}"#, self.jwk);
        let mut claims = serde_json::json!({ "jti": B64.encode(jti), "htm": htm, "htu": htu, "iat": iat });
        if let Some(n) = nonce {
            claims["nonce"] = n.into();
        }
        if let Some(t) = token {
            claims["ath"] = ath(t).into();
        }
        let input = format!("{}.{}", B64.encode(header), B64.encode(claims.to_string()));
        let sig = self.pair.sign(&rng, input.as_bytes()).map_err(|_| "signing a DPoP proof failed".to_owned())?;
        // The FIXED encoding is JWS's ES256 signature as is: r ‖ s.
        Ok(format!("{input}.{}", B64.encode(sig.as_ref())))
    }

    /// `proof` as a header value.
    pub fn header(&self, htm: &str, htu: &str, nonce: Option<&str>, token: Option<&str>) -> Option<HeaderValue> {
        let proof = self.proof(htm, htu, nonce, token).ok()?;
        let mut v = HeaderValue::try_from(proof).ok()?;
        v.set_sensitive(true);
        Some(v)
    }
}

/// The public JWK of a P-256 key, members in the lexicographic order RFC 7638 hashes.
fn jwk_p256(x: &str, y: &str) -> String {
    format!(r#"{{"crv":"P-256","kty":"EC","x":"{x}","y":"{y}"}}"#)
}

fn sha256_b64(bytes: &[u8]) -> String {
    B64.encode(ring::digest::digest(&ring::digest::SHA256, bytes).as_ref())
}

fn thumbprint_of(canonical_jwk: &str) -> String {
    sha256_b64(canonical_jwk.as_bytes())
}

/// The RFC 7638 SHA-256 thumbprint of the P-256 public key (`x`, `y` base64url).
pub fn thumbprint_p256(x: &str, y: &str) -> String {
    thumbprint_of(&jwk_p256(x, y))
}

/// `ath` (RFC 9449 §4.2): base64url(SHA-256(the access token's ASCII)).
pub fn ath(token: &str) -> String {
    sha256_b64(token.as_bytes())
}

/// `scheme://host[:port]` of a URI, normalised: scheme and host lowercase, the default port
/// (80 for `http`, 443 for `https`) dropped, no user info (a URL's password must not travel in
/// a header a server may log). `htu`'s beginning, and the key nonces are kept under: one
/// server, however its URL is written, is one origin.
pub fn origin(uri: &Uri) -> String {
    let scheme = uri.scheme_str().unwrap_or("https").to_ascii_lowercase();
    let host = uri.host().unwrap_or("").to_ascii_lowercase();
    match (scheme.as_str(), uri.port_u16()) {
        ("http", Some(80)) | ("https", Some(443)) | (_, None) => format!("{scheme}://{host}"),
        (_, Some(port)) => format!("{scheme}://{host}:{port}"),
    }
}

/// `htu`: the request's URI without query and fragment (RFC 9449 §4.2), its origin normalised
/// as `origin` gives it (RFC 9449 §4.3 compares `htu` after RFC 3986 §6.2.2–6.2.3
/// normalisation: a server that compares exactly expects the normal form).
pub fn htu(uri: &Uri) -> String {
    // An absolute URI's empty path is `/` (RFC 9110 §4.2.3).
    let path = match uri.path() {
        "" => "/",
        p => p,
    };
    let mut out = origin(uri);
    out.push_str(path);
    out
}

/// An endpoint given as text (from metadata) as a URI a proof can name: without query and
/// fragment, `None` if it is not an absolute URL.
pub fn endpoint(url: &str) -> Option<Uri> {
    let bare = url.split(['#', '?']).next().unwrap_or(url);
    bare.parse::<Uri>().ok().filter(|u| u.scheme().is_some() && u.authority().is_some())
}

/// `htu` of a URL given as text (an endpoint from metadata), `None` if it is not one.
pub fn htu_of(url: &str) -> Option<String> {
    endpoint(url).map(|u| htu(&u))
}

/// The server's `DPoP-Nonce`, if it sent one that may be used: 1 to `MAX_NONCE` characters of
/// RFC 9449's `NQCHAR` (visible ASCII but `"` and `\`). Anything else is ignored, as if not sent.
pub fn nonce_of(headers: &HeaderMap) -> Option<&str> {
    let mut all = headers.get_all(&DPOP_NONCE).iter();
    let v = all.next()?;
    // Two nonces at once: neither is the server's word.
    if all.next().is_some() {
        return None;
    }
    let b = v.as_bytes();
    let fits = !b.is_empty() && b.len() <= MAX_NONCE && b.iter().all(|c| matches!(c, 0x21 | 0x23..=0x5b | 0x5d..=0x7e));
    fits.then(|| v.to_str().ok()).flatten()
}

/// The nonces servers gave, by origin (`origin`): an authorization server's and a resource
/// server's differ (RFC 9449 §8, §9), and each proof to a server carries its latest.
#[derive(Default)]
pub struct Nonces {
    by_origin: Mutex<HashMap<String, String>>,
}

impl Nonces {
    /// The latest nonce of the server at `uri`.
    pub fn get(&self, uri: &Uri) -> Option<String> {
        let map = self.by_origin.lock().unwrap_or_else(|p| p.into_inner());
        if map.is_empty() {
            return None;
        }
        map.get(&origin(uri)).cloned()
    }

    /// Keeps the nonce in `headers` (any answer may bring a new one) as the nonce of the server
    /// at `uri`; whether there was one to keep. Most answers bring none: nothing is allocated
    /// for them.
    pub fn note(&self, uri: &Uri, headers: &HeaderMap) -> bool {
        let Some(nonce) = nonce_of(headers) else { return false };
        let origin = origin(uri);
        let mut map = self.by_origin.lock().unwrap_or_else(|p| p.into_inner());
        if map.len() >= MAX_ORIGINS && !map.contains_key(&origin) {
            map.clear();
        }
        map.insert(origin, nonce.to_owned());
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ring::signature::{ECDSA_P256_SHA256_FIXED, UnparsedPublicKey};
    use serde_json::Value;

    fn part(jwt: &str, i: usize) -> Value {
        serde_json::from_slice(&B64.decode(jwt.split('.').nth(i).unwrap()).unwrap()).unwrap()
    }

    /// What a server does (RFC 9449 §4.3): the signature checks against the `jwk` in the proof.
    fn verify(jwt: &str) -> bool {
        let header = part(jwt, 0);
        let (x, y) = (header["jwk"]["x"].as_str().unwrap(), header["jwk"]["y"].as_str().unwrap());
        let mut point = vec![4u8];
        point.extend(B64.decode(x).unwrap());
        point.extend(B64.decode(y).unwrap());
        let (input, sig) = jwt.rsplit_once('.').unwrap();
        UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, point)
            .verify(input.as_bytes(), &B64.decode(sig).unwrap())
            .is_ok()
    }

    #[test]
    fn a_proof_verifies_against_its_own_jwk_and_says_what_it_must() {
        let key = Key::generate().unwrap();
        let proof = key.proof("POST", "https://mcp.example.com/mcp", Some("n-1"), Some("tok")).unwrap();
        assert!(verify(&proof));
        let header = part(&proof, 0);
        assert_eq!((header["typ"].as_str(), header["alg"].as_str()), (Some("dpop+jwt"), Some("ES256")));
        assert_eq!(header["jwk"]["kty"], "EC");
        assert!(header["jwk"].get("d").is_none(), "the private key never goes out");
        let jwk = &header["jwk"];
        assert_eq!(thumbprint_p256(jwk["x"].as_str().unwrap(), jwk["y"].as_str().unwrap()), key.thumbprint());
        let claims = part(&proof, 1);
        assert_eq!(claims["htm"], "POST");
        assert_eq!(claims["htu"], "https://mcp.example.com/mcp");
        assert_eq!(claims["nonce"], "n-1");
        assert_eq!(claims["ath"], ath("tok"));
        let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs();
        assert!(claims["iat"].as_u64().unwrap().abs_diff(now) < 5);
        // A tampered proof does not verify.
        let mut forged = proof.clone();
        forged.insert(forged.find('.').unwrap() + 1, 'e');
        assert!(!verify(&forged));
        // No nonce and no token: neither claim.
        let bare = part(&key.proof("GET", "https://a/", None, None).unwrap(), 1);
        assert!(bare.get("nonce").is_none() && bare.get("ath").is_none());
        // Fresh every time: a new jti for each proof.
        let again = part(&key.proof("POST", "https://mcp.example.com/mcp", None, None).unwrap(), 1);
        assert_ne!(again["jti"], claims["jti"]);
    }

    #[test]
    fn the_key_survives_the_store_and_shows_no_secret() {
        let key = Key::generate().unwrap();
        let back = Key::from_stored(&key.to_stored()).unwrap();
        assert_eq!(back.thumbprint(), key.thumbprint());
        assert!(verify(&back.proof("POST", "https://a/t", None, None).unwrap()));
        let shown = format!("{key:?}");
        assert!(shown.contains(key.thumbprint()) && !shown.contains(&key.to_stored()), "{shown}");
        // What a leak of it would look like: P-256 PKCS#8 (ring's), base64url.
        assert!(key.to_stored().starts_with("MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQg"));
        assert!(Key::from_stored("not base64!").is_err());
        assert!(Key::from_stored(&B64.encode(b"not a key")).is_err());
    }

    /// RFC 9449's own examples: the `jkt` of the proof key in §4.1 (§6.1's `cnf`) and the `ath`
    /// of §7.1's token.
    #[test]
    fn rfc_9449_vectors() {
        assert_eq!(
            thumbprint_p256(
                "l8tFrhx-34tV3hRICRDY9zCkDlpBhF42UQUfWVAWBFs",
                "9VE4jf_Ok_o64zbTTlcuNJajHmt6v9TDVrU0CdvGRDA"
            ),
            "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I"
        );
        assert_eq!(ath("Kz~8mXK1EalYznwH-LC-1fBAo.4Ljp~zsPE_NeO.gxU"), "fUHyO2r2Z3DZ53EsNrWBb0xWXoaNy59IiKCAqksmQEo");
    }

    #[test]
    fn htu_has_no_query_fragment_or_user_info() {
        let u = |s: &str| s.parse::<Uri>().unwrap();
        assert_eq!(htu(&u("https://mcp.example.com/mcp?session=1")), "https://mcp.example.com/mcp");
        assert_eq!(htu(&u("http://127.0.0.1:3000/messages?sessionId=x")), "http://127.0.0.1:3000/messages");
        assert_eq!(htu(&u("https://user:pw@mcp.example.com:8443/mcp")), "https://mcp.example.com:8443/mcp");
        assert_eq!(htu(&u("https://mcp.example.com")), "https://mcp.example.com/");
        assert_eq!(htu_of("https://as.example.com/token?x=1#frag").as_deref(), Some("https://as.example.com/token"));
        assert_eq!(htu_of("https://as.example.com/token#frag").as_deref(), Some("https://as.example.com/token"));
        assert_eq!(htu_of("/token"), None);
    }

    /// RFC 9449 §4.3 compares `htu` after syntax- and scheme-based normalisation: the host's case
    /// and a default port are not the server's URL, whatever the configuration wrote. The path is
    /// the server's own (case-sensitive, its trailing slash kept).
    #[test]
    fn htu_is_normalised() {
        let u = |s: &str| s.parse::<Uri>().unwrap();
        assert_eq!(htu(&u("HTTPS://MCP.Example.COM:443/mcp")), "https://mcp.example.com/mcp");
        assert_eq!(htu(&u("http://MCP.example.com:80/Mcp/")), "http://mcp.example.com/Mcp/");
        assert_eq!(htu(&u("http://mcp.example.com:443/mcp")), "http://mcp.example.com:443/mcp");
        assert_eq!(htu(&u("https://mcp.example.com:80/mcp")), "https://mcp.example.com:80/mcp");
        assert_eq!(htu(&u("https://User:PW@Host.Example:443")), "https://host.example/");
        assert_eq!(htu(&u("http://[::1]:80/mcp")), "http://[::1]/mcp");
        assert_eq!(htu(&u("http://[::1]:8080/mcp")), "http://[::1]:8080/mcp");
        assert_eq!(htu_of("HTTPS://AS.Example.com:443/token?x").as_deref(), Some("https://as.example.com/token"));
        assert_eq!(origin(&u("HTTPS://u:p@MCP.Example.COM:443/mcp?q")), "https://mcp.example.com");
    }

    #[test]
    fn hostile_nonces_are_ignored() {
        let with = |v: &[u8]| {
            let mut h = HeaderMap::new();
            h.insert(&DPOP_NONCE, HeaderValue::from_bytes(v).unwrap());
            h
        };
        assert_eq!(nonce_of(&with(b"eyJ7S_zG.eyJH0-Z.HX4w-7v")), Some("eyJ7S_zG.eyJH0-Z.HX4w-7v"));
        assert_eq!(nonce_of(&with(&[b'a'; MAX_NONCE])).map(str::len), Some(MAX_NONCE));
        for bad in [&[b'a'; MAX_NONCE + 1][..], b"two words", b"quo\"te", b"back\\slash", b"tab\there", b"\xff\xfe"] {
            assert_eq!(nonce_of(&with(bad)), None, "{:?}", String::from_utf8_lossy(bad));
        }
        assert_eq!(nonce_of(&HeaderMap::new()), None);
        let mut two = with(b"a");
        two.append(&DPOP_NONCE, HeaderValue::from_static("b"));
        assert_eq!(nonce_of(&two), None);

        let u = |s: &str| s.parse::<Uri>().unwrap();
        let (rs, auth) = (u("https://rs/mcp"), u("https://as/token"));
        let nonces = Nonces::default();
        assert!(!nonces.note(&rs, &with(&[b'a'; MAX_NONCE + 1])));
        assert_eq!(nonces.get(&rs), None);
        assert!(nonces.note(&rs, &with(b"rs-1")) && nonces.note(&auth, &with(b"as-1")));
        assert_eq!((nonces.get(&rs).as_deref(), nonces.get(&auth).as_deref()), (Some("rs-1"), Some("as-1")));
        // A bad nonce later leaves the good one in place.
        assert!(!nonces.note(&rs, &with(b"bad nonce")));
        assert_eq!(nonces.get(&rs).as_deref(), Some("rs-1"));
        // Bounded: a flood of origins never grows it past MAX_ORIGINS.
        for i in 0..100 {
            nonces.note(&u(&format!("https://o{i}/")), &with(b"n"));
        }
        assert!(nonces.by_origin.lock().unwrap().len() <= MAX_ORIGINS);
    }

    /// One server is one origin however its URL is written: a nonce it gave at one spelling is the
    /// nonce of every other (case, default port, user info), and never another server's.
    #[test]
    fn nonces_are_kept_by_normalised_origin() {
        let u = |s: &str| s.parse::<Uri>().unwrap();
        let mut h = HeaderMap::new();
        h.insert(&DPOP_NONCE, HeaderValue::from_static("n-1"));
        let nonces = Nonces::default();
        assert!(nonces.note(&u("HTTPS://user:pw@MCP.Example.COM:443/mcp?x=1"), &h));
        for same in ["https://mcp.example.com/mcp", "https://MCP.EXAMPLE.com:443/other", "https://u@mcp.example.com/"] {
            assert_eq!(nonces.get(&u(same)).as_deref(), Some("n-1"), "{same}");
        }
        for other in ["http://mcp.example.com/mcp", "https://mcp.example.com:8443/mcp", "https://as.example.com/"] {
            assert_eq!(nonces.get(&u(other)), None, "{other}");
        }
        assert_eq!(nonces.by_origin.lock().unwrap().keys().collect::<Vec<_>>(), ["https://mcp.example.com"]);
    }
}
