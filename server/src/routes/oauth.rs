//! OAuth 2.1 access tokens (MCP authorization): JWTs of one issuer,
//! checked against its JWKS — signature, `iss`, `aud`, `exp`, `nbf`, the
//! configured algorithms only (never `none`, never a symmetric one), and
//! the required scopes.
//!
//! The JWKS is read once (fetched over HTTPS, or HTTP from loopback, or
//! from a file; redirects only to the same), cached,
//! and read again when a token names a `kid` it does not hold or when it
//! is older than [`MAX_AGE`] — at most once per [`REFETCH_INTERVAL`], so a
//! stream of tokens with made-up `kid`s cannot make the gateway hammer the
//! issuer. At most [`MAX_KEYS`] keys are kept. A token accepted once is
//! taken on trust for a while (`verified`), so a client's requests do not
//! each pay for a signature check.

use std::str::FromStr;
use std::time::{Duration, Instant};

use jsonwebtoken::jwk::{AlgorithmParameters, Jwk, JwkSet, KeyAlgorithm, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey, Validation, decode, decode_header};
use parking_lot::RwLock;
use serde::Deserialize;

use super::verified::VerifiedTokens;
use crate::config::{JwksSource, OAuthConfig};
use crate::ids::{Identity, Principal, unix_now};

/// The least time between two reads of the JWKS after the first.
pub(crate) const REFETCH_INTERVAL: Duration = Duration::from_secs(30);
/// A JWKS older than this is read again on the next token (keys the issuer
/// withdrew stop working).
pub(crate) const MAX_AGE: Duration = Duration::from_secs(600);
/// Keys kept of one JWKS, at most.
pub(crate) const MAX_KEYS: usize = 64;
/// The largest JWKS document read.
const MAX_JWKS_BYTES: usize = 512 * 1024;
/// The longest access token looked at.
const MAX_TOKEN_BYTES: usize = 16 * 1024;
/// How long one JWKS fetch may take.
const FETCH_TIMEOUT: Duration = Duration::from_secs(5);

/// Why a token was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// Not a valid token of this issuer for this resource (401
    /// `invalid_token`); the reason is safe to tell the client.
    Invalid(String),
    /// Valid, but without these required scopes (403
    /// `insufficient_scope`).
    Scope(Vec<String>),
}

/// The claims read beyond what `jsonwebtoken` checks.
#[derive(Deserialize)]
struct Claims {
    /// Checked by `jsonwebtoken`; read again for how long the token may be
    /// taken on trust (a number, possibly with a fraction).
    #[serde(default)]
    exp: Option<f64>,
    #[serde(default)]
    sub: Option<String>,
    #[serde(default)]
    scope: Option<String>,
    #[serde(default)]
    scp: Option<Scp>,
}

/// `scp`: a list (Okta, Entra ID) or a space-separated string.
#[derive(Deserialize)]
#[serde(untagged)]
enum Scp {
    List(Vec<String>),
    Text(String),
}

