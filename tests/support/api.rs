//! The release-manager API from a test's side: tokens minted the way an identity provider
//! would (independently of verdict's own `mint`), and a small JSON client.

use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine;
use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
use reqwest::Method;
use serde_json::{json, Value};

/// The HS256 secret test servers are configured with.
pub const SECRET: &str = "verdict-test-secret-0123456789-abcdef";
/// The issuer test servers require.
pub const ISSUER: &str = "verdict";
/// The audience test servers require.
pub const AUDIENCE: &str = "verdict";

/// Unix seconds now.
pub fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// Claims of a valid token for `role` and `sub`, valid for ten minutes.
pub fn claims(role: &str, sub: &str) -> Value {
    json!({"sub": sub, "role": role, "iss": ISSUER, "aud": AUDIENCE,
           "iat": now(), "exp": now() + 600})
}

/// Signs `claims` with HS256 and `secret`.
pub fn hs256(claims: &Value, secret: &str) -> String {
    encode(
        &Header::new(Algorithm::HS256),
        claims,
        &EncodingKey::from_secret(secret.as_bytes()),
    )
    .expect("sign HS256")
}

/// A valid token for `role` and `sub` from the test servers' secret.
pub fn token(role: &str, sub: &str) -> String {
    hs256(&claims(role, sub), SECRET)
}

/// Signs `claims` with RS256 and a PEM private key from `tests/fixtures/jwt/`.
pub fn rs256(claims: &Value, private_pem_file: &str) -> String {
    let path = format!(
        "{}/../fixtures/jwt/{private_pem_file}",
        env!("CARGO_MANIFEST_DIR")
    );
    let pem = std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    encode(
        &Header::new(Algorithm::RS256),
        claims,
        &EncodingKey::from_rsa_pem(&pem).expect("RSA private key"),
    )
    .expect("sign RS256")
}

/// An unsigned token (`alg: none`), as an attacker would hand-build it.
pub fn alg_none(claims: &Value) -> String {
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let header = b64.encode(br#"{"alg":"none","typ":"JWT"}"#);
    let payload = b64.encode(claims.to_string());
    format!("{header}.{payload}.")
}

/// An API answer: status, JSON body (Null when the body is not JSON) and raw text.
#[derive(Debug, Clone)]
pub struct Reply {
    /// The HTTP status.
    pub status: u16,
    /// The body as JSON, or Null.
    pub json: Value,
    /// The body as text.
    pub text: String,
    /// The `WWW-Authenticate` header, if any.
    pub www_authenticate: Option<String>,
}

impl Reply {
    /// The `error` code of an error answer.
    pub fn error(&self) -> &str {
        self.json["error"].as_str().unwrap_or("")
    }

    /// The `message` of an error answer.
    pub fn message(&self) -> &str {
        self.json["message"].as_str().unwrap_or("")
    }
}

/// Calls `method path` of the server at `base` with an optional bearer token and body.
pub async fn call(
    http: &reqwest::Client,
    base: &str,
    method: Method,
    path: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> Reply {
    let mut request = http.request(method.clone(), format!("{base}{path}"));
    if let Some(t) = token {
        request = request.bearer_auth(t);
    }
    if let Some(b) = body {
        request = request.json(&b);
    }
    send(request, &format!("{method} {path}")).await
}

/// Sends a prepared request (for raw bodies and odd headers).
pub async fn send(request: reqwest::RequestBuilder, what: &str) -> Reply {
    let response = request
        .send()
        .await
        .unwrap_or_else(|e| panic!("{what}: {e}"));
    let status = response.status().as_u16();
    let www_authenticate = response
        .headers()
        .get("www-authenticate")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let text = response.text().await.unwrap_or_default();
    let json = serde_json::from_str(&text).unwrap_or(Value::Null);
    Reply {
        status,
        json,
        text,
        www_authenticate,
    }
}

/// Signs `token` in to the console at `base` (`http://…`) and returns a client that does
/// not follow redirects, with the session cookie (`name=value`) to send.
pub async fn console_session(base: &str, token: &str) -> (reqwest::Client, String) {
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    let signed_in = http
        .post(format!("{base}/ui/sign-in"))
        .form(&[("token", token)])
        .send()
        .await
        .expect("sign in");
    assert_eq!(signed_in.status(), 303, "sign in with {token}");
    let cookie = signed_in.headers()["set-cookie"]
        .to_str()
        .expect("ascii")
        .split(';')
        .next()
        .expect("name=value")
        .to_owned();
    (http, cookie)
}
