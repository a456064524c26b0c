//! `stdio` mode: one child process, one stdin/stdout pair, a window of
//! requests in flight — what a client talking to the server directly gets.
//!
//! Each virtual client sends a request, waits for its reply and sends the
//! next, so at most `concurrency` requests are in flight, as over HTTP. A
//! writer task batches the lines that are ready into one write; a reader task
//! checks each reply against the request it answers and wakes its client.

use std::collections::HashMap;
use std::process::Stdio;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};
use tokio::sync::{mpsc, oneshot};

use crate::check::{self, CallError, Envelope, LEGACY_VERSION};
use crate::cli::StdioArgs;
use crate::rss::{ProcessProbe, SelfCpu};
use crate::run::{ClientStats, Clock, Next, RunInfo, RunResult, Tally, stop_rule};

/// The id of the `initialize` request; load requests start at 1.
const INIT_ID: u64 = 0;

/// A request waiting for its reply.
struct Pending {
    text: String,
    reply: oneshot::Sender<Result<(), CallError>>,
}

/// Requests in flight by id, and whether the server has gone.
#[derive(Default)]
struct Table {
    pending: HashMap<u64, Pending>,
    closed: bool,
}

type SharedTable = Arc<Mutex<Table>>;

fn lock(table: &Mutex<Table>) -> MutexGuard<'_, Table> {
    table.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Runs the stdio benchmark. `Err` means it could not start (spawn or handshake).
