#!/bin/sh
# install.sh: build sandbox-cni and install its CNI plugins, default network and k3s-sandbox CLI.
#
# Safe to re-run: files already current are left alone; files this script did not install are never
# overwritten unless --force (which keeps a backup); a manifest with sha256 sums lets --uninstall remove
# exactly what was installed and put the backups back.
set -eu

PLUGINS="loopback host-local bridge portmap bandwidth firewall tuning"
CLI="k3s-sandbox"
CONFLIST="10-sandbox-cni.conflist"
MANIFEST_NAME=".sandbox-cni.manifest"
BACKUP_SUFFIX=".sandbox-cni-backup"

bin_dir=/opt/cni/bin
conf_dir=/etc/cni/net.d
cli_dir=/usr/local/bin
install_conf=1
install_cli=1
force=0
dry_run=0
uninstall=0
from=""
self_test=1

usage() {
    cat <<'EOF'
Usage: ./install.sh [OPTIONS]

Builds sandbox-cni (cargo build --release --locked --workspace, static musl binaries where the target can be
added) and installs:
  - the CNI plugins (loopback host-local bridge portmap bandwidth firewall tuning) into --bin-dir,
  - the default network 10-sandbox-cni.conflist into --conf-dir,
  - the k3s-sandbox CLI into --cli-dir, with a `cnitool` link to it when no cnitool is on PATH,
then runs a self-test of what it installed.

Options:
  --bin-dir DIR    CNI plugin directory (default /opt/cni/bin)
  --conf-dir DIR   CNI configuration directory (default /etc/cni/net.d)
  --cli-dir DIR    where k3s-sandbox goes (default /usr/local/bin)
  --no-conf        do not install the default conflist
  --no-cli         do not install k3s-sandbox
  --force          replace files this script did not install, keeping a backup
                   (<file>.sandbox-cni-backup) that --uninstall restores
  --dry-run        show what would change; change nothing
  --uninstall      remove what an earlier run installed (per the manifest in --bin-dir) and
                   restore backups; files changed since are left in place
  --from DIR       install prebuilt binaries from DIR instead of building
  --no-self-test   skip the self-test
  -h, --help       this text

Exit status: 0 on success, 1 on failure, 2 on a usage error.
EOF
}

say() { printf '%s\n' "$*"; }
warn() { printf 'install.sh: warning: %s\n' "$*" >&2; }
die() { printf 'install.sh: error: %s\n' "$*" >&2; exit 1; }

need_arg() {
    if [ $# -lt 2 ] || [ -z "$2" ]; then printf 'install.sh: %s needs a value\n' "$1" >&2; exit 2; fi
}

while [ $# -gt 0 ]; do
    case $1 in
        --bin-dir) need_arg "$@"; bin_dir=$2; shift 2 ;;
        --conf-dir) need_arg "$@"; conf_dir=$2; shift 2 ;;
        --cli-dir) need_arg "$@"; cli_dir=$2; shift 2 ;;
        --from) need_arg "$@"; from=$2; shift 2 ;;
        --no-conf) install_conf=0; shift ;;
        --no-cli) install_cli=0; shift ;;
        --force) force=1; shift ;;
        --dry-run) dry_run=1; shift ;;
        --uninstall) uninstall=1; shift ;;
        --no-self-test) self_test=0; shift ;;
        -h|--help) usage; exit 0 ;;
        *) printf 'install.sh: unknown option %s (see --help)\n' "$1" >&2; exit 2 ;;
    esac
done

for d in "$bin_dir" "$conf_dir" "$cli_dir" "$from"; do
    case $d in *[[:space:]]*) printf 'install.sh: directory names with white space are not supported: %s\n' "$d" >&2; exit 2 ;; esac
done
repo=$(cd "$(dirname "$0")" && pwd)
manifest="$bin_dir/$MANIFEST_NAME"
tmp=$(mktemp -d "${TMPDIR:-/tmp}/sandbox-cni-install.XXXXXX")
trap 'rm -rf "$tmp"' EXIT INT TERM

sha() { sha256sum "$1" | cut -d' ' -f1; }

# The sha256 the manifest recorded for a path, or nothing.
recorded_sha() { [ -f "$manifest" ] && awk -v p="$1" '$1 == "file" && $3 == p { print $2 }' "$manifest" | tail -n 1; }
recorded_backup() { [ -f "$manifest" ] && awk -v p="$1" '$1 == "backup" && $2 == p { print $3 }' "$manifest" | tail -n 1; }

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

# ---- build -----------------------------------------------------------------------------------------
if [ -z "$from" ]; then
    command -v cargo >/dev/null 2>&1 || die "cargo not found: install Rust (https://rustup.rs) or pass --from DIR with prebuilt binaries"
    arch=$(uname -m)
    musl="$arch-unknown-linux-musl"
    gnu="$arch-unknown-linux-gnu"
    if command -v rustup >/dev/null 2>&1 && { rustup target list --installed 2>/dev/null | grep -qx "$musl" || rustup target add "$musl" >/dev/null 2>&1; }; then
        say "building static binaries for $musl"
        (cd "$repo" && cargo build --release --locked --workspace --target "$musl") || die "build failed"
        from="$repo/target/$musl/release"
    else
        warn "the $musl target is not available: building glibc binaries with +crt-static instead"
        (cd "$repo" && RUSTFLAGS="${RUSTFLAGS:-} -C target-feature=+crt-static" cargo build --release --locked --workspace --target "$gnu") || die "build failed"
        from="$repo/target/$gnu/release"
    fi
