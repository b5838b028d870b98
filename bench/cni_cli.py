#!/usr/bin/python3
"""Side-by-side benchmark of `k3s-sandbox cni` against the project's libcni driver (libcni v1.1.2 with
cnitool's command line), both running the same plugins on the same conflist.

Each round runs, in rotating order: our ADD then DEL, the libcni driver's ADD then DEL, and a bare
process start (bench/nothing.c). Every call is timed by bench/runner.c (fork, exec, wait4), so Python
never enters a figure. Ratios are taken round by round (paired), so machine drift hits both sides.

The runtime's own share (the target: at most one bare process start on top of what the plugins take)
is measured in the same rounds on the two calls where the plugin's own run can be repeated alone
exactly: `cni version bridge` against bridge answering VERSION, and `cni add` of a one-plugin
loopback network against loopback's ADD run directly with the config the runtime hands it.

Usage: bench/cni_cli.py [--ours DIR] [--libcni PATH] [--rounds N]
  --ours    directory with the release plugins and k3s-sandbox
            (default target/x86_64-unknown-linux-musl/release)
  --libcni  the libcni driver binary (default: built from tests/interop/go with Debian's Go sources)
"""

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
NETWORK = "sandbox-cni"


def sh(cmd, **kw):
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=600, **kw)
    if r.returncode != 0:
        sys.exit(f"cni_cli bench: {' '.join(cmd)} failed: {r.stderr.strip()}")
    return r.stdout


