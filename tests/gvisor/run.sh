#!/usr/bin/env bash
# The gVisor stage: runs the sandbox-cni plugins inside gVisor itself (`runsc --network=none do`).
#
#   tests/gvisor/run.sh [--plugins DIR] [--k3s-sandbox FILE] [--timeout SECS]
#   tests/gvisor/run.sh --reference      the same checks against the reference plugins in /usr/lib/cni
#   tests/gvisor/run.sh --no-2024        without the runsc 2024 pods (tests/gvisor/pods2024.sh)
#
# Four sandboxes, one after the other, each with a time limit (--timeout, default 60 s):
#   root         VERSION of every plugin; bridge+host-local ADD/CHECK/DEL at 0.3.1, 0.4.0, 1.0.0,
#                1.1.0; loopback ADD/DEL; GC and STATUS; k3s-sandbox selftest and doctor; 16 parallel
#                ADDs then DELs; ADDs killed with SIGKILL (tests/gvisor/cni_suite.py)
#   nobody       the same plugin checks as uid 65534 with no capabilities and a dataDir it owns
#   no-netadmin  the same as root without CAP_NET_ADMIN (setpriv)
#   containerd   containerd 1.6 inside runsc: RunPodSandbox calls our ADDs, the shim fails, containerd
#                calls our DELs, the store ends empty (tests/gvisor/containerd_path.py)
# Then, unless --reference or --no-2024, the pods of tests/gvisor/pods2024.sh: runsc 2024 with
# containerd 2.x and crun from the test root (tests/testroot), where pods run (its own two sandboxes,
# pods-2024 and the reference-2024 contrast). When that part is skipped (no test root here) and the
# rest passed, the exit status is 77 with its reason: a skip is never a pass.
# Each sandbox's stdout and stderr go to separate files (one shared file loses output under runsc);
# its check lines are printed, its stderr tail only when it failed.
#
# Plugins default to target/<arch>-unknown-linux-musl/release (static), built when missing. Needs root.
# Exit status: 0 all passed; 1 something failed; 77 SKIPPED: runsc cannot start here (not root, runsc
# missing, or a machine where gVisor cannot run, such as a container); the reason is printed. A skip is
# never a pass: tests/run.sh counts it as a failure unless SANDBOX_CNI_GVISOR=optional.
# Everything happens in runsc's memory overlay and a private runsc state dir, removed at the end.
set -uo pipefail

repo=$(cd "$(dirname "$0")/../.." && pwd)
here="$repo/tests/gvisor"
musl="$(uname -m)-unknown-linux-musl"
release="$repo/target/$musl/release"
plugins=""
cli=""
limit=60
reference=0
pods2024=1
python=/usr/bin/python3
SKIP=77

usage() { awk 'NR > 1 && !/^#/ { exit } NR > 1 { sub(/^# ?/, ""); print }' "$0"; }
while [ $# -gt 0 ]; do
    case $1 in
        --plugins) plugins=${2:?--plugins needs a directory}; shift ;;
        --k3s-sandbox) cli=${2:?--k3s-sandbox needs a file}; shift ;;
        --timeout) limit=${2:?--timeout needs seconds}; shift ;;
        --reference) reference=1 ;;
        --no-2024) pods2024=0 ;;
        -h|--help) usage; exit 0 ;;
        *) echo "tests/gvisor/run.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
    esac
    shift
done
case $limit in ''|*[!0-9]*) echo "tests/gvisor/run.sh: --timeout needs whole seconds" >&2; exit 2 ;; esac
if [ -z "$plugins" ]; then
    if [ "$reference" = 1 ]; then plugins=/usr/lib/cni; else plugins=$release; fi
fi
[ -n "$cli" ] || cli="$release/k3s-sandbox"

skipped() {
    echo "SKIPPED: gVisor stage: $*"
    exit $SKIP
}

[ "$(id -u)" = 0 ] || skipped "runsc needs root here (run as root)"
command -v runsc >/dev/null 2>&1 || skipped "runsc is not installed (apt-get install runsc)"
[ -x "$python" ] || skipped "$python is missing (the checks inside the sandbox are Python)"

