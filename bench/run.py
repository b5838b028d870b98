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

Usage: bench/run.py [--quick] [--ours DIR] [--reference DIR] [--out DIR] [--check]
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
# The project's one plugin list (comments and blank lines skipped).
with open(os.path.join(REPO, "plugins", "list.txt"), encoding="utf-8") as _list:
    PLUGINS = [ln.split()[0] for ln in _list if ln.strip() and not ln.lstrip().startswith("#")]
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
    def __init__(self, label, bindir):
        self.label = label
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
    def __init__(self, args, tools, ours, ref, work, netns):
        self.quick = args.quick
        self.runner = Runner(tools["runner"], work)
        self.nothing = tools["nothing"]
        self.ours = ours
        self.ref = ref
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

    def interleaved(self, rounds, ours_fn, ref_fn, between=None):
        """Runs rounds of (bare, ours, ref) in rotating order; returns lists of samples."""
        samples = {"bare": [], "ours": [], "ref": []}
        jobs = [("bare", lambda i: self.bare()), ("ours", ours_fn), ("ref", ref_fn)]
        for i in range(rounds):
            k = i % 3
            for name, fn in jobs[k:] + jobs[:k]:
                if fn is None:
                    continue
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

        if "ref" in m:
            entry["speedup_vs_ref"] = paired("ref", "ours")
        entry["ours_vs_bare"] = paired("ours", "bare")
        if "ref" in m:
            entry["ref_vs_bare"] = paired("ref", "bare")
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
                lambda i: self.call(self.ref, plugin, env, stdin, "supportedVersions"),
            )
            self.record(f"version_{plugin}", f"{plugin} VERSION", s, TARGETS["version_vs_bare"], "vs_bare")

    def loopback_add(self, rounds):
        conf = {"cniVersion": "1.0.0", "name": "sbxbench-lo", "type": "loopback"}
        stdin = self.runner.stdin_file(json.dumps(conf).encode())
        ref_fn = None
        if self.netns.path:
            def ref_fn(i):
                return self.call(self.ref, "loopback", cni_env("ADD", f"lo{i}", self.netns.path, ""), stdin, "ips")
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
        dirs = {k: os.path.join(self.work, f"empty-{k}") for k in ("ours", "ref")}
        stdins = {
            k: self.runner.stdin_file(json.dumps(self.hl_conf(d, "10.22.0.0/24")).encode())
            for k, d in dirs.items()
        }
        adds = {"bare": [], "ours": [], "ref": []}
        dels = {"bare": [], "ours": [], "ref": []}
        impls = {"ours": self.ours, "ref": self.ref}
        jobs = ["bare", "ours", "ref"]
        for i in range(rounds):
            for d in dirs.values():
                shutil.rmtree(d, ignore_errors=True)
            k = i % 3
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
        """`rounds` rounds of a bare start and, for ours and the reference, ADD, CHECK and DEL of a
        new attachment `<prefix><round>`; the order of the three rotates from round to round.
        Appends to samples[op][name]."""
        jobs = ["bare", "ours", "ref"]
        for i in range(rounds):
            k = i % 3
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
        data = {k: os.path.join(self.work, f"steady-{tag}-{k}") for k in ("ours", "ref")}
        stdins = {
            k: self.runner.stdin_file(json.dumps(self.hl_conf(d, "10.23.0.0/16", "sbxsteady")).encode())
            for k, d in data.items()
        }
        impls = {"ours": self.ours, "ref": self.ref}
        for k, impl in impls.items():
            for j in range(8):
                self.call(impl, "host-local", cni_env("ADD", f"resident{j}", self.ctr_netns, ""), stdins[k], "ips")
        samples = {op: {"bare": [], "ours": [], "ref": []} for op in ("ADD", "CHECK", "DEL")}
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

        samples = self.interleaved(rounds, add(on, "on"), add(off, "off"))
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
        names = {"ours": "sweep-ours", "ref": "sweep-ref"}
        data = {k: os.path.join(self.work, "store-" + k) for k in names}
        stdins = {
            k: self.runner.stdin_file(json.dumps(self.hl_conf(data[k], STORE_NET, "sbxsweep")).encode())
            for k in names
        }
        impls = {"ours": self.ours, "ref": self.ref}
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
            samples = {op: {"bare": [], "ours": [], "ref": []} for op in ("ADD", "CHECK", "DEL")}
            self.add_check_del_rounds(rounds, f"s{size}-", impls, stdins, samples)
            point = {"size": size, "rounds": rounds, "rebuild_s": rebuild_s}
            for op, s in samples.items():
                e = self.record(f"hl_{op.lower()}_{size}", f"host-local {op}, {size:,} reservations", s)
                point[op] = e
            sweep.append(point)
            log(
                f"  store {size:>6,}: ADD ours {point['ADD']['median_s']['ours'] * 1e3:7.2f} ms, "
                f"reference {point['ADD']['median_s']['ref'] * 1e3:8.2f} ms  "
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
        ref_rss = [p[op]["peak_rss_kib"]["ref"] for p in sweep for op in ("ADD", "CHECK", "DEL")]
        self.results["hl_rss"] = {
            "title": f"host-local peak RSS over store sizes {sizes[0]:,}..{top:,} (KiB)",
            "ours_min_kib": min(rss),
            "ours_max_kib": max(rss),
            "ref_min_kib": min(ref_rss),
            "ref_max_kib": max(ref_rss),
            "target": {"kind": "rss", "value": RSS_LIMIT_KIB},
            "pass": max(rss) <= RSS_LIMIT_KIB,
        }
        self.sweep = sweep
        return sweep

    def concurrency(self, rounds, n, parallel):
        impls = {"ours": self.ours, "ref": self.ref}
        out = {k: [] for k in impls}
        problems = []
        for i in range(rounds):
            order = ["ours", "ref"] if i % 2 == 0 else ["ref", "ours"]
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
            "speedup_vs_ref": thr["ours"] / thr["ref"],
            "ours_duplicates": sum(r["duplicates"] for r in out["ours"]),
            "ours_failures": sum(r["failures"] for r in out["ours"]),
            "ref_duplicates": sum(r["duplicates"] for r in out["ref"]),
            "ref_failures": sum(r["failures"] for r in out["ref"]),
            "problems": problems,
            "target": {"kind": "vs_ref", "value": TARGETS["concurrency_speedup"]},
        }
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
            for k in ("ours", "ref")
        }

        def run_pair(impl, key, netns, i, dels):
            r = self.call(impl, "bridge", cni_env("ADD", f"b{i}", netns, impl.dir), stdins[key], "ips")
            dels[key].append(self.call(impl, "bridge", cni_env("DEL", f"b{i}", netns, impl.dir), stdins[key]))
            return r

        # Phase 1, against the bare start only: the reference bridge creates and deletes real veths and
        # a bridge, and the kernel and udev keep working on those for milliseconds afterwards, which
        # would slow down whatever runs next, the bare start included.
        dels = {"bare": [], "ours": [], "ref": []}
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
        dels = {"bare": [], "ours": [], "ref": []}

        def ref_fn(i):
            r = run_pair(self.ref, "ref", self.netns.path, i, dels)
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


