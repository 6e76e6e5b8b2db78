//! `jwt.jwks_url` against a local key-set server: keys by `kid`, rotation, rate-limited
//! and periodic refreshes, fetch failures, and the attack set of tests.rs aimed at a key
//! set.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use axum::Router;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jsonwebtoken::jwk::{
    AlgorithmParameters, Jwk, JwkSet, OctetKeyParameters, OctetKeyType, PublicKeyUse,
    RSAKeyParameters, RSAKeyType,
};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use rsa::pkcs8::DecodePublicKey;
use rsa::traits::PublicKeyParts;
use serde_json::{json, Map, Value};

use super::settings::{JwtAlgorithm, JwtSettings};
use super::*;

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/jwt")
            .join(name),
    )
    .expect("fixture")
}

fn rsa_key(file: &str) -> EncodingKey {
    EncodingKey::from_rsa_pem(&fixture(file)).expect("RSA private key")
}

fn ec_key() -> EncodingKey {
    EncodingKey::from_ec_pem(&fixture("ec-private.pem")).expect("EC private key")
}

/// The public JWK of a signing key, as an identity provider publishes it.
fn public_jwk(key: &EncodingKey, alg: Algorithm, kid: &str) -> Jwk {
    let mut jwk = Jwk::from_encoding_key(key, alg).expect("JWK");
    jwk.common.key_id = Some(kid.to_owned());
    jwk.common.public_key_use = Some(PublicKeyUse::Signature);
    jwk
}