fi
[ -d "$from" ] || die "$from is not a directory"

# ---- plan ------------------------------------------------------------------------------------------
# Each line of $tmp/plan: ACTION SOURCE TARGET, ACTION one of new|update|same|replace|conflict.
: > "$tmp/plan"
plan() {
    src=$1; dst=$2
    [ -f "$src" ] || die "$src is missing: the build did not produce it"
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

for p in $PLUGINS; do plan "$from/$p" "$bin_dir/$p"; done
if [ "$install_conf" = 1 ]; then plan "$repo/cni-conf/$CONFLIST" "$conf_dir/$CONFLIST"; fi
if [ "$install_cli" = 1 ]; then plan "$from/$CLI" "$cli_dir/$CLI"; fi

if grep -q '^conflict ' "$tmp/plan"; then
    say "install.sh: these files exist and were not installed by sandbox-cni (or were changed since):" >&2
    awk '$1 == "conflict" { print "  " $3 }' "$tmp/plan" >&2
    say "Nothing was changed. Re-run with --force to replace them (a backup of each is kept and --uninstall restores it)." >&2
    exit 1
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
    case $dst in *.conflist) mode=0644 ;; esac
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

# ---- self-test -------------------------------------------------------------------------------------
failures=0
check() { if "$@"; then :; else failures=$((failures + 1)); fi; }
plugin_version() {
    out=$(CNI_COMMAND=VERSION "$bin_dir/$1" < /dev/null 2>&1) && case $out in *'"supportedVersions"'*'"1.0.0"'*) return 0 ;; esac
    warn "self-test: $1 VERSION answered: $out"; return 1
}
loopback_add_del() {
    conf='{"cniVersion":"0.3.1","name":"cni-loopback","type":"loopback"}'
    out=$(printf '%s' "$conf" | CNI_COMMAND=ADD CNI_CONTAINERID=sandbox-cni-selftest CNI_NETNS=/var/run/netns/sandbox-cni-selftest CNI_IFNAME=lo "$bin_dir/loopback" 2>&1) \
        && case $out in *'"127.0.0.1/8"'*) ;; *) false ;; esac \
        && printf '%s' "$conf" | CNI_COMMAND=DEL CNI_CONTAINERID=sandbox-cni-selftest CNI_NETNS='' CNI_IFNAME=lo "$bin_dir/loopback" >/dev/null 2>&1 \
        && return 0
    warn "self-test: loopback ADD/DEL failed: $out"; return 1
}
bridge_add_del() {
    data="$tmp/data"
    conf="{\"cniVersion\":\"1.0.0\",\"name\":\"sandbox-cni-selftest\",\"type\":\"bridge\",\"isGateway\":true,\"ipam\":{\"type\":\"host-local\",\"ranges\":[[{\"subnet\":\"10.254.0.0/29\"}]],\"dataDir\":\"$data\"}}"
    set -- CNI_CONTAINERID=sandbox-cni-selftest CNI_NETNS=/var/run/netns/sandbox-cni-selftest CNI_IFNAME=eth0 CNI_PATH="$bin_dir"
    out=$(printf '%s' "$conf" | env CNI_COMMAND=ADD "$@" "$bin_dir/bridge" 2>&1) \
        && case $out in *'"eth0"'*'"10.254.0.'*) ;; *) false ;; esac \
        && [ -n "$(find "$data/sandbox-cni-selftest" -name '10.254.0.*' 2>/dev/null)" ] \
        && printf '%s' "$conf" | env CNI_COMMAND=DEL "$@" "$bin_dir/bridge" >/dev/null 2>&1 \
        && [ -z "$(find "$data/sandbox-cni-selftest" -name '10.254.0.*' 2>/dev/null)" ] \
        && return 0
    warn "self-test: bridge + host-local ADD/DEL failed: $out"; return 1
}
if [ "$self_test" = 1 ]; then
    for p in $PLUGINS; do check plugin_version "$p"; done
    check loopback_add_del
    check bridge_add_del
    if [ "$failures" -gt 0 ]; then die "self-test: $failures check(s) failed (see warnings above)"; fi
    say "self-test: VERSION of $(echo "$PLUGINS" | wc -w) plugins, loopback ADD/DEL, bridge+host-local ADD/DEL: ok"
fi

say "sandbox-cni installed: $changed file(s) changed, $same already current; plugins in $bin_dir$( [ "$install_conf" = 1 ] && printf ', network in %s' "$conf_dir/$CONFLIST")$( [ "$install_cli" = 1 ] && printf ', CLI %s' "$cli_dir/$CLI")"
