#!/usr/bin/python3
"""Side-by-side benchmark of sandbox-cni against the reference plugins (Debian's
containernetworking-plugins in /usr/lib/cni), in one run.

Every figure is measured interleaved: each round runs a bare process start (a static do-nothing
binary), our plugin and the reference plugin, in rotating order, so machine noise hits all three alike.
Figures are printed as ratios to the reference and to the bare start; the absolute medians are kept for
context only. Process timing and peak RSS come from bench/runner.c (a tiny static parent: fork, exec,
wait4), so the Python interpreter's own start-up and memory never enter a figure.

Run as root for the full picture: the reference bridge and loopback need real network namespaces, which
the script creates for itself (its own scratch namespace for the host side, one container namespace)
and removes at the end. Without root those two comparisons are skipped.

With --reference2 DIR a second reference (e.g. the 1.9.1 plugins of the test root) gets its own column:
every round then runs bare, ours and both references, so all ratios come from the same rounds.
bench/in-root.sh runs the whole benchmark inside the test root (tests/testroot) that way, Debian 12's
1.1.1 beside sid's 1.9.1.

Usage: bench/run.py [--quick] [--ours DIR] [--reference DIR] [--reference2 DIR] [--out DIR] [--check]
                    [--tools DIR] [--replot]
Writes OUT/results.json, OUT/report.md and OUT/latency-vs-store-size.png (OUT defaults to bench/out).
"""

import argparse
import ctypes
import ipaddress
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
MUSL = "x86_64-unknown-linux-musl"
sys.path.insert(0, os.path.join(REPO, "plugins"))
from plugin_list import PLUGINS  # noqa: E402  (the project's one plugin list, plugins/list.txt)
CALL_TIMEOUT = 120  # seconds; no single plugin call may take longer
STORE_NET = ipaddress.ip_network("10.200.0.0/16")

# Targets (from the project's issues). Sizes are strict decimal: 1.5 MB = 1,500,000 bytes.
RSS_LIMIT_KIB = 1_500_000 // 1024
TARGETS = {
    "version_vs_bare": 1.3,
    "loopback_add_vs_bare": 1.3,
    "empty_speedup": 3.0,
    "store60k_speedup": 300.0,
    "concurrency_speedup": 4.0,
    "bridge_add_vs_bare": 2.5,
    "steady_add_vs_bare": 2.5,
    "steady_speedup": 3.0,
    # The invocation trace, on, costs at most 10% of a host-local ADD: off/on >= 1/1.1.
    "trace_on_vs_off": 1 / 1.1,
}


def log(msg):
    print(msg, file=sys.stderr, flush=True)


class BenchError(Exception):
    pass


# ---- tools ------------------------------------------------------------------------------------------


def prebuilt_tools(d):
    """runner and nothing built earlier (static, so they run in any root), e.g. by bench/in-root.sh."""
    tools = {name: os.path.join(d, name) for name in ["runner", "nothing"]}
    for exe in tools.values():
        if not os.access(exe, os.X_OK):
            raise BenchError(f"--tools {d}: {exe} is missing")
    tools["cc"] = "prebuilt"
    return tools


def build_tools(out):
    """Builds bench/runner.c and bench/nothing.c statically (musl-gcc preferred, else gcc -static)."""
    cc = shutil.which("musl-gcc")
    flags = ["-O2", "-static"]
    if cc is None:
        cc = shutil.which("gcc") or shutil.which("cc")
    if cc is None:
        raise BenchError("no C compiler: install musl-tools (preferred) or gcc to build bench/runner.c")
    tools = {}
    for name in ["runner", "nothing"]:
        exe = os.path.join(out, name)
        src = os.path.join(HERE, name + ".c")
        r = subprocess.run([cc, *flags, "-o", exe, src], capture_output=True, text=True, timeout=300)
        if r.returncode != 0:
            raise BenchError(f"cannot build {src} with {cc}: {r.stderr.strip()}")
        tools[name] = exe
    tools["cc"] = os.path.basename(cc)
    return tools


class Runner:
    def __init__(self, exe, workdir):
        self.exe = exe
        self.dir = workdir
        self.count = 0
        # The child's stdout goes to tmpfs where there is one: truncating and rewriting a file on the
        # measured disk is part of every timed window (the runner opens it), and under disk load it
        # costs milliseconds that belong to neither implementation.
        shm = "/dev/shm"
        self.out_dir = tempfile.mkdtemp(prefix="sbxbench-out-", dir=shm if os.access(shm, os.W_OK) else workdir)

    def cleanup(self):
        shutil.rmtree(self.out_dir, ignore_errors=True)

    def stdin_file(self, data):
        self.count += 1
        path = os.path.join(self.dir, f"stdin-{self.count}")
        with open(path, "wb") as f:
            f.write(data)
        return path

    def once(self, prog, env, stdin_path):
        """Runs prog once; returns (seconds, peak RSS KiB, exit status, stdout bytes)."""
        out = os.path.join(self.out_dir, "stdout")
        r = subprocess.run(
            [self.exe, "once", stdin_path, out, prog],
            env=env,
            capture_output=True,
            timeout=CALL_TIMEOUT,
        )
        if r.returncode != 0:
            raise BenchError(f"runner failed on {prog}: {r.stderr.decode(errors='replace').strip()}")
        ns, rss, status = (int(x) for x in r.stdout.split())
        with open(out, "rb") as f:
            stdout = f.read()
        return ns / 1e9, rss, status, stdout

    def par(self, prog, env, stdin_path, parallel, n, outdir, prefix):
        r = subprocess.run(
            [self.exe, "par", str(parallel), str(n), stdin_path, outdir, prefix, prog],
            env=env,
            capture_output=True,
            timeout=CALL_TIMEOUT * 5,
        )
        if r.returncode != 0:
            raise BenchError(f"runner failed on {prog}: {r.stderr.decode(errors='replace').strip()}")
        ns, failures = (int(x) for x in r.stdout.split())
        return ns / 1e9, failures


