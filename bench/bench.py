#!/usr/bin/python3
"""lunamodb's benchmark (issue 8): runs the workloads through every runner, prints the report.

    bench/run.sh [options]     (make bench): set-up (packages, builds, npm), then this script

Options:
  --quick              a quarter of the counts, 1 run, canned server only, no memory/pscan (for iterating)
  --only R1,R2         runners: floor lunamodb54 lunamodbjit boto3 js (floor is always added:
                       every ratio is to the floor measured in the same run)
  --workloads W1,W2    put get update query scan batch_write batch_get
  --targets T1,T2      canned (nginx, CPU) and/or ddb (DynamoDB Local, wall); quick: canned
  --extras E1,E2       memory (100,000 gets) and/or pscan (parallel scan speed-up), or none
  --runs N             runs per runner and workload (median); default 3 against the canned
                       server and 5 against DynamoDB Local (see DDB_RUNS), quick 1
  --scale F            multiply every count by F

Each runner is a separate process per workload, run and slice (the floor and lunamodb take
turns in SLICES slices per run); it times only its measured section after a warm-up and
prints one RESULT line. Against the canned server the server's request counters must match
what the runner says it sent. The report goes to stdout and to
bench/results/latest.txt (raw numbers: latest.json). Exit status 0 even when a target is
missed (this is a report); non-zero when a runner or a server breaks.
"""
import argparse
import datetime
import json
import os
import platform
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time
import urllib.request

BENCH = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(BENCH)
WORK = os.path.join(ROOT, "build", "bench")        # generated data, nginx prefix, floor binary
DATA = os.path.join(WORK, "data")
RESULTS = os.path.join(BENCH, "results")
sys.path.insert(0, BENCH)
import gen  # noqa: E402  (the item definition)

WORKLOADS = ["put", "get", "update", "query", "scan", "batch_write", "batch_get"]
# CPU target per workload: lunamodb's CPU per item at most this many times the floor's.
CPU_TARGET = {"put": 2, "get": 2, "update": 2, "query": 3, "scan": 3, "batch_get": 3,
              "batch_write": 4}
DDB_WALL_TARGET = 1.2
UNIT = {"put": "call", "get": "call", "update": "call", "query": "item returned",
        "scan": "item returned", "batch_write": "item written", "batch_get": "item returned"}

LUA_PATH = f"{ROOT}/lua/?.lua;{ROOT}/lua/?/init.lua;;"
RUNNERS = {
    "floor": ("floor (C: libcurl + cJSON)", [f"{WORK}/floor"], {}),
    "lunamodb54": ("lunamodb (Lua 5.4)", ["lua5.4", f"{BENCH}/lunamodb_runner.lua"],
                   {"LUA_PATH": LUA_PATH, "LUA_CPATH": f"{ROOT}/build/lua5.4/?.so;;"}),
    "lunamodbjit": ("lunamodb (LuaJIT)", ["luajit", f"{BENCH}/lunamodb_runner.lua"],
                    {"LUA_PATH": LUA_PATH, "LUA_CPATH": f"{ROOT}/build/luajit/?.so;;"}),
    "boto3": ("boto3 (resource API)", ["/usr/bin/python3", f"{BENCH}/boto3_runner.py"], {}),
    "js": ("AWS JS SDK v3 DocumentClient", ["node", f"{BENCH}/js_runner.mjs"],
           {"AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED": "true"}),
}
ORDER = list(RUNNERS)
LUNAMODB = ("lunamodb54", "lunamodbjit")

