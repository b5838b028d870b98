#!/usr/bin/env python3
"""Record what the CLI and the plugins print, so a refactoring can be diffed before and after.

    python3 tests/cli-outputs.py --bin-dir target/debug --out /tmp/outputs-after
    diff -r /tmp/outputs-before /tmp/outputs-after

For every case it writes one file: the command line, the exit status, stdout and stderr. The cases
cover every subcommand's --help (found by walking the help tree), the man page, the completion
scripts, `cni` (every verb, every shipped conflist, --json), `ipam` (ls, gc, release with their dry
runs, on a store made by real attachments), `trace`, the commands that need an instance (without
one), doctor, selftest, the usage errors, the cnitool entry and every plugin's VERSION and error
answers. Everything runs in a scratch directory at a fixed path with a fixed environment, so two
builds of the same behaviour give byte-identical files. Needs no root and no k3s.
"""

import argparse
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))

WORK = Path("/tmp/sandbox-cni-cli-outputs")


def plugin_names():
    names = []
    for line in (REPO / "plugins" / "list.txt").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            names.append(line)
    return names


class Recorder:
    def __init__(self, bin_dir: Path, out: Path):
        self.bin_dir = bin_dir
        self.out = out
        self.n = 0
        self.env = {
            "PATH": "/usr/sbin:/usr/bin:/sbin:/bin",
            "HOME": str(WORK / "home"),
            "NETCONFPATH": str(WORK / "net.d"),
            "CNI_PATH": str(WORK / "bin"),
            "CNI_CACHE_DIR": str(WORK / "cache"),
            "SANDBOX_CNI_TRACE_DIR": str(WORK / "trace"),
            "K3S_SANDBOX_DATA_DIR": str(WORK / "data"),
            "K3S_BIN": str(WORK / "no-k3s"),
            "NO_COLOR": "1",
            "LC_ALL": "C",
        }

    def run(self, name, argv, env=None, stdin=b"", exe=None):
        self.n += 1
        e = dict(self.env)
        e.update(env or {})
        prog = exe or str(WORK / "bin" / "k3s-sandbox")
        try:
            p = subprocess.run(
                [prog] + argv, input=stdin, capture_output=True, env=e, cwd=WORK, timeout=60
            )
            status, out, err = str(p.returncode), p.stdout, p.stderr
        except subprocess.TimeoutExpired:
            status, out, err = "timeout", b"", b""
        safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", name)[:80]
        path = self.out / f"{self.n:03d}-{safe}"
        with open(path, "wb") as f:
            f.write(b"$ " + " ".join([Path(prog).name] + argv).encode() + b"\n")
            f.write(b"exit: " + status.encode() + b"\n--- stdout\n" + out + b"\n--- stderr\n" + err)
        return out


def help_tree(rec, path):
    """Every subcommand path below `path`, from the "Commands:" sections of --help."""
    out = subprocess.run(
        [str(WORK / "bin" / "k3s-sandbox")] + path + ["--help"],
        capture_output=True, env=rec.env, cwd=WORK,
    ).stdout.decode()
    subs, in_cmds = [], False
    for line in out.splitlines():
        if line.startswith("Commands:"):
            in_cmds = True
        elif in_cmds and line.startswith("  ") and line.strip():
            word = line.split()[0]
            if word != "help":
                subs.append(word)
        elif in_cmds and not line.strip():
            in_cmds = False
    paths = [path]
    for s in subs:
        paths += help_tree(rec, path + [s])
    return paths


