#!/usr/bin/python3
"""The CNI checks tests/gvisor/run.sh runs inside gVisor (`runsc --network=none do`).

One call runs every check for one identity:

  root        uid 0 with gVisor's default capabilities (all but CAP_NET_RAW);
  nobody      uid/gid 65534, no capabilities at all, a dataDir it owns;
  no-netadmin uid 0 without CAP_NET_ADMIN (setpriv drops it from the
              bounding and inheritable sets before exec).

For the last two the script starts as root, prepares the work directory, and
re-runs itself under setpriv. The checks, each one `ok NAME` or `FAIL NAME`
line on stdout:

  * VERSION of every plugin;
  * bridge + host-local ADD, CHECK, DEL (and a second DEL) at 0.3.1, 0.4.0,
    1.0.0 and 1.1.0, with the host-local store checked after each step
    (CHECK at 0.3.1 must be refused: the spec adds CHECK in 0.4.0);
  * loopback ADD and DEL at 0.3.1 and 1.0.0;
  * GC (keeps the valid attachment, releases the other) and STATUS at 1.1.0;
  * `k3s-sandbox selftest` and `k3s-sandbox doctor` / `doctor --json`;
  * with --stress (once, as root): 16 parallel ADDs (distinct addresses,
    each reserved once), then 16 parallel DELs (store empty), and ADDs killed
    with SIGKILL at staggered moments (no empty or torn file in the store).

The last line is `RESULT <passed> <failed>`; tests/gvisor/run.sh adds them up.
Everything lives in a fresh directory under /tmp inside the sandbox's memory
overlay, so nothing reaches the host. Only the standard library is used (and
plugins/plugin_list.py, the reader of the project's plugin list).
"""

import argparse
import ipaddress
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "plugins"))
from plugin_list import PLUGINS  # noqa: E402  (the project's one plugin list, plugins/list.txt)

VERSIONS = ("0.3.1", "0.4.0", "1.0.0", "1.1.0")
SUBNET = ipaddress.ip_network("10.99.0.0/24")
NETWORK = "gvisor-test"
NOBODY = 65534
CAP_NET_ADMIN = 12
CALL_TIMEOUT = 30
IDENTITIES = {
    "root": [],
    "nobody": [
        f"--reuid={NOBODY}",
        f"--regid={NOBODY}",
        "--clear-groups",
        "--inh-caps=-all",
        "--bounding-set=-all",
    ],
    "no-netadmin": ["--bounding-set=-net_admin", "--inh-caps=-net_admin"],
}


class Results:
    def __init__(self):
        self.passed = 0
        self.failed = 0

    def check(self, name, ok, detail=""):
        if ok:
            self.passed += 1
            print(f"ok   {name}", flush=True)
        else:
            self.failed += 1
            print(f"FAIL {name}", flush=True)
            if detail:
                for line in str(detail).splitlines() or [""]:
                    print(f"     {line[:300]}", flush=True)
        return ok


class Call:
    """What one plugin run printed."""

    def __init__(self, rc, stdout, stderr):
        self.rc = rc
        self.stdout = stdout
        self.stderr = stderr

    def json(self):
        try:
            return json.loads(self.stdout)
        except ValueError:
            return None

    def describe(self):
        out = self.stdout.decode(errors="replace").strip()
        err = self.stderr.decode(errors="replace").strip()
        return f"exit {self.rc}; stdout {out[:400]!r}; stderr {err[:200]!r}"