/// A key of the JWKS.
struct Key {
    kid: Option<String>,
    /// The `alg` the JWK is restricted to, if it names one.
    alg: Option<Algorithm>,
    key: DecodingKey,
    params: KeyFamily,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum KeyFamily {
    Rsa,
    Ec,
    Okp,
}

fn family_of(alg: Algorithm) -> Option<KeyFamily> {
    match alg {
        Algorithm::RS256
        | Algorithm::RS384
        | Algorithm::RS512
        | Algorithm::PS256
        | Algorithm::PS384
        | Algorithm::PS512 => Some(KeyFamily::Rsa),
        Algorithm::ES256 | Algorithm::ES384 => Some(KeyFamily::Ec),
        Algorithm::EdDSA => Some(KeyFamily::Okp),
        // Symmetric: never with published keys.
        Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512 => None,
    }
}

fn jwk_alg(alg: &KeyAlgorithm) -> Option<Algorithm> {
    Algorithm::from_str(&format!("{alg:?}")).ok()
}

/// The usable keys of `set`: public signing keys of an asymmetric kind
/// (`oct` keys and encryption keys are skipped), at most [`MAX_KEYS`].
fn keys_of(set: JwkSet) -> Vec<Key> {
    let mut keys = Vec::new();
    for jwk in set.keys {
        if keys.len() == MAX_KEYS {
            tracing::warn!(
                max = MAX_KEYS,
                "the JWKS has more keys than are kept; the rest are ignored"
            );
            break;
        }
        if let Some(k) = key_of(&jwk) {
            keys.push(k);
        }
    }
    keys
}

fn key_of(jwk: &Jwk) -> Option<Key> {
    if matches!(jwk.common.public_key_use, Some(PublicKeyUse::Encryption)) {
        return None;
    }
    let params = match &jwk.algorithm {
        AlgorithmParameters::RSA(_) => KeyFamily::Rsa,
        AlgorithmParameters::EllipticCurve(_) => KeyFamily::Ec,
        AlgorithmParameters::OctetKeyPair(_) => KeyFamily::Okp,
        AlgorithmParameters::OctetKey(_) => return None,
    };
    let alg = match &jwk.common.key_algorithm {
        None => None,
        Some(a) => Some(jwk_alg(a)?),
    };
    if alg.is_some_and(|a| family_of(a) != Some(params)) {
        return None;
    }
    let key = DecodingKey::from_jwk(jwk).ok()?;
    Some(Key {
        kid: jwk.common.key_id.clone(),
        alg,
        key,
        params,
    })
}

#[derive(Default)]
struct Cached {
    keys: Vec<Key>,
    /// When the keys were read (`None`: never yet).
    read: Option<Instant>,
    /// Bumped on every read, so a waiter sees that another task read.
    generation: u64,
}

#[derive(Default)]
struct Fetching {
    /// When the last read was tried that counts for the rate limit: every
    /// one but a first that succeeded.
    last_refetch: Option<Instant>,
}

/// An issuer's JWKS, cached.
struct Jwks {
    source: JwksSource,
    http: reqwest::Client,
    cache: RwLock<Cached>,
    fetching: tokio::sync::Mutex<Fetching>,
}

impl Jwks {
    /// The key for a token's `kid` and `alg`, from the cache if it is
    /// there and fresh (`Ok(None)`: no such key).
    fn lookup(&self, kid: Option<&str>, alg: Algorithm) -> Option<(DecodingKey, u64, bool)> {
        let cache = self.cache.read();
        let family = family_of(alg)?;
        let fits = |k: &&Key| k.params == family && k.alg.is_none_or(|a| a == alg);
        let key = match kid {
            Some(kid) => cache
                .keys
                .iter()
                .filter(fits)
                .find(|k| k.kid.as_deref() == Some(kid)),
            // Without a `kid`, only an unambiguous key will do.
            None => {
                let mut fitting = cache.keys.iter().filter(fits);
                match (fitting.next(), fitting.next()) {
                    (Some(k), None) => Some(k),
                    _ => None,
                }
            }
        }?;
        let fresh = cache.read.is_some_and(|t| t.elapsed() < MAX_AGE);
        Some((key.key.clone(), cache.generation, fresh))
    }

    /// The key for `kid` and `alg`, reading the JWKS again when it is
    /// not cached (or stale) and the rate limit allows.
    async fn key(&self, kid: Option<&str>, alg: Algorithm) -> Result<DecodingKey, Refusal> {
        let seen = match self.lookup(kid, alg) {
            Some((key, _, true)) => return Ok(key),
            Some((_, generation, false)) => generation,
            None => self.cache.read().generation,
        };
        let mut fetching = self.fetching.lock().await;
        // Another task may have read the keys while this one waited.
        if self.cache.read().generation == seen {
            // The first read is free; a read after it, or after a failed
            // first one, waits out the interval.
            let first = self.cache.read().read.is_none();
            let allowed = fetching
                .last_refetch
                .is_none_or(|t| t.elapsed() >= REFETCH_INTERVAL);
            if allowed {
                if !first {
                    fetching.last_refetch = Some(Instant::now());
                }
                match self.read().await {
                    Ok(keys) => {
                        let mut cache = self.cache.write();
                        cache.keys = keys;
                        cache.read = Some(Instant::now());
                        cache.generation += 1;
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot read the issuer's JWKS");
                        if first {
                            // Failed first reads are rate-limited too.
                            fetching.last_refetch = Some(Instant::now());
                        }
                    }
                }
            }
        }
        drop(fetching);
        match self.lookup(kid, alg) {
            // A stale key still works while the issuer cannot be reached.
            Some((key, _, _)) => Ok(key),
            None if self.cache.read().read.is_none() => Err(Refusal::Invalid(
                "the issuer's signing keys (JWKS) could not be read; try again later".to_owned(),
            )),
            None => Err(Refusal::Invalid(match kid {
                Some(_) => "the token's signing key (kid) is not in the issuer's JWKS".to_owned(),
                None => "the token names no key (kid) and the issuer's JWKS has no single key for its algorithm".to_owned(),
            })),
        }
    }

