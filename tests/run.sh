#!/usr/bin/env bash
# The one test command: installs what the tests need, then runs every check of the suite.
#
#   tests/run.sh            everything (needs root for apt and the containerd end-to-end test)
#   tests/run.sh --no-deps  skip installing dependencies (they are already there)
#
# Steps: dependencies, cargo fmt --check, clippy -D warnings, shellcheck, cargo test --workspace
# (unit, golden, protocol, install.sh, host-local, bridge/chain, libcni and go-cni interop, bad inputs,
# k3s-sandbox), static release build with the 600 KiB size budget, ./install.sh from source into
# temporary directories, containerd end to end, fuzz smoke, the suite inside gVisor (tests/gvisor/run.sh).
# Every step runs even when an earlier one failed; the summary lists each; the exit status is non-zero
# when any step failed. A step that cannot run here (exit status 77) is listed as SKIP and is not
# counted as passed; the gVisor step only skips when SANDBOX_CNI_GVISOR=optional (for machines where
# runsc cannot start, such as containers); otherwise runsc not starting is a failure.
set -uo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo" || exit 1
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"
install_deps=1
for arg in "$@"; do
    case $arg in
        --no-deps) install_deps=0 ;;
        -h|--help) awk 'NR > 1 && !/^#/ { exit } NR > 1 { sub(/^# ?/, ""); print }' "$0"; exit 0 ;;
        *) echo "tests/run.sh: unknown option $arg" >&2; exit 2 ;;
    esac
done

MUSL="$(uname -m)-unknown-linux-musl"
PLUGINS="loopback host-local bridge portmap bandwidth firewall tuning"

declare -a results=()
failed=0
skipped=0
step() {
    local name=$1; shift
    local start=$SECONDS rc=0
    echo
    echo "=== $name"
    "$@" || rc=$?
    if [ $rc = 0 ]; then
        results+=("ok    $name ($((SECONDS - start)) s)")
    elif [ $rc = 77 ]; then
        results+=("SKIP  $name ($((SECONDS - start)) s; the reason is in its output)")
        skipped=$((skipped + 1))
    else
        results+=("FAIL  $name ($((SECONDS - start)) s)")
        failed=$((failed + 1))
    fi
}

deps() {
    if [ "$(id -u)" != 0 ]; then
        echo "not root: cannot install packages; run as root or install tests/apt-packages.txt yourself" >&2
        return 1
    fi
    export DEBIAN_FRONTEND=noninteractive
    local pkgs
    pkgs=$(grep -v '^\s*\(#\|$\)' tests/apt-packages.txt | sort -u | tr '\n' ' ')
    # shellcheck disable=SC2086
    if ! dpkg -s $pkgs >/dev/null 2>&1; then
        apt-get update -qq && apt-get install -y -qq --no-install-recommends $pkgs >/dev/null || return 1
    fi
    rustup target list --installed | grep -qx "$MUSL" || rustup target add "$MUSL" || return 1
    rustup component list --installed 2>/dev/null | grep -q '^clippy' || rustup component add clippy rustfmt || return 1
    if ! cargo +nightly --version >/dev/null 2>&1 && ! rustup toolchain install nightly --profile minimal; then
        echo "the nightly toolchain is missing and cannot be installed: the fuzz smoke needs it" >&2
        return 1
    fi
    command -v cargo-fuzz >/dev/null 2>&1 || cargo install cargo-fuzz --locked || return 1
}

fmt() { cargo fmt --all --check; }
clippy() { cargo clippy --workspace --all-targets --locked -- -D warnings; }
shell_lint() {
    local files
    mapfile -t files < <(git ls-files '*.sh' install.sh .ci/run bench/size-check | sort -u)
    shellcheck "${files[@]}"
}
unit_and_integration() { cargo test --workspace --locked; }

release_size() {
    cargo build --release --locked --target "$MUSL" || return 1
    local dir="target/$MUSL/release" bad=0 p
    bench/size-check "$dir" || bad=1
    for p in $PLUGINS; do
        if readelf -l "$dir/$p" | grep -q 'program interpreter'; then
            echo "$p is dynamically linked: plugins must be static" >&2
            bad=1
        fi
    done
    return $bad
}

# The README's main command, from source, into temporary directories (build, install, self-test).
install_from_source() {
    local tmp rc
    tmp=$(mktemp -d)
    ./install.sh --bin-dir "$tmp/bin" --conf-dir "$tmp/net.d" --cli-dir "$tmp/cli"
    rc=$?
    if [ $rc = 0 ]; then
        "$tmp/cli/k3s-sandbox" --help >/dev/null || rc=1
        ./install.sh --bin-dir "$tmp/bin" --uninstall || rc=1
    fi
    rm -rf "$tmp"
    return $rc
}

containerd_e2e() { tests/e2e/containerd-e2e --all-conflists "target/$MUSL/release"; }
fuzz_smoke() { fuzz/smoke.sh; }
# The plugins, k3s-sandbox and containerd inside gVisor (runsc). Exit 77 = runsc cannot start here.
gvisor() {
    local rc=0
    tests/gvisor/run.sh || rc=$?
    if [ $rc = 77 ] && [ "${SANDBOX_CNI_GVISOR:-}" != optional ]; then
        echo "the gVisor stage could not run (see SKIPPED above); on machines that cannot run runsc set SANDBOX_CNI_GVISOR=optional" >&2
        return 1
    fi
    return $rc
}

[ "$install_deps" = 1 ] && step "dependencies" deps
step "cargo fmt --check" fmt
step "cargo clippy -D warnings" clippy
step "shellcheck" shell_lint
step "cargo test --workspace" unit_and_integration
step "static release build and size budget" release_size
step "./install.sh from source" install_from_source
step "containerd end to end" containerd_e2e
step "fuzz smoke" fuzz_smoke
step "inside gVisor (runsc)" gvisor

echo
echo "=== summary"
printf '%s\n' "${results[@]}"
passed=$(( ${#results[@]} - failed - skipped ))
echo "steps: $passed passed, $failed failed$([ "$skipped" = 0 ] || echo ", $skipped skipped")"
[ "$failed" = 0 ]
