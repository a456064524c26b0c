//! [`Aggregate`]: an aggregate's config with its members' targets, and
//! the resource URIs and templates its members have listed (for routing
//! `resources/read` and `resources/subscribe`).

use std::collections::HashMap;
use std::sync::Arc;

use parking_lot::Mutex;

use crate::config::{AggregateConfig, AggregateMember};
use crate::targets::{Registry, Target};

use super::merge::Named;
use super::uri::{self, Owner};

/// Most resource URIs remembered per aggregate; past it, new ones are
/// routed by template only (or after the next full listing).
const MAX_URIS: usize = 65_536;

/// Most URI templates remembered per aggregate.
const MAX_TEMPLATES: usize = 4096;

/// What the members listed: URIs (with who listed each) and templates.
#[derive(Debug, Default)]
struct Listed {
    uris: HashMap<String, Vec<usize>>,
    templates: Vec<(usize, String)>,
}

/// An aggregate in force: its config, its members' targets (in member
/// order), and what they listed.
#[derive(Debug)]
pub(crate) struct Aggregate {
    /// The validated config.
    pub(crate) config: AggregateConfig,
    targets: Vec<Arc<Target>>,
    listed: Mutex<Listed>,
    /// Why it serves nothing (names that collide across members).
    refused: Mutex<Option<String>>,
}

impl Aggregate {
    /// The aggregate of `config` over the targets of `registry` (`None`
    /// if a member is not in it: validation makes sure it is).
    pub(crate) fn new(config: &AggregateConfig, registry: &Registry) -> Option<Aggregate> {
        let targets = config
            .members
            .iter()
            .map(|m| registry.get(&m.target).cloned())
            .collect::<Option<Vec<_>>>()?;
        Some(Aggregate {
            config: config.clone(),
            targets,
            listed: Mutex::default(),
            refused: Mutex::default(),
        })
    }

    /// The aggregates of `configs` over `registry`.
    pub(crate) fn all(
        configs: &std::collections::BTreeMap<String, AggregateConfig>,
        registry: &Registry,
    ) -> HashMap<String, Arc<Aggregate>> {
        configs
            .iter()
            .filter_map(|(name, c)| Some((name.clone(), Arc::new(Aggregate::new(c, registry)?))))
            .collect()
    }

    /// From now on the aggregate answers every request with `why`.
    pub(crate) fn refuse(&self, why: String) {
        *self.refused.lock() = Some(why);
    }

    /// Why the aggregate refuses every request, if it does.
    pub(crate) fn refused(&self) -> Option<String> {
        self.refused.lock().clone()
    }

    /// Its name.
    pub(crate) fn name(&self) -> &str {
        &self.config.name
    }

    /// How many members it has.
    pub(crate) fn len(&self) -> usize {
        self.targets.len()
    }

    /// Member `index`: its config and its target.
    pub(crate) fn member(&self, index: usize) -> Option<(&AggregateMember, &Arc<Target>)> {
        Some((self.config.members.get(index)?, self.targets.get(index)?))
    }

    /// The members as merges name them.
    pub(crate) fn named(&self) -> Vec<Named<'_>> {
        self.config
            .members
            .iter()
            .map(|m| Named {
                name: &m.target,
                prefix: &m.prefix,
            })
            .collect()
    }

    /// The member a call of `name` goes to, and the member's own name.
    pub(crate) fn route<'a>(&self, name: &'a str) -> Option<(usize, &'a str)> {
        let (member, rest) = self.config.member_of(name)?;
        let index = self
            .config
            .members
            .iter()
            .position(|m| m.target == member.target)?;
        Some((index, rest))
    }

    /// Notes the URIs member `index` listed.
    pub(crate) fn note_uris<'a>(&self, index: usize, uris: impl Iterator<Item = &'a str>) {
        let mut listed = self.listed.lock();
        for u in uris {
            if let Some(who) = listed.uris.get_mut(u) {
                if !who.contains(&index) {
                    who.push(index);
                }
            } else if listed.uris.len() < MAX_URIS {
                listed.uris.insert(u.to_owned(), vec![index]);
            }
        }
    }

    /// Notes the URI templates member `index` listed.
    pub(crate) fn note_templates<'a>(
        &self,
        index: usize,
        templates: impl Iterator<Item = &'a str>,
    ) {
        let mut listed = self.listed.lock();
        for t in templates {
            let known = listed.templates.iter().any(|(i, k)| *i == index && k == t);
            if !known && listed.templates.len() < MAX_TEMPLATES {
                listed.templates.push((index, t.to_owned()));
            }
        }
    }

    /// Where `uri` goes, as far as the members' listings so far say.
    pub(crate) fn owner_of(&self, uri: &str) -> Owner {
        let listed = self.listed.lock();
        let who = listed.uris.get(uri).map_or(&[][..], Vec::as_slice);
        uri::owner(uri, who, &listed.templates)
    }
}
