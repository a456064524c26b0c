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
