//! Credentials out of texts a backend wrote, before an operator sees them
//! (the errors on `/readyz`): backends put their connection strings into
//! their error messages.

/// `text` with the credentials it may hold replaced by `…`:
///
/// - the user information of a URL: `postgres://admin:pw@db/prod` →
///   `postgres://…@db/prod` (up to its last `@`, so an unencoded `@` or
///   `/` in a password cannot keep part of it);
/// - the value of a password-like `key=value` pair, in a query string or a
///   DSN: `?sslmode=require&password=pw` → `?sslmode=require&password=…`
///   (keys holding `pass`, `pwd`, `secret`, `token`, `auth`, `credential`,
///   or ending in `key`, any case);
/// - a bearer token: `Bearer abc` → `Bearer …`.
///
/// It errs on the side of hiding: a URL with an `@` in its path loses its
/// host too.
pub(crate) fn redact_credentials(text: &str) -> String {
    redact_bearer(&redact_pairs(&redact_userinfo(text)))
}

/// Where a value written into a text ends: whitespace or a quote.
fn ends_text_value(b: u8) -> bool {
    b.is_ascii_whitespace() || matches!(b, b'"' | b'\'' | b'`' | b'<' | b'>')
}

fn redact_userinfo(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut copied = 0;
    let mut from = 0;
    while let Some(found) = text[from..].find("://") {
        let sep = from + found;
        let start = sep + 3;
        let end = bytes[start..]
            .iter()
            .position(|&b| ends_text_value(b))
            .map_or(bytes.len(), |n| start + n);
        let has_scheme = sep > 0
            && (bytes[sep - 1].is_ascii_alphanumeric()
                || matches!(bytes[sep - 1], b'+' | b'.' | b'-'));
        if has_scheme && let Some(at) = bytes[start..end].iter().rposition(|&b| b == b'@') {
            out.push_str(&text[copied..start]);
            out.push('…');
            copied = start + at;
        }
        from = end.max(start);
    }
    out.push_str(&text[copied..]);
    out
}

fn is_key_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.')
}

fn sensitive_key(key: &str) -> bool {
    let key = key.to_ascii_lowercase();
    ["pass", "pwd", "secret", "token", "auth", "credential"]
        .iter()
        .any(|word| key.contains(word))
        || key.ends_with("key")
}

fn redact_pairs(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut copied = 0;
    let mut from = 0;
    while let Some(n) = bytes[from..].iter().position(|&b| b == b'=') {
        let eq = from + n;
        let key_start = bytes[..eq]
            .iter()
            .rposition(|&b| !is_key_byte(b))
            .map_or(0, |p| p + 1)
            .max(copied);
        // A quoted value runs to its closing quote.
        let (value_start, value_end) = match bytes.get(eq + 1) {
            Some(&q @ (b'"' | b'\'')) => {
                let start = eq + 2;
                let end = bytes[start..]
                    .iter()
                    .position(|&b| b == q)
                    .map_or(bytes.len(), |p| start + p);
                (start, end)
            }
            _ => {
                let start = eq + 1;
                let end = bytes[start..]
                    .iter()
                    .position(|&b| ends_text_value(b) || matches!(b, b'&' | b';' | b',' | b')'))
                    .map_or(bytes.len(), |p| start + p);
                (start, end)
            }
        };
        if key_start < eq && value_end > value_start && sensitive_key(&text[key_start..eq]) {
            out.push_str(&text[copied..value_start]);
            out.push('…');
            copied = value_end;
        }
        from = value_end.max(eq + 1);
    }
    out.push_str(&text[copied..]);
    out
}

