//! Which member a resource URI goes to (pure): the member that listed it,
//! else the one whose URI template matches it; a URI two members claim
//! is ambiguous, and refused.

/// Where a URI goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Owner {
    /// To this member index.
    Member(usize),
    /// Claimed by these members alike (listed by several, or matched by
    /// several templates and listed by none).
    Ambiguous(Vec<usize>),
    /// No member listed it or has a matching template.
    Unknown,
}

/// The owner of `uri`, given the members that listed it (`listed`) and
/// each member's URI templates (`templates`: member index, template).
pub(crate) fn owner(uri: &str, listed: &[usize], templates: &[(usize, String)]) -> Owner {
    match listed {
        [one] => return Owner::Member(*one),
        [] => {}
        many => {
            let mut who = many.to_vec();
            who.sort_unstable();
            return Owner::Ambiguous(who);
        }
    }
    let mut matched: Vec<usize> = templates
        .iter()
        .filter(|(_, t)| matches(t, uri))
        .map(|(i, _)| *i)
        .collect();
    matched.sort_unstable();
    matched.dedup();
    match matched.as_slice() {
        [] => Owner::Unknown,
        [one] => Owner::Member(*one),
        many => Owner::Ambiguous(many.to_vec()),
    }
}

/// Whether `uri` is an expansion of the RFC 6570 `template`: literal text
/// as is; `{var}` one or more characters of a path segment; `{+var}` and
/// `{#var}` any characters; `{?…}` and `{&…}` the rest of the URI.
pub(crate) fn matches(template: &str, uri: &str) -> bool {
    let Some(parts) = parse(template) else {
        return false;
    };
    match_from(&parts, uri)
}

#[derive(Debug)]
enum Piece<'a> {
    Literal(&'a str),
    /// One segment: no `/`, `?`, `#`, `&`.
    Segment,
    /// Anything, empty included.
    Any,
}

fn parse(template: &str) -> Option<Vec<Piece<'_>>> {
    let mut out = Vec::new();
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        if open > 0 {
            out.push(Piece::Literal(&rest[..open]));
        }
        let close = rest[open..].find('}')? + open;
        let expr = &rest[open + 1..close];
        out.push(match expr.chars().next() {
            Some('+' | '#' | '?' | '&' | '/' | '.' | ';') => Piece::Any,
            Some(_) => Piece::Segment,
            None => return None,
        });
        rest = &rest[close + 1..];
    }
    if !rest.is_empty() {
        out.push(Piece::Literal(rest));
    }
    Some(out)
}

fn match_from(pieces: &[Piece<'_>], uri: &str) -> bool {
    let Some((first, rest)) = pieces.split_first() else {
        return uri.is_empty();
    };
    match first {
        Piece::Literal(text) => uri
            .strip_prefix(text)
            .is_some_and(|after| match_from(rest, after)),
        Piece::Segment => {
            let end = uri.find(['/', '?', '#', '&']).unwrap_or(uri.len());
            (1..=end).any(|n| match_from(rest, &uri[n..]))
        }
        Piece::Any => (0..=uri.len())
            .filter(|n| uri.is_char_boundary(*n))
            .any(|n| match_from(rest, &uri[n..])),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_match_their_expansions_only() {
        assert!(matches("demo://item/{id}", "demo://item/42"));
        assert!(!matches("demo://item/{id}", "demo://item/"));
        assert!(!matches("demo://item/{id}", "demo://item/4/2"));
        assert!(matches("file:///{+path}", "file:///srv/a/b.txt"));
        assert!(matches("demo://q{?a,b}", "demo://q?a=1&b=2"));
        assert!(!matches("demo://item/{id}", "other://item/42"));
        assert!(!matches("demo://{unclosed", "demo://x"));
    }

    #[test]
    fn a_uri_goes_to_who_listed_it_else_to_the_one_matching_template() {
        let templates = vec![(0, "a://{x}".to_owned()), (1, "b://{x}".to_owned())];
        assert_eq!(owner("b://1", &[], &templates), Owner::Member(1));
        assert_eq!(owner("b://1", &[0], &templates), Owner::Member(0));
        assert_eq!(owner("c://1", &[], &templates), Owner::Unknown);
        assert_eq!(
            owner("a://1", &[2, 0], &templates),
            Owner::Ambiguous(vec![0, 2])
        );
        let both = vec![(0, "x://{a}".to_owned()), (1, "x://{+b}".to_owned())];
        assert_eq!(owner("x://1", &[], &both), Owner::Ambiguous(vec![0, 1]));
    }
}
