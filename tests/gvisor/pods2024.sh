#!/usr/bin/env bash
# Pods inside gVisor 2024: containerd 2.x + crun from the throwaway test root (tests/testroot), run
# inside runsc 2024 started in that root, driven over CRI by tests/gvisor/pods2024.py.
#
#   tests/gvisor/pods2024.sh [--plugins DIR] [--k3s-sandbox FILE] [--timeout SECS]
#
# Two sandboxes, each with a time limit (--timeout, default 150 s):
#   pods-2024       our plugins: pods READY with host-local's address, containers log, exec and exit,
#                   two containers in a pod, 10 pods in a row leave nothing, kill -9 of containerd
#   reference-2024  the reference plugins of the root (1.9.1): the same pod must fail at the bridge's
#                   ADD ('"cni0" already exists but is not a bridge'), the expected contrast
#   matrix-2024     runc and crun, without and with the cgroup v1 hierarchies: where each stops
#                   (docs/k3s.md's matrix); only crun with the hierarchies runs the pod
# The cgroup set, the runtime and the containerd settings come from `k3s-sandbox pods-profile`, the
# place `k3s-sandbox up` takes them from.
#
# Plugins default to target/<arch>-unknown-linux-musl/release (static), built when missing. Needs root.
# Exit status: 0 passed; 1 something failed; 77 SKIPPED (no test root here, or runsc 2024 cannot
# start in it); the reason is printed.
set -uo pipefail

repo=$(cd "$(dirname "$0")/../.." && pwd)
musl="$(uname -m)-unknown-linux-musl"
release="$repo/target/$musl/release"
plugins=$release
cli=""
limit=150
SKIP=77

usage() { awk 'NR > 1 && !/^#/ { exit } NR > 1 { sub(/^# ?/, ""); print }' "$0"; }
while [ $# -gt 0 ]; do
    case $1 in
        --plugins) plugins=${2:?--plugins needs a directory}; shift ;;
        --k3s-sandbox) cli=${2:?--k3s-sandbox needs a file}; shift ;;
        --timeout) limit=${2:?--timeout needs seconds}; shift ;;
        -h|--help) usage; exit 0 ;;
        *) echo "tests/gvisor/pods2024.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
    esac
    shift
done
case $limit in ''|*[!0-9]*) echo "tests/gvisor/pods2024.sh: --timeout needs whole seconds" >&2; exit 2 ;; esac
[ -n "$cli" ] || cli="$release/k3s-sandbox"
plugins=$(cd "$plugins" 2>/dev/null && pwd) || { echo "no directory $plugins" >&2; exit 1; }

skipped() { echo "SKIPPED: gVisor 2024 pods: $*"; exit $SKIP; }
[ "$(id -u)" = 0 ] || skipped "needs root"

tmp=$(mktemp -d "${TMPDIR:-/tmp}/scni-pods2024.XXXXXX") || exit 1
trap 'rm -rf "$tmp"' EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

testroot="$repo/tests/testroot/testroot.sh"
"$testroot" build >/dev/null 2>"$tmp/testroot.err"
rc=$?
if [ $rc = $SKIP ]; then
    why=$(grep '^SKIPPED' "$tmp/testroot.err" | tail -n 1)
    skipped "${why#SKIPPED: }"
fi
[ $rc = 0 ] || { cat "$tmp/testroot.err" >&2; exit 1; }

if [ ! -x "$plugins/bridge" ] || [ ! -x "$cli" ]; then
    echo "building the static release binaries (cargo build --release --workspace --target $musl)"
    (cd "$repo" && cargo build --release --locked --workspace --target "$musl") || exit 1
fi
cli=$(cd "$(dirname "$cli")" && pwd)/$(basename "$cli")

# Inside the root: runsc with a state dir of its own (on the root's private /tmp), stdout and
# stderr of the sandbox in separate files under /out.
# shellcheck disable=SC2016
inside='
name=$1; shift
mkdir -p /tmp/runsc-state /tmp/work
timeout -k 5 "$LIMIT" runsc --root /tmp/runsc-state --network=none do "$@" --workdir /tmp/work \
    >"/out/$name.out" 2>"/out/$name.err" </dev/null
rc=$?
for id in $(runsc --root /tmp/runsc-state list -quiet 2>/dev/null); do
    runsc --root /tmp/runsc-state kill "$id" KILL >/dev/null 2>&1
    runsc --root /tmp/runsc-state delete -force "$id" >/dev/null 2>&1
done
exit $rc
'

start=$SECONDS
version=$("$testroot" run -- runsc --version 2>/dev/null | head -n 1)
echo "gVisor 2024 pods: $version; $("$testroot" versions | grep -E '^(containerd|crun) ' | tr '\n' ' ')"
# shellcheck source=tests/gvisor/tally.sh
. "$repo/tests/gvisor/tally.sh"
total_pass=0
total_fail=0
declare -a lines=()
run_one() {
    local name=$1 dir=$2; shift 2
    local rc=0
    echo
    echo "--- $name"
    "$testroot" run --ro-bind "$repo:/src" --ro-bind "$dir:/cni-bin" --ro-bind "$cli:/usr/local/bin/k3s-sandbox" \
        --bind "$tmp:/out" -- env LIMIT="$limit" sh -c "$inside" inside "$name" \
        /usr/bin/python3 /src/tests/gvisor/pods2024.py --plugins /cni-bin \
        --k3s-sandbox /usr/local/bin/k3s-sandbox --timeout $((limit - 10)) "$@" || rc=$?
    tally "$name" "$rc"
}

# Can runsc 2024 start in the root at all?
if ! "$testroot" run --bind "$tmp:/out" -- sh -c 'mkdir -p /tmp/s && timeout 30 runsc --root /tmp/s --network=none do /bin/true >/out/probe.out 2>/out/probe.err'; then
    skipped "runsc 2024 cannot start a sandbox in the test root: $(tail -n 3 "$tmp/probe.err" | tr '\n' ' ')"
fi

run_one pods-2024 "$plugins"
run_one reference-2024 "$("$testroot" path)/usr/lib/cni" --expect reference
run_one matrix-2024 "$plugins" --expect matrix

echo
echo "=== gVisor 2024 pods summary ($version)"
printf '%s\n' "${lines[@]}"
echo "total: $total_pass passed, $total_fail failed, in $((SECONDS - start)) s"
[ "$total_fail" = 0 ]
