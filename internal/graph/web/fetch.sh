#!/usr/bin/env bash
# Re-fetches the page's graph-layout libraries from the npm registry with `npm pack` (never run at
# build time: the files are committed and embedded). Bump a version here, run it, review the diff,
# and update NOTICE.md's versions and checksums.
set -euo pipefail
CYTOSCAPE_VERSION=3.35.0
CYTOSCAPE_DAGRE_VERSION=4.0.1

here=$(cd "$(dirname "$0")" && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cd "$tmp"
npm pack --silent "cytoscape@$CYTOSCAPE_VERSION" "cytoscape-dagre@$CYTOSCAPE_DAGRE_VERSION" >/dev/null
mkdir c d
tar -xzf "cytoscape-$CYTOSCAPE_VERSION.tgz" -C c
tar -xzf "cytoscape-dagre-$CYTOSCAPE_DAGRE_VERSION.tgz" -C d
cp c/package/dist/cytoscape.min.js "$here/cytoscape.min.js"
cp c/package/LICENSE "$here/LICENSE.cytoscape"
cp d/package/dist/cytoscape-dagre.min.js "$here/cytoscape-dagre.min.js"
cp d/package/LICENSE "$here/LICENSE.cytoscape-dagre"
cd "$here" && sha256sum cytoscape.min.js cytoscape-dagre.min.js
