//! Verification and minting against real tokens: every refusal of docs/api.md, with the
//! 401/403 class the API maps it to.

use std::path::PathBuf;
use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use secrecy::SecretString;
use serde_json::{json, Map, Value};

use super::*;

const SECRET: &str = "test-secret-0123456789abcdef-0123456789";

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/jwt")
        .join(name)
}

fn read_fixture(name: &str) -> String {
    std::fs::read_to_string(fixture(name)).expect("fixture")
}

fn hs_settings() -> JwtSettings {
    JwtSettings {
        key: Some(SecretString::from(SECRET)),
        ..JwtSettings::default()
    }
}

fn rs_settings() -> JwtSettings {
    JwtSettings {
        algorithm: JwtAlgorithm::Rs256,
        key: Some(SecretString::from(read_fixture("rsa-public.pem"))),
        ..JwtSettings::default()
    }
}

fn verifier(settings: &JwtSettings) -> Verifier {
    Verifier::from_config(settings)
        .expect("valid settings")
        .expect("a key is configured")
}

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

/// Valid claims for the default settings; `changes` overrides (null removes).
fn claims(changes: Value) -> Map<String, Value> {
    let mut c = json!({
        "sub": "alice", "role": "release-manager", "iss": "verdict", "aud": "verdict",
        "iat": now(), "exp": now() + 3600,
    })
    .as_object()
    .cloned()
    .unwrap_or_default();
    for (k, v) in changes.as_object().cloned().unwrap_or_default() {
        if v.is_null() {
            c.remove(&k);
        } else {
            c.insert(k, v);
        }
    }
    c
}

fn hs256(claims: &Map<String, Value>, secret: &[u8]) -> String {
    sign(Algorithm::HS256, claims, &EncodingKey::from_secret(secret))
}

fn rs256(claims: &Map<String, Value>, private_pem: &str) -> String {
    let key = EncodingKey::from_rsa_pem(private_pem.as_bytes()).expect("RSA private key");
    sign(Algorithm::RS256, claims, &key)
}

fn sign(alg: Algorithm, claims: &Map<String, Value>, key: &EncodingKey) -> String {
    jsonwebtoken::encode(&Header::new(alg), claims, key).expect("signing")
}

/// A token with a hand-made header and no signature.
fn unsigned(header: Value, claims: &Map<String, Value>) -> String {
    let part = |v: &Value| URL_SAFE_NO_PAD.encode(v.to_string());
    format!(
        "{}.{}.",
        part(&header),
        part(&Value::Object(claims.clone()))
    )
}

/// A correctly signed HS256 token around any payload text.
fn signed_by_hand(header: &str, payload: &str) -> String {
    let message = format!("{header}.{payload}");
    let key = EncodingKey::from_secret(SECRET.as_bytes());
    let signature =
        jsonwebtoken::crypto::sign(message.as_bytes(), &key, Algorithm::HS256).expect("signing");
    format!("{message}.{signature}")
}

/// Asserts the refusal, its class, and that its message does not repeat the token.
async fn refused(v: &Verifier, token: &str, expected: AuthError) {
    let err = v.verify(token).await.expect_err("must be refused");
    assert_eq!(err, expected, "token refused for the wrong reason");
    assert_eq!(
        err.is_forbidden(),
        matches!(expected, AuthError::UnknownRole(_))
    );
    let message = err.to_string();
    for part in token.split('.').filter(|p| p.len() > 8) {
        assert!(
            !message.contains(part),
            "message repeats the token: {message}"
        );
    }
}

