//! A test OAuth issuer on loopback: real RSA and EC keys (fixed test keys
//! under tests/fixtures/oauth, made with openssl), its JWKS served over
//! HTTP (counting fetches, swappable for rotation), RFC 8414 metadata and
//! a client-credentials token endpoint, and JWTs signed with
//! `jsonwebtoken`.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use axum::extract::{Form, State};
use axum::routing::{get, post};
use base64::Engine;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use parking_lot::Mutex;
use serde_json::{Value, json};

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/oauth");

/// The audience the test gateways expect.
pub const AUDIENCE: &str = "https://mcpod.test/mcp";
/// The client the token endpoint knows.
pub const CLIENT_ID: &str = "interop-client";
/// Its secret.
pub const CLIENT_SECRET: &str = "interop-client-secret-0123456789";

/// One of the fixture keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TestKey {
    /// RSA 2048, kid `rsa-1`.
    Rsa1,
    /// RSA 2048, kid `rsa-2`.
    Rsa2,
    /// EC P-256, kid `ec-1`.
    Ec1,
}

impl TestKey {
    fn file(self) -> &'static str {
        match self {
            TestKey::Rsa1 => "rsa1",
            TestKey::Rsa2 => "rsa2",
            TestKey::Ec1 => "ec1",
        }
    }

    /// Its `kid`.
    pub fn kid(self) -> &'static str {
        match self {
            TestKey::Rsa1 => "rsa-1",
            TestKey::Rsa2 => "rsa-2",
            TestKey::Ec1 => "ec-1",
        }
    }

    /// Its algorithm.
    pub fn alg(self) -> Algorithm {
        match self {
            TestKey::Rsa1 | TestKey::Rsa2 => Algorithm::RS256,
            TestKey::Ec1 => Algorithm::ES256,
        }
    }

    /// Its public JWK.
    pub fn jwk(self) -> Value {
        let text = std::fs::read_to_string(format!("{FIXTURES}/{}.jwk.json", self.file())).unwrap();
        serde_json::from_str(&text).unwrap()
    }

    /// Its private key, for signing.
    pub fn encoding_key(self) -> EncodingKey {
        let pem = std::fs::read(format!("{FIXTURES}/{}.pem", self.file())).unwrap();
        match self {
            TestKey::Rsa1 | TestKey::Rsa2 => EncodingKey::from_rsa_pem(&pem).unwrap(),
            TestKey::Ec1 => EncodingKey::from_ec_pem(&pem).unwrap(),
        }
    }
}

/// The PEM of `rsa-1`'s public key (what an algorithm-confusion attack
/// uses as an HMAC secret).
pub fn rsa1_public_pem() -> Vec<u8> {
    std::fs::read(format!("{FIXTURES}/rsa1.pub.pem")).unwrap()
}

/// Seconds since the epoch.
pub fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

struct Shared {
    url: String,
    jwks: Mutex<Vec<Value>>,
    fetches: AtomicUsize,
    /// Requests for paths it does not serve.
    misses: AtomicUsize,
    tokens_issued: AtomicUsize,
    scope: String,
    /// The form of the last token request.
    last_request: Mutex<std::collections::HashMap<String, String>>,
}