class Suite:
    def __init__(self, args, results):
        self.args = args
        self.r = results
        self.bin = args.plugins
        self.work = args.work
        self.data_dir = os.path.join(self.work, "ipam")
        self.netns = args.netns or os.path.join(self.work, "netns")

    # ---- running plugins

    def env(self, command, container_id="", ifname="eth0"):
        env = {
            "PATH": "/usr/sbin:/usr/bin:/sbin:/bin",
            "CNI_COMMAND": command,
            "CNI_PATH": self.bin,
        }
        if container_id:
            env.update(CNI_CONTAINERID=container_id, CNI_NETNS=self.netns, CNI_IFNAME=ifname)
        return env

    def run(self, plugin, command, conf, container_id="", ifname="eth0"):
        stdin = json.dumps(conf).encode() if conf is not None else b""
        try:
            proc = subprocess.run(
                [os.path.join(self.bin, plugin)],
                input=stdin,
                env=self.env(command, container_id, ifname),
                capture_output=True,
                timeout=CALL_TIMEOUT,
                check=False,
            )
        except subprocess.TimeoutExpired:
            return Call(None, b"", f"no answer within {CALL_TIMEOUT}s".encode())
        except OSError as err:
            return Call(None, b"", str(err).encode())
        return Call(proc.returncode, proc.stdout, proc.stderr)

    def start(self, plugin, command, conf, container_id, ifname="eth0"):
        return subprocess.Popen(
            [os.path.join(self.bin, plugin)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=self.env(command, container_id, ifname),
        ), json.dumps(conf).encode()

    # ---- configs and the store

    def bridge_conf(self, version, data_dir=None, extra=None):
        conf = {
            "cniVersion": version,
            "name": NETWORK,
            "type": "bridge",
            "bridge": "cni0",
            "isGateway": True,
            "ipam": {
                "type": "host-local",
                "ranges": [[{"subnet": str(SUBNET)}]],
                "routes": [{"dst": "0.0.0.0/0"}],
                "dataDir": data_dir or self.data_dir,
            },
        }
        conf.update(extra or {})
        return conf

    def store(self, data_dir=None):
        """{ip: body} of the reservations of our network."""
        net_dir = os.path.join(data_dir or self.data_dir, NETWORK)
        found = {}
        try:
            names = os.listdir(net_dir)
        except FileNotFoundError:
            return found
        for name in names:
            try:
                ip = ipaddress.ip_address(name)
            except ValueError:
                continue
            with open(os.path.join(net_dir, name), "rb") as f:
                found[ip] = f.read().decode(errors="replace")
        return found

    # ---- the checks

    def identity(self):
        status = {}
        with open("/proc/self/status", encoding="utf-8") as f:
            for line in f:
                key, _, value = line.partition(":")
                status[key] = value.strip()
        uid = os.getuid()
        eff = int(status.get("CapEff", "0"), 16)
        name = self.args.identity
        if name == "root":
            ok = uid == 0 and eff & (1 << CAP_NET_ADMIN)
        elif name == "nobody":
            ok = uid == NOBODY and os.getgid() == NOBODY and eff == 0 and int(status["CapBnd"], 16) == 0
        else:
            ok = uid == 0 and not eff & (1 << CAP_NET_ADMIN)
        self.r.check(
            f"identity {name}: uid {uid}, CapEff {status.get('CapEff')}, CapBnd {status.get('CapBnd')}",
            ok,
            "the process does not have the identity this run is for",
        )
        owner = os.stat(self.data_dir).st_uid
        self.r.check(f"dataDir {self.data_dir} is owned by uid {owner}", owner == uid)

    def version(self):
        for plugin in PLUGINS:
            call = self.run(plugin, "VERSION", {"cniVersion": "1.0.0"})
            doc = call.json() or {}
            supported = doc.get("supportedVersions") or []
            self.r.check(
                f"VERSION {plugin}: supports {', '.join(supported) or '(nothing)'}",
                call.rc == 0 and "1.0.0" in supported,
                call.describe(),
            )

    def verbs(self):
        for version in VERSIONS:
            cid = f"gvisor-{version.replace('.', '-')}"
            conf = self.bridge_conf(version)
            add = self.run("bridge", "ADD", conf, cid)
            result = add.json() or {}
            ips = []
            for entry in result.get("ips") or []:
                try:
                    ips.append(ipaddress.ip_interface(entry.get("address", "")).ip)
                except ValueError:
                    pass
            eth0 = [i for i in result.get("interfaces") or [] if i.get("name") == "eth0"]
            ok = (
                add.rc == 0
                and result.get("cniVersion") == version
                and len(ips) == 1
                and ips[0] in SUBNET
                and eth0
                and eth0[0].get("sandbox") == self.netns
            )
            # Every step runs even after a failed one, so that each run has
            # the same checks and the counts compare.
            self.r.check(
                f"{version} bridge+host-local ADD: {', '.join(map(str, ips)) or 'no address'}",
                ok,
                add.describe(),
            )
            store = self.store()
            self.r.check(
                f"{version} ADD reserved its address in the store as '{cid}\\r\\neth0'",
                len(ips) == 1 and store == {ips[0]: f"{cid}\r\neth0"},
                f"store {store}",
            )
            check_conf = dict(conf, prevResult=result) if result.get("cniVersion") else conf
            check = self.run("bridge", "CHECK", check_conf, cid)
            if version == "0.3.1":
                doc = check.json() or {}
                self.r.check(
                    f"{version} CHECK is refused with an error (CHECK came with 0.4.0): {doc.get('msg')!r}",
                    check.rc not in (0, None) and isinstance(doc.get("code"), int),
                    check.describe(),
                )
            else:
                self.r.check(
                    f"{version} CHECK succeeds with nothing on stdout",
                    check.rc == 0 and not check.stdout.strip(),
                    check.describe(),
                )
            for attempt in ("DEL", "second DEL"):
                delete = self.run("bridge", "DEL", conf, cid)
                left = self.store()
                self.r.check(
                    f"{version} {attempt} succeeds, store empty",
                    delete.rc == 0 and not delete.stdout.strip() and not left,
                    f"{delete.describe()}; store {left}",
                )

    def loopback(self):
        for version in ("0.3.1", "1.0.0"):
            conf = {"cniVersion": version, "name": "cni-loopback", "type": "loopback"}
            add = self.run("loopback", "ADD", conf, "gvisor-lo", ifname="lo")
            result = add.json() or {}
            addrs = sorted(e.get("address", "") for e in result.get("ips") or [])
            self.r.check(
                f"{version} loopback ADD: {', '.join(addrs) or 'no address'}",
                add.rc == 0 and "127.0.0.1/8" in addrs,
                add.describe(),
            )
            delete = self.run("loopback", "DEL", conf, "gvisor-lo", ifname="lo")
            self.r.check(
                f"{version} loopback DEL succeeds with nothing on stdout",
                delete.rc == 0 and not delete.stdout.strip(),
                delete.describe(),
            )

    def gc_status(self):
        conf = self.bridge_conf("1.1.0")
        for cid in ("gvisor-keep", "gvisor-stale"):
            add = self.run("bridge", "ADD", conf, cid)
            self.r.check(f"1.1.0 ADD {cid} before GC", add.rc == 0, add.describe())
        before = self.store()
        gc_conf = dict(conf)
        gc_conf["cni.dev/valid-attachments"] = [{"containerID": "gvisor-keep", "ifname": "eth0"}]
        gc = self.run("bridge", "GC", gc_conf)
        kept = self.store()
        self.r.check(
            f"1.1.0 GC keeps the valid attachment and releases the other ({len(before)} -> {len(kept)} reservations)",
            gc.rc == 0
            and not gc.stdout.strip()
            and len(before) == 2
            and list(kept.values()) == ["gvisor-keep\r\neth0"],
            f"{gc.describe()}; before {before}; after {kept}",
        )
        for plugin in ("bridge", "host-local"):
            # An IPAM plugin gets the whole network config, as from its main plugin.
            status = self.run(plugin, "STATUS", conf)
            self.r.check(
                f"1.1.0 STATUS {plugin}: ready (exit 0, nothing on stdout)",
                status.rc == 0 and not status.stdout.strip(),
                status.describe(),
            )
        delete = self.run("bridge", "DEL", conf, "gvisor-keep")
        self.r.check(
            "1.1.0 DEL after GC empties the store",
            delete.rc == 0 and not self.store(),
            f"{delete.describe()}; store {self.store()}",
        )

    def cli(self):
        exe = self.args.k3s_sandbox
        if not exe:
            return
        base = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "HOME": self.work, "TMPDIR": self.work}
        # Options go after the subcommand that reads them; selftest has no instance (--data-dir).
        common = ["--cni-bin-dir", self.bin, "--cni-conf-dir", os.path.join(self.work, "net.d")]
        instance = ["--data-dir", os.path.join(self.work, "k3s-sandbox")]
        try:
            st = subprocess.run([exe, "selftest", *common], env=base, capture_output=True,
                                timeout=60, check=False)
            out = st.stdout.decode(errors="replace").strip()
            ok = st.returncode == 0 and out and ipaddress.ip_address(out) is not None
        except (subprocess.TimeoutExpired, ValueError, OSError) as err:
            st, out, ok = None, str(err), False
        self.r.check(
            f"k3s-sandbox selftest: pod IP {out or '(none)'}",
            ok,
            st and st.stderr.decode(errors="replace")[-800:],
        )
        try:
            doc = subprocess.run([exe, "doctor", *common, *instance], env=base, capture_output=True,
                                 timeout=60, check=False)
            js = subprocess.run([exe, "doctor", "--json", *common, *instance], env=base, capture_output=True,
                                timeout=60, check=False)
        except (subprocess.TimeoutExpired, OSError) as err:
            self.r.check("k3s-sandbox doctor runs", False, str(err))
            return
        text = doc.stdout.decode(errors="replace")
        sandbox = [line for line in text.splitlines() if "sandbox:" in line]
        for line in text.splitlines():
            if re.match(r"\S+\s+(sandbox|profile [a-z-]+):", line):
                print(f"     | {line}", flush=True)
        root = root_fs_type()
        self.r.check(
            f"k3s-sandbox doctor names the sandbox: gVisor (runsc), {root} root",
            doc.returncode in (0, 1)
            and any(line.startswith(f"ok    sandbox: gVisor (runsc), {root} root") for line in sandbox),
            text + doc.stderr.decode(errors="replace")[-400:],
        )
        objs = []
        try:
            objs = [json.loads(line) for line in js.stdout.decode().splitlines() if line.strip()]
        except ValueError as err:
            objs = [str(err)]
        by_name = {o.get("name"): o for o in objs if isinstance(o, dict)}
        gen = by_name.get("gvisor generation", {}).get("detail", "")
        agent = by_name.get("profile agent", {})
        print(f"     | doctor --json: gvisor generation: {gen}", flush=True)
        self.r.check(
            "k3s-sandbox doctor measured this runsc's generation and says pods stop at the shim "
            "(prctl(PR_SET_CHILD_SUBREAPER) fails with EINVAL)",
            gen.startswith("2022 or older: prctl(PR_SET_CHILD_SUBREAPER) fails with EINVAL")
            and agent.get("detail", "").startswith("pods stop at the shim here")
            and "EINVAL" in agent.get("detail", ""),
            json.dumps(by_name.get("gvisor generation")) + " " + json.dumps(agent),
        )
        names = [o.get("name") for o in objs if isinstance(o, dict)]
        human = [line for line in text.splitlines() if line.strip()]
        self.r.check(
            f"k3s-sandbox doctor --json: one object per check ({len(objs)} objects, {len(human)} lines)",
            js.returncode == doc.returncode
            and len(names) == len(objs) == len(human)
            and "sandbox" in names
            and all(o.get("level") in ("ok", "warn", "fail") for o in objs),
            js.stdout.decode(errors="replace")[:800],
        )

    # ---- stress: parallel ADDs and SIGKILL

    def parallel(self, count=16):
        data_dir = os.path.join(self.work, "parallel")
        conf = self.bridge_conf("1.0.0", data_dir)
        ids = [f"gvisor-par-{n:02d}" for n in range(count)]

        def all_at_once(command):
            # Start all 16 (each waits for its stdin), then feed them all, so
            # that they run at the same time; only then collect the answers.
            procs = [(cid, *self.start("bridge", command, conf, cid)) for cid in ids]
            for _cid, proc, stdin in procs:
                proc.stdin.write(stdin)
                proc.stdin.close()
                proc.stdin = None
            out = {}
            for cid, proc, _stdin in procs:
                try:
                    stdout, stderr = proc.communicate(timeout=CALL_TIMEOUT * 2)
                    out[cid] = Call(proc.returncode, stdout, stderr)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.communicate()
                    out[cid] = Call(None, b"", b"timed out")
            return out

        adds = all_at_once("ADD")
        failed = {c: r.describe() for c, r in adds.items() if r.rc != 0}
        ips = {}
        for cid, call in adds.items():
            for entry in (call.json() or {}).get("ips") or []:
                ips[cid] = ipaddress.ip_interface(entry["address"]).ip
        store = self.store(data_dir)
        self.r.check(
            f"{count} parallel ADDs: {len(set(ips.values()))} distinct addresses, "
            f"{len(store)} reservations",
            not failed
            and len(set(ips.values())) == count
            and store == {ip: f"{cid}\r\neth0" for cid, ip in ips.items()},
            f"failed {failed}; addresses {ips}; store {store}",
        )
        dels = all_at_once("DEL")
        failed = {c: r.describe() for c, r in dels.items() if r.rc != 0}
        left = self.store(data_dir)
        self.r.check(
            f"{count} parallel DELs empty the store",
            not failed and not left,
            f"failed {failed}; left {left}",
        )

    def sigkill(self, rounds=24):
        data_dir = os.path.join(self.work, "killed")
        conf = self.bridge_conf("1.0.0", data_dir)
        # Time one ADD here, then kill at moments spread from the start to
        # past its end, so that most calls die somewhere inside their work.
        # (The quickest of three: the first ADD also creates the store.)
        times = []
        for n in range(3):
            began = time.monotonic()
            self.run("bridge", "ADD", conf, f"gvisor-kill-timing-{n}")
            times.append(time.monotonic() - began)
            self.run("bridge", "DEL", conf, f"gvisor-kill-timing-{n}")
        typical = min(times)
        rng = random.Random(12)
        killed = finished = 0
        ids = []
        for n in range(rounds):
            cid = f"gvisor-kill-{n:02d}"
            ids.append(cid)
            proc, stdin = self.start("bridge", "ADD", conf, cid)
            try:
                proc.stdin.write(stdin)
                proc.stdin.close()
            except BrokenPipeError:
                pass
            time.sleep(rng.uniform(0, typical * 1.2))
            if proc.poll() is None:
                proc.send_signal(signal.SIGKILL)
                killed += 1
            else:
                finished += 1
            proc.wait(timeout=CALL_TIMEOUT)
            proc.stdout.close()
            proc.stderr.close()
        problems = self.torn_files(os.path.join(data_dir, NETWORK), set(ids))
        self.r.check(
            f"ADDs killed with SIGKILL ({killed} killed, {finished} finished first; one ADD takes "
            f"{typical * 1000:.0f} ms here) leave no empty or torn file",
            not problems,
            "; ".join(problems),
        )
        failed = {}
        for cid in ids:
            delete = self.run("bridge", "DEL", conf, cid)
            if delete.rc != 0:
                failed[cid] = delete.describe()
        left = self.store(data_dir)
        self.r.check(
            "DEL of every killed ADD's container empties the store",
            not failed and not left,
            f"failed {failed}; left {left}",
        )

    @staticmethod
    def torn_files(net_dir, ids):
        """Every file of a host-local store that is empty or does not parse."""
        problems = []
        if not os.path.isdir(net_dir):
            return problems
        for dirpath, _dirs, files in os.walk(net_dir):
            for name in files:
                path = os.path.join(dirpath, name)
                rel = os.path.relpath(path, net_dir)
                if rel == "lock":
                    continue  # a flock target, empty by design
                with open(path, "rb") as f:
                    body = f.read().decode(errors="replace")
                if not body:
                    problems.append(f"{rel} is empty")
                    continue
                base = name.split(".", 1)[-1] if dirpath != net_dir else name
                if name.startswith("last_reserved_ip."):
                    try:
                        ipaddress.ip_address(body.strip())
                    except ValueError:
                        problems.append(f"{rel} holds {body!r}")
                    continue
                is_reservation = False
                try:
                    ipaddress.ip_address(base)
                    is_reservation = True
                except ValueError:
                    pass
                if is_reservation:
                    cid, sep, ifname = body.partition("\r\n")
                    if not sep or cid not in ids or ifname != "eth0":
                        problems.append(f"{rel} holds {body!r}")
        return problems


