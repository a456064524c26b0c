//! # mcpod-transport-suite
//!
//! The behaviour suite every runtime adapter of mcpod must pass, written
//! once and run by each adapter's tests against real child processes of the
//! demo MCP server (`mcpod-demo`). Each scenario is a libtest-compatible
//! test (filtering, `--list`, `--exact` work as usual).
//!
//! The demo server is the test binary itself: an adapter's suite test is a
//! `harness = false` test whose `main` first calls [`serve_demo_if_child`],
//! so [`demo`] can start `std::env::current_exe()` as the backend. Nothing has to be
//! built or found on disk, and the backend is always the code under test's
//! own build of `mcpod-demo`.
//!
//! ```ignore
//! fn main() -> std::process::ExitCode {
//!     mcpod_transport_suite::serve_demo_if_child();
//!     let runtime = std::sync::Arc::new(tokio::runtime::Runtime::new().unwrap());
//!     let harness = std::sync::Arc::new(MyHarness(runtime.handle().clone()));
//!     let block_on = std::sync::Arc::new(move |f| runtime.block_on(f));
//!     mcpod_transport_suite::run(mcpod_transport_suite::trials(harness, block_on))
//! }
//! ```

#![forbid(unsafe_code)]
#![warn(missing_docs)]

use std::io::{self, BufReader};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use mcpod_core::{Deadline, EndReason, Era, EraMode, RequestOptions, SendError};
use serde_json::Value;
use serde_json::value::RawValue;

use mcpod_transport::{
    BoxFuture, CallItem, CallStream, Connection, Connector, OwnedOutcome, OwnedRequest,
    ProcessSpec, Runtime, Upstream, UpstreamConfig, UpstreamError, UpstreamEvent, timeout_at,
};

/// The environment variable that makes a suite test binary serve the demo
/// MCP server instead (its value: the demo's command-line arguments).
pub const DEMO_ENV: &str = "MCPOD_SUITE_DEMO";

/// What an adapter provides to run the suite on its runtime.
pub trait Harness: Send + Sync + 'static {
    /// A short name for the report (`tokio`, `async-std`, `smol`).
    fn name(&self) -> &str;
    /// The runtime under test.
    fn runtime(&self) -> Arc<dyn Runtime>;
    /// The adapter's child-process connector for `spec`.
    fn process_connector(&self, spec: ProcessSpec) -> Box<dyn Connector>;
    /// A connection over one end of a Unix socket pair, with the adapter's
    /// own async socket type.
    fn socket_connection(&self, stream: UnixStream) -> io::Result<Connection>;
}

/// If this process was started by [`demo`], serves the demo MCP server on
/// stdin/stdout and exits; otherwise returns at once. Call it first thing in
/// the suite test's `main`.
pub fn serve_demo_if_child() {
    let Some(args) = std::env::var_os(DEMO_ENV) else {
        return;
    };
    let args = args.to_string_lossy().into_owned();
    let code = match mcpod_demo::parse_args(args.split_whitespace()) {
        Ok(mcpod_demo::Command::Serve(config)) => {
            match mcpod_demo::run_with(config, io::stdin().lock(), io::stdout()) {
                Ok(()) => 0,
                Err(e) => {
                    eprintln!("demo server: {e}");
                    1
                }
            }
        }
        Ok(_) => 2,
        Err(e) => {
            eprintln!("{e}");
            2
        }
    };
    std::process::exit(code);
}

/// The demo MCP server as a process: this very executable, told by
/// [`DEMO_ENV`] to serve it, with `args` (e.g. `--legacy-only`).
pub fn demo(args: &[&str]) -> ProcessSpec {
    let exe = std::env::current_exe().unwrap_or_else(|e| panic!("current_exe: {e}"));
    ProcessSpec::new(exe).env(DEMO_ENV, args.join(" "))
}

type ScenarioFn = fn(Arc<dyn Harness>) -> BoxFuture<'static, ()>;

/// Every scenario, by name.
pub const SCENARIOS: &[(&str, ScenarioFn)] = &[
    ("ready_and_echo_both_eras", ready_and_echo_both_eras),
    (
        "colliding_ids_from_many_handles",
        colliding_ids_from_many_handles,
    ),
    (
        "progress_routed_with_token_restored",
        progress_routed_with_token_restored,
    ),
    ("dropped_call_is_cancelled", dropped_call_is_cancelled),
    (
        "deadline_times_out_and_cancels",
        deadline_times_out_and_cancels,
    ),
    (
        "crash_fails_calls_then_restarts",
        crash_fails_calls_then_restarts,
    ),
    ("garbage_line_is_survived", garbage_line_is_survived),
    (
        "server_requests_and_broadcasts",
        server_requests_and_broadcasts,
    ),
    (
        "asking_calls_take_turns_on_the_drivers_clock",
        asking_calls_take_turns_on_the_drivers_clock,
    ),
    (
        "backend_not_reading_fails_fast",
        backend_not_reading_fails_fast,
    ),
    ("close_reaps_stubborn_process", close_reaps_stubborn_process),
    (
        "long_stderr_line_does_not_block",
        long_stderr_line_does_not_block,
    ),
    ("env_cwd_and_cleared_env", env_cwd_and_cleared_env),
    ("spawn_failure_is_reported", spawn_failure_is_reported),
    ("socket_backend", socket_backend),
    (
        "handshake_failure_is_reported",
        handshake_failure_is_reported,
    ),
    (
        "dropping_every_handle_shuts_down",
        dropping_every_handle_shuts_down,
    ),
    (
        "oversize_reply_fails_its_call_at_once",
        oversize_reply_fails_its_call_at_once,
    ),
    (
        "backoff_refuses_at_once_then_recovers",
        backoff_refuses_at_once_then_recovers,
    ),
    (
        "backoff_doubles_up_to_its_cap",
        backoff_doubles_up_to_its_cap,
    ),
    (
        "waiting_for_a_backend_is_bounded",
        waiting_for_a_backend_is_bounded,
    ),
];

/// How long one scenario may take before it fails.
const SCENARIO_TIMEOUT: Duration = Duration::from_secs(30);

