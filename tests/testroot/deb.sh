#!/usr/bin/env bash
# The sandbox-cni .deb through dpkg, inside a throwaway overlay of the test root (never on the host):
#
#   tests/testroot/testroot.sh run --scratch --ro-bind DIST:/dist --ro-bind tests/testroot/deb.sh:/deb.sh \
#       -- bash /deb.sh PLUGIN...
#
# Next to Debian's containernetworking-plugins (1.9.1 in the root, in /usr/lib/cni) and a plugin that
# no package owns (/opt/cni/bin/flannel, put there by hand): dpkg -i refuses to overwrite an unowned
# file of its own (/opt/cni/bin/bridge) and leaves the package not installed; then dpkg -i puts every
# PLUGIN, k3s-sandbox and the example conflist (never a live one) in place; dpkg -r leaves the
# package's config files; dpkg -P leaves nothing, and the unowned plugin is untouched throughout.
set -uo pipefail

[ $# -gt 0 ] || { echo "usage: deb.sh PLUGIN..." >&2; exit 2; }
shopt -s nullglob
debs=(/dist/sandbox-cni_*_amd64.deb)
arm=(/dist/sandbox-cni_*_arm64.deb)
if [ ${#debs[@]} != 1 ] || [ ${#arm[@]} != 1 ]; then echo "want one amd64 and one arm64 .deb in /dist, found: ${debs[*]} ${arm[*]}" >&2; exit 1; fi
deb=${debs[0]}
rc=0
fail() { echo "FAIL: $*" >&2; rc=1; }
state() { dpkg-query -W -f='${db:Status-Status}' sandbox-cni 2>/dev/null; }
snapshot() { find /opt/cni /etc/cni /usr/bin/k3s-sandbox /usr/share/doc/sandbox-cni /usr/lib/cni 2>/dev/null | LC_ALL=C sort; }
unowned_sum() { sha256sum /opt/cni/bin/flannel 2>/dev/null; }

echo "dpkg $(dpkg-query -W -f='${Version}' dpkg), next to containernetworking-plugins $(dpkg-query -W -f='${Version}' containernetworking-plugins)"
listing=$(dpkg-deb --contents "${arm[0]}") || fail "dpkg-deb --contents ${arm[0]}"
grep -q ' ./opt/cni/bin/host-local$' <<<"$listing" || fail "the arm64 .deb has no host-local"
case $(state) in ''|not-installed) ;; *) echo "sandbox-cni is already installed in the root: the overlay is not fresh" >&2; exit 1 ;; esac
[ -x /usr/lib/cni/host-local ] || fail "containernetworking-plugins has no /usr/lib/cni/host-local"

mkdir -p /opt/cni/bin
printf '#!/bin/sh\n# flannel, put here by hand\n' >/opt/cni/bin/flannel && chmod 755 /opt/cni/bin/flannel
dpkg-query -S /opt/cni/bin/flannel >/dev/null 2>&1 && fail "a package owns /opt/cni/bin/flannel"
before=$(snapshot)
unowned=$(unowned_sum)

# One of the package's own paths, unowned: the preinst refuses, nothing changes.
printf '#!/bin/sh\n# not ours\n' >/opt/cni/bin/bridge
if dpkg -i "$deb"; then fail "dpkg -i overwrote a plugin no package owns"; fi
grep -q 'not ours' /opt/cni/bin/bridge || fail "the unowned bridge was changed"
case $(state) in ''|not-installed) ;; *) fail "a refused install left the package $(state)" ;; esac
rm -f /opt/cni/bin/bridge
[ "$(snapshot)" = "$before" ] || { fail "the refused install left files:"; diff <(echo "$before") <(snapshot) >&2; }

dpkg -i "$deb" || { echo "FAIL: dpkg -i" >&2; exit 1; }
[ "$(state)" = installed ] || fail "after dpkg -i the package is $(state)"
for p in "$@"; do
    [ -x "/opt/cni/bin/$p" ] || fail "/opt/cni/bin/$p missing"
    [ "$(dpkg-query -S "/opt/cni/bin/$p" 2>/dev/null)" = "sandbox-cni: /opt/cni/bin/$p" ] || fail "dpkg does not list /opt/cni/bin/$p as sandbox-cni's"
done
/usr/bin/k3s-sandbox --help >/dev/null || fail "/usr/bin/k3s-sandbox --help"
[ -f /etc/cni/net.d/10-sandbox-cni.conflist.example ] || fail "no example conflist"
[ ! -e /etc/cni/net.d/10-sandbox-cni.conflist ] || fail "the package wrote a live conflist"
CNI_COMMAND=VERSION /opt/cni/bin/host-local </dev/null | grep -q supportedVersions || fail "host-local VERSION"
CNI_COMMAND=VERSION /usr/lib/cni/host-local </dev/null | grep -q supportedVersions || fail "the reference host-local stopped working"
[ "$(unowned_sum)" = "$unowned" ] || fail "dpkg -i changed the unowned /opt/cni/bin/flannel"

dpkg -r sandbox-cni || fail "dpkg -r"
[ "$(dpkg-query -W -f='${Status}' sandbox-cni 2>/dev/null)" = "deinstall ok config-files" ] || fail "after dpkg -r: not config-files"
for p in "$@"; do [ ! -e "/opt/cni/bin/$p" ] || fail "dpkg -r left /opt/cni/bin/$p"; done
dpkg -P sandbox-cni || fail "dpkg -P"
case $(state) in ''|not-installed) ;; *) fail "after dpkg -P the package is $(state)" ;; esac
after=$(snapshot)
if [ "$before" != "$after" ]; then fail "dpkg -r/-P left files behind or removed others:"; diff <(echo "$before") <(echo "$after") >&2; fi
[ "$(unowned_sum)" = "$unowned" ] || fail "the unowned /opt/cni/bin/flannel changed"
dpkg -s containernetworking-plugins >/dev/null 2>&1 || fail "containernetworking-plugins was removed"
[ $rc = 0 ] && echo "ok: refused over an unowned plugin; dpkg -i, -r, -P next to containernetworking-plugins and an unowned plugin"
exit $rc
