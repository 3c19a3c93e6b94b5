#!/usr/bin/env python3
"""`mcpgate serve` against nginx and the other MCP gateways, one command: `bench/serve [--duration SECONDS]`.

All in one run, on the same machine and the same upstreams (bench/echo-upstream, a small Rust MCP server):

1. tools/call `echo` throughput and latency (wrk, one session, keep-alive, concurrency 1 and 32):
   (a) in front of a Streamable HTTP upstream: direct, nginx (plain reverse proxy), mcpgate serve, FastMCP's proxy;
   (b) in front of a stdio upstream (echo-upstream --stdio): mcpgate serve, supergateway --stateful, npm mcp-proxy,
       PyPI mcp-proxy, FastMCP's proxy (an mcpServers config).
2. tools/list through mcpgate serve with five stdio upstreams, cached (default cacheTtl) and uncached (cacheTtl 0s).
3. Peak RSS of every gateway (mcpgate's own process, its children apart; the peers' process trees) and CPU time
   per request, from /proc.

A measurement during which other processes used more than --max-interference of the machine is discarded and
redone. Installs the peers (pinned) into bench/.peers/ when missing. Prints a Markdown report and writes it to
bench/out/serve.md (raw figures: bench/out/serve.json). Python 3 stdlib; wrk and nginx from Debian.
"""
import argparse, http.client, json, os, platform, re, shlex, shutil, signal, socket, subprocess, sys, tempfile
import threading, time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PEERS = os.path.join(ROOT, "bench", ".peers")
OUT = os.path.join(ROOT, "bench", "out")
NODE22 = os.path.join(ROOT, "node_modules", ".bin", "node")
LOOPBACK = os.path.join(ROOT, "tests", "fixtures", "loopback.cjs")
ECHO_TARGET = os.path.join(ROOT, "target", "bench")  # CARGO_TARGET_DIR of the echo upstream, as bench/run
ECHO = os.path.join(ECHO_TARGET, "release", "echo-upstream")
NODE_DIR = os.path.join(PEERS, "serve-node")

SUPERGATEWAY = "4.0.0"
NPM_MCP_PROXY = "6.7.19"
FASTMCP = "4.2.3"
PYPI_MCP_PROXY = "0.13.0"
VENVS = {"fastmcp": ("serve-venv-fastmcp", FASTMCP), "mcp-proxy": ("serve-venv-mcp-proxy", PYPI_MCP_PROXY)}

MESSAGE = "hello from the benchmark"
PROTOCOL = "2025-06-18"
# The `Authorization` header of the target being measured (its checks and wrk's requests), or None.
AUTH = None
INIT = {"jsonrpc": "2.0", "id": 0, "method": "initialize",
        "params": {"protocolVersion": PROTOCOL, "capabilities": {}, "clientInfo": {"name": "bench", "version": "1"}}}
FIVE = [f"echo{i}" for i in range(1, 6)]
EARLIER = ("earlier measurements on this machine, c=32 in front of a stdio server: agentgateway 8,100 req/s (not"
           " available here), supergateway --stateful 1,700, npm and PyPI mcp-proxy 640–1,300, FastMCP 175")


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def sh(cmd, **kw):
    return subprocess.run(cmd, check=True, text=True, capture_output=True, **kw).stdout.strip()


def call(tool):
    return {"jsonrpc": "2.0", "id": 1, "method": "tools/call",
            "params": {"name": tool, "arguments": {"message": MESSAGE}}}


