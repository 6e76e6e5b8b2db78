//! The configured JWT key: read from `jwt.key` or `jwt.key_file` and checked for the
//! configured algorithm, so a bad key stops start-up instead of refusing every token; or
//! the identity provider's key set at `jwt.jwks_url`, fetched when tokens arrive.

use std::sync::Arc;

use jsonwebtoken::DecodingKey;
use rsa::pkcs1::DecodeRsaPublicKey;
use rsa::pkcs8::DecodePublicKey;
use rsa::traits::PublicKeyParts;
use rsa::RsaPublicKey;
use secrecy::ExposeSecret;

use super::jwks::Jwks;
use super::settings::{JwtAlgorithm, JwtSettings};
use crate::domain::{invalid, InvalidValue};

/// Shortest HS256 secret: RFC 7518 §3.2 asks for a key at least as long as the hash.
pub(super) const MIN_HMAC_SECRET_BYTES: usize = 32;
/// Smallest RSA modulus accepted (RFC 7518 §3.3).
const MIN_RSA_BITS: usize = 2048;

/// A key ready for its algorithm.
pub(super) enum Key {
    /// The HS256 shared secret (signs and verifies).
    Hmac(Vec<u8>),
    /// The RS256 or ES256 public key (verifies only).
    Public(DecodingKey),
    /// The identity provider's key set, by `kid` (verifies only).
    Jwks(Arc<Jwks>),
}

/// Reads and checks the configured key; `None` when neither `jwt.key` nor `jwt.key_file`
/// is set. Errors name the key they come from.
pub(super) fn load(jwt: &JwtSettings) -> Result<Option<Key>, InvalidValue> {
    if let Some(url) = &jwt.jwks_url {
        return jwks(jwt, url).map(Some);
    }
    let (name, bytes) = match (&jwt.key, &jwt.key_file) {
        (Some(_), Some(_)) => {
            return Err(invalid("jwt.key", "set jwt.key or jwt.key_file, not both"))
        }
        (None, None) => return Ok(None),
        (Some(key), None) => ("jwt.key", key.expose_secret().as_bytes().to_vec()),
        (None, Some(path)) => {
            let bytes = std::fs::read(path).map_err(|e| {
                invalid(
                    "jwt.key_file",
                    format!("cannot read {}: {e}", path.display()),
                )
            })?;
            ("jwt.key_file", bytes)
        }
    };
    // A secret or PEM written to a file (or a Kubernetes Secret) usually ends in a newline
    // that is no part of the key.
    let bytes = bytes.trim_ascii();
    let key = match jwt.algorithm {
        JwtAlgorithm::Hs256 => {
            if bytes.len() < MIN_HMAC_SECRET_BYTES {
                return Err(invalid(
                    name,
                    format!(
                        "an HS256 secret must be at least {MIN_HMAC_SECRET_BYTES} bytes, this one has {}",
                        bytes.len()
                    ),
                ));
            }
            // A PEM here is almost certainly an identity provider's public key with the
            // algorithm left at HS256: as an HMAC secret anyone could read it and mint
            // tokens, the classic key confusion. Refuse it.
            if bytes.windows(10).any(|w| w == b"-----BEGIN") {
                return Err(invalid(
                    name,
                    "this is a PEM key, not an HS256 secret: set jwt.algorithm = \"RS256\" to verify tokens with a public key",
                ));
            }
            Key::Hmac(bytes.to_vec())
        }
        JwtAlgorithm::Rs256 => Key::Public(rsa_public_key(name, bytes)?),
        JwtAlgorithm::Es256 => Key::Public(ec_public_key(name, bytes)?),
    };
    Ok(Some(key))
}

/// The key set of `jwt.jwks_url`: public keys only, so never with HS256.
fn jwks(jwt: &JwtSettings, url: &str) -> Result<Key, InvalidValue> {
    if jwt.key.is_some() || jwt.key_file.is_some() {
        return Err(invalid(
            "jwt.jwks_url",
            "set one of jwt.key, jwt.key_file and jwt.jwks_url",
        ));
    }
    if jwt.algorithm == JwtAlgorithm::Hs256 {
        return Err(invalid(
            "jwt.algorithm",
            "a key set publishes public keys: set jwt.algorithm = \"RS256\" or \"ES256\" with jwt.jwks_url",
        ));
    }
    if !(url.starts_with("https://") || url.starts_with("http://")) {
        return Err(invalid("jwt.jwks_url", "expected an https:// URL"));
    }
    let set = Jwks::new(url, jwt.algorithm, jwt.jwks_refresh, jwt.jwks_min_refresh)
        .map_err(|why| invalid("jwt.jwks_url", why))?;
    Ok(Key::Jwks(Arc::new(set)))
}

/// Parses an EC public key in PEM (`BEGIN PUBLIC KEY`), for ES256.
fn ec_public_key(name: &'static str, bytes: &[u8]) -> Result<DecodingKey, InvalidValue> {
    let text = std::str::from_utf8(bytes)
        .map_err(|_| invalid(name, "expected an EC public key in PEM, found binary data"))?;
    if text.contains("PRIVATE KEY-----") {
        return Err(invalid(
            name,
            "holds a private key; give verdict only the public key (openssl ec -in key.pem -pubout)",
        ));
    }
    DecodingKey::from_ec_pem(bytes).map_err(|_| {
        invalid(
            name,
            "not a PEM EC public key (expected -----BEGIN PUBLIC KEY----- of a P-256 key)",
        )
    })
}

/// Parses an RSA public key in PEM, either SPKI (`BEGIN PUBLIC KEY`) or PKCS#1
/// (`BEGIN RSA PUBLIC KEY`).
fn rsa_public_key(name: &'static str, bytes: &[u8]) -> Result<DecodingKey, InvalidValue> {
    let text = std::str::from_utf8(bytes)
        .map_err(|_| invalid(name, "expected an RSA public key in PEM, found binary data"))?;
    if text.contains("PRIVATE KEY-----") {
        return Err(invalid(
            name,
            "holds a private key; give verdict only the public key (openssl rsa -in key.pem -pubout)",
        ));
    }
    let key = RsaPublicKey::from_public_key_pem(text)
        .or_else(|_| RsaPublicKey::from_pkcs1_pem(text))
        .map_err(|_| {
            invalid(
                name,
                "not a PEM RSA public key (expected -----BEGIN PUBLIC KEY----- or -----BEGIN RSA PUBLIC KEY-----)",
            )
        })?;
    let bits = key.size() * 8;
    if bits < MIN_RSA_BITS {
        return Err(invalid(
            name,
            format!("the RSA key has {bits} bits; at least {MIN_RSA_BITS} are required"),
        ));
    }
    Ok(DecodingKey::from_rsa_raw_components(
        &key.n().to_bytes_be(),
        &key.e().to_bytes_be(),
    ))
}