# ---- environment ------------------------------------------------------------------------------------


def cni_env(command, container, netns, path):
    return {
        "PATH": "/usr/sbin:/usr/bin:/sbin:/bin",
        "CNI_COMMAND": command,
        "CNI_CONTAINERID": container,
        "CNI_NETNS": netns,
        "CNI_IFNAME": "eth0",
        "CNI_PATH": path,
    }


def find_ours(explicit):
    candidates = [explicit] if explicit else []
    target = os.environ.get("CARGO_TARGET_DIR") or os.path.join(REPO, "target")
    candidates += [os.path.join(target, MUSL, "release"), os.path.join(target, "release")]
    for d in candidates:
        if d and os.path.isfile(os.path.join(d, "loopback")):
            return os.path.abspath(d)
    raise BenchError(
        "our release plugins were not found (looked in "
        + ", ".join(c for c in candidates if c)
        + "): build them with `cargo build --release --target " + MUSL + "` or pass --ours DIR"
    )


class Netns:
    """A scratch network namespace for this process (the reference bridge's host side) and one named
    container namespace. Only set up when running as root with iproute2 available."""

    CLONE_NEWNET = 0x40000000

    def __init__(self):
        self.name = None
        self.path = None
        self.why_not = None

    def setup(self):
        if os.geteuid() != 0:
            self.why_not = "not root: the reference bridge and loopback need network namespaces"
            return False
        if shutil.which("ip") is None:
            self.why_not = "iproute2 (`ip`) is missing"
            return False
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.unshare(self.CLONE_NEWNET) != 0:
            self.why_not = f"unshare(CLONE_NEWNET) failed: {os.strerror(ctypes.get_errno())}"
            return False
        subprocess.run(["ip", "link", "set", "lo", "up"], check=False, timeout=30)
        self.name = f"sbxbench-{os.getpid()}"
        r = subprocess.run(["ip", "netns", "add", self.name], capture_output=True, text=True, timeout=30)
        if r.returncode != 0:
            self.why_not = f"ip netns add failed: {r.stderr.strip()}"
            self.name = None
            return False
        self.path = f"/run/netns/{self.name}"
        return True

    def cleanup(self):
        if self.name:
            subprocess.run(["ip", "netns", "del", self.name], check=False, timeout=30)
            self.name = None


# ---- measurements -----------------------------------------------------------------------------------


class Impl:
    def __init__(self, key, label, bindir, short=None):
        self.key = key  # column: "ours", "ref" or "ref2"
        self.label = label  # e.g. "containernetworking-plugins 1.1.1+ds1-3+b5"
        self.short = short or label  # column heading, e.g. "reference 1.1.1"
        self.dir = bindir

    def exe(self, plugin):
        return os.path.join(self.dir, plugin)


# A disk writer for the loaded runs: rewrites one 64 MiB file in 1 MiB writes with an fsync every
# 4 MiB, in the data directories' file system, until stopped (or until its parent is gone).
WRITER = r"""
import os, sys
path, parent = sys.argv[1], os.getppid()
block = b"\xa5" * (1 << 20)
while os.getppid() == parent:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    for i in range(64):
        os.write(fd, block)
        if i % 4 == 3:
            os.fsync(fd)
    os.close(fd)
"""


class DiskWriter:
    """Runs WRITER beside the measured calls; stop() ends it and removes its file."""

    def __init__(self, work):
        self.path = os.path.join(work, "disk-writer.bin")
        self.proc = subprocess.Popen([sys.executable, "-c", WRITER, self.path])

    def stop(self):
        self.proc.kill()
        self.proc.wait(timeout=60)
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass


def med(xs):
    return statistics.median(xs) if xs else float("nan")