/// Runs `future` to completion on the adapter's runtime.
pub type BlockOn = Arc<dyn Fn(BoxFuture<'static, ()>) + Send + Sync>;

/// The scenarios as libtest trials on `harness`'s runtime, named
/// `{harness}::{scenario}`, each bounded by a timeout.
pub fn trials(harness: Arc<dyn Harness>, block_on: BlockOn) -> Vec<libtest_mimic::Trial> {
    SCENARIOS
        .iter()
        .map(|(name, scenario)| {
            let harness = harness.clone();
            let block_on = block_on.clone();
            let scenario = *scenario;
            libtest_mimic::Trial::test(format!("{}::{name}", harness.name()), move || {
                let rt = harness.runtime();
                let fut = scenario(harness.clone());
                let (done_tx, done) = std::sync::mpsc::channel();
                block_on(Box::pin(async move {
                    let finished = timeout_at(&*rt, Instant::now() + SCENARIO_TIMEOUT, fut)
                        .await
                        .is_some();
                    let _ = done_tx.send(finished);
                }));
                match done.try_recv() {
                    Ok(true) => Ok(()),
                    _ => Err(format!("timed out after {SCENARIO_TIMEOUT:?}").into()),
                }
            })
        })
        .collect()
}

/// Runs the trials the command line selects (libtest's arguments), one at
/// a time unless `--test-threads` says otherwise. Call
/// [`serve_demo_if_child`] first thing in `main`.
pub fn run(trials: Vec<libtest_mimic::Trial>) -> std::process::ExitCode {
    let mut args = libtest_mimic::Arguments::from_args();
    // Scenarios watch processes and timing; one at a time keeps them honest.
    args.test_threads.get_or_insert(1);
    libtest_mimic::run(&args, trials).exit_code()
}

fn config() -> UpstreamConfig {
    UpstreamConfig {
        name: "suite".into(),
        // Clean exits on stdin EOF are asserted: be generous on a loaded
        // machine (scenarios about stubborn processes set their own).
        shutdown_grace: Duration::from_secs(3),
        restart_backoff_min: Duration::from_millis(20),
        restart_backoff_max: Duration::from_millis(500),
        ..UpstreamConfig::default()
    }
}

fn legacy_config() -> UpstreamConfig {
    let mut config = config();
    config.core.era_mode = EraMode::Legacy;
    config
}

fn upstream(h: &Arc<dyn Harness>, spec: ProcessSpec, config: UpstreamConfig) -> Upstream {
    Upstream::new(h.process_connector(spec), config, h.runtime())
}

fn raw(json: &str) -> Box<RawValue> {
    RawValue::from_string(json.to_owned()).unwrap_or_else(|e| panic!("bad JSON {json}: {e}"))
}

fn tool(id: &str, name: &str, arguments: Value) -> OwnedRequest {
    let params = serde_json::json!({ "name": name, "arguments": arguments });
    OwnedRequest::new(raw(id), "tools/call", Some(raw(&params.to_string())))
}

async fn sleep(h: &Arc<dyn Harness>, d: Duration) {
    h.runtime().sleep_until(Instant::now() + d).await;
}

async fn within<F: std::future::Future>(
    h: &Arc<dyn Harness>,
    d: Duration,
    what: &str,
    f: F,
) -> F::Output {
    let rt = h.runtime();
    match timeout_at(&*rt, Instant::now() + d, f).await {
        Some(out) => out,
        None => panic!("{what}: not done within {d:?}"),
    }
}

/// Polls `check` every 20 ms until it holds, failing after `d`.
async fn eventually(
    h: &Arc<dyn Harness>,
    d: Duration,
    what: &str,
    mut check: impl FnMut() -> bool,
) {
    let until = Instant::now() + d;
    while !check() {
        assert!(Instant::now() < until, "{what}: not true within {d:?}");
        sleep(h, Duration::from_millis(20)).await;
    }
}

fn parse(frame: &[u8]) -> Value {
    serde_json::from_slice(frame)
        .unwrap_or_else(|e| panic!("bad frame {}: {e}", String::from_utf8_lossy(frame)))
}

/// Runs a call to its end; returns the response frame (panics on `Ended`).
async fn call(up: &Upstream, req: OwnedRequest) -> Vec<u8> {
    let stream = up
        .call(req, RequestOptions::default())
        .await
        .unwrap_or_else(|e| panic!("call refused: {e}"));
    response(stream).await
}

async fn response(stream: CallStream) -> Vec<u8> {
    match stream.finish().await {
        Some(CallItem::Response { frame, .. }) => frame,
        other => panic!("expected a response, got {other:?}"),
    }
}

/// The text of a tool result's first content item.
fn text(frame: &[u8]) -> String {
    let v = parse(frame);
    match v["result"]["content"][0]["text"].as_str() {
        Some(t) => t.to_owned(),
        None => panic!("no text content in {v}"),
    }
}

async fn stats(up: &Upstream) -> Value {
    let frame = call(up, tool(r#""stats""#, "stats", serde_json::json!({}))).await;
    serde_json::from_str(&text(&frame)).unwrap_or_else(|e| panic!("stats not JSON: {e}"))
}

fn cancelled_ids(stats: &Value) -> Vec<String> {
    stats["cancelled"]
        .as_array()
        .map(|ids| ids.iter().map(Value::to_string).collect())
        .unwrap_or_default()
}

fn pid_gone(pid: u32) -> bool {
    !Path::new(&format!("/proc/{pid}")).exists()
}

// ---- scenarios ----

fn ready_and_echo_both_eras(h: Arc<dyn Harness>) -> BoxFuture<'static, ()> {
    Box::pin(async move {
        let up = upstream(&h, demo(&[]), config());
        assert!(up.backend_info().is_none());
        assert!(!up.status().alive, "nothing starts before it is needed");
        let info = up.ready().await.expect("ready");
        assert_eq!(info.era, Era::Modern);
        let frame = call(
            &up,
            tool(r#""a""#, "echo", serde_json::json!({"text": "hi"})),
        )
        .await;
        assert!(
            frame.starts_with(br#"{"jsonrpc":"2.0","id":"a","#),
            "{}",
            String::from_utf8_lossy(&frame)
        );
        assert_eq!(text(&frame), "hi");
        let status = up.status();
        assert!(status.alive && !status.closed);
        assert_eq!(
            (status.generation, status.restarts, status.calls_in_flight),
            (1, 0, 0)
        );
        assert_eq!(status.era, Some(Era::Modern));
        let pid = status.pid.expect("a pid");
        assert_eq!(stats(&up).await["pid"], pid);

        // A legacy-only backend: discovery falls back to `initialize`.
        let legacy = upstream(&h, demo(&["--legacy-only"]), config());
        let info = legacy.ready().await.expect("legacy ready");
        assert_eq!(info.era, Era::Legacy);
        let frame = call(
            &legacy,
            tool("7", "add", serde_json::json!({"a": 2, "b": 3})),
        )
        .await;
        assert_eq!(parse(&frame)["result"]["structuredContent"]["sum"], 5);
        assert_eq!(stats(&legacy).await["initialize_count"], 1);
        up.close().await;
        legacy.close().await;
        assert!(pid_gone(pid), "pid {pid} still exists after close");
        assert!(up.status().closed);
        assert_eq!(up.status().last_exit.map(|e| e.success()), Some(true));
    })
}

fn colliding_ids_from_many_handles(h: Arc<dyn Harness>) -> BoxFuture<'static, ()> {
    Box::pin(async move {
        let up = upstream(&h, demo(&[]), config());
        up.ready().await.expect("ready");
        const IDS: [&str; 4] = ["1", r#""1""#, "1152921504606846976", r#""x""#];
        let mut handles = Vec::new();
        for task in 0..8 {
            let up = up.clone();
            let (tx, rx) = futures::channel::oneshot::channel();
            h.runtime().spawn(Box::pin(async move {
                let calls = IDS.iter().enumerate().map(|(i, id)| {
                    let up = up.clone();
                    async move {
                        let mine = format!("task {task} call {i}");
                        let req = tool(id, "echo", serde_json::json!({ "text": mine }));
                        (id, mine, call(&up, req).await)
                    }
                });
                let _ = tx.send(futures::future::join_all(calls).await);
            }));
            handles.push(rx);
        }
        let mut answered = 0;
        for rx in handles {
            let results = within(&h, Duration::from_secs(20), "colliding calls", rx)
                .await
                .expect("task panicked");
            for (id, mine, frame) in results {
                let prefix = format!(r#"{{"jsonrpc":"2.0","id":{id},"#);
                assert!(
                    frame.starts_with(prefix.as_bytes()),
                    "id not byte-exact: {}",
                    String::from_utf8_lossy(&frame)
                );
                assert_eq!(text(&frame), mine, "answer went to the wrong caller");
                answered += 1;
            }
        }
        assert_eq!(answered, 32);
        assert_eq!(up.status().calls_in_flight, 0);
        up.close().await;
    })
}

fn progress_routed_with_token_restored(h: Arc<dyn Harness>) -> BoxFuture<'static, ()> {
    Box::pin(async move {
        let up = upstream(&h, demo(&[]), config());
        up.ready().await.expect("ready");
        let start = |id: &'static str, steps: u64| {
            let up = up.clone();
            async move {
                // Both callers picked the same token.
                let params = serde_json::json!({
                    "name": "progress",
                    "arguments": { "steps": steps, "delay_ms": 5 },
                    "_meta": { "progressToken": "tok" },
                });
                let req = OwnedRequest::new(raw(id), "tools/call", Some(raw(&params.to_string())));
                let mut stream = up.call(req, RequestOptions::default()).await.expect("call");
                let mut progress = Vec::new();
                loop {
                    match stream.next().await {
                        Some(CallItem::Notification { method, frame }) => {
                            assert_eq!(method, "notifications/progress");
                            let v = parse(&frame);
                            assert_eq!(v["params"]["progressToken"], "tok", "token not restored");
                            progress.push(v["params"]["progress"].as_f64().unwrap_or(-1.0));
                        }
                        Some(CallItem::Response { frame, is_error }) => {
                            assert!(!is_error);
                            assert_eq!(parse(&frame)["id"].to_string(), id);
                            return progress;
                        }
                        other => panic!("unexpected {other:?}"),
                    }
                }
            }
        };
        let (two, four) = within(
            &h,
            Duration::from_secs(20),
            "progress calls",
            futures::future::join(start(r#""p2""#, 2), start(r#""p4""#, 4)),
        )
        .await;
        assert_eq!(two, vec![1.0, 2.0]);
        assert_eq!(four, vec![1.0, 2.0, 3.0, 4.0]);
        up.close().await;
    })
}

fn dropped_call_is_cancelled(h: Arc<dyn Harness>) -> BoxFuture<'static, ()> {
    Box::pin(async move {
        let up = upstream(&h, demo(&[]), config());
        up.ready().await.expect("ready");
        let stream = up
            .call(
                tool(r#""slow""#, "sleep", serde_json::json!({"ms": 60_000})),
                RequestOptions::default(),
            )
            .await
            .expect("call");
        let backend_id = stream.id().backend_id().to_string();
        assert_eq!(up.status().calls_in_flight, 1);
        // Let the backend start on it.
        sleep(&h, Duration::from_millis(50)).await;
        drop(stream);
        // The cancellation is written before the stats request that follows.
        let mut seen = cancelled_ids(&stats(&up).await);
        let until = Instant::now() + Duration::from_secs(5);
        while !seen.contains(&backend_id) && Instant::now() < until {
            sleep(&h, Duration::from_millis(20)).await;
            seen = cancelled_ids(&stats(&up).await);
        }
        assert!(
            seen.contains(&backend_id),
            "server never saw the cancellation of {backend_id}: {seen:?}"
        );
        assert_eq!(up.status().calls_in_flight, 0);
        up.close().await;
    })
}

fn deadline_times_out_and_cancels(h: Arc<dyn Harness>) -> BoxFuture<'static, ()> {
    Box::pin(async move {
        let up = upstream(&h, demo(&[]), config());
        up.ready().await.expect("ready");
        let opts = RequestOptions {
            deadline: Deadline::After(Duration::from_millis(200)),
            ..Default::default()
        };
        let stream = up
            .call(tool("42", "sleep", serde_json::json!({"ms": 60_000})), opts)
            .await
            .expect("call");
        let backend_id = stream.id().backend_id().to_string();
        match within(&h, Duration::from_secs(10), "deadline", stream.finish()).await {
            Some(CallItem::Ended {
                reason: EndReason::TimedOut,
                frame,
            }) => {
                let v = parse(&frame);
                assert_eq!(v["id"], 42);
                assert_eq!(v["error"]["code"], -32001);
            }
            other => panic!("expected a timeout, got {other:?}"),
        }
        assert!(cancelled_ids(&stats(&up).await).contains(&backend_id));
        up.close().await;
    })
}

fn crash_fails_calls_then_restarts(h: Arc<dyn Harness>) -> BoxFuture<'static, ()> {
    Box::pin(async move {
        let up = upstream(&h, demo(&[]), config());
        let mut events = up.subscribe();
        up.ready().await.expect("ready");
        let first_pid = up.status().pid.expect("pid");
        let mut streams = Vec::new();
        for i in 0..3 {
            let req = tool(&i.to_string(), "sleep", serde_json::json!({"ms": 60_000}));
            streams.push(up.call(req, RequestOptions::default()).await.expect("call"));
        }
        streams.push(
            up.call(
                tool(r#""boom""#, "crash", serde_json::json!({})),
                RequestOptions::default(),
            )
            .await
            .expect("crash call"),
        );
        let started = Instant::now();
        for stream in streams {
            match within(
                &h,
                Duration::from_secs(10),
                "calls to fail after the crash",
                stream.finish(),
            )
            .await
            {
                Some(CallItem::Ended {
                    reason: EndReason::BackendClosed(_),
                    frame,
                }) => {
                    assert_eq!(parse(&frame)["error"]["code"], -32000);
                }
                other => panic!("expected the call to end with the backend, got {other:?}"),
            }
        }
        assert!(started.elapsed() < Duration::from_secs(10));
        eventually(&h, Duration::from_secs(5), "crashed process reaped", || {
            pid_gone(first_pid)
        })
        .await;
        eventually(&h, Duration::from_secs(5), "exit status recorded", || {
            up.status().last_exit.and_then(|e| e.code) == Some(mcpod_demo::CRASH_EXIT_STATUS)
        })
        .await;

        // The next call starts a new process.
        let frame = call(&up, tool("1", "echo", serde_json::json!({"text": "again"}))).await;
        assert_eq!(text(&frame), "again");
        let status = up.status();
        assert_eq!((status.restarts, status.generation), (1, 2));
        assert!(status.alive);
        assert_ne!(status.pid, Some(first_pid));
        let restarted = within(&h, Duration::from_secs(5), "Restarted event", async {
            loop {
                match events.recv().await {
                    Some(UpstreamEvent::Restarted { generation }) => return generation,
                    Some(_) => continue,
                    None => panic!("events ended"),
                }
            }
        })
        .await;
        assert_eq!(restarted, 2);
        up.close().await;
    })
}

fn garbage_line_is_survived(h: Arc<dyn Harness>) -> BoxFuture<'static, ()> {
    Box::pin(async move {
        let up = upstream(&h, demo(&[]), config());
        up.ready().await.expect("ready");
        let frame = call(&up, tool("1", "garbage", serde_json::json!({}))).await;
        assert!(parse(&frame)["result"].is_object());
        let frame = call(
            &up,
            tool("2", "echo", serde_json::json!({"text": "still here"})),
        )
        .await;
        assert_eq!(text(&frame), "still here");
        let status = up.status();
        assert_eq!((status.generation, status.restarts), (1, 0));
        assert!(status.alive);
        up.close().await;
    })
}

fn server_requests_and_broadcasts(h: Arc<dyn Harness>) -> BoxFuture<'static, ()> {
    Box::pin(async move {
        let up = upstream(&h, demo(&["--legacy-only"]), legacy_config());
        let mut events = up.subscribe();
        up.ready().await.expect("ready");

        // A server request during a call goes to that caller.
        let mut stream = up
            .call(
                tool(r#""ask""#, "ask", serde_json::json!({"kind": "roots"})),
                RequestOptions::default(),
            )
            .await
            .expect("call");
        let key = match within(&h, Duration::from_secs(10), "server request", stream.next()).await {
            Some(CallItem::ServerRequest { key, method, .. }) => {
                assert_eq!(method, "roots/list");
                key
            }
            other => panic!("expected roots/list, got {other:?}"),
        };
        assert_eq!(key.generation(), 1);
        let roots =
            OwnedOutcome::Result(raw(r#"{"roots":[{"uri":"file:///suite","name":"suite"}]}"#));
        up.respond(key, roots.clone()).await.expect("respond");
        let frame = response(stream).await;
        assert!(
            text(&frame).contains("file:///suite"),
            "{}",
            String::from_utf8_lossy(&frame)
        );
        match up.respond(key, roots.clone()).await {
            Err(UpstreamError::Send(SendError::UnknownServerRequest(_))) => {}
            other => panic!("a second answer must be refused, got {other:?}"),
        }

        // A notification for everyone goes to subscribers.
        call(&up, tool("2", "notify_change", serde_json::json!({}))).await;
        let method = within(&h, Duration::from_secs(5), "broadcast", async {
            match events.recv().await {
                Some(UpstreamEvent::Notification { method, .. }) => method,
                other => panic!("expected a notification, got {other:?}"),
            }
        })
        .await;
        assert_eq!(method, "notifications/tools/list_changed");

        // An answer for a process that has ended is refused cleanly.
        let crashed = up
            .call(
                tool("3", "crash", serde_json::json!({})),
                RequestOptions::default(),
            )
            .await
            .expect("call");
        assert!(matches!(
            crashed.finish().await,
            Some(CallItem::Ended { .. })
        ));
        call(&up, tool("4", "echo", serde_json::json!({"text": "x"}))).await;
        match up.respond(key, roots).await {
            Err(UpstreamError::StaleServerRequest(k)) => assert_eq!(k, key),
            other => panic!("expected a stale key, got {other:?}"),
        }
        up.close().await;
    })
}

/// Asking calls ([`RequestOptions::may_ask`]) through the driver: the second
/// one is held until the first waits for its answer and the burst window
/// is over (a timer of the session's, armed through `poll_timeout`); its
/// question then comes on its own stream, though other calls are in flight.
fn asking_calls_take_turns_on_the_drivers_clock(h: Arc<dyn Harness>) -> BoxFuture<'static, ()> {
    Box::pin(async move {
        let up = upstream(&h, demo(&["--legacy-only"]), legacy_config());
        up.ready().await.expect("ready");
        let asking = RequestOptions {
            may_ask: true,
            ..RequestOptions::default()
        };
        let busy = up
            .call(
                tool("0", "sleep", serde_json::json!({"ms": 5000})),
                RequestOptions::default(),
            )
            .await
            .expect("call");
        let ask = |id: &str| tool(id, "ask", serde_json::json!({"kind": "roots"}));
        let mut a = up.call(ask("1"), asking).await.expect("call");
        let mut b = up.call(ask("2"), asking).await.expect("call");
        let mut questions = Vec::new();
        for (name, stream) in [("first", &mut a), ("second", &mut b)] {
            match within(&h, Duration::from_secs(10), name, stream.next()).await {
                Some(CallItem::ServerRequest { key, method, .. }) => {
                    assert_eq!(method, "roots/list");
                    questions.push(key);
                }
                other => panic!("{name}: expected roots/list, got {other:?}"),
            }
        }
        for (key, uri) in questions.into_iter().zip(["file:///a", "file:///b"]) {
            let roots = raw(&format!(r#"{{"roots":[{{"uri":"{uri}"}}]}}"#));
            up.respond(key, OwnedOutcome::Result(roots))
                .await
                .expect("respond");
        }
        let (a, b) = (response(a).await, response(b).await);
        assert!(text(&a).contains("file:///a"), "{}", text(&a));
        assert!(text(&b).contains("file:///b"), "{}", text(&b));
        drop(busy);
        up.close().await;
    })
}

/// Answers `initialize`, then never reads stdin again.
const STUCK_BACKEND: &str = r#"read line; printf '%s\n' '{"jsonrpc":"2.0","id":1,"result":{"protocolVersion":"2025-11-25","capabilities":{},"serverInfo":{"name":"stuck","version":"0"}}}'; exec sleep 1000"#;

fn backend_not_reading_fails_fast(h: Arc<dyn Harness>) -> BoxFuture<'static, ()> {
    Box::pin(async move {
        let mut config = legacy_config();
        config.core.max_queued_output = 64 * 1024;
        config.shutdown_grace = Duration::from_millis(200);
        let up = upstream(
            &h,
            ProcessSpec::new("/bin/sh").args(["-c", STUCK_BACKEND]),
            config,
        );
        up.ready().await.expect("ready");
        let pid = up.status().pid.expect("pid");
        let filler = "x".repeat(8 * 1024);
        let mut open = Vec::new();
        let started = Instant::now();
        let refused = loop {
            let req = tool(
                &open.len().to_string(),
                "echo",
                serde_json::json!({ "text": filler }),
            );
            match up.call(req, RequestOptions::default()).await {
                Ok(stream) => open.push(stream),
                Err(UpstreamError::Send(SendError::BackendNotReading(queued))) => break queued,
                Err(e) => panic!("unexpected error: {e}"),
            }
            assert!(
                open.len() < 200,
                "output is not bounded: {} calls accepted",
                open.len()
            );
        };
        // Pipe (64 KiB) + one batch being written + the session's queue.
        assert!(refused >= 64 * 1024);
        assert!(
            open.len() >= 8,
            "refused too early, after {} calls",
            open.len()
        );
        // Other handles and operations fail fast too, without blocking.
        let other = up.clone();
        let err = within(
            &h,
            Duration::from_secs(2),
            "notify",
            other.notify("notifications/roots/list_changed", None),
        )
        .await
        .expect_err("refused");
        assert!(err.to_string().contains("not reading"), "{err}");
        let err = within(
            &h,
            Duration::from_secs(2),
            "call",
            other.call(
                tool("9", "echo", serde_json::json!({})),
                RequestOptions::default(),
            ),
        )
        .await
        .expect_err("refused");
        assert!(
            matches!(err, UpstreamError::Send(SendError::BackendNotReading(_))),
            "{err}"
        );
        assert!(started.elapsed() < Duration::from_secs(10));
        assert!(up.status().alive);
        // Close: stdin closed (ignored), SIGTERM ends `sleep`.
        within(&h, Duration::from_secs(10), "close", up.close()).await;
        assert!(pid_gone(pid));
        assert_eq!(up.status().last_exit.and_then(|e| e.signal), Some(15));
        let last = open.pop().expect("open calls");
        assert!(matches!(
            last.finish().await,
            Some(CallItem::Ended {
                reason: EndReason::BackendClosed(_),
                ..
            })
        ));

        // A backend that never even answers the handshake: calls wait in a
        // bounded queue, then are refused.
        let mut config = legacy_config();
        config.core.max_queued_before_ready = 4;
        config.shutdown_grace = Duration::from_millis(200);
        let silent = upstream(&h, ProcessSpec::new("sleep").arg("1000"), config);
        let mut waiting = Vec::new();
        let refused = loop {
            let req = tool(&waiting.len().to_string(), "echo", serde_json::json!({}));
            match silent.call(req, RequestOptions::default()).await {
                Ok(stream) => waiting.push(stream),
                Err(e) => break e,
            }
            assert!(waiting.len() <= 4, "queue before ready is not bounded");
        };
        assert!(
            matches!(
                refused,
                UpstreamError::Send(SendError::NotReadyQueueFull(4))
            ),
            "{refused}"
        );
        let pid = silent.status().pid.expect("pid");
        silent.close().await;
        assert!(pid_gone(pid));
    })
}

fn close_reaps_stubborn_process(h: Arc<dyn Harness>) -> BoxFuture<'static, ()> {
    Box::pin(async move {
        let mut config = legacy_config();
        config.shutdown_grace = Duration::from_millis(200);
        // Ignores stdin EOF and SIGTERM: only SIGKILL ends it.
        let spec = ProcessSpec::new("/bin/sh").args(["-c", "trap '' TERM; exec sleep 1000"]);
        let up = upstream(&h, spec, config);
        let waiting = up.clone();
        let ready = h.runtime();
        // The handshake never completes; `ready` only starts the process.
        let (tx, rx) = futures::channel::oneshot::channel();
        ready.spawn(Box::pin(async move {
            let _ = tx.send(waiting.ready().await);
        }));
        eventually(&h, Duration::from_secs(5), "process started", || {
            up.status().pid.is_some()
        })
        .await;
        let pid = up.status().pid.expect("pid");
        within(&h, Duration::from_secs(10), "close", up.close()).await;
        assert!(pid_gone(pid), "pid {pid} survived close");
        assert_eq!(up.status().last_exit.and_then(|e| e.signal), Some(9));
        match within(&h, Duration::from_secs(5), "ready waiter", rx).await {
            Ok(Err(UpstreamError::Closed)) => {}
            other => panic!("ready must fail with Closed, got {other:?}"),
        }
        assert!(matches!(up.ready().await, Err(UpstreamError::Closed)));
        assert!(matches!(
            up.call(
                tool("1", "echo", serde_json::json!({})),
                RequestOptions::default()
            )
            .await,
            Err(UpstreamError::Closed)
        ));
        // Closing again is a no-op.
        up.close().await;
    })
}

fn long_stderr_line_does_not_block(h: Arc<dyn Harness>) -> BoxFuture<'static, ()> {
    Box::pin(async move {
        // 2 MiB on one stderr line, more than any pipe holds, before the
        // server starts: it only starts if stderr is drained.
        let script =
            r#"head -c 2097152 /dev/zero | tr '\0' x >&2; echo >&2; echo done >&2; exec "$0""#;
        let demo = demo(&[]);
        let mut spec = ProcessSpec::new("/bin/sh")
            .args(["-c", script])
            .arg(demo.program.as_os_str());
        spec.env = demo.env;
        let mut config = config();
        config.stderr_line_cap = 1024;
        let up = upstream(&h, spec, config);
        within(&h, Duration::from_secs(15), "ready", up.ready())
            .await
            .expect("ready");
        let frame = call(&up, tool("1", "echo", serde_json::json!({"text": "ok"}))).await;
        assert_eq!(text(&frame), "ok");
        up.close().await;
    })
}

/// Answers `initialize` with what it sees of its environment, then reads
/// stdin until it closes.
const ENV_BACKEND: &str = r#"read line; printf '{"jsonrpc":"2.0","id":1,"result":{"protocolVersion":"2025-11-25","capabilities":{},"serverInfo":{"name":"%s","version":"%s"},"instructions":"%s|%s"}}\n' "${FOO-unset}" "$(pwd)" "${HOME-unset}" "${PATH-unset}"; while read line; do :; done"#;

fn env_cwd_and_cleared_env(h: Arc<dyn Harness>) -> BoxFuture<'static, ()> {
    Box::pin(async move {
        let dir = std::env::temp_dir();
        let spec = ProcessSpec::new("/bin/sh")
            .args(["-c", ENV_BACKEND])
            .env("FOO", "bar")
            .cwd(&dir);
        let seen = |up: Upstream| async move {
            let info = up.ready().await.expect("ready");
            let server: Value = serde_json::from_str(
                info.server_info
                    .as_deref()
                    .map(RawValue::get)
                    .unwrap_or("null"),
            )
            .expect("json");
            let out = (
                server["name"].as_str().unwrap_or_default().to_owned(),
                server["version"].as_str().unwrap_or_default().to_owned(),
                info.instructions.clone().unwrap_or_default(),
            );
            up.close().await;
            assert!(
                up.status().last_exit.is_some_and(|e| e.success()),
                "stdin EOF ends it"
            );
            out
        };
        let canonical = std::fs::canonicalize(&dir).unwrap_or(dir.clone());
        let (name, cwd, inst) = seen(upstream(&h, spec.clone(), legacy_config())).await;
        assert_eq!(name, "bar");
        assert_eq!(Path::new(&cwd), canonical);
        let path = std::env::var("PATH").unwrap_or_else(|_| "unset".into());
        assert!(
            inst.ends_with(&format!("|{path}")),
            "PATH not inherited: {inst}"
        );

        let (name, _, inst) = seen(upstream(&h, spec.env_clear(), legacy_config())).await;
        assert_eq!(name, "bar");
        assert!(
            inst.starts_with("unset|"),
            "HOME leaked into a cleared environment: {inst}"
        );
    })
}

fn spawn_failure_is_reported(h: Arc<dyn Harness>) -> BoxFuture<'static, ()> {
    Box::pin(async move {
        let up = upstream(&h, ProcessSpec::new("/nonexistent/mcpod-backend"), config());
        for _ in 0..2 {
            match up.ready().await {
                Err(e @ UpstreamError::SpawnFailed(_)) => {
                    assert!(e.to_string().contains("/nonexistent/mcpod-backend"), "{e}");
                }
                other => panic!("expected SpawnFailed, got {other:?}"),
            }
            match up
                .call(
                    tool("1", "echo", serde_json::json!({})),
                    RequestOptions::default(),
                )
                .await
            {
                Err(UpstreamError::SpawnFailed(_)) => {}
                other => panic!("expected SpawnFailed, got {other:?}"),
            }
        }
        let status = up.status();
        assert!(!status.alive);
        assert_eq!(status.generation, 0);
        up.close().await;
        assert!(up.status().closed);
    })
}

/// The demo server on a thread, over a Unix socket pair.
struct SocketDemo(Arc<dyn Harness>);

impl Connector for SocketDemo {
    fn connect(&self) -> BoxFuture<'_, io::Result<Connection>> {
        Box::pin(async move {
            let (ours, theirs) = UnixStream::pair()?;
            let input = BufReader::new(theirs.try_clone()?);
            std::thread::spawn(move || mcpod_demo::run(input, theirs));
            self.0.socket_connection(ours)
        })
    }
}

