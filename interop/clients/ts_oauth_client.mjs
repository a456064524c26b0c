#!/usr/bin/env node
// MCP authorization end to end on the official TypeScript SDK (@modelcontextprotocol/sdk 1.32.2).
//
//   node ts_oauth_client.mjs URL ISSUER CLIENT_ID CLIENT_SECRET TOOL [SCOPE]
//
// Connects to ONE protected MCP Streamable HTTP URL with no token: the SDK gets the 401,
// reads `resource_metadata` and `scope` from its WWW-Authenticate challenge, fetches the
// protected resource metadata (RFC 9728), the authorization server's metadata (RFC 8414),
// gets a token with the client-credentials grant (`ClientCredentialsProvider`,
// client_secret_basic, the `resource` as discovered), and retries. Then it lists the tools and
// calls TOOL with {"text": "through oauth"}. This SDK's client-credentials provider asks for
// the scope it is configured with (SCOPE), not the one a challenge names: a 403
// insufficient_scope makes it try again with the same scope, and fail. Prints one JSON line:
// {"tools": [names], "result": CallToolResult}. Exits 1 on any error, bounded by a 60 s timer.

import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { ClientCredentialsProvider } from '@modelcontextprotocol/sdk/client/auth-extensions.js';

const [url, issuer, clientId, clientSecret, tool, scope] = process.argv.slice(2);
if (!tool) {
    console.error('usage: ts_oauth_client.mjs URL ISSUER CLIENT_ID CLIENT_SECRET TOOL [SCOPE]');
    process.exit(2);
}
const timer = setTimeout(() => {
    console.error('timed out');
    process.exit(1);
}, 60000);

try {
    const provider = new ClientCredentialsProvider({ clientId, clientSecret, expectedIssuer: issuer, scope });
    const transport = new StreamableHTTPClientTransport(new URL(url), { authProvider: provider });
    const client = new Client({ name: 'mcpod-oauth-interop', version: '1.0.0' });
    await client.connect(transport);
    const tools = await client.listTools();
    const result = await client.callTool({ name: tool, arguments: { text: 'through oauth' } });
    console.log(JSON.stringify({ tools: tools.tools.map((t) => t.name), result }));
    await client.close();
    clearTimeout(timer);
} catch (e) {
    console.error(`ts_oauth_client: ${e?.stack ?? e}`);
    process.exit(1);
}
