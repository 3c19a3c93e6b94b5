// An MCP client built on the official TypeScript SDK, driven by the Rust integration tests.
// Usage: node sdk-client.mjs URL STEP [STEP…]   Prints one JSON object: { step: result, … }.
// MCP_TRANSPORT=sse speaks HTTP+SSE to URL; MCP_STDIO_COMMAND (below) launches a stdio server instead.
// Steps: info, tools, echo, progress, elicit, url_elicit, resources, prompts, sampling, wait, close
// (server-everything's tools); slow, ask, whoami (tests/fixtures/protected-server.mjs's); roots_tool
// (server-everything's get-roots-list), roots_changed,
// allowed (server-filesystem's list_allowed_directories, waited for until it names MCP_EXPECT_DIR),
// tools_changed (the conformance fixtures' test_trigger_tool_change, then the tools/list_changed
// notification waited for, 10 s at most: whether it came, and the tools listed after it),
// resource_updated (subscribes to test://watched-resource, calls test_trigger_resource_update, waits
// 10 s at most for notifications/resources/updated, unsubscribes: whether it came, for which URI).
// MCP_ROOTS='["file:///…"]': the client answers roots/list with those; MCP_ELICIT_URL=1: it declares
// URL-mode elicitation too and accepts a URL elicitation.
// A step run again is reported as `step#2`, `step#3`…; `session` reports the session id.
// It exits 1 (with the error in the JSON under "error") at the first failing step.
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { SSEClientTransport } from '@modelcontextprotocol/sdk/client/sse.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
import {
  ElicitRequestSchema,
  CreateMessageRequestSchema,
  ListRootsRequestSchema,
  ToolListChangedNotificationSchema,
  ResourceUpdatedNotificationSchema,
} from '@modelcontextprotocol/sdk/types.js';

const [url, ...steps] = process.argv.slice(2);
// Through a gateway that prefixes tool names (`mcpgate serve`): MCP_TOOL_PREFIX=server__.
const tool = (name) => (process.env.MCP_TOOL_PREFIX ?? '') + name;
// The name this client answers elicitations with, to tell two clients' answers apart.
const elicitName = process.env.MCP_ELICIT_NAME ?? 'Ada Lovelace';
const out = {};
const elicitations = [];

const client = new Client(
  { name: 'mcpgate-test-client', version: '1.0.0' },
  {
    capabilities: {
      elicitation: process.env.MCP_ELICIT_URL ? { form: {}, url: {} } : {},
      sampling: {},
      roots: { listChanged: true },
    },
  },
);
const rootsAsked = [];
if (process.env.MCP_ROOTS) {
  client.setRequestHandler(ListRootsRequestSchema, async () => {
    rootsAsked.push(Date.now());
    return { roots: JSON.parse(process.env.MCP_ROOTS).map((uri) => ({ uri, name: 'test root' })) };
  });
}
client.setRequestHandler(ElicitRequestSchema, async (req) => {
  elicitations.push(req.params.message);
  if (req.params.mode === 'url') return { action: 'accept' };
  // MCP_ELICIT_DELAY_MS: answer late, so that two clients' elicitations are in flight together.
  await new Promise((r) => setTimeout(r, Number(process.env.MCP_ELICIT_DELAY_MS ?? 0)));
  return { action: 'accept', content: { name: elicitName, check: true, integer: 7 } };
});
client.setRequestHandler(CreateMessageRequestSchema, async () => ({
  role: 'assistant',
  model: 'test-model',
  content: { type: 'text', text: 'sampled by the test client' },
}));

let toolsChanged = 0;
const toolsChangedWaiters = [];
client.setNotificationHandler(ToolListChangedNotificationSchema, async () => {
  toolsChanged++;
  toolsChangedWaiters.splice(0).forEach((wake) => wake());
});

const updated = [];
const updatedWaiters = [];
client.setNotificationHandler(ResourceUpdatedNotificationSchema, async (n) => {
  updated.push(n.params.uri);
  updatedWaiters.splice(0).forEach((wake) => wake());
});

const text = (result) => (result.content || []).filter((c) => c.type === 'text').map((c) => c.text).join('\n');