fn socket_backend(h: Arc<dyn Harness>) -> BoxFuture<'static, ()> {
    Box::pin(async move {
        let up = Upstream::new(SocketDemo(h.clone()), config(), h.runtime());
        let info = up.ready().await.expect("ready");
        assert_eq!(info.era, Era::Modern);
        let frame = call(
            &up,
            tool(
                r#""sock""#,
                "echo",
                serde_json::json!({"text": "over a socket"}),
            ),
        )
        .await;
        assert_eq!(text(&frame), "over a socket");
        let status = up.status();
        assert!(status.alive);
        assert_eq!(status.pid, None);
        up.close().await;
        assert!(!up.status().alive);
    })
}

/// Refuses `initialize`, then reads stdin until it closes.
const REFUSING_BACKEND: &str = r#"read line; printf '%s\n' '{"jsonrpc":"2.0","id":1,"error":{"code":-32603,"message":"not today"}}'; while read line; do :; done"#;

fn handshake_failure_is_reported(h: Arc<dyn Harness>) -> BoxFuture<'static, ()> {
    Box::pin(async move {
        let spec = ProcessSpec::new("/bin/sh").args(["-c", REFUSING_BACKEND]);
        let up = upstream(&h, spec, legacy_config());
        match up.ready().await {
            Err(UpstreamError::HandshakeFailed(why)) => assert!(why.contains("not today"), "{why}"),
            other => panic!("expected HandshakeFailed, got {other:?}"),
        }
        eventually(&h, Duration::from_secs(5), "failed backend stopped", || {
            up.status().last_exit.is_some_and(|e| e.success())
        })
        .await;
        // The next operation tries a new process.
        assert!(matches!(
            up.ready().await,
            Err(UpstreamError::HandshakeFailed(_))
        ));
        assert_eq!(up.status().generation, 2);
        up.close().await;
    })
}

