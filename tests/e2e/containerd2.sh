#!/usr/bin/env bash
# The containerd end-to-end run (tests/e2e/containerd-e2e) against containerd 2.x: Debian sid's
# containerd, runc and Python, in the throwaway test root of tests/testroot/testroot.sh.
#
#   tests/e2e/containerd2.sh [PLUGIN_DIR] [-- CONTAINERD-E2E-OPTION...]
#
# Options after -- replace the default --all-conflists; paths in them are seen from inside the root,
# where the repository is /tmp/sandbox-cni-e2e/src (e.g. --conflist
# /tmp/sandbox-cni-e2e/src/cni-conf/dual-stack.conflist --keep).
#
# PLUGIN_DIR holds the plugin binaries (default target/<arch>-unknown-linux-musl/release, as
# `cargo build --release --target <arch>-unknown-linux-musl` leaves them; static, so they run in the
# root). Nothing is built here: the root is built or reused (testroot.sh build), then containerd-e2e
# runs inside it with the repository and the plugins bind-mounted read-only, by default with
# --all-conflists. Everything the run creates lives in the root's private /run and /tmp (tmpfs,
# gone with its mount namespace) or is removed by containerd-e2e's teardown; the host's
# /opt/cni/bin, /etc/cni/net.d and dpkg database are not touched.
#
# Time limits: SANDBOX_CNI_E2E_TIMEOUT (default 300 s) bounds the checks inside; teardown gets
# 120 s more before everything is killed. SANDBOX_CNI_TESTROOT_TIMEOUT (default 900 s) bounds
# building the root when it is not cached.
#
# Exit status: 0 all checks passed; 1 something failed; 77 SKIPPED (the root cannot be built or
# entered here; the reason is printed, starting with "SKIPPED:"); 2 usage.
set -uo pipefail

repo=$(cd "$(dirname "$0")/../.." && pwd)
testroot="$repo/tests/testroot/testroot.sh"
SKIP=77
e2e_timeout=${SANDBOX_CNI_E2E_TIMEOUT:-300}
# Where the repository and the plugins appear inside the root: under its private /tmp (a tmpfs), so
# not even the mount points are left in the cached root.
inside=/tmp/sandbox-cni-e2e
build_timeout=${SANDBOX_CNI_TESTROOT_TIMEOUT:-900}

usage() { awk 'NR > 1 && !/^#/ { exit } NR > 1 { sub(/^# ?/, ""); print }' "$0"; }

plugin_dir="$repo/target/$(uname -m)-unknown-linux-musl/release"
case ${1:-} in
    -h|--help) usage; exit 0 ;;
    --) ;;
    -*) usage >&2; exit 2 ;;
    ?*) plugin_dir=$1; shift ;;
esac
[ "${1:-}" = -- ] && shift
extra=("$@")
[ ${#extra[@]} -gt 0 ] || extra=(--all-conflists)
case $e2e_timeout$build_timeout in *[!0-9]*) echo "containerd2: the timeouts must be whole seconds" >&2; exit 2 ;; esac

if [ ! -x "$plugin_dir/host-local" ]; then
    echo "containerd2: no plugins in $plugin_dir: build them first (cargo build --release --target $(uname -m)-unknown-linux-musl) or pass PLUGIN_DIR" >&2
    exit 1
fi
plugin_dir=$(cd "$plugin_dir" && pwd)

# Runs CMD under `timeout` in the background, so that SIGTERM/SIGINT to this script reach it at once.
# timeout runs in a process group of its own and passes a signal (its own, at the limit) on to the
# whole group, where containerd-e2e tears down and exits. timeout itself returns as soon as its
# direct child (testroot.sh) is gone, so wait for the group to empty too: 150 s, then SIGKILL.
child=
interrupted=
limited() {
    local rc group
    timeout --kill-after=30 "$@" &
    child=$!
    group=$child
    while :; do
        wait "$child"
        rc=$?
        kill -0 "$child" 2>/dev/null || break
    done
    child=
    local waited=0
    while pgrep -g "$group" >/dev/null; do
        if [ $waited -ge 1500 ]; then
            echo "containerd2: processes of the run outlived their teardown limit; killing them" >&2
            kill -KILL -- "-$group" 2>/dev/null
            break
        fi
        sleep 0.1
        waited=$((waited + 1))
    done
    return $rc
}
# shellcheck disable=SC2317 # invoked by the trap
on_signal() {
    interrupted=1
    if [ -n "$child" ]; then kill -TERM "$child" 2>/dev/null; fi
}
trap on_signal TERM INT

start=$SECONDS
limited "$build_timeout" "$testroot" build >/dev/null
rc=$?
[ -z "$interrupted" ] || { echo "containerd2: interrupted" >&2; exit 1; }
case $rc in
    0) ;;
    "$SKIP") exit $SKIP ;;
    124|137) echo "containerd2: building the test root took longer than ${build_timeout}s" >&2; exit 1 ;;
    *) echo "containerd2: building the test root failed (exit $rc)" >&2; exit 1 ;;
esac
echo "test root ready in $((SECONDS - start)) s: $(timeout 30 "$testroot" versions | grep -E '^(containerd|runc) ' | tr '\n' ' ')"

# containerd-e2e ends its own run at --timeout and then tears down (also on SIGTERM); the outer
# limit only catches a teardown that hangs. The mounts vanish with the root's mount namespace.
limited $((e2e_timeout + 120)) "$testroot" run \
    --ro-bind "$repo:$inside/src" --ro-bind "$plugin_dir:$inside/plugins" -- \
    env PYTHONDONTWRITEBYTECODE=1 \
    "$inside/src/tests/e2e/containerd-e2e" --timeout "$e2e_timeout" "${extra[@]}" "$inside/plugins"
rc=$?
[ -z "$interrupted" ] || { echo "containerd2: interrupted" >&2; rc=1; }
case $rc in
    0|1|"$SKIP") ;;
    124|137) echo "containerd2: the run outlived its ${e2e_timeout}s limit plus 120 s for teardown and was killed" >&2; rc=1 ;;
    *) echo "containerd2: the run failed (exit $rc)" >&2; rc=1 ;;
esac
echo "containerd 2.x end-to-end run: $((SECONDS - start)) s, exit $rc"
exit $rc
