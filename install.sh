#!/bin/sh
# install.sh: build sandbox-cni and install its CNI plugins, default network and k3s-sandbox CLI.
#
# Safe to re-run: files already current are left alone; files this script did not install are never
# overwritten unless --force (which keeps a backup); a manifest with sha256 sums lets --uninstall remove
# exactly what was installed and put the backups back.
set -eu

CLI="k3s-sandbox"
CONFLIST="10-sandbox-cni.conflist"
MANIFEST_NAME=".sandbox-cni.manifest"
BACKUP_SUFFIX=".sandbox-cni-backup"

bin_dir=/opt/cni/bin
conf_dir=/etc/cni/net.d
cli_dir=/usr/local/bin
share_dir=""
install_conf=1
install_cli=1
force=0
dry_run=0
uninstall=0
from=""
self_test=1
package=0
package_target=""
dist_dir=""
build_deb=1
given=""

usage() {
    cat <<'EOF'
Usage: ./install.sh [OPTIONS]

Builds sandbox-cni (cargo build --release --locked --workspace, static musl binaries where the target can be
added) and installs:
  - the CNI plugins named in plugins/list.txt (loopback, host-local, bridge, portmap, ...) into --bin-dir,
  - the default network 10-sandbox-cni.conflist into --conf-dir,
  - the k3s-sandbox CLI into --cli-dir, with a `cnitool` link to it when no cnitool is on PATH,
  - its shell completions (bash, zsh, fish) and manual page k3s-sandbox(1) under --share-dir,
then runs a self-test of what it installed.

Options:
  --bin-dir DIR    CNI plugin directory (default /opt/cni/bin)
  --conf-dir DIR   CNI configuration directory (default /etc/cni/net.d)
  --cli-dir DIR    where k3s-sandbox goes (default /usr/local/bin)
  --share-dir DIR  where its completions and manual page go: bash-completion/completions/,
                   zsh/site-functions/, fish/vendor_completions.d/, man/man1/ (default: the
                   share/ directory beside --cli-dir, /usr/local/share by default)
  --no-conf        do not install the default conflist
  --no-cli         do not install k3s-sandbox
  --force          replace files this script did not install, keeping a backup
                   (<file>.sandbox-cni-backup) that --uninstall restores
  --dry-run        show what would change and change nothing on the system (a build from
                   source still compiles into the cargo target dir)
  --uninstall      remove what an earlier run installed (per the manifest in --bin-dir, which
                   names every path) and restore backups; files changed since are left in place.
                   Takes only --bin-dir and --dry-run
  --from SRC       install prebuilt binaries instead of building; SRC is a release tarball
                   (sandbox-cni-<version>-<arch>-linux-musl.tar.gz), an unpacked release, a
                   directory of release tarballs (this machine's is taken), or a directory
                   holding the plugin and k3s-sandbox binaries. A release's sums are
                   checked first and a release for another architecture is refused. The install.sh
                   inside an unpacked release installs that release (no Rust needed).
  --no-self-test   skip the self-test
  -h, --help       this text

Release artefacts (needs cargo; the aarch64 cross-build needs gcc-aarch64-linux-gnu on x86_64):
  --package        build and write dist/sandbox-cni-<version>-<arch>-linux-musl.tar.gz, a .deb per
                   architecture (when dpkg-deb is present) and dist/SHA256SUMS; reproducible: the
                   same commit gives the same bytes (SOURCE_DATE_EPOCH: the commit's time)
  --target ARCH    x86_64, aarch64 or all (default: this machine's architecture)
  --dist-dir DIR   where the artefacts go (default dist/ next to install.sh)
  --no-deb         do not build .deb packages
  --package installs nothing: it takes none of the install options (--dry-run included).

The build honours CARGO_TARGET_DIR. Exit status: 0 on success, 1 on failure, 2 on a usage error
(an unknown option, a missing value, or options that cannot be used together).
EOF
}

say() { printf '%s\n' "$*"; }
warn() { printf 'install.sh: warning: %s\n' "$*" >&2; }
die() { printf 'install.sh: error: %s\n' "$*" >&2; exit 1; }

need_arg() {
    if [ $# -lt 2 ] || [ -z "$2" ]; then printf 'install.sh: %s needs a value\n' "$1" >&2; exit 2; fi
}

while [ $# -gt 0 ]; do
    case $1 in --*) given="$given $1" ;; esac
    case $1 in
        --bin-dir) need_arg "$@"; bin_dir=$2; shift 2 ;;
        --conf-dir) need_arg "$@"; conf_dir=$2; shift 2 ;;
        --cli-dir) need_arg "$@"; cli_dir=$2; shift 2 ;;
        --share-dir) need_arg "$@"; share_dir=$2; shift 2 ;;
        --from) need_arg "$@"; from=$2; shift 2 ;;
        --no-conf) install_conf=0; shift ;;
        --no-cli) install_cli=0; shift ;;
        --force) force=1; shift ;;
        --dry-run) dry_run=1; shift ;;
        --uninstall) uninstall=1; shift ;;
        --no-self-test) self_test=0; shift ;;
        --package) package=1; shift ;;
        --target) need_arg "$@"; package_target=$2; shift 2 ;;
        --dist-dir) need_arg "$@"; dist_dir=$2; shift 2 ;;
        --no-deb) build_deb=0; shift ;;
        -h|--help) usage; exit 0 ;;
        *) printf 'install.sh: unknown option %s (see --help)\n' "$1" >&2; exit 2 ;;
    esac
done

