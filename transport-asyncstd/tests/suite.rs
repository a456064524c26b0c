//! The shared behaviour suite (`mcpod-transport-suite`) on async-std and on
//! smol, against real child processes of the demo MCP server (this test
//! binary itself, re-executed as the server).

use std::io;
use std::os::unix::net::UnixStream;
use std::sync::Arc;

use futures::io::AsyncReadExt;
use mcpod_async_std::{
    AsyncStdRuntime, Connection, Connector, ProcessConnector, ProcessSpec, Runtime, SmolRuntime,
};
use mcpod_transport_suite::{self as suite, Harness};

struct Adapter<R> {
    name: &'static str,
    runtime: R,
}

impl<R: Runtime + Clone> Harness for Adapter<R> {
    fn name(&self) -> &str {
        self.name
    }

    fn runtime(&self) -> Arc<dyn Runtime> {
        Arc::new(self.runtime.clone())
    }

    fn process_connector(&self, spec: ProcessSpec) -> Box<dyn Connector> {
        Box::new(ProcessConnector::new(spec))
    }

    fn socket_connection(&self, stream: UnixStream) -> io::Result<Connection> {
        let (reader, writer) = async_io::Async::new(stream)?.split();
        Ok(Connection::new(reader, writer))
    }
}

fn main() -> std::process::ExitCode {
    suite::serve_demo_if_child();
    let async_std = Arc::new(Adapter {
        name: "async-std",
        runtime: AsyncStdRuntime,
    });
    let mut trials = suite::trials(async_std, Arc::new(async_std::task::block_on));
    let smol = Arc::new(Adapter {
        name: "smol",
        runtime: SmolRuntime,
    });
    trials.extend(suite::trials(smol, Arc::new(smol::block_on)));
    suite::run(trials)
}