# Calls per run, sized so a runner's timed sections of a run last half a second to a second on
# a 2-core machine (the peers are 10-50x slower per call, so they make fewer); the floor's and
# lunamodb's are split into SLICES processes, so a slice times about a hundred milliseconds
# at least. Query/scan/batch calls carry 1000/100/25 items each.
CALLS = {
    "canned": {
        "put": {"floor": 20000, "lunamodb": 10000, "peer": 1000},
        "get": {"floor": 20000, "lunamodb": 10000, "peer": 1000},
        "update": {"floor": 20000, "lunamodb": 10000, "peer": 1000},
        "query": {"floor": 100, "lunamodb": 100, "peer": 10},
        "scan": {"floor": 100, "lunamodb": 100, "peer": 10},
        "batch_write": {"floor": 10000, "lunamodb": 4000, "peer": 100},
        "batch_get": {"floor": 1000, "lunamodb": 400, "peer": 40},
    },
    # DynamoDB Local's own time dominates here: the same count for everyone.
    "ddb": {"put": 4000, "get": 4000, "update": 4000, "query": 40, "scan": 40,
            "batch_write": 200, "batch_get": 120},
}
# Turns per run and workload (see main). DynamoDB Local's own time per call drifts by tens of
# percent within a run (its JVM collects and compiles as it likes), and this shared machine's
# speed moves within seconds too (with 4 turns, one run's CPU ratio for update read 2.09 and
# another's of the same code 1.64): finer turns keep a slow spell from landing on one runner's
# slice more than on another's.
SLICES = {"canned": 8, "ddb": 8}
# Runs against DynamoDB Local (the canned server's are 3). Its wall times drift between runs, not
# only within one: a run's ratio for one workload read from 1.03 to 1.51 over three runs taken a
# minute apart, so the median of three turned on which way one run drifted; five runs' median
# does not.
DDB_RUNS = 5
MEMORY_CALLS = 100000
PSCAN_ITEMS = 4000
PSCAN_SEGMENTS = (1, 2, 4)
PSCAN_CALLS = 3


def die(msg):
    print(f"\nbench: ERROR: {msg}", file=sys.stderr)
    sys.exit(1)


def note(msg):
    print(f"bench: {msg}", file=sys.stderr, flush=True)


def sh(cmd):
    try:
        return subprocess.run(cmd, shell=True, capture_output=True, text=True).stdout.strip()
    except OSError:
        return ""


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


# ------------------------------------------------------------------ servers

class Canned:
    """nginx from a private prefix under build/bench, answering canned bodies."""

    def __init__(self):
        self.prefix = os.path.join(WORK, "nginx")
        shutil.rmtree(self.prefix, ignore_errors=True)
        for d in ("conf", "logs", "tmp"):
            os.makedirs(os.path.join(self.prefix, d))
        self.port = free_port()
        with open(os.path.join(BENCH, "canned.conf")) as f:
            conf = f.read()
        # as root the workers would be `nobody`, which may not read the checkout
        user = "user root;" if os.geteuid() == 0 else ""
        for k, v in {"@USER@": user, "@PORT@": str(self.port), "@BENCH@": BENCH,
                     "@DATA@": DATA}.items():
            conf = conf.replace(k, v)
        with open(os.path.join(self.prefix, "conf", "nginx.conf"), "w") as f:
            f.write(conf)
        nginx = shutil.which("nginx") or "/usr/sbin/nginx"
        r = subprocess.run([nginx, "-p", self.prefix + "/", "-c", "conf/nginx.conf"],
                           capture_output=True, text=True)
        if r.returncode != 0:
            die(f"nginx did not start:\n{r.stderr}\n{self.log()}")
        with open(os.path.join(self.prefix, "logs", "nginx.pid")) as f:
            self.pid = int(f.read())
        self.url = f"http://127.0.0.1:{self.port}"
        deadline = time.time() + 10
        while True:
            try:
                self.stats()
                break
            except OSError:
                if time.time() > deadline:
                    self.stop()
                    die(f"nginx does not answer on {self.url}:\n{self.log()}")
                time.sleep(0.05)

    def log(self):
        try:
            with open(os.path.join(self.prefix, "logs", "error.log")) as f:
                return f.read()
        except OSError:
            return "(no error log)"

    def stats(self):
        with urllib.request.urlopen(self.url + "/stats", timeout=5) as r:
            return json.load(r)

    def stop(self):
        try:
            os.kill(self.pid, signal.SIGQUIT)
        except (OSError, AttributeError):
            return
        for _ in range(100):
            try:
                os.kill(self.pid, 0)
            except OSError:
                return
            time.sleep(0.05)
        os.kill(self.pid, signal.SIGKILL)


