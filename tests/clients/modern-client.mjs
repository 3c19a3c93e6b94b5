// A modern-era (2026-07-28) MCP client on the official v2 TypeScript SDK, driven by the Rust tests.
// Usage: node modern-client.mjs URL [progress] [elicit] [sampling] [roots] [ping]   Prints one JSON object: { protocol, tools, echo, progress?,
// elicit?, sampling?, roots?, ping? }. With the `sampling` and `roots` steps it declares those capabilities too (answering with a
// fixed sample, the root file:///home/modern/work).
// With MCPGATE_STDIO set (the mcpgate binary), it launches `mcpgate stdio URL` and speaks to it on stdin/stdout
// instead (`ping`, sent by hand over HTTP, is then left out).
// Through a gateway that prefixes tool names (`mcpgate serve`): MCP_TOOL_PREFIX=server__.
// With `elicit`, it also calls server-everything's trigger-elicitation-request: the server's question
// comes back as an input-required result, the client's handler answers it, and the retry carries the answer.
import { Client, StreamableHTTPClientTransport } from '@modelcontextprotocol/client';
import { StdioClientTransport } from '@modelcontextprotocol/client/stdio';

// `auto`: probe with server/discover, as a modern client does (the SDK's default is the 2025 handshake).
const client = new Client(
  { name: 'mcpgate-modern-test-client', version: '1.0.0' },
  {
    versionNegotiation: { mode: 'auto' },
    capabilities: {
      elicitation: { form: {} },
      ...(process.argv.includes('sampling') && { sampling: {} }),
      ...(process.argv.includes('roots') && { roots: {} }),
    },
  },
);
let asked = 0;
client.setRequestHandler('elicitation/create', async () => {
  asked += 1;
  return { action: 'accept', content: { name: 'Grace Hopper', check: true, integer: 7 } };
});
let sampled = 0;
if (process.argv.includes('sampling')) client.setRequestHandler('sampling/createMessage', async () => {
  sampled += 1;
  return { role: 'assistant', content: { type: 'text', text: 'sampled by the modern client' }, model: 'test-model' };
});
let rootsAsked = 0;
if (process.argv.includes('roots')) client.setRequestHandler('roots/list', async () => {
  rootsAsked += 1;
  return { roots: [{ uri: 'file:///home/modern/work', name: 'work' }] };
});
const tool = (name) => (process.env.MCP_TOOL_PREFIX ?? '') + name;
const stdio = process.env.MCPGATE_STDIO;
const transport = stdio
  ? new StdioClientTransport({ command: stdio, args: ['stdio', process.argv[2], '--no-banner'], stderr: 'inherit' })
  : new StreamableHTTPClientTransport(new URL(process.argv[2]));
try {
  await client.connect(transport);
  const tools = (await client.listTools()).tools.map((t) => t.name);
  const echo = (await client.callTool({ name: tool('echo'), arguments: { message: 'modern through mcpgate' } })).content[0].text;
  const protocol = client.getNegotiatedProtocolVersion?.() ?? transport.protocolVersion ?? null;
  const out = { protocol, tools, echo };
  if (process.argv.includes('ping') && !stdio) {
    // 2026-07-28 dropped `ping` (this SDK refuses to send it), but clients still do (FastMCP's
    // default mode): sent by hand, as such a client sends it.
    const meta = {
      'io.modelcontextprotocol/protocolVersion': '2026-07-28',
      'io.modelcontextprotocol/clientCapabilities': {},
      'io.modelcontextprotocol/clientInfo': { name: 'ping-by-hand', version: '1.0.0' },
    };
    const r = await fetch(process.argv[2], {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        accept: 'application/json, text/event-stream',
        'mcp-protocol-version': '2026-07-28',
        'mcp-method': 'ping',
      },
      body: JSON.stringify({ jsonrpc: '2.0', id: 'ping-1', method: 'ping', params: { _meta: meta } }),
    });
    const text = await r.text();
    out.ping = { status: r.status, body: text.includes('data:') ? JSON.parse(text.split('data:').pop()) : JSON.parse(text) };
  }
  if (process.argv.includes('progress')) {
    const seen = [];
    const r = await client.callTool({ name: tool('trigger-long-running-operation'), arguments: { duration: 0.6, steps: 3 } }, {
      // The server's progress: the SDK reports each input-required round it fulfils as progress too.
      onprogress: (p) => { if (!p.message?.startsWith('Fulfilling input required')) seen.push(p.progress); },
    });
    out.progress = { progress: seen, text: r.content[0].text };
  }
  if (process.argv.includes('sampling')) {
    const r = await client.callTool({ name: tool('trigger-sampling-request'), arguments: { prompt: 'hi', maxTokens: 5 } });
    out.sampling = { asked: sampled, text: r.content.map((c) => c.text ?? '').join('\n') };
  }
  if (process.argv.includes('roots')) {
    const r = await client.callTool({ name: tool('get-roots-list'), arguments: {} });
    out.roots = { asked: rootsAsked, text: r.content.map((c) => c.text ?? '').join('\n') };
  }
  if (process.argv.includes('elicit')) {
    const r = await client.callTool({ name: tool('trigger-elicitation-request'), arguments: {} });
    out.elicit = { asked, text: r.content.map((c) => c.text ?? '').join('\n') };
  }
  process.stdout.write(JSON.stringify(out) + '\n');
  process.exit(0);
} catch (e) {
  process.stdout.write(JSON.stringify({ error: String(e?.stack ?? e) }) + '\n');
  process.exit(1);
}
