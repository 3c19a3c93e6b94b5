// Plays the user's browser for mcpgate's OAuth login in the conformance suite, whose authorization servers
// approve at once: GET the authorization URL and follow its redirects (at most 10), the last of which lands
// on the bridge's loopback callback (http://127.0.0.1:PORT/...?code=...&state=...).
// Usage (mcpgate runs it via MCPGATE_BROWSER): node follow-redirects.mjs <authorization-url>
// Exits 0 once the callback answered 2xx (when the URL carries redirect_uri, the answer must come from that
// address); otherwise prints why on stderr and exits 1. Prints nothing on stdout.
const MAX_REDIRECTS = 10;
const start = process.argv[2];
const fail = (msg) => { console.error(`follow-redirects: ${msg}`); process.exit(1); };
if (!start) fail('usage: follow-redirects.mjs <url>');

let callback = null; // origin + path of the redirect_uri the authorization request names, if any
try {
  const r = new URL(start).searchParams.get('redirect_uri');
  if (r) { const u = new URL(r); callback = u.origin + u.pathname; }
} catch (e) {
  fail(`not a URL: ${start} (${e.message})`);
}

let url = start;
for (let hop = 0; ; hop++) {
  let res;
  try {
    res = await fetch(url, { redirect: 'manual', signal: AbortSignal.timeout(10_000) });
  } catch (e) {
    fail(`GET ${url}: ${e.cause?.message ?? e.message}`);
  }
  const body = await res.text().catch(() => '');
  if (res.status >= 300 && res.status < 400) {
    const location = res.headers.get('location');
    if (!location) fail(`${url} answered ${res.status} without Location`);
    if (hop >= MAX_REDIRECTS) fail(`more than ${MAX_REDIRECTS} redirects (last to ${location})`);
    url = new URL(location, url).toString();
    if (!/^https?:$/.test(new URL(url).protocol)) fail(`redirect to a non-HTTP URL: ${url}`);
    continue;
  }
  const here = new URL(url);
  if (!res.ok) fail(`${url} answered ${res.status}: ${body.slice(0, 300)}`);
  if (callback && here.origin + here.pathname !== callback) {
    fail(`stopped at ${url} (${res.status}) instead of the callback ${callback}: ${body.slice(0, 300)}`);
  }
  process.exit(0);
}
