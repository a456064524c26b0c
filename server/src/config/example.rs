//! The example config `mcpod config example` prints: every key, with its
//! default. Its tests hold it to the parser's own types, so it cannot
//! drift: every field of every `Raw*` section is in it (set, or commented
//! out where keys exclude each other), nothing else is, and what it sets
//! is what the defaults are.

/// The example config (TOML, commented).
pub const EXAMPLE: &str = include_str!("example.toml");

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, BTreeSet};

    use serde::Deserialize;
    use serde::de::{self, Visitor};

    use super::EXAMPLE;
    use crate::config::raw::{
        RawAuth, RawBot, RawConfig, RawContainerd, RawLimits, RawLog, RawSessions, RawTarget,
    };
    use crate::config::telemetry::RawTelemetry;
    use crate::config::{ContainerdSettings, Limits};
    use crate::config::{RawOAuth, RawPolicyRule, RawTargetAuth};

    /// The field names serde's derive gives a struct (read by asking it to
    /// deserialize from a deserializer that only records them).
    fn fields<T: for<'de> Deserialize<'de>>() -> BTreeSet<&'static str> {
        struct Grab<'a>(&'a mut &'static [&'static str]);
        impl<'de> de::Deserializer<'de> for Grab<'_> {
            type Error = de::value::Error;
            fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Self::Error> {
                Err(de::Error::custom("not a struct"))
            }
            fn deserialize_struct<V: Visitor<'de>>(
                self,
                _: &'static str,
                fields: &'static [&'static str],
                _: V,
            ) -> Result<V::Value, Self::Error> {
                *self.0 = fields;
                Err(de::Error::custom("fields read"))
            }
            serde::forward_to_deserialize_any! {
                bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
                bytes byte_buf option unit unit_struct newtype_struct seq tuple
                tuple_struct map enum identifier ignored_any
            }
        }
        let mut names: &'static [&'static str] = &[];
        let _ = T::deserialize(Grab(&mut names));
        names.iter().copied().collect()
    }

    /// The keys of each kind of table in the example, commented-out ones
    /// included: `""` (the top level), `log`, `targets` (all of them), ...
    fn keys() -> BTreeMap<String, BTreeSet<String>> {
        let mut out: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        let mut table = String::new();
        for line in EXAMPLE.lines() {
            let line = line.strip_prefix("# ").unwrap_or(line).trim();
            if let Some(header) = line.strip_prefix('[').and_then(|l| l.split_once(']')) {
                // `[targets.NAME.auth.oauth]` is section `targets.auth.oauth`;
                // `[[targets.NAME.policy]]` is `targets.policy`.
                let path: Vec<&str> = header.0.trim_start_matches('[').split('.').collect();
                let named = matches!(path.first(), Some(&("targets" | "bots")));
                table = path
                    .iter()
                    .enumerate()
                    .filter(|(i, _)| !(named && *i == 1))
                    .map(|(_, p)| *p)
                    .collect::<Vec<_>>()
                    .join(".");
                out.entry(table.clone()).or_default();
                continue;
            }
            let Some((key, _)) = line.split_once(" = ") else {
                continue;
            };
            if key
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
            {
                out.entry(table.clone()).or_default().insert(key.to_owned());
            }
        }
        out
    }

    #[test]
    fn the_example_names_every_key_of_every_section_and_no_other() {
        let keys = keys();
        let sections = [
            ("", fields::<RawConfig>()),
            ("log", fields::<RawLog>()),
            ("auth", fields::<RawAuth>()),
            ("auth.oauth", fields::<RawOAuth>()),
            ("limits", fields::<RawLimits>()),
            ("sessions", fields::<RawSessions>()),
            ("targets", fields::<RawTarget>()),
            ("targets.auth", fields::<RawTargetAuth>()),
            ("targets.auth.oauth", fields::<RawOAuth>()),
            ("targets.policy", fields::<RawPolicyRule>()),
            ("bots", fields::<RawBot>()),
            ("containerd", fields::<RawContainerd>()),
            ("telemetry", fields::<RawTelemetry>()),
        ];
        let tables: BTreeSet<&str> = sections.iter().map(|(s, _)| *s).collect();
        for (section, fields) in &sections {
            let section = *section;
            assert!(!fields.is_empty(), "no fields read for [{section}]");
            let want: BTreeSet<String> = fields
                .iter()
                .filter(|f| {
                    let path = if section.is_empty() {
                        (**f).to_owned()
                    } else {
                        format!("{section}.{f}")
                    };
                    !tables.contains(path.as_str())
                })
                .map(|f| (*f).to_owned())
                .collect();
            let have = keys.get(section).cloned().unwrap_or_default();
            let missing: Vec<_> = want.difference(&have).collect();
            let unknown: Vec<_> = have.difference(&want).collect();
            assert!(
                missing.is_empty(),
                "[{section}] keys missing from the example: {missing:?}"
            );
            assert!(
                unknown.is_empty(),
                "[{section}] keys the parser does not know: {unknown:?}"
            );
        }
    }

    #[test]
    fn the_example_parses_and_sets_the_defaults() {
        let config = RawConfig::from_toml(EXAMPLE).unwrap().validate().unwrap();
        assert_eq!(config.listen.to_string(), crate::config::DEFAULT_LISTEN);
        assert_eq!(config.limits, Limits::default());
        assert_eq!(config.sessions, crate::config::SessionsConfig::default());
        assert_eq!(config.telemetry, crate::config::TelemetryConfig::default());
        assert_eq!(config.containerd, Some(ContainerdSettings::default()));
        // The example's target is what its command alone would give.
        let minimal = RawConfig::from_toml(
            "[auth]\ndisabled = true\n[targets.files]\ncommand = \"/usr/local/bin/my-mcp-server\"",
        )
        .unwrap()
        .validate()
        .unwrap();
        assert_eq!(config.targets["files"], minimal.targets["files"]);
        assert!(!config.bots["bot-42"].allow_local_stdio);
    }
}
