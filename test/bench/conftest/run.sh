#!/usr/bin/env bash
# Compares `meshguard lint` with `conftest test` on the same generated corpus (10,000 Istio
# objects by default), conftest running policy/*.rego: meshguard's per-object retry, outlier
# detection, TLS, mTLS and sampling rules written as conftest users write Rego. meshguard does
# more in its run (strict decoding, the cluster's validation, cross-object and inventory rules).
#
# Usage: test/bench/conftest/run.sh [N] [RUNS]
# conftest is built from the Go module proxy and cached outside the clone, like the other tools.
set -euo pipefail
cd "$(dirname "$0")/../../.."
N=${1:-10000}
RUNS=${2:-3}
CONFTEST_VERSION=${CONFTEST_VERSION:-v0.71.1}
CACHE=${MESHGUARD_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/meshguard}
conftest="$CACHE/conftest-$CONFTEST_VERSION/conftest"
if [ ! -x "$conftest" ]; then
  GOBIN="$(dirname "$conftest")" go install "github.com/open-policy-agent/conftest@$CONFTEST_VERSION"
fi
work=$(mktemp -d "${TMPDIR:-/tmp}/meshguard-bench.XXXXXX")
trap 'rm -rf "$work"' EXIT
go build -trimpath -o "$work/meshguard" ./cmd/meshguard
go run ./test/bench/cmd/corpus "$work/corpus" "$N"

# best of RUNS wall-clock seconds of a command; exit status 1 (findings) is expected.
best() {
  local best=""
  for _ in $(seq "$RUNS"); do
    local start end
    start=$(date +%s.%N)
    "$@" >/dev/null 2>&1 || [ $? -eq 1 ]
    end=$(date +%s.%N)
    best=$(echo "$start $end $best" | awk '{t=$2-$1; if ($3=="" || t<$3) print t; else print $3}')
  done
  echo "$best"
}
m=$(best "$work/meshguard" lint --complete "$work/corpus")
c=$(best "$conftest" test --policy test/bench/conftest/policy --no-color "$work/corpus")
echo "objects: $N, best of $RUNS runs"
echo "meshguard lint --complete: ${m}s"
echo "conftest test:             ${c}s"
echo "$m $c" | awk '{printf "conftest / meshguard:      %.1fx\n", $2/$1}'
