//! Bearer tokens in the config: inline lists and token files.

use std::path::Path;

use super::error::{ConfigError, invalid};

/// Tokens given inline and/or in a file; `None` when neither is set.
pub(super) fn collect_tokens(
    section: &str,
    inline: Option<Vec<String>>,
    file: Option<&Path>,
) -> Result<Option<Vec<String>>, ConfigError> {
    if inline.is_none() && file.is_none() {
        return Ok(None);
    }
    let mut tokens = Vec::new();
    for (i, t) in inline.unwrap_or_default().into_iter().enumerate() {
        check_token(&format!("{section}.tokens[{i}]"), &t)?;
        tokens.push(t);
    }
    if let Some(path) = file {
        let key = format!("{section}.token_file");
        let text = std::fs::read_to_string(path)
            .map_err(|e| invalid(&key, format!("cannot read {}: {e}", path.display())))?;
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            check_token(&format!("{key} ({}:{})", path.display(), n + 1), line)?;
            tokens.push(line.to_owned());
        }
    }
    if tokens.is_empty() {
        return Err(invalid(
            format!("{section}.tokens"),
            "no tokens given (an empty list would lock every client out)",
        ));
    }
    Ok(Some(tokens))
}

fn check_token(key: &str, token: &str) -> Result<(), ConfigError> {
    if token.len() < 16 {
        return Err(invalid(key, "a token must be at least 16 characters long"));
    }
    if !token.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(invalid(
            key,
            "a token must be printable ASCII without spaces",
        ));
    }
    Ok(())
}

/// `tokens` with the named tokens of `section` added, their names noted
/// in `names` (by token). A name is what policies call the token by.
pub(super) fn add_named(
    section: &str,
    tokens: Option<Vec<String>>,
    named: Option<std::collections::BTreeMap<String, String>>,
    names: &mut std::collections::BTreeMap<String, String>,
) -> Result<Option<Vec<String>>, ConfigError> {
    let Some(named) = named else {
        return Ok(tokens);
    };
    let key = format!("{section}.named_tokens");
    if named.is_empty() {
        return Err(invalid(key, "empty (leave it out instead)"));
    }
    let mut tokens = tokens.unwrap_or_default();
    for (name, token) in named {
        let key = format!("{key}.{name}");
        let name_ok = !name.is_empty()
            && name.len() <= 64
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
        if !name_ok {
            return Err(invalid(
                key,
                "a token name may use letters, digits, `-`, `_` and `.` (at most 64)",
            ));
        }
        check_token(&key, &token)?;
        if names.get(&token).is_some_and(|n| *n != name) {
            return Err(invalid(key, "this token already has another name"));
        }
        names.insert(token.clone(), name);
        tokens.push(token);
    }
    Ok(Some(tokens))
}