class DdbLocal:
    """DynamoDB Local through scripts/ddb-local.sh (cached download, free port)."""

    def __init__(self):
        self.script = os.path.join(ROOT, "scripts", "ddb-local.sh")
        self.dir = os.path.join(WORK, "ddb")
        os.makedirs(self.dir, exist_ok=True)
        if subprocess.run([self.script, "fetch"]).returncode != 0:
            die("cannot fetch DynamoDB Local")
        r = subprocess.run([self.script, "start", self.dir], stdout=subprocess.PIPE, text=True)
        if r.returncode != 0:
            die("cannot start DynamoDB Local")
        self.url = r.stdout.strip()

    def stop(self):
        subprocess.run([self.script, "stop", self.dir])


# ------------------------------------------------------------------ runners

def run_runner(name, workload, calls, url, warmup=None):
    """Runs one runner process; returns its RESULT as a dict. Fails loudly."""
    _, cmd, env_extra = RUNNERS[name]
    args = cmd + [workload, str(calls), url, DATA] + ([str(warmup)] if warmup is not None else [])
    env = dict(os.environ, **env_extra)
    r = subprocess.run(args, capture_output=True, text=True, env=env, cwd=ROOT)
    lines = [line for line in r.stdout.splitlines() if line.startswith("RESULT ")]
    if r.returncode != 0 or len(lines) != 1:
        die(f"runner {name} failed on {workload} (exit {r.returncode}): {' '.join(args)}\n"
            f"--- stdout ---\n{r.stdout}\n--- stderr ---\n{r.stderr}")
    res = json.loads(lines[0][7:])
    if res.get("workload") != workload:
        die(f"runner {name} answered {res.get('workload')} for {workload}")
    return res


def calls_for(target, workload, runner, scale):
    if target == "ddb":
        n = CALLS["ddb"][workload]
    else:
        kind = "floor" if runner == "floor" else "lunamodb" if runner in LUNAMODB else "peer"
        n = CALLS["canned"][workload][kind]
    return max(3, int(n * scale))


def measure_canned(canned, name, workload, calls):
    before = canned.stats()
    res = run_runner(name, workload, calls, canned.url)
    after = canned.stats()
    delta = {k: after.get(k, 0) - before.get(k, 0) for k in after}
    delta = {k: v for k, v in delta.items() if v}
    op = gen.TARGETS[workload]
    # every request the runner made reached the server as the right operation, nothing else
    if delta != {op: res["requests"]}:
        die(f"runner {name} on {workload}: it reports {res['requests']} requests, the canned "
            f"server counted {delta}\n{canned.log()[-2000:]}")
    return res


def measure_ddb(ddb, name, workload, calls):
    return run_runner(name, workload, calls, ddb.url)


def combine(parts):
    """One result from a runner's slices of a run: their items, and µs per item over them all."""
    out = dict(parts[0])
    out["items"] = sum(p["items"] for p in parts)
    out["requests"] = sum(p["requests"] for p in parts)
    for k in ("cpu_us_per_item", "wall_us_per_item"):
        out[k] = sum(p[k] * p["items"] for p in parts) / out["items"]
    return out


# ------------------------------------------------------------------ report

def machine():
    cpu = "?"
    try:
        with open("/proc/cpuinfo") as f:
            m = re.search(r"^model name\s*:\s*(.*)$", f.read(), re.M)
            cpu = m.group(1) if m else cpu
    except OSError:
        pass

    def dpkg(pkg):
        return sh(f"dpkg-query -W -f='${{Version}}' {pkg} 2>/dev/null") or "?"

    def npm_version(pkg):
        try:
            with open(os.path.join(BENCH, "node_modules", pkg, "package.json")) as f:
                return json.load(f)["version"]
        except OSError:
            return "?"

    core_version = sh(f"cd {ROOT} && LUA_CPATH='build/lua5.4/?.so' lua5.4 -e "
                      "'print(require(\"lunamodb.core\").VERSION)'")
    git = sh(f"git -C {ROOT} describe --always --dirty 2>/dev/null") or "?"
    pyver = sh("/usr/bin/python3 -c 'import platform; print(platform.python_version())'")
    ddb_version = os.path.basename(sh(os.path.join(ROOT, "scripts", "ddb-local.sh") + " path"))
    lines = [
        f"machine:  nproc {sh('nproc')}, {cpu}, Linux {platform.release()}, "
        f"Debian {sh('cat /etc/debian_version')}",
        f"lunamodb: {core_version} (git {git}), {sh('lua5.4 -v').split('  ')[0]}, {sh('luajit -v').split(' -- ')[0]}",
        f"floor:    gcc {sh('gcc -dumpfullversion')}, libcurl {dpkg('libcurl4-openssl-dev')}, "
        f"cJSON {dpkg('libcjson-dev')}",
        f"peers:    boto3 {dpkg('python3-boto3')} + botocore {dpkg('python3-botocore')} on "
        f"/usr/bin/python3 {pyver}; @aws-sdk/client-dynamodb {npm_version('@aws-sdk/client-dynamodb')}"
        f" + lib-dynamodb {npm_version('@aws-sdk/lib-dynamodb')} on node {sh('node -v')}",
        f"servers:  nginx {dpkg('nginx')} + libnginx-mod-http-lua {dpkg('libnginx-mod-http-lua')} "
        f"(canned, 1 worker); DynamoDB Local {ddb_version} (openjdk {dpkg('openjdk-17-jre-headless')})",
    ]
    return lines


