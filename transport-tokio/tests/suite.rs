//! The shared behaviour suite (`mcpod-transport-suite`) on tokio, against
//! real child processes of the demo MCP server (this test binary itself,
//! re-executed as the server).

use std::io;
use std::os::unix::net::UnixStream;
use std::sync::Arc;

use mcpod_tokio::{Connection, Connector, ProcessConnector, ProcessSpec, Runtime, TokioRuntime};
use mcpod_transport_suite::{self as suite, Harness};

struct Tokio(tokio::runtime::Handle);

impl Harness for Tokio {
    fn name(&self) -> &str {
        "tokio"
    }

    fn runtime(&self) -> Arc<dyn Runtime> {
        Arc::new(TokioRuntime::new(self.0.clone()))
    }

    fn process_connector(&self, spec: ProcessSpec) -> Box<dyn Connector> {
        Box::new(ProcessConnector::new(spec))
    }

    fn socket_connection(&self, stream: UnixStream) -> io::Result<Connection> {
        stream.set_nonblocking(true)?;
        let _guard = self.0.enter();
        let (reader, writer) = tokio::net::UnixStream::from_std(stream)?.into_split();
        Ok(mcpod_tokio::connection(reader, writer))
    }
}

fn main() -> std::process::ExitCode {
    suite::serve_demo_if_child();
    let runtime = Arc::new(
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap_or_else(|e| panic!("tokio runtime: {e}")),
    );
    let harness = Arc::new(Tokio(runtime.handle().clone()));
    suite::run(suite::trials(
        harness,
        Arc::new(move |fut| runtime.block_on(fut)),
    ))
}
