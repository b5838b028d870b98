# shellcheck shell=sh
# The one shell reader of plugins/list.txt (the project's one plugin list), sourced by install.sh,
# tests/run.sh and bench/size-check. POSIX sh, so install.sh can source it. plugins/plugin_list.py
# is its Python twin and crates/k3s-sandbox/build.rs its Rust one; all three read the same format:
# one plugin name per line (lowercase letters, digits, '-'), surrounding white space ignored, blank
# lines and lines starting with `#` skipped.
#
# plugin_list FILE: prints the names in FILE, space-separated on one line. Fails (status 1, the
# reason on stderr, nothing on stdout) when FILE cannot be read, names no plugin, or has a line that
# is not a plugin name.
plugin_list() {
    [ -r "$1" ] || { printf 'cannot read the plugin list %s\n' "$1" >&2; return 1; }
    awk -v file="$1" '
        { line = $0; gsub(/^[[:space:]]+|[[:space:]]+$/, "", line) }
        line == "" || line ~ /^#/ { next }
        line !~ /^[a-z0-9-]+$/ {
            printf "%s:%d: \"%s\" is not a plugin name (lowercase letters, digits, '"'"'-'"'"')\n", file, NR, line > "/dev/stderr"
            bad = 1; exit 1
        }
        { out = out sep line; sep = " " }
        END {
            if (bad) exit 1
            if (out == "") { printf "%s names no plugin\n", file > "/dev/stderr"; exit 1 }
            print out
        }' "$1"
}
