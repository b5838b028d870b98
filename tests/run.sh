#!/usr/bin/env bash
# The one test command: installs what the tests need, then runs every check of the suite.
#
#   tests/run.sh            everything (needs root: the steps run in throwaway Debian roots)
#   tests/run.sh --no-deps  skip installing the Rust toolchains and cargo-fuzz (they are already there)
#   tests/run.sh --in-root CMD [ARG...]
#                           run one command in this checkout the way the steps run (in the root of the
#                           host's release, built if needed), e.g. `tests/run.sh --in-root cargo test`
#
# The host is only read. The Debian packages the tests need (tests/apt-packages.txt: the old clients,
# containerd 1.6, libcni 1.1, runsc 2022, the 1.1.1 reference, and tools such as shellcheck and qemu)
# go into a cached root of the host's own Debian release, built with debootstrap
# (tests/testroot/testroot.sh --release host), and every step below runs inside a throwaway overlay of
# it, with this checkout, the Rust toolchains and the cache bound in at their own paths. Before the
# first step the contents of /opt/cni, /etc/cni, /usr/local/bin/{k3s-sandbox,cnitool} and
# /var/lib/dpkg/status are recorded; the last step fails if any of them changed.
#
# Steps on the host: the Rust toolchains (musl and aarch64 targets, clippy, nightly, cargo-fuzz; into
# ~/.rustup and ~/.cargo), the root of the host's release. Steps in it: cargo fmt --check, clippy -D
# warnings, shellcheck, cargo test --workspace (unit, golden, protocol, install.sh, host-local,
# bridge/chain, libcni and go-cni interop, bad inputs, k3s-sandbox), static release build with the
# 600 KiB size budget, ./install.sh from source into temporary directories, containerd 1.6 end to
# end, fuzz smoke, the suite inside gVisor (tests/gvisor/run.sh: runsc 2022, then pods in runsc 2024).
# Release steps: aarch64 cross build (size budget), aarch64 under qemu-aarch64-static (VERSION, goldens,
# parallel host-local), ./install.sh --package (tarballs and .deb, built twice and compared), install
# from the tarball with no cargo on PATH.
# Today's clients (tests/testroot: a cached, throwaway Debian sid root): build it and log its versions;
# the interop suite with drivers built there against libcni 1.3 and go-cni 1.1.13, and cnitool 1.3's
# add/check/status/gc/del over every conflist (tests/interop/today.sh); the .deb through dpkg -i / -r
# / -P inside a throwaway overlay of that root (tests/testroot/deb.sh); containerd 2.1.9 end to end
# (tests/e2e/containerd2.sh).
# Every step runs even when an earlier one failed; the summary lists each; the exit status is non-zero
# when any step failed. A step that cannot run here (exit status 77) is listed as SKIP and is not
# counted as passed; the gVisor step only skips when SANDBOX_CNI_GVISOR=optional (for machines where
# runsc cannot start, such as containers); otherwise runsc not starting is a failure. Likewise the
# test-root steps only skip when SANDBOX_CNI_TESTROOT_STAGES=optional (no debootstrap, no route to the
# Debian mirror, no mount namespaces or overlayfs); otherwise the root not being there is a failure.
# The roots stay cached between runs (~/.cache/sandbox-cni); `tests/testroot/testroot.sh clean` and
# `tests/testroot/testroot.sh --release host clean` remove them.
set -uo pipefail
# The roots' cache and the Rust toolchains are found from HOME; a bare environment may lack it.
if [ -z "${HOME:-}" ]; then HOME=$(getent passwd "$(id -u)" | cut -d: -f6); export HOME; fi

repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo" || exit 1
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"
install_deps=1
inside=0
declare -a in_root=()
while [ $# -gt 0 ]; do
    case $1 in
        --no-deps) install_deps=0 ;;
        --inside) inside=1 ;;  # internal: run the suite's steps (we are in the root of the host's release)
        --in-root)
            shift
            in_root=("$@")
            [ ${#in_root[@]} -gt 0 ] || { echo "tests/run.sh: --in-root needs a command" >&2; exit 2; }
            break ;;
        -h|--help) awk 'NR > 1 && !/^#/ { exit } NR > 1 { sub(/^# ?/, ""); print }' "$0"; exit 0 ;;
        *) echo "tests/run.sh: unknown option $1" >&2; exit 2 ;;
    esac
    shift
