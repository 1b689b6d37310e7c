#!/usr/bin/env bash
# The lint half of the demo: the example manifests, good and bad, in every output format.
set -uo pipefail
cd "$(dirname "$0")/.."
mg=bin/meshguard
step() { printf '\n\033[1m==> %s\033[0m\n' "$*"; }

step "meshguard policies list: the rule catalogue"
$mg policies list

step "meshguard lint examples/good (exit 0 expected)"
$mg lint --complete examples/good; echo "exit status: $?"

step "meshguard lint examples/bad (exit 1 expected: error findings)"
$mg lint examples/bad; echo "exit status: $?"

step "the same as JSON (first finding)"
$mg lint -o json examples/bad | head -16

step "the same as SARIF 2.1.0 (first result)"
$mg lint -o sarif examples/bad | grep -m1 -A 20 '"results"'

step "the same as JUnit XML (first test case)"
$mg lint -o junit examples/bad | head -12

step "the same as GitHub workflow annotations"
$mg lint -o github examples/bad | head -4

step "stdin: helm template ... | meshguard lint -"
cat examples/bad/typo.yaml | $mg lint -; echo "exit status: $?"
exit 0