    /// Reads the JWKS document.
    async fn read(&self) -> Result<Vec<Key>, String> {
        let bytes = match &self.source {
            JwksSource::File(path) => {
                let meta = tokio::fs::metadata(path)
                    .await
                    .map_err(|e| format!("{}: {e}", path.display()))?;
                if meta.len() > MAX_JWKS_BYTES as u64 {
                    return Err(format!(
                        "{}: larger than {MAX_JWKS_BYTES} bytes",
                        path.display()
                    ));
                }
                tokio::fs::read(path)
                    .await
                    .map_err(|e| format!("{}: {e}", path.display()))?
            }
            JwksSource::Url(url) => self.fetch(url).await?,
        };
        let set: JwkSet =
            serde_json::from_slice(&bytes).map_err(|e| format!("not a JWKS document: {e}"))?;
        Ok(keys_of(set))
    }

    async fn fetch(&self, url: &str) -> Result<Vec<u8>, String> {
        let mut response = self
            .http
            .get(url)
            .header(
                http::header::ACCEPT,
                "application/json, application/jwk-set+json",
            )
            .send()
            .await
            .map_err(|e| format!("{url}: {e}"))?;
        if !response.status().is_success() {
            return Err(format!("{url}: HTTP {}", response.status()));
        }
        if response
            .content_length()
            .is_some_and(|n| n > MAX_JWKS_BYTES as u64)
        {
            return Err(format!("{url}: larger than {MAX_JWKS_BYTES} bytes"));
        }
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(|e| format!("{url}: {e}"))? {
            if body.len() + chunk.len() > MAX_JWKS_BYTES {
                return Err(format!("{url}: larger than {MAX_JWKS_BYTES} bytes"));
            }
            body.extend_from_slice(&chunk);
        }
        Ok(body)
    }
}

/// Checks the access tokens of one issuer for one resource.
pub(crate) struct Verifier {
    config: OAuthConfig,
    algorithms: Vec<Algorithm>,
    jwks: Jwks,
    verified: VerifiedTokens,
}

impl std::fmt::Debug for Verifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Verifier")
            .field("issuer", &self.config.issuer)
            .field("audience", &self.config.audience)
            .finish_non_exhaustive()
    }
}

impl Verifier {
    /// A verifier for `config`; its JWKS is read on the first token.
    pub(crate) fn new(config: &OAuthConfig) -> Result<Verifier, String> {
        let algorithms = config
            .algorithms
            .iter()
            .map(|a| Algorithm::from_str(a).map_err(|_| format!("unknown algorithm `{a}`")))
            .collect::<Result<Vec<_>, _>>()?;
        if algorithms.iter().any(|a| family_of(*a).is_none()) {
            return Err("symmetric algorithms are never accepted".to_owned());
        }
        let http = reqwest::Client::builder()
            .timeout(FETCH_TIMEOUT)
            .redirect(reqwest::redirect::Policy::custom(|attempt| {
                // Keys are never taken over plain HTTP but from loopback.
                let secure = attempt.url().scheme() == "https"
                    || attempt.url().host_str().is_some_and(|h| {
                        h == "localhost"
                            || h.trim_matches(['[', ']'])
                                .parse::<std::net::IpAddr>()
                                .is_ok_and(|ip| ip.is_loopback())
                    });
                if attempt.previous().len() >= 3 {
                    attempt.error("more than 3 redirects")
                } else if !secure {
                    attempt.error("a redirect away from https")
                } else {
                    attempt.follow()
                }
            }))
            .build()
            .map_err(|e| format!("cannot make an HTTP client: {e}"))?;
        Ok(Verifier {
            config: config.clone(),
            algorithms,
            jwks: Jwks {
                source: config.jwks.clone(),
                http,
                cache: RwLock::new(Cached::default()),
                fetching: tokio::sync::Mutex::new(Fetching::default()),
            },
            verified: VerifiedTokens::default(),
        })
    }

