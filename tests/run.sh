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
# Release steps: aarch64 cross build (size budget), aarch64 under qemu-aarch64-static (VERSION, goldens,
# parallel host-local), ./install.sh --package (tarballs and .deb, built twice and compared), install
# from the tarball with no cargo on PATH, the .deb through dpkg -i / -r / -P.
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
# The project's one plugin list (comments and blank lines skipped).
PLUGINS=$(awk '!/^[[:space:]]*(#|$)/ { printf "%s%s", sep, $1; sep = " " }' plugins/list.txt)

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
AARCH64=aarch64-unknown-linux-musl
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

# The .deb on this machine: dpkg -i next to Debian's containernetworking-plugins (installed by the
# dependencies step), files where they belong, no live conflist; dpkg -r then dpkg -P leave nothing.
deb_install_remove() {
    local deb rc=0 before after p
    [ "$(id -u)" = 0 ] || { echo "not root: cannot test the .deb with dpkg -i" >&2; return 1; }
    deb=$(ls dist/sandbox-cni_*_amd64.deb) || return 1
    local listing
    listing=$(dpkg-deb --contents dist/sandbox-cni_*_arm64.deb) || return 1
    grep -q ' ./opt/cni/bin/host-local$' <<<"$listing" || { echo "the arm64 .deb has no host-local" >&2; rc=1; }
    state() { dpkg-query -W -f='${db:Status-Status}' sandbox-cni 2>/dev/null; }
    case $(state) in ''|not-installed) ;; *) echo "sandbox-cni is already installed as a package: not touching it" >&2; return 1 ;; esac
    snapshot() { find /opt/cni /etc/cni /usr/bin/k3s-sandbox /usr/share/doc/sandbox-cni 2>/dev/null | LC_ALL=C sort; }
    before=$(snapshot)
    # A plugin no package owns (put there by hand or by install.sh) is not overwritten.
    if [ ! -e /opt/cni/bin/bridge ]; then
        local made=/opt/cni
        [ -d /opt/cni ] && made=/opt/cni/bin
        [ -d /opt/cni/bin ] && made=
        mkdir -p /opt/cni/bin && printf '#!/bin/sh\n# not ours\n' > /opt/cni/bin/bridge
        if dpkg -i "$deb"; then echo "dpkg -i overwrote a plugin no package owns" >&2; rc=1; fi
        grep -q 'not ours' /opt/cni/bin/bridge || rc=1
        case $(state) in ''|not-installed) ;; *) echo "a refused install left the package $(state)" >&2; rc=1 ;; esac
        rm -f /opt/cni/bin/bridge
        [ -z "$made" ] || rm -r "$made"
    fi
    dpkg -i "$deb" || return 1
    for p in $PLUGINS; do [ -x "/opt/cni/bin/$p" ] || { echo "/opt/cni/bin/$p missing" >&2; rc=1; }; done
    [ -x /usr/bin/k3s-sandbox ] && /usr/bin/k3s-sandbox --help >/dev/null || rc=1
    [ -f /etc/cni/net.d/10-sandbox-cni.conflist.example ] || rc=1
    [ ! -e /etc/cni/net.d/10-sandbox-cni.conflist ] || { echo "the package wrote a live conflist" >&2; rc=1; }
    if ! dpkg -s containernetworking-plugins >/dev/null 2>&1 || [ ! -x /usr/lib/cni/host-local ]; then
        echo "containernetworking-plugins is not installed next to the package" >&2; rc=1
    fi
    CNI_COMMAND=VERSION /opt/cni/bin/host-local </dev/null | grep -q supportedVersions || rc=1
    dpkg -r sandbox-cni || rc=1
    [ "$(dpkg-query -W -f='${Status}' sandbox-cni 2>/dev/null)" = "deinstall ok config-files" ] || { echo "after dpkg -r: not config-files" >&2; rc=1; }
    dpkg -P sandbox-cni || rc=1
    after=$(snapshot)
    if [ "$before" != "$after" ]; then echo "dpkg -r/-P left files behind:" >&2; diff <(echo "$before") <(echo "$after") >&2; rc=1; fi
    case $(state) in ''|not-installed) ;; *) echo "sandbox-cni is still $(state)" >&2; rc=1 ;; esac
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
step "aarch64 cross build and size budget" aarch64_build
step "aarch64 under qemu: VERSION, goldens, parallel host-local" aarch64_qemu
step "release tarballs and .deb, twice, byte-identical; install without cargo" release_packages
step ".deb: dpkg -i, dpkg -r, dpkg -P" deb_install_remove
step "containerd end to end" containerd_e2e
step "fuzz smoke" fuzz_smoke
step "inside gVisor (runsc)" gvisor

echo
echo "=== summary"
printf '%s\n' "${results[@]}"
passed=$(( ${#results[@]} - failed - skipped ))
echo "steps: $passed passed, $failed failed$([ "$skipped" = 0 ] || echo ", $skipped skipped")"
[ "$failed" = 0 ]