tmp=$(mktemp -d "${TMPDIR:-/tmp}/scni-gvisor.XXXXXX") || exit 1
state="$tmp/runsc-state"
mkdir -p "$state"
# Sandboxes still known to our private state dir (a runsc that timed out) are killed and deleted.
cleanup() {
    local id
    for id in $(timeout 20 runsc --root "$state" list -quiet 2>/dev/null); do
        timeout 20 runsc --root "$state" kill "$id" KILL >/dev/null 2>&1
        timeout 20 runsc --root "$state" delete -force "$id" >/dev/null 2>&1
    done
    rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# One sandbox: runsc --network=none do CMD..., with stdout and stderr in separate files.
sandbox() {
    local name=$1; shift
    (cd "$repo" && timeout -k 5 "$limit" runsc --root "$state" --network=none "do" "$@" \
        >"$tmp/$name.out" 2>"$tmp/$name.err" </dev/null)
}

# Can runsc start at all? If not, say why and skip.
if ! sandbox probe /bin/true; then
    reason=$(grep -v '^\s*$' "$tmp/probe.err" | tail -n 3 | tr '\n' ' ')
    skipped "runsc cannot start a sandbox on this machine: ${reason:-exit status without a message}"
fi
version=$(runsc --version 2>/dev/null | head -n 1)

if [ ! -x "$plugins/bridge" ] || [ ! -x "$cli" ]; then
    if [ "$plugins" = "$release" ] || [ "$cli" = "$release/k3s-sandbox" ]; then
        echo "building the static release binaries (cargo build --release --workspace --target $musl)"
        (cd "$repo" && cargo build --release --locked --workspace --target "$musl") || exit 1
    fi
fi
[ -x "$plugins/bridge" ] || { echo "no plugins in $plugins (see --plugins)" >&2; exit 1; }

start=$SECONDS
echo "gVisor stage: $version, plugins from $plugins"
# shellcheck source=tests/gvisor/tally.sh
. "$repo/tests/gvisor/tally.sh"
total_pass=0
total_fail=0
declare -a lines=()
run_one() {
    local name=$1; shift
    local rc=0
    echo
    echo "--- $name"
    sandbox "$name" "$@" || rc=$?
    tally "$name" "$rc"
}

suite=("$python" "$here/cni_suite.py" --plugins "$plugins" --k3s-sandbox "$cli")
run_one root "${suite[@]}" --identity root --stress
run_one nobody "${suite[@]}" --identity nobody
run_one no-netadmin "${suite[@]}" --identity no-netadmin
run_one containerd "$python" "$here/containerd_path.py" "$plugins" --timeout "$limit"

skip2024=""
if [ "$reference" = 0 ] && [ "$pods2024" = 1 ]; then
    echo
    echo "=== runsc 2024: pods (tests/gvisor/pods2024.sh)"
    "$here/pods2024.sh" --plugins "$plugins" --k3s-sandbox "$cli" >"$tmp/pods2024.log" 2>&1
    rc=$?
    cat "$tmp/pods2024.log"
    if [ "$rc" = "$SKIP" ]; then
        skip2024=$(grep '^SKIPPED' "$tmp/pods2024.log" | tail -n 1)
        lines+=("$(printf '%-14s SKIP %s' "pods-2024" "${skip2024#SKIPPED: }")")
    else
        while read -r name pass _ fail _; do
            lines+=("$(printf '%-14s %3d passed, %3d failed' "$name" "$pass" "$fail")")
            total_pass=$((total_pass + pass))
            total_fail=$((total_fail + fail))
        done < <(sed -n '/^=== gVisor 2024 pods summary/,/^total:/p' "$tmp/pods2024.log" | grep -E '^[a-z0-9-]+ +[0-9]+ passed')
        if [ "$rc" != 0 ] && ! grep -q '^total: .* [1-9][0-9]* failed' "$tmp/pods2024.log"; then
            lines+=("pods-2024      FAIL (exit status $rc)")
            total_fail=$((total_fail + 1))
        fi
    fi
fi

echo
echo "=== gVisor stage summary ($version; plugins from $plugins)"
printf '%s\n' "${lines[@]}"
echo "total: $total_pass passed, $total_fail failed, in $((SECONDS - start)) s"
if [ "$total_fail" != 0 ]; then
    false
elif [ -n "$skip2024" ]; then
    echo "$skip2024"
    (exit $SKIP)
fi