fn dropping_every_handle_shuts_down(h: Arc<dyn Harness>) -> BoxFuture<'static, ()> {
    Box::pin(async move {
        let up = upstream(&h, demo(&[]), config());
        up.ready().await.expect("ready");
        let pid = up.status().pid.expect("pid");
        let stream = up
            .call(
                tool("1", "sleep", serde_json::json!({"ms": 60_000})),
                RequestOptions::default(),
            )
            .await
            .expect("call");
        let other = up.clone();
        drop(up);
        assert!(!pid_gone(pid), "one handle is left");
        drop(other);
        match within(
            &h,
            Duration::from_secs(10),
            "open call to end",
            stream.finish(),
        )
        .await
        {
            Some(CallItem::Ended {
                reason: EndReason::BackendClosed(_),
                ..
            }) => {}
            other => panic!("expected the call to end with the backend, got {other:?}"),
        }
        eventually(&h, Duration::from_secs(10), "process reaped", || {
            pid_gone(pid)
        })
        .await;
    })
}

fn oversize_reply_fails_its_call_at_once(h: Arc<dyn Harness>) -> BoxFuture<'static, ()> {
    Box::pin(async move {
        let mut config = config();
        config.core.max_frame_len = 64 * 1024;
        let up = upstream(&h, demo(&[]), config);
        up.ready().await.expect("ready");
        let opts = RequestOptions {
            deadline: Deadline::After(Duration::from_secs(25)),
            ..RequestOptions::default()
        };
        let started = Instant::now();
        let stream = up
            .call(
                tool(r#""huge""#, "big", serde_json::json!({"bytes": 1 << 20})),
                opts,
            )
            .await
            .expect("call");
        match within(
            &h,
            Duration::from_secs(10),
            "oversize reply",
            stream.finish(),
        )
        .await
        {
            Some(CallItem::Ended {
                reason: EndReason::ResponseTooLarge { limit },
                frame,
            }) => {
                assert_eq!(limit, 64 * 1024);
                let v = parse(&frame);
                assert_eq!(v["id"], "huge");
                assert_eq!(v["error"]["code"], -32000);
                let message = v["error"]["message"].as_str().unwrap_or_default();
                assert!(message.contains("larger than the 65536-byte limit"), "{v}");
            }
            other => panic!("expected the call to end as too large, got {other:?}"),
        }
        assert!(started.elapsed() < Duration::from_secs(10));
        // The backend keeps working, in the same process: a reply just
        // under the limit, then another call.
        let frame = call(&up, tool("2", "big", serde_json::json!({"bytes": 60_000}))).await;
        assert_eq!(text(&frame).len(), 60_000);
        let frame = call(&up, tool("3", "echo", serde_json::json!({"text": "still"}))).await;
        assert_eq!(text(&frame), "still");
        let status = up.status();
        assert_eq!((status.generation, status.restarts), (1, 0));
        up.close().await;
    })
}

