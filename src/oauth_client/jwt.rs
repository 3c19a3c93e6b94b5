//! Client assertions (RFC 7523 §2.2, `private_key_jwt`): a short JWT signed with the client's
//! private key instead of a shared secret. Keys are PKCS#8 PEM (or PKCS#1 for RSA), signed with
//! ring: RS256, ES256, ES384, EdDSA.

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use ring::rand::SystemRandom;
use ring::signature::{self, EcdsaKeyPair, Ed25519KeyPair, KeyPair, RsaKeyPair};

enum Pair {
    Rsa(RsaKeyPair),
    Ecdsa(EcdsaKeyPair),
    Ed25519(Ed25519KeyPair),
}

/// A private key and the algorithm it signs with. No `Debug`: it is a secret.
pub struct SigningKey {
    pair: Pair,
    alg: &'static str,
}

impl SigningKey {
    /// Reads a PEM private key; `alg` picks the algorithm when the key allows several.
    pub fn from_pem(pem: &str, alg: Option<&str>) -> Result<SigningKey, String> {
        let der = pem_body(pem)?;
        let rng = SystemRandom::new();
        let wanted = alg.map(str::to_ascii_uppercase);
        let want = |a: &str| wanted.as_deref().is_none_or(|w| w == a);
        if let Ok(pair) = RsaKeyPair::from_pkcs8(&der).or_else(|_| RsaKeyPair::from_der(&der)) {
            if !want("RS256") {
                return Err(format!("an RSA key signs RS256, not {}", alg.unwrap_or("")));
            }
            return Ok(SigningKey { pair: Pair::Rsa(pair), alg: "RS256" });
        }
        for (name, algorithm) in [
            ("ES256", &signature::ECDSA_P256_SHA256_FIXED_SIGNING),
            ("ES384", &signature::ECDSA_P384_SHA384_FIXED_SIGNING),
        ] {
            if let Ok(pair) = EcdsaKeyPair::from_pkcs8(algorithm, &der, &rng) {
                if !want(name) {
                    return Err(format!("this EC key signs {name}, not {}", alg.unwrap_or("")));
                }
                return Ok(SigningKey { pair: Pair::Ecdsa(pair), alg: name });
            }
        }
        if let Ok(pair) = Ed25519KeyPair::from_pkcs8_maybe_unchecked(&der) {
            if !want("EDDSA") {
                return Err(format!("an Ed25519 key signs EdDSA, not {}", alg.unwrap_or("")));
            }
            return Ok(SigningKey { pair: Pair::Ed25519(pair), alg: "EdDSA" });
        }
        Err("not an RSA, P-256, P-384 or Ed25519 private key in PKCS#8 PEM (convert an `EC PRIVATE KEY` with `openssl pkcs8 -topk8 -nocrypt`)".into())
    }

    pub fn alg(&self) -> &'static str {
        self.alg
    }

    /// A signed JWT with these claims.
    pub fn sign(&self, claims: &serde_json::Value) -> Result<String, String> {
        let header = serde_json::json!({ "alg": self.alg, "typ": "JWT" });
        let input =
            format!("{}.{}", URL_SAFE_NO_PAD.encode(header.to_string()), URL_SAFE_NO_PAD.encode(claims.to_string()));
        let rng = SystemRandom::new();
        let sig = match &self.pair {
            Pair::Rsa(pair) => {
                let mut sig = vec![0; pair.public().modulus_len()];
                pair.sign(&signature::RSA_PKCS1_SHA256, &rng, input.as_bytes(), &mut sig)
                    .map_err(|_| "RSA signing failed")?;
                sig
            }
            Pair::Ecdsa(pair) => {
                pair.sign(&rng, input.as_bytes()).map_err(|_| "ECDSA signing failed")?.as_ref().to_vec()
            }
            Pair::Ed25519(pair) => {
                let _ = pair.public_key();
                pair.sign(input.as_bytes()).as_ref().to_vec()
            }
        };
        Ok(format!("{input}.{}", URL_SAFE_NO_PAD.encode(sig)))
    }
}

/// The DER bytes of the first PEM block.
fn pem_body(pem: &str) -> Result<Vec<u8>, String> {
    let mut inside = false;
    let mut b64 = String::new();
    for line in pem.lines().map(str::trim) {
        if line.starts_with("-----BEGIN ") {
            inside = true;
        } else if line.starts_with("-----END ") {
            break;
        } else if inside && !line.contains(':') {
            b64.push_str(line);
        }
    }
    if b64.is_empty() {
        return Err("no PEM block (-----BEGIN PRIVATE KEY-----) found".into());
    }
    STANDARD.decode(b64).map_err(|_| "the PEM block is not valid base64".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn es256_and_ed25519_sign_verifiably() {
        let rng = SystemRandom::new();
        let doc = EcdsaKeyPair::generate_pkcs8(&signature::ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
        let pem =
            format!("-----BEGIN PRIVATE KEY-----\n{}\n-----END PRIVATE KEY-----\n", STANDARD.encode(doc.as_ref()));
        let key = SigningKey::from_pem(&pem, None).unwrap();
        assert_eq!(key.alg(), "ES256");
        let jwt = key.sign(&serde_json::json!({"iss": "c"})).unwrap();
        let (input, sig) = jwt.rsplit_once('.').unwrap();
        let pair = EcdsaKeyPair::from_pkcs8(&signature::ECDSA_P256_SHA256_FIXED_SIGNING, doc.as_ref(), &rng).unwrap();
        let public = signature::UnparsedPublicKey::new(&signature::ECDSA_P256_SHA256_FIXED, pair.public_key().as_ref());
        public.verify(input.as_bytes(), &URL_SAFE_NO_PAD.decode(sig).unwrap()).unwrap();
        assert!(SigningKey::from_pem(&pem, Some("RS256")).is_err());

        let doc = Ed25519KeyPair::generate_pkcs8(&rng).unwrap();
        let pem =
            format!("-----BEGIN PRIVATE KEY-----\n{}\n-----END PRIVATE KEY-----\n", STANDARD.encode(doc.as_ref()));
        assert_eq!(SigningKey::from_pem(&pem, Some("EdDSA")).unwrap().alg(), "EdDSA");
        assert!(SigningKey::from_pem("nothing", None).is_err());
        assert!(SigningKey::from_pem("-----BEGIN PRIVATE KEY-----\n!!\n-----END PRIVATE KEY-----", None).is_err());
    }
}