class Bench:
    def __init__(self, args, tools, ours, refs, work, netns):
        self.quick = args.quick
        self.runner = Runner(tools["runner"], work)
        self.nothing = tools["nothing"]
        self.ours = ours
        # The references by column, "ref" first (the one the targets are set against), then "ref2".
        self.refs = {r.key: r for r in refs}
        self.ref = self.refs["ref"]
        self.work = work
        self.netns = netns
        self.results = {}
        self.notes = []
        self.empty_stdin = self.runner.stdin_file(b"")
        self.ctr_netns = netns.path or "/var/run/netns/sbxbench-absent"
        self.sweep = []
        self.fs = {}

    def available(self, plugin):
        """Whether our plugin is real yet (answers VERSION), not a placeholder binary."""
        if not os.path.isfile(self.ours.exe(plugin)):
            return False
        _, _, status, out = self.runner.once(self.ours.exe(plugin), cni_env("VERSION", "", "", ""), self.empty_stdin)
        try:
            return status == 0 and "supportedVersions" in json.loads(out)
        except ValueError:
            return False

    # One timed call; raises if the plugin did not do what it should.
    def call(self, impl, plugin, env, stdin_path, want_output=None):
        if not env.get("CNI_PATH") and env.get("CNI_COMMAND") != "VERSION":
            env = dict(env, CNI_PATH=impl.dir)
        secs, rss, status, out = self.runner.once(impl.exe(plugin), env, stdin_path)
        if status != 0:
            raise BenchError(
                f"{impl.label} {plugin} {env.get('CNI_COMMAND')} failed (exit {status}): "
                + out.decode(errors="replace")[:400]
            )
        if want_output is not None:
            try:
                doc = json.loads(out)
            except ValueError:
                raise BenchError(
                    f"{impl.label} {plugin} {env.get('CNI_COMMAND')} printed no JSON result "
                    f"(a placeholder binary?): {out[:200]!r}"
                )
            if want_output and want_output not in doc:
                raise BenchError(f"{impl.label} {plugin} result lacks {want_output!r}: {doc}")
        return secs, rss

    def bare(self):
        secs, rss, status, _ = self.runner.once(self.nothing, {}, self.empty_stdin)
        if status != 0:
            raise BenchError("the do-nothing binary failed")
        return secs, rss

    def columns(self):
        """The measured columns besides the bare start: ours, then every reference."""
        return ["ours", *self.refs]

    def impls(self):
        return {"ours": self.ours, **self.refs}

    def interleaved(self, rounds, ours_fn, ref_fn, between=None):
        """Runs rounds of (bare, ours, each reference) in rotating order; ref_fn(impl, i) makes one
        reference call (None: no reference column). Returns lists of samples by column."""
        jobs = [("ours", ours_fn)]
        if ref_fn is not None:
            jobs += [(k, (lambda impl: lambda i: ref_fn(impl, i))(impl)) for k, impl in self.refs.items()]
        return self.rotate(rounds, jobs, between)

    def rotate(self, rounds, jobs, between=None):
        """Runs rounds of the bare start and (name, fn(i)) jobs in rotating order."""
        jobs = [("bare", lambda i: self.bare()), *jobs]
        samples = {name: [] for name, _ in jobs}
        for i in range(rounds):
            k = i % len(jobs)
            for name, fn in jobs[k:] + jobs[:k]:
                samples[name].append(fn(i))
            if between:
                between(i)
        return samples

    def record(self, key, title, samples, target=None, kind="vs_ref", rss=True):
        times = {k: [s[0] for s in v] for k, v in samples.items()}
        rsses = {k: max((s[1] for s in v), default=0) for k, v in samples.items()}
        entry = {
            "title": title,
            "n": len(times["ours"]),
            "median_s": {k: med(v) for k, v in times.items() if v},
            "min_s": {k: min(v) for k, v in times.items() if v},
            "peak_rss_kib": {k: v for k, v in rsses.items() if samples[k]} if rss else {},
        }
        m = entry["median_s"]

        # Ratios are medians of per-round ratios: the three calls of a round ran back to back, so a
        # burst of load from elsewhere inflates both sides of a ratio rather than one median.
        def paired(a, b):
            return med([x / y for x, y in zip(times[a], times[b])])

        entry["ours_vs_bare"] = paired("ours", "bare")
        for r in [k for k in m if k not in ("bare", "ours")]:
            entry[f"speedup_vs_{r}"] = paired(r, "ours")
            entry[f"{r}_vs_bare"] = paired(r, "bare")
        if target is not None:
            entry["target"] = {"kind": kind, "value": target}
            got = entry["speedup_vs_ref"] if kind == "vs_ref" else entry["ours_vs_bare"]
            entry["pass"] = got >= target if kind == "vs_ref" else got <= target
        self.results[key] = entry
        return entry

    # -- VERSION and loopback ----------------------------------------------------------------------

    def version(self, rounds, plugins):
        for plugin in plugins:
            env = cni_env("VERSION", "", "", "")
            stdin = self.runner.stdin_file(b'{"cniVersion":"1.0.0"}')
            s = self.interleaved(
                rounds,
                lambda i: self.call(self.ours, plugin, env, stdin, "supportedVersions"),
                lambda impl, i: self.call(impl, plugin, env, stdin, "supportedVersions"),
            )
            self.record(f"version_{plugin}", f"{plugin} VERSION", s, TARGETS["version_vs_bare"], "vs_bare")

    def loopback_add(self, rounds):
        conf = {"cniVersion": "1.0.0", "name": "sbxbench-lo", "type": "loopback"}
        stdin = self.runner.stdin_file(json.dumps(conf).encode())
        ref_fn = None
        if self.netns.path:
            def ref_fn(impl, i):
                return self.call(impl, "loopback", cni_env("ADD", f"lo{i}", self.netns.path, ""), stdin, "ips")
        else:
            self.notes.append(f"reference loopback ADD skipped: {self.netns.why_not}")
        s = self.interleaved(
            rounds,
            lambda i: self.call(self.ours, "loopback", cni_env("ADD", f"lo{i}", self.ctr_netns, ""), stdin, "ips"),
            ref_fn,
        )
        self.record("loopback_add", "loopback ADD", s, TARGETS["loopback_add_vs_bare"], "vs_bare")

    # -- host-local ----------------------------------------------------------------------------------

    def hl_conf(self, data_dir, net, name="sbxbench"):
        return {
            "cniVersion": "1.0.0",
            "name": name,
            "type": "host-local",
            "ipam": {
                "type": "host-local",
                "ranges": [[{"subnet": str(net)}]],
                "routes": [{"dst": "0.0.0.0/0"}],
                "dataDir": data_dir,
            },
        }

    def hl_empty(self, rounds):
        dirs = {k: os.path.join(self.work, f"empty-{k}") for k in self.columns()}
        stdins = {
            k: self.runner.stdin_file(json.dumps(self.hl_conf(d, "10.22.0.0/24")).encode())
            for k, d in dirs.items()
        }
        jobs = ["bare", *self.columns()]
        adds = {k: [] for k in jobs}
        dels = {k: [] for k in jobs}
        impls = self.impls()
        for i in range(rounds):
            for d in dirs.values():
                shutil.rmtree(d, ignore_errors=True)
            k = i % len(jobs)
            for name in jobs[k:] + jobs[:k]:
                if name == "bare":
                    adds["bare"].append(self.bare())
                    dels["bare"].append(self.bare())
                    continue
                ctr = f"e{i}"
                adds[name].append(self.call(impls[name], "host-local", cni_env("ADD", ctr, self.ctr_netns, ""), stdins[name], "ips"))
                dels[name].append(self.call(impls[name], "host-local", cni_env("DEL", ctr, "", ""), stdins[name]))
        # The reference figures the targets were set against were taken this way (dataDir removed
        # before every ADD/DEL pair); the steady state, an existing store without reservations, is the
        # sweep's first point.
        self.record("hl_add_fresh", "host-local ADD, fresh dataDir (first ADD of a network)", adds, TARGETS["empty_speedup"])
        self.record("hl_del_fresh", "host-local DEL, fresh dataDir", dels, TARGETS["empty_speedup"])

    def add_check_del_rounds(self, rounds, prefix, impls, stdins, samples):
        """`rounds` rounds of a bare start and, for ours and each reference, ADD, CHECK and DEL of a
        new attachment `<prefix><round>`; the order of the columns rotates from round to round.
        Appends to samples[op][name]."""
        jobs = ["bare", *impls]
        for i in range(rounds):
            k = i % len(jobs)
            for name in jobs[k:] + jobs[:k]:
                if name == "bare":
                    for op in samples:
                        samples[op]["bare"].append(self.bare())
                    continue
                ctr = f"{prefix}{i}"
                impl, stdin = impls[name], stdins[name]
                samples["ADD"][name].append(
                    self.call(impl, "host-local", cni_env("ADD", ctr, self.ctr_netns, ""), stdin, "ips")
                )
                samples["CHECK"][name].append(self.call(impl, "host-local", cni_env("CHECK", ctr, self.ctr_netns, ""), stdin))
                samples["DEL"][name].append(self.call(impl, "host-local", cni_env("DEL", ctr, "", ""), stdin))

    def hl_steady(self, rounds, loaded):
        """ADD, CHECK and DEL of a new attachment in an existing store that holds a few reservations
        (the everyday case on a node), each paired with a bare start and with the reference. The
        loaded run has a disk writer (DiskWriter) working beside it on the same file system."""
        tag = "loaded" if loaded else "quiet"
        data = {k: os.path.join(self.work, f"steady-{tag}-{k}") for k in self.columns()}
        stdins = {
            k: self.runner.stdin_file(json.dumps(self.hl_conf(d, "10.23.0.0/16", "sbxsteady")).encode())
            for k, d in data.items()
        }
        impls = self.impls()
        for k, impl in impls.items():
            for j in range(8):
                self.call(impl, "host-local", cni_env("ADD", f"resident{j}", self.ctr_netns, ""), stdins[k], "ips")
        samples = {op: {k: [] for k in ["bare", *impls]} for op in ("ADD", "CHECK", "DEL")}
        writer = DiskWriter(self.work) if loaded else None
        load = os.getloadavg()[0]
        try:
            if writer:
                time.sleep(1)  # let the writer reach a steady pace
            self.add_check_del_rounds(rounds, f"st-{tag}-", impls, stdins, samples)
        finally:
            if writer:
                writer.stop()
        what = "loaded run (disk writer beside)" if loaded else "quiet run"
        for op, s in samples.items():
            if op == "ADD" and not loaded:
                target, kind = TARGETS["steady_add_vs_bare"], "vs_bare"
            else:
                target, kind = TARGETS["steady_speedup"], "vs_ref"
            e = self.record(f"hl_steady_{op.lower()}_{tag}", f"host-local {op}, existing store (8 reservations), {what}",
                            s, target, kind)
            e["load_at_start"] = load

    def trace_cost(self, rounds):
        """host-local ADD with the invocation trace on against the same plugin with it off. Recorded
        with the trace-off calls in the reference column, so "faster" reads off/on."""
        data = os.path.join(self.work, "trace-data")
        on = os.path.join(self.work, "trace-on")
        os.makedirs(on, mode=0o700, exist_ok=True)  # the plugins trace only into a private directory
        off = os.path.join(self.work, "trace-absent")
        stdin = self.runner.stdin_file(json.dumps(self.hl_conf(data, "10.23.0.0/16")).encode())

        def add(trace_dir, tag):
            def fn(i):
                env = dict(cni_env("ADD", f"{tag}{i}", self.ctr_netns, ""), SANDBOX_CNI_TRACE_DIR=trace_dir)
                return self.call(self.ours, "host-local", env, stdin, "ips")
            return fn

        samples = self.rotate(rounds, [("ours", add(on, "on")), ("ref", add(off, "off"))])
        with open(os.path.join(on, "trace.jsonl")) as f:
            lines = sum(1 for _ in f)
        if lines != rounds:
            raise BenchError(f"the trace holds {lines} lines after {rounds} traced ADDs")
        self.record(
            "hl_add_trace",
            "host-local ADD with the trace on (reference column: ours, trace off)",
            samples,
            TARGETS["trace_on_vs_off"],
        )

    def populate(self, net_dir, have, want):
        """Adds reservation files for indexes have..want-1 (IPs from 10.200.0.2 up), as host-local
        writes them: file named by the IP, body `id\\r\\nifname`; cursor at the last one."""
        os.makedirs(net_dir, exist_ok=True)
        base = int(STORE_NET.network_address) + 2
        for k in range(have, want):
            ip = ipaddress.ip_address(base + k)
            with open(os.path.join(net_dir, str(ip)), "w") as f:
                f.write(f"pre-{k}\r\neth0")
        if want > 0:
            with open(os.path.join(net_dir, "last_reserved_ip.0"), "w") as f:
                f.write(str(ipaddress.ip_address(base + want - 1)))

    def store_sweep(self, sizes, rounds_for):
        names = self.columns()
        data = {k: os.path.join(self.work, "store-" + k) for k in names}
        stdins = {
            k: self.runner.stdin_file(json.dumps(self.hl_conf(data[k], STORE_NET, "sbxsweep")).encode())
            for k in names
        }
        impls = self.impls()
        # One untimed ADD/DEL each, so that the store exists (lock file, index) before the first point.
        for k, impl in impls.items():
            self.call(impl, "host-local", cni_env("ADD", "warmup", self.ctr_netns, ""), stdins[k], "ips")
            self.call(impl, "host-local", cni_env("DEL", "warmup", "", ""), stdins[k])
        sweep = []
        have = 0
        for size in sizes:
            t0 = time.monotonic()
            for k in names:
                self.populate(os.path.join(data[k], "sbxsweep"), have, size)
            have = size
            # Our first call after files appeared behind the index's back rebuilds it once: timed on
            # its own (an ADD of a throw-away attachment, then its DEL), outside the rounds below.
            rebuild_s, _ = self.call(
                self.ours, "host-local", cni_env("ADD", f"rb{size}", self.ctr_netns, ""), stdins["ours"], "ips"
            )
            self.call(self.ours, "host-local", cni_env("DEL", f"rb{size}", "", ""), stdins["ours"])
            rounds = rounds_for(size)
            samples = {op: {k: [] for k in ["bare", *impls]} for op in ("ADD", "CHECK", "DEL")}
            self.add_check_del_rounds(rounds, f"s{size}-", impls, stdins, samples)
            point = {"size": size, "rounds": rounds, "rebuild_s": rebuild_s}
            for op, s in samples.items():
                e = self.record(f"hl_{op.lower()}_{size}", f"host-local {op}, {size:,} reservations", s)
                point[op] = e
            sweep.append(point)
            refs = ", ".join(
                f"{impl.label} {point['ADD']['median_s'][k] * 1e3:8.2f} ms" for k, impl in self.refs.items()
            )
            log(
                f"  store {size:>6,}: ADD ours {point['ADD']['median_s']['ours'] * 1e3:7.2f} ms, {refs}  "
                f"({rounds} rounds, {time.monotonic() - t0:.0f} s)"
            )
        if sizes[0] == 0:
            for op in ("add", "del"):
                e = self.results[f"hl_{op}_0"]
                e["title"] = f"host-local {op.upper()}, empty store (exists, no reservations)"
                e["target"] = {"kind": "vs_ref", "value": TARGETS["empty_speedup"]}
                e["pass"] = e["speedup_vs_ref"] >= TARGETS["empty_speedup"]
        top = sizes[-1]
        for op in ("add", "check", "del"):
            e = self.results[f"hl_{op}_{top}"]
            if top >= 60000:
                e["target"] = {"kind": "vs_ref", "value": TARGETS["store60k_speedup"]}
                e["pass"] = e["speedup_vs_ref"] >= TARGETS["store60k_speedup"]
        self.results["hl_rebuild"] = {
            "title": f"host-local: first ADD after {top - (sizes[-2] if len(sizes) > 1 else 0):,} files "
            f"appeared behind the index ({top:,} in all; rebuilds it once)",
            "ours_s": sweep[-1]["rebuild_s"],
        }
        rss = [p[op]["peak_rss_kib"]["ours"] for p in sweep for op in ("ADD", "CHECK", "DEL")]
        self.results["hl_rss"] = {
            "title": f"host-local peak RSS over store sizes {sizes[0]:,}..{top:,} (KiB)",
            "ours_min_kib": min(rss),
            "ours_max_kib": max(rss),
            "target": {"kind": "rss", "value": RSS_LIMIT_KIB},
            "pass": max(rss) <= RSS_LIMIT_KIB,
        }
        for r in self.refs:
            ref_rss = [p[op]["peak_rss_kib"][r] for p in sweep for op in ("ADD", "CHECK", "DEL")]
            self.results["hl_rss"][f"{r}_min_kib"] = min(ref_rss)
            self.results["hl_rss"][f"{r}_max_kib"] = max(ref_rss)
        self.sweep = sweep
        return sweep

    def concurrency(self, rounds, n, parallel):
        impls = self.impls()
        out = {k: [] for k in impls}
        problems = []
        cols = list(impls)
        for i in range(rounds):
            order = cols[i % len(cols):] + cols[:i % len(cols)]
            for name in order:
                d = os.path.join(self.work, f"conc-{name}")
                shutil.rmtree(d, ignore_errors=True)
                outdir = os.path.join(self.work, f"conc-out-{name}")
                shutil.rmtree(outdir, ignore_errors=True)
                os.makedirs(outdir)
                stdin = self.runner.stdin_file(json.dumps(self.hl_conf(d, "10.30.0.0/24", "sbxconc")).encode())
                env = cni_env("ADD", "unused", self.ctr_netns, impls[name].dir)
                secs, failures = self.runner.par(impls[name].exe("host-local"), env, stdin, parallel, n, outdir, f"c{i}-")
                ips = []
                for j in range(n):
                    with open(os.path.join(outdir, str(j)), "rb") as f:
                        body = f.read()
                    try:
                        ips.append(json.loads(body)["ips"][0]["address"])
                    except (ValueError, KeyError, IndexError):
                        pass
                dups = len(ips) - len(set(ips))
                store = os.path.join(d, "sbxconc")
                files = [f for f in os.listdir(store) if f[0].isdigit()] if os.path.isdir(store) else []
                if failures or dups or len(files) != n:
                    problems.append(f"{name} round {i}: {failures} failures, {dups} duplicates, {len(files)} files")
                out[name].append({"secs": secs, "failures": failures, "duplicates": dups, "files": len(files)})
        thr = {k: n / med([r["secs"] for r in v]) for k, v in out.items()}
        entry = {
            "title": f"host-local {parallel}-way concurrent ADD throughput ({n} ADDs into a /24)",
            "rounds": rounds,
            "throughput_per_s": thr,
            "ours_duplicates": sum(r["duplicates"] for r in out["ours"]),
            "ours_failures": sum(r["failures"] for r in out["ours"]),
            "problems": problems,
            "target": {"kind": "vs_ref", "value": TARGETS["concurrency_speedup"]},
        }
        for r in self.refs:
            entry[f"speedup_vs_{r}"] = thr["ours"] / thr[r]
            entry[f"{r}_duplicates"] = sum(x["duplicates"] for x in out[r])
            entry[f"{r}_failures"] = sum(x["failures"] for x in out[r])
        entry["pass"] = (
            entry["speedup_vs_ref"] >= TARGETS["concurrency_speedup"]
            and entry["ours_duplicates"] == 0
            and entry["ours_failures"] == 0
        )
        self.results["hl_concurrent"] = entry

    # -- bridge --------------------------------------------------------------------------------------

    def bridge(self, rounds):
        def conf(data_dir):
            return {
                "cniVersion": "1.0.0",
                "name": "sbxbench-br",
                "type": "bridge",
                "bridge": "sbxb0",
                "isGateway": True,
                "ipam": {
                    "type": "host-local",
                    "ranges": [[{"subnet": "10.91.0.0/24"}]],
                    "routes": [{"dst": "0.0.0.0/0"}],
                    "dataDir": data_dir,
                },
            }

        stdins = {
            k: self.runner.stdin_file(json.dumps(conf(os.path.join(self.work, "br-" + k))).encode())
            for k in self.columns()
        }

        def run_pair(impl, key, netns, i, dels):
            r = self.call(impl, "bridge", cni_env("ADD", f"b{i}", netns, impl.dir), stdins[key], "ips")
            dels[key].append(self.call(impl, "bridge", cni_env("DEL", f"b{i}", netns, impl.dir), stdins[key]))
            return r

        # Phase 1, against the bare start only: the reference bridge creates and deletes real veths and
        # a bridge, and the kernel and udev keep working on those for milliseconds afterwards, which
        # would slow down whatever runs next, the bare start included.
        dels = {"bare": [], "ours": []}
        s = self.interleaved(
            rounds,
            lambda i: run_pair(self.ours, "ours", self.ctr_netns, i, dels),
            None,
            between=lambda i: dels["bare"].append(self.bare()),
        )
        self.record("bridge_add", "bridge ADD (runs host-local), against a bare start", s,
                    TARGETS["bridge_add_vs_bare"], "vs_bare")
        self.record("bridge_del", "bridge DEL (runs host-local), against a bare start", dels)
        if not self.netns.path:
            self.notes.append(f"reference bridge skipped: {self.netns.why_not}")
            return

        # Phase 2, against the reference, pausing after each reference call so that its kernel
        # aftermath lands in neither implementation's next call.
        dels = {k: [] for k in ["bare", *self.columns()]}

        def ref_fn(impl, i):
            r = run_pair(impl, impl.key, self.netns.path, i, dels)
            time.sleep(0.05)
            return r

        s = self.interleaved(
            rounds,
            lambda i: run_pair(self.ours, "ours", self.ctr_netns, i + rounds, dels),
            ref_fn,
            between=lambda i: dels["bare"].append(self.bare()),
        )
        self.record("bridge_add_ref", "bridge ADD, against the reference bridge (real veths)", s)
        self.record("bridge_del_ref", "bridge DEL, against the reference bridge (real veths)", dels)