/// Exits at once with status 1 unless the file `$1` exists; then serves the
/// demo MCP server (`$0`).
const DIES_UNLESS_FLAG: &str = r#"[ -e "$1" ] || exit 1; exec "$0""#;

/// A backend that dies on start-up until `flag` exists.
fn dies_unless(flag: &Path) -> ProcessSpec {
    let demo = demo(&[]);
    let mut spec = ProcessSpec::new("/bin/sh")
        .args(["-c", DIES_UNLESS_FLAG])
        .arg(demo.program.as_os_str())
        .arg(flag.as_os_str());
    spec.env = demo.env;
    spec
}

/// Runs a call that must end without a response: its backend died.
async fn call_dies(h: &Arc<dyn Harness>, up: &Upstream) {
    let req = tool("1", "echo", serde_json::json!({"text": "x"}));
    match within(
        h,
        Duration::from_secs(10),
        "call to a dying backend",
        async {
            match up.call(req, RequestOptions::default()).await {
                Ok(stream) => stream.finish().await,
                Err(e) => panic!("refused: {e}"),
            }
        },
    )
    .await
    {
        Some(CallItem::Ended {
            reason: EndReason::BackendClosed(_),
            ..
        }) => {}
        other => panic!("expected the call to end with its backend, got {other:?}"),
    }
}

