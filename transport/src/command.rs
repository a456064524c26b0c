//! Commands that travel to the supervisor task: what callers cannot do on
//! the shared session directly (start a backend first, close it).

use std::sync::Arc;

use mcpod_core::{BackendInfo, RequestOptions};
use serde_json::value::RawValue;
use tokio::sync::oneshot;

use crate::call::CallSender;
use crate::error::UpstreamError;
use crate::item::{OwnedOutcome, OwnedRequest, ServerRequestKey};

pub(crate) enum Command {
    Call {
        req: OwnedRequest,
        opts: RequestOptions,
        call: CallSender,
    },
    Notify {
        method: String,
        params: Option<Box<RawValue>>,
        reply: oneshot::Sender<Result<(), UpstreamError>>,
    },
    Ready(oneshot::Sender<Result<Arc<BackendInfo>, UpstreamError>>),
    Respond {
        key: ServerRequestKey,
        outcome: OwnedOutcome,
        reply: oneshot::Sender<Result<(), UpstreamError>>,
    },
    Close(oneshot::Sender<()>),
}

/// Fails a command that cannot be carried out.
pub(crate) fn refuse(cmd: Command, err: UpstreamError) {
    match cmd {
        Command::Call { call, .. } => {
            call.accept(Err(err));
        }
        Command::Notify { reply, .. } | Command::Respond { reply, .. } => {
            let _ = reply.send(Err(err));
        }
        Command::Ready(reply) => {
            let _ = reply.send(Err(err));
        }
        Command::Close(reply) => {
            let _ = reply.send(());
        }
    }
}
