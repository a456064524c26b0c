//! Log levels across eras: a legacy session sets one with
//! `logging/setLevel`, a 2026-07-28 request carries one in `_meta` (none:
//! no log messages at all). A shared backend has one level; the gateway
//! keeps it at the most verbose level anyone wants and gives each
//! recipient only the messages at or above its own.

use serde::Deserialize;

/// An MCP log level (RFC 5424 severities), least severe first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) enum LogLevel {
    /// `debug`.
    Debug,
    /// `info`.
    Info,
    /// `notice`.
    Notice,
    /// `warning`.
    Warning,
    /// `error`.
    Error,
    /// `critical`.
    Critical,
    /// `alert`.
    Alert,
    /// `emergency`.
    Emergency,
}

const NAMES: [(&str, LogLevel); 8] = [
    ("debug", LogLevel::Debug),
    ("info", LogLevel::Info),
    ("notice", LogLevel::Notice),
    ("warning", LogLevel::Warning),
    ("error", LogLevel::Error),
    ("critical", LogLevel::Critical),
    ("alert", LogLevel::Alert),
    ("emergency", LogLevel::Emergency),
];

impl LogLevel {
    /// A level by its MCP name.
    pub(crate) fn parse(name: &str) -> Option<LogLevel> {
        NAMES.iter().find(|(n, _)| *n == name).map(|(_, l)| *l)
    }

    /// Its MCP name.
    pub(crate) fn name(self) -> &'static str {
        NAMES
            .iter()
            .find(|(_, l)| *l == self)
            .map_or("debug", |(n, _)| n)
    }

    /// The level of a `notifications/message` frame, if it has one.
    pub(crate) fn of_message(frame: &[u8]) -> Option<LogLevel> {
        #[derive(Deserialize)]
        struct Frame<'a> {
            #[serde(borrow)]
            params: Option<Params<'a>>,
        }
        #[derive(Deserialize)]
        struct Params<'a> {
            #[serde(borrow)]
            level: Option<std::borrow::Cow<'a, str>>,
        }
        let f: Frame<'_> = serde_json::from_slice(frame).ok()?;
        LogLevel::parse(&f.params?.level?)
    }

    /// The level of `logging/setLevel` params.
    pub(crate) fn of_set_level(params: Option<&serde_json::value::RawValue>) -> Option<LogLevel> {
        #[derive(Deserialize)]
        struct Params<'a> {
            #[serde(borrow)]
            level: std::borrow::Cow<'a, str>,
        }
        let p: Params<'_> = serde_json::from_str(params?.get()).ok()?;
        LogLevel::parse(&p.level)
    }
}

/// Whether a recipient whose level is `wanted` gets a log message of
/// `level` (`None`: a message without a readable level, which everyone
/// who wants messages gets).
pub(crate) fn passes(wanted: LogLevel, level: Option<LogLevel>) -> bool {
    level.is_none_or(|l| l >= wanted)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_order_and_filter() {
        assert!(LogLevel::Debug < LogLevel::Emergency);
        assert_eq!(LogLevel::parse("warning"), Some(LogLevel::Warning));
        assert_eq!(LogLevel::parse("loud"), None);
        assert_eq!(LogLevel::Notice.name(), "notice");
        let frame = br#"{"jsonrpc":"2.0","method":"notifications/message","params":{"level":"info","data":"x"}}"#;
        let level = LogLevel::of_message(frame);
        assert_eq!(level, Some(LogLevel::Info));
        assert!(passes(LogLevel::Debug, level));
        assert!(passes(LogLevel::Info, level));
        assert!(!passes(LogLevel::Error, level));
    }
}