# Options that do not apply together are usage errors, never silently ignored.
given_opt() { case " $given " in *" $1 "*) return 0 ;; esac; return 1; }
refuse_with() {
    first=$1; why=$2; shift 2
    for o in "$@"; do
        if given_opt "$o"; then
            printf 'install.sh: %s cannot be used with %s: %s (see --help)\n' "$o" "$first" "$why" >&2; exit 2
        fi
    done
}
if [ "$uninstall" = 1 ]; then
    refuse_with --uninstall "it removes what the manifest in --bin-dir lists, wherever that was" \
        --from --package --force --no-conf --no-cli --no-self-test --conf-dir --cli-dir --share-dir
fi
if [ "$package" = 1 ]; then
    refuse_with --package "it only writes release artefacts into --dist-dir and installs nothing" \
        --dry-run --from --force --no-conf --no-cli --no-self-test --bin-dir --conf-dir --cli-dir --share-dir
fi
if [ "$package" = 0 ] && [ -n "$package_target$dist_dir" ]; then
    printf 'install.sh: --target and --dist-dir go with --package (see --help)\n' >&2; exit 2
fi
if [ "$package" = 0 ] && given_opt --no-deb; then
    printf 'install.sh: --no-deb goes with --package (see --help)\n' >&2; exit 2
fi
if [ "$install_cli" = 0 ] && given_opt --share-dir; then
    printf 'install.sh: --share-dir cannot be used with --no-cli: the completions and manual page go with the CLI (see --help)\n' >&2; exit 2
fi
share_dir=${share_dir:-$(dirname "$cli_dir")/share}
case $package_target in ''|x86_64|aarch64|all) ;; *) printf 'install.sh: --target must be x86_64, aarch64 or all, not %s\n' "$package_target" >&2; exit 2 ;; esac
for d in "$bin_dir" "$conf_dir" "$cli_dir" "$share_dir" "$from" "$dist_dir"; do
    case $d in *[[:space:]]*) printf 'install.sh: directory names with white space are not supported: %s\n' "$d" >&2; exit 2 ;; esac