done

MUSL="$(uname -m)-unknown-linux-musl"
# The project's one plugin list.
# shellcheck source=plugins/list.sh
. plugins/list.sh
PLUGINS=$(plugin_list plugins/list.txt) || exit 2

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

# The Rust side of the dependencies, on the host (~/.rustup, ~/.cargo); Debian packages go into the
# root of the host's release instead (hostroot below).
deps() {
    rustup target list --installed | grep -qx "$MUSL" || rustup target add "$MUSL" || return 1
    rustup target list --installed | grep -qx "$AARCH64" || rustup target add "$AARCH64" || return 1
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
unit_and_integration() { cargo test --workspace --locked --no-fail-fast; }

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

AARCH64=aarch64-unknown-linux-musl
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

# aarch64: cross-built (fat LTO, linked by gcc-aarch64-linux-gnu), static, within the size budget.
aarch64_build() {
    rustup target list --installed | grep -qx "$AARCH64" || rustup target add "$AARCH64" || return 1
    CARGO_TARGET_AARCH64_UNKNOWN_LINUX_MUSL_LINKER=${CARGO_TARGET_AARCH64_UNKNOWN_LINUX_MUSL_LINKER:-aarch64-linux-gnu-gcc} \
        cargo build --release --locked --workspace --target "$AARCH64" || return 1
    local dir="target/$AARCH64/release" bad=0 p
    bench/size-check "$dir" || bad=1
    for p in $PLUGINS k3s-sandbox; do
        if ! readelf -h "$dir/$p" | grep -q 'Machine:.*AArch64'; then echo "$p is not an aarch64 binary" >&2; bad=1; fi
        if readelf -l "$dir/$p" | grep -q 'program interpreter'; then echo "$p is dynamically linked" >&2; bad=1; fi
    done
    return $bad
}

# The aarch64 binaries under qemu-aarch64-static: VERSION of every plugin, the golden results of
# bridge, host-local and loopback at every version (the same files x86_64 is checked against), and
# host-local's 16-way parallel ADDs (no duplicate addresses).
aarch64_qemu() {
    local dir="target/$AARCH64/release" p out bad=0
    for p in $PLUGINS; do
        out=$(CNI_COMMAND=VERSION qemu-aarch64-static "$dir/$p" </dev/null) || { echo "$p VERSION failed" >&2; bad=1; continue; }
        case $out in *'"supportedVersions"'*'"1.1.0"'*) echo "$p: $out" ;; *) echo "$p VERSION answered: $out" >&2; bad=1 ;; esac
    done
    # --workspace: the same feature set as the `cargo test --workspace` step, so nothing is rebuilt.
    export SANDBOX_CNI_BIN_DIR="$dir" SANDBOX_CNI_RUNNER=qemu-aarch64-static
    cargo test --workspace --locked --test it loopback::golden_results_for_every_command_and_version || bad=1
    cargo test --workspace --locked --test it bridge::add_results_match_golden_files_for_every_version || bad=1
    cargo test --workspace --locked --test it host_local::golden_add_results_for_every_version || bad=1
    cargo test --workspace --locked --test it host_local_stress::sixteen_processes_in_parallel_get_unique_addresses || bad=1
    unset SANDBOX_CNI_BIN_DIR SANDBOX_CNI_RUNNER
    return $bad
}

