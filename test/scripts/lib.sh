# lib.sh: what the test/scripts tests share (sourced, not run): a work
# directory removed on exit, the pass and fail counts, and the summary line.
#
#   source "$(dirname "$0")/lib.sh"   # then cd'd to the repository root
#   ok; bad "what went wrong"; ...; finish NAME   # "NAME: N passed, N failed", the exit status
cd "$(dirname "$0")/../.." || exit 1
work=$(mktemp -d "${TMPDIR:-/tmp}/cai-scripts.XXXXXX") || exit 1
trap 'rm -rf "$work"' EXIT
passed=0
failed=0
ok() { passed=$((passed + 1)); }
bad() { echo "FAIL $*"; failed=$((failed + 1)); }
finish() {
	echo "$1: $passed passed, $failed failed"
	[ "$failed" -eq 0 ]
}