def fmt(v, width=9, prec=2):
    return f"{v:{width}.{prec}f}" if v is not None else " " * (width - 1) + "-"


def report(opts, results, memory, pscan, meta, elapsed):
    """results[target][workload][runner] = list of RESULT dicts (one per run)."""
    out = []
    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    out.append(f"lunamodb benchmark, {now} ({'quick' if opts.quick else 'full'} mode, "
               f"{opts.runs} run{'s' if opts.runs > 1 else ''}"
               + (f" (DynamoDB Local: {opts.ddb_runs})" if opts.ddb_runs != opts.runs else "")
               + f", median; {elapsed:.0f} s)")
    out += machine()
    out.append(f"item:     {meta['item_bytes']} bytes of wire JSON, 11 attributes (S N S S N N BOOL "
               f"SS datetime M(4) L(5)); Query/Scan answer 1,000-item pages, BatchGetItem 100 items")
    out.append("CPU, wall = the runner process's own CPU time and the elapsed time per item against "
               "the canned nginx server; DDBL wall = elapsed time per item against DynamoDB Local.")
    out.append("µs columns: medians over the runs. x floor: the median over the runs of the runner's "
               "number divided by the floor's from the same run.")

    def med(rows, key):
        return statistics.median(r[key] for r in rows) if rows else None

    def ratio(rows, floor_rows, key):
        # runs are paired (run i of the runner over run i of the floor), which cancels the
        # drift of a shared machine or of DynamoDB Local's JVM between runs
        if not rows or not floor_rows:
            return None
        return statistics.median(r[key] / f[key] for r, f in zip(rows, floor_rows))

    verdicts = []
    for w in opts.workloads:
        canned = results.get("canned", {}).get(w, {})
        ddb = results.get("ddb", {}).get(w, {})
        out.append("")
        out.append(f"{w} (µs per {UNIT[w]}; target: lunamodb CPU <= {CPU_TARGET[w]}x floor"
                   f", DynamoDB Local wall <= {DDB_WALL_TARGET}x floor)")
        out.append(f"  {'runner':30} {'CPU µs':>9} {'wall µs':>9} {'CPU x fl':>9} {'wall x fl':>9}"
                   f" | {'DDBL wall':>9} {'x floor':>8} | verdict")
        for name in ORDER:
            if name not in opts.only:
                continue
            c, wl = med(canned.get(name), "cpu_us_per_item"), med(canned.get(name), "wall_us_per_item")
            d = med(ddb.get(name), "wall_us_per_item")
            cr = ratio(canned.get(name), canned.get("floor"), "cpu_us_per_item")
            wr = ratio(canned.get(name), canned.get("floor"), "wall_us_per_item")
            dr = ratio(ddb.get(name), ddb.get("floor"), "wall_us_per_item")
            verdict = ""
            if name in LUNAMODB:
                parts = []
                if cr is not None:
                    ok = cr <= CPU_TARGET[w]
                    parts.append(f"CPU {'PASS' if ok else 'FAIL'}")
                    verdicts.append((w, RUNNERS[name][0], f"CPU {cr:.2f}x <= {CPU_TARGET[w]}x", ok))
                if dr is not None:
                    ok = dr <= DDB_WALL_TARGET
                    parts.append(f"DDBL {'PASS' if ok else 'FAIL'}")
                    verdicts.append((w, RUNNERS[name][0], f"DDBL wall {dr:.2f}x <= {DDB_WALL_TARGET}x", ok))
                verdict = ", ".join(parts)
            out.append(f"  {RUNNERS[name][0]:30} {fmt(c)} {fmt(wl)} {fmt(cr)} {fmt(wr)}"
                       f" | {fmt(d)} {fmt(dr, 8)} | {verdict}")

    if memory:
        out.append("")
        out.append(f"memory: lunamodb Model:get x {memory[0][1]['items']:,} "
                   f"against the canned server; heap (KB, after a full GC) and RSS (KB) every "
                   f"{memory[0][1]['samples']:,} calls")
        for name, res in memory:
            heap, rss = res["heap_kb"], res["rss_kb"]
            # flat: after the first sample (the warm-up), no more than 10% growth
            hg, rg = heap[-1] / heap[0] - 1, rss[-1] / rss[0] - 1
            ok = hg < 0.10 and rg < 0.10
            verdicts.append(("memory", RUNNERS[name][0], f"heap {hg:+.1%}, RSS {rg:+.1%} < +10%", ok))
            out.append(f"  {RUNNERS[name][0]:20} heap {heap[0]} -> {heap[-1]} KB ({hg:+.1%}), "
                       f"RSS {rss[0]} -> {rss[-1]} KB ({rg:+.1%}): {'flat' if ok else 'GROWS'}")
            out.append(f"  {'':20} heap {' '.join(map(str, heap))}")
            out.append(f"  {'':20} RSS  {' '.join(map(str, rss))}")

    if pscan:
        out.append("")
        out.append(f"parallel scan: Model:parallel_scan of {PSCAN_ITEMS:,} items on DynamoDB Local, "
                   f"wall ms per full scan (median of the runs' means of {PSCAN_CALLS} scans)")
        for name, by_seg in pscan.items():
            base = statistics.median(by_seg[1])
            cells = ", ".join(f"{s} segment{'s' if s > 1 else ''} {statistics.median(v) / 1000:.1f} ms "
                              f"(x{base / statistics.median(v):.2f})" for s, v in sorted(by_seg.items()))
            out.append(f"  {RUNNERS[name][0]:20} {cells}")
        out.append("  (2 cores shared by DynamoDB Local's JVM and the client bound the speed-up)")

    if verdicts:
        out.append("")
        fails = [v for v in verdicts if not v[3]]
        out.append(f"summary: {len(verdicts) - len(fails)} of {len(verdicts)} targets met")
        for w, who, what, ok in verdicts:
            if not ok:
                out.append(f"  FAIL {w:12} {who:20} {what}")
    if "boto3" in opts.only or "js" in opts.only:
        out.append("")
        out.append("PynamoDB is not measured: it installs only from PyPI, which this machine cannot reach. "
                   "Peers decode datetimes as strings (lunamodb parses them).")
    return "\n".join(out) + "\n"