def setup(bin_dir: Path):
    if WORK.exists():
        shutil.rmtree(WORK)
    for d in ("bin", "net.d", "cache", "home", "data", "ipam"):
        (WORK / d).mkdir(parents=True)
    for name in plugin_names() + ["k3s-sandbox"]:
        shutil.copy2(bin_dir / name, WORK / "bin" / name)
    os.symlink("k3s-sandbox", WORK / "bin" / "cnitool")
    for conf in sorted((REPO / "cni-conf").glob("*.conflist")):
        text = conf.read_text()
        # host-local's store goes to the scratch dir, not /var/lib/cni.
        text = text.replace('"type": "host-local"', '"type": "host-local", "dataDir": "%s"' % (WORK / "ipam"))
        (WORK / "net.d" / conf.name).write_text(text)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bin-dir", required=True, type=Path, help="the build's binaries (target/debug)")
    ap.add_argument("--out", required=True, type=Path, help="directory for the recorded outputs")
    a = ap.parse_args()
    bin_dir = a.bin_dir.resolve()
    if a.out.exists():
        shutil.rmtree(a.out)
    a.out.mkdir(parents=True)
    setup(bin_dir)
    r = Recorder(bin_dir, a.out)

    # Help, man, completions.
    r.run("help", ["--help"])
    r.run("version", ["--version"])
    for p in help_tree(r, []):
        if p:
            r.run("help-" + "-".join(p), p + ["--help"])
    r.run("man", ["man"])
    for sh in ("bash", "zsh", "fish"):
        r.run("completions-" + sh, ["completions", sh])

    # cni, every shipped network.
    nets = ["sandbox-cni", "containerd-net", "sandbox-cni-dual", "podman"]
    r.run("cni-ls", ["cni", "ls"])
    r.run("cni-ls-json", ["cni", "ls", "--json"])
    r.run("cni-version", ["cni", "version"])
    r.run("cni-version-json", ["cni", "version", "--json"])
    for net in nets:
        for ns in ("/run/netns/a", "/run/netns/b"):
            r.run(f"cni-add-{net}", ["cni", "add", net, ns])
        r.run(f"cni-check-{net}", ["cni", "check", net, "/run/netns/a"])
        r.run(f"cni-status-{net}", ["cni", "status", net])
        r.run(f"cni-status-json-{net}", ["cni", "status", net, "--json"])
        r.run(f"cni-gc-{net}", ["cni", "gc", net])
        r.run(f"cni-gc-json-{net}", ["cni", "gc", net, "--json"])
    r.run("cnitool-add", ["add", "sandbox-cni", "/run/netns/c"], exe=str(WORK / "bin" / "cnitool"))
    r.run("cnitool-check", ["check", "sandbox-cni", "/run/netns/c"], exe=str(WORK / "bin" / "cnitool"))
    r.run("cnitool-del", ["del", "sandbox-cni", "/run/netns/c"], exe=str(WORK / "bin" / "cnitool"))
    r.run("cnitool-bad", ["frob"], exe=str(WORK / "bin" / "cnitool"))

    # ipam, on the stores the attachments made.
    ipam = ["--ipam-dir", str(WORK / "ipam")]
    r.run("ipam-ls", ["ipam", "ls"] + ipam)
    r.run("ipam-ls-json", ["ipam", "ls", "--json"] + ipam)
    keep = ["--valid", "cnitool-a145bc1ace582bff43bd", "--min-age", "0s"]
    r.run("ipam-gc-dry", ["ipam", "gc", "sandbox-cni"] + keep + ipam)
    r.run("ipam-gc-dry-json", ["ipam", "gc", "sandbox-cni", "--json"] + keep + ipam)
    r.run("ipam-release-dry", ["ipam", "release", "sandbox-cni", "10.42.0.2", "--dry-run"] + ipam)
    r.run("ipam-gc-bad-valid", ["ipam", "gc", "sandbox-cni", "--valid", "a/b/c"] + ipam)
    r.run("ipam-gc-bad-age", ["ipam", "gc", "sandbox-cni", "--min-age", "5x"] + ipam)
    r.run("ipam-ls-unknown", ["ipam", "ls", "nope"] + ipam)
    # A damaged store: a reservation file that is a directory, and a junk file.
    store = WORK / "ipam" / "sandbox-cni"
    if store.is_dir():
        (store / "10.42.0.200").mkdir()
        (store / "junk").write_text("x")
    r.run("ipam-ls-damaged", ["ipam", "ls", "sandbox-cni"] + ipam)
    r.run("ipam-ls-damaged-json", ["ipam", "ls", "sandbox-cni", "--json"] + ipam)
    r.run("ipam-gc-damaged", ["ipam", "gc", "sandbox-cni"] + keep + ipam)
    r.run("ipam-gc-damaged-json", ["ipam", "gc", "sandbox-cni", "--json"] + keep + ipam)
    r.run("doctor-damaged", ["doctor", "--json", "--cni-bin-dir", str(WORK / "bin")])
    r.run("doctor-agent", ["doctor", "--profile", "agent", "--cni-bin-dir", str(WORK / "bin")])

    # cni del of every attachment, then gc --apply.
    for net in nets:
        r.run(f"cni-del-{net}", ["cni", "del", net, "/run/netns/a"])
        r.run(f"cni-gc-apply-{net}", ["cni", "gc", net, "--apply"])
    r.run("ipam-ls-after", ["ipam", "ls"] + ipam)

    # Errors of cni.
    r.run("cni-add-unknown", ["cni", "add", "nope", "/run/netns/a"])
    r.run("cni-add-typo", ["cni", "add", "sandbox-cn", "/run/netns/a"])
    r.run("cni-check-missing", ["cni", "check", "sandbox-cni", "/run/netns/zz"])
    r.run("cni-gc-bad-valid", ["cni", "gc", "sandbox-cni", "--valid", ""])
    r.run("cni-add-json-err", ["cni", "add", "nope", "/run/netns/a", "--json"])

    # trace.
    r.run("trace-status", ["trace", "status"])
    r.run("trace-on", ["trace", "on"])
    r.run("trace-status-on", ["trace", "status", "--json"])
    r.run("trace-add", ["cni", "add", "sandbox-cni", "/run/netns/t"])
    r.run("trace-off", ["trace", "off"])

    # Commands that need an instance, without one; down's dry run.
    for cmd in (["status"], ["status", "--json"], ["env"], ["logs"], ["down"], ["down", "--dry-run"],
                ["down", "--dry-run", "--purge"], ["up", "--dry-run"], ["up"]):
        r.run("noinst-" + "-".join(cmd), cmd)

    # pods-profile (read-only parts).
    for sub in ("cgroups", "runtime", "containerd-v3", "containerd-v2"):
        r.run("pods-profile-" + sub, ["pods-profile", sub])

    # Usage errors.
    for argv in (["frob"], ["cni"], ["cni", "add"], ["--json", "status"], ["ipam", "gc"],
                 ["cni", "ls", "--apply"], ["status", "--cni-conf-dir", "/x"], ["trace", "show", "--since", "x"]):
        r.run("usage-" + "-".join(argv), argv)

    # selftest and doctor through the scratch plugins.
    r.run("selftest", ["selftest", "--cni-bin-dir", str(WORK / "bin")])
    r.run("selftest-json", ["selftest", "--cni-bin-dir", str(WORK / "bin"), "--json"])

    # Every plugin's VERSION and a protocol error.
    for name in plugin_names():
        exe = str(WORK / "bin" / name)
        r.run(f"plugin-{name}-version", [], exe=exe,
              env={"CNI_COMMAND": "VERSION"}, stdin=b'{"cniVersion":"1.1.0"}')
        r.run(f"plugin-{name}-bad", [], exe=exe,
              env={"CNI_COMMAND": "ADD", "CNI_CONTAINERID": "x", "CNI_NETNS": "/x",
                   "CNI_IFNAME": "eth0", "CNI_PATH": str(WORK / "bin")}, stdin=b"{")
        r.run(f"plugin-{name}-about", [], exe=exe)
    # Failures of each kind (appended last, so earlier case numbers stay put).
    r.run("kind-cni-args", ["cni", "add", "sandbox-cni", "/run/netns/k"], env={"CNI_ARGS": "garbage"})
    bad = WORK / "bad.d"
    bad.mkdir()
    (bad / "10-missing.conflist").write_text(
        '{"cniVersion": "1.0.0", "name": "missing", "plugins": [{"type": "no-such-plugin"}]}')
    (bad / "20-broken.conflist").write_text('{"cniVersion": "1.0.0", "name": "broken", "plugins": [')
    r.run("kind-plugin-missing", ["cni", "add", "missing", "/run/netns/k", "--cni-conf-dir", str(bad)])
    r.run("kind-network-config", ["cni", "add", "broken", "/run/netns/k", "--cni-conf-dir", str(bad)])
    r.run("kind-broken-ls", ["cni", "ls", "--cni-conf-dir", str(bad)])
    (WORK / "cache-file").write_text("not a dir")
    r.run("kind-cache", ["cni", "add", "sandbox-cni", "/run/netns/k"], env={"CNI_CACHE_DIR": str(WORK / "cache-file")})
    r.run("kind-cnitool-missing", ["add", "missing", "/run/netns/k"], exe=str(WORK / "bin" / "cnitool"),
          env={"NETCONFPATH": str(bad)})
    print(f"{r.n} cases recorded in {a.out}")


if __name__ == "__main__":
    main()
