#!/usr/bin/python3
"""The containerd path inside gVisor, run by tests/gvisor/run.sh under `runsc do`.

Reuses the containerd end-to-end harness (tests/e2e): the same containerd 1.6
config, private root/state/socket, our CRI client and an image built by
oci_image.py, here one with no layer at all, because unpacking a layer fails
in this runsc (the snapshot's bind mount returns EINVAL). Every plugin in the
CNI bin dir is wrapped by a two-line shell script that appends
"<CNI_COMMAND> <plugin> <CNI_IFNAME>" to a call log and then execs the real
binary, so the checks can say which plugin containerd called, in which order.

What containerd does inside this runsc, and what is asserted:

  * it starts and CRI Status reports RuntimeReady and NetworkReady;
  * RunPodSandbox creates the network namespace and calls ADD on loopback,
    then bridge (whose host-local reserves an address from our range, with
    the body "<sandbox id>\\r\\neth0"), then portmap;
  * the runc shim cannot start (containerd-shim-runc-v2's
    prctl(PR_SET_CHILD_SUBREAPER) returns EINVAL here, checked directly as
    well), so RunPodSandbox fails;
  * containerd then calls DEL on every plugin of both networks, and the
    host-local store ends up empty.

Stop and Remove of such a sandbox fail in this runsc (statfs of the netns
returns ENOSYS); they are tried and reported as the known limit, and a
change of that behaviour is reported too, as news, without failing.

Output: one `ok`/`FAIL` line per check, `LIMIT` lines for the known limits,
and `RESULT <passed> <failed>` last.
"""

import argparse
import importlib.machinery
import importlib.util
import os
import shutil
import subprocess
import sys
import time
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))
E2E = os.path.join(os.path.dirname(HERE), "e2e")
sys.path.insert(0, E2E)

import cri_client  # noqa: E402
import oci_image  # noqa: E402


def load_e2e():
    """tests/e2e/containerd-e2e as a module (its file name has no .py)."""
    path = os.path.join(E2E, "containerd-e2e")
    loader = importlib.machinery.SourceFileLoader("containerd_e2e", path)
    spec = importlib.util.spec_from_loader("containerd_e2e", loader)
    module = importlib.util.module_from_spec(spec)
    loader.exec_module(module)
    return module


e2e = load_e2e()

# What RunPodSandbox reports here when the shim cannot start.
SHIM_ERROR = "failed to start shim: start failed: io.containerd.runc.v2: invalid argument"
LOOPBACK = ("loopback", "lo")
CHAIN = [("bridge", "eth0"), ("host-local", "eth0"), ("portmap", "eth0")]
# DEL runs the chain backwards; bridge calls host-local from inside its DEL.
CHAIN_DEL = [("portmap", "eth0"), ("bridge", "eth0"), ("host-local", "eth0")]
ALL_CALLS = [LOOPBACK, *CHAIN]
WRAPPER = """#!/bin/sh
echo "$CNI_COMMAND {name} $CNI_IFNAME" >> {log}
exec {real} "$@"
"""


class GvisorHarness(e2e.Harness):
    """The e2e harness with a layer-less image and logging plugin wrappers."""

    def _build_image(self):
        tar, digest = oci_image.build_image_tar(None, e2e.IMAGE_NAME)
        self.image_tar = self.path("build", "pause-image.tar")
        with open(self.image_tar, "wb") as f:
            f.write(tar)
        e2e.log(f"built image {e2e.IMAGE_NAME} with no layer (manifest {digest[:19]}...)")

    @property
    def call_log(self):
        return self.path("cni-calls.log")

    def wrap_plugins(self):
        real_dir = self.path("cni-real")
        os.makedirs(real_dir)
        for name in self.installed_plugins:
            wrapper = self.path("cni-bin", name)
            real = os.path.join(real_dir, name)
            os.rename(wrapper, real)
            with open(wrapper, "w", encoding="utf-8") as f:
                f.write(WRAPPER.format(name=name, log=self.call_log, real=real))
            os.chmod(wrapper, 0o755)

    def calls(self):
        try:
            with open(self.call_log, encoding="utf-8") as f:
                return [tuple(line.split()) for line in f if line.strip()]
        except FileNotFoundError:
            return []

    def stop_inside(self):
        """Stop containerd; the rest of the e2e teardown is about host state,
        and everything here vanishes with the sandbox."""
        problems = []
        for what, fn in (("stopping containerd", self._stop_containerd), ("closing CRI", self._close)):
            try:
                fn()
            except Exception as err:  # noqa: BLE001
                problems.append(f"{what}: {err}")
        return problems

    def _close(self):
        if self.client is not None:
            self.client.close()