#[tokio::test]
async fn valid_hs256_and_rs256_tokens_name_their_caller() {
    let hs = verifier(&hs_settings());
    let principal = hs
        .verify(&hs256(&claims(json!({})), SECRET.as_bytes()))
        .await
        .expect("valid");
    assert_eq!(
        principal,
        Principal {
            subject: "alice".into(),
            role: Role::ReleaseManager
        }
    );

    let private = read_fixture("rsa-private.pem");
    let rs = verifier(&rs_settings());
    let token = rs256(&claims(json!({"sub": "bob", "role": "admin"})), &private);
    let principal = rs.verify(&token).await.expect("valid");
    assert_eq!(principal.subject, "bob");
    assert_eq!(principal.role, Role::Admin);

    // The same key in PKCS#1 form (BEGIN RSA PUBLIC KEY) verifies the same token.
    let pkcs1 = JwtSettings {
        key: Some(SecretString::from(read_fixture("rsa-public-pkcs1.pem"))),
        ..rs_settings()
    };
    assert_eq!(
        verifier(&pkcs1).verify(&token).await.expect("valid").role,
        Role::Admin
    );
}

#[tokio::test]
async fn expiry_allows_the_leeway_and_no_more() {
    let v = verifier(&hs_settings()); // leeway 30s
    let within = hs256(&claims(json!({"exp": now() - 10})), SECRET.as_bytes());
    assert!(
        v.verify(&within).await.is_ok(),
        "10s past exp is within the leeway"
    );
    let expired = hs256(&claims(json!({"exp": now() - 120})), SECRET.as_bytes());
    refused(&v, &expired, AuthError::Expired).await;
}

#[tokio::test]
async fn a_future_nbf_is_refused() {
    let v = verifier(&hs_settings());
    let soon = hs256(&claims(json!({"nbf": now() + 10})), SECRET.as_bytes());
    assert!(
        v.verify(&soon).await.is_ok(),
        "10s ahead is within the leeway"
    );
    let later = hs256(&claims(json!({"nbf": now() + 600})), SECRET.as_bytes());
    refused(&v, &later, AuthError::NotYetValid).await;
}

#[tokio::test]
async fn issuer_and_audience_must_match() {
    let v = verifier(&hs_settings());
    let token = hs256(&claims(json!({"aud": "grafana"})), SECRET.as_bytes());
    refused(&v, &token, AuthError::WrongAudience).await;
    let token = hs256(&claims(json!({"iss": "someone-else"})), SECRET.as_bytes());
    refused(&v, &token, AuthError::WrongIssuer).await;
    // One of several audiences is enough.
    let token = hs256(
        &claims(json!({"aud": ["grafana", "verdict"]})),
        SECRET.as_bytes(),
    );
    assert!(v.verify(&token).await.is_ok());

    let custom = JwtSettings {
        issuer: "https://idp.example".into(),
        audience: "verdict-prod".into(),
        ..hs_settings()
    };
    let v = verifier(&custom);
    let token = hs256(
        &claims(json!({"iss": "https://idp.example", "aud": "verdict-prod"})),
        SECRET.as_bytes(),
    );
    assert!(v.verify(&token).await.is_ok());
    let token = hs256(&claims(json!({})), SECRET.as_bytes());
    refused(&v, &token, AuthError::WrongIssuer).await;
}

#[tokio::test]
async fn a_signature_by_another_key_is_refused() {
    let v = verifier(&hs_settings());
    let token = hs256(
        &claims(json!({})),
        b"another-secret-0123456789abcdef-0123456789",
    );
    refused(&v, &token, AuthError::BadSignature).await;

    // A payload changed after signing.
    let good = hs256(&claims(json!({"role": "viewer"})), SECRET.as_bytes());
    let parts: Vec<&str> = good.split('.').collect();
    let forged_claims =
        URL_SAFE_NO_PAD.encode(Value::Object(claims(json!({"role": "admin"}))).to_string());
    let forged = format!("{}.{}.{}", parts[0], forged_claims, parts[2]);
    refused(&v, &forged, AuthError::BadSignature).await;

    let rs = verifier(&rs_settings());
    let token = rs256(&claims(json!({})), &read_fixture("other-rsa-private.pem"));
    refused(&rs, &token, AuthError::BadSignature).await;
}