/// What the local identity provider serves: a key set, or a failure.
#[derive(Clone)]
enum Serve {
    Keys(Vec<Jwk>),
    Status(StatusCode),
    Body(&'static str),
}

#[derive(Clone)]
struct Idp {
    serve: Arc<Mutex<Serve>>,
    hits: Arc<AtomicUsize>,
}

impl Idp {
    async fn start(keys: Vec<Jwk>) -> (Idp, String) {
        let idp = Idp {
            serve: Arc::new(Mutex::new(Serve::Keys(keys))),
            hits: Arc::new(AtomicUsize::new(0)),
        };
        let app = Router::new()
            .route("/jwks.json", get(jwks))
            .with_state(idp.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr: SocketAddr = listener.local_addr().expect("addr");
        tokio::spawn(async move { axum::serve(listener, app).await });
        (idp, format!("http://{addr}/jwks.json"))
    }

    fn serve(&self, what: Serve) {
        *self.serve.lock().expect("lock") = what;
    }

    fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }
}

async fn jwks(State(idp): State<Idp>) -> axum::response::Response {
    use axum::response::IntoResponse;
    idp.hits.fetch_add(1, Ordering::SeqCst);
    let serve = idp.serve.lock().expect("lock").clone();
    match serve {
        Serve::Keys(keys) => axum::Json(JwkSet { keys }).into_response(),
        Serve::Status(status) => status.into_response(),
        Serve::Body(body) => body.into_response(),
    }
}

fn settings(url: &str, algorithm: JwtAlgorithm, refresh: u64, min_refresh: u64) -> JwtSettings {
    JwtSettings {
        algorithm,
        jwks_url: Some(url.to_owned()),
        jwks_refresh: Duration::from_secs(refresh),
        jwks_min_refresh: Duration::from_secs(min_refresh),
        issuer: "https://idp.example".into(),
        audience: "verdict".into(),
        ..JwtSettings::default()
    }
}

fn verifier(settings: &JwtSettings) -> Verifier {
    Verifier::from_config(settings)
        .expect("valid settings")
        .expect("a key set is configured")
}

fn claims(changes: Value) -> Map<String, Value> {
    let now = chrono::Utc::now().timestamp();
    let mut c = json!({"sub": "alice", "role": "release-manager", "iss": "https://idp.example",
                       "aud": "verdict", "iat": now, "exp": now + 600})
    .as_object()
    .cloned()
    .unwrap_or_default();
    for (k, v) in changes.as_object().cloned().unwrap_or_default() {
        c.insert(k, v);
    }
    c
}

fn token(alg: Algorithm, kid: Option<&str>, key: &EncodingKey) -> String {
    let mut header = Header::new(alg);
    header.kid = kid.map(str::to_owned);
    jsonwebtoken::encode(&header, &claims(json!({})), key).expect("signing")
}

#[tokio::test]
async fn tokens_verify_by_kid_and_keys_rotate() {
    let a = rsa_key("rsa-private.pem");
    let b = rsa_key("other-rsa-private.pem");
    let (idp, url) = Idp::start(vec![public_jwk(&a, Algorithm::RS256, "a")]).await;
    let v = verifier(&settings(&url, JwtAlgorithm::Rs256, 3600, 1));
    assert_eq!(idp.hits(), 0, "nothing is fetched before a token arrives");

    let principal = v
        .verify(&token(Algorithm::RS256, Some("a"), &a))
        .await
        .expect("valid");
    assert_eq!(principal.subject, "alice");
    assert_eq!(principal.role, Role::ReleaseManager);
    assert_eq!(idp.hits(), 1);
    // Held keys verify without fetching again.
    v.verify(&token(Algorithm::RS256, Some("a"), &a))
        .await
        .expect("valid");
    assert_eq!(idp.hits(), 1);

    // The identity provider rotates to key b. Within jwks_min_refresh of the last fetch an
    // unknown kid is refused without asking it again …
    idp.serve(Serve::Keys(vec![public_jwk(&b, Algorithm::RS256, "b")]));
    let with_b = token(Algorithm::RS256, Some("b"), &b);
    assert_eq!(v.verify(&with_b).await, Err(AuthError::UnknownKey));
    assert_eq!(idp.hits(), 1);
    // … and after it, the unknown kid fetches the set, which now holds b.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(v.verify(&with_b).await.expect("rotated").subject, "alice");
    assert_eq!(idp.hits(), 2);
    // a left the set with that fetch: its tokens are refused from now on.
    let with_a = token(Algorithm::RS256, Some("a"), &a);
    assert_eq!(v.verify(&with_a).await, Err(AuthError::UnknownKey));
    // b's key under a's kid is no forgery that passes either.
    let forged = token(Algorithm::RS256, Some("b"), &a);
    assert_eq!(v.verify(&forged).await, Err(AuthError::BadSignature));
}

#[tokio::test]
async fn made_up_kids_fetch_at_most_once_per_min_refresh() {
    let a = rsa_key("rsa-private.pem");
    let (idp, url) = Idp::start(vec![public_jwk(&a, Algorithm::RS256, "a")]).await;
    let v = verifier(&settings(&url, JwtAlgorithm::Rs256, 3600, 60));
    v.verify(&token(Algorithm::RS256, Some("a"), &a))
        .await
        .expect("valid");
    let mut calls = Vec::new();
    for i in 0..50 {
        let v = v.clone();
        let t = token(Algorithm::RS256, Some(&format!("made-up-{i}")), &a);
        calls.push(tokio::spawn(async move { v.verify(&t).await }));
    }
    for call in calls {
        assert_eq!(call.await.expect("task"), Err(AuthError::UnknownKey));
    }
    assert_eq!(idp.hits(), 1, "50 unknown kids asked the identity provider");

    // Concurrent first tokens share one fetch too.
    let (idp, url) = Idp::start(vec![public_jwk(&a, Algorithm::RS256, "a")]).await;
    let v = verifier(&settings(&url, JwtAlgorithm::Rs256, 3600, 60));
    let mut calls = Vec::new();
    for _ in 0..20 {
        let v = v.clone();
        let t = token(Algorithm::RS256, Some("a"), &a);
        calls.push(tokio::spawn(async move { v.verify(&t).await }));
    }
    for call in calls {
        assert!(call.await.expect("task").is_ok());
    }
    assert_eq!(idp.hits(), 1);
}

#[tokio::test]
async fn the_set_is_refreshed_periodically_and_revoked_keys_stop_verifying() {
    let a = rsa_key("rsa-private.pem");
    let b = rsa_key("other-rsa-private.pem");
    let (idp, url) = Idp::start(vec![public_jwk(&a, Algorithm::RS256, "a")]).await;
    let v = verifier(&settings(&url, JwtAlgorithm::Rs256, 1, 1));
    let with_a = token(Algorithm::RS256, Some("a"), &a);
    v.verify(&with_a).await.expect("valid");
    // a is revoked: the set now holds b only.
    idp.serve(Serve::Keys(vec![public_jwk(&b, Algorithm::RS256, "b")]));
    tokio::time::sleep(Duration::from_millis(1100)).await;
    // The set is stale: the held key still answers this call, and the set is fetched
    // again in the background …
    v.verify(&with_a).await.expect("served while refreshing");
    for _ in 0..50 {
        if idp.hits() >= 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(idp.hits(), 2, "a stale set is fetched again");
    tokio::time::sleep(Duration::from_millis(100)).await;
    // … after which a's tokens are refused.
    assert_eq!(v.verify(&with_a).await, Err(AuthError::UnknownKey));
}

#[tokio::test]
async fn fetch_failures_let_nothing_in_and_keep_the_keys_held() {
    let a = rsa_key("rsa-private.pem");
    let with_a = token(Algorithm::RS256, Some("a"), &a);

    // Nothing listens at the URL.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port");
    let v = verifier(&settings(
        &format!("http://127.0.0.1:{port}/jwks.json"),
        JwtAlgorithm::Rs256,
        3600,
        1,
    ));
    assert!(matches!(
        v.verify(&with_a).await,
        Err(AuthError::KeysUnavailable(_))
    ));

    // An error status, a body that is no key set, a set without a usable key.
    let (idp, url) = Idp::start(vec![]).await;
    for serve in [
        Serve::Status(StatusCode::INTERNAL_SERVER_ERROR),
        Serve::Body("<html>login</html>"),
        Serve::Keys(vec![]),
    ] {
        idp.serve(serve);
        let v = verifier(&settings(&url, JwtAlgorithm::Rs256, 3600, 1));
        let err = v.verify(&with_a).await.expect_err("no keys");
        assert!(matches!(err, AuthError::KeysUnavailable(_)), "{err:?}");
        assert!(!err.is_forbidden());
    }

    // Keys held survive a failed refresh; nothing new gets in meanwhile.
    idp.serve(Serve::Keys(vec![public_jwk(&a, Algorithm::RS256, "a")]));
    let v = verifier(&settings(&url, JwtAlgorithm::Rs256, 1, 1));
    v.verify(&with_a).await.expect("valid");
    idp.serve(Serve::Status(StatusCode::SERVICE_UNAVAILABLE));
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let hits = idp.hits();
    v.verify(&with_a).await.expect("held key, refresh failing");
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(idp.hits() > hits, "the stale set was fetched again");
    v.verify(&with_a).await.expect("still held");
    let b = rsa_key("other-rsa-private.pem");
    assert_eq!(
        v.verify(&token(Algorithm::RS256, Some("b"), &b)).await,
        Err(AuthError::UnknownKey)
    );
}

#[tokio::test]
async fn the_attack_set_against_a_key_set() {
    let a = rsa_key("rsa-private.pem");
    let attacker = rsa_key("other-rsa-private.pem");
    let good = public_jwk(&a, Algorithm::RS256, "a");
    let AlgorithmParameters::RSA(rsa_params) = &good.algorithm else {
        panic!("RSA JWK")
    };
    // Keys that must never verify: a symmetric key published in the set, an encryption
    // key, a key declared for another algorithm, and a 1024-bit RSA key.
    let mut oct = Jwk {
        common: good.common.clone(),
        algorithm: AlgorithmParameters::OctetKey(OctetKeyParameters {
            key_type: OctetKeyType::Octet,
            value: URL_SAFE_NO_PAD.encode(b"published-secret-0123456789abcdef"),
        }),
    };
    oct.common.key_id = Some("hmac".into());
    oct.common.key_algorithm = None;
    let mut encryption = public_jwk(&attacker, Algorithm::RS256, "enc");
    encryption.common.public_key_use = Some(PublicKeyUse::Encryption);
    let mut other_alg = public_jwk(&attacker, Algorithm::RS256, "ps");
    other_alg.common.key_algorithm = Some(jsonwebtoken::jwk::KeyAlgorithm::PS256);
    let small = rsa::RsaPublicKey::from_public_key_pem(
        std::str::from_utf8(&fixture("small-rsa-public.pem")).expect("PEM"),
    )
    .expect("small key");
    let mut weak = good.clone();
    weak.common.key_id = Some("weak".into());
    weak.algorithm = AlgorithmParameters::RSA(RSAKeyParameters {
        key_type: RSAKeyType::RSA,
        n: URL_SAFE_NO_PAD.encode(small.n().to_bytes_be()),
        e: URL_SAFE_NO_PAD.encode(small.e().to_bytes_be()),
    });
    let (_idp, url) = Idp::start(vec![good.clone(), oct, encryption, other_alg, weak]).await;
    let v = verifier(&settings(&url, JwtAlgorithm::Rs256, 3600, 1));
    assert!(v
        .verify(&token(Algorithm::RS256, Some("a"), &a))
        .await
        .is_ok());

    let c = claims(json!({"role": "admin"}));
    let part = |v: &Value| URL_SAFE_NO_PAD.encode(v.to_string());
    // alg none, with and without a signature.
    for alg in ["none", "None"] {
        let unsigned = format!(
            "{}.{}.",
            part(&json!({"alg": alg, "kid": "a"})),
            part(&Value::Object(c.clone()))
        );
        assert_eq!(v.verify(&unsigned).await, Err(AuthError::AlgNone));
        assert_eq!(
            v.verify(&format!("{unsigned}AAAA")).await,
            Err(AuthError::AlgNone)
        );
    }
    // Key confusion: HS256 "signed" with the published modulus, or with the published
    // symmetric key, under their kids.
    let n_secret = EncodingKey::from_secret(rsa_params.n.as_bytes());
    let published = EncodingKey::from_secret(b"published-secret-0123456789abcdef");
    for (kid, key) in [("a", &n_secret), ("hmac", &published)] {
        let mut header = Header::new(Algorithm::HS256);
        header.kid = Some(kid.into());
        let confused = jsonwebtoken::encode(&header, &c, key).expect("signing");
        assert!(
            matches!(
                v.verify(&confused).await,
                Err(AuthError::WrongAlgorithm { .. })
            ),
            "{kid}"
        );
    }
    // RS256 under the kids of keys that are not usable for it: unknown.
    for kid in ["hmac", "enc", "ps", "weak"] {
        assert_eq!(
            v.verify(&token(Algorithm::RS256, Some(kid), &attacker))
                .await,
            Err(AuthError::UnknownKey),
            "{kid}"
        );
    }
    // The attacker's own key in the token's header (jwk) is never used.
    let mut header = Header::new(Algorithm::RS256);
    header.kid = Some("a".into());
    header.jwk = Some(public_jwk(&attacker, Algorithm::RS256, "a"));
    let embedded = jsonwebtoken::encode(&header, &c, &attacker).expect("signing");
    assert_eq!(v.verify(&embedded).await, Err(AuthError::BadSignature));
    // No kid: a key set cannot say which key.
    assert!(matches!(
        v.verify(&token(Algorithm::RS256, None, &a)).await,
        Err(AuthError::Malformed(m)) if m.contains("kid")
    ));
    // The claims are checked as with a configured key.
    let mut header = Header::new(Algorithm::RS256);
    header.kid = Some("a".into());
    let expired = jsonwebtoken::encode(
        &header,
        &claims(json!({"exp": chrono::Utc::now().timestamp() - 3600})),
        &a,
    )
    .expect("signing");
    assert_eq!(v.verify(&expired).await, Err(AuthError::Expired));
    let other_issuer =
        jsonwebtoken::encode(&header, &claims(json!({"iss": "evil"})), &a).expect("signing");
    assert_eq!(v.verify(&other_issuer).await, Err(AuthError::WrongIssuer));
}

#[tokio::test]
async fn es256_keys_from_a_key_set() {
    let ec = ec_key();
    let (_idp, url) = Idp::start(vec![
        public_jwk(&ec, Algorithm::ES256, "ec"),
        public_jwk(&rsa_key("rsa-private.pem"), Algorithm::RS256, "a"),
    ])
    .await;
    let v = verifier(&settings(&url, JwtAlgorithm::Es256, 3600, 1));
    assert!(v
        .verify(&token(Algorithm::ES256, Some("ec"), &ec))
        .await
        .is_ok());
    // Only the configured algorithm: the set's RSA key does not verify RS256 here.
    assert!(matches!(
        v.verify(&token(
            Algorithm::RS256,
            Some("a"),
            &rsa_key("rsa-private.pem")
        ))
        .await,
        Err(AuthError::WrongAlgorithm { .. })
    ));
    assert_eq!(
        v.verify(&token(Algorithm::ES256, Some("a"), &ec)).await,
        Err(AuthError::UnknownKey)
    );
}

#[tokio::test]
async fn es256_with_a_pem_key() {
    let settings = JwtSettings {
        algorithm: JwtAlgorithm::Es256,
        key: Some(secrecy::SecretString::from(
            String::from_utf8(fixture("ec-public.pem")).expect("PEM"),
        )),
        issuer: "https://idp.example".into(),
        ..JwtSettings::default()
    };
    let v = verifier(&settings);
    assert!(v
        .verify(&token(Algorithm::ES256, None, &ec_key()))
        .await
        .is_ok());
}

#[test]
fn key_set_settings_are_checked() {
    let error = |s: JwtSettings| match Verifier::from_config(&s) {
        Err(crate::domain::InvalidValue { key, why }) => format!("{key}: {why}"),
        other => panic!("expected a configuration error, got {other:?}"),
    };
    let base = settings(
        "https://idp.example/jwks.json",
        JwtAlgorithm::Rs256,
        900,
        30,
    );
    assert!(Verifier::from_config(&base).expect("valid").is_some());
    assert!(base.enabled());
    let hs = JwtSettings {
        algorithm: JwtAlgorithm::Hs256,
        ..base.clone()
    };
    assert!(error(hs).starts_with("jwt.algorithm: a key set publishes public keys"));
    let both = JwtSettings {
        key: Some(secrecy::SecretString::from("x".repeat(40))),
        ..base.clone()
    };
    assert!(error(both).starts_with("jwt.jwks_url: set one of"));
    let not_a_url = JwtSettings {
        jwks_url: Some("idp.example/jwks.json".into()),
        ..base
    };
    assert!(error(not_a_url).starts_with("jwt.jwks_url"));
    let private = JwtSettings {
        algorithm: JwtAlgorithm::Es256,
        key: Some(secrecy::SecretString::from(
            String::from_utf8(fixture("ec-private.pem")).expect("PEM"),
        )),
        ..JwtSettings::default()
    };
    assert!(error(private).contains("holds a private key"));
}
