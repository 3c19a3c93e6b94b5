// A modern-era (2026-07-28) MCP client on the official v2 TypeScript SDK, driven by the Rust tests.
// Usage: node modern-client.mjs URL   Prints one JSON object: { protocol, tools, echo }.
import { Client, StreamableHTTPClientTransport } from '@modelcontextprotocol/client';

// `auto`: probe with server/discover, as a modern client does (the SDK's default is the 2025 handshake).
const client = new Client({ name: 'mcpgate-modern-test-client', version: '1.0.0' }, { versionNegotiation: { mode: 'auto' } });
const transport = new StreamableHTTPClientTransport(new URL(process.argv[2]));
try {
  await client.connect(transport);
  const tools = (await client.listTools()).tools.map((t) => t.name);
  const echo = (await client.callTool({ name: 'echo', arguments: { message: 'modern through mcpgate' } })).content[0].text;
  const protocol = client.getNegotiatedProtocolVersion?.() ?? transport.protocolVersion ?? null;
  process.stdout.write(JSON.stringify({ protocol, tools, echo }) + '\n');
  process.exit(0);
} catch (e) {
  process.stdout.write(JSON.stringify({ error: String(e?.stack ?? e) }) + '\n');
  process.exit(1);
}