fn backoff_refuses_at_once_then_recovers(h: Arc<dyn Harness>) -> BoxFuture<'static, ()> {
    Box::pin(async move {
        let flag = std::env::temp_dir().join(format!(
            "mcpod-suite-healthy-{}-{}",
            std::process::id(),
            h.name()
        ));
        let _ = std::fs::remove_file(&flag);
        let mut config = config();
        config.restart_backoff_min = Duration::from_secs(1);
        config.restart_backoff_max = Duration::from_secs(4);
        let up = upstream(&h, dies_unless(&flag), config);
        // The first death restarts at once; the second backs off.
        call_dies(&h, &up).await;
        eventually(&h, Duration::from_secs(5), "first death noticed", || {
            let s = up.status();
            !s.alive && s.generation == 1
        })
        .await;
        assert_eq!(up.status().retry_after, None, "a one-off death waits not");
        call_dies(&h, &up).await;
        eventually(&h, Duration::from_secs(5), "backoff begun", || {
            up.status().retry_after.is_some()
        })
        .await;
        // Every operation meanwhile fails at once, and none is queued.
        let started = Instant::now();
        for i in 0..50 {
            let req = tool(&i.to_string(), "echo", serde_json::json!({"text": "x"}));
            match up.call(req, RequestOptions::default()).await {
                Err(UpstreamError::Restarting {
                    retry_after,
                    failures,
                }) => {
                    assert!(retry_after <= Duration::from_secs(1), "{retry_after:?}");
                    assert!(!retry_after.is_zero());
                    assert_eq!(failures, 2);
                }
                other => panic!("expected Restarting, got {other:?}"),
            }
        }
        let err = up.ready().await.expect_err("ready refused");
        assert!(matches!(err, UpstreamError::Restarting { .. }), "{err}");
        assert!(err.to_string().contains("retry in"), "{err}");
        let err = up
            .notify("notifications/roots/list_changed", None)
            .await
            .expect_err("notify refused");
        assert!(matches!(err, UpstreamError::Restarting { .. }), "{err}");
        let refusing = started.elapsed();
        eprintln!(
            "{}: 52 operations refused in a backoff in {refusing:?}",
            h.name()
        );
        assert!(
            refusing < Duration::from_millis(100),
            "52 refusals took {refusing:?}"
        );
        let status = up.status();
        assert!(!status.alive);
        assert_eq!(
            status.generation, 2,
            "a refused operation started a backend"
        );

        // Healthy again: after the backoff the next call starts it.
        std::fs::write(&flag, b"").unwrap_or_else(|e| panic!("flag: {e}"));
        eventually(&h, Duration::from_secs(5), "backoff over", || {
            up.status().retry_after.is_none()
        })
        .await;
        let frame = call(&up, tool("9", "echo", serde_json::json!({"text": "back"}))).await;
        assert_eq!(text(&frame), "back");
        let status = up.status();
        assert_eq!((status.generation, status.restarts), (3, 2));
        assert!(status.alive);
        up.close().await;
        let _ = std::fs::remove_file(&flag);
    })
}