def machine():
    cpu = "unknown"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    ref_version = "unknown"
    try:
        r = subprocess.run(
            ["dpkg-query", "-W", "-f", "${Version}", "containernetworking-plugins"],
            capture_output=True, text=True, timeout=30,
        )
        ref_version = r.stdout.strip() or ref_version
    except (OSError, subprocess.SubprocessError):
        pass
    rev = "unknown"
    try:
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
        "reference": f"containernetworking-plugins {ref_version}",
        "load_at_start": os.getloadavg()[0],
    }


def fmt_ms(s):
    return f"{s * 1e3:.2f} ms" if s == s else "-"


def report(bench, info, quick):
    rows = []
    for key, e in bench.results.items():
        if key == "hl_rss":
            rows.append([
                e["title"], f"{e['ours_min_kib']}..{e['ours_max_kib']} KiB",
                f"{e['ref_min_kib']}..{e['ref_max_kib']} KiB", "", "",
                f"<= {e['target']['value']} KiB", "pass" if e["pass"] else "FAIL",
            ])
            continue
        if key == "hl_rebuild":
            rows.append([e["title"], fmt_ms(e["ours_s"]), "-", "-", "", "", ""])
            continue
        if key == "hl_concurrent":
            t = e["throughput_per_s"]
            rows.append([
                e["title"], f"{t['ours']:.0f}/s", f"{t['ref']:.0f}/s", f"{e['speedup_vs_ref']:.1f}x faster", "",
                f">= {e['target']['value']:g}x, 0 duplicates", "pass" if e["pass"] else "FAIL",
            ])
            rows.append([
                "  duplicates / failures", f"{e['ours_duplicates']} / {e['ours_failures']}",
                f"{e['ref_duplicates']} / {e['ref_failures']}", "", "", "", "",
            ])
            continue
        m = e["median_s"]
        tgt = e.get("target")
        tgt_text = ""
        if tgt:
            tgt_text = f">= {tgt['value']:g}x faster" if tgt["kind"] == "vs_ref" else f"<= {tgt['value']:g}x bare"
        rss = e.get("peak_rss_kib", {})
        rows.append([
            e["title"],
            fmt_ms(m["ours"]) + (f", {rss['ours']} KiB" if "ours" in rss else ""),
            (fmt_ms(m["ref"]) + (f", {rss['ref']} KiB" if "ref" in rss else "")) if "ref" in m else "-",
            f"{e['speedup_vs_ref']:.1f}x faster" if "speedup_vs_ref" in e else "-",
            f"{e['ours_vs_bare']:.2f}x" + (f" (ref {e['ref_vs_bare']:.1f}x)" if "ref_vs_bare" in e else ""),
            tgt_text,
            ("pass" if e["pass"] else "FAIL") if "pass" in e else "",
        ])
    head = ["measurement", "ours (median, peak RSS)", "reference", "ours vs reference", "ours / bare start", "target", ""]
    bare = statistics.median(
        [e["median_s"]["bare"] for k, e in bench.results.items() if "median_s" in e]
    )
    lines = [
        f"Machine: {info['cpu']}, {info['cpus']} CPUs, Linux {info['kernel']}, {info['os']}; "
        f"reference: {info['reference']}; ours: {info['revision']}, {info['ours_dir_kind']}; "
        f"mode: {'quick' if quick else 'full'}; load average at start {info['load_at_start']:.2f}; "
        f"bare start (static do-nothing binary, median over all rounds): {bare * 1e3:.3f} ms. "
        "Times are medians; ratios are medians of per-round ratios (each round runs bare, ours and the "
        "reference back to back).",
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


def plot(sweep, path):
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
    for op, marker in styles.items():
        ax.plot(sizes, [p[op]["median_s"]["ref"] * 1e3 for p in sweep], marker=marker, color="tab:red",
                alpha=0.8, label=f"reference host-local {op}")
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
    p.add_argument("--out", default=os.path.join(HERE, "out"), help="where results and the plot go")
    p.add_argument("--check", action="store_true", help="exit 1 when a target is missed")
    p.add_argument("--steady-only", action="store_true",
                   help="only host-local ADD/CHECK/DEL into an existing store, quiet and loaded (a few minutes)")
    args = p.parse_args()

    os.makedirs(args.out, exist_ok=True)
    ours = Impl("ours", find_ours(args.ours))
    ref = Impl("reference", os.path.abspath(args.reference))
    for plugin in ["loopback", "host-local", "bridge"]:
        if not os.path.isfile(ref.exe(plugin)):
            raise BenchError(f"reference {plugin} missing in {ref.dir}: install containernetworking-plugins")
    tools = build_tools(args.out)
    info = machine()
    info["ours_dir_kind"] = "musl static" if MUSL in ours.dir else "host target"
    log(f"bench: ours from {ours.dir}, reference from {ref.dir}, tools built with {tools['cc']}")

    netns = Netns()
    work = tempfile.mkdtemp(prefix="sbxbench-")
    bench = None
    try:
        netns.setup()
        bench = Bench(args, tools, ours, ref, work, netns)
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
            {"machine": info, "quick": args.quick, "results": bench.results, "fs_costs_s": bench.fs, "notes": bench.notes},
            f,
            indent=2,
        )
    png = os.path.join(args.out, "latency-vs-store-size.png")
    if bench.sweep and plot(bench.sweep, png):
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
