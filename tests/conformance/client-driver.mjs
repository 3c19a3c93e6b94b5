// The "client under test" for the MCP conformance suite's CLIENT scenarios (0.1.16, and 0.2.0-alpha.12 with
// its 2026-07-28 scenarios): an official-SDK stdio
// client that launches `mcpgate stdio <server-url> [flags]` as its child and does what the scenario needs.
// The suite runs it as: node client-driver.mjs <server-url>, with MCP_CONFORMANCE_SCENARIO set and, for the
// scenarios that hand out credentials, MCP_CONFORMANCE_CONTEXT (JSON: { name, client_id, ... }).
//   MCPGATE_BIN   the mcpgate binary (default /work/main/target/release/mcpgate)
//   MCPGATE_ARGS  extra flags for the bridge, split on spaces (e.g. "-v")
//   MCPGATE_VIA   `stdio` (the default) or `connect`: then `mcpgate connect <server-url> [--oauth] [flags]`
//                 is started on a loopback port and the SDK's Streamable HTTP client talks to it
// The bridge gets a fresh credential store (MCPGATE_STORE_DIR) and follow-redirects.mjs as its browser
// (MCPGATE_BROWSER). Exits 0 when the scenario's actions succeeded (or, for the scenarios where the suite
// expects the client to give up, when they failed), 1 otherwise. Logs go to stderr only.
// See /tmp/notes/conformance-client.md (or docs) for what each scenario checks.
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, connect as tcpConnect } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { ElicitRequestSchema } from '@modelcontextprotocol/sdk/types.js';

const here = dirname(fileURLToPath(import.meta.url));
const serverUrl = process.argv[2];
const scenario = process.env.MCP_CONFORMANCE_SCENARIO ?? 'initialize';
const ctx = process.env.MCP_CONFORMANCE_CONTEXT ? JSON.parse(process.env.MCP_CONFORMANCE_CONTEXT) : {};
const bin = process.env.MCPGATE_BIN || '/work/main/target/release/mcpgate';
const log = (...a) => console.error('[driver]', ...a);
// The suite kills the client at 30 s (a time-out fails the scenario): stay well inside it.
const REQUEST_TIMEOUT = { timeout: 20_000 };
// The suite's fixed Client ID Metadata Document URL (auth/basic-cimd expects exactly this client_id).
const CIMD_URL = 'https://conformance-test.local/client-metadata.json';
// Scenarios where the suite wants the client to stop (allowClientError): failing is the right outcome.
const EXPECT_FAILURE = new Set(['auth/scope-retry-limit', 'auth/resource-mismatch']);
// 0.2.0-alpha.12's scenarios where a careful client stops too: the authorization server's or the
// callback's issuer is not the one expected (RFC 9207, RFC 8414 section 3.3).
for (const s of ['auth/iss-supported-missing', 'auth/iss-wrong-issuer', 'auth/iss-unexpected',
  'auth/iss-normalized', 'auth/metadata-issuer-mismatch']) EXPECT_FAILURE.add(s);

