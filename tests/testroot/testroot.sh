#!/usr/bin/env bash
# The throwaway Debian roots of the tests of sandbox-cni: today's clients (Debian sid, the default)
# and the host's own release with the packages the test command needs (--release host).
#
#   tests/testroot/testroot.sh [--release sid|host] VERB ...
#   tests/testroot/testroot.sh build            build the root, or reuse the cached one; prints its path
#   tests/testroot/testroot.sh run [--scratch] [--bind HOST:INSIDE]... [--ro-bind HOST:INSIDE]... -- CMD [ARG...]
#                                               run CMD inside the root (pivot_root in a private mount
#                                               namespace; the host's network, /sys and /dev); with
#                                               --scratch, on a throwaway overlay of the root: CMD may
#                                               install packages (dpkg -i), and every change to the
#                                               root is discarded when it ends
#   tests/testroot/testroot.sh versions         the versions of the clients in the root
#   tests/testroot/testroot.sh path             where the root is (or would be) cached
#   tests/testroot/testroot.sh clean            remove the cached root
#
# The root is Debian sid (debootstrap --variant=minbase, then apt) with the packages listed in
# tests/testroot/packages.txt (containerd 2.x, libcni and go-cni sources, Go, the reference plugins,
# crun, runc ...), plus runsc 2024 from Debian 13 (trixie): sid's runsc build is miscompiled (its
# sentry panics within a second), trixie's runs as it is. The Debian mirror is the one the host's apt
# uses (override with SANDBOX_CNI_DEBIAN_MIRROR).
#
# --release host: the host's Debian release (bookworm on Debian 12) with tests/apt-packages.txt: the
# old clients (containerd 1.6, libcni 1.1, runsc 2022, the 1.1.1 reference ...) and the tools of the
# test command. tests/run.sh runs its steps in it, so the host's dpkg database is never touched.
# Without debootstrap on the host, Debian's package is unpacked into the cache (apt-get download,
# dpkg-deb -x), again without dpkg -i.
#
# The sid root is cached in $SANDBOX_CNI_TESTROOT, by default ${XDG_CACHE_HOME:-~/.cache}/sandbox-cni/testroot,
# the host-release root in $SANDBOX_CNI_HOSTROOT (default .../sandbox-cni/hostroot-<codename>); each is
# rebuilt when its package list or the recipe in this script changes. `clean` removes it. Nothing
# outside that directory is changed: entering the root happens in a private mount namespace, so its
# mounts vanish with the command. Needs root.
#
# Exit status: that of CMD for `run`; 0 for the rest; 77 SKIPPED when the root cannot be built or
# entered here (not root, no debootstrap, no mount namespaces, no overlayfs for --scratch, the mirror
# unreachable); the reason is printed on stderr, starting with "SKIPPED:".
set -uo pipefail
# The roots' cache and the Rust toolchains are found from HOME; a bare environment may lack it.
if [ -z "${HOME:-}" ]; then HOME=$(getent passwd "$(id -u)" | cut -d: -f6); export HOME; fi

here=$(cd "$(dirname "$0")" && pwd)
# Bump when the build steps below change, so cached roots are rebuilt.
recipe=1
trixie_runsc="runsc/trixie"
SKIP=77
cache=${XDG_CACHE_HOME:-$HOME/.cache}/sandbox-cni
stamp_file=".sandbox-cni-testroot"
versions_file=".sandbox-cni-versions"
# shellcheck disable=SC1091
host_codename=$(. /etc/os-release && echo "${VERSION_CODENAME:-}")

release=sid
if [ "${1:-}" = --release ]; then
    release=${2:?--release needs sid or host}
    shift 2
fi
case $release in
    sid)
        root=${SANDBOX_CNI_TESTROOT:-$cache/testroot}
        packages_file="$here/packages.txt" ;;
    host|"$host_codename")
        [ -n "$host_codename" ] || { echo "testroot: cannot tell the host's Debian release (/etc/os-release)" >&2; exit 1; }
        release=$host_codename
        root=${SANDBOX_CNI_HOSTROOT:-$cache/hostroot-$release}
        packages_file="$here/../apt-packages.txt" ;;
    *) echo "testroot: --release takes sid or host, not $release" >&2; exit 2 ;;
esac

usage() { awk 'NR > 1 && !/^#/ { exit } NR > 1 { sub(/^# ?/, ""); print }' "$0"; }
die() { echo "testroot: $*" >&2; exit 1; }
skipped() { echo "SKIPPED: test root: $*" >&2; exit $SKIP; }

packages() { grep -v '^[[:space:]]*\(#\|$\)' "$packages_file" | awk '{ print $1 }'; }
want_stamp() {
    { echo "recipe=$recipe"; if [ "$release" = sid ]; then echo "runsc=$trixie_runsc"; else echo "release=$release"; fi; packages; } | sha256sum | cut -c1-64
}
current() { [ -f "$root/$stamp_file" ] && [ "$(cat "$root/$stamp_file")" = "$(want_stamp)" ]; }

