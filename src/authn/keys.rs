//! Verification keys: an issuer's JWKS as fetched, or a static file for the air-gapped case (a
//! PEM public key, a JWK, or a JWK Set). Parsing is the JOSE crate's; what is kept here is which
//! key may verify which token: by `kid` when the token names one, by key type otherwise.
//! Symmetric (`oct`) keys are never taken: a shared secret has no place in a public key set.

use jsonwebtoken::jwk::{AlgorithmParameters, Jwk, JwkSet, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey};

/// The kind of key an algorithm needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Family {
    Rsa,
    Ec,
    Ed,
}

fn family(alg: Algorithm) -> Option<Family> {
    match alg {
        Algorithm::RS256 | Algorithm::RS384 | Algorithm::RS512 => Some(Family::Rsa),
        Algorithm::PS256 | Algorithm::PS384 | Algorithm::PS512 => Some(Family::Rsa),
        Algorithm::ES256 | Algorithm::ES384 => Some(Family::Ec),
        Algorithm::EdDSA => Some(Family::Ed),
        Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512 => None,
    }
}

struct Key {
    kid: Option<String>,
    family: Family,
    /// The algorithm the key set pins it to (`alg` of a JWK), if any.
    alg: Option<Algorithm>,
    key: DecodingKey,
}

/// The keys that may verify tokens.
#[derive(Default)]
pub struct KeySet {
    keys: Vec<Key>,
}

impl std::fmt::Debug for KeySet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kids: Vec<_> = self.keys.iter().map(|k| k.kid.as_deref().unwrap_or("-")).collect();
        f.debug_struct("KeySet").field("kids", &kids).finish()
    }
}

impl KeySet {
    /// A JWK Set document (RFC 7517 §5): the signing keys it holds; keys for encryption, of
    /// unknown types or symmetric are left out.
    pub fn from_jwks(body: &[u8]) -> Result<KeySet, String> {
        let set: JwkSet = serde_json::from_slice(body).map_err(|e| format!("not a JWK Set: {e}"))?;
        Ok(KeySet { keys: set.keys.iter().filter_map(from_jwk).collect() })
    }

    /// A static key file: a PEM public key (RSA, EC or Ed25519), a JWK, or a JWK Set.
    pub fn from_file_text(text: &str) -> Result<KeySet, String> {
        let trimmed = text.trim_start();
        let set = if trimmed.starts_with("-----BEGIN") {
            let pem = trimmed.as_bytes();
            let key = DecodingKey::from_rsa_pem(pem)
                .map(|k| (Family::Rsa, k))
                .or_else(|_| DecodingKey::from_ec_pem(pem).map(|k| (Family::Ec, k)))
                .or_else(|_| DecodingKey::from_ed_pem(pem).map(|k| (Family::Ed, k)))
                .map_err(|_| "not an RSA, EC or Ed25519 public key in PEM".to_owned())?;
            KeySet { keys: vec![Key { kid: None, family: key.0, alg: None, key: key.1 }] }
        } else if trimmed.starts_with('{') {
            let doc: serde_json::Value = serde_json::from_str(trimmed).map_err(|e| format!("not JSON: {e}"))?;
            if doc.get("keys").is_some() {
                KeySet::from_jwks(trimmed.as_bytes())?
            } else {
                let jwk: Jwk = serde_json::from_value(doc).map_err(|e| format!("not a JWK: {e}"))?;
                KeySet { keys: from_jwk(&jwk).into_iter().collect() }
            }
        } else {
            return Err("neither a PEM public key nor a JWK (Set)".into());
        };
        if set.keys.is_empty() {
            return Err("holds no public signing key (RSA, EC or OKP)".into());
        }
        Ok(set)
    }

    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// Whether a key named `kid` is here.
    pub fn has(&self, kid: &str) -> bool {
        self.keys.iter().any(|k| k.kid.as_deref() == Some(kid))
    }

