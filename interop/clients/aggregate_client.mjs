#!/usr/bin/env node
// An mcpod aggregate used as one server by the official TypeScript SDK
// (@modelcontextprotocol/sdk, the legacy era: `initialize`, Mcp-Session-Id, a GET stream).
//
//   node aggregate_client.mjs URL
//
// Connects to ONE Streamable HTTP URL with `Client` + `StreamableHTTPClientTransport` and
// checks what an aggregate of the demo servers `files` (legacy, paged two tools at a time)
// and `git` (modern) looks like through the SDK: the handshake, every page of tools/list
// under the members' prefixes, a call routed to each member, a tool's progress, and a
// member's list change arriving on the session's stream. One JSON line per check on
// stdout, then {"summary": true, "ok": BOOL, ...}. Exit 0 only if every check passed.
// Bounded: the whole run has 60 s.

import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { ToolListChangedNotificationSchema } from '@modelcontextprotocol/sdk/types.js';

const EXPECTED_TOOLS = [
    'files_echo', 'files_add', 'files_sleep', 'files_progress', 'files_notify_change', 'files_stats',
    'git_echo', 'git_notify_change', 'git_stats'
].sort();

const results = [];

function emit(check, ok, detail) {
    results.push({ check, ok });
    console.log(JSON.stringify({ check, ok, detail }));
}

function textOf(result) {
    return (result.content ?? []).map((c) => c.text ?? '').join('');
}

function within(ms, what, promise) {
    let timer;
    const timeout = new Promise((_, reject) => {
        timer = setTimeout(() => reject(new Error(`${what}: no answer within ${ms} ms`)), ms);
    });
    return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

async function run(url) {
    const client = new Client({ name: 'mcpod-aggregate-client', version: '1.0.0' });
    let changes = 0;
    let changed;
    const nextChange = () => new Promise((resolve) => { changed = resolve; });
    client.setNotificationHandler(ToolListChangedNotificationSchema, () => {
        changes += 1;
        if (changed) changed();
    });
    const transport = new StreamableHTTPClientTransport(new URL(url));
    await client.connect(transport);
    const info = client.getServerVersion();
    emit('connect', info?.name === 'all' && typeof transport.sessionId === 'string',
        { server_info: info, session: transport.sessionId });

    const names = [];
    let cursor;
    let pages = 0;
    do {
        const page = await client.listTools(cursor ? { cursor } : {});
        pages += 1;
        names.push(...page.tools.map((t) => t.name));
        cursor = page.nextCursor;
    } while (cursor && pages <= 10);
    const sorted = [...names].sort();
    emit('tools_list_paged_across_members',
        JSON.stringify(sorted) === JSON.stringify(EXPECTED_TOOLS) && pages === 3,
        { tools: names, pages });

    const legacy = textOf(await client.callTool({ name: 'files_echo', arguments: { text: 'via files' } }));
    const modern = textOf(await client.callTool({ name: 'git_echo', arguments: { text: 'via git' } }));
    emit('calls_routed_by_prefix', legacy === 'via files' && modern === 'via git',
        { files_echo: legacy, git_echo: modern });

    const steps = [];
    const result = await client.callTool(
        { name: 'files_progress', arguments: { steps: 3, delay_ms: 1 } },
        undefined,
        { onprogress: (p) => steps.push(p.progress) }
    );
    emit('progress_through_a_member', steps.length === 3 && !result.isError, { progress: steps });

    const waiting = nextChange();
    await client.callTool({ name: 'git_notify_change', arguments: {} });
    await within(10000, 'tools/list_changed', waiting);
    emit('list_change_from_a_member', changes >= 1, { changes });

    await transport.terminateSession();
    await client.close();
}

async function main() {
    if (process.argv.length !== 3) {
        console.error('usage: aggregate_client.mjs URL');
        return 2;
    }
    const overall = setTimeout(() => {
        emit('harness', false, { error: 'the run took over 60 s' });
        summarize();
        process.exit(1);
    }, 60000);
    try {
        await run(process.argv[2]);
    } catch (e) {
        emit('harness', false, { error: `${e?.name}: ${e?.message}` });
    }
    clearTimeout(overall);
    return summarize() ? 0 : 1;
}

function summarize() {
    const passed = results.filter((r) => r.ok).length;
    const ok = results.length > 0 && passed === results.length;
    console.log(JSON.stringify({ summary: true, ok, client: 'typescript-sdk', era: 'legacy',
        passed, checks: results.length }));
    return ok;
}

process.exit(await main());
