//! The gateway as an OAuth 2.1 resource server: a test issuer on loopback
//! with real RSA and EC keys serves its JWKS over HTTP; tokens it signs are
//! accepted, and every kind of bad token is refused with the status and
//! `WWW-Authenticate` challenge RFC 6750 / RFC 9728 ask for; the JWKS is
//! fetched again for an unknown `kid` (once, then rate-limited), picking up
//! rotated keys; the protected resource metadata documents carry the
//! fields of RFC 9728.

#![allow(clippy::unwrap_used, missing_docs)]

mod common;
#[cfg(feature = "interop-tests")]
mod interop_common;

use common::issuer::{self, AUDIENCE, Issuer, TestKey};
use common::{Gateway, TOKEN, demo_target};
use serde_json::{Value, json};

fn init_body() -> Value {
    json!({"jsonrpc":"2.0","id":0,"method":"initialize","params":{
        "protocolVersion":"2025-06-18","capabilities":{},
        "clientInfo":{"name":"oauth-test","version":"1"}}})
}

async fn gateway(issuer: &Issuer, extra: &str) -> Gateway {
    Gateway::start(&format!(
        "[auth]\n{extra}\n[auth.oauth]\n{}\n{}",
        issuer.oauth_toml(&["mcp"]),
        demo_target("demo", "")
    ))
    .await
}

/// `initialize` on `target` with `token`: (status, WWW-Authenticate).
async fn init_with(gw: &Gateway, target: &str, token: Option<&str>) -> (u16, Option<String>) {
    let bearer = token.map(|t| format!("Bearer {t}"));
    let headers: Vec<(&str, &str)> = bearer
        .as_deref()
        .map(|b| vec![("authorization", b)])
        .unwrap_or_default();
    let r = gw
        .post(&format!("/mcp/{target}"), &headers, &init_body())
        .await;
    (r.status, r.header("www-authenticate"))
}

fn metadata_url(gw: &Gateway, target: &str) -> String {
    gw.url(&format!(
        "/.well-known/oauth-protected-resource/mcp/{target}"
    ))
}

