//! Aggregates: one endpoint serving several targets (its members). Their
//! names under per-member prefixes (`names`), lists merged across members
//! with a cursor of the members' cursors (`cursor`, `merge`), requests to
//! many members at once with a deadline each (`fanout`), resource URIs
//! routed to the member that listed them or whose template matches
//! (`uri`), and the merged discovery (`catalog`). The front ends route
//! calls to a member by prefix and serve the rest from here.

mod catalog;
mod cursor;
mod fanout;
mod members;
mod merge;
mod names;
mod startup;
mod uri;

pub(crate) use catalog::discovery;
pub(crate) use cursor::decode as decode_cursor;
pub(crate) use fanout::{Asking, discoveries, page, whole};
pub(crate) use members::Aggregate;
pub(crate) use merge::{Part, merge};
pub(crate) use names::{list_of, routed_name, with_name};
pub(crate) use startup::check_names;
pub(crate) use uri::Owner;