def check_run_pod(h, r):
    name = "gvisor-pod"
    poller = e2e.StorePoller(h)
    poller.start()
    try:
        sandbox_id = h.client.run_pod_sandbox(
            name,
            e2e.POD_NAMESPACE,
            str(uuid.uuid4()),
            h.path("pod-logs", name),
            cgroup_parent=h.cgroup_parent,
            timeout=h.args.run_timeout,
        )
        error = ""
    except cri_client.CriError as err:
        sandbox_id, error = None, str(err)
    finally:
        poller.stop()
    calls = h.calls()
    adds = [c[1:] for c in calls if c[0] == "ADD"]
    dels = [c[1:] for c in calls if c[0] == "DEL"]
    e2e.log("     CNI calls: " + ", ".join(" ".join(c) for c in calls))

    # go-cni sets up the loopback network and the default network at the same
    # time, so only the order inside the default network is fixed.
    r.check(
        "RunPodSandbox called ADD once on loopback (lo) and on bridge, host-local, portmap (eth0), "
        "in chain order",
        sorted(adds) == sorted(ALL_CALLS) and in_order(adds, CHAIN),
        f"calls {calls}",
    )
    ours = {ip: body for ip, body in poller.seen.items() if any(ip in n for n in h.subnets)}
    ids = {body.split("\r\n")[0] for body in ours.values()}
    r.check(
        f"host-local reserved {', '.join(map(str, ours)) or 'nothing'} from "
        f"{', '.join(map(str, h.subnets))} for the sandbox, body '<sandbox id>\\r\\neth0'",
        len(ours) == 1
        and all(b.endswith("\r\neth0") and len(b.split("\r\n")[0]) == 64 for b in ours.values()),
        f"seen {poller.seen}",
    )
    if sandbox_id:
        # A runsc that can start the shim: a different world; say so loudly.
        r.check(
            "RunPodSandbox fails in this runsc because the shim cannot start",
            False,
            f"it succeeded (sandbox {sandbox_id}): update docs/k3s.md and this test",
        )
        return sandbox_id
    e2e.log(f"     containerd said: {error[:600]}")
    r.check(
        f"RunPodSandbox failed because the runc shim could not start ({SHIM_ERROR!r})",
        SHIM_ERROR in error,
        error,
    )
    errno = subreaper_errno()
    r.check(
        f"what the shim trips on, prctl(PR_SET_CHILD_SUBREAPER) in a non-init process, "
        f"fails here: {errno}",
        errno == "EINVAL",
    )
    last_add = max(i for i, c in enumerate(calls) if c[0] == "ADD")
    first_del = min((i for i, c in enumerate(calls) if c[0] == "DEL"), default=-1)
    r.check(
        "then containerd's cleanup called DEL once on every plugin, chain in reverse order",
        sorted(dels) == sorted(ALL_CALLS) and first_del > last_add and in_order(dels, CHAIN_DEL),
        f"calls {calls}",
    )
    left = h.reservations()
    r.check("the host-local store is empty afterwards", not left, f"left {left}")
    return ids.pop() if len(ids) == 1 else None


def in_order(calls, expected):
    """Whether the calls of `expected` appear in that relative order."""
    return [c for c in calls if c in expected] == expected