    /// The key for a token signed with `alg` under `kid`: the key of that id (of the right type,
    /// and of that algorithm when the set pins one); else the only key of that type that has no
    /// id (a PEM file names none), whatever the token names.
    pub fn find(&self, kid: Option<&str>, alg: Algorithm) -> Option<&DecodingKey> {
        let fam = family(alg)?;
        let fits = |k: &&Key| k.family == fam && k.alg.is_none_or(|a| a == alg);
        let named = kid.and_then(|kid| self.keys.iter().filter(fits).find(|k| k.kid.as_deref() == Some(kid)));
        named
            .or_else(|| {
                let mut unnamed = self.keys.iter().filter(fits).filter(|k| k.kid.is_none() || kid.is_none());
                let first = unnamed.next();
                // Two keys could verify it and nothing says which: a guess is no verification.
                if unnamed.next().is_some() { None } else { first }
            })
            .map(|k| &k.key)
    }
}

fn from_jwk(jwk: &Jwk) -> Option<Key> {
    if jwk.common.public_key_use.as_ref().is_some_and(|u| *u != PublicKeyUse::Signature) {
        return None;
    }
    let family = match &jwk.algorithm {
        AlgorithmParameters::RSA(_) => Family::Rsa,
        AlgorithmParameters::EllipticCurve(_) => Family::Ec,
        AlgorithmParameters::OctetKeyPair(_) => Family::Ed,
        AlgorithmParameters::OctetKey(_) => return None,
    };
    // A key pinned to an algorithm that signs nothing we verify (`RSA-OAEP`, …) is not for us.
    let alg = match jwk.common.key_algorithm {
        Some(a) => Some(a.to_string().parse::<Algorithm>().ok()?),
        None => None,
    };
    let key = DecodingKey::from_jwk(jwk).ok()?;
    Some(Key { kid: jwk.common.key_id.clone(), family, alg, key })
}

#[cfg(test)]
mod tests {
    use super::*;

    const RSA_JWK: &str = r#"{"kty":"RSA","kid":"r1","use":"sig","alg":"RS256","e":"AQAB",
        "n":"sXchDaQebHnPiGvyDOAT4saGEUetSyo9MKLOoWFsueri23bOdgWp4Dy1WlUzewbgBHod5pcM9H95GQRV3JDXboIRROSBigeC5yjU1hGzHHyXss8UDprecbAYxknTcQkhslANGRUZmdTOQ5qTRsLAt6BTYuyvVRdhS8exSZEy_c4gs_7svlJJQ4H9_NxsiIoLwAEk7-Q3UXERGYw_75IDrGA84-lA_-Ct4eTlXHBIY2EaV7t7LjJaynVJCpkv4LKjTTAumiGUIuQhrNhZLuF_RJLqHpM2kgWFLU7-VTdL1VbC2tejvcI2BlMkEpk1BzBZI0KQB0GaDWFLN-aEAw3vRw"}"#;
    const OCT_JWK: &str = r#"{"kty":"oct","kid":"h1","k":"c2VjcmV0"}"#;

    #[test]
    fn keys_are_found_by_id_and_type_and_symmetric_ones_never() {
        let set = KeySet::from_jwks(format!(r#"{{"keys":[{RSA_JWK},{OCT_JWK}]}}"#).as_bytes()).unwrap();
        assert_eq!(set.len(), 1, "the oct key is left out");
        assert!(set.find(Some("r1"), Algorithm::RS256).is_some());
        assert!(set.find(None, Algorithm::RS256).is_some(), "the only RSA key, for a token naming none");
        assert!(set.find(Some("r1"), Algorithm::RS384).is_none(), "pinned to RS256 by its alg");
        assert!(set.find(Some("r1"), Algorithm::ES256).is_none(), "not an EC key");
        assert!(set.find(Some("r1"), Algorithm::HS256).is_none(), "never a symmetric algorithm");
        assert!(set.find(Some("other"), Algorithm::RS256).is_none(), "a key with an id answers to it only");
        assert!(KeySet::from_file_text(OCT_JWK).is_err());
        assert!(KeySet::from_file_text("hello").is_err());
        assert_eq!(KeySet::from_file_text(RSA_JWK).unwrap().len(), 1);
    }
}