const run = {
  info: async () => ({ server: client.getServerVersion()?.name, protocol: transport.protocolVersion ?? null, session: !!transport.sessionId }),
  tools: async () => (await client.listTools()).tools.map((t) => t.name),
  echo: async () => text(await client.callTool({ name: tool('echo'), arguments: { message: 'hello through mcpgate' } })),
  progress: async () => {
    const events = [];
    const result = await client.callTool(
      { name: tool('trigger-long-running-operation'), arguments: { duration: 0.6, steps: 3 } },
      undefined,
      { onprogress: (p) => events.push({ progress: p.progress, total: p.total, at: Date.now() }) },
    );
    return { progress: events.map((e) => e.progress), resultAt: Date.now(), lastProgressAt: events.at(-1)?.at ?? null, text: text(result) };
  },
  elicit: async () => {
    const result = await client.callTool({ name: tool('trigger-elicitation-request'), arguments: {} });
    return { asked: elicitations.length, text: text(result) };
  },
  url_elicit: async () => {
    const result = await client.callTool({ name: tool('trigger-url-elicitation'), arguments: { url: 'https://example.com/consent' } });
    return { asked: elicitations.length, text: text(result), isError: !!result.isError };
  },
  roots_tool: async () => ({ text: text(await client.callTool({ name: tool('get-roots-list'), arguments: {} })), asked: rootsAsked.length }),
  roots_changed: async () => {
    await client.sendRootsListChanged();
    return true;
  },
  allowed: async () => {
    const want = process.env.MCP_EXPECT_DIR ?? '';
    let last = '';
    for (let i = 0; i < 100; i++) {
      last = text(await client.callTool({ name: tool('list_allowed_directories'), arguments: {} }));
      if (want && last.includes(want)) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    return { text: last, rootsAsked: rootsAsked.length };
  },
  sampling: async () => text(await client.callTool({ name: tool('trigger-sampling-request'), arguments: { prompt: 'hi', maxTokens: 10 } })),
  resources: async () => {
    const list = (await client.listResources()).resources;
    const templates = (await client.listResourceTemplates()).resourceTemplates;
    const read = await client.readResource({ uri: list[0].uri });
    return { count: list.length, templates: templates.length, first: list[0].uri, read: read.contents.length };
  },
  prompts: async () => {
    const list = (await client.listPrompts()).prompts;
    const simple = list.find((p) => !(p.arguments || []).some((a) => a.required)) || list[0];
    const got = await client.getPrompt({ name: simple.name, arguments: {} });
    return { names: list.map((p) => p.name), got: got.messages.length };
  },
  slow: async () => {
    const events = [];
    const result = await client.callTool({ name: tool('slow-progress'), arguments: { steps: 3, interval_ms: 50 } }, undefined, {
      onprogress: (p) => events.push({ progress: p.progress, at: Date.now() }),
    });
    return { progress: events.map((e) => e.progress), resultAt: Date.now(), lastProgressAt: events.at(-1)?.at ?? null, text: text(result) };
  },
  ask: async () => {
    const result = await client.callTool({ name: tool('ask'), arguments: {} });
    return { asked: elicitations.length, text: text(result) };
  },
  tools_changed: async () => {
    const before = toolsChanged;
    const heard = new Promise((resolve) => {
      toolsChangedWaiters.push(() => resolve(true));
      setTimeout(() => resolve(false), 10_000);
    });
    const said = text(await client.callTool({ name: tool('test_trigger_tool_change'), arguments: {} }));
    const came = toolsChanged > before || (await heard);
    return { said, heard: came, tools: (await client.listTools()).tools.map((t) => t.name) };
  },
  resource_updated: async () => {
    const uri = 'test://watched-resource';
    await client.subscribeResource({ uri });
    const before = updated.length;
    const heard = new Promise((resolve) => {
      updatedWaiters.push(() => resolve(true));
      setTimeout(() => resolve(false), 10_000);
    });
    await client.callTool({ name: tool('test_trigger_resource_update'), arguments: {} });
    const came = updated.length > before || (await heard);
    await client.unsubscribeResource({ uri });
    return { heard: came, uri: updated[before] ?? null };
  },
  whoami: async () => JSON.parse(text(await client.callTool({ name: tool('whoami'), arguments: {} }))),
  // Pauses until a line arrives on stdin, so a test can change the world mid-session.
  wait: async () => {
    process.stderr.write('waiting\n');
    process.stdin.resume();
    await new Promise((resolve) => process.stdin.once('data', resolve));
    process.stdin.pause();
    return true;
  },
  session: async () => transport.sessionId ?? null,
  close: async () => {
    if (transport.terminateSession) await transport.terminateSession();
    await client.close();
    return true;
  },
};

// MCP_STDIO_COMMAND='["cmd","arg",…]': launch that command and speak stdio to it (URL is ignored).
const stdio = process.env.MCP_STDIO_COMMAND ? JSON.parse(process.env.MCP_STDIO_COMMAND) : null;
const transport = stdio
  ? new StdioClientTransport({ command: stdio[0], args: stdio.slice(1), stderr: 'inherit' })
  : process.env.MCP_TRANSPORT === 'sse'
    ? new SSEClientTransport(new URL(url))
    : new StreamableHTTPClientTransport(new URL(url));
try {
  await client.connect(transport);
  for (const step of steps) {
    if (!run[step]) throw new Error(`unknown step ${step}`);
    let key = step;
    for (let n = 2; key in out; n++) key = `${step}#${n}`;
    out[key] = await run[step]();
  }
  process.stdout.write(JSON.stringify(out) + '\n');
  process.exit(0);
} catch (e) {
  out.error = String(e?.stack || e);
  process.stdout.write(JSON.stringify(out) + '\n');
  process.exit(1);
}
