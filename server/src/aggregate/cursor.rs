//! The aggregate's list cursor: which members still have pages, and each
//! one's own cursor, as `mcpod-agg1.` and base64url of a JSON array of
//! `[member index, member cursor]` pairs. A client gets it back opaque;
//! one the gateway did not make is refused.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// What every aggregate cursor starts with.
pub(crate) const CURSOR_PREFIX: &str = "mcpod-agg1.";

/// The longest cursor accepted (members' cursors are opaque to us, but
/// they are not megabytes).
pub(crate) const MAX_CURSOR_LEN: usize = 16 * 1024;

/// A member's place in a paged list: its index, and its own cursor
/// (`None`: its first page).
pub(crate) type Resume = (usize, Option<String>);

/// The cursor of the pages still to fetch; `None` when there are none.
pub(crate) fn encode(rest: &[Resume]) -> Option<String> {
    if rest.is_empty() {
        return None;
    }
    let json = serde_json::to_vec(rest).ok()?;
    Some(format!("{CURSOR_PREFIX}{}", URL_SAFE_NO_PAD.encode(json)))
}

/// The pages a cursor names, for an aggregate of `members` members: each
/// index at most once and below `members`.
pub(crate) fn decode(cursor: &str, members: usize) -> Result<Vec<Resume>, String> {
    let bad = |why: &str| format!("invalid cursor (not one this aggregate gave: {why})");
    if cursor.len() > MAX_CURSOR_LEN {
        return Err(bad("too long"));
    }
    let body = cursor
        .strip_prefix(CURSOR_PREFIX)
        .ok_or_else(|| bad("wrong prefix"))?;
    let json = URL_SAFE_NO_PAD
        .decode(body)
        .map_err(|_| bad("not base64url"))?;
    let rest: Vec<Resume> = serde_json::from_slice(&json).map_err(|_| bad("not its shape"))?;
    if rest.is_empty() {
        return Err(bad("empty"));
    }
    let mut seen = vec![false; members];
    for (index, _) in &rest {
        match seen.get_mut(*index) {
            Some(s) if !*s => *s = true,
            _ => return Err(bad("unknown or repeated member")),
        }
    }
    Ok(rest)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn a_cursor_comes_back_as_it_was_made() {
        let rest = vec![(0, Some("p2".to_owned())), (2, None)];
        let cursor = encode(&rest).unwrap();
        assert!(cursor.starts_with(CURSOR_PREFIX));
        assert_eq!(decode(&cursor, 3).unwrap(), rest);
        assert_eq!(encode(&[]), None);
    }

    #[test]
    fn cursors_not_made_here_are_refused() {
        let made = encode(&[(0, None), (1, Some("x".into()))]).unwrap();
        assert!(decode(&made, 1).is_err(), "member 1 of 1");
        assert!(decode("p2", 3).is_err());
        assert!(decode("mcpod-agg1.!!", 3).is_err());
        let repeated = format!(
            "{CURSOR_PREFIX}{}",
            URL_SAFE_NO_PAD.encode("[[0,null],[0,null]]")
        );
        assert!(decode(&repeated, 3).is_err());
        let empty = format!("{CURSOR_PREFIX}{}", URL_SAFE_NO_PAD.encode("[]"));
        assert!(decode(&empty, 3).is_err());
        assert!(decode(&"x".repeat(MAX_CURSOR_LEN + 1), 3).is_err());
    }
}