#[tokio::test]
async fn tokens_of_both_algorithms_are_accepted_and_bind_their_subject() {
    let issuer = Issuer::start(&[TestKey::Rsa1, TestKey::Ec1], "").await;
    let gw = gateway(&issuer, "").await;
    let alice_rs = issuer.token(TestKey::Rsa1, "alice", "mcp");
    let alice_es = issuer.token(TestKey::Ec1, "alice", "mcp other");
    let bob = issuer.token(TestKey::Ec1, "bob", "mcp");

    let r = gw
        .post(
            "/mcp/demo",
            &[("authorization", &format!("Bearer {alice_rs}"))],
            &init_body(),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let sid = r.header("mcp-session-id").unwrap();
    let list = json!({"jsonrpc":"2.0","id":1,"method":"tools/list"});
    // Another token of the same subject (other key, other scopes) is the
    // same principal: the session is theirs.
    let same = gw
        .post(
            "/mcp/demo",
            &[
                ("authorization", &format!("Bearer {alice_es}")),
                ("mcp-session-id", &sid),
            ],
            &list,
        )
        .await;
    assert_eq!(same.status, 200, "{}", same.body);
    assert!(same.json()["result"]["tools"].as_array().is_some());
    // Another subject's valid token does not reach it.
    let other = gw
        .post(
            "/mcp/demo",
            &[
                ("authorization", &format!("Bearer {bob}")),
                ("mcp-session-id", &sid),
            ],
            &list,
        )
        .await;
    assert_eq!(other.status, 404, "{}", other.body);
    // A modern request with an ES256 token.
    let modern = gw
        .http
        .post(gw.url("/mcp/demo"))
        .bearer_auth(&bob)
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .header("mcp-protocol-version", common::MODERN)
        .header("mcp-method", "tools/list")
        .body(
            json!({"jsonrpc":"2.0","id":2,"method":"tools/list","params":{"_meta":{
                "io.modelcontextprotocol/protocolVersion": common::MODERN,
                "io.modelcontextprotocol/clientCapabilities": {}}}})
            .to_string(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(modern.status(), 200);
    // The JWKS was read once for all of this.
    assert_eq!(issuer.fetches(), 1);
    gw.shutdown().await;
}

#[tokio::test]
async fn quotas_count_per_subject_not_per_token() {
    let issuer = Issuer::start(&[TestKey::Rsa1, TestKey::Ec1], "").await;
    let gw = gateway(&issuer, "[limits]\nmax_sessions_per_principal = 1\n").await;
    let alice_1 = issuer.token(TestKey::Rsa1, "alice", "mcp");
    let alice_2 = issuer.token(TestKey::Ec1, "alice", "mcp");
    let bob = issuer.token(TestKey::Rsa1, "bob", "mcp");
    assert_eq!(init_with(&gw, "demo", Some(&alice_1)).await.0, 200);
    // Her second token is still her: over her one session.
    assert_eq!(init_with(&gw, "demo", Some(&alice_2)).await.0, 429);
    assert_eq!(init_with(&gw, "demo", Some(&bob)).await.0, 200);
    gw.shutdown().await;
}

#[tokio::test]
async fn bad_tokens_are_refused_with_the_right_status_and_challenge() {
    let issuer = Issuer::start(&[TestKey::Rsa1, TestKey::Ec1], "").await;
    let gw = gateway(&issuer, "").await;
    let meta = metadata_url(&gw, "demo");
    let url = issuer.url().to_owned();
    let now = issuer::now();

    // No token: 401 pointing at the metadata, naming the scope, no error.
    let (status, challenge) = init_with(&gw, "demo", None).await;
    assert_eq!(status, 401);
    assert_eq!(
        challenge.as_deref(),
        Some(format!("Bearer resource_metadata=\"{meta}\", scope=\"mcp\"").as_str())
    );

    let with = |f: &dyn Fn(&mut Value)| {
        let mut c = issuer::claims(&url, "alice", "mcp");
        f(&mut c);
        c
    };
    let cases: Vec<(&str, String, &str)> = vec![
        (
            "wrong aud",
            issuer::sign(
                TestKey::Rsa1,
                &with(&|c| c["aud"] = json!("https://elsewhere.example/mcp")),
                "rsa-1",
            ),
            "another audience",
        ),
        (
            "wrong iss",
            issuer::sign(
                TestKey::Rsa1,
                &with(&|c| c["iss"] = json!("https://evil.example")),
                "rsa-1",
            ),
            "another issuer",
        ),
        (
            "expired (beyond the leeway)",
            issuer::sign(
                TestKey::Rsa1,
                &with(&|c| {
                    c["exp"] = json!(now - 60);
                    c["nbf"] = json!(now - 600);
                }),
                "rsa-1",
            ),
            "expired",
        ),
        (
            "not yet valid",
            issuer::sign(
                TestKey::Ec1,
                &with(&|c| c["nbf"] = json!(now + 120)),
                "ec-1",
            ),
            "not valid yet",
        ),
        (
            "bad signature (another key under rsa-1's kid)",
            issuer::sign(TestKey::Rsa2, &with(&|_| {}), "rsa-1"),
            "signature",
        ),
        (
            "alg none",
            issuer::unsigned(&with(&|_| {})),
            "`none` is never accepted",
        ),
        (
            "HS256 with the RSA public key as its secret",
            issuer::hs256(&with(&|_| {}), &issuer::rsa1_public_pem(), "rsa-1"),
            "not accepted",
        ),
        (
            "no exp",
            issuer::sign(
                TestKey::Rsa1,
                &with(&|c| {
                    c.as_object_mut().unwrap().remove("exp");
                }),
                "rsa-1",
            ),
            "required claim",
        ),
        (
            "not a JWT",
            "definitely-not-a-jwt-0123456789".to_owned(),
            "not a signed JWT",
        ),
    ];
    for (what, token, why) in cases {
        let (status, challenge) = init_with(&gw, "demo", Some(&token)).await;
        assert_eq!(status, 401, "{what}");
        let challenge = challenge.unwrap_or_default();
        assert!(
            challenge.starts_with(&format!(
                "Bearer resource_metadata=\"{meta}\", scope=\"mcp\", error=\"invalid_token\", error_description=\""
            )),
            "{what}: {challenge}"
        );
        assert!(challenge.contains(why), "{what}: {challenge}");
    }

    // Expired, but within the leeway (10 s): accepted.
    let late = issuer::sign(
        TestKey::Rsa1,
        &with(&|c| c["exp"] = json!(now - 3)),
        "rsa-1",
    );
    assert_eq!(init_with(&gw, "demo", Some(&late)).await.0, 200);

    // A valid token without the required scope: 403, step-up.
    let weak = issuer.token(TestKey::Rsa1, "alice", "read");
    let (status, challenge) = init_with(&gw, "demo", Some(&weak)).await;
    assert_eq!(status, 403);
    let challenge = challenge.unwrap();
    assert!(
        challenge.starts_with(&format!(
            "Bearer error=\"insufficient_scope\", scope=\"mcp\", resource_metadata=\"{meta}\""
        )),
        "{challenge}"
    );
    // Scopes may come as an `scp` list too.
    let scp = issuer::sign(
        TestKey::Rsa1,
        &with(&|c| {
            c.as_object_mut().unwrap().remove("scope");
            c["scp"] = json!(["mcp"]);
        }),
        "rsa-1",
    );
    assert_eq!(init_with(&gw, "demo", Some(&scp)).await.0, 200);
    // Unknown targets are refused the same way before their name is told.
    let (status, challenge) = init_with(&gw, "nope", None).await;
    assert_eq!(status, 401);
    assert!(challenge.unwrap().starts_with(&format!(
        "Bearer resource_metadata=\"{}\"",
        gw.url("/.well-known/oauth-protected-resource")
    )),);
    let good = issuer.token(TestKey::Rsa1, "alice", "mcp");
    assert_eq!(init_with(&gw, "nope", Some(&good)).await.0, 404);
    gw.shutdown().await;
}

#[tokio::test]
async fn an_unknown_kid_fetches_the_jwks_once_then_is_refused() {
    let issuer = Issuer::start(&[TestKey::Rsa1], "").await;
    let gw = gateway(&issuer, "").await;
    let good = issuer.token(TestKey::Rsa1, "alice", "mcp");
    assert_eq!(init_with(&gw, "demo", Some(&good)).await.0, 200);
    assert_eq!(issuer.fetches(), 1);
    // rsa-2 is not published: one more fetch, then 401.
    let unknown = issuer.token(TestKey::Rsa2, "alice", "mcp");
    let (status, challenge) = init_with(&gw, "demo", Some(&unknown)).await;
    assert_eq!(status, 401);
    assert!(challenge.unwrap().contains("not in the issuer's JWKS"));
    assert_eq!(issuer.fetches(), 2);
    // Made-up kids do not make the gateway fetch again (rate limit).
    for kid in ["k1", "k2", "k3"] {
        let forged = issuer::sign(
            TestKey::Rsa1,
            &issuer::claims(issuer.url(), "alice", "mcp"),
            kid,
        );
        assert_eq!(init_with(&gw, "demo", Some(&forged)).await.0, 401);
    }
    assert_eq!(init_with(&gw, "demo", Some(&unknown)).await.0, 401);
    assert_eq!(issuer.fetches(), 2);
    // Known keys keep working meanwhile, from the cache.
    assert_eq!(init_with(&gw, "demo", Some(&good)).await.0, 200);
    assert_eq!(issuer.fetches(), 2);
    gw.shutdown().await;
}

#[tokio::test]
async fn an_unreadable_jwks_refuses_tokens_and_is_not_hammered() {
    let issuer = Issuer::start(&[TestKey::Rsa1], "").await;
    // The keys live at a path the issuer does not serve.
    let gw = Gateway::start(&format!(
        "[auth]\n[auth.oauth]\nissuer = \"{url}\"\naudience = \"{AUDIENCE}\"\n\
         jwks_url = \"{url}/no-such-jwks\"\n{}",
        demo_target("demo", ""),
        url = issuer.url()
    ))
    .await;
    let token = issuer.token(TestKey::Rsa1, "alice", "");
    for _ in 0..3 {
        let (status, challenge) = init_with(&gw, "demo", Some(&token)).await;
        assert_eq!(status, 401);
        assert!(challenge.unwrap().contains("could not be read"));
    }
    // One try, then the rate limit: no fetch per token.
    assert_eq!(issuer.misses(), 1);
    gw.shutdown().await;
}

#[tokio::test]
async fn a_rotated_key_is_picked_up() {
    let issuer = Issuer::start(&[TestKey::Rsa1], "").await;
    let gw = gateway(&issuer, "").await;
    let old = issuer.token(TestKey::Rsa1, "alice", "mcp");
    assert_eq!(init_with(&gw, "demo", Some(&old)).await.0, 200);
    // The issuer rotates: rsa-2 replaces rsa-1.
    issuer.publish(&[TestKey::Rsa2]);
    let new = issuer.token(TestKey::Rsa2, "alice", "mcp");
    assert_eq!(init_with(&gw, "demo", Some(&new)).await.0, 200);
    assert_eq!(issuer.fetches(), 2);
    // The old key is gone from the set the gateway now holds.
    assert_eq!(init_with(&gw, "demo", Some(&old)).await.0, 401);
    gw.shutdown().await;
}

#[tokio::test]
async fn a_jwks_file_works_like_a_url() {
    let issuer = Issuer::start(&[], "").await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("jwks.json");
    std::fs::write(
        &path,
        json!({"keys": [TestKey::Ec1.jwk(), {"kty":"oct","kid":"hs","k":"c2VjcmV0"}]}).to_string(),
    )
    .unwrap();
    let gw = Gateway::start(&format!(
        "[auth]\n[auth.oauth]\nissuer = \"{}\"\naudience = [\"other\", \"{AUDIENCE}\"]\n\
         algorithms = [\"ES256\"]\njwks_file = \"{}\"\n{}",
        issuer.url(),
        path.display(),
        demo_target("demo", "")
    ))
    .await;
    let es = issuer.token(TestKey::Ec1, "alice", "");
    assert_eq!(init_with(&gw, "demo", Some(&es)).await.0, 200);
    // Without a `kid`, the one key that fits the algorithm is used.
    let bare = issuer::sign_without_kid(TestKey::Ec1, &issuer::claims(issuer.url(), "bo", ""));
    assert_eq!(init_with(&gw, "demo", Some(&bare)).await.0, 200);
    // RS256 is not among this issuer's algorithms.
    let rs = issuer.token(TestKey::Rsa1, "alice", "");
    let (status, challenge) = init_with(&gw, "demo", Some(&rs)).await;
    assert_eq!(status, 401);
    assert!(challenge.unwrap().contains("not accepted"));
    // The `oct` key in the file is never used: HS256 under its kid fails.
    let hs = issuer::hs256(&issuer::claims(issuer.url(), "a", ""), b"secret", "hs");
    assert_eq!(init_with(&gw, "demo", Some(&hs)).await.0, 401);
    gw.shutdown().await;
}

#[tokio::test]
async fn static_tokens_work_alongside_where_the_target_accepts_them() {
    let issuer = Issuer::start(&[TestKey::Rsa1], "").await;
    let gw = Gateway::start(&format!(
        "[auth]\ntokens = [\"{TOKEN}\"]\n[auth.oauth]\n{}\n{}{}{}",
        issuer.oauth_toml(&[]),
        demo_target("both", ""),
        demo_target(
            "oauth_only",
            "[targets.oauth_only.auth]\nmethods = [\"oauth\"]"
        ),
        demo_target(
            "tokens_only",
            "[targets.tokens_only.auth]\nmethods = [\"tokens\"]"
        ),
    ))
    .await;
    let jwt = issuer.token(TestKey::Rsa1, "alice", "");
    assert_eq!(init_with(&gw, "both", Some(TOKEN)).await.0, 200);
    assert_eq!(init_with(&gw, "both", Some(&jwt)).await.0, 200);
    assert_eq!(init_with(&gw, "oauth_only", Some(&jwt)).await.0, 200);
    let (status, challenge) = init_with(&gw, "oauth_only", Some(TOKEN)).await;
    assert_eq!(status, 401);
    assert!(challenge.unwrap().contains("invalid_token"));
    assert_eq!(init_with(&gw, "tokens_only", Some(TOKEN)).await.0, 200);
    let (status, challenge) = init_with(&gw, "tokens_only", Some(&jwt)).await;
    assert_eq!(status, 401);
    // A target without OAuth keeps the static challenge, and has no
    // metadata document.
    assert_eq!(
        challenge.as_deref(),
        Some(r#"Bearer realm="mcpod", error="invalid_token""#)
    );
    let r = gw
        .http
        .get(metadata_url(&gw, "tokens_only"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    // /metrics takes the global credentials: either kind.
    for t in [TOKEN, jwt.as_str()] {
        let r = gw
            .http
            .get(gw.url("/metrics"))
            .bearer_auth(t)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
    }
    gw.shutdown().await;
}

/// RFC 9728 §2 and §3: the fields, their types, and `resource` equal to
/// the URL the metadata's location was derived from.
fn check_metadata(doc: &Value, resource: &str, issuer: &str, scopes: &[&str]) {
    let obj = doc.as_object().expect("a JSON object");
    assert_eq!(obj["resource"], json!(resource));
    let servers = obj["authorization_servers"].as_array().unwrap();
    assert_eq!(servers, &vec![json!(issuer)]);
    assert_eq!(obj["bearer_methods_supported"], json!(["header"]));
    if scopes.is_empty() {
        assert!(!obj.contains_key("scopes_supported"));
    } else {
        assert_eq!(obj["scopes_supported"], json!(scopes));
    }
    for (k, v) in obj {
        match k.as_str() {
            "resource" | "resource_name" => assert!(v.is_string(), "{k}"),
            "authorization_servers" | "scopes_supported" | "bearer_methods_supported" => {
                assert!(v.as_array().unwrap().iter().all(Value::is_string), "{k}");
            }
            other => panic!("a field RFC 9728 does not define: {other}"),
        }
    }
    // §2: the resource is an https URL, or here a loopback http one,
    // without a fragment.
    assert!(resource.starts_with("https://") || resource.starts_with("http://127.0.0.1:"));
    assert!(!resource.contains('#'));
}

#[tokio::test]
async fn metadata_documents_follow_rfc_9728() {
    let issuer = Issuer::start(&[TestKey::Rsa1], "").await;
    let other = Issuer::start(&[TestKey::Ec1], "").await;
    let gw = Gateway::start(&format!(
        "[auth]\n[auth.oauth]\n{}\n{}{}",
        issuer.oauth_toml(&["mcp", "mcp:tools"]),
        demo_target("demo", ""),
        demo_target(
            "own",
            &format!("[targets.own.auth.oauth]\n{}", other.oauth_toml(&[]))
        ),
    ))
    .await;
    let get = |url: String| {
        let http = gw.http.clone();
        async move {
            let r = http.get(url).send().await.unwrap();
            let status = r.status().as_u16();
            let kind = r
                .headers()
                .get("content-type")
                .map(|v| v.to_str().unwrap().to_owned());
            (status, kind, r.text().await.unwrap())
        }
    };
    let (status, kind, body) = get(metadata_url(&gw, "demo")).await;
    assert_eq!(status, 200);
    assert_eq!(kind.as_deref(), Some("application/json"));
    let doc: Value = serde_json::from_str(&body).unwrap();
    check_metadata(
        &doc,
        &gw.url("/mcp/demo"),
        issuer.url(),
        &["mcp", "mcp:tools"],
    );
    let (_, _, body) = get(metadata_url(&gw, "own")).await;
    let doc: Value = serde_json::from_str(&body).unwrap();
    check_metadata(&doc, &gw.url("/mcp/own"), other.url(), &[]);
    let (status, _, body) = get(gw.url("/.well-known/oauth-protected-resource")).await;
    assert_eq!(status, 200);
    let doc: Value = serde_json::from_str(&body).unwrap();
    check_metadata(&doc, &gw.base, issuer.url(), &["mcp", "mcp:tools"]);
    assert_eq!(get(metadata_url(&gw, "nope")).await.0, 404);
    // A browser client of an allowed Origin may read it (CORS), a preflight
    // included.
    let origin = "http://localhost:6274";
    let r = gw
        .http
        .get(metadata_url(&gw, "demo"))
        .header("origin", origin)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["access-control-allow-origin"], origin);
    let r = gw
        .http
        .request(
            reqwest::Method::OPTIONS,
            gw.url("/.well-known/oauth-protected-resource"),
        )
        .header("origin", origin)
        .header("access-control-request-method", "GET")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    assert_eq!(r.headers()["access-control-allow-origin"], origin);
    // The own issuer's tokens pass there, and the default issuer's do not.
    let own = other.token(TestKey::Ec1, "carol", "");
    assert_eq!(init_with(&gw, "own", Some(&own)).await.0, 200);
    let default = issuer.token(TestKey::Rsa1, "carol", "mcp mcp:tools");
    assert_eq!(init_with(&gw, "own", Some(&default)).await.0, 401);
    assert_eq!(init_with(&gw, "demo", Some(&default)).await.0, 200);
    gw.shutdown().await;
}

#[tokio::test]
async fn the_public_url_names_the_resource() {
    let issuer = Issuer::start(&[TestKey::Rsa1], "").await;
    let gw = Gateway::start(&format!(
        "public_url = \"https://mcp.example.com/\"\n[auth]\n[auth.oauth]\n{}\n{}",
        issuer.oauth_toml(&[]),
        demo_target("demo", "")
    ))
    .await;
    let r = gw.http.get(metadata_url(&gw, "demo")).send().await.unwrap();
    let doc: Value = r.json().await.unwrap();
    check_metadata(&doc, "https://mcp.example.com/mcp/demo", issuer.url(), &[]);
    let (status, challenge) = init_with(&gw, "demo", None).await;
    assert_eq!(status, 401);
    assert_eq!(
        challenge.as_deref(),
        Some(
            "Bearer resource_metadata=\"https://mcp.example.com/.well-known/oauth-protected-resource/mcp/demo\""
        )
    );
    gw.shutdown().await;
}

#[test]
fn oauth_config_errors_name_the_key() {
    use mcpod_server::config::RawConfig;
    let base = "[targets.t]\ncommand = \"x\"\n";
    let oauth = "issuer = \"https://id.example\"\naudience = \"a\"\njwks_url = \"https://id.example/jwks\"\n";
    let cases = [
        (
            format!("[auth]\n[auth.oauth]\naudience = \"a\"\n{base}"),
            "auth.oauth.issuer",
        ),
        (
            format!("[auth]\n[auth.oauth]\n{oauth}algorithms = [\"HS256\"]\n{base}"),
            "auth.oauth.algorithms[0]",
        ),
        (
            format!("[auth]\n[auth.oauth]\n{oauth}algorithms = [\"none\"]\n{base}"),
            "auth.oauth.algorithms[0]",
        ),
        (
            format!(
                "[auth]\n[auth.oauth]\nissuer = \"https://id.example\"\naudience = \"a\"\n{base}"
            ),
            "auth.oauth.jwks_url",
        ),
        (
            format!("[auth]\n[auth.oauth]\n{oauth}jwks_file = \"/j.json\"\n{base}"),
            "auth.oauth.jwks_file",
        ),
        (
            format!(
                "[auth]\n[auth.oauth]\nissuer = \"https://id.example\"\naudience = \"a\"\njwks_url = \"http://id.example/jwks\"\n{base}"
            ),
            "auth.oauth.jwks_url",
        ),
        (
            format!("[auth]\n[auth.oauth]\n{oauth}leeway = \"1h\"\n{base}"),
            "auth.oauth.leeway",
        ),
        (
            format!("[auth]\n[auth.oauth]\n{oauth}required_scopes = [\"a b\"]\n{base}"),
            "auth.oauth.required_scopes[0]",
        ),
        (
            format!(
                "[auth]\ntokens = [\"{TOKEN}\"]\n{base}[targets.t.auth]\nmethods = [\"oauth\"]\n"
            ),
            "targets.t.auth.methods[0]",
        ),
        (
            format!("[auth]\ndisabled = true\n[auth.oauth]\n{oauth}{base}"),
            "auth.disabled",
        ),
        (
            format!("public_url = \"mcp.example.com\"\n[auth]\ntokens = [\"{TOKEN}\"]\n{base}"),
            "public_url",
        ),
    ];
    for (text, key) in cases {
        let err = RawConfig::from_toml(&text)
            .unwrap()
            .validate()
            .unwrap_err()
            .to_string();
        assert!(err.starts_with(key), "{key}: {err}");
    }
}

/// The official TypeScript SDK, given only a client id, secret and scope,
/// gets from the 401 to a token on its own (RFC 9728 metadata, RFC 8414 at
/// the issuer, client credentials for the discovered `resource`), then
/// lists and calls a tool. Without the scope it is refused with 403
/// `insufficient_scope`, which the SDK reads as a step-up challenge.
#[cfg(feature = "interop-tests")]
#[tokio::test]
async fn the_typescript_sdk_discovers_auth_and_calls_a_tool() {
    interop_common::require_setup();
    let issuer = Issuer::start(&[TestKey::Rsa1], "").await;
    let gw = gateway(&issuer, "").await;
    let script = interop_common::interop().join("clients/ts_oauth_client.mjs");
    let run = |scope: Option<&str>| {
        let mut command = tokio::process::Command::new(interop_common::node());
        command
            .arg(&script)
            .arg(gw.url("/mcp/demo"))
            .arg(issuer.url())
            .arg(issuer::CLIENT_ID)
            .arg(issuer::CLIENT_SECRET)
            .arg("echo");
        command.args(scope);
        async move {
            tokio::time::timeout(std::time::Duration::from_secs(90), command.output())
                .await
                .expect("the SDK client timed out")
                .unwrap()
        }
    };
    // Without the scope: the token the SDK gets is refused, 403 step-up.
    let out = run(None).await;
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("403"), "{err}");
    assert_eq!(
        issuer.tokens_issued(),
        2,
        "one token, and one more on the step-up"
    );
    let out = run(Some("mcp")).await;
    assert!(
        out.status.success(),
        "the SDK client failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let line: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(
        line["tools"].as_array().unwrap().contains(&json!("echo")),
        "{line}"
    );
    assert_eq!(
        line["result"]["content"][0]["text"],
        json!("through oauth"),
        "{line}"
    );
    // It got its token by discovery: for the resource the metadata names.
    assert_eq!(issuer.tokens_issued(), 3);
    let asked = issuer.last_token_request();
    assert_eq!(asked.get("resource"), Some(&gw.url("/mcp/demo")));
    assert_eq!(asked.get("scope").map(String::as_str), Some("mcp"));
    assert_eq!(
        asked.get("grant_type").map(String::as_str),
        Some("client_credentials")
    );
    gw.shutdown().await;
}