# ------------------------------------------------------------------ main

def parse_args(argv):
    p = argparse.ArgumentParser(prog="bench/run.sh", description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true")
    p.add_argument("--only")
    p.add_argument("--workloads")
    p.add_argument("--targets")
    p.add_argument("--extras")
    p.add_argument("--runs", type=int)
    p.add_argument("--scale", type=float)
    o = p.parse_args(argv)

    def listed(text, allowed, default, what):
        items = default if text is None else [x for x in text.split(",") if x and x != "none"]
        for x in items:
            if x not in allowed:
                p.error(f"unknown {what} '{x}' (known: {', '.join(allowed)})")
        return items

    o.only = listed(o.only, ORDER, ORDER, "runner")
    if "floor" not in o.only:
        o.only = ["floor"] + o.only
    o.workloads = [w for w in WORKLOADS if w in listed(o.workloads, WORKLOADS, WORKLOADS, "workload")]
    o.targets = listed(o.targets, ["canned", "ddb"], ["canned"] if o.quick else ["canned", "ddb"], "target")
    o.extras = listed(o.extras, ["memory", "pscan"], [] if o.quick else ["memory", "pscan"], "extra")
    o.ddb_runs = o.runs or (1 if o.quick else DDB_RUNS)
    o.runs = o.runs or (1 if o.quick else 3)
    o.scale = o.scale or (0.25 if o.quick else 1.0)
    return o


def main(argv):
    opts = parse_args(argv)
    t0 = time.time()
    os.makedirs(WORK, exist_ok=True)
    meta = gen.main(DATA)
    lunas = [n for n in opts.only if n in LUNAMODB]
    servers = []

    def on_signal(signum, _frame):
        raise SystemExit(128 + signum)
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGHUP, on_signal)

    results = {}
    memory, pscan = [], {}
    try:
        if "canned" in opts.targets or "memory" in opts.extras:
            canned = Canned()
            servers.append(canned)
            note(f"canned nginx on {canned.url}")
        if "ddb" in opts.targets or ("pscan" in opts.extras and lunas):
            ddb = DdbLocal()
            servers.append(ddb)
            note(f"DynamoDB Local on {ddb.url}; filling its tables")
            run_runner("lunamodb54", "setup", PSCAN_ITEMS, ddb.url)
            # the JVM's JIT warms up before anything is timed
            for w in opts.workloads:
                run_runner("floor", w, max(3, calls_for("ddb", w, "floor", 0.1)), ddb.url)

        for target in opts.targets:
            server = canned if target == "canned" else ddb
            measure = measure_canned if target == "canned" else measure_ddb
            names = opts.only if target == "canned" else [n for n in opts.only if n == "floor" or n in LUNAMODB]
            runs = opts.runs if target == "canned" else opts.ddb_runs
            for run in range(1, runs + 1):
                for w in opts.workloads:
                    # The machine and DynamoDB Local's JVM drift by tens of percent within
                    # seconds: the floor's and lunamodb's calls of a run are split into SLICES
                    # slices, the runners take turns slice by slice (every other turn in reverse
                    # order, so none always follows the same one), and a run's result adds its
                    # slices up, so each is timed over the same stretch of time as the floor.
                    # The peers (no target, slow to start) run once, in the first turn.
                    parts = {name: [] for name in names}
                    for turn in range(SLICES[target]):
                        order = names if (run + turn) % 2 else list(reversed(names))
                        for name in order:
                            slices = SLICES[target] if name == "floor" or name in LUNAMODB else 1
                            if turn >= slices:
                                continue
                            calls = max(3, calls_for(target, w, name, opts.scale) // slices)
                            parts[name].append(measure(server, name, w, calls))
                    for name in names:
                        res = combine(parts[name])
                        results.setdefault(target, {}).setdefault(w, {}).setdefault(name, []).append(res)
                        note(f"{target} run {run}/{runs} {w:11} {name:11} {res['items']:>8} items "
                             f"cpu {res['cpu_us_per_item']:9.2f} wall {res['wall_us_per_item']:9.2f} µs/item")

        if "memory" in opts.extras:
            for name in lunas:
                n = max(1000, int(MEMORY_CALLS * opts.scale))
                note(f"memory: {name} {n} gets")
                memory.append((name, run_runner(name, "memory", n, canned.url)))
        if "pscan" in opts.extras:
            for name in lunas:
                pscan[name] = {}
                for run in range(opts.runs):
                    for seg in PSCAN_SEGMENTS:
                        res = run_runner(name, "pscan", PSCAN_CALLS, ddb.url, warmup=seg)
                        pscan[name].setdefault(seg, []).append(res["wall_us_per_scan"])
                        note(f"pscan {name} {seg} segments: {res['wall_us_per_scan'] / 1000:.1f} ms")
    finally:
        for s in reversed(servers):
            s.stop()

    text = report(opts, results, memory, pscan, meta, time.time() - t0)
    os.makedirs(RESULTS, exist_ok=True)
    with open(os.path.join(RESULTS, "latest.txt"), "w") as f:
        f.write(text)
    with open(os.path.join(RESULTS, "latest.json"), "w") as f:
        json.dump({"args": argv, "results": results, "memory": memory, "pscan": pscan}, f, indent=1)
    print()
    print(text, end="")
    note(f"report written to {os.path.relpath(os.path.join(RESULTS, 'latest.txt'), ROOT)}")


if __name__ == "__main__":
    main(sys.argv[1:])