# ---- file-system context ------------------------------------------------------------------------------


def fs_costs(work, n=40):
    """Median cost of the file operations a host-local store uses, on the file system holding the
    data directories: what an ADD or DEL can cost at least, whoever implements it."""
    d = os.path.join(work, "fs-costs")
    os.makedirs(d)
    with open(os.path.join(d, "cursor"), "w") as f:
        f.write("10.0.0.1")

    def create(i):
        fd = os.open(os.path.join(d, f"new{i}"), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        os.write(fd, b"ctr\r\neth0")
        os.close(fd)

    def link(i):
        os.link(os.path.join(d, f"new{i}"), os.path.join(d, f"link{i}"))

    def unlink(i):
        os.unlink(os.path.join(d, f"link{i}"))

    def truncate_write(i):
        fd = os.open(os.path.join(d, "cursor"), os.O_WRONLY | os.O_TRUNC)
        os.write(fd, b"10.0.0.%d" % (i % 250))
        os.close(fd)

    def pwrite(i):
        fd = os.open(os.path.join(d, "cursor"), os.O_WRONLY)
        os.pwrite(fd, b"10.0.0.%03d" % (i % 250), 0)
        os.close(fd)

    def rename_over(i):
        tmp = os.path.join(d, "tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        os.write(fd, b"10.0.0.%d" % (i % 250))
        os.close(fd)
        os.rename(tmp, os.path.join(d, "cursor2"))

    def mkdir(i):
        os.mkdir(os.path.join(d, f"dir{i}"))

    out = {}
    for name, fn in [
        ("create a file and write it (O_EXCL)", create),
        ("hard link", link),
        ("unlink", unlink),
        ("rewrite a file: O_TRUNC, write", truncate_write),
        ("rewrite a file: temp file, rename over", rename_over),
        ("overwrite in place (pwrite, no truncation)", pwrite),
        ("mkdir", mkdir),
    ]:
        xs = []
        for i in range(n):
            t0 = time.perf_counter_ns()
            fn(i)
            xs.append(time.perf_counter_ns() - t0)
        out[name] = statistics.median(xs) / 1e9
    shutil.rmtree(d, ignore_errors=True)
    return out


# ---- report -----------------------------------------------------------------------------------------


def dpkg_version(package):
    try:
        r = subprocess.run(["dpkg-query", "-W", "-f", "${Version}", package], capture_output=True, text=True, timeout=30)
        return r.stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def machine(refs, revision=None):
    cpu = "unknown"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    rev = revision or "unknown"
    try:
        if revision is None:
            r = subprocess.run(["git", "-C", REPO, "rev-parse", "--short", "HEAD"], capture_output=True, text=True, timeout=30)
            d = subprocess.run(["git", "-C", REPO, "status", "--porcelain", "--", "crates", "plugins", "Cargo.toml"],
                               capture_output=True, text=True, timeout=30)
            if r.returncode == 0:
                rev = r.stdout.strip() + (" with uncommitted changes to crates/ or plugins/" if d.stdout.strip() else "")
    except (OSError, subprocess.SubprocessError):
        pass
    return {
        "revision": rev,
        "cpu": cpu,
        "cpus": os.cpu_count(),
        "kernel": platform.release(),
        "os": platform.freedesktop_os_release().get("PRETTY_NAME", "unknown")
        if hasattr(platform, "freedesktop_os_release") else "unknown",
        "reference": refs[0].label,
        "references": {r.key: {"label": r.label, "dir": r.dir} for r in refs},
        "load_at_start": os.getloadavg()[0],
    }


def fmt_ms(s):
    return f"{s * 1e3:.2f} ms" if s == s else "-"


def report(bench, info, quick):
    refs = list(bench.refs.values())
    rows = []

    def cells(per_ref):
        return [per_ref(r.key) for r in refs]

    for key, e in bench.results.items():
        if key == "hl_rss":
            rows.append([e["title"], f"{e['ours_min_kib']}..{e['ours_max_kib']} KiB",
                         *cells(lambda r: f"{e[r + '_min_kib']}..{e[r + '_max_kib']} KiB"),
                         *cells(lambda r: ""), "", f"<= {e['target']['value']} KiB", "pass" if e["pass"] else "FAIL"])
            continue
        if key == "hl_rebuild":
            rows.append([e["title"], fmt_ms(e["ours_s"]), *cells(lambda r: "-"), *cells(lambda r: "-"), "", "", ""])
            continue
        if key == "hl_concurrent":
            t = e["throughput_per_s"]
            rows.append([e["title"], f"{t['ours']:.0f}/s", *cells(lambda r: f"{t[r]:.0f}/s"),
                         *cells(lambda r: f"{e['speedup_vs_' + r]:.1f}x faster"), "",
                         f">= {e['target']['value']:g}x, 0 duplicates", "pass" if e["pass"] else "FAIL"])
            rows.append(["  duplicates / failures", f"{e['ours_duplicates']} / {e['ours_failures']}",
                         *cells(lambda r: f"{e[r + '_duplicates']} / {e[r + '_failures']}"), *cells(lambda r: ""),
                         "", "", ""])
            continue
        m = e["median_s"]
        tgt = e.get("target")
        tgt_text = ""
        if tgt:
            tgt_text = f">= {tgt['value']:g}x faster" if tgt["kind"] == "vs_ref" else f"<= {tgt['value']:g}x bare"
        rss = e.get("peak_rss_kib", {})
        bare_refs = ", ".join(f"{bench.refs[r].short} {e[r + '_vs_bare']:.1f}x" for r in bench.refs if r + "_vs_bare" in e)
        rows.append([
            e["title"],
            fmt_ms(m["ours"]) + (f", {rss['ours']} KiB" if "ours" in rss else ""),
            *cells(lambda r: (fmt_ms(m[r]) + (f", {rss[r]} KiB" if r in rss else "")) if r in m else "-"),
            *cells(lambda r: f"{e['speedup_vs_' + r]:.1f}x faster" if "speedup_vs_" + r in e else "-"),
            f"{e['ours_vs_bare']:.2f}x" + (f" ({bare_refs})" if bare_refs else ""),
            tgt_text,
            ("pass" if e["pass"] else "FAIL") if "pass" in e else "",
        ])
    head = ["measurement", "ours (median, peak RSS)", *[r.short for r in refs],
            *[f"ours vs {r.short}" for r in refs], "ours / bare start", "target", ""]
    bare = statistics.median(
        [e["median_s"]["bare"] for k, e in bench.results.items() if "median_s" in e]
    )
    lines = [
        f"Machine: {info['cpu']}, {info['cpus']} CPUs, Linux {info['kernel']}, {info['os']}; "
        f"references: {'; '.join(f'{r.short} = {r.label}' for r in refs)}; "
        f"ours: {info['revision']}, {info['ours_dir_kind']}; "
        f"mode: {'quick' if quick else 'full'}; load average at start {info['load_at_start']:.2f}; "
        f"bare start (static do-nothing binary, median over all rounds): {bare * 1e3:.3f} ms. "
        "Times are medians; ratios are medians of per-round ratios (each round runs bare, ours and "
        "every reference back to back, in rotating order). Targets are against the first reference.",
        "",
        "| " + " | ".join(head) + " |",
        "|" + "---|" * len(head),
    ]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    if bench.fs:
        lines += [
            "",
            "File-system operation costs where the data directories live (median of 40, from Python; context for the ADD/DEL figures):",
            "",
            "| operation | median |",
            "|---|---|",
        ]
        lines += [f"| {k} | {v * 1e6:.0f} us |" for k, v in bench.fs.items()]
    if bench.notes:
        lines += [""] + [f"Note: {n}" for n in bench.notes]
    return "\n".join(lines) + "\n"


def plot(sweep, path, labels):
    """labels: column -> legend name of each reference ("ref", "ref2")."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        log("matplotlib is missing (Debian: python3-matplotlib, run with /usr/bin/python3): no plot")
        return False
    sizes = [p["size"] for p in sweep]
    fig, ax = plt.subplots(figsize=(8, 5), dpi=110)
    styles = {"ADD": "o", "CHECK": "s", "DEL": "^"}
    colors = {"ref": "tab:red", "ref2": "tab:orange"}
    for op, marker in styles.items():
        for key, label in labels.items():
            ax.plot(sizes, [p[op]["median_s"][key] * 1e3 for p in sweep], marker=marker, color=colors.get(key, "tab:gray"),
                    alpha=0.8, label=f"{label} host-local {op}")
        ax.plot(sizes, [p[op]["median_s"]["ours"] * 1e3 for p in sweep], marker=marker, color="tab:blue",
                alpha=0.8, label=f"sandbox-cni host-local {op}")
    bare = med([p["ADD"]["median_s"]["bare"] for p in sweep])
    ax.axhline(bare * 1e3, color="gray", linestyle="--", label="bare process start")
    ax.set_yscale("log")
    ax.set_xlabel("reservations in the store")
    ax.set_ylabel("per-call latency, median (ms, log scale)")
    ax.set_title("host-local call latency against store size (fork+exec+wait included)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8, ncol=2)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return True


# ---- main -------------------------------------------------------------------------------------------


def replot(out):
    """Redraws the plot from a results.json (e.g. of a run inside the test root, which has no matplotlib)."""
    path = os.path.join(out, "results.json")
    try:
        with open(path) as f:
            doc = json.load(f)
    except (OSError, ValueError) as e:
        raise BenchError(f"--replot: cannot read {path}: {e}")
    refs = doc.get("machine", {}).get("references") or {"ref": {"label": "reference"}}
    labels = {k: v["label"].replace("containernetworking-plugins ", "reference ").split("+")[0] for k, v in refs.items()}
    png = os.path.join(out, "latency-vs-store-size.png")
    if not doc.get("sweep") or not plot(doc["sweep"], png, labels):
        raise BenchError(f"--replot: no plot drawn (no sweep in {path}, or no matplotlib)")
    log(f"bench: plot written to {png}")
    return 0


def full_run(bench, q):
    """Every measurement of the full (or --quick) run."""
    have = [pl for pl in ["loopback", "host-local", "bridge"] if bench.available(pl)]
    for pl in ["host-local", "bridge"]:
        if pl not in have:
            bench.notes.append(f"our {pl} is not built yet (no VERSION answer): its figures are skipped")
    log("bench: VERSION")
    bench.version(10 if q else 60, have)
    log("bench: loopback ADD")
    bench.loopback_add(10 if q else 60)
    if "host-local" in have:
        log("bench: host-local ADD/DEL on an empty store")
        bench.hl_empty(10 if q else 40)
        log("bench: host-local ADD/CHECK/DEL in an existing store, quiet run")
        bench.hl_steady(10 if q else 60, loaded=False)
        log("bench: host-local ADD/CHECK/DEL in an existing store, loaded run (disk writer beside)")
        bench.hl_steady(10 if q else 60, loaded=True)
        log("bench: host-local ADD with the invocation trace on and off")
        bench.trace_cost(10 if q else 60)
        log("bench: host-local ADD/CHECK/DEL against store size")
        sizes = [0, 2000, 10000] if q else [0, 1000, 2500, 5000, 10000, 20000, 30000, 40000, 50000, 60000]
        bench.store_sweep(sizes, lambda s: 3 if q else (21 if s <= 10000 else 11))
        log("bench: host-local 16-way concurrent ADD")
        bench.concurrency(1 if q else 5, 64 if q else 200, 16)
        if "bridge" in have:
            log("bench: bridge ADD")
            bench.bridge(10 if q else 40)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="few rounds, small stores (about a minute); for smoke use")
    p.add_argument("--ours", help="directory of our release plugins (default: target/<musl>/release)")
    p.add_argument("--reference", default="/usr/lib/cni", help="directory of the reference plugins")
    p.add_argument("--reference-version", help="its containernetworking-plugins version (default: dpkg's)")
    p.add_argument("--reference2", help="directory of a second reference, measured in the same rounds")
    p.add_argument("--reference2-version", help="its version (default: dpkg's containernetworking-plugins)")
    p.add_argument("--tools", help="directory with runner and nothing already built (default: build them)")
    p.add_argument("--revision", help="our revision for the report (default: git's)")
    p.add_argument("--replot", action="store_true", help="only redraw the plot from OUT/results.json")
    p.add_argument("--out", default=os.path.join(HERE, "out"), help="where results and the plot go")
    p.add_argument("--check", action="store_true", help="exit 1 when a target is missed")
    p.add_argument("--steady-only", action="store_true",
                   help="only host-local ADD/CHECK/DEL into an existing store, quiet and loaded (a few minutes)")
    args = p.parse_args()

    os.makedirs(args.out, exist_ok=True)
    if args.replot:
        return replot(args.out)
    ours = Impl("ours", "sandbox-cni", find_ours(args.ours))
    refs = []
    for key, d, v in [("ref", args.reference, args.reference_version), ("ref2", args.reference2, args.reference2_version)]:
        if not d:
            continue
        v = v or dpkg_version("containernetworking-plugins")
        short = "reference " + v.split("+")[0].split("-")[0] if args.reference2 else "reference"
        refs.append(Impl(key, f"containernetworking-plugins {v}", os.path.abspath(d), short))
    for ref in refs:
        for plugin in ["loopback", "host-local", "bridge"]:
            if not os.path.isfile(ref.exe(plugin)):
                raise BenchError(f"reference {plugin} missing in {ref.dir}: install containernetworking-plugins")
    tools = prebuilt_tools(args.tools) if args.tools else build_tools(args.out)
    info = machine(refs, args.revision)
    info["ours_dir_kind"] = "musl static" if MUSL in ours.dir else "host target"
    log(f"bench: ours from {ours.dir}, references {', '.join(r.dir for r in refs)}, tools built with {tools['cc']}")

    netns = Netns()
    work = tempfile.mkdtemp(prefix="sbxbench-")
    bench = None
    try:
        netns.setup()
        bench = Bench(args, tools, ours, refs, work, netns)
        q = args.quick
        bench.fs = fs_costs(work)
        if args.steady_only:
            if not bench.available("host-local"):
                raise BenchError("our host-local is not built (no VERSION answer)")
            log("bench: host-local ADD/CHECK/DEL in an existing store, quiet run")
            bench.hl_steady(10 if q else 60, loaded=False)
            log("bench: host-local ADD/CHECK/DEL in an existing store, loaded run (disk writer beside)")
            bench.hl_steady(10 if q else 60, loaded=True)
        else:
            full_run(bench, q)
    finally:
        netns.cleanup()
        if bench is not None:
            bench.runner.cleanup()
        shutil.rmtree(work, ignore_errors=True)

    text = report(bench, info, args.quick)
    print(text)
    with open(os.path.join(args.out, "report.md"), "w") as f:
        f.write(text)
    with open(os.path.join(args.out, "results.json"), "w") as f:
        json.dump(
            {"machine": info, "quick": args.quick, "results": bench.results, "fs_costs_s": bench.fs, "notes": bench.notes,
             "sweep": bench.sweep},
            f,
            indent=2,
        )
    png = os.path.join(args.out, "latency-vs-store-size.png")
    if bench.sweep and plot(bench.sweep, png, {r.key: r.short for r in refs}):
        log(f"bench: plot written to {os.path.relpath(png, REPO)}")
    failed = [e["title"] for e in bench.results.values() if e.get("pass") is False]
    if failed:
        log("bench: targets missed: " + "; ".join(failed))
        if args.check:
            return 1
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except BenchError as e:
        log(f"bench: {e}")
        sys.exit(1)
    except subprocess.TimeoutExpired as e:
        log(f"bench: a call took longer than {e.timeout} s: {e.cmd}")
        sys.exit(1)