#[tokio::test]
async fn alg_none_is_refused() {
    let c = claims(json!({"role": "admin"}));
    for settings in [hs_settings(), rs_settings()] {
        let v = verifier(&settings);
        for alg in ["none", "None", "NONE"] {
            let token = unsigned(json!({"alg": alg, "typ": "JWT"}), &c);
            refused(&v, &token, AuthError::AlgNone).await;
        }
        // Also with some signature attached.
        let token = format!("{}AAAA", unsigned(json!({"alg": "none"}), &c));
        refused(&v, &token, AuthError::AlgNone).await;
    }
}

#[tokio::test]
async fn the_other_algorithm_is_refused_including_key_confusion() {
    let c = claims(json!({"role": "admin"}));
    let rs = verifier(&rs_settings());
    // The classic confusion: an HS256 token "signed" with the RSA public key as secret.
    let public_pem = read_fixture("rsa-public.pem");
    let confused = hs256(&c, public_pem.as_bytes());
    refused(
        &rs,
        &confused,
        AuthError::WrongAlgorithm {
            got: "HS256".into(),
            expected: "RS256",
        },
    )
    .await;
    // The same with the PEM as it sits in the configuration after trimming.
    let confused = hs256(&c, public_pem.trim().as_bytes());
    assert!(rs.verify(&confused).await.is_err());

    let hs = verifier(&hs_settings());
    let token = rs256(&c, &read_fixture("rsa-private.pem"));
    refused(
        &hs,
        &token,
        AuthError::WrongAlgorithm {
            got: "RS256".into(),
            expected: "HS256",
        },
    )
    .await;
    // A stronger HMAC is still not the configured one.
    let token = sign(
        Algorithm::HS512,
        &c,
        &EncodingKey::from_secret(SECRET.as_bytes()),
    );
    refused(
        &hs,
        &token,
        AuthError::WrongAlgorithm {
            got: "HS512".into(),
            expected: "HS256",
        },
    )
    .await;
}

#[test]
fn the_library_refuses_key_confusion_on_its_own_too() {
    // Defence in depth: without our header check, jsonwebtoken's pinned algorithm still
    // refuses an HS256 token against the RS256 key.
    let rs = verifier(&rs_settings());
    let public_pem = read_fixture("rsa-public.pem");
    let confused = hs256(&claims(json!({})), public_pem.as_bytes());
    let key = jsonwebtoken::DecodingKey::from_rsa_pem(public_pem.as_bytes()).expect("key");
    let mut validation = jsonwebtoken::Validation::new(Algorithm::RS256);
    validation.set_audience(&["verdict"]);
    let err = jsonwebtoken::decode::<Map<String, Value>>(&confused, &key, &validation)
        .expect_err("refused");
    assert_eq!(
        *err.kind(),
        jsonwebtoken::errors::ErrorKind::InvalidAlgorithm
    );
    assert!(format!("{rs:?}").contains("RS256"));
}

#[tokio::test]
async fn required_claims_must_be_present() {
    let v = verifier(&hs_settings());
    for claim in ["sub", "exp", "iss", "aud"] {
        let token = hs256(&claims(json!({ claim: null })), SECRET.as_bytes());
        refused(&v, &token, AuthError::MissingClaim(claim.into())).await;
    }
    // A subject that is not a string is no subject.
    let token = hs256(&claims(json!({"sub": 42})), SECRET.as_bytes());
    refused(&v, &token, AuthError::MissingClaim("sub".into())).await;
    let token = hs256(&claims(json!({"sub": ""})), SECRET.as_bytes());
    assert!(matches!(
        v.verify(&token).await,
        Err(AuthError::Malformed(_))
    ));
}