def build(work, libcni):
    cc = shutil.which("musl-gcc") or shutil.which("gcc") or sys.exit("cni_cli bench: no C compiler")
    tools = {}
    for name in ["runner", "nothing"]:
        tools[name] = os.path.join(work, name)
        sh([cc, "-O2", "-static", "-o", tools[name], os.path.join(HERE, name + ".c")])
    if libcni is None:
        libcni = os.path.join(work, "libcni-driver")
        gopath = os.path.join(REPO, "tests/interop/go")
        env = dict(os.environ, GOPATH=f"{gopath}:/usr/share/gocode", GO111MODULE="off", GOPROXY="off",
                   CGO_ENABLED="0", GOCACHE=os.path.join(work, "gocache"))
        sh(["go", "build", "-o", libcni, "interop/cmd/libcni-driver"], cwd=gopath, env=env)
    tools["libcni"] = libcni
    return tools


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ours", default=os.path.join(REPO, "target/x86_64-unknown-linux-musl/release"))
    ap.add_argument("--libcni")
    ap.add_argument("--rounds", type=int, default=30)
    a = ap.parse_args()
    cli = os.path.join(a.ours, "k3s-sandbox")
    if not os.path.isfile(cli):
        sys.exit(f"cni_cli bench: {cli} missing: cargo build --release --target x86_64-unknown-linux-musl --workspace")
    work = tempfile.mkdtemp(prefix="cni-cli-bench-")
    try:
        tools = build(work, a.libcni)
        conf_dir = os.path.join(work, "conf")
        os.mkdir(conf_dir)
        with open(os.path.join(REPO, "cni-conf/10-sandbox-cni.conflist")) as f:
            conf = json.load(f)
        conf.pop("cniVersions")  # both sides at 1.0.0: libcni 1.1.2 cannot read 1.1.0 results
        conf["plugins"][0]["ipam"]["dataDir"] = os.path.join(work, "ipam")
        with open(os.path.join(conf_dir, "10-sandbox-cni.conflist"), "w") as f:
            json.dump(conf, f)
        env = dict(os.environ, NETCONFPATH=conf_dir, CNI_PATH=a.ours, CNI_CACHE_DIR=os.path.join(work, "cache"))
        empty = os.path.join(work, "empty")
        open(empty, "w").close()
        out = os.path.join(work, "out")

        def once(*argv):
            r = subprocess.run([tools["runner"], "once", empty, out, *argv], env=env, capture_output=True,
                               text=True, timeout=120)
            ns, _rss, status = (int(x) for x in r.stdout.split())
            if r.returncode != 0 or status != 0:
                sys.exit(f"cni_cli bench: {' '.join(argv)} failed (status {status}): {r.stderr.strip()}")
            return ns / 1e9

        # The runtime's share: one plugin run through `k3s-sandbox cni`, and the same run alone.
        lo_conf = os.path.join(conf_dir, "20-lo.conflist")
        with open(lo_conf, "w") as f:
            json.dump({"cniVersion": "1.0.0", "name": "lo", "plugins": [{"type": "loopback"}]}, f)
        netns = "/run/netns/bench-lo"
        stdins = {}
        for name, conf in [("version", {"cniVersion": "1.1.0"}),
                           ("add", {"cniVersion": "1.0.0", "name": "lo", "type": "loopback"})]:
            stdins[name] = os.path.join(work, name + ".json")
            with open(stdins[name], "w") as f:
                json.dump(conf, f)
        plugin_env = {
            "version": dict(env, CNI_COMMAND="VERSION"),
            "add": dict(env, CNI_COMMAND="ADD", CNI_CONTAINERID="bench", CNI_NETNS=netns, CNI_IFNAME="eth0",
                        CNI_PATH=a.ours),
        }

        def alone(kind, plugin):
            r = subprocess.run([tools["runner"], "once", stdins[kind], out, os.path.join(a.ours, plugin)],
                               env=plugin_env[kind], capture_output=True, text=True, timeout=120)
            ns, _rss, status = (int(x) for x in r.stdout.split())
            if r.returncode != 0 or status != 0:
                sys.exit(f"cni_cli bench: {plugin} {kind} alone failed (status {status}): {r.stderr.strip()}")
            return ns / 1e9

        def lo_add():
            t = once(cli, "cni", "add", "lo", netns)
            # Each ADD writes a new cache entry, as for a new container: replacing one costs more on ext4.
            for f in os.listdir(os.path.join(work, "cache", "results")):
                if f.startswith("lo-"):
                    os.unlink(os.path.join(work, "cache", "results", f))
            return t

        def cycle(prog, pre):
            netns = "/run/netns/bench"
            return once(prog, *pre, "add", NETWORK, netns) + once(prog, *pre, "del", NETWORK, netns)

        steps = {
            "ours": lambda: cycle(cli, ["cni"]),
            "libcni": lambda: cycle(tools["libcni"], []),
            "bare": lambda: once(tools["nothing"]),
            "version_ours": lambda: once(cli, "cni", "version", "bridge"),
            "version_alone": lambda: alone("version", "bridge"),
            "lo_ours": lambda: lo_add(),
            "lo_alone": lambda: alone("add", "loopback"),
        }
        names = list(steps)
        times = {n: [] for n in names}
        for i in range(a.rounds + 2):
            k = i % len(names)
            for n in names[k:] + names[:k]:
                t = steps[n]()
                if i >= 2:  # two warm-up rounds
                    times[n].append(t)
        med = {n: statistics.median(v) for n, v in times.items()}
        ratio = statistics.median(o / l for o, l in zip(times["ours"], times["libcni"]))
        extra = statistics.median((o - l) / (2 * b) for o, l, b in zip(times["ours"], times["libcni"], times["bare"]))
        print(f"rounds: {a.rounds} (ADD + DEL of {NETWORK} at 1.0.0: bridge + host-local + portmap)")
        print(f"median ADD+DEL wall: k3s-sandbox cni {med['ours'] * 1e3:.2f} ms, "
              f"libcni driver {med['libcni'] * 1e3:.2f} ms, bare start {med['bare'] * 1e3:.2f} ms")
        print(f"paired ratio k3s-sandbox cni / libcni driver: {ratio:.2f}")
        print(f"paired difference per call, in bare process starts: {extra:+.2f}")
        for kind, what in [("version", "`cni version bridge` against bridge's VERSION alone"),
                           ("lo", "`cni add` of a loopback network against loopback's ADD alone")]:
            o, p, b = times[kind + "_ours"], times[kind + "_alone"], times["bare"]
            share = statistics.median((x - y) / z for x, y, z in zip(o, p, b))
            print(f"runtime's share, {what}: median {statistics.median(o) * 1e3:.2f} ms against "
                  f"{statistics.median(p) * 1e3:.2f} ms; paired difference {share:+.2f} bare process starts")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
