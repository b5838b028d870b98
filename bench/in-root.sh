#!/usr/bin/env bash
# bench/run.py inside the test root (tests/testroot), with two reference columns measured in the same
# rounds: Debian 12's containernetworking-plugins (this machine's /usr/lib/cni, 1.1.1) and sid's (the
# root's /usr/lib/cni, 1.9.1). The 1.9.1 plugins are linked against the root's C library, so the whole
# benchmark runs in there; the 1.1.1 ones run on the root's newer glibc, which keeps its old ABI.
#
#   bench/in-root.sh [--quick] [other bench/run.py options]
#
# Needs root, this machine's containernetworking-plugins, and our release build
# (cargo build --release --target x86_64-unknown-linux-musl). Writes bench/out/ like bench/run.py, and
# draws the plot on this machine afterwards (the root has no matplotlib). The data directories live in
# a temporary directory under this machine's /var/tmp, bound into the root: the same file system as a
# run of bench/run.py on this machine. Exit 77: the root cannot be built or entered here.
set -uo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
testroot="$repo/tests/testroot/testroot.sh"
musl="$(uname -m)-unknown-linux-musl"
out="$repo/bench/out"

[ -x "$repo/target/$musl/release/host-local" ] || { echo "bench/in-root.sh: build our plugins first: cargo build --release --target $musl" >&2; exit 1; }
[ -x /usr/lib/cni/host-local ] || { echo "bench/in-root.sh: this machine's reference plugins are missing: apt-get install containernetworking-plugins" >&2; exit 1; }
"$testroot" build >/dev/null || exit $?

mkdir -p "$out/tools" || exit 1
cc=$(command -v musl-gcc || command -v gcc || command -v cc) || { echo "bench/in-root.sh: no C compiler for bench/runner.c" >&2; exit 1; }
for t in runner nothing; do
    "$cc" -O2 -static -o "$out/tools/$t" "$repo/bench/$t.c" || exit 1
done
rev=$(git -C "$repo" rev-parse --short HEAD 2>/dev/null || echo unknown)
[ -z "$(git -C "$repo" status --porcelain -- crates plugins Cargo.toml 2>/dev/null)" ] || rev="$rev with uncommitted changes to crates/ or plugins/"
v111=$(dpkg-query -W -f='${Version}' containernetworking-plugins)
work=$(mktemp -d /var/tmp/sbxbench-root.XXXXXX) || exit 1

rc=0
"$testroot" run --bind "$repo:/repo" --ro-bind "/usr/lib/cni:/opt/reference-$v111" --bind "$work:/var/tmp" -- \
    env TMPDIR=/var/tmp python3 /repo/bench/run.py --ours "/repo/target/$musl/release" \
    --reference "/opt/reference-$v111" --reference-version "$v111" --reference2 /usr/lib/cni \
    --tools /repo/bench/out/tools --out /repo/bench/out --revision "$rev" "$@" || rc=$?
rm -rf "$work"
[ $rc = 0 ] || exit $rc
/usr/bin/python3 "$repo/bench/run.py" --replot --out "$out" || echo "bench/in-root.sh: no plot (python3-matplotlib missing?)" >&2