done
repo=$(cd "$(dirname "$0")" && pwd)
# Where cargo puts the build: CARGO_TARGET_DIR (relative to the source tree, where cargo runs), else
# target/ (as --package reads it too).
case ${CARGO_TARGET_DIR:-} in
    '') target_dir="$repo/target" ;;
    /*) target_dir=$CARGO_TARGET_DIR ;;
    *) target_dir="$repo/$CARGO_TARGET_DIR" ;;
esac
# The plugin binaries: plugins/list.txt in a source tree (the project's one list, read by
# plugins/list.sh), the `plugins=` line of RELEASE in an unpacked release (written from that list when
# the release was made).
if [ -f "$repo/plugins/list.txt" ]; then
    # shellcheck source=plugins/list.sh
    . "$repo/plugins/list.sh"
    PLUGINS=$(plugin_list "$repo/plugins/list.txt") || exit 2
elif [ -f "$repo/RELEASE" ]; then
    PLUGINS=$(awk -F= '$1 == "plugins" { print substr($0, 9); exit }' "$repo/RELEASE")
else
    PLUGINS=""
fi
[ -n "$PLUGINS" ] || { printf 'install.sh: cannot find the plugin list: %s has neither plugins/list.txt (a source tree) nor a RELEASE file with a plugins= line (a release)\n' "$repo" >&2; exit 2; }
manifest="$bin_dir/$MANIFEST_NAME"
tmp=$(mktemp -d "${TMPDIR:-/tmp}/sandbox-cni-install.XXXXXX")
trap 'rm -rf "$tmp"' EXIT INT TERM

sha() { sha256sum "$1" | cut -d' ' -f1; }

# The CLI's completions and manual page, relative to a share/ directory.
SHARE_FILES="bash-completion/completions/$CLI zsh/site-functions/_$CLI fish/vendor_completions.d/$CLI.fish man/man1/$CLI.1"
# Writes them into $1 with the CLI $2 (`k3s-sandbox completions SHELL`, `k3s-sandbox man`); fails,
# writing nothing usable, when that CLI cannot make them.
make_share() {
    out=$1; cli=$2
    mkdir -p "$out/bash-completion/completions" "$out/zsh/site-functions" "$out/fish/vendor_completions.d" "$out/man/man1"
    if "$cli" completions bash > "$out/bash-completion/completions/$CLI" 2>/dev/null \
        && "$cli" completions zsh > "$out/zsh/site-functions/_$CLI" 2>/dev/null \
        && "$cli" completions fish > "$out/fish/vendor_completions.d/$CLI.fish" 2>/dev/null \
        && "$cli" man > "$out/man/man1/$CLI.1" 2>/dev/null \
        && grep -q 'complete' "$out/bash-completion/completions/$CLI" \
        && grep -q '^\.TH' "$out/man/man1/$CLI.1"; then
        return 0
    fi
    rm -rf "$out"
    return 1
}

# The sha256 the manifest recorded for a path, or nothing.
recorded_sha() { [ -f "$manifest" ] && awk -v p="$1" '$1 == "file" && $3 == p { print $2 }' "$manifest" | tail -n 1; }
recorded_backup() { [ -f "$manifest" ] && awk -v p="$1" '$1 == "backup" && $2 == p { print $3 }' "$manifest" | tail -n 1; }

# ---- releases --------------------------------------------------------------------------------------
# A release is a directory sandbox-cni-<version>-<arch>-linux-musl/ holding bin/ (plugins and CLI),
# cni-conf/, install.sh, LICENSE, README, RELEASE (name, version, arch, commit) and MANIFEST.sha256
# (sha256sum lines for every other file), shipped as a reproducible .tar.gz.
RELEASE_FILE=RELEASE
RELEASE_SUMS=MANIFEST.sha256

norm_arch() { case $1 in x86_64|amd64) echo x86_64 ;; aarch64|arm64) echo aarch64 ;; *) echo "$1" ;; esac; }
host_arch=$(norm_arch "$(uname -m)")
# A regular file, not a symlink (to a device, a FIFO or /proc, which a read could wait on forever).
regular() { [ -f "$1" ] && [ ! -L "$1" ]; }
# The architecture an ELF file is built for: a 64-bit little-endian ELF (magic, EI_CLASS 2,
# EI_DATA 1) and its e_machine field; "unknown" for anything else (a script, a 32-bit build).
elf_arch() {
    regular "$1" || { echo unknown; return; }
    case $(od -An -tx1 -N20 "$1" 2>/dev/null | tr -d ' \n') in
        7f454c460201*) ;; *) echo unknown; return ;;
    esac
    case $(od -An -tx1 -j18 -N2 "$1" 2>/dev/null | tr -d ' \n') in
        3e00) echo x86_64 ;; b700) echo aarch64 ;; *) echo unknown ;;
    esac
}
# Checks that every binary in DIR is a regular file built for this machine.
check_binaries() {
    for f in $PLUGINS ${2:+$CLI}; do
        regular "$1/$f" || die "$1/$f is not a regular file (a symlink, pipe or device is never installed): nothing was installed"
        a=$(elf_arch "$1/$f")
        [ "$a" = "$host_arch" ] || die "$1/$f is not a 64-bit $host_arch ELF binary (found: $a): nothing was installed"
    done
}
release_value() { awk -F= -v k="$1" '$1 == k { print substr($0, length(k) + 2); exit }' "$2/$RELEASE_FILE"; }

# Checks an unpacked release before anything is installed: every sum in its manifest, the files
# install.sh needs are listed there, and it is built for this machine.
verify_release() {
    rel=$1
    regular "$rel/$RELEASE_SUMS" || die "$rel has no $RELEASE_SUMS (or it is not a regular file): not a sandbox-cni release"
    regular "$rel/$RELEASE_FILE" || die "$rel/$RELEASE_FILE is not a regular file: not a sandbox-cni release"
    bad=0; listed=0
    while read -r want path; do
        case $path in /*|*..*|'') die "$rel/$RELEASE_SUMS names an unsafe path: $path" ;; esac
        listed=$((listed + 1))
        if [ -L "$rel/$path" ] || { [ -e "$rel/$path" ] && [ ! -f "$rel/$path" ]; }; then
            warn "$path is not a regular file (a symlink, pipe or device): refused"; bad=1
        elif [ ! -f "$rel/$path" ]; then
            warn "$path is listed in $RELEASE_SUMS but missing"; bad=1
        elif [ "$(sha "$rel/$path")" != "$want" ]; then
            warn "$path does not match its sha256 in $RELEASE_SUMS"; bad=1
        fi
    done < "$rel/$RELEASE_SUMS"
    [ "$bad" = 0 ] || die "$rel is damaged or was changed (see warnings above): nothing was installed; download the release again"
    for f in $PLUGINS $CLI; do
        awk -v p="bin/$f" '$2 == p { found = 1 } END { exit !found }' "$rel/$RELEASE_SUMS" || die "$rel/$RELEASE_SUMS does not list bin/$f: not a complete release"
    done
    awk -v p="cni-conf/$CONFLIST" '$2 == p { found = 1 } END { exit !found }' "$rel/$RELEASE_SUMS" || die "$rel/$RELEASE_SUMS does not list cni-conf/$CONFLIST"
    awk -v p="$RELEASE_FILE" '$2 == p { found = 1 } END { exit !found }' "$rel/$RELEASE_SUMS" || die "$rel/$RELEASE_SUMS does not list $RELEASE_FILE"
    rel_arch=$(release_value arch "$rel")
    bin_arch=$(elf_arch "$rel/bin/loopback")
    if [ "$rel_arch" != "$host_arch" ] || [ "$bin_arch" != "$host_arch" ]; then
        die "this release is for ${rel_arch:-an unknown architecture} (its binaries: $bin_arch) but this machine is $host_arch: use sandbox-cni-$(release_value version "$rel")-$host_arch-linux-musl.tar.gz instead; nothing was installed"
    fi
    check_binaries "$rel/bin" cli
    say "verified  $listed file(s) of sandbox-cni $(release_value version "$rel") for $rel_arch (commit $(release_value commit "$rel"))"
}

# Unpacks a release tarball into $tmp after checking its member names; prints the release directory.
unpack_release() {
    tarball=$1
    sums="$(dirname "$tarball")/SHA256SUMS"
    name=$(basename "$tarball")
    regular "$tarball" || die "$tarball is not a regular file"
    if regular "$sums" && awk -v n="$name" '$2 == n || $2 == "*" n { found = 1 } END { exit !found }' "$sums"; then
        want=$(awk -v n="$name" '$2 == n || $2 == "*" n { print $1; exit }' "$sums")
        [ "$(sha "$tarball")" = "$want" ] || die "$tarball does not match its sha256 in $sums: download it again"
        say "verified  $name against $sums" >&2
    fi
    tar -tzf "$tarball" > "$tmp/members" 2>/dev/null || die "$tarball is not a gzip-compressed tar file"
    top=$(awk -F/ 'NR == 1 { print $1 }' "$tmp/members")
    case $top in ''|.|..|-*) die "$tarball is not a sandbox-cni release (unexpected layout)" ;; esac
    if awk -F/ -v t="$top" '$1 != t || /(^|\/)\.\.(\/|$)/ { bad = 1 } END { exit !bad }' "$tmp/members"; then
        die "$tarball is not a sandbox-cni release: its files are not all under one directory"
    fi
    mkdir "$tmp/unpack"
    tar -xzf "$tarball" -C "$tmp/unpack" || die "cannot unpack $tarball"
    printf '%s\n' "$tmp/unpack/$top"
}

# The README shipped in a release.
release_readme() {
    cat <<README
sandbox-cni $1 for $2 Linux (static musl binaries)
Built from commit $3.

CNI plugins for sandboxed Kubernetes dev environments: spec-valid results without touching
kernel networking. License: Apache-2.0 (LICENSE).

Contents: bin/ (the CNI plugins and the k3s-sandbox CLI), cni-conf/ (ready network
configurations), install.sh, RELEASE, and MANIFEST.sha256 (the sha256 of every other file).

Verify and install (as root; no Rust needed):

    sha256sum -c MANIFEST.sha256
    ./install.sh            # into /opt/cni/bin, /etc/cni/net.d and /usr/local/bin, then self-test
    ./install.sh --help     # other directories, --dry-run, --uninstall, --force

install.sh checks the sums itself before installing, never overwrites a file it did not install
unless told to (--force keeps a backup), and records what it installed so that
./install.sh --uninstall removes exactly that.
README
}

deb_arch() { case $1 in x86_64) echo amd64 ;; aarch64) echo arm64 ;; esac; }

# Builds dist/sandbox-cni_<version>_<debarch>.deb from an unpacked release directory.
build_deb_from() {
    rel=$1; arch=$2; version=$3; epoch=$4
    debarch=$(deb_arch "$arch")
    root="$tmp/deb-$arch"
    rm -rf "$root"
    mkdir -p "$root/DEBIAN" "$root/opt/cni/bin" "$root/usr/bin" "$root/etc/cni/net.d" "$root/usr/share/doc/sandbox-cni/examples"
    for p in $PLUGINS; do cp "$rel/bin/$p" "$root/opt/cni/bin/$p"; done
    cp "$rel/bin/$CLI" "$root/usr/bin/$CLI"
    # The network only as an example (libcni reads *.conf, *.conflist and *.json, not *.example):
    # the node's live configuration is never written by the package.
    cp "$rel/cni-conf/$CONFLIST" "$root/etc/cni/net.d/$CONFLIST.example"
    cp "$rel"/cni-conf/*.conflist "$root/usr/share/doc/sandbox-cni/examples/"
    cp "$rel/README" "$root/usr/share/doc/sandbox-cni/README"
    # Where bash-completion, zsh (Debian's vendor dir), fish and man(1) look.
    mkdir -p "$root/usr/share/bash-completion/completions" "$root/usr/share/zsh/vendor-completions" \
        "$root/usr/share/fish/vendor_completions.d" "$root/usr/share/man/man1"
    cp "$rel/share/bash-completion/completions/$CLI" "$root/usr/share/bash-completion/completions/$CLI"
    cp "$rel/share/zsh/site-functions/_$CLI" "$root/usr/share/zsh/vendor-completions/_$CLI"
    cp "$rel/share/fish/vendor_completions.d/$CLI.fish" "$root/usr/share/fish/vendor_completions.d/$CLI.fish"
    gzip -9n < "$rel/share/man/man1/$CLI.1" > "$root/usr/share/man/man1/$CLI.1.gz"
    cat > "$root/usr/share/doc/sandbox-cni/copyright" <<COPYRIGHT
Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/
Upstream-Name: sandbox-cni

Files: *
Copyright: the sandbox-cni developers
License: Apache-2.0
 On Debian systems the full text of the Apache License 2.0 is in
 /usr/share/common-licenses/Apache-2.0.
COPYRIGHT
    printf '/etc/cni/net.d/%s.example\n' "$CONFLIST" > "$root/DEBIAN/conffiles"
    files="$(for p in $PLUGINS; do printf '/opt/cni/bin/%s ' "$p"; done)/usr/bin/$CLI"
    sed "s|@FILES@|$files|" > "$root/DEBIAN/preinst" <<'PREINST'
#!/bin/sh
# Refuse to overwrite plugins or a CLI that no package owns (put there by hand or by install.sh):
# dpkg itself would replace them silently.
set -e
if [ "$1" = install ]; then
    bad=0
    for f in @FILES@; do
        if [ -e "$f" ] && ! dpkg-query -S "$f" >/dev/null 2>&1; then
            echo "sandbox-cni: $f exists and belongs to no package: not overwriting it" >&2
            bad=1
        fi
    done
    if [ "$bad" = 1 ]; then
        echo "sandbox-cni: move those files away (if install.sh put them there: install.sh --uninstall) and install again" >&2
        exit 1
    fi
fi
exit 0
PREINST
    (cd "$root" && find opt usr etc -type f | LC_ALL=C sort | xargs md5sum) > "$root/DEBIAN/md5sums"
    size=$(du -sk --apparent-size "$root/opt" "$root/usr" "$root/etc" | awk '{ s += $1 } END { print s }')
    # The plugins by name (the list's), wrapped into the description's continuation lines.
    about=$(printf 'Static CNI plugins (%s) that return spec-valid results without touching kernel networking, for gVisor-style sandboxes, and the k3s-sandbox CLI.\n' \
        "$(echo "$PLUGINS" | sed 's/ /, /g')" | fold -s -w 80 | sed 's/^/ /; s/ *$//')
    cat > "$root/DEBIAN/control" <<CONTROL
Package: sandbox-cni
Version: $version
Architecture: $debarch
Maintainer: sandbox-cni developers <sandbox-cni@localhost>
Installed-Size: $size
Section: net
Priority: optional
Description: CNI plugins for sandboxed Kubernetes dev environments
$about
 .
 The plugins go into /opt/cni/bin (Debian's containernetworking-plugins uses
 /usr/lib/cni, so both can be installed); the default network is shipped only
 as /etc/cni/net.d/$CONFLIST.example.
CONTROL
    find "$root" -type d -exec chmod 0755 {} +
    find "$root" -type f -exec chmod 0644 {} +
    chmod 0755 "$root/opt/cni/bin/"* "$root/usr/bin/$CLI" "$root/DEBIAN/preinst"
    find "$root" -exec touch -h -d "@$epoch" {} +
    out="$dist_dir/sandbox-cni_${version}_$debarch.deb"
    SOURCE_DATE_EPOCH=$epoch dpkg-deb --root-owner-group -Zxz --build "$root" "$out.tmp" >/dev/null || die "dpkg-deb failed for $arch"
    mv -f "$out.tmp" "$out"
    say "wrote     $out"
}

package_release() {
    [ -f "$repo/Cargo.toml" ] || die "--package needs the source tree (this is an unpacked release)"
    command -v cargo >/dev/null 2>&1 || die "cargo not found: --package builds from source; install Rust (https://rustup.rs)"
    tar --version 2>/dev/null | grep -q 'GNU tar' || die "--package needs GNU tar (for a reproducible member order)"
    version=$(awk '/^\[/ { sec = $0 } sec == "[workspace.package]" && $1 == "version" { gsub(/"/, "", $3); print $3; exit }' "$repo/Cargo.toml")
    [ -n "$version" ] || die "cannot read the version from $repo/Cargo.toml"
    commit=$(git -C "$repo" rev-parse HEAD 2>/dev/null) || commit=unknown
    if [ -n "${SOURCE_DATE_EPOCH:-}" ]; then
        epoch=$SOURCE_DATE_EPOCH
    else
        epoch=$(git -C "$repo" log -1 --format=%ct 2>/dev/null) || die "not a git checkout: set SOURCE_DATE_EPOCH (seconds since 1970) to date the release"
    fi
    case $epoch in ''|*[!0-9]*) die "SOURCE_DATE_EPOCH must be a number of seconds, not '$epoch'" ;; esac
    if [ "$commit" != unknown ] && [ -n "$(git -C "$repo" status --porcelain --untracked-files=no 2>/dev/null)" ]; then
        warn "the work tree has uncommitted changes: the artefacts are not exactly commit $commit"
    fi
    case ${package_target:-$host_arch} in
        all) archs="x86_64 aarch64" ;;
        x86_64|aarch64) archs=${package_target:-$host_arch} ;;
        *) die "no release target for this machine ($host_arch): pass --target x86_64 or aarch64" ;;
    esac
    rustc=$(cd "$repo" && rustc --version 2>/dev/null) || rustc=unknown
    if [ "$build_deb" = 1 ] && ! command -v dpkg-deb >/dev/null 2>&1; then
        warn "dpkg-deb not found: no .deb (install dpkg, or pass --no-deb)"; build_deb=0
    fi
    dist_dir=${dist_dir:-$repo/dist}
    mkdir -p "$dist_dir" || die "cannot create $dist_dir"
    for arch in $archs; do
        triple="$arch-unknown-linux-musl"
        if command -v rustup >/dev/null 2>&1 && ! rustup target list --installed 2>/dev/null | grep -qx "$triple"; then
            rustup target add "$triple" || die "cannot add the Rust target $triple"
        fi
        if [ "$arch" = aarch64 ] && [ "$host_arch" != aarch64 ] && [ -z "${CARGO_TARGET_AARCH64_UNKNOWN_LINUX_MUSL_LINKER:-}" ]; then
            # rust-lld alone cannot link these (it rejects -z noseparate-code); a GNU cross linker can.
            command -v aarch64-linux-gnu-gcc >/dev/null 2>&1 || die "cross-building for aarch64 needs a linker: install gcc-aarch64-linux-gnu (Debian) or set CARGO_TARGET_AARCH64_UNKNOWN_LINUX_MUSL_LINKER"
            CARGO_TARGET_AARCH64_UNKNOWN_LINUX_MUSL_LINKER=aarch64-linux-gnu-gcc
            export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_MUSL_LINKER
        fi
        say "building  $triple"
        (cd "$repo" && cargo build --release --locked --workspace --target "$triple") || die "build for $triple failed"
        built="$target_dir/$triple/release"
        name="sandbox-cni-$version-$arch-linux-musl"
        rel="$tmp/stage/$name"
        rm -rf "$rel"
        mkdir -p "$rel/bin" "$rel/cni-conf"
        for f in $PLUGINS $CLI; do
            [ -f "$built/$f" ] || die "$built/$f is missing after the build"
            [ "$(elf_arch "$built/$f")" = "$arch" ] || die "$built/$f is not an $arch binary"
            cp "$built/$f" "$rel/bin/$f"
        done
        cp "$repo"/cni-conf/*.conflist "$rel/cni-conf/"
        # Completions and the manual page do not depend on the architecture: made by this build's
        # CLI when it runs here, else by a build for this machine.
        if ! make_share "$rel/share" "$built/$CLI"; then
            if [ ! -x "$target_dir/release/$CLI" ]; then
                (cd "$repo" && cargo build --release --locked -p k3s-sandbox) || die "build of $CLI for this machine failed"
            fi
            make_share "$rel/share" "$target_dir/release/$CLI" || die "$CLI cannot write its completions and manual page"
        fi
        cp "$repo/install.sh" "$rel/install.sh"
        cp "$repo/LICENSE" "$rel/LICENSE"
        release_readme "$version" "$arch" "$commit" > "$rel/README"
        printf 'name=sandbox-cni\nversion=%s\narch=%s\ntarget=%s\ncommit=%s\nsource_date_epoch=%s\nrustc=%s\nplugins=%s\n' \
            "$version" "$arch" "$triple" "$commit" "$epoch" "$rustc" "$PLUGINS" > "$rel/$RELEASE_FILE"
        find "$rel" -type d -exec chmod 0755 {} +
        find "$rel" -type f -exec chmod 0644 {} +
        chmod 0755 "$rel/bin/"* "$rel/install.sh"
        (cd "$rel" && find . -type f ! -name "$RELEASE_SUMS" | sed 's|^\./||' | LC_ALL=C sort | xargs sha256sum) > "$rel/$RELEASE_SUMS"
        chmod 0644 "$rel/$RELEASE_SUMS"
        out="$dist_dir/$name.tar.gz"
        tar --sort=name --format=gnu --owner=0 --group=0 --numeric-owner --mtime="@$epoch" \
            -C "$tmp/stage" -cf - "$name" | gzip -9n > "$out.tmp" || die "cannot write $out"
        mv -f "$out.tmp" "$out"
        say "wrote     $out"
        if [ "$build_deb" = 1 ]; then build_deb_from "$rel" "$arch" "$version" "$epoch"; fi
    done
    (cd "$dist_dir" && find . -maxdepth 1 -type f \( -name 'sandbox-cni-*.tar.gz' -o -name 'sandbox-cni_*.deb' \) | sed 's|^\./||' | LC_ALL=C sort | xargs sha256sum) > "$dist_dir/SHA256SUMS.tmp"
    mv -f "$dist_dir/SHA256SUMS.tmp" "$dist_dir/SHA256SUMS"
    say "wrote     $dist_dir/SHA256SUMS"
    cat "$dist_dir/SHA256SUMS"
}

if [ "$package" = 1 ]; then
    package_release
    exit 0
fi

# ---- uninstall -------------------------------------------------------------------------------------
if [ "$uninstall" = 1 ]; then
    [ -f "$manifest" ] || die "no manifest at $manifest: nothing was installed into $bin_dir by install.sh (use --bin-dir to name another directory)"
    removed=0; kept=0; restored=0
    awk '$1 == "file" { print $3 }' "$manifest" | sort -u > "$tmp/installed"
    while read -r path; do
        want=$(recorded_sha "$path")
        if [ ! -e "$path" ]; then
            :
        elif [ "$(sha "$path")" = "$want" ]; then
            [ "$dry_run" = 1 ] || rm -f "$path"
            say "removed   $path"; removed=$((removed + 1))
        else
            warn "$path changed since it was installed: left in place"; kept=$((kept + 1))
        fi
        backup=$(recorded_backup "$path")
        if [ -n "$backup" ] && [ -e "$backup" ]; then
            if [ -e "$path" ] && [ "$dry_run" = 0 ] && [ "$(sha "$path")" != "$want" ]; then
                warn "backup $backup not restored because $path is still there"
            else
                [ "$dry_run" = 1 ] || mv -f "$backup" "$path"
                say "restored  $path (from $backup)"; restored=$((restored + 1))
            fi
        fi
    done < "$tmp/installed"
    # The cnitool link, while it still points at the CLI.
    awk '$1 == "link" { print $2, $3 }' "$manifest" | sort -u | while read -r path target; do
        if [ -L "$path" ] && [ "$(readlink "$path")" = "$target" ]; then
            [ "$dry_run" = 1 ] || rm -f "$path"
            say "removed   $path"
        fi
    done
    if [ "$dry_run" = 1 ]; then
        say "dry run: $removed file(s) would be removed, $restored restored, $kept left in place; nothing was changed"
        exit 0
    fi
    rm -f "$manifest"
    say "sandbox-cni uninstalled: $removed removed, $restored restored, $kept left in place"
    exit 0
fi

# ---- build (or take a release) ---------------------------------------------------------------------
conf_src="$repo/cni-conf/$CONFLIST"
# Run from an unpacked release: install that release.
if [ -z "$from" ] && [ -f "$repo/$RELEASE_FILE" ] && [ -f "$repo/$RELEASE_SUMS" ]; then from=$repo; fi
# A directory of release artefacts (like dist/): take this machine's tarball from it.
if [ -n "$from" ] && [ -d "$from" ] && [ ! -f "$from/$RELEASE_FILE" ] && [ ! -e "$from/loopback" ]; then
    set -- "$from"/sandbox-cni-*-"$host_arch"-linux-musl.tar.gz
    if [ $# = 1 ] && [ -f "$1" ]; then
        from=$1
    elif [ $# -gt 1 ]; then
        die "$from holds several releases for $host_arch: name one with --from FILE.tar.gz"
    fi
fi
if [ -n "$from" ] && [ -f "$from" ]; then from=$(unpack_release "$from") || exit 1; fi
share_src=""
if [ -n "$from" ] && [ -f "$from/$RELEASE_FILE" ]; then
    verify_release "$from"
    conf_src="$from/cni-conf/$CONFLIST"
    [ -d "$from/share" ] && share_src="$from/share"
    from="$from/bin"
fi
if [ -z "$from" ]; then
    command -v cargo >/dev/null 2>&1 || die "cargo not found: install Rust (https://rustup.rs) or pass --from DIR with prebuilt binaries"
    arch=$(uname -m)
    musl="$arch-unknown-linux-musl"
    gnu="$arch-unknown-linux-gnu"
    if command -v rustup >/dev/null 2>&1 && { rustup target list --installed 2>/dev/null | grep -qx "$musl" || rustup target add "$musl" >/dev/null 2>&1; }; then
        say "building static binaries for $musl"
        (cd "$repo" && cargo build --release --locked --workspace --target "$musl") || die "build failed"
        from="$target_dir/$musl/release"
    else
        warn "the $musl target is not available: building glibc binaries with +crt-static instead"
        (cd "$repo" && RUSTFLAGS="${RUSTFLAGS:-} -C target-feature=+crt-static" cargo build --release --locked --workspace --target "$gnu") || die "build failed"
        from="$target_dir/$gnu/release"
    fi
fi
[ -d "$from" ] || die "$from is not a directory"

# ---- plan ------------------------------------------------------------------------------------------
# Each line of $tmp/plan: ACTION SOURCE TARGET, ACTION one of new|update|same|replace|conflict.
: > "$tmp/plan"
plan() {
    src=$1; dst=$2
    [ -e "$src" ] || [ -L "$src" ] || die "$src is missing: the build did not produce it"
    regular "$src" || die "$src is not a regular file (a symlink, pipe or device is never installed): nothing was installed"
    if [ ! -e "$dst" ] && [ ! -L "$dst" ]; then
        action=new
    elif [ -L "$dst" ] || [ ! -f "$dst" ]; then
        action=conflict
    elif [ "$(sha "$src")" = "$(sha "$dst")" ]; then
        action=same
    elif [ -n "$(recorded_sha "$dst")" ] && [ "$(recorded_sha "$dst")" = "$(sha "$dst")" ]; then
        action=update
    else
        action=conflict
    fi
    if [ "$action" = conflict ] && [ "$force" = 1 ]; then action=replace; fi
    printf '%s %s %s\n' "$action" "$src" "$dst" >> "$tmp/plan"
}

check_binaries "$from" "$( [ "$install_cli" = 1 ] && echo cli)"
for p in $PLUGINS; do plan "$from/$p" "$bin_dir/$p"; done
if [ "$install_conf" = 1 ]; then plan "$conf_src" "$conf_dir/$CONFLIST"; fi
if [ "$install_cli" = 1 ]; then
    plan "$from/$CLI" "$cli_dir/$CLI"
    # Completions and the manual page: the release's, else made by the CLI being installed.
    if [ -z "$share_src" ] && make_share "$tmp/share" "$from/$CLI"; then share_src="$tmp/share"; fi
    if [ -n "$share_src" ]; then
        for f in $SHARE_FILES; do plan "$share_src/$f" "$share_dir/$f"; done
    else
        warn "$from/$CLI cannot write its completions and manual page: they are not installed"
    fi
fi

if grep -q '^conflict ' "$tmp/plan"; then
    say "install.sh: these files exist and were not installed by sandbox-cni (or were changed since):" >&2
    awk '$1 == "conflict" { print "  " $3 }' "$tmp/plan" >&2
    say "Nothing was changed. Re-run with --force to replace them (a backup of each is kept and --uninstall restores it)." >&2
    exit 1
fi

# ---- self-test, before anything is installed --------------------------------------------------------
# The binaries about to be installed run from a scratch directory inside the bin dir (the same file
# system, so a noexec mount shows); a failure leaves the previous install untouched.
failures=0
check() { if "$@"; then :; else failures=$((failures + 1)); fi; }
plugin_version() {
    out=$(CNI_COMMAND=VERSION "$test_bin/$1" < /dev/null 2>&1) && case $out in *'"supportedVersions"'*'"1.0.0"'*) return 0 ;; esac
    warn "self-test: $1 VERSION answered: $out"; return 1
}
loopback_add_del() {
    conf='{"cniVersion":"0.3.1","name":"cni-loopback","type":"loopback"}'
    out=$(printf '%s' "$conf" | CNI_COMMAND=ADD CNI_CONTAINERID=sandbox-cni-selftest CNI_NETNS=/var/run/netns/sandbox-cni-selftest CNI_IFNAME=lo "$test_bin/loopback" 2>&1) \
        && case $out in *'"127.0.0.1/8"'*) ;; *) false ;; esac \
        && printf '%s' "$conf" | CNI_COMMAND=DEL CNI_CONTAINERID=sandbox-cni-selftest CNI_NETNS='' CNI_IFNAME=lo "$test_bin/loopback" >/dev/null 2>&1 \
        && return 0
    warn "self-test: loopback ADD/DEL failed: $out"; return 1
}
bridge_add_del() {
    data="$tmp/data"
    conf="{\"cniVersion\":\"1.0.0\",\"name\":\"sandbox-cni-selftest\",\"type\":\"bridge\",\"isGateway\":true,\"ipam\":{\"type\":\"host-local\",\"ranges\":[[{\"subnet\":\"10.254.0.0/29\"}]],\"dataDir\":\"$data\"}}"
    set -- CNI_CONTAINERID=sandbox-cni-selftest CNI_NETNS=/var/run/netns/sandbox-cni-selftest CNI_IFNAME=eth0 CNI_PATH="$test_bin"
    out=$(printf '%s' "$conf" | env CNI_COMMAND=ADD "$@" "$test_bin/bridge" 2>&1) \
        && case $out in *'"eth0"'*'"10.254.0.'*) ;; *) false ;; esac \
        && [ -n "$(find "$data/sandbox-cni-selftest" -name '10.254.0.*' 2>/dev/null)" ] \
        && printf '%s' "$conf" | env CNI_COMMAND=DEL "$@" "$test_bin/bridge" >/dev/null 2>&1 \
        && [ -z "$(find "$data/sandbox-cni-selftest" -name '10.254.0.*' 2>/dev/null)" ] \
        && return 0
    warn "self-test: bridge + host-local ADD/DEL failed: $out"; return 1
}
if [ "$self_test" = 1 ] && [ "$dry_run" = 0 ]; then
    made_bin=0
    if [ ! -d "$bin_dir" ]; then made_bin=1; fi
    mkdir -p "$bin_dir" || die "cannot create $bin_dir"
    test_bin=$(mktemp -d "$bin_dir/.sandbox-cni-selftest.XXXXXX") || die "cannot write into $bin_dir"
    trap 'rm -rf "$tmp" "$test_bin"' EXIT INT TERM
    for p in $PLUGINS; do
        { cp "$from/$p" "$test_bin/$p" && chmod 0755 "$test_bin/$p"; } || die "cannot write into $bin_dir"
    done
    for p in $PLUGINS; do check plugin_version "$p"; done
    check loopback_add_del
    check bridge_add_del
    rm -rf "$test_bin"
    if [ "$failures" -gt 0 ]; then
        if [ "$made_bin" = 1 ]; then rmdir "$bin_dir" 2>/dev/null || true; fi
        die "self-test: $failures check(s) failed (see warnings above): nothing was installed, the previous install is untouched"
    fi
    say "self-test: VERSION of $(echo "$PLUGINS" | wc -w) plugins, loopback ADD/DEL, bridge+host-local ADD/DEL: ok"
fi

# ---- install ---------------------------------------------------------------------------------------
record() { printf '%s\n' "$*" >> "$manifest"; }
changed=0; same=0
while read -r action src dst; do
    case $action in
        same) same=$((same + 1)); say "unchanged $dst"; continue ;;
    esac
    say "$(printf '%-9s' "$action") $dst"
    changed=$((changed + 1))
    [ "$dry_run" = 1 ] && continue
    dir=$(dirname "$dst")
    mkdir -p "$dir"
    mode=0755
    case $dst in *.conflist|"$share_dir"/*) mode=0644 ;; esac
    staged="$dir/.$(basename "$dst").sandbox-cni-new.$$"
    if ! { cp "$src" "$staged" && chmod "$mode" "$staged"; }; then rm -f "$staged"; die "cannot write into $dir"; fi
    if [ "$action" = replace ]; then
        backup="$dst$BACKUP_SUFFIX"
        [ -e "$backup" ] || cp -p "$dst" "$backup" || { rm -f "$staged"; die "cannot back up $dst"; }
        record "backup $dst $backup"
    fi
    mv -f "$staged" "$dst" || { rm -f "$staged"; die "cannot install $dst"; }
    record "file $(sha "$dst") $dst"
done < "$tmp/plan"

# A `cnitool` link to the CLI (it then acts as `k3s-sandbox cni`), only when no cnitool is on PATH.
cnitool_link="$cli_dir/cnitool"
if [ "$install_cli" = 1 ]; then
    if [ -L "$cnitool_link" ] && [ "$(readlink "$cnitool_link")" = "$CLI" ]; then
        [ "$dry_run" = 1 ] || record "link $cnitool_link $CLI"
    elif ! command -v cnitool >/dev/null 2>&1 && [ ! -e "$cnitool_link" ] && [ ! -L "$cnitool_link" ]; then
        say "link      $cnitool_link -> $CLI"
        if [ "$dry_run" = 0 ]; then
            ln -s "$CLI" "$cnitool_link" || die "cannot create $cnitool_link"
            record "link $cnitool_link $CLI"
        fi
    fi
fi

# Keep one manifest line per file: the newest.
if [ "$dry_run" = 0 ] && [ -f "$manifest" ]; then
    awk '{ key = $1 " " ($1 == "file" ? $3 : $2) } { last[key] = $0; if (!(key in seen)) { order[++n] = key; seen[key] = 1 } }
         END { for (i = 1; i <= n; i++) print last[order[i]] }' "$manifest" > "$tmp/manifest" && cat "$tmp/manifest" > "$manifest"
fi

if [ "$dry_run" = 1 ]; then
    say "dry run: $changed file(s) would change, $same already current; nothing was changed"
    exit 0
fi

# Warn when another network would win containerd's pick (it takes the first file in sort order).
if [ "$install_conf" = 1 ] && [ -d "$conf_dir" ]; then
    first=$(find "$conf_dir" -maxdepth 1 -type f \( -name '*.conf' -o -name '*.conflist' -o -name '*.json' \) | LC_ALL=C sort | head -n 1)
    if [ -n "$first" ] && [ "$(basename "$first")" != "$CONFLIST" ]; then
        warn "$(basename "$first") sorts before $CONFLIST in $conf_dir: containerd will use that network, not ours"
    fi
fi

say "sandbox-cni installed: $changed file(s) changed, $same already current; plugins in $bin_dir$( [ "$install_conf" = 1 ] && printf ', network in %s' "$conf_dir/$CONFLIST")$( [ "$install_cli" = 1 ] && printf ', CLI %s' "$cli_dir/$CLI")"