# The host's Debian mirror: the URI apt uses for the host's own release (not -security or -updates).
mirror() {
    if [ -n "${SANDBOX_CNI_DEBIAN_MIRROR:-}" ]; then echo "$SANDBOX_CNI_DEBIAN_MIRROR"; return; fi
    # shellcheck disable=SC2016
    apt-get indextargets --format '$(REPO_URI) $(RELEASE)' 2>/dev/null |
        awk -v rel="$host_codename" '$2 == rel { print $1; exit }'
}

# debootstrap: the installed one, else Debian's package unpacked into the cache (apt-get download and
# dpkg-deb -x, so the host's dpkg database is never touched). Sets the array `debootstrap`.
find_debootstrap() {
    if command -v debootstrap >/dev/null; then debootstrap=(debootstrap); return 0; fi
    local dir="$cache/debootstrap-tool" tmp
    if [ ! -x "$dir/usr/sbin/debootstrap" ]; then
        if ! command -v apt-get >/dev/null || ! command -v dpkg-deb >/dev/null; then
            skipped "debootstrap is not installed and apt-get/dpkg-deb are missing to unpack it"
        fi
        tmp=$(mktemp -d) || die "cannot create a temporary directory"
        if ! (cd "$tmp" && { apt-get download -qq debootstrap 2>/dev/null ||
                { apt-get update -qq && apt-get download -qq debootstrap; }; } &&
                dpkg-deb -x debootstrap_*.deb "$tmp/x") >&2; then
            rm -rf "$tmp"
            skipped "debootstrap is not installed and apt-get download debootstrap failed"
        fi
        rm -rf "$dir"
        mv "$tmp/x" "$dir" || die "cannot unpack debootstrap into $dir"
        rm -rf "$tmp"
    fi
    debootstrap=(env "DEBOOTSTRAP_DIR=$dir/usr/share/debootstrap" "$dir/usr/sbin/debootstrap")
}

# Runs a shell snippet chrooted into DIR inside a private mount namespace with /proc mounted.
in_chroot() {
    local dir=$1; shift
    # shellcheck disable=SC2016
    unshare -m --propagation private -- sh -c 'mount -t proc proc "$1/proc" && exec chroot "$1" sh -c "$2"' \
        testroot "$dir" "$*"
}

build() {
    [ "$(id -u)" = 0 ] || skipped "building it needs root"
    unshare -m --propagation private true 2>/dev/null || skipped "no private mount namespaces here (unshare -m failed)"
    mkdir -p "$(dirname "$root")" || die "cannot create $(dirname "$root")"
    exec 9>"$root.lock" || die "cannot open $root.lock"
    flock 9
    if current; then echo "$root"; return 0; fi
    local m new start=$SECONDS
    local -a debootstrap
    find_debootstrap
    m=$(mirror)
    [ -n "$m" ] || skipped "no Debian mirror found in the host's apt sources (set SANDBOX_CNI_DEBIAN_MIRROR)"
    new="$root.new"
    rm -rf "$new"
    echo "testroot: building Debian $release in $new (cached; $0 --release $release clean removes it)" >&2
    if ! "${debootstrap[@]}" --variant=minbase "$release" "$new" "$m" >"$root.debootstrap.log" 2>&1; then
        tail -5 "$root.debootstrap.log" >&2
        rm -rf "$new"
        skipped "debootstrap of $release failed (log: $root.debootstrap.log)"
    fi
    # The mirror's sid Release file can look out of date by a VM's clock; services never start.
    printf 'Acquire::Check-Valid-Until "false";\nAPT::Install-Recommends "false";\nAPT::Install-Suggests "false";\n' \
        >"$new/etc/apt/apt.conf.d/90sandbox-cni"
    printf '#!/bin/sh\nexit 101\n' >"$new/usr/sbin/policy-rc.d" && chmod 755 "$new/usr/sbin/policy-rc.d"
    local list extra=true
    list=$(packages | tr '\n' ' ')
    if [ "$release" = sid ]; then
        # gVisor 2024 from trixie: sid's build of the same source is miscompiled.
        printf 'deb %s trixie main\n' "$m" >"$new/etc/apt/sources.list.d/trixie.list"
        printf 'Package: *\nPin: release n=trixie\nPin-Priority: 100\n' >"$new/etc/apt/preferences.d/trixie"
        extra="cd /tmp && apt-get download -qq $trixie_runsc && dpkg-deb -x runsc_*.deb /tmp/runsc-deb &&
            install -m 755 /tmp/runsc-deb/usr/bin/runsc /usr/local/bin/runsc &&
            dpkg-deb -f runsc_*.deb Version >/usr/local/share/runsc.version && rm -rf /tmp/runsc*"
    else
        printf 'deb %s %s-updates main\n' "$m" "$release" >"$new/etc/apt/sources.list.d/updates.list"
    fi
    if ! in_chroot "$new" "export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq && apt-get install -y -qq $list >/dev/null && { $extra; } && apt-get clean" \
        >"$root.apt.log" 2>&1; then
        tail -15 "$root.apt.log" >&2
        rm -rf "$new"
        die "installing the packages into the root failed (log: $root.apt.log)"
    fi
    {
        in_chroot "$new" "dpkg-query -W -f '\${Package} \${Version}\n' $list"
        [ "$release" != sid ] || echo "runsc(trixie) $(cat "$new/usr/local/share/runsc.version")"
    } >"$new/$versions_file" || die "cannot record the versions"
    want_stamp >"$new/$stamp_file"
    rm -rf "$root"
    mv "$new" "$root" || die "cannot move $new to $root"
    echo "testroot: built in $((SECONDS - start)) s" >&2
    echo "$root"
}

