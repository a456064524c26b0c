//! Framing throughput, and a full round trip through the core next to the
//! same work done with the official Rust SDK's (`rmcp`) message types.
#![allow(missing_docs, clippy::unwrap_used)]

use std::hint::black_box;
use std::time::Instant;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use mcpod_core::{Config, EraMode, Event, Framer, Message, Request, RequestOptions, Session};

fn framing(c: &mut Criterion) {
    let mut group = c.benchmark_group("framing");
    for size in [200usize, 4 * 1024, 256 * 1024] {
        // About 4 MiB of frames of `size` bytes each, fed in 64 KiB reads.
        let frame = {
            let mut f = br#"{"jsonrpc":"2.0","id":1,"result":{"text":""#.to_vec();
            f.resize(size - 3, b'x');
            f.extend_from_slice(b"\"}}");
            f
        };
        let count = (4 * 1024 * 1024 / size).max(1);
        let mut stream = Vec::with_capacity(count * (size + 1));
        for _ in 0..count {
            stream.extend_from_slice(&frame);
            stream.push(b'\n');
        }
        group.throughput(Throughput::Bytes(stream.len() as u64));
        group.bench_with_input(BenchmarkId::from_parameter(size), &stream, |b, stream| {
            let mut framer = Framer::new(mcpod_core::framing::DEFAULT_MAX_FRAME_LEN);
            b.iter(|| {
                let mut frames = 0usize;
                for chunk in stream.chunks(64 * 1024) {
                    framer.decode(chunk, |f| frames += f.map_or(0, |f| f.len().min(1)));
                }
                assert_eq!(frames, count);
            });
        });
    }
    group.finish();
}

const CLIENT_REQUEST: &[u8] =
    br#"{"jsonrpc":"2.0","id":42,"method":"tools/call","params":{"name":"echo","arguments":{"text":"hello"}}}"#;

fn ready_session() -> Session {
    let now = Instant::now();
    let mut s = Session::new(
        Config {
            era_mode: EraMode::Legacy,
            ..Config::default()
        },
        now,
    );
    let mut out = Vec::new();
    let _ = s.poll_transmit(&mut out);
    s.handle_input(
        b"{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{\"protocolVersion\":\"2025-11-25\",\"capabilities\":{},\"serverInfo\":{\"name\":\"b\",\"version\":\"1\"}}}\n",
        now,
    );
    let _ = s.poll_transmit(&mut out);
    while s.poll_event().is_some() {}
    s
}

/// The backend's answer to backend id `id`, written into `line`.
fn backend_response(line: &mut Vec<u8>, id: u64) {
    line.clear();
    line.extend_from_slice(br#"{"jsonrpc":"2.0","id":"#);
    line.extend_from_slice(id.to_string().as_bytes());
    line.extend_from_slice(
        br#","result":{"content":[{"type":"text","text":"hello"}],"isError":false}}"#,
    );
    line.push(b'\n');
}

fn round_trip(c: &mut Criterion) {
    let mut group = c.benchmark_group("round_trip");
    group.throughput(Throughput::Elements(1));
    group.bench_function("mcpod-core", |b| {
        let mut session = ready_session();
        let now = Instant::now();
        let mut tx = Vec::with_capacity(4096);
        let mut line = Vec::with_capacity(256);
        b.iter(|| {
            // Client request in: envelope only, payload stays raw.
            let Ok(Message::Request { id, method, params }) =
                Message::parse(black_box(CLIENT_REQUEST))
            else {
                unreachable!()
            };
            let call = session
                .send_request(
                    Request {
                        id,
                        method: &method,
                        params,
                    },
                    RequestOptions::default(),
                    now,
                )
                .unwrap();
            tx.clear();
            assert!(session.poll_transmit(&mut tx));
            black_box(&tx);
            backend_response(&mut line, call.backend_id());
            session.handle_input(&line, now);
            match session.poll_event() {
                Some(Event::Response { frame, .. }) => {
                    black_box(frame);
                }
                other => panic!("{other:?}"),
            }
        });
    });
    group.bench_function("rmcp", |b| {
        use rmcp::model::{ClientJsonRpcMessage, ServerJsonRpcMessage};
        let mut tx = Vec::with_capacity(4096);
        let mut line = Vec::with_capacity(256);
        let mut next = 1u64;
        b.iter(|| {
            // The same work with the SDK's typed messages: parse the client
            // request, write it to the backend, parse the backend's answer,
            // write it back to the client.
            let request: ClientJsonRpcMessage =
                serde_json::from_slice(black_box(CLIENT_REQUEST)).unwrap();
            tx.clear();
            serde_json::to_writer(&mut tx, &request).unwrap();
            tx.push(b'\n');
            black_box(&tx);
            next += 1;
            backend_response(&mut line, next);
            let response: ServerJsonRpcMessage = serde_json::from_slice(&line).unwrap();
            let frame = serde_json::to_vec(&response).unwrap();
            black_box(frame);
        });
    });
    group.finish();
}

criterion_group!(benches, framing, round_trip);
criterion_main!(benches);