if (!serverUrl) {
  console.error('usage: client-driver.mjs <server-url>   (MCP_CONFORMANCE_SCENARIO selects the scenario)');
  process.exit(2);
}
const tmp = mkdtempSync(join(tmpdir(), 'mcpgate-conformance-'));
const secretFile = (name, text) => {
  const path = join(tmp, name);
  writeFileSync(path, text, { mode: 0o600 });
  return path;
};
const shq = (s) => `'${s.replaceAll("'", `'\\''`)}'`;

// mcpgate's flags for this scenario (the contract in the notes, "Flags needed beyond the contract" included).
function bridgeFlags() {
  if (!scenario.startsWith('auth/')) return [];
  switch (scenario) {
    case 'auth/client-credentials-basic':
      return ['--grant', 'client-credentials', '--client-id', ctx.client_id, '--client-secret', ctx.client_secret,
        '--token-auth-method', 'client_secret_basic'];
    case 'auth/client-credentials-jwt':
      return ['--grant', 'client-credentials', '--client-id', ctx.client_id, '--token-auth-method', 'private_key_jwt',
        '--private-key-file', secretFile('client-key.pem', ctx.private_key_pem),
        '--signing-alg', ctx.signing_algorithm || 'ES256'];
    case 'auth/cross-app-access-complete-flow':
    case 'auth/enterprise-managed-authorization': // the same scenario, as 0.2.0-alpha.12 names it
      return ['--grant', 'cross-app-access', '--client-id', ctx.client_id, '--client-secret', ctx.client_secret,
        '--token-auth-method', 'client_secret_basic', '--idp-token-endpoint', ctx.idp_token_endpoint,
        '--idp-client-id', ctx.idp_client_id, '--idp-id-token-file', secretFile('idp-id-token', ctx.idp_id_token)];
    case 'auth/wif-jwt-bearer': // the workload's JWT, as its platform would hand it over in a file
      return ['--grant', 'workload-identity', '--client-id', ctx.client_id,
        '--workload-token-file', secretFile('workload-token', ctx.valid_jwt)];
    case 'auth/pre-registration':
      return ['--client-id', ctx.client_id, '--client-secret', ctx.client_secret, '--login-timeout', '10s'];
    default: // authorization code with DCR, or CIMD where the AS advertises client_id_metadata_document_supported
      return ['--client-metadata-url', CIMD_URL, '--login-timeout', '10s'];
  }
}

// Answers elicitation/create with every property's schema default (SEP-1034): the suite wants
// action "accept" and name/age/score/status/verified present with the right types.
function elicitationAnswer(params) {
  const content = {};
  for (const [key, prop] of Object.entries(params.requestedSchema?.properties ?? {})) {
    if (prop.default !== undefined) content[key] = prop.default;
  }
  log('elicitation answered with', JSON.stringify(content));
  return { action: 'accept', content };
}

const text = (r) => (r.content ?? []).filter((c) => c.type === 'text').map((c) => c.text).join('\n');
const callTool = async (client, name, args = {}) => {
  log(`tools/call ${name}`);
  const r = await client.callTool({ name, arguments: args }, undefined, REQUEST_TIMEOUT);
  if (r.isError) throw new Error(`${name} returned isError: ${text(r)}`);
  log(`${name} ->`, text(r));
  return r;
};
const listTools = async (client) => {
  const { tools } = await client.listTools(undefined, REQUEST_TIMEOUT);
  log('tools/list ->', tools.map((t) => t.name).join(', ') || '(none)');
  return tools;
};

// What each scenario needs after initialize (initialize itself is client.connect).
const actions = {
  initialize: async (c) => { await listTools(c); },
  tools_call: async (c) => {
    await listTools(c);
    const r = await callTool(c, 'add_numbers', { a: 5, b: 3 });
    if (!text(r).includes('8')) throw new Error(`add_numbers: unexpected answer ${text(r)}`);
  },
  'elicitation-sep1034-client-defaults': async (c) => {
    await listTools(c);
    await callTool(c, 'test_client_elicitation_defaults');
  },
  'sse-retry': async (c) => { // the server closes the POST stream; the bridge must resume it by GET
    await listTools(c);
    await callTool(c, 'test_reconnection');
  },
  // 0.2.0-alpha.12 (2026-07-28). Each request must carry the revision's _meta (the bridge's job).
  'request-metadata': async (c) => { await listTools(c); },
  'sep-2322-client-request-state': async (c) => { // input-required rounds, answered by elicitation
    await listTools(c);
    for (const t of ['test_mrtr_echo_state', 'test_mrtr_no_state', 'test_mrtr_unrelated', 'test_mrtr_no_result_type']) {
      await callTool(c, t);
    }
  },
  'http-standard-headers': async (c) => { // Mcp-Method on every POST, Mcp-Name on calls, reads and gets
    for (const t of await listTools(c)) await callTool(c, t.name);
    const { resources } = await c.listResources(undefined, REQUEST_TIMEOUT);
    for (const r of resources) await c.readResource({ uri: r.uri }, REQUEST_TIMEOUT);
    const { prompts } = await c.listPrompts(undefined, REQUEST_TIMEOUT);
    for (const p of prompts) await c.getPrompt({ name: p.name }, REQUEST_TIMEOUT);
  },
  'http-custom-headers': async (c) => { // the calls the scenario hands out; the bridge mirrors x-mcp-header
    await listTools(c);
    for (const call of ctx.toolCalls ?? []) await callTool(c, call.name, call.arguments);
  },
  'http-invalid-tool-headers': async (c) => { // whatever tools/list offers gets called: invalid tools must not be offered
    for (const t of await listTools(c)) {
      const args = Object.fromEntries((t.inputSchema?.required ?? []).map((k) => [k, 'x']));
      await callTool(c, t.name, args);
    }
  },
  'json-schema-ref-no-deref': async (c) => { await listTools(c); },
  'json-schema-2020-12-preservation': async (c) => { // the focal tool's inputSchema, echoed back as given
    const focal = (await listTools(c)).find((t) => t.name === 'json_schema_2020_12_tool');
    if (!focal) throw new Error('no json_schema_2020_12_tool listed');
    await callTool(c, 'json_schema_echo', { schema: focal.inputSchema });
  },
  auth: async (c) => { // every auth/* server offers test-tool; scope-step-up needs the call (403 → step-up)
    await listTools(c);
    await callTool(c, 'test-tool');
  },
};

// A loopback port nothing listens on yet.
const freePort = () => new Promise((resolve) => {
  const s = createServer().listen(0, '127.0.0.1', () => { const { port } = s.address(); s.close(() => resolve(port)); });
});
// Until something listens on `port` (or `child` exited).
async function listening(port, child) {
  for (let i = 0; i < 250 && child.exitCode === null; i++) {
    const up = await new Promise((resolve) => {
      const c = tcpConnect(port, '127.0.0.1', () => { c.destroy(); resolve(true); }).on('error', () => resolve(false));
    });
    if (up) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`mcpgate connect did not listen on ${port} (exit ${child.exitCode})`);
}

let gateway = null; // `mcpgate connect`, when MCPGATE_VIA=connect

async function main() {
  const extra = process.env.MCPGATE_ARGS?.split(' ').filter(Boolean) ?? [];
  const env = {
    ...process.env,
    MCPGATE_STORE_DIR: join(tmp, 'store'),
    MCPGATE_BROWSER: `${shq(process.execPath)} ${shq(join(here, 'follow-redirects.mjs'))}`,
  };
  let transport;
  if (process.env.MCPGATE_VIA === 'connect') {
    const port = await freePort();
    const oauth = scenario.startsWith('auth/') ? ['--oauth'] : [];
    const args = ['connect', serverUrl, ...oauth, ...bridgeFlags(), '--listen', `127.0.0.1:${port}`, ...extra];
    log(`scenario ${scenario}: ${bin} ${args.join(' ')}`);
    gateway = spawn(bin, args, { stdio: ['ignore', 'inherit', 'inherit'], env });
    await listening(port, gateway);
    transport = new StreamableHTTPClientTransport(new URL(`http://127.0.0.1:${port}/mcp`));
  } else {
    const args = ['stdio', serverUrl, ...bridgeFlags(), ...extra];
    log(`scenario ${scenario}: ${bin} ${args.join(' ')}`);
    transport = new StdioClientTransport({ command: bin, args, stderr: 'inherit', env });
  }
  const client = new Client(
    { name: 'mcpgate-conformance-driver', version: '1.0.0' },
    { capabilities: { elicitation: { form: { applyDefaults: true } }, sampling: {} } },
  );
  client.setRequestHandler(ElicitRequestSchema, async (req) => elicitationAnswer(req.params));
  client.onerror = (e) => log('transport error:', e?.message ?? e);
  try {
    await client.connect(transport, REQUEST_TIMEOUT);
    log('initialized; server', JSON.stringify(client.getServerVersion()));
    await (actions[scenario] ?? actions.auth)(client);
  } finally {
    await client.close().catch(() => {});
  }
}

const watchdog = setTimeout(() => { log('gave up after 27 s'); cleanup(); process.exit(1); }, 27_000);
watchdog.unref();
function cleanup() {
  gateway?.kill();
  rmSync(tmp, { recursive: true, force: true });
}

try {
  await main();
  cleanup();
  if (EXPECT_FAILURE.has(scenario)) log(`${scenario}: the client was expected to give up, but it succeeded`);
  process.exit(0);
} catch (e) {
  cleanup();
  if (EXPECT_FAILURE.has(scenario)) {
    log(`${scenario}: failed as the scenario expects: ${e?.message ?? e}`);
    process.exit(0);
  }
  log('failed:', e?.stack ?? e);
  process.exit(1);
}