# The mount namespace script: mounts, binds, pivot_root, then the command.
# Arguments: ROOT, then BIND specs (rw:HOST:INSIDE or ro:HOST:INSIDE), then --, then the command.
# shellcheck disable=SC2016
enter='
set -e
r=$1; shift
case $1 in
    scratch:*)
        # A throwaway overlay: the cached root is the read-only lower layer.
        t=${1#scratch:}; shift
        mkdir -p "$t/upper" "$t/work" "$t/merged"
        mount -t overlay overlay -o "lowerdir=$r,upperdir=$t/upper,workdir=$t/work" "$t/merged" ||
            { echo "SKIPPED: test root: cannot mount an overlay over the root here (--scratch)" >&2; exit 77; }
        r=$t/merged ;;
    *) mount --bind "$r" "$r" ;;
esac
mount -t proc proc "$r/proc"
mount --rbind /sys "$r/sys" && mount --make-rslave "$r/sys"
mount --rbind /dev "$r/dev" && mount --make-rslave "$r/dev"
mount -t tmpfs -o mode=755 tmpfs "$r/run"
mount -t tmpfs -o mode=1777 tmpfs "$r/tmp"
while [ "$1" != -- ]; do
    mode=${1%%:*}; rest=${1#*:}; src=${rest%%:*}; dst=${rest#*:}
    if [ -d "$src" ]; then mkdir -p "$r$dst"; else mkdir -p "$(dirname "$r$dst")"; : >>"$r$dst"; fi
    mount --bind "$src" "$r$dst"
    [ "$mode" = rw ] || mount -o remount,bind,ro "$r$dst"
    shift
done
shift
mkdir -p "$r/.oldroot"
cd "$r"
pivot_root . .oldroot
umount -l /.oldroot
cd /
exec env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LANG=C.UTF-8 "$@"
'

run() {
    local -a binds=()
    local scratch=
    while [ $# -gt 0 ]; do
        case $1 in
            --scratch) scratch=1; shift ;;
            --bind|--ro-bind)
                local spec=${2:?$1 needs HOST:INSIDE} kind=rw
                [ "$1" = --ro-bind ] && kind=ro
                case $spec in /*:/*) ;; *) die "$1 takes HOST:INSIDE, both absolute: $spec" ;; esac
                [ -e "${spec%%:*}" ] || die "$1: ${spec%%:*} does not exist"
                binds+=("$kind:$spec"); shift 2 ;;
            --) shift; break ;;
            *) die "run: unknown option $1 (see --help)" ;;
        esac
    done
    [ $# -gt 0 ] || die "run needs a command after --"
    [ "$(id -u)" = 0 ] || skipped "entering it needs root"
    current || skipped "the root is not built (or out of date): run $0 build"
    if [ -z "$scratch" ]; then
        unshare -m --propagation private -- sh -c "$enter" testroot "$root" "${binds[@]}" -- "$@"
        return
    fi
    grep -qw overlay /proc/filesystems || modprobe overlay 2>/dev/null || true
    grep -qw overlay /proc/filesystems || skipped "--scratch needs overlayfs, which this kernel lacks"
    local tmp rc=0
    # Next to the root: the same file system, and never a tmpfs or an overlay itself.
    tmp=$(mktemp -d "$root.scratch.XXXXXX") || die "cannot create a scratch directory next to $root"
    unshare -m --propagation private -- sh -c "$enter" testroot "$root" "scratch:$tmp" "${binds[@]}" -- "$@" || rc=$?
    rm -rf "$tmp"
    return $rc
}

case ${1:-} in
    build) build ;;
    run) shift; run "$@" ;;
    versions) current || skipped "the root is not built: run $0 build"; cat "$root/$versions_file" ;;
    path) echo "$root" ;;
    clean) rm -rf "$root" "$root.new" "$root.lock" "$root".*.log "$root".scratch.*; echo "removed $root" ;;
    -h|--help) usage ;;
    *) usage >&2; exit 2 ;;
esac