def root_fs_type():
    """The type of / from /proc/mounts (overlay or 9p in gVisor)."""
    kind = "unknown"
    with open("/proc/mounts", encoding="utf-8") as f:
        for line in f:
            fields = line.split()
            if len(fields) > 2 and fields[1] == "/":
                kind = fields[2]
    return kind


class NetnsHolder:
    """A sleeping process in a network namespace of its own, created by the
    identity under test: its /proc/PID/ns/net is a real CNI_NETNS, which the
    reference plugins enter (ours only record the path)."""

    def __init__(self):
        self.proc = None
        self.path = None
        self.how = "none"
        own = os.readlink("/proc/self/ns/net")
        for how in (["--net"], ["--user", "--map-root-user", "--net"]):
            try:
                proc = subprocess.Popen(
                    ["unshare", *how, "sleep", "600"],
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
            except OSError:
                return
            path = f"/proc/{proc.pid}/ns/net"
            end = time.monotonic() + 5
            while proc.poll() is None and time.monotonic() < end:
                try:
                    if os.readlink(path) != own:
                        self.proc, self.path, self.how = proc, path, "unshare " + " ".join(how)
                        return
                except OSError:
                    pass
                time.sleep(0.01)
            proc.kill()
            proc.wait()

    def close(self):
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()


def drop_to(identity, args, argv):
    """Re-run this script as `identity` (from root), with a work dir it owns."""
    if identity == "nobody":
        for path in (args.work, os.path.join(args.work, "ipam")):
            os.chown(path, NOBODY, NOBODY)
        os.chmod(args.work, 0o700)
    cmd = ["setpriv", *IDENTITIES[identity], "--", sys.executable, os.path.abspath(__file__), *argv,
           "--work", args.work, "--dropped"]
    return subprocess.run(cmd, check=False, timeout=args.timeout).returncode


def main(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    p.add_argument("--plugins", required=True, help="directory of the plugin binaries under test")
    p.add_argument("--identity", choices=sorted(IDENTITIES), default="root")
    p.add_argument("--k3s-sandbox", help="the k3s-sandbox binary for its selftest and doctor checks")
    p.add_argument("--stress", action="store_true", help="also the parallel and SIGKILL checks")
    p.add_argument("--netns", help="CNI_NETNS to pass (default: a plain file in the work dir)")
    p.add_argument("--timeout", type=int, default=120, help="seconds for the run under setpriv")
    p.add_argument("--work", help=argparse.SUPPRESS)
    p.add_argument("--dropped", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args(argv)

    if not args.dropped:
        args.work = tempfile.mkdtemp(prefix="scni-gvisor-")
        os.makedirs(os.path.join(args.work, "ipam"))
        open(os.path.join(args.work, "netns"), "w").close()
        if IDENTITIES[args.identity]:
            try:
                return drop_to(args.identity, args, argv)
            finally:
                shutil.rmtree(args.work, ignore_errors=True)

    results = Results()
    holder = None
    if not args.netns:
        holder = NetnsHolder()
        args.netns = holder.path
        print(f"     CNI_NETNS {args.netns or '(a plain file: no network namespace could be made)'}"
              f"{' from ' + holder.how if holder.path else ''}", flush=True)
    suite = Suite(args, results)
    try:
        suite.identity()
        suite.version()
        suite.verbs()
        suite.loopback()
        suite.gc_status()
        suite.cli()
        if args.stress:
            suite.parallel()
            suite.sigkill()
    except Exception as err:  # noqa: BLE001 - a harness bug must count as a failure
        import traceback

        results.check("the suite ran to the end", False, f"{err}\n{traceback.format_exc()}")
    finally:
        if holder is not None:
            holder.close()
        if not args.dropped:
            shutil.rmtree(args.work, ignore_errors=True)
    print(f"RESULT {results.passed} {results.failed}", flush=True)
    return 1 if results.failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
