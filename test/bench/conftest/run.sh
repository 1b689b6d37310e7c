#!/usr/bin/env bash
# Compares `meshguard lint` with `conftest test` on the same generated corpus (10,000 Istio
# objects by default), twice:
#   - the rules: conftest runs policy/*.rego, meshguard's per-object retry, outlier detection,
#     TLS, mTLS and sampling rules written as conftest users write Rego, against meshguard with
#     the cluster's validation switched off (--disable MG001,MG003);
#   - the rules and the CRD schema: conftest also runs schema/schema.rego (OPA's
#     json.match_schema against the Istio CRDs' schemas), against meshguard as it runs by
#     default, the CRD schema, its CEL rules and istiod's validation included.
# meshguard does more in each (strict decoding, cross-object and inventory rules).
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
mkdir -p "$work/data"
go run ./test/bench/cmd/crdschemas internal/validate/crds.gen.json "$work/data/crd_schemas.json"
mkdir -p "$work/policy-schema"
cp test/bench/conftest/policy/*.rego test/bench/conftest/schema/*.rego "$work/policy-schema/"
# The schema policy must see the schemas: a string for an integer is refused.
printf 'apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: bad, namespace: x}\nspec:\n  hosts: [a]\n  http:\n  - retries: {attempts: "2"}\n' >"$work/bad.yaml"
out=$("$conftest" test --policy "$work/policy-schema" --data "$work/data" --no-color "$work/bad.yaml" || true)
grep -q 'MG001 spec.http.0.retries.attempts' <<<"$out" || { echo "schema.rego did not check the CRD schema: $out" >&2; exit 1; }

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
m_rules=$(best "$work/meshguard" lint --complete --disable MG001,MG003 "$work/corpus")
c_rules=$(best "$conftest" test --policy test/bench/conftest/policy --no-color "$work/corpus")
m=$(best "$work/meshguard" lint --complete "$work/corpus")
c=$(best "$conftest" test --policy "$work/policy-schema" --data "$work/data" --no-color "$work/corpus")
echo "objects: $N, best of $RUNS runs"
echo "the rules:"
echo "  meshguard lint --complete --disable MG001,MG003: ${m_rules}s"
echo "  conftest test:                                   ${c_rules}s"
echo "$m_rules $c_rules" | awk '{printf "  conftest / meshguard:                            %.1fx\n", $2/$1}'
echo "the rules and the CRD schema:"
echo "  meshguard lint --complete:                       ${m}s"
echo "  conftest test (with schema.rego):                ${c}s"
echo "$m $c" | awk '{printf "  conftest / meshguard:                            %.1fx\n", $2/$1}'