fn backoff_doubles_up_to_its_cap(h: Arc<dyn Harness>) -> BoxFuture<'static, ()> {
    Box::pin(async move {
        let mut config = config();
        let (min, cap) = (Duration::from_millis(40), Duration::from_millis(160));
        config.restart_backoff_min = min;
        config.restart_backoff_max = cap;
        let up = upstream(
            &h,
            ProcessSpec::new("/bin/sh").args(["-c", "exit 1"]),
            config,
        );
        let started = Instant::now();
        let mut seen = Vec::new();
        while up.status().generation < 8 {
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "too slow: {seen:?}"
            );
            let req = tool("1", "echo", serde_json::json!({}));
            match up.call(req, RequestOptions::default()).await {
                Ok(stream) => {
                    within(&h, Duration::from_secs(10), "call to end", stream.finish()).await;
                }
                Err(UpstreamError::Restarting {
                    retry_after,
                    failures,
                }) => {
                    // min, doubling, never above the cap.
                    let full = min.saturating_mul(1 << (failures - 2).min(20)).min(cap);
                    assert!(
                        retry_after <= full,
                        "{failures}: {retry_after:?} > {full:?}"
                    );
                    seen.push(failures);
                    sleep(&h, retry_after).await;
                }
                Err(e) => panic!("unexpected error: {e}"),
            }
        }
        assert!(
            seen.iter().any(|&f| f >= 5),
            "the backoff never went past its cap: {seen:?}"
        );
        up.close().await;
    })
}

