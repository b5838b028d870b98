#!/usr/bin/env bash
# Today's CNI clients against sandbox-cni's plugins, from the throwaway test root (tests/testroot):
#
#   tests/interop/today.sh
#
# 1. builds the root, or reuses the cached one, and prints the versions of its clients;
# 2. builds the Go interop drivers (tests/interop/go) inside it against its libcni 1.3 and go-cni 1.1.13
#    sources, libcni-driver with -tags libcni12 (cnitool 1.3's gc and status), into
#    target/testroot/drivers; they are static (CGO_ENABLED=0), so they run anywhere;
# 3. runs the interop suite (tests/it/interop.rs) with SANDBOX_CNI_INTEROP_DRIVERS naming them: every
#    conflist of cni-conf/ at every version libcni 1.3 knows and as shipped (1.1.0 from cniVersions),
#    go-cni's containerd-style Setup/Check/Remove and Status, and cnitool's add, check, status, gc
#    (GCNetworkList with and without valid attachments) and del, each of which must exit 0.
#
# Exit status: 0 passed, 1 failed, 77 SKIPPED when the root cannot be built or entered here (the
# reason is printed); tests/run.sh counts a skip as a failure unless SANDBOX_CNI_TESTROOT=optional.
set -uo pipefail

repo=$(cd "$(dirname "$0")/../.." && pwd)
cd "$repo" || exit 1
testroot=tests/testroot/testroot.sh
out="${CARGO_TARGET_DIR:-$repo/target}/testroot"

rc=0
"$testroot" build >/dev/null || rc=$?
[ $rc = 0 ] || exit $rc
echo "test root: $("$testroot" path)"
"$testroot" versions | sed 's/^/  /' || exit $?

mkdir -p "$out/drivers" "$out/gocache" || exit 1
rm -f "$out/drivers/libcni-driver" "$out/drivers/gocni-driver"
start=$SECONDS
# dpkg's versions inside the root name the libraries in the suite's reports ("libcni 1.3.0").
# shellcheck disable=SC2016
build='set -e
v() { dpkg-query -W -f "\${Version}" "$1" | sed "s/^[0-9]*://; s/[-+~].*//"; }
libcni="libcni $(v golang-github-appc-cni-dev)"
gocni="go-cni $(v golang-github-containerd-go-cni-dev)"
cd /interop
go version
go build -tags libcni12 -ldflags "-X '"'"'main.library=$libcni'"'"' -X '"'"'main.gocniLibrary=$gocni'"'"'" \
    -o /out/drivers/ interop/cmd/libcni-driver interop/cmd/gocni-driver'
"$testroot" run --ro-bind "$repo/tests/interop/go:/interop" --bind "$out:/out" -- \
    env GOPATH=/interop:/usr/share/gocode GO111MODULE=off GOFLAGS= GOPROXY=off GOENV=off CGO_ENABLED=0 \
    GOCACHE=/out/gocache sh -c "$build" || { rc=$?; echo "building the drivers inside the test root failed" >&2; exit $rc; }
echo "drivers built inside the root in $((SECONDS - start)) s: $("$out/drivers/libcni-driver" client | tr -s ' \n' ' ')"

# --workspace: the same feature set as the `cargo test --workspace` step, so nothing is rebuilt.
# --nocapture: each test lists the cases it passed.
SANDBOX_CNI_INTEROP_DRIVERS="$out/drivers" cargo test --workspace --locked --test it interop:: -- --nocapture --test-threads 2