# Release artefacts: ./install.sh --package for both architectures (reusing the release builds of the
# steps before), twice, byte-identical; then the x86_64 tarball's own install.sh with no cargo or
# rustc on PATH, its uninstall, and the aarch64 tarball refused on this machine.
release_packages() {
    local tmp rc=0 version stripped rel start end
    tmp=$(mktemp -d)
    rm -f dist/sandbox-cni-*.tar.gz dist/sandbox-cni_*.deb dist/SHA256SUMS
    ./install.sh --package --target all || { rm -rf "$tmp"; return 1; }
    ./install.sh --package --target all --dist-dir "$tmp/again" >/dev/null || { rm -rf "$tmp"; return 1; }
    if cmp dist/SHA256SUMS "$tmp/again/SHA256SUMS"; then
        echo "reproducible: two builds gave the same bytes:"; cat dist/SHA256SUMS
    else
        diff dist/SHA256SUMS "$tmp/again/SHA256SUMS"; rc=1
    fi
    (cd dist && sha256sum -c SHA256SUMS) || rc=1
    version=$(awk '/^\[/ { sec = $0 } sec == "[workspace.package]" && $1 == "version" { gsub(/"/, "", $3); print $3; exit }' Cargo.toml)
    rel="sandbox-cni-$version-x86_64-linux-musl"
    stripped=$(tr ':' '\n' <<<"$PATH" | while read -r d; do [ -e "$d/cargo" ] || [ -e "$d/rustc" ] || printf '%s:' "$d"; done)
    stripped=${stripped%:}
    if PATH=$stripped command -v cargo >/dev/null || PATH=$stripped command -v rustc >/dev/null; then
        echo "cannot hide cargo/rustc from PATH" >&2; rc=1
    fi
    mkdir "$tmp/copy" && cp "dist/$rel.tar.gz" "$tmp/copy/"
    start=$(date +%s%N)
    (cd "$tmp/copy" && env PATH="$stripped" sh -c "tar -xzf $rel.tar.gz && cd $rel && sha256sum -c --quiet MANIFEST.sha256 \
        && ./install.sh --bin-dir $tmp/bin --conf-dir $tmp/net.d --cli-dir $tmp/cli") || rc=1
    end=$(date +%s%N)
    echo "install from the tarball without cargo, self-test included: $(( (end - start) / 1000000 )) ms"
    "$tmp/cli/k3s-sandbox" --help >/dev/null || rc=1
    env PATH="$stripped" "$tmp/copy/$rel/install.sh" --bin-dir "$tmp/bin" --uninstall || rc=1
    if [ -n "$(find "$tmp/bin" "$tmp/net.d" "$tmp/cli" -type f)" ]; then echo "uninstall left files behind" >&2; rc=1; fi
    if out=$(./install.sh --from "dist/sandbox-cni-$version-aarch64-linux-musl.tar.gz" --bin-dir "$tmp/bin2" 2>&1); then
        echo "the aarch64 tarball was installed on $(uname -m)" >&2; rc=1
    else
        case $out in *"for aarch64"*"this machine is x86_64"*) echo "aarch64 tarball refused: $out" ;; *) echo "unexpected: $out" >&2; rc=1 ;; esac
        [ ! -e "$tmp/bin2" ] || { echo "a refused install changed $tmp/bin2" >&2; rc=1; }
    fi
    rm -rf "$tmp"
    return $rc
}

# The host's state that no test may change: what install.sh and dpkg install, and the dpkg database.
host_state() {
    local p
    for p in /opt/cni /etc/cni /usr/local/bin/k3s-sandbox /usr/local/bin/cnitool /var/lib/dpkg/status; do
        if [ ! -e "$p" ] && [ ! -L "$p" ]; then echo "absent $p"; continue; fi
        find "$p" -printf '%y %m %u:%g %p -> %l\n' | LC_ALL=C sort
        find "$p" -type f -print0 | LC_ALL=C sort -z | xargs -0 -r sha256sum
    done
}
host_unchanged() {
    local now
    now=$(host_state)
    if [ "$now" != "$host_before" ]; then
        echo "the test command changed the host (- before, + after):" >&2
        diff <(echo "$host_before") <(echo "$now") >&2
        return 1
    fi
    echo "unchanged: /opt/cni, /etc/cni, /usr/local/bin/{k3s-sandbox,cnitool}, /var/lib/dpkg/status ($(wc -l <<<"$now") entries)"
}