pub(crate) async fn run(args: StdioArgs, label: String) -> Result<RunResult, String> {
    let load = &args.load;
    let (program, program_args) = args
        .command
        .split_first()
        .ok_or("no server command given")?;
    let mut child = Command::new(program)
        .args(program_args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("cannot start `{program}`: {e}"))?;
    let child_pid = child.id();
    let (Some(mut stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
        return Err("the child's stdin/stdout were not captured".to_owned());
    };
    let mut stdout = BufReader::with_capacity(64 * 1024, stdout);

    let _version = handshake(&mut stdin, &mut stdout, load.timeout)
        .await
        .map_err(|e| format!("initialize handshake with `{program}` failed: {e}"))?;

    let table: SharedTable = Arc::default();
    let clock = Arc::new(Clock::start(load.warmup, stop_rule(load)));
    let probe = match load.pid.or(child_pid) {
        Some(pid) => {
            Some(ProcessProbe::start(pid, clock.measure_from()).map_err(|e| e.to_string())?)
        }
        None => None,
    };
    let own_cpu = SelfCpu::start_at(clock.measure_from());
    let (lines, queued) = mpsc::channel::<String>(load.concurrency as usize);
    let writer = tokio::spawn(write_lines(
        stdin,
        queued,
        Arc::clone(&table),
        Arc::clone(&clock),
    ));
    let reader = tokio::spawn(read_replies(stdout, Arc::clone(&table), Arc::clone(&clock)));

    let next_id = Arc::new(std::sync::atomic::AtomicU64::new(INIT_ID + 1));
    let clients: Vec<_> = (0..load.concurrency)
        .map(|client| {
            tokio::spawn(virtual_client(
                client,
                Arc::clone(&clock),
                Arc::clone(&table),
                lines.clone(),
                Arc::clone(&next_id),
                load.timeout,
                load.text_bytes as usize,
            ))
        })
        .collect();

    let mut stats = Vec::with_capacity(clients.len());
    for client in clients {
        stats.push(
            client
                .await
                .map_err(|e| format!("a client task failed: {e}"))?,
        );
    }
    let probe = probe.map(ProcessProbe::finish);
    let own_cpu = own_cpu.finish();
    // `lines` kept the server's stdin open until now, so an abort means the
    // server went away during the run.
    let died_early = clock.is_aborted();
    drop(lines);

    // Every client is done: the writer sees its channel close, flushes and
    // closes the child's stdin; the demo server then exits.
    let writer_error = writer
        .await
        .map_err(|e| format!("the writer task failed: {e}"))?;
    let exit = shut_down(&mut child).await;
    let reader_stats = match tokio::time::timeout(Duration::from_secs(5), reader).await {
        Ok(joined) => joined.map_err(|e| format!("the reader task failed: {e}"))?,
        Err(_) => return Err("the child's stdout stayed open after it was stopped".to_owned()),
    };
    let mut reader_stats = reader_stats;
    reader_stats.connected();
    reader_stats.initialized();
    if died_early {
        reader_stats.stray(&CallError::Transport(
            "the server closed its stdout during the run".to_owned(),
        ));
    }
    if let Some(error) = writer_error {
        reader_stats.stray(&CallError::Transport(format!("writing stdin: {error}")));
    }
    if let Err(error) = exit {
        reader_stats.stray(&CallError::Transport(error));
    }
    stats.push(reader_stats);
    let info = RunInfo {
        label,
        mode: "stdio",
        era: "legacy",
        target: args.command.join(" "),
        concurrency: load.concurrency,
        text_bytes: load.text_bytes,
    };
    Ok(RunResult::new(
        info,
        &clock,
        Tally::merge(stats),
        probe,
        own_cpu,
    ))
}

/// `initialize` then `notifications/initialized`; returns the negotiated version.
async fn handshake(
    stdin: &mut ChildStdin,
    stdout: &mut BufReader<ChildStdout>,
    timeout: Duration,
) -> Result<String, CallError> {
    let mut request = check::initialize_request(INIT_ID, LEGACY_VERSION);
    request.push('\n');
    write_all(stdin, request.as_bytes()).await?;
    let mut line = Vec::new();
    let result = tokio::time::timeout(timeout, async {
        loop {
            line.clear();
            let read = stdout
                .read_until(b'\n', &mut line)
                .await
                .map_err(|e| CallError::Transport(format!("reading stdout: {e}")))?;
            if read == 0 {
                return Err(CallError::Closed);
            }
            let envelope = Envelope::parse(&line)?;
            if envelope.is_response() {
                let result = envelope.result_for(INIT_ID)?;
                return protocol_version(result.get());
            }
            // A notification or a log message before the answer: skip it.
        }
    })
    .await
    .map_err(|_| CallError::Timeout(timeout))??;
    let mut initialized = check::INITIALIZED.to_owned();
    initialized.push('\n');
    write_all(stdin, initialized.as_bytes()).await?;
    Ok(result)
}

/// The `protocolVersion` of an `initialize` result.
pub(crate) fn protocol_version(result: &str) -> Result<String, CallError> {
    #[derive(serde::Deserialize)]
    struct InitializeResult {
        #[serde(rename = "protocolVersion")]
        protocol_version: String,
    }
    serde_json::from_str::<InitializeResult>(result)
        .map(|r| r.protocol_version)
        .map_err(|e| {
            CallError::Malformed(format!(
                "initialize result ({e}): {}",
                check::snippet(result.as_bytes())
            ))
        })
}

async fn write_all(stdin: &mut ChildStdin, bytes: &[u8]) -> Result<(), CallError> {
    stdin
        .write_all(bytes)
        .await
        .map_err(|e| CallError::Transport(format!("writing stdin: {e}")))
}

/// Writes queued lines, everything ready in one write. Returns the write error, if any.
async fn write_lines(
    mut stdin: ChildStdin,
    mut queued: mpsc::Receiver<String>,
    table: SharedTable,
    clock: Arc<Clock>,
) -> Option<String> {
    let mut buffer = Vec::with_capacity(64 * 1024);
    while let Some(line) = queued.recv().await {
        buffer.extend_from_slice(line.as_bytes());
        while let Ok(more) = queued.try_recv() {
            buffer.extend_from_slice(more.as_bytes());
        }
        if let Err(error) = stdin.write_all(&buffer).await {
            close(&table, &clock);
            return Some(error.to_string());
        }
        buffer.clear();
    }
    // Dropping stdin closes it: the server's cue to exit.
    None
}

/// Marks the server gone and fails every request in flight.
fn close(table: &Mutex<Table>, clock: &Clock) {
    let pending = {
        let mut table = lock(table);
        table.closed = true;
        std::mem::take(&mut table.pending)
    };
    for (_, waiting) in pending {
        let _ = waiting.reply.send(Err(CallError::Closed));
    }
    clock.abort();
}

/// Reads replies, checks each against its request and wakes its client.
/// Replies nobody waits for are tallied as errors in the returned stats.
async fn read_replies(
    mut stdout: BufReader<ChildStdout>,
    table: SharedTable,
    clock: Arc<Clock>,
) -> ClientStats {
    let mut stray = ClientStats::new();
    let mut line = Vec::with_capacity(1024);
    loop {
        line.clear();
        match stdout.read_until(b'\n', &mut line).await {
            Ok(0) => break,
            Ok(_) => {}
            Err(error) => {
                stray.stray(&CallError::Transport(format!("reading stdout: {error}")));
                break;
            }
        }
        let envelope = match Envelope::parse(&line) {
            Ok(envelope) => envelope,
            Err(error) => {
                stray.stray(&error);
                continue;
            }
        };
        if !envelope.is_response() {
            continue; // notifications are not replies
        }
        let waiting = envelope.integer_id().and_then(|id| {
            lock(&table)
                .pending
                .remove(&id)
                .map(|waiting| (id, waiting))
        });
        let Some((id, waiting)) = waiting else {
            stray.stray(&CallError::Malformed(format!(
                "a reply to no request in flight: {}",
                check::snippet(&line)
            )));
            continue;
        };
        let outcome = envelope
            .result_for(id)
            .and_then(|result| check::check_echo_result(result, &waiting.text));
        // The client may have timed out and left; its error is counted there.
        let _ = waiting.reply.send(outcome);
    }
    close(&table, &clock);
    stray
}

/// One closed-loop client over the shared pipe.
async fn virtual_client(
    client: u32,
    clock: Arc<Clock>,
    table: SharedTable,
    lines: mpsc::Sender<String>,
    next_id: Arc<std::sync::atomic::AtomicU64>,
    timeout: Duration,
    text_bytes: usize,
) -> ClientStats {
    let mut stats = ClientStats::new();
    let mut seq = 0u64;
    loop {
        let phase = clock.next();
        if phase == Next::Stop {
            break;
        }
        seq += 1;
        let id = next_id.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let text = check::echo_text(client, seq, text_bytes);
        let mut line = check::echo_request(id, &text, None);
        line.push('\n');
        let started = Instant::now();
        let outcome = call(&table, &lines, id, text, line, timeout).await;
        stats.record(phase, started, &outcome);
        if clock.is_aborted() {
            break;
        }
    }
    stats
}

async fn call(
    table: &Mutex<Table>,
    lines: &mpsc::Sender<String>,
    id: u64,
    text: String,
    line: String,
    timeout: Duration,
) -> Result<(), CallError> {
    let (reply, replied) = oneshot::channel();
    {
        let mut table = lock(table);
        if table.closed {
            return Err(CallError::Closed);
        }
        table.pending.insert(id, Pending { text, reply });
    }
    if lines.send(line).await.is_err() {
        lock(table).pending.remove(&id);
        return Err(CallError::Closed);
    }
    match tokio::time::timeout(timeout, replied).await {
        Ok(Ok(outcome)) => outcome,
        Ok(Err(_)) => Err(CallError::Closed),
        Err(_) => {
            lock(table).pending.remove(&id);
            Err(CallError::Timeout(timeout))
        }
    }
}

/// Waits for the child to exit after its stdin closed; kills it after 5 s.
async fn shut_down(child: &mut Child) -> Result<(), String> {
    match tokio::time::timeout(Duration::from_secs(5), child.wait()).await {
        Ok(Ok(status)) if status.success() => Ok(()),
        Ok(Ok(status)) => Err(format!("the server exited with {status}")),
        Ok(Err(e)) => Err(format!("waiting for the server: {e}")),
        Err(_) => {
            let _ = child.kill().await;
            Err("the server did not exit within 5 s of its stdin closing; killed it".to_owned())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_negotiated_version_is_read_from_the_initialize_result() {
        let result = r#"{"protocolVersion":"2025-11-25","capabilities":{},"serverInfo":{"name":"d","version":"1"}}"#;
        assert_eq!(protocol_version(result), Ok("2025-11-25".to_owned()));
        assert!(protocol_version(r#"{"capabilities":{}}"#).is_err());
    }
}
