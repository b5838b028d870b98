"""The one Python reader of plugins/list.txt (the project's one plugin list), imported by
bench/run.py, tests/gvisor/cni_suite.py and tests/e2e/containerd-e2e.

plugins/list.sh is its shell twin and crates/k3s-sandbox/build.rs its Rust one; all three read the
same format: one plugin name per line (lowercase letters, digits, '-'), surrounding white space
ignored, blank lines and lines starting with `#` skipped.

    sys.path.insert(0, os.path.join(REPO, "plugins"))
    import plugin_list
    plugin_list.PLUGINS  # ("loopback", "host-local", ...), in the file's order

Run as a script (`python3 plugins/plugin_list.py [FILE]`) it prints the names space-separated.
"""

import os
import re
import sys

LIST = os.path.join(os.path.dirname(os.path.abspath(__file__)), "list.txt")
_NAME = re.compile(r"[a-z0-9-]+")


class PluginListError(Exception):
    pass


def read(path=LIST):
    """The plugin names in `path`, a tuple in the file's order; PluginListError when the file cannot
    be read, names no plugin, or has a line that is not a plugin name."""
    try:
        with open(path, encoding="utf-8") as f:
            lines = f.read().splitlines()
    except (OSError, UnicodeDecodeError) as e:
        raise PluginListError(f"cannot read the plugin list {path}: {e}") from e
    names = []
    for number, line in enumerate(lines, 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if not _NAME.fullmatch(line):
            raise PluginListError(f"{path}:{number}: {line!r} is not a plugin name (lowercase letters, digits, '-')")
        names.append(line)
    if not names:
        raise PluginListError(f"{path} names no plugin")
    return tuple(names)


PLUGINS = read()

if __name__ == "__main__":
    try:
        print(" ".join(read(sys.argv[1]) if len(sys.argv) > 1 else PLUGINS))
    except PluginListError as e:
        print(f"plugin_list.py: {e}", file=sys.stderr)
        sys.exit(1)
