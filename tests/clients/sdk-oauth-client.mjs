// An MCP client built on the official TypeScript SDK that signs its user in with OAuth (its own
// `authProvider` flow: discovery, registration, PKCE, the browser, the code, the token), then
// lists and calls tools. Driven by the Rust integration tests.
//
//   node sdk-oauth-client.mjs MCP_URL [TOOL=JSON_ARGS]...
//
// The authorization URL is opened with tests/fixtures/browser-login.mjs (headless Chromium; its env
// LOGIN_USER, CONSENT_TWICE pass through). Registration is dynamic (RFC 7591), unless CIMD_CERT and
// CIMD_KEY name a PEM certificate and key for 127.0.0.1: then this client serves its own client metadata
// document over https (https://127.0.0.1:PORT/oauth/client.json) and the SDK uses that URL as its client_id
// where the server supports it.
// Env URL_ELICITATION=1: the client declares URL-mode elicitation, and a listing or call refused with
// -32042 (URL elicitation required) has each of its URLs opened with browser-login.mjs, then is tried
// once more, as a client does for its user (BROWSER_PROFILE passes through: the user's own browser),
// once the server said the sign-in is complete (notifications/elicitation/complete, waited for 5 s).
// Prints one JSON object: {client_id, document_fetches, tools: [names], calls: {TOOL: {ok, text} |
// {ok: false, error, code}}, elicitations: [{url, message, mode, id}], completed: [elicitation ids the
// server said were complete], tokens: {access_token, refresh_token}};
// exit 1 with {error} on a failure.
import http from 'node:http';
import https from 'node:https';
import fs from 'node:fs';
import path from 'node:path';
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { UnauthorizedError } from '@modelcontextprotocol/sdk/client/auth.js';
import { ElicitationCompleteNotificationSchema } from '@modelcontextprotocol/sdk/types.js';

const [mcpUrl, ...calls] = process.argv.slice(2);
const here = path.dirname(fileURLToPath(import.meta.url));
const out = {};
const fail = (e) => {
  out.error = String(e?.stack ?? e);
  process.stdout.write(JSON.stringify(out) + '\n');
  process.exit(1);
};
setTimeout(() => fail('gave up after 60 s'), 60_000).unref();

// The redirect listener: a loopback port of its own, which the browser lands on with the code.
let landed;
const callback = new Promise((resolve) => { landed = resolve; });
const listener = http.createServer((req, res) => {
  const u = new URL(req.url, 'http://127.0.0.1');
  if (u.pathname !== '/callback') return res.writeHead(404).end();
  res.writeHead(200, { 'content-type': 'text/plain' }).end('signed in; you can close this window');
  landed(u.searchParams);
});
await new Promise((r) => listener.listen(0, '127.0.0.1', r));
const redirectUrl = `http://127.0.0.1:${listener.address().port}/callback`;

// The client metadata document, when this client has one.
let metadataUrl;
out.document_fetches = 0;
if (process.env.CIMD_CERT) {
  const server = https.createServer({ cert: fs.readFileSync(process.env.CIMD_CERT), key: fs.readFileSync(process.env.CIMD_KEY) }, (req, res) => {
    if (req.url !== '/oauth/client.json') return res.writeHead(404).end();
    out.document_fetches += 1;
    res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({
      client_id: metadataUrl, client_name: 'mcpgate SDK test client (metadata document)', redirect_uris: [redirectUrl],
      grant_types: ['authorization_code', 'refresh_token'], response_types: ['code'], token_endpoint_auth_method: 'none',
    }));
  });
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  server.unref();
  metadataUrl = `https://127.0.0.1:${server.address().port}/oauth/client.json`;
}