/// A backend that is never reached: its connection never completes.
struct NeverConnects;

impl Connector for NeverConnects {
    fn connect(&self) -> BoxFuture<'_, io::Result<Connection>> {
        Box::pin(futures::future::pending())
    }
}

fn waiting_for_a_backend_is_bounded(h: Arc<dyn Harness>) -> BoxFuture<'static, ()> {
    Box::pin(async move {
        let mut config = config();
        config.max_queued_commands = 4;
        let up = Upstream::new(NeverConnects, config, h.runtime());
        let (tx, mut results) = futures::channel::mpsc::unbounded();
        let total = 40;
        for i in 0..total {
            let up = up.clone();
            let tx = tx.clone();
            h.runtime().spawn(Box::pin(async move {
                let req = tool(&i.to_string(), "echo", serde_json::json!({}));
                let _ = tx.unbounded_send(up.call(req, RequestOptions::default()).await.err());
            }));
            // Let the supervisor take what it takes.
            sleep(&h, Duration::from_millis(2)).await;
        }
        drop(tx);
        // The channel (4) and the backlog (4) hold the rest; every other
        // call is refused at once.
        let mut got = Vec::new();
        within(&h, Duration::from_secs(5), "refusals", async {
            while got.len() < total - 8 {
                match futures::StreamExt::next(&mut results).await {
                    Some(r) => got.push(r),
                    None => break,
                }
            }
        })
        .await;
        for r in &got {
            assert!(
                matches!(
                    r,
                    Some(UpstreamError::Send(SendError::NotReadyQueueFull(4)))
                ),
                "{r:?}"
            );
        }
        // A close is never refused, queue full or not; it ends the rest.
        within(&h, Duration::from_secs(5), "close", up.close()).await;
        within(
            &h,
            Duration::from_secs(5),
            "the waiting calls to end",
            async {
                while let Some(r) = futures::StreamExt::next(&mut results).await {
                    assert!(
                        matches!(
                            r,
                            Some(
                                UpstreamError::Closed
                                    | UpstreamError::Send(SendError::NotReadyQueueFull(_))
                            )
                        ),
                        "{r:?}"
                    );
                    got.push(r);
                }
            },
        )
        .await;
        assert_eq!(got.len(), total);
    })
}
