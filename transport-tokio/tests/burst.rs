//! Calls that arrive together reach the backend together: while other
//! calls are open, the callers of one turn of the runtime leave their
//! frames to the driver, which writes them in one write (one wake-up of
//! the backend instead of one each); a call alone is written at once.
//!
//! The backend is the demo server on a thread. Its input is a
//! `SOCK_SEQPACKET` socket pair, which keeps the gateway's writes apart:
//! each read the server makes is exactly one write of the gateway's (its
//! output is a plain stream pair: tokio takes a short read for a drained
//! socket, which a packet socket breaks). A current-thread
//! runtime makes "one turn" exact: the test's task submits every call in
//! one poll, before the driver can run.

use std::io::{self, BufReader, Read};
use std::os::fd::OwnedFd;
use std::os::unix::net::UnixStream;
use std::sync::{Arc, Mutex};

use mcpod_tokio::{
    BoxFuture, CallItem, Connection, Connector, OwnedRequest, RequestOptions, TokioRuntime,
    Upstream, UpstreamConfig,
};
use nix::sys::socket::{AddressFamily, SockFlag, SockType, socketpair};
use serde_json::value::RawValue;

/// The server's side of the socket: records every packet it reads.
struct Recording {
    socket: UnixStream,
    packets: Arc<Mutex<Vec<Vec<u8>>>>,
}

impl Read for Recording {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.socket.read(buf)?;
        if n > 0 {
            self.packets
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(buf[..n].to_vec());
        }
        Ok(n)
    }
}

/// The demo server reading a seqpacket pair (its reads recorded) and
/// writing a stream pair.
struct PacketDemo {
    packets: Arc<Mutex<Vec<Vec<u8>>>>,
}

impl Connector for PacketDemo {
    fn connect(&self) -> BoxFuture<'_, io::Result<Connection>> {
        Box::pin(async move {
            let (to_demo, demo_in): (OwnedFd, OwnedFd) = socketpair(
                AddressFamily::Unix,
                SockType::SeqPacket,
                None,
                SockFlag::SOCK_CLOEXEC,
            )
            .map_err(io::Error::from)?;
            let (from_demo, demo_out) = UnixStream::pair()?;
            // Larger than any packet here, so one read takes one whole packet.
            let input = BufReader::with_capacity(
                1 << 20,
                Recording {
                    socket: UnixStream::from(demo_in),
                    packets: self.packets.clone(),
                },
            );
            std::thread::spawn(move || mcpod_demo::run(input, demo_out));
            let to_demo = UnixStream::from(to_demo);
            to_demo.set_nonblocking(true)?;
            from_demo.set_nonblocking(true)?;
            let writer = tokio::net::UnixStream::from_std(to_demo)?;
            let reader = tokio::net::UnixStream::from_std(from_demo)?;
            Ok(mcpod_tokio::connection(reader, writer))
        })
    }
}

fn echo(id: usize) -> OwnedRequest {
    let raw = |s: String| RawValue::from_string(s).unwrap_or_else(|e| panic!("bad JSON: {e}"));
    OwnedRequest::new(
        raw(id.to_string()),
        "tools/call",
        Some(raw(format!(
            r#"{{"name":"echo","arguments":{{"text":"burst-{id}"}}}}"#
        ))),
    )
}

/// The recorded packets that carry `tools/call` frames: how many frames each.
fn call_packets(packets: &Mutex<Vec<Vec<u8>>>) -> Vec<usize> {
    let packets = packets.lock().unwrap_or_else(|e| e.into_inner());
    packets
        .iter()
        .map(|p| {
            String::from_utf8_lossy(p)
                .matches(r#""method":"tools/call""#)
                .count()
        })
        .filter(|&n| n > 0)
        .collect()
}

#[test]
fn a_burst_of_calls_reaches_the_backend_in_one_write_and_a_lone_call_at_once() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap_or_else(|e| panic!("tokio runtime: {e}"));
    runtime.block_on(async {
        let packets = Arc::new(Mutex::new(Vec::new()));
        let up = Upstream::new(
            PacketDemo {
                packets: packets.clone(),
            },
            UpstreamConfig {
                name: "burst".into(),
                ..UpstreamConfig::default()
            },
            Arc::new(TokioRuntime::current()),
        );
        up.ready().await.unwrap_or_else(|e| panic!("ready: {e}"));

        // A call alone: written by its caller at once, in a write of its own.
        let lone = up
            .call(echo(0), RequestOptions::default())
            .await
            .unwrap_or_else(|e| panic!("call: {e}"));
        assert!(matches!(
            lone.finish().await,
            Some(CallItem::Response { .. })
        ));
        assert_eq!(call_packets(&packets), [1]);

        // Seventeen calls in one poll: the first is alone and goes at once;
        // the sixteen that come while it is open go in one more write.
        const BURST: usize = 17;
        let streams = futures::future::join_all(
            (1..=BURST).map(|id| up.call(echo(id), RequestOptions::default())),
        )
        .await;
        for (i, stream) in streams.into_iter().enumerate() {
            let stream = stream.unwrap_or_else(|e| panic!("call {}: {e}", i + 1));
            match stream.finish().await {
                Some(CallItem::Response { frame, .. }) => {
                    let text = String::from_utf8_lossy(&frame).into_owned();
                    assert!(text.contains(&format!("burst-{}", i + 1)), "{text}");
                }
                other => panic!("call {}: expected a response, got {other:?}", i + 1),
            }
        }
        assert_eq!(
            call_packets(&packets),
            [1, 1, BURST - 1],
            "the burst's frames, write by write"
        );
        up.close().await;
    });
}