const kept = {};
let browser;
const provider = {
  get redirectUrl() { return redirectUrl; },
  get clientMetadata() {
    return { client_name: 'mcpgate SDK test client', redirect_uris: [redirectUrl], grant_types: ['authorization_code', 'refresh_token'],
      response_types: ['code'], token_endpoint_auth_method: 'none', application_type: 'native' };
  },
  clientMetadataUrl: metadataUrl,
  state: () => (kept.state = crypto.randomUUID()),
  clientInformation: () => kept.client,
  saveClientInformation: (c) => { kept.client = c; },
  tokens: () => kept.tokens,
  saveTokens: (t) => { kept.tokens = t; },
  saveCodeVerifier: (v) => { kept.verifier = v; },
  codeVerifier: () => kept.verifier,
  redirectToAuthorization: (url) => {
    browser = spawn(process.execPath, [path.join(here, '../fixtures/browser-login.mjs'), url.href], { stdio: ['ignore', 'ignore', 'inherit'] });
    browser.on('exit', (code) => { if (code) fail(`the browser's sign-in failed (exit ${code})`); });
  },
};
const transport = () => new StreamableHTTPClientTransport(new URL(mcpUrl), { authProvider: provider });
const capabilities = process.env.URL_ELICITATION ? { elicitation: { url: {} } } : {};
out.completed = [];
const completions = [];
const newClient = () => {
  const c = new Client({ name: 'mcpgate-oauth-test', version: '1.0.0' }, { capabilities });
  c.setNotificationHandler(ElicitationCompleteNotificationSchema, (n) => {
    out.completed.push(n.params.elicitationId);
    completions.splice(0).forEach((f) => f());
  });
  return c;
};
const completed = (id) => new Promise((resolve) => {
  const check = () => (out.completed.includes(id) ? resolve(true) : completions.push(check));
  check();
  setTimeout(() => resolve(false), 5_000).unref();
});

// `f()`, and once more after the user opened the URLs of a -32042 it threw (URL_ELICITATION only).
out.elicitations = [];
async function withSignIns(f) {
  try {
    return await f();
  } catch (e) {
    if (!process.env.URL_ELICITATION || e?.code !== -32042) throw e;
    for (const el of e.data?.elicitations ?? []) {
      out.elicitations.push({ url: el.url, message: el.message, mode: el.mode, id: el.elicitationId });
      const code = await new Promise((resolve) => {
        const b = spawn(process.execPath, [path.join(here, '../fixtures/browser-login.mjs'), el.url], { stdio: ['ignore', 'ignore', 'inherit'] });
        b.on('exit', resolve);
      });
      if (code) throw new Error(`the sign-in at ${el.url} failed (exit ${code})`);
      await completed(el.elicitationId);
    }
    return await f();
  }
}

try {
  let client = newClient();
  try {
    await client.connect(transport());
    throw new Error('the gateway let an unauthenticated client in');
  } catch (e) {
    if (!(e instanceof UnauthorizedError)) throw e;
  }
  const params = await callback;
  if (params.get('state') !== kept.state) throw new Error('the state came back changed');
  out.iss = params.get('iss');
  if (params.get('error')) throw new Error(`authorization failed: ${params.get('error')}: ${params.get('error_description')}`);
  await transport().finishAuth(params.get('code'));
  out.client_id = kept.client?.client_id ?? metadataUrl;
  client = newClient();
  await client.connect(transport());
  out.tools = (await withSignIns(() => client.listTools())).tools.map((t) => t.name).sort();
  out.calls = {};
  for (const spec of calls) {
    const [name, args] = [spec.slice(0, spec.indexOf('=')), JSON.parse(spec.slice(spec.indexOf('=') + 1))];
    try {
      const r = await withSignIns(() => client.callTool({ name, arguments: args }));
      out.calls[name] = r.isError ? { ok: false, error: r.content?.[0]?.text } : { ok: true, text: r.content?.[0]?.text };
    } catch (e) {
      out.calls[name] = { ok: false, error: e.message, code: e.code };
    }
  }
  out.tokens = { access_token: kept.tokens?.access_token, refresh_token: kept.tokens?.refresh_token };
  await client.close();
  listener.close();
  process.stdout.write(JSON.stringify(out) + '\n');
  process.exit(0);
} catch (e) {
  fail(e);
}