fn redact_bearer(text: &str) -> String {
    // ASCII lowercasing keeps every byte where it was.
    let lower = text.to_ascii_lowercase();
    let bytes = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut copied = 0;
    let mut from = 0;
    while let Some(found) = lower[from..].find("bearer ") {
        let mut start = from + found + "bearer ".len();
        while bytes.get(start) == Some(&b' ') {
            start += 1;
        }
        let end = bytes[start..]
            .iter()
            .position(|&b| ends_text_value(b) || matches!(b, b',' | b';'))
            .map_or(bytes.len(), |n| start + n);
        if end > start {
            out.push_str(&text[copied..start]);
            out.push('…');
            copied = end;
        }
        from = end.max(start);
    }
    out.push_str(&text[copied..]);
    out
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::redact_credentials as redact;

    #[test]
    fn url_user_information_is_hidden() {
        assert_eq!(
            redact(
                "initialize failed: cannot connect to postgres://admin:hunter2@db.internal:5432/prod"
            ),
            "initialize failed: cannot connect to postgres://…@db.internal:5432/prod"
        );
        assert_eq!(redact("mysql://root@db/x"), "mysql://…@db/x");
        assert_eq!(
            redact("a redis+tls://:p@ss/w@cache:6379 b"),
            "a redis+tls://…@cache:6379 b"
        );
        assert_eq!(
            redact("\"amqp://u:p@mq\" and https://x:y@z"),
            "\"amqp://…@mq\" and https://…@z"
        );
    }

    #[test]
    fn password_like_pairs_are_hidden() {
        assert_eq!(
            redact("https://db/x?sslmode=require&password=hunter2&user=a"),
            "https://db/x?sslmode=require&password=…&user=a"
        );
        assert_eq!(
            redact("host=db user=admin password=hunter2 dbname=prod"),
            "host=db user=admin password=… dbname=prod"
        );
        for (text, want) in [
            ("PGPASSWORD=s3cret", "PGPASSWORD=…"),
            ("api_key=abc;x=1", "api_key=…;x=1"),
            ("access_token=abc,next", "access_token=…,next"),
            ("client_secret='abc'", "client_secret='…'"),
            ("AUTH=abc", "AUTH=…"),
            ("mode=fast retries=3", "mode=fast retries=3"),
            ("password= nothing", "password= nothing"),
        ] {
            assert_eq!(redact(text), want, "{text}");
        }
    }

    #[test]
    fn bearer_tokens_are_hidden() {
        assert_eq!(
            redact("upstream said: Authorization: Bearer abc.def-ghi, retry"),
            "upstream said: Authorization: Bearer …, retry"
        );
        assert_eq!(redact("bearer  xyz"), "bearer  …");
    }

    #[test]
    fn texts_without_credentials_are_kept() {
        for text in [
            "",
            "failed to start the backend: /opt/srv/mcp: No such file or directory (os error 2)",
            "https://example.com/path?q=1",
            "backend handshake failed: initialize timed out",
            "déjà vu: ünïcode stays",
            "a://",
            "://@",
        ] {
            assert_eq!(redact(text), text);
        }
    }

    fn pieces() -> impl Strategy<Value = String> {
        prop::collection::vec(
            prop_oneof![
                Just("password".to_owned()),
                Just("=".to_owned()),
                Just("://".to_owned()),
                Just("@".to_owned()),
                Just("&".to_owned()),
                Just(" ".to_owned()),
                Just("Bearer ".to_owned()),
                Just("é".to_owned()),
                "[a-z:/?]{1,3}",
            ],
            0..16,
        )
        .prop_map(|v| v.concat())
    }

    proptest! {
        #[test]
        fn redacting_twice_changes_nothing_more(text in pieces()) {
            let once = redact(&text);
            prop_assert_eq!(redact(&once), once);
        }

        #[test]
        fn a_secret_after_a_password_key_never_survives(prefix in pieces(), suffix in "[ &;]?[a-z ]{0,8}") {
            let text = format!("{prefix} password=S3CRETVALUE{suffix}");
            prop_assert!(!redact(&text).contains("S3CRETVALUE"), "{}", redact(&text));
        }
    }
}