# A step in the test root: exit 77 (the root cannot be built or entered here) is a failure unless
# SANDBOX_CNI_TESTROOT_STAGES=optional.
in_testroot() {
    local rc=0
    "$@" || rc=$?
    if [ $rc = 77 ] && [ "${SANDBOX_CNI_TESTROOT_STAGES:-}" != optional ]; then
        echo "the test root is not available (see SKIPPED above); where it cannot be built, set SANDBOX_CNI_TESTROOT_STAGES=optional" >&2
        return 1
    fi
    return $rc
}
testroot_build() {
    local start=$SECONDS
    tests/testroot/testroot.sh build || return $?
    echo "test root ready in $((SECONDS - start)) s; its clients:"
    tests/testroot/testroot.sh versions
}

# The .deb inside a throwaway overlay of the test root (never on this machine): next to
# containernetworking-plugins 1.9.1 and a plugin no package owns; see tests/testroot/deb.sh.
deb_in_root() {
    local dist
    dist=$(mktemp -d) || return 1
    cp dist/sandbox-cni_*_amd64.deb dist/sandbox-cni_*_arm64.deb "$dist/" || { rm -rf "$dist"; return 1; }
    local rc=0
    # shellcheck disable=SC2086
    tests/testroot/testroot.sh run --scratch --ro-bind "$dist:/dist" --ro-bind "$repo/tests/testroot/deb.sh:/deb.sh" \
        -- bash /deb.sh $PLUGINS || rc=$?
    rm -rf "$dist"
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

# The root of the host's release, with tests/apt-packages.txt.
hostroot_build() {
    local start=$SECONDS
    tests/testroot/testroot.sh --release host build || return $?
    echo "ready in $((SECONDS - start)) s; its packages:"
    tests/testroot/testroot.sh --release host versions | tr '\n' ' '
    echo
}

# A command in this checkout, inside a throwaway overlay of the host-release root: this checkout,
# the Rust toolchains and the roots' cache are bound in at their own paths.
in_hostroot() {
    local cargo_home=${CARGO_HOME:-$HOME/.cargo} rustup_home=${RUSTUP_HOME:-$HOME/.rustup}
    local cache=${XDG_CACHE_HOME:-$HOME/.cache}/sandbox-cni
    local -a binds=(--bind "$repo:$repo" --bind "$cargo_home:$cargo_home" --bind "$rustup_home:$rustup_home"
        --bind "$cache:$cache")
    # The host's CA certificates (a proxy's own CA, if any), for cargo's downloads.
    [ ! -d /etc/ssl/certs ] || binds+=(--ro-bind /etc/ssl/certs:/etc/ssl/certs)
    # A git worktree's metadata lives outside it: bind that too, for git ls-files.
    local common
    common=$(cd "$repo" && git rev-parse --path-format=absolute --git-common-dir 2>/dev/null) || common=
    case $common in ''|"$repo"/*) ;; *) binds+=(--bind "$common:$common") ;; esac
    if [ -n "${CARGO_TARGET_DIR:-}" ]; then mkdir -p "$CARGO_TARGET_DIR" && binds+=(--bind "$CARGO_TARGET_DIR:$CARGO_TARGET_DIR"); fi
    local -a envs=("HOME=$HOME" "CARGO_HOME=$cargo_home" "RUSTUP_HOME=$rustup_home"
        "PATH=$cargo_home/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
        "SANDBOX_CNI_RUN_RESULTS=$results_file")
    local v
    while IFS= read -r v; do envs+=("$v"); done < <(env | grep -E '^(SANDBOX_CNI_[A-Z0-9_]*|CARGO_[A-Z0-9_]*|RUSTUP_TOOLCHAIN|RUSTFLAGS|XDG_CACHE_HOME|CI|TERM|[A-Za-z_]*_proxy|[A-Z_]*_PROXY)=' |
        grep -vE '^(CARGO_HOME|SANDBOX_CNI_RUN_RESULTS)=')
    # shellcheck disable=SC2016
    tests/testroot/testroot.sh --release host run --scratch "${binds[@]}" -- \
        env "${envs[@]}" bash -c 'cd "$1" && shift && exec "$@"' in-root "$repo" "$@"
}

summary() {
    echo
    echo "=== summary"
    printf '%s\n' "${results[@]}"
    passed=$(( ${#results[@]} - failed - skipped ))
    echo "steps: $passed passed, $failed failed$([ "$skipped" = 0 ] || echo ", $skipped skipped")"
    [ "$failed" = 0 ]
}

if [ ${#in_root[@]} -gt 0 ]; then
    [ "$(id -u)" = 0 ] || { echo "tests/run.sh needs root: its steps run in throwaway Debian roots" >&2; exit 1; }
    tests/testroot/testroot.sh --release host build >/dev/null || exit
    results_file=/dev/null
    in_hostroot "${in_root[@]}"
    exit
fi

if [ "$inside" = 0 ]; then
    [ "$(id -u)" = 0 ] || { echo "tests/run.sh needs root: its steps run in throwaway Debian roots" >&2; exit 1; }
    host_before=$(host_state)
    [ "$install_deps" = 1 ] && step "dependencies: Rust toolchains and cargo-fuzz (on the host)" deps
    step "test root of the host's release (tests/apt-packages.txt): build or reuse" in_testroot hostroot_build
    mkdir -p target || exit 1
    results_file="$repo/target/.run-steps"
    : >"$results_file"
    rc=0
    # The suite's steps; their results come back through a file for the summary. Where the root
    # cannot be had and SANDBOX_CNI_TESTROOT_STAGES=optional allowed that (its step is SKIP), they
    # run on the host itself, which then needs tests/apt-packages.txt installed.
    if [[ ${results[-1]} == SKIP* ]]; then
        echo "no root of the host's release: the steps run on this machine (install tests/apt-packages.txt)"
        SANDBOX_CNI_RUN_RESULTS=$results_file bash tests/run.sh --inside || rc=$?
    else
        in_hostroot bash tests/run.sh --inside || rc=$?
    fi
    while IFS= read -r line; do
        results+=("$line")
        case $line in FAIL*) failed=$((failed + 1)) ;; SKIP*) skipped=$((skipped + 1)) ;; esac
    done <"$results_file"
    if [ "$rc" != 0 ] && ! grep -q '^FAIL' "$results_file"; then
        results+=("FAIL  the steps in the root of the host's release (exit $rc)")
        failed=$((failed + 1))
    fi
    rm -f "$results_file"
    step "host state unchanged (/opt/cni, /etc/cni, dpkg status)" host_unchanged
    summary
    exit
fi

step "cargo fmt --check" fmt
step "cargo clippy -D warnings" clippy
step "shellcheck" shell_lint
step "cargo test --workspace" unit_and_integration
step "static release build and size budget" release_size
step "./install.sh from source" install_from_source
step "aarch64 cross build and size budget" aarch64_build
step "aarch64 under qemu: VERSION, goldens, parallel host-local" aarch64_qemu
step "release tarballs and .deb, twice, byte-identical; install without cargo" release_packages
step "test root (Debian sid): build or reuse, client versions" in_testroot testroot_build
step "test root: libcni 1.3 and go-cni 1.1.13 interop, cnitool 1.3 add/check/status/gc/del" in_testroot tests/interop/today.sh
step "test root: .deb through dpkg -i, -r, -P next to the 1.9.1 reference" in_testroot deb_in_root
step "containerd end to end" containerd_e2e
step "test root: containerd 2.1.9 end to end (CRI Status runs STATUS; kill -9 and restart)" in_testroot tests/e2e/containerd2.sh
step "fuzz smoke" fuzz_smoke
step "inside gVisor (runsc)" gvisor

# Inside: the results go back to the outer run, which prints the summary.
printf '%s\n' "${results[@]}" >"$SANDBOX_CNI_RUN_RESULTS"
[ "$failed" = 0 ]