    /// Its settings.
    pub(crate) fn config(&self) -> &OAuthConfig {
        &self.config
    }

    /// Checks `token`: the caller's principal (the issuer's subject) and
    /// identity (subject and scopes) if it passes.
    pub(crate) async fn verify(&self, token: &str) -> Result<(Principal, Identity), Refusal> {
        let invalid = |m: &str| Refusal::Invalid(m.to_owned());
        if token.len() > MAX_TOKEN_BYTES {
            return Err(invalid("the token is too long"));
        }
        let now = unix_now();
        // Read before the key is: keys read meanwhile make the entry stale.
        let keys = self.jwks.cache.read().generation;
        if let Some(accepted) = self.verified.get(token, now, keys) {
            return Ok(accepted);
        }
        // `alg: none`, and any algorithm `jsonwebtoken` does not know, fail
        // here: the header does not parse.
        let header = decode_header(token).map_err(|_| {
            invalid("not a signed JWT of an accepted algorithm (`none` is never accepted)")
        })?;
        if !self.algorithms.contains(&header.alg) {
            return Err(Refusal::Invalid(format!(
                "the token's algorithm {:?} is not accepted",
                header.alg
            )));
        }
        let key = self.jwks.key(header.kid.as_deref(), header.alg).await?;
        let mut validation = Validation::new(header.alg);
        validation.algorithms = vec![header.alg];
        validation.leeway = self.config.leeway.as_secs();
        validation.validate_exp = true;
        validation.validate_nbf = true;
        validation.set_issuer(&[self.config.issuer.as_str()]);
        validation.set_audience(&self.config.audience);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        let data = decode::<Claims>(token, &key, &validation).map_err(|e| {
            use jsonwebtoken::errors::ErrorKind;
            Refusal::Invalid(
                match e.kind() {
                    ErrorKind::ExpiredSignature => "the token has expired",
                    ErrorKind::ImmatureSignature => "the token is not valid yet (nbf)",
                    ErrorKind::InvalidIssuer => "the token is of another issuer",
                    ErrorKind::InvalidAudience => "the token is for another audience",
                    ErrorKind::InvalidSignature => "the token's signature does not verify",
                    ErrorKind::InvalidAlgorithm => "the token's algorithm does not fit its key",
                    ErrorKind::MissingRequiredClaim(_) => {
                        "the token lacks a required claim (exp, iss, aud, sub)"
                    }
                    _ => "the token is not a valid JWT",
                }
                .to_owned(),
            )
        })?;
        let claims = data.claims;
        let subject = claims
            .sub
            .filter(|s| !s.is_empty())
            .ok_or_else(|| invalid("the token has no subject (sub)"))?;
        let mut scopes: Vec<String> = Vec::new();
        let mut add = |text: &str| {
            for s in text.split(' ').filter(|s| !s.is_empty()) {
                if scopes.len() < 256 && !scopes.iter().any(|have| have == s) {
                    scopes.push(s.to_owned());
                }
            }
        };
        if let Some(scope) = &claims.scope {
            add(scope);
        }
        match &claims.scp {
            Some(Scp::Text(t)) => add(t),
            Some(Scp::List(list)) => list.iter().for_each(|s| add(s)),
            None => {}
        }
        let missing: Vec<String> = self
            .config
            .required_scopes
            .iter()
            .filter(|s| !scopes.contains(s))
            .cloned()
            .collect();
        if !missing.is_empty() {
            return Err(Refusal::Scope(missing));
        }
        let principal = Principal::of_subject(&self.config.issuer, &subject);
        let identity = Identity {
            token: None,
            subject: Some(subject),
            scopes,
        };
        if let Some(exp) = claims.exp.filter(|e| e.is_finite() && *e > 0.0) {
            // Saturating: a far-future `exp` is held for MAX_HOLD all the same.
            let expires = (exp as u64).saturating_add(self.config.leeway.as_secs());
            self.verified
                .put(token, (&principal, &identity), keys, expires, now);
        }
        Ok((principal, identity))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jwk(file: &str, edit: impl Fn(&mut serde_json::Value)) -> Jwk {
        let path = format!(
            "{}/tests/fixtures/oauth/{file}.jwk.json",
            env!("CARGO_MANIFEST_DIR")
        );
        let mut v: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        edit(&mut v);
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn only_public_signing_keys_of_a_fitting_kind_are_kept() {
        assert_eq!(key_of(&jwk("rsa1", |_| {})).unwrap().params, KeyFamily::Rsa);
        assert_eq!(key_of(&jwk("ec1", |_| {})).unwrap().params, KeyFamily::Ec);
        // An RSA key that claims an EC algorithm, an encryption key, a
        // symmetric key: none is kept.
        assert!(key_of(&jwk("rsa1", |v| v["alg"] = "ES256".into())).is_none());
        assert!(key_of(&jwk("rsa1", |v| v["use"] = "enc".into())).is_none());
        let oct: Jwk = serde_json::from_value(serde_json::json!({
            "kty": "oct", "kid": "hs", "k": "c2VjcmV0", "alg": "HS256"
        }))
        .unwrap();
        assert!(key_of(&oct).is_none());
        assert_eq!(family_of(Algorithm::HS256), None);
        let many = JwkSet {
            keys: (0..MAX_KEYS + 5).map(|_| jwk("ec1", |_| {})).collect(),
        };
        assert_eq!(keys_of(many).len(), MAX_KEYS);
    }

    #[tokio::test]
    async fn an_accepted_token_is_taken_on_trust_and_another_is_checked() {
        let dir = tempfile::tempdir().unwrap();
        let jwks = dir.path().join("jwks.json");
        let set =
            serde_json::json!({ "keys": [serde_json::to_value(jwk("rsa1", |_| {})).unwrap()] });
        std::fs::write(&jwks, set.to_string()).unwrap();
        let config = OAuthConfig {
            issuer: "https://issuer.test".to_owned(),
            audience: vec!["https://mcp.test/mcp/x".to_owned()],
            algorithms: vec!["RS256".to_owned()],
            jwks: JwksSource::File(jwks),
            required_scopes: Vec::new(),
            leeway: Duration::from_secs(0),
        };
        let verifier = Verifier::new(&config).unwrap();
        let pem = std::fs::read(format!(
            "{}/tests/fixtures/oauth/rsa1.pem",
            env!("CARGO_MANIFEST_DIR")
        ))
        .unwrap();
        let kid = jwk("rsa1", |_| {}).common.key_id;
        let mut header = jsonwebtoken::Header::new(Algorithm::RS256);
        header.kid = kid;
        let claims = serde_json::json!({
            "iss": config.issuer, "aud": config.audience[0], "sub": "alice",
            "exp": unix_now() + 3600, "scope": "read",
        });
        let key = jsonwebtoken::EncodingKey::from_rsa_pem(&pem).unwrap();
        let token = jsonwebtoken::encode(&header, &claims, &key).unwrap();

        let (first, identity) = verifier.verify(&token).await.unwrap();
        assert_eq!(identity.subject.as_deref(), Some("alice"));
        assert_eq!(verifier.verified.held(), 1);
        let (again, _) = verifier.verify(&token).await.unwrap();
        assert_eq!(first, again);
        assert_eq!(verifier.verified.held(), 1);

        // The same claims under a broken signature are checked, and refused.
        let (body, signature) = token.rsplit_once('.').unwrap();
        let flipped = if signature.starts_with('A') { "B" } else { "A" };
        let forged = format!("{body}.{flipped}{}", &signature[1..]);
        assert!(matches!(
            verifier.verify(&forged).await,
            Err(Refusal::Invalid(_))
        ));
        assert_eq!(verifier.verified.held(), 1);
    }
}