/// The issuer.
pub struct Issuer {
    shared: Arc<Shared>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Issuer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn jwks(State(s): State<Arc<Shared>>) -> axum::Json<Value> {
    s.fetches.fetch_add(1, Ordering::SeqCst);
    axum::Json(json!({ "keys": s.jwks.lock().clone() }))
}

async fn miss(State(s): State<Arc<Shared>>) -> http::StatusCode {
    s.misses.fetch_add(1, Ordering::SeqCst);
    http::StatusCode::NOT_FOUND
}

async fn metadata(State(s): State<Arc<Shared>>) -> axum::Json<Value> {
    axum::Json(json!({
        "issuer": s.url,
        "token_endpoint": format!("{}/token", s.url),
        "authorization_endpoint": format!("{}/authorize", s.url),
        "jwks_uri": format!("{}/jwks", s.url),
        "response_types_supported": ["code"],
        "grant_types_supported": ["client_credentials", "authorization_code"],
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
        "code_challenge_methods_supported": ["S256"],
    }))
}

async fn token(
    State(s): State<Arc<Shared>>,
    headers: http::HeaderMap,
    Form(form): Form<std::collections::HashMap<String, String>>,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    // client_secret_basic, or client_secret_post.
    let basic = headers
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "))
        .and_then(|b| base64::engine::general_purpose::STANDARD.decode(b).ok())
        .and_then(|b| String::from_utf8(b).ok());
    let (id, secret) = match basic.as_deref().and_then(|b| b.split_once(':')) {
        Some((i, s)) => (i.to_owned(), s.to_owned()),
        None => (
            form.get("client_id").cloned().unwrap_or_default(),
            form.get("client_secret").cloned().unwrap_or_default(),
        ),
    };
    if form.get("grant_type").map(String::as_str) != Some("client_credentials")
        || id != CLIENT_ID
        || secret != CLIENT_SECRET
    {
        return (
            http::StatusCode::BAD_REQUEST,
            axum::Json(json!({"error": "invalid_client"})),
        )
            .into_response();
    }
    s.tokens_issued.fetch_add(1, Ordering::SeqCst);
    // A permissive server: it grants the scope asked for (else its own).
    let scope = form
        .get("scope")
        .cloned()
        .unwrap_or_else(|| s.scope.clone());
    *s.last_request.lock() = form;
    let jwt = sign(
        TestKey::Rsa1,
        &claims(&s.url, CLIENT_ID, &scope),
        TestKey::Rsa1.kid(),
    );
    axum::Json(json!({
        "access_token": jwt,
        "token_type": "Bearer",
        "expires_in": 300,
        "scope": scope,
    }))
    .into_response()
}

/// Standard claims of a token of `issuer` for `sub`, valid for 5 minutes.
pub fn claims(issuer: &str, sub: &str, scope: &str) -> Value {
    let now = now();
    json!({
        "iss": issuer,
        "sub": sub,
        "aud": AUDIENCE,
        "iat": now,
        "nbf": now - 5,
        "exp": now + 300,
        "scope": scope,
    })
}

/// `claims` signed with `key` under the header `kid`.
pub fn sign(key: TestKey, claims: &Value, kid: &str) -> String {
    let mut header = Header::new(key.alg());
    header.kid = Some(kid.to_owned());
    jsonwebtoken::encode(&header, claims, &key.encoding_key()).unwrap()
}

/// `claims` signed with `key`, naming no `kid`.
pub fn sign_without_kid(key: TestKey, claims: &Value) -> String {
    jsonwebtoken::encode(&Header::new(key.alg()), claims, &key.encoding_key()).unwrap()
}

/// An unsigned token (`alg: none`).
pub fn unsigned(claims: &Value) -> String {
    let b64 = |v: &Value| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string());
    format!(
        "{}.{}.",
        b64(&json!({"alg": "none", "typ": "JWT", "kid": "rsa-1"})),
        b64(claims)
    )
}

/// HS256 over `claims` with `secret`, under `kid`.
pub fn hs256(claims: &Value, secret: &[u8], kid: &str) -> String {
    let mut header = Header::new(Algorithm::HS256);
    header.kid = Some(kid.to_owned());
    jsonwebtoken::encode(&header, claims, &EncodingKey::from_secret(secret)).unwrap()
}

impl Issuer {
    /// An issuer publishing `keys`, whose token endpoint grants `scope`.
    pub async fn start(keys: &[TestKey], scope: &str) -> Issuer {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let shared = Arc::new(Shared {
            url,
            jwks: Mutex::new(keys.iter().map(|k| k.jwk()).collect()),
            fetches: AtomicUsize::new(0),
            misses: AtomicUsize::new(0),
            tokens_issued: AtomicUsize::new(0),
            scope: scope.to_owned(),
            last_request: Mutex::new(std::collections::HashMap::new()),
        });
        let app = axum::Router::new()
            .route("/jwks", get(jwks))
            .route("/.well-known/oauth-authorization-server", get(metadata))
            .route("/token", post(token))
            .fallback(miss)
            .with_state(shared.clone());
        let task = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        Issuer { shared, task }
    }

    /// Its issuer identifier (and base URL).
    pub fn url(&self) -> &str {
        &self.shared.url
    }

    /// How often its JWKS was fetched.
    pub fn fetches(&self) -> usize {
        self.shared.fetches.load(Ordering::SeqCst)
    }

    /// How many requests asked for paths it does not serve.
    pub fn misses(&self) -> usize {
        self.shared.misses.load(Ordering::SeqCst)
    }

    /// How many tokens its token endpoint gave out.
    pub fn tokens_issued(&self) -> usize {
        self.shared.tokens_issued.load(Ordering::SeqCst)
    }

    /// The form of the last token request (`resource`, `scope`, ...).
    pub fn last_token_request(&self) -> std::collections::HashMap<String, String> {
        self.shared.last_request.lock().clone()
    }

    /// Publishes `keys` instead (key rotation).
    pub fn publish(&self, keys: &[TestKey]) {
        *self.shared.jwks.lock() = keys.iter().map(|k| k.jwk()).collect();
    }

    /// A valid token for `sub` with `scope`, signed with `key`.
    pub fn token(&self, key: TestKey, sub: &str, scope: &str) -> String {
        sign(key, &claims(self.url(), sub, scope), key.kid())
    }

    /// The `[auth.oauth]`-shaped keys for this issuer.
    pub fn oauth_toml(&self, required_scopes: &[&str]) -> String {
        let scopes: Vec<String> = required_scopes.iter().map(|s| format!("\"{s}\"")).collect();
        format!(
            "issuer = \"{url}\"\naudience = \"{AUDIENCE}\"\nalgorithms = [\"RS256\", \"ES256\"]\n\
             jwks_url = \"{url}/jwks\"\nrequired_scopes = [{}]\nleeway = \"10s\"\n",
            scopes.join(", "),
            url = self.url()
        )
    }
}
