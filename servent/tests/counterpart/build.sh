#!/usr/bin/env bash
# Builds the gtk-gnutella our interop tests run against: the shared counterpart
# (../shared/counterparts/gtk-gnutella: its build.sh, source archive and loopback
# test patch, only read) plus browse-shell.patch beside this script, a `search
# browse IP:PORT` shell command that calls gtk-gnutella's own search_browse(), so
# a headless gtk-gnutella can browse a host. One build serves every test.
# Usage: build.sh [OUT]   (default: ${TMPDIR:-/tmp}/gtkg-browse-build). Prints the
# binary's path last. OUT/kit links the shared build.sh and archive and holds both
# patches joined, so the shared build.sh's cache stamp covers both: a finished
# build is reused, a changed patch rebuilds.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
SHARED=$(cd "${GTKG_COUNTERPART:-$HERE/../../../../shared/counterparts/gtk-gnutella}" && pwd)
OUT=$(mkdir -p "${1:-${TMPDIR:-/tmp}/gtkg-browse-build}" && cd "${1:-${TMPDIR:-/tmp}/gtkg-browse-build}" && pwd)
KIT="$OUT/kit"
mkdir -p "$KIT"
ln -sfn "$SHARED/build.sh" "$KIT/build.sh"
ln -sfn "$SHARED/gtk-gnutella-1.2.3-src.tar.xz" "$KIT/gtk-gnutella-1.2.3-src.tar.xz"
cat "$SHARED/loopback-test.patch" "$HERE/browse-shell.patch" > "$KIT/loopback-test.patch.new"
if cmp -s "$KIT/loopback-test.patch.new" "$KIT/loopback-test.patch"; then
  rm "$KIT/loopback-test.patch.new"
else
  mv "$KIT/loopback-test.patch.new" "$KIT/loopback-test.patch"
fi
bash "$KIT/build.sh" "$OUT"