def subreaper_errno():
    """The errno of prctl(PR_SET_CHILD_SUBREAPER, 1) in a child process (here,
    as PID 1 of the sandbox, it succeeds), or "ok"."""
    code = (
        "import ctypes, errno\n"
        "libc = ctypes.CDLL(None, use_errno=True)\n"
        "rc = libc.prctl(36, 1, 0, 0, 0)\n"
        "print('ok' if rc == 0 else errno.errorcode.get(ctypes.get_errno(), '?'))\n"
    )
    try:
        proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired) as err:
        return str(err)
    return proc.stdout.strip() or proc.stderr.strip()


def probe_stop_remove(h, r, sandbox_id):
    """Stop/Remove of the failed sandbox: a known limit of this runsc."""
    listed = [s.id for s in h.client.list_pod_sandbox()]
    e2e.log(f"     ListPodSandbox after the failure: {len(listed)} sandbox(es)")
    before = len(h.calls())
    outcome = []
    for op in ("stop_pod_sandbox", "remove_pod_sandbox"):
        for sid in listed or ([sandbox_id] if sandbox_id else []):
            try:
                getattr(h.client, op)(sid, timeout=30)
                outcome.append(f"{op}: ok")
            except cri_client.CriError as err:
                outcome.append(f"{op}: {err}")
    text = "; ".join(outcome) or "no sandbox left to stop"
    if any("function not implemented" in o for o in outcome):
        e2e.log(f"LIMIT StopPodSandbox/RemovePodSandbox fail in this runsc (statfs of the netns: ENOSYS): {text[:500]}")
    else:
        e2e.log(f"NEWS  Stop/Remove did not fail with ENOSYS here: {text[:500]}")
    later = h.calls()[before:]
    dels_after = [c for c in later if c[0] == "DEL"]
    if dels_after:
        e2e.log("     Stop/Remove called: " + ", ".join(" ".join(c) for c in later))
    left = h.reservations()
    r.check("after Stop/Remove the store is still empty", not left, f"left {left}")


def main(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    p.add_argument("plugin_dir", help="directory of the plugin binaries under test")
    p.add_argument("--conflist", default=os.path.join(e2e.REPO, "cni-conf", "10-sandbox-cni.conflist"))
    p.add_argument("--timeout", type=int, default=60, help="overall time limit in seconds")
    args = p.parse_args(argv)
    e2e_args = e2e.parse_args(
        [
            args.plugin_dir,
            "--conflist",
            args.conflist,
            "--pods",
            "1",
            "--start-timeout",
            "30",
            "--run-timeout",
            "30",
            "--call-timeout",
            "15",
            "--allow-host-networking",
        ]
    )
    e2e_args.conflist = e2e_args.conflists[0]
    results = e2e.Results()
    h = None
    started = time.monotonic()
    try:
        h = GvisorHarness(e2e_args, results)
        h.prepare()
        h.wrap_plugins()
        h.start_containerd()
        h.import_image()
        if e2e.check_network_ready(h, results):
            sandbox_id = check_run_pod(h, results)
            probe_stop_remove(h, results, sandbox_id)
    except (e2e.HarnessError, cri_client.CriError) as err:
        results.check("the containerd path ran to the end", False, str(err))
        if h is not None and h.tmp:
            e2e.log(h.log_tail(15, "level=error"))
    except Exception:  # noqa: BLE001
        import traceback

        results.check("the containerd path ran to the end", False, traceback.format_exc())
    finally:
        if h is not None:
            problems = h.stop_inside()
            results.check("containerd stopped", not problems, "; ".join(problems))
            if h.tmp:
                shutil.rmtree(h.tmp, ignore_errors=True)
    e2e.log(f"     containerd path took {time.monotonic() - started:.1f} s")
    print(f"RESULT {results.passed} {results.failed}", flush=True)
    return 1 if results.failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