LIST = {"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {}}


# ---------------------------------------------------------------- installs (idempotent)

def ensure_tool(tool, package):
    if shutil.which(tool):
        return
    log(f"installing {package} (apt-get)")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    if subprocess.run(["apt-get", "install", "-y", "-qq", package], env=env, stdout=sys.stderr).returncode != 0:
        subprocess.run(["apt-get", "update", "-qq"], check=True, stdout=sys.stderr)
        subprocess.run(["apt-get", "install", "-y", "-qq", package], check=True, env=env, stdout=sys.stderr)


def npm_version(name):
    p = os.path.join(NODE_DIR, "node_modules", name, "package.json")
    return json.load(open(p)).get("version") if os.path.exists(p) else None


def has_dist(venv, pkg, version):
    lib = os.path.join(venv, "lib")
    name = pkg.replace("-", "_").lower()
    return os.path.isdir(lib) and any(
        os.path.isdir(os.path.join(lib, py, "site-packages", f"{name}-{version}.dist-info")) for py in os.listdir(lib))


def ensure_peers():
    """Installs what is missing; returns {peer package: why it could not be installed}."""
    failed = {}
    os.makedirs(PEERS, exist_ok=True)
    gi = os.path.join(PEERS, ".gitignore")
    if not os.path.exists(gi):
        with open(gi, "w") as f:
            f.write("*\n")
    if not os.path.exists(NODE22):
        log("installing the repository's Node packages (npm ci)")
        subprocess.run(["npm", "ci", "--no-audit", "--no-fund"], cwd=ROOT, stdout=sys.stderr)
    if npm_version("supergateway") != SUPERGATEWAY or npm_version("mcp-proxy") != NPM_MCP_PROXY:
        log(f"installing supergateway@{SUPERGATEWAY} mcp-proxy@{NPM_MCP_PROXY} into bench/.peers/serve-node (npm)")
        r = subprocess.run(["npm", "install", "--prefix", NODE_DIR, "--no-audit", "--no-fund", "--save-exact",
                            f"supergateway@{SUPERGATEWAY}", f"mcp-proxy@{NPM_MCP_PROXY}"], stdout=sys.stderr)
        if r.returncode != 0:
            failed["supergateway"] = failed["mcp-proxy (npm)"] = f"npm install failed (exit {r.returncode})"
    # fastmcp 4.x needs mcp>=2.3, PyPI mcp-proxy 0.13.0 mcp<2: one venv each.
    for pkg, (d, version) in VENVS.items():
        venv = os.path.join(PEERS, d)
        if has_dist(venv, pkg, version):
            continue
        log(f"installing {pkg}=={version} into bench/.peers/{d} (pip)")
        if not os.path.exists(os.path.join(venv, "bin", "python")):
            subprocess.run([sys.executable, "-m", "venv", venv], check=True, stdout=sys.stderr)
        r = subprocess.run([os.path.join(venv, "bin", "python"), "-m", "pip", "install", "-q",
                            "--disable-pip-version-check", f"{pkg}=={version}"], stdout=sys.stderr)
        if r.returncode != 0:
            failed["fastmcp" if pkg == "fastmcp" else "mcp-proxy (PyPI)"] = f"pip install failed (exit {r.returncode})"
    return failed


def pip_version(venv_dir, pkg):
    out = subprocess.run([os.path.join(PEERS, venv_dir, "bin", "python"), "-m", "pip", "show", pkg], text=True,
                         capture_output=True).stdout
    m = re.search(r"^Version: (.*)$", out, re.M)
    return m.group(1) if m else "?"


# ---------------------------------------------------------------- /proc

TICK = os.sysconf("SC_CLK_TCK")


def cpu_busy_s():
    """CPU time the whole machine has spent running processes (all cores), from /proc/stat: user, nice, system and
    steal. Not irq and softirq: loopback traffic's packet processing lands there (about 10% of this machine under
    the load here), unattributed to any process, and would count as another process's."""
    f = [int(x) for x in open("/proc/stat").readline().split()[1:]]
    return (f[0] + f[1] + f[2] + f[7]) / TICK


def proc_cpu_s(pid, reaped=False):
    """utime + stime of a process (all its threads); with `reaped`, also of the children it has waited for."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            st = f.read().rsplit(")", 1)[1].split()
        return (int(st[11]) + int(st[12]) + ((int(st[13]) + int(st[14])) if reaped else 0)) / TICK
    except (OSError, IndexError, ValueError):
        return 0.0


def all_cpu():
    """{pid: (comm, CPU seconds)} for every process, for naming what else ran during a measurement."""
    out = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                with open(f"/proc/{name}/stat") as f:
                    st = f.read()
                rest = st.rsplit(")", 1)[1].split()
                out[int(name)] = (st[st.index("(") + 1:st.rindex(")")], (int(rest[11]) + int(rest[12])) / TICK)
            except (OSError, IndexError, ValueError):
                pass
    return out


def culprits(before, after, exclude, wall):
    """The other processes that used the most CPU between two all_cpu() snapshots, as text."""
    use = {}
    for pid, (name, cpu) in after.items():
        if pid in exclude:
            continue
        d = cpu - before.get(pid, (name, 0.0))[1]
        if d > 0:
            use[name] = use.get(name, 0.0) + d
    top = sorted(use.items(), key=lambda kv: -kv[1])[:4]
    return ", ".join(f"{n} {d / wall * 100:.0f}%" for n, d in top if d / wall >= 0.01) or "no single process"


def status_kb(pid, field):
    try:
        with open(f"/proc/{pid}/status") as f:
            m = re.search(r"%s:\s+(\d+) kB" % field, f.read())
        return int(m.group(1)) if m else 0
    except OSError:
        return 0


def comm(pid):
    try:
        with open(f"/proc/{pid}/comm") as f:
            return f.read().strip()
    except OSError:
        return "?"


def descendants(root):
    """root and every descendant, from /proc/*/stat (this kernel has no /proc/PID/task/TID/children)."""
    kids = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                with open(f"/proc/{name}/stat", "rb") as f:
                    pp = int(f.read().rsplit(b")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            kids.setdefault(pp, []).append(int(name))
    out, stack = [], [root]
    while stack:
        pid = stack.pop()
        out.append(pid)
        stack.extend(kids.get(pid, ()))
    return out


def is_upstream(pid):
    return comm(pid) == "echo-upstream"


class Sampler(threading.Thread):
    """Every `interval` s, the VmRSS of a target's gateway processes (summed) and of its echo-upstream children
    (summed), each with its peak; the process tree is rescanned every 5th sample."""

    def __init__(self, root, interval=0.1):
        super().__init__(daemon=True)
        self.root, self.interval = root, interval
        self.pids, self.kinds, self.n = [root], {}, 0
        self.peak_gw_kb = self.peak_up_kb = 0
        self.max_gw_procs = self.max_up_procs = 0
        self.stop = threading.Event()

    def rescan(self):
        self.pids = descendants(self.root)
        for p in self.pids:
            if p not in self.kinds:
                self.kinds[p] = "up" if is_upstream(p) else "gw"
        return self.pids

    def sample(self, rescan=False):
        if rescan or self.n % 5 == 0:
            self.rescan()
        self.n += 1
        gw = up = ngw = nup = 0
        for p in self.pids:
            kb = status_kb(p, "VmRSS")
            if not kb:
                continue
            if self.kinds.get(p) == "up":
                up, nup = up + kb, nup + 1
            else:
                gw, ngw = gw + kb, ngw + 1
        self.peak_gw_kb, self.peak_up_kb = max(self.peak_gw_kb, gw), max(self.peak_up_kb, up)
        self.max_gw_procs, self.max_up_procs = max(self.max_gw_procs, ngw), max(self.max_up_procs, nup)

    def run(self):
        while not self.stop.is_set():
            self.sample()
            self.stop.wait(self.interval)

    def cpu(self):
        """{pid: (own CPU seconds, CPU of the children it reaped)} over the current tree."""
        pids = self.rescan()
        return {p: (proc_cpu_s(p), proc_cpu_s(p, reaped=True) - proc_cpu_s(p)) for p in pids}

    def busy(self, seconds):
        """Share of one core the tree used over `seconds` (to wait for a backlog to drain)."""
        a = sum(x + y for x, y in self.cpu().values())
        time.sleep(seconds)
        return (sum(x + y for x, y in self.cpu().values()) - a) / seconds

    def hwm(self):
        """VmHWM (peak since exec) of the root, and summed over gateway processes and over upstream children."""
        pids = self.rescan()
        gw = sum(status_kb(p, "VmHWM") for p in pids if self.kinds.get(p) != "up")
        up = [status_kb(p, "VmHWM") for p in pids if self.kinds.get(p) == "up"]
        return status_kb(self.root, "VmHWM"), gw, up


# ---------------------------------------------------------------- processes

def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, proc, name, log_path, timeout=60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise TargetError(f"{name} exited early (exit {proc.returncode}): {tail(log_path)}")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise TargetError(f"{name} did not listen on {port} within {timeout} s: {tail(log_path)}")


def tail(path, n=600):
    try:
        return open(path, errors="replace").read()[-n:].strip().replace("\n", " / ")
    except OSError:
        return ""


def stop_tree(proc):
    """SIGTERM to the group, then SIGKILL to it and to any descendant that left it."""
    if proc.poll() is None:
        pids = descendants(proc.pid)
        try:
            os.killpg(proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            pass
    else:
        pids = []
    for fn, target in [(os.killpg, proc.pid)] + [(os.kill, p) for p in pids if p != proc.pid]:
        try:
            fn(target, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
    try:
        proc.wait(5)
    except subprocess.TimeoutExpired:
        pass


class TargetError(Exception):
    pass


# ---------------------------------------------------------------- MCP over HTTP (the checks before the load)

def post(port, path, msg, sid=None, accept="application/json, text/event-stream"):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    headers = {"Content-Type": "application/json", "Accept": accept}
    if AUTH:
        headers["Authorization"] = AUTH
    if sid:
        headers.update({"Mcp-Session-Id": sid, "MCP-Protocol-Version": PROTOCOL})
    try:
        conn.request("POST", path, json.dumps(msg), headers)
        resp = conn.getresponse()
        body = resp.read().decode(errors="replace")
    except OSError as e:
        raise TargetError(f"{msg.get('method')}: {e}")
    finally:
        conn.close()
    if resp.status >= 300:
        raise TargetError(f"{msg.get('method')}: HTTP {resp.status} {body[:200]!r}")
    found = None
    if "id" in msg:
        for line in body.splitlines():
            data = line[5:].strip() if line.startswith("data:") else line.strip()
            if data.startswith("{"):
                m = json.loads(data)
                if m.get("id") == msg["id"]:
                    found = m
        if found is None:
            raise TargetError(f"no answer to {msg['method']} in {body[:200]!r}")
        if "result" not in found:
            raise TargetError(f"{msg['method']}: {json.dumps(found)[:300]}")
    return found, resp.getheader("mcp-session-id") or sid, resp.getheader("content-type")


def open_session(port, path, tools):
    """initialize → session id; notifications/initialized; tools/list must list `tools`; one call to each."""
    init, sid, _ = post(port, path, INIT)
    if not sid:
        raise TargetError("initialize: no Mcp-Session-Id")
    post(port, path, {"jsonrpc": "2.0", "method": "notifications/initialized"}, sid)
    listed, _, _ = post(port, path, LIST, sid)
    names = [t["name"] for t in listed["result"].get("tools", [])]
    missing = [t for t in tools if t not in names]
    if missing:
        raise TargetError(f"tools/list lacks {missing}: {names}")
    content_type = None
    for t in tools:
        answer, _, content_type = post(port, path, call(t), sid)
        text = json.dumps(answer["result"])
        if MESSAGE not in text:
            raise TargetError(f"tools/call {t} did not echo: {text[:200]}")
    # What a client that takes JSON only gets (the spec has clients accept both; a server may answer either way).
    try:
        _, _, json_only = post(port, path, call(tools[0]), sid, accept="application/json")
    except TargetError as e:
        json_only = f"refused: {e}"[:120]
    return sid, {"protocol": init["result"].get("protocolVersion"),
                 "server": init["result"].get("serverInfo", {}).get("name"), "call_content_type": content_type,
                 "json_only_content_type": json_only}


# ---------------------------------------------------------------- wrk

LUA = r'''
-- Every request gets a JSON-RPC id of its own: the run's number, the thread's and a counter (a session must not
-- reuse an id, and the SDK-based servers answer a reused id on the stream of the last request that carried it).
local tails = { %s }
local needle = [[%s]]
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Accept"] = "application/json, text/event-stream"
wrk.headers["MCP-Protocol-Version"] = "%s"
wrk.headers["Mcp-Session-Id"] = os.getenv("SID")
if (os.getenv("AUTH") or "") ~= "" then wrk.headers["Authorization"] = os.getenv("AUTH") end
bad, n, base = 0, 0, 0
local threads = {}
function setup(thread)
  table.insert(threads, thread)
  thread:set("tid", #threads)
end
function init(args)
  base = tonumber(os.getenv("RUN")) * 1e12 + tid * 1e9
end
function request()
  n = n + 1
  local body = '{"jsonrpc":"2.0","id":' .. string.format("%%.0f", base + n) .. ',' .. tails[n %% #tails + 1]
  return wrk.format(nil, nil, nil, body)
end
-- Every answer must carry what was asked for (an echo, a listing): a 200 with an error in it does not count.
function response(status, hdrs, body)
  if status < 300 and not string.find(body, needle, 1, true) then bad = bad + 1 end
end
function done(summary, latency, requests)
  local b = 0
  for _, t in ipairs(threads) do b = b + t:get("bad") end
  local e = summary.errors
  io.write(string.format("RESULT %%d %%d %%d %%d %%d %%d %%d %%d %%d %%d %%d\n", summary.requests, summary.duration,
    latency:percentile(50), latency:percentile(99), latency.max, e.connect, e.read + e.write, e.timeout, e.status, b,
    latency.mean))
end
'''


def lua_script(tmp, bodies, needle):
    import hashlib
    key = hashlib.sha1(json.dumps([bodies, needle]).encode()).hexdigest()[:12]
    name = os.path.join(tmp, f"wrk-{key}.lua")
    if not os.path.exists(name):
        # The message after its id; several bodies go one after the other (per thread).
        tails = []
        for b in bodies:
            rest = {k: v for k, v in b.items() if k not in ("jsonrpc", "id")}
            tails.append("[[" + json.dumps(rest, separators=(",", ":"))[1:] + "]]")
        with open(name, "w") as f:
            f.write(LUA % (", ".join(tails), needle, PROTOCOL))
    return name


RUNS = iter(range(1, 10 ** 6))


def wrk(url, sid, conns, seconds, script):
    threads = min(conns, 2)
    # A request unanswered after 5 s counts as a timeout (a gateway that loses requests shows here).
    cmd = ["wrk", f"-t{threads}", f"-c{conns}", f"-d{seconds}s", "--timeout", "5s", "--latency", "-s", script, url]
    try:
        env = {**os.environ, "SID": sid, "RUN": str(next(RUNS)), "AUTH": AUTH or ""}
        p = subprocess.run(cmd, text=True, capture_output=True, env=env,
                           timeout=seconds + 60)
    except subprocess.TimeoutExpired:
        return {"error": "wrk did not finish"}
    m = re.search(r"RESULT (.*)", p.stdout)
    if p.returncode != 0 or not m:
        return {"error": f"wrk exit {p.returncode}: {(p.stdout + p.stderr)[-300:]}"}
    req, dur_us, p50, p99, mx, conn_err, rw_err, timeouts, non2xx, bad, mean = map(int, m.group(1).split())
    rps = req / (dur_us / 1e6)
    # Little's law: requests in flight on average. Well below the connections, some of them waited for nothing
    # (a lost answer); wrk's latency figures then describe the lucky connections only.
    return {"rps": rps, "p50": p50 / 1000, "p99": p99 / 1000, "max": mx / 1000, "mean": mean / 1000,
            "in_flight": rps * mean / 1e6, "conns": conns, "requests": req, "connect_errors": conn_err,
            "rw_errors": rw_err, "timeouts": timeouts, "non2xx": non2xx, "bad": bad, "seconds": dur_us / 1e6}


# ---------------------------------------------------------------- targets

def base_env(home):
    keep = ("PATH", "USER", "LOGNAME", "LANG", "TZ", "TMPDIR")
    env = {k: v for k, v in os.environ.items() if k in keep or k.startswith("LC_")}
    env.update(HOME=home, NO_PROXY="127.0.0.1,localhost", no_proxy="127.0.0.1,localhost")
    return env


class Target:
    def __init__(self, key, name, scenario, tools, build, runtime, cmd_label, auth=None):
        self.key, self.name, self.scenario, self.tools = key, name, scenario, tools
        self.build, self.runtime, self.cmd_label = build, runtime, cmd_label
        # A callable giving the Authorization header the target needs (asked when it is measured).
        self.auth = auth


def jwt_material(ctx):
    """A public key file and an RS256 token for `mcpgate-http-jwt`, from tests/fixtures/jwt-issuer.mjs (started for
    this, then stopped): the gateway checks the token against the file, as an air-gapped site would."""
    if "jwt" in ctx:
        return ctx["jwt"]
    p = subprocess.Popen([ctx["node"], os.path.join(ROOT, "tests", "fixtures", "jwt-issuer.mjs")],
                         stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, start_new_session=True)
    try:
        issuer = p.stdout.readline().strip().split("listening on ", 1)[-1]
        c = http.client.HTTPConnection("127.0.0.1", int(issuer.rsplit(":", 1)[1]), timeout=10)
        c.request("GET", "/__test/public-pem?alg=RS256")
        pem = c.getresponse().read().decode()
        claims = {"aud": "mcpgate-bench", "exp": int(time.time()) + 86400}
        c.request("POST", "/__test/mint", json.dumps({"claims": claims}), {"Content-Type": "application/json"})
        token = json.loads(c.getresponse().read())["token"]
    finally:
        stop_tree(p)
    key = os.path.join(ctx["tmp"], "issuer.pem")
    with open(key, "w") as f:
        f.write(pem)
    ctx["jwt"] = {"issuer": issuer, "key": key, "header": f"Bearer {token}"}
    return ctx["jwt"]


def fastmcp_script(tmp):
    path = os.path.join(tmp, "fastmcp_proxy.py")
    with open(path, "w") as f:
        f.write("""import json, sys
from fastmcp.server import create_proxy
target = json.loads(sys.argv[1]) if sys.argv[1].startswith("{") else sys.argv[1]
create_proxy(target).run(transport="http", host="127.0.0.1", port=int(sys.argv[2]), show_banner=False,
                         log_level="warning")
""")
    return path


def mcpgate_config(tmp, name, servers, cache_ttl=None, auth=None):
    gw = {"listen": "127.0.0.1:0"}
    if cache_ttl is not None:
        gw["cacheTtl"] = cache_ttl
    if auth is not None:
        gw["auth"] = auth
    path = os.path.join(tmp, f"{name}.json")
    with open(path, "w") as f:
        json.dump({"mcpgate": gw, "mcpServers": servers}, f, indent=1)
    return path


def targets(ctx):
    """Every target: how to start it (returns Popen, port, path) and what it should list."""
    tmp, mcpgate, node, up_port = ctx["tmp"], ctx["mcpgate"], ctx["node"], ctx["up_port"]
    up_url = f"http://127.0.0.1:{up_port}/mcp"
    stdio = [ECHO, "--stdio"]
    stdio_cmd = " ".join(shlex.quote(a) for a in stdio)
    nm = os.path.join(NODE_DIR, "node_modules")
    fm_py = os.path.join(PEERS, VENVS["fastmcp"][0], "bin", "python")
    pmp = os.path.join(PEERS, VENVS["mcp-proxy"][0], "bin", "mcp-proxy")

    def spawn(name, cmd, port, path="/mcp", env=None):
        log_path = os.path.join(tmp, f"{name}.log")
        p = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=open(log_path, "w"), stderr=subprocess.STDOUT,
                             start_new_session=True, cwd=tmp, env=env or ctx["env"])
        ctx["procs"].append(p)
        try:
            wait_port(port, p, name, log_path)
        except TargetError:
            stop_tree(p)
            raise
        return p, port, path

    def mcpgate_start(name, cfg, path="/mcp"):
        def start():
            port = free_port()
            p, port, path_ = spawn(name, [mcpgate, "serve", "--config", cfg, "--listen", f"127.0.0.1:{port}"], port,
                                   path, env={**ctx["env"], "NO_COLOR": "1"})
            ready_deadline = time.monotonic() + 30  # /readyz: every server up (stdio children initialized)
            while time.monotonic() < ready_deadline:
                try:
                    c = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
                    c.request("GET", "/readyz")
                    if c.getresponse().status == 200:
                        break
                except OSError:
                    pass
                time.sleep(0.05)
            else:
                stop_tree(p)
                raise TargetError(f"{name}: /readyz not 200 within 30 s: {tail(os.path.join(tmp, name + '.log'))}")
            return p, port, path_
        return start

    def nginx_start():
        port = free_port()
        conf = os.path.join(tmp, "nginx.conf")
        os.makedirs(os.path.join(tmp, "logs"), exist_ok=True)
        with open(conf, "w") as f:
            f.write(f"""worker_processes auto;
daemon off;
pid {tmp}/nginx.pid;
error_log {tmp}/nginx-error.log warn;
events {{ worker_connections 4096; }}
http {{
  access_log off;
  upstream echo {{ server 127.0.0.1:{up_port}; keepalive 64; }}
  server {{
    listen 127.0.0.1:{port};
    location / {{
      proxy_pass http://echo;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_buffering off;
    }}
  }}
}}
""")
        return spawn("nginx", ["nginx", "-p", tmp, "-c", conf], port)

    def direct_start():
        return ctx["upstream"], up_port, "/mcp"

    def peer(name, make_cmd, env=None):
        def start():
            port = free_port()
            return spawn(name, make_cmd(port), port, env=env)
        return start

    one_http = mcpgate_config(tmp, "mcpgate-http", {"echo": {"url": up_url}})

    def jwt_start():
        m = jwt_material(ctx)
        auth = {"mode": "jwt", "issuer": m["issuer"], "publicUrl": "http://127.0.0.1", "audience": "mcpgate-bench",
                "publicKeyFile": m["key"]}
        return mcpgate_start("mcpgate-http-jwt", mcpgate_config(tmp, "mcpgate-http-jwt", {"echo": {"url": up_url}},
                                                                auth=auth))()
    one_stdio = mcpgate_config(tmp, "mcpgate-stdio", {"echo": {"command": ECHO, "args": ["--stdio"]}})
    five = {n: {"command": ECHO, "args": ["--stdio"]} for n in FIVE}
    five_cached = mcpgate_config(tmp, "mcpgate-five-cached", five)
    five_uncached = mcpgate_config(tmp, "mcpgate-five-uncached", five, cache_ttl="0s")
    fm = fastmcp_script(tmp)
    fm_env = {**ctx["env"], "FASTMCP_CHECK_FOR_UPDATES": "off", "FASTMCP_SHOW_SERVER_BANNER": "false"}
    fm_stdio = json.dumps({"mcpServers": {"echo": {"command": ECHO, "args": ["--stdio"]}}})
    node_v = f"Node {ctx['node_version']}"
    py_v = f"Python {platform.python_version()}"
    five_tools = [f"{n}__echo" for n in FIVE]
    return [
        Target("direct", "direct (no proxy)", "http", ["echo"], direct_start, "Rust (hyper)",
               "the client talks to bench/echo-upstream"),
        Target("nginx", "nginx (plain reverse proxy)", "http", ["echo"], nginx_start, "C",
               "proxy_pass, keep-alive upstream, proxy_buffering off, worker_processes auto, no access log"),
        Target("mcpgate-http", "mcpgate serve", "http", ["echo"], mcpgate_start("mcpgate-http", one_http),
               "Rust (release)", "`mcpgate serve --config F --listen 127.0.0.1:P`, F: `{\"mcpServers\": {\"echo\":"
               " {\"url\": \"http://127.0.0.1:U/mcp\"}}}`"),
        Target("mcpgate-http-jwt", "mcpgate serve, JWT validation on", "http", ["echo"], jwt_start, "Rust (release)",
               "the same with `\"mcpgate\": {\"auth\": {\"mode\": \"jwt\", \"issuer\": …, \"audience\": …,"
               " \"publicKeyFile\": \"issuer.pem\"}}` (RS256), every request with `Authorization: Bearer <JWT>`",
               auth=lambda: jwt_material(ctx)["header"]),
        Target("fastmcp-http", "FastMCP proxy", "http", ["echo"],
               peer("fastmcp-http", lambda p: [fm_py, fm, up_url, str(p)], fm_env), py_v,
               "`create_proxy(\"http://127.0.0.1:U/mcp\").run(transport=\"http\", host=\"127.0.0.1\", port=P,"
               " show_banner=False, log_level=\"warning\")`"),
        Target("mcpgate-stdio", "mcpgate serve", "stdio", ["echo"], mcpgate_start("mcpgate-stdio", one_stdio),
               "Rust (release)", "`mcpgate serve --config F --listen 127.0.0.1:P`, F: `{\"mcpServers\": {\"echo\":"
               " {\"command\": \"…/echo-upstream\", \"args\": [\"--stdio\"]}}}`"),
        Target("supergateway", "supergateway --stateful", "stdio", ["echo"],
               peer("supergateway", lambda p: [node, "--require", LOOPBACK,
                                               os.path.join(nm, "supergateway", "dist", "index.js"),
                                               "--stdio", stdio_cmd, "--outputTransport", "streamableHttp",
                                               "--stateful", "--port", str(p), "--logLevel", "none"]), node_v,
               "`supergateway --stdio \"…/echo-upstream --stdio\" --outputTransport streamableHttp --stateful"
               " --port P --logLevel none` (listen pinned to 127.0.0.1 by tests/fixtures/loopback.cjs)"),
        Target("mcp-proxy-npm", "mcp-proxy (npm)", "stdio", ["echo"],
               peer("mcp-proxy-npm", lambda p: [node, os.path.join(nm, "mcp-proxy", "dist", "bin", "mcp-proxy.mjs"),
                                                "--port", str(p), "--host", "127.0.0.1", "--", *stdio]), node_v,
               "`mcp-proxy --port P --host 127.0.0.1 -- …/echo-upstream --stdio` (Streamable HTTP at /mcp)"),
        Target("mcp-proxy-pypi", "mcp-proxy (PyPI)", "stdio", ["echo"],
               peer("mcp-proxy-pypi", lambda p: [pmp, "--port", str(p), "--host", "127.0.0.1", "--log-level",
                                                 "WARNING", "--", *stdio]), py_v,
               "`mcp-proxy --port P --host 127.0.0.1 --log-level WARNING -- …/echo-upstream --stdio`"
               " (Streamable HTTP at /mcp)"),
        Target("fastmcp-stdio", "FastMCP proxy", "stdio", ["echo"],
               peer("fastmcp-stdio", lambda p: [fm_py, fm, fm_stdio, str(p)], fm_env), py_v,
               "`create_proxy({\"mcpServers\": {\"echo\": {\"command\": \"…/echo-upstream\", \"args\": [\"--stdio\"]}}})"
               ".run(transport=\"http\", …, log_level=\"warning\")`"),
        Target("mcpgate-five-cached", "mcpgate serve, 5 stdio servers, cacheTtl default (5m)", "five", five_tools,
               mcpgate_start("mcpgate-five-cached", five_cached), "Rust (release)",
               "`mcpgate serve`, five servers echo1…echo5 (each `echo-upstream --stdio`)"),
        Target("mcpgate-five-uncached", "mcpgate serve, 5 stdio servers, cacheTtl 0s", "five", five_tools,
               mcpgate_start("mcpgate-five-uncached", five_uncached), "Rust (release)",
               "the same with `\"mcpgate\": {\"cacheTtl\": \"0s\"}`"),
    ]


PEER_PACKAGE = {"fastmcp-http": "fastmcp", "fastmcp-stdio": "fastmcp", "supergateway": "supergateway",
                "mcp-proxy-npm": "mcp-proxy (npm)", "mcp-proxy-pypi": "mcp-proxy (PyPI)"}


# ---------------------------------------------------------------- measuring

def own_cpu_s():
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def settle(ctx, sampler, label):
    """Before a measurement: the target has drained what earlier runs left queued (its tree below 5% of a core),
    and other processes are quiet (below half the allowed share); each bounded."""
    if sampler:
        deadline = time.monotonic() + 30
        while sampler.busy(0.3) > 0.05 and time.monotonic() < deadline:
            pass
    args = ctx["args"]
    if not args.max_interference:
        return
    deadline, waited = time.monotonic() + args.max_wait, False
    while True:
        exclude = own_pids(ctx, sampler)
        busy0, own0, t0, cpu0 = cpu_busy_s(), own_cpu_s() + tree_cpu(ctx, sampler), time.monotonic(), all_cpu()
        time.sleep(1)
        wall = time.monotonic() - t0
        others = (cpu_busy_s() - busy0) - (own_cpu_s() + tree_cpu(ctx, sampler) - own0)
        share = max(0.0, others) / (wall * os.cpu_count())
        if share <= args.max_interference / 2 or time.monotonic() > deadline:
            if waited:
                log(f"  {label}: machine quiet again ({share * 100:.0f}%)")
            return
        if not waited:
            log(f"  {label}: waiting for other processes to quieten ({share * 100:.0f}% of the machine:"
                f" {culprits(cpu0, all_cpu(), exclude, wall)})")
            waited = True
        time.sleep(2)


def own_pids(ctx, sampler):
    pids = {os.getpid(), ctx["upstream"].pid}
    if sampler:
        pids.update(sampler.pids)
    return pids


def tree_cpu(ctx, sampler):
    cpu = sum(x + y for x, y in sampler.cpu().values()) if sampler else 0.0
    return cpu + proc_cpu_s(ctx["upstream"].pid)


def measure(ctx, sampler, url, sid, conns, script, label):
    """One wrk run, redone while other processes used more than the allowed share of the machine."""
    args = ctx["args"]
    best = None
    for attempt in range(1, args.retries + 2):
        settle(ctx, sampler, label)
        cpu0 = sampler.cpu() if sampler else {}
        up0 = proc_cpu_s(ctx["upstream"].pid)
        all0 = all_cpu()
        busy0, own0, t0 = cpu_busy_s(), own_cpu_s(), time.monotonic()
        r = wrk(url, sid, conns, args.duration, script)
        wall = time.monotonic() - t0
        cpu1 = sampler.cpu() if sampler else {}
        up1 = proc_cpu_s(ctx["upstream"].pid)
        busy1, own1 = cpu_busy_s(), own_cpu_s()
        if "error" in r:
            return r
        kind = lambda p: sampler.kinds.get(p) if sampler else None
        d = {p: (v[0] - cpu0.get(p, (0.0, 0.0))[0], v[1] - cpu0.get(p, (0.0, 0.0))[1]) for p, v in cpu1.items()}
        # The gateway's own processes; the upstream: echo-upstream children, and whatever the gateway reaped.
        gw = sum(x for p, (x, _) in d.items() if kind(p) != "up")
        ups = sum(x for p, (x, _) in d.items() if kind(p) == "up") + sum(y for y in (v[1] for v in d.values()))
        shared_up = up1 - up0 if ctx["upstream"].pid not in cpu1 else 0.0
        others = max(0.0, (busy1 - busy0) - (own1 - own0) - gw - ups - shared_up)
        share = others / max(wall * os.cpu_count(), 1e-9)
        r.update(attempt=attempt, others_share=share, wall=wall)
        if sampler:
            r["gw_cpu_us"] = gw * 1e6 / max(r["requests"], 1)
            r["up_cpu_us"] = (ups if ups > 0 else shared_up) * 1e6 / max(r["requests"], 1)
        elif shared_up:
            r["up_cpu_us"] = shared_up * 1e6 / max(r["requests"], 1)
        if share > 0.02:
            r["others"] = culprits(all0, all_cpu(), own_pids(ctx, sampler), wall)
        if best is None or share < best["others_share"]:
            best = r
        if not args.max_interference or share <= args.max_interference:
            return r
        ctx["discarded"] += 1
        log(f"  {label}: discarded, other processes used {share * 100:.0f}% of the machine ({r.get('others')});"
            f" {'measuring again' if attempt <= args.retries else 'keeping the least disturbed attempt'}")
    best["disturbed"] = True
    return best


def scrape_metrics(port):
    try:
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        c.request("GET", "/metrics")
        text = c.getresponse().read().decode()
    except OSError as e:
        return {"error": str(e)}
    out = {"requests": {}, "cache_hits": 0, "cache_misses": 0, "restarts": 0}
    for line in text.splitlines():
        m = re.match(r'mcpgate_requests_total\{server="([^"]*)",method="([^"]*)",outcome="([^"]*)"\} (\d+)', line)
        if m:
            out["requests"][f"{m.group(1)} {m.group(2)} {m.group(3)}"] = int(m.group(4))
        m = re.match(r"mcpgate_listing_cache_(hits|misses)_total (\d+)", line)
        if m:
            out["cache_" + m.group(1)] = int(m.group(2))
        m = re.match(r"mcpgate_upstream_restarts_total\{[^}]*\} (\d+)", line)
        if m:
            out["restarts"] += int(m.group(1))
    return out


def fmt_r(r):
    if "error" in r:
        return r["error"]
    flags = []
    for k in ("non2xx", "bad", "timeouts", "rw_errors", "connect_errors"):
        if r.get(k):
            flags.append(f"{k} {r[k]}")
    return (f"{r['rps']:9,.0f} req/s  p50 {r['p50']:7.3f} ms  p99 {r['p99']:8.3f} ms"
            + (f"  gw CPU {r['gw_cpu_us']:.1f} µs/req" if "gw_cpu_us" in r else "")
            + f"  others {r['others_share'] * 100:.0f}%" + (f"  [{', '.join(flags)}]" if flags else ""))


def run_target(ctx, t):
    """Starts t, checks it, warms it up, measures it; returns its results (or its failure)."""
    args, tmp = ctx["args"], ctx["tmp"]
    res = {"name": t.name, "scenario": t.scenario, "runtime": t.runtime, "cmd": t.cmd_label, "runs": {}}
    if t.key in PEER_PACKAGE and PEER_PACKAGE[t.key] in ctx["install_failed"]:
        res["error"] = ctx["install_failed"][PEER_PACKAGE[t.key]]
        return res
    log(f"{t.key}: starting")
    global AUTH
    t0 = time.monotonic()
    try:
        proc, port, path = t.build()
        AUTH = t.auth() if t.auth else None
    except (TargetError, OSError, ValueError, KeyError) as e:
        res["error"] = f"did not start: {e}"
        return res
    res["start_s"] = time.monotonic() - t0
    own = proc is not ctx["upstream"]
    sampler = Sampler(proc.pid) if own else None
    try:
        if sampler:
            sampler.start()
        url = f"http://127.0.0.1:{port}{path}"
        try:
            sid, info = open_session(port, path, t.tools)
        except (TargetError, ValueError, KeyError) as e:
            res["error"] = f"session check failed: {e}"
            return res
        res.update(info)
        if t.scenario == "five":
            plan = [("tools/list", [LIST], '"echo5__echo"', 1), ("tools/list", [LIST], '"echo5__echo"', 32),
                    ("tools/call", [call(n) for n in t.tools], MESSAGE, 32)]
            warm = ([call(n) for n in t.tools], MESSAGE)
        else:
            plan = [("tools/call", [call("echo")], MESSAGE, 1), ("tools/call", [call("echo")], MESSAGE, 32)]
            warm = ([call("echo")], MESSAGE)
        w = wrk(url, sid, 32, args.warmup, lua_script(tmp, *warm))  # connections, pools, JIT, caches
        if "error" in w:
            res["error"] = f"warm-up: {w['error']}"
            return res
        res["warmup"] = {k: w[k] for k in ("rps", "requests", "non2xx", "bad", "timeouts", "rw_errors")}
        rss_after = []
        for method, bodies, needle, conns in plan:
            label = f"{t.key} {method} c={conns}"
            r = measure(ctx, sampler, url, sid, conns, lua_script(tmp, bodies, needle), label)
            res["runs"][f"{method} c={conns}"] = r
            log(f"  {label:32} {fmt_r(r)}")
            if own:
                rss_after.append(status_kb(proc.pid, "VmRSS") / 1024)
            if own and proc.poll() is not None:
                res["error"] = f"exited during the run (exit {proc.returncode}): {tail(os.path.join(tmp, t.key + '.log'))}"
                break
        if sampler:
            sampler.sample(rescan=True)
            root_hwm, gw_hwm, up_hwm = sampler.hwm()
            res.update(root_hwm_mb=root_hwm / 1024, gw_hwm_mb=gw_hwm / 1024, up_hwm_mb=[x / 1024 for x in up_hwm],
                       peak_gw_rss_mb=sampler.peak_gw_kb / 1024, peak_up_rss_mb=sampler.peak_up_kb / 1024,
                       gw_procs=sampler.max_gw_procs, up_procs=sampler.max_up_procs, rss_after_mb=rss_after)
        if t.key.startswith("mcpgate"):
            res["metrics"] = scrape_metrics(port)
        res["log_tail"] = tail(os.path.join(tmp, t.key + ".log"), 1500) if own else ""
        return res
    finally:
        if sampler:
            sampler.stop.set()
            sampler.join()
        AUTH = None
        if own:
            stop_tree(proc)


FAILURES = ("non2xx", "bad", "timeouts", "rw_errors", "connect_errors")


def merge(rounds):
    """One target's rounds → one result. Per measurement: the round with the median req/s (the lower one of two),
    its latency and CPU with it, every round's req/s, and the failures of all rounds summed. Memory: the maximum
    over the rounds. /metrics counts: summed."""
    good = [r for r in rounds if r.get("runs")]
    out = dict(good[0] if good else rounds[-1])
    out["rounds"] = len(rounds)
    errors = sorted({r["error"] for r in rounds if "error" in r})
    if errors:
        out["error"] = "; ".join(errors) + (f" ({len([r for r in rounds if 'error' in r])} of {len(rounds)} rounds)"
                                            if len(rounds) > 1 else "")
    runs = {}
    for key in (good[0]["runs"] if good else {}):
        rs = [r["runs"][key] for r in good if key in r["runs"]]
        fine = [x for x in rs if "error" not in x]
        if not fine:
            runs[key] = rs[0]
            continue
        med = dict(sorted(fine, key=lambda x: x["rps"])[(len(fine) - 1) // 2])
        med["all_rps"] = [x["rps"] for x in fine]
        for k in FAILURES:
            med[k] = sum(x.get(k, 0) for x in fine)
        med["disturbed_rounds"] = sum(1 for x in fine if x.get("disturbed"))
        runs[key] = med
    out["runs"] = runs
    for k in ("root_hwm_mb", "gw_hwm_mb", "peak_gw_rss_mb", "peak_up_rss_mb", "gw_procs", "up_procs"):
        vals = [r[k] for r in good if k in r]
        if vals:
            out[k] = max(vals)
    if any("up_hwm_mb" in r for r in good):
        out["up_hwm_mb"] = max((r["up_hwm_mb"] for r in good if "up_hwm_mb" in r), key=sum)
    out["rss_after_mb"] = [r["rss_after_mb"] for r in good if "rss_after_mb" in r]
    ms_ = [r["metrics"] for r in good if "requests" in r.get("metrics", {})]
    if ms_:
        total = {"requests": {}, "cache_hits": 0, "cache_misses": 0, "restarts": 0}
        for m in ms_:
            for k, v in m["requests"].items():
                total["requests"][k] = total["requests"].get(k, 0) + v
            for k in ("cache_hits", "cache_misses", "restarts"):
                total[k] += m[k]
        out["metrics"] = total
    return out


# ---------------------------------------------------------------- report

def n0(x):
    return f"{x:,.0f}"


def ms(x):
    return f"{x:.3f}" if x < 10 else (f"{x:.1f}" if x < 100 else f"{x:,.0f}")


def us(x):
    return f"{x:,.0f}" if x >= 1000 else f"{x:.1f}"


def ratio(a, b):
    if not b:
        return "–"
    x = a / b
    return f"{x:.2f}×" if x < 10 else f"{x:,.0f}×" if x >= 100 else f"{x:.1f}×"


def run_flags(r):
    notes = []
    for k, label in (("non2xx", "non-2xx"), ("bad", "wrong bodies"), ("timeouts", "timeouts"),
                     ("rw_errors", "socket read/write errors"), ("connect_errors", "connect errors")):
        if r.get(k):
            notes.append(f"{r[k]:,} {label}")
    if r.get("conns", 1) > 1 and r.get("in_flight", 99) < r["conns"] / 2:
        notes.append(f"only {r['in_flight']:.1f} of {r['conns']} requests in flight on average (rate × mean latency)")
    if r.get("requests", 10 ** 9) < 1000:
        notes.append(f"{r['requests']:,} answers in {r['seconds']:.0f} s")
    if r.get("disturbed"):
        notes.append(f"disturbed: others used {r['others_share'] * 100:.0f}% ({r.get('others', '?')})")
    if r.get("disturbed_rounds") and not r.get("disturbed"):
        notes.append(f"{r['disturbed_rounds']} other round(s) kept although disturbed")
    if len(r.get("all_rps", [])) > 1:
        notes.append("rounds: " + " / ".join(n0(x) for x in r["all_rps"]) + " req/s")
    return ", ".join(notes)


def machine_facts(ctx):
    cpu = re.search(r"model name\s*:\s*(.*)", open("/proc/cpuinfo").read())
    mem = int(re.search(r"MemTotal:\s+(\d+)", open("/proc/meminfo").read()).group(1)) / 1024 / 1024
    mtime = time.strftime("%Y-%m-%d %H:%M", time.localtime(os.stat(ctx["mcpgate"]).st_mtime))
    nginx_v = subprocess.run(["nginx", "-v"], text=True, capture_output=True).stderr.strip().split("/")[-1]
    wrk_v = subprocess.run(["wrk", "-v"], text=True, capture_output=True).stdout.split()
    sdk = os.path.join(NODE_DIR, "node_modules", "@modelcontextprotocol", "sdk", "package.json")
    sdk_v = json.load(open(sdk))["version"] if os.path.exists(sdk) else "?"
    fm, mp = VENVS["fastmcp"][0], VENVS["mcp-proxy"][0]
    return {
        "machine": f"{sh(['nproc'])} cores ({cpu.group(1) if cpu else platform.processor()}), {mem:.0f} GiB,"
                   f" Linux {platform.release()}",
        "mcpgate": f"{sh([ctx['mcpgate'], '--version']).removeprefix('mcpgate ')} (binary built {mtime}, copied at the"
                   f" start of the run; the tree's HEAD then: {ctx['git_head']}{', uncommitted changes' if ctx['git_dirty'] else ''})",
        "echo-upstream": "bench/echo-upstream (this tree; release)",
        "nginx": f"{nginx_v} (Debian nginx-light)",
        "wrk": f"{wrk_v[1] if len(wrk_v) > 1 else '?'} (Debian)",
        "rustc": sh(["rustc", "-V"]).split(" (")[0].removeprefix("rustc "),
        "supergateway": f"{npm_version('supergateway')} (@modelcontextprotocol/sdk {sdk_v}) on Node {ctx['node_version']}",
        "mcp-proxy (npm)": f"{npm_version('mcp-proxy')} (@modelcontextprotocol/sdk {sdk_v}) on Node {ctx['node_version']}",
        "fastmcp": f"{pip_version(fm, 'fastmcp')} (mcp {pip_version(fm, 'mcp')}, uvicorn {pip_version(fm, 'uvicorn')})"
                   f" on Python {platform.python_version()}",
        "mcp-proxy (PyPI)": f"{pip_version(mp, 'mcp-proxy')} (mcp {pip_version(mp, 'mcp')}, uvicorn"
                            f" {pip_version(mp, 'uvicorn')}) on Python {platform.python_version()}",
    }


def report(ctx, results, facts, started, load_before):
    args = ctx["args"]
    load = " ".join(open("/proc/loadavg").read().split()[:3])
    R = lambda key, run: results.get(key, {}).get("runs", {}).get(run)
    ok = lambda r: r is not None and "error" not in r
    cmd = " ".join(["bench/serve"] + [shlex.quote(a) for a in sys.argv[1:]])
    kept = [r for res in results.values() for r in res.get("runs", {}).values() if ok(r)]
    max_share = max((r["others_share"] for r in kept), default=0)
    disturbed = sum(1 for r in kept if r.get("disturbed"))
    lines = [
        f"# `mcpgate serve` benchmark — {started}",
        "",
        f"- Machine: {facts['machine']}; load average {load_before} before the run, {load} after. Load generator,"
        " gateway and upstream share the cores: compare rows within this run, not with other machines.",
        f"- Interference: before each measurement the harness waits (up to {args.max_wait} s) for the target to drain"
        " what earlier runs left queued and for other processes to quieten; a measurement during which other processes"
        f" used more than {args.max_interference * 100:.0f}% of the machine (/proc/stat user + system + steal, minus"
        f" the harness, wrk and the targets) was redone, at most {args.retries} times: {ctx['discarded']} discarded;"
        f" in the kept ones others used at most {max_share * 100:.1f}%"
        + (f"; {disturbed} kept although disturbed (flagged)" if disturbed else "") + ".",
        "- Versions: " + "; ".join(f"{k} {facts[k]}" for k in ("mcpgate", "nginx", "wrk", "rustc", "supergateway",
                                                              "mcp-proxy (npm)", "mcp-proxy (PyPI)", "fastmcp")),
        f"- Command: `{cmd}`: {args.rounds} round(s), each target once per round (the order rotated), started afresh;"
        " a row is the round with the median req/s (its latency and CPU with it; failures summed over the rounds,"
        " every round's req/s in the notes). wrk `-t1 -c1` and `-t2 -c32`,"
        f" {args.duration} s each after a {args.warmup} s warm-up at c=32, keep-alive, one session per target (initialize, then every request with its Mcp-Session-Id,"
        " `Accept: application/json, text/event-stream`, and a JSON-RPC id of its own); every answer checked (a non-2xx"
        " or a body without the echo counts as a failure); a request unanswered after 5 s counts as a timeout.",
        "- Upstream: bench/echo-upstream (Rust): Streamable HTTP with JSON replies for 1a, `--stdio` (newline-delimited"
        " JSON-RPC) for 1b and 2. Gateways log at warning or less where a flag allows (the peers' uvicorn access"
        " logs would otherwise write a line per request); mcpgate at its default (info: one line per session).",
        "- CPU µs/req: user + system time of the gateway's processes (its stdio children apart) during the"
        " measurement, from /proc, divided by the requests served. Peak RSS: VmHWM (peak since exec) of the"
        " gateway's own processes, summed; children apart.",
        "",
    ]

    def table(keys, runs, title, with_up=False):
        lines.extend([f"## {title}", "",
                      "| target | runtime | c | req/s | p50 ms | p99 ms | gateway CPU µs/req"
                      + (" | upstream CPU µs/req" if with_up else "") + " | peak RSS MB | notes |",
                      "|---|---|---|---|---|---|---|" + ("---|" if with_up else "") + "---|---|"])
        for key in keys:
            res = results.get(key)
            if res is None:
                continue
            if "error" in res and not res.get("runs"):
                lines.append(f"| {res['name']} | {res['runtime']} | | failed | | | |" + (" |" if with_up else "")
                             + f" | {res['error'][:300]} |")
                continue
            for run in runs:
                r = res["runs"].get(run)
                if r is None:
                    continue
                c = run.split("c=")[1]
                if "error" in r:
                    lines.append(f"| {res['name']} | {res['runtime']} | {c} | failed | | | |"
                                 + (" |" if with_up else "") + f" | {r['error'][:200]} |")
                    continue
                rss = f"{res['gw_hwm_mb']:.1f}" if "gw_hwm_mb" in res else "–"
                if res.get("gw_procs", 1) > 1:
                    rss += f" ({res['gw_procs']} processes)"
                cpu = us(r["gw_cpu_us"]) if "gw_cpu_us" in r else "–"
                up = us(r["up_cpu_us"]) if "up_cpu_us" in r else "–"
                lines.append(f"| {res['name']} | {res['runtime']} | {c} | {n0(r['rps'])} | {ms(r['p50'])} |"
                             f" {ms(r['p99'])} | {cpu} |" + (f" {up} |" if with_up else "") + f" {rss} | {run_flags(r)} |")
        lines.append("")

    def ratios(base_key, keys, runs, what):
        rows = []
        for key in keys:
            res = results.get(key)
            if not res:
                continue
            for run in runs:
                a, b = R(base_key, run), R(key, run)
                if ok(a) and ok(b):
                    c = run.split("c=")[1]
                    rows.append(f"| {res['name']} | {c} | {n0(a['rps'])} | {n0(b['rps'])} | {ratio(a['rps'], b['rps'])} |"
                                f" {ms(a['p50'])} / {ms(b['p50'])} | {ms(a['p99'])} / {ms(b['p99'])} |")
        if rows:
            lines.extend([f"mcpgate against each {what}, this run (throughput ratio = mcpgate ÷ other):", "",
                          "| other | c | mcpgate req/s | other req/s | ratio | p50 ms mcpgate / other"
                          " | p99 ms mcpgate / other |", "|---|---|---|---|---|---|---|", *rows, ""])

    calls = ["tools/call c=1", "tools/call c=32"]
    http_keys = ["direct", "nginx", "mcpgate-http", "fastmcp-http"]
    stdio_keys = ["mcpgate-stdio", "supergateway", "mcp-proxy-npm", "mcp-proxy-pypi", "fastmcp-stdio"]
    table(http_keys, calls, "1a. tools/call in front of a Streamable HTTP server")
    lines.append("Only FastMCP among the peers fronts a Streamable HTTP server over HTTP (supergateway and both"
                 " mcp-proxy packages bridge HTTP to stdio or serve a stdio server). The upstream's CPU is not in the"
                 " gateway column.\n")
    ratios("mcpgate-http", ["direct", "nginx", "fastmcp-http"], calls, "target")
    table(stdio_keys, calls, "1b. tools/call in front of a stdio server", with_up=True)
    lines.append(f"For scale, {EARLIER}.\n")
    ratios("mcpgate-stdio", stdio_keys[1:], calls, "peer")

    five_keys = ["mcpgate-five-cached", "mcpgate-five-uncached"]
    lines += ["## 2. Five stdio servers behind one mcpgate serve: tools/list (merged, 5 tools) and tools/call", "",
              "| config | request | c | req/s | p50 ms | p99 ms | gateway CPU µs/req | upstreams CPU µs/req"
              " | listing cache hits / misses (whole run; one per server and listing) | notes |", "|---|---|---|---|---|---|---|---|---|---|"]
    for key in five_keys:
        res = results.get(key)
        if not res:
            continue
        if "error" in res and not res.get("runs"):
            lines.append(f"| {res['name']} | | | failed | | | | | | {res['error'][:300]} |")
            continue
        m = res.get("metrics", {})
        cache = f"{m.get('cache_hits', 0):,} / {m.get('cache_misses', 0):,}" if "cache_hits" in m else "–"
        for run, r in res["runs"].items():
            method, c = run.split(" c=")
            what = "tools/call, echo1…echo5 in turn" if method == "tools/call" else "tools/list"
            if "error" in r:
                lines.append(f"| {res['name']} | {what} | {c} | failed | | | | | | {r['error'][:200]} |")
                continue
            lines.append(f"| {res['name']} | {what} | {c} | {n0(r['rps'])} | {ms(r['p50'])} | {ms(r['p99'])} |"
                         f" {r.get('gw_cpu_us', 0):.1f} | {r.get('up_cpu_us', 0):.1f} | {cache} | {run_flags(r)} |")
    lines.append("")
    for key in five_keys:
        reqs = results.get(key, {}).get("metrics", {}).get("requests", {})
        per = [f"{n} {reqs.get(f'{n} tools/call ok', 0):,}" for n in FIVE]
        if reqs:
            lines.append(f"{results[key]['name']}: tools/call answered per server (its /metrics): {', '.join(per)}.")
    lines.append("")
    a, b = R("mcpgate-five-cached", "tools/list c=1"), R("mcpgate-five-uncached", "tools/list c=1")
    if ok(a) and ok(b):
        lines += [f"tools/list at c=1, cached vs uncached: p50 {ms(a['p50'])} vs {ms(b['p50'])} ms"
                  f" ({ratio(b['p50'], a['p50'])} faster), p99 {ms(a['p99'])} vs {ms(b['p99'])} ms,"
                  f" {n0(a['rps'])} vs {n0(b['rps'])} req/s.", ""]

    # Memory
    lines += ["## 3. Memory", "",
              "| target | scenario | gateway peak RSS MB (VmHWM, summed) | sampled peak VmRSS MB (gateway processes)"
              " | processes | upstream children: VmHWM MB each | VmRSS MB of mcpgate after each measurement (per round) |",
              "|---|---|---|---|---|---|---|"]
    scen = {"http": "1a", "stdio": "1b", "five": "2 (5 servers)"}
    for key, res in results.items():
        if "gw_hwm_mb" not in res:
            continue
        ups = ", ".join(f"{x:.1f}" for x in res.get("up_hwm_mb", [])) or "–"
        after = ("; ".join(" → ".join(f"{x:.1f}" for x in one) for one in res.get("rss_after_mb", []))
                 if key.startswith("mcpgate") else "–")
        lines.append(f"| {res['name']} | {scen[res['scenario']]} | {res['gw_hwm_mb']:.1f} | {res['peak_gw_rss_mb']:.1f}"
                     f" | {res['gw_procs']} | {ups} | {after} |")
    lines.append("")

    # Goals
    goals = []
    a, b = R("mcpgate-stdio", "tools/call c=32"), R("supergateway", "tools/call c=32")
    if ok(a) and ok(b):
        goals.append(f"| ≥ 10× supergateway --stateful, stdio server, c=32 | {n0(a['rps'])} req/s |"
                     f" {n0(b['rps'])} req/s | {ratio(a['rps'], b['rps'])} | {'yes' if a['rps'] >= 10 * b['rps'] else 'no'} |")
    a, b = R("mcpgate-http", "tools/call c=32"), R("nginx", "tools/call c=32")
    if ok(a) and ok(b):
        goals.append(f"| ≥ nginx's throughput, HTTP server, c=32 | {n0(a['rps'])} req/s | {n0(b['rps'])} req/s |"
                     f" {ratio(a['rps'], b['rps'])} | {'yes' if a['rps'] >= b['rps'] else 'no'} |")
    j = R("mcpgate-http-jwt", "tools/call c=32")
    if ok(j) and ok(a):
        goals.append(f"| JWT validation on: ≤ 10% fewer req/s than off, HTTP server, c=32 | {n0(j['rps'])} req/s |"
                     f" {n0(a['rps'])} req/s (off) | {ratio(j['rps'], a['rps'])} | {'yes' if j['rps'] >= 0.9 * a['rps'] else 'no'} |")
    if ok(j) and ok(b):
        goals.append(f"| (beside nginx) JWT on, HTTP server, c=32 | {n0(j['rps'])} req/s | {n0(b['rps'])} req/s (nginx) |"
                     f" {ratio(j['rps'], b['rps'])} | – |")
    five_rss = [results[k]["root_hwm_mb"] for k in five_keys if "root_hwm_mb" in results.get(k, {})]
    if five_rss:
        peak = max(five_rss)
        kids = max((sum(results[k]["up_hwm_mb"]) for k in five_keys if results.get(k, {}).get("up_hwm_mb")), default=0)
        goals.append(f"| peak RSS ≤ 30 MB with 5 upstreams (mcpgate's own process) | {peak:.1f} MB | – (children:"
                     f" {kids:.1f} MB together) | | {'yes' if peak <= 30 else 'no'} |")
    for k in ("mcpgate-http", "mcpgate-http-jwt", "mcpgate-stdio", "mcpgate-five-cached", "mcpgate-five-uncached"):
        for run, r in results.get(k, {}).get("runs", {}).items():
            if ok(r) and (r["non2xx"] or r["bad"] or r["timeouts"] or r["rw_errors"]):
                goals.append(f"| no failed answers ({results[k]['name']}, {run}) | {run_flags(r)} | | | no |")
    if goals:
        lines += ["## Goals, both sides from this run", "", "| goal | mcpgate | other | ratio | met |",
                  "|---|---|---|---|---|", *goals, ""]

    # Commands, sessions, failures
    lines += ["## Targets", ""]
    for key, res in results.items():
        extra = ""
        if res.get("protocol"):
            extra = (f" Session: protocol {res['protocol']}, server `{res.get('server')}`, tools/call answered as"
                     f" `{res.get('call_content_type')}` (with `Accept: application/json` alone:"
                     f" `{res.get('json_only_content_type')}`); ready in {res.get('start_s', 0):.1f} s.")
        m = res.get("metrics")
        if m and "requests" in m:
            errs = {k: v for k, v in m["requests"].items() if not k.endswith(" ok")}
            extra += (f" /metrics after the run: {sum(v for k, v in m['requests'].items() if k.endswith(' ok')):,}"
                      f" ok" + (f", not ok: {errs}" if errs else ", none failed") + f"; restarts {m['restarts']}.")
        lines.append(f"- **{res['name']}** ({res['scenario']}): {res['cmd']}.{extra}")
    failed = [(res["name"], res["scenario"], res["error"]) for res in results.values() if "error" in res]
    if failed:
        lines += ["", "Failures:", ""] + [f"- {n} ({s}): {e[:600]}" for n, s, e in failed]
    text = "\n".join(lines) + "\n"
    os.makedirs(OUT, exist_ok=True)
    with open(os.path.join(OUT, "serve.md"), "w") as f:
        f.write(text)
    with open(os.path.join(OUT, "serve.json"), "w") as f:
        json.dump({"facts": facts, "args": vars(args), "results": results}, f, indent=1, default=str)
    print(text)


# ---------------------------------------------------------------- main

def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--duration", type=int, default=10, help="seconds per measurement (default 10)")
    ap.add_argument("--warmup", type=int, default=2, help="seconds of warm-up per target, at c=32 (default 2)")
    ap.add_argument("--only", help="comma-separated subset of: direct, nginx, mcpgate-http, fastmcp-http,"
                                   " mcpgate-stdio, supergateway, mcp-proxy-npm, mcp-proxy-pypi, fastmcp-stdio,"
                                   " mcpgate-five-cached, mcpgate-five-uncached")
    ap.add_argument("--mcpgate", default=os.path.join(ROOT, "target", "release", "mcpgate"),
                    help="mcpgate binary (default target/release/mcpgate, copied once at the start; not built here)")
    ap.add_argument("--max-interference", type=float, default=0.1,
                    help="redo a measurement during which other processes used more than this share of the machine's"
                         " CPU (default 0.1; 0 keeps every measurement)")
    ap.add_argument("--rounds", type=int, default=3,
                    help="rounds (every target once, the order rotated); per measurement the report keeps the round"
                         " with the median req/s (default 3)")
    ap.add_argument("--retries", type=int, default=3, help="redos per measurement at most (default 3)")
    ap.add_argument("--max-wait", type=int, default=300,
                    help="seconds to wait, before a measurement, for other processes to quieten (default 300)")
    args = ap.parse_args()
    started = time.strftime("%Y-%m-%d %H:%M %Z")
    load_before = " ".join(open("/proc/loadavg").read().split()[:3])
    ensure_tool("wrk", "wrk")
    ensure_tool("nginx", "nginx-light")
    if not os.access(args.mcpgate, os.X_OK):
        sys.exit(f"{args.mcpgate} is missing: build it first (cargo build --release)")
    install_failed = ensure_peers()
    log("building bench/echo-upstream (release, target/bench)")
    subprocess.run(["cargo", "build", "--release", "--quiet", "--manifest-path",
                    os.path.join(ROOT, "bench", "echo-upstream", "Cargo.toml")], cwd=ROOT, check=True,
                   env={**os.environ, "CARGO_TARGET_DIR": ECHO_TARGET})

    tmp = tempfile.mkdtemp(prefix="mcpgate-serve-bench-")
    snapshot = os.path.join(tmp, "mcpgate")
    shutil.copy2(args.mcpgate, snapshot)  # target/release/mcpgate may be rebuilt while this runs
    git = lambda *a: subprocess.run(["git", "-C", ROOT, *a], text=True, capture_output=True).stdout.strip()
    git_head, git_dirty = git("rev-parse", "--short", "HEAD"), bool(git("status", "--porcelain", "--untracked-files=no"))
    node = NODE22 if os.path.exists(NODE22) else shutil.which("node")
    home = os.path.join(tmp, "home")
    os.makedirs(home)
    ctx = {"args": args, "tmp": tmp, "mcpgate": snapshot, "node": node, "node_version": sh([node, "--version"]).lstrip("v"),
           "procs": [], "discarded": 0, "install_failed": install_failed, "env": base_env(home),
           "git_head": git_head, "git_dirty": git_dirty}
    up_port = free_port()
    upstream = subprocess.Popen([ECHO, f"127.0.0.1:{up_port}"], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                stderr=open(os.path.join(tmp, "upstream.log"), "w"), start_new_session=True)
    ctx["procs"].append(upstream)
    ctx.update(upstream=upstream, up_port=up_port)
    try:
        wait_port(up_port, upstream, "echo-upstream", os.path.join(tmp, "upstream.log"))
        ts = targets(ctx)
        only = set(args.only.split(",")) if args.only else None
        if only and only - {t.key for t in ts}:
            sys.exit(f"--only: unknown {', '.join(sorted(only - {t.key for t in ts}))}")
        chosen = [t for t in ts if only is None or t.key in only]
        rounds = {t.key: [] for t in chosen}
        for i in range(args.rounds):
            # Round i starts i targets further down the list: no target always runs first, or right after another.
            k = i % len(chosen)
            for t in chosen[k:] + chosen[:k]:
                if args.rounds > 1:
                    log(f"round {i + 1}/{args.rounds}: {t.key}")
                r = run_target(ctx, t)
                rounds[t.key].append(r)
                if "error" in r:
                    log(f"{t.key}: FAILED: {r['error']}")
        results = {t.key: merge(rounds[t.key]) for t in chosen}
        facts = machine_facts(ctx)
        report(ctx, results, facts, started, load_before)
    finally:
        for p in ctx["procs"]:
            stop_tree(p)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
