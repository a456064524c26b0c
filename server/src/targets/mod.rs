//! Targets: each configured backend, the [`Backend`]s that run it and the
//! fan-out of their traffic that names no call, its call budget, and the
//! backend kinds (local processes, execs in containerd containers).

mod backend;
mod containerd;
mod launch;
mod target;

pub(crate) use backend::{Backend, Member, no_answer};
pub(crate) use containerd::{BotContainers, BotRefusal, check_target};
pub(crate) use target::{PrincipalSlot, Registry, Target};