#[tokio::test]
async fn garbage_is_malformed_and_nothing_is_missing() {
    let v = verifier(&hs_settings());
    assert_eq!(v.verify("").await, Err(AuthError::Missing));
    assert_eq!(v.verify("   ").await, Err(AuthError::Missing));
    let header = URL_SAFE_NO_PAD.encode(r#"{"alg":"HS256"}"#);
    for garbage in [
        "not-a-token".to_owned(),
        "a.b".to_owned(),
        "a.b.c.d".to_owned(),
        "!!!.b.c".to_owned(),
        format!("{}.e30.sig", URL_SAFE_NO_PAD.encode("not json")),
        format!("{}.e30.sig", URL_SAFE_NO_PAD.encode(r#"{"typ":"JWT"}"#)),
        signed_by_hand(&header, "!!!"),
        signed_by_hand(&header, &URL_SAFE_NO_PAD.encode("[1, 2]")),
        "x".repeat(10_000),
    ] {
        let err = v.verify(&garbage).await.expect_err("garbage");
        assert!(
            matches!(err, AuthError::Malformed(_)),
            "{garbage:.40}: {err:?}"
        );
        assert!(!err.is_forbidden());
    }
}

#[tokio::test]
async fn roles_unknown_missing_or_mistyped() {
    let v = verifier(&hs_settings());
    let token = hs256(&claims(json!({"role": "superuser"})), SECRET.as_bytes());
    refused(&v, &token, AuthError::UnknownRole("superuser".into())).await;
    // Roles are not case-folded.
    let token = hs256(&claims(json!({"role": "Admin"})), SECRET.as_bytes());
    refused(&v, &token, AuthError::UnknownRole("Admin".into())).await;
    let token = hs256(&claims(json!({"role": null})), SECRET.as_bytes());
    refused(&v, &token, AuthError::MissingClaim("role".into())).await;
    let token = hs256(&claims(json!({"role": ["admin"]})), SECRET.as_bytes());
    assert!(matches!(
        v.verify(&token).await,
        Err(AuthError::Malformed(_))
    ));

    // The role claim is configurable.
    let custom = JwtSettings {
        role_claim: "verdict_role".into(),
        ..hs_settings()
    };
    let v = verifier(&custom);
    let token = hs256(
        &claims(json!({"role": null, "verdict_role": "viewer"})),
        SECRET.as_bytes(),
    );
    assert_eq!(v.verify(&token).await.expect("valid").role, Role::Viewer);
    let token = hs256(&claims(json!({})), SECRET.as_bytes());
    refused(&v, &token, AuthError::MissingClaim("verdict_role".into())).await;
}

#[test]
fn roles_spell_and_rank_as_documented() {
    for role in Role::ALL {
        assert_eq!(Role::parse(role.as_str()), Some(role));
        assert_eq!(
            serde_json::to_value(role).expect("json"),
            json!(role.as_str())
        );
    }
    assert_eq!(Role::parse("release_manager"), None);
    assert!(!Role::Viewer.can_act() && Role::ReleaseManager.can_act() && Role::Admin.can_act());
    assert!(!Role::Viewer.is_admin() && !Role::ReleaseManager.is_admin() && Role::Admin.is_admin());
}

#[tokio::test]
async fn minted_tokens_verify_to_the_same_subject_and_role() {
    let settings = hs_settings();
    let v = verifier(&settings);
    for role in Role::ALL {
        let token = mint(&settings, role, "ci-bot", Duration::from_secs(600)).expect("minted");
        assert_eq!(
            v.verify(&token).await.expect("valid"),
            Principal {
                subject: "ci-bot".into(),
                role
            }
        );
    }
    // exp is iat + ttl, and the configured issuer, audience and role claim are used.
    let custom = JwtSettings {
        issuer: "me".into(),
        audience: "them".into(),
        role_claim: "verdict_role".into(),
        ..hs_settings()
    };
    let token = mint(&custom, Role::Admin, "alice", Duration::from_secs(8 * 3600)).expect("minted");
    let payload = token.split('.').nth(1).expect("payload");
    let c: Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).expect("b64")).expect("json");
    assert_eq!(
        c["exp"].as_i64().unwrap() - c["iat"].as_i64().unwrap(),
        8 * 3600
    );
    assert_eq!(
        (c["iss"].as_str(), c["aud"].as_str()),
        (Some("me"), Some("them"))
    );
    assert_eq!(c["verdict_role"], json!("admin"));
    assert_eq!(
        verifier(&custom).verify(&token).await.expect("valid").role,
        Role::Admin
    );
    // Another server's secret does not accept it.
    assert!(v.verify(&token).await.is_err());
}

#[test]
fn minting_is_refused_when_it_cannot_be_right() {
    let hour = Duration::from_secs(3600);
    assert!(matches!(
        mint(&rs_settings(), Role::Admin, "alice", hour),
        Err(AuthError::CannotMint(m)) if m.contains("RS256")
    ));
    assert_eq!(
        mint(&JwtSettings::default(), Role::Admin, "alice", hour),
        Err(AuthError::NotConfigured)
    );
    let short = JwtSettings {
        key: Some(SecretString::from("too-short")),
        ..JwtSettings::default()
    };
    assert!(matches!(
        mint(&short, Role::Admin, "alice", hour),
        Err(AuthError::CannotMint(m)) if m.contains("jwt.key") && m.contains("32 bytes")
    ));
    for (subject, ttl) in [
        ("", hour),
        ("  ", hour),
        ("a\nb", hour),
        ("alice", Duration::ZERO),
        ("alice", Duration::from_secs(400 * 24 * 3600)),
    ] {
        assert!(
            matches!(
                mint(&hs_settings(), Role::Viewer, subject, ttl),
                Err(AuthError::CannotMint(_))
            ),
            "{subject:?} {ttl:?}"
        );
    }
}

#[test]
fn bearer_header_parsing() {
    assert_eq!(bearer_token(Some("Bearer abc.def.ghi")), Ok("abc.def.ghi"));
    assert_eq!(bearer_token(Some("bearer  abc")), Ok("abc"));
    assert_eq!(bearer_token(None), Err(AuthError::Missing));
    assert_eq!(bearer_token(Some("Bearer ")), Err(AuthError::Missing));
    assert!(matches!(
        bearer_token(Some("Basic dXNlcjpwYXNz")),
        Err(AuthError::Malformed(_))
    ));
}

#[test]
fn config_errors_name_the_key() {
    let key_error = |settings: &JwtSettings| match Verifier::from_config(settings) {
        Err(e) => e.to_string(),
        other => panic!("expected a configuration error, got {other:?}"),
    };
    assert!(Verifier::from_config(&JwtSettings::default())
        .expect("no key is valid")
        .is_none());

    let short = JwtSettings {
        key: Some(SecretString::from("0123456789")),
        ..JwtSettings::default()
    };
    assert!(key_error(&short).starts_with("jwt.key: an HS256 secret must be at least 32 bytes"));

    let both = JwtSettings {
        key_file: Some(fixture("rsa-public.pem")),
        ..rs_settings()
    };
    assert!(key_error(&both).starts_with("jwt.key: set jwt.key or jwt.key_file"));

    let missing_file = JwtSettings {
        key_file: Some(fixture("does-not-exist.pem")),
        ..JwtSettings::default()
    };
    assert!(key_error(&missing_file).starts_with("jwt.key_file: cannot read"));

    let from_file = JwtSettings {
        algorithm: JwtAlgorithm::Rs256,
        key_file: Some(fixture("rsa-public.pem")),
        ..JwtSettings::default()
    };
    assert!(Verifier::from_config(&from_file).expect("valid").is_some());

    for (pem, why) in [
        ("not a key at all", "not a PEM RSA public key"),
        (
            "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n",
            "not a PEM RSA public key",
        ),
        (&read_fixture("rsa-private.pem"), "holds a private key"),
        (&read_fixture("small-rsa-public.pem"), "1024 bits"),
    ] {
        let settings = JwtSettings {
            key: Some(SecretString::from(pem)),
            ..rs_settings()
        };
        let err = key_error(&settings);
        assert!(err.starts_with("jwt.key: ") && err.contains(why), "{err}");
    }
    let private_file = JwtSettings {
        algorithm: JwtAlgorithm::Rs256,
        key_file: Some(fixture("rsa-private.pem")),
        ..JwtSettings::default()
    };
    assert!(key_error(&private_file).starts_with("jwt.key_file: holds a private key"));
}
