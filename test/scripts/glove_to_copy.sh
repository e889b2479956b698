#!/usr/bin/env bash
# glove_to_copy.sh: scripts/glove-to-copy.js (the converter behind
# scripts/get-vectors.sh) on generated inputs of the npm package's shape
# {"vectors": {"word": [v1 .. v100, l2norm, index], ...}}: the rows it writes,
# COPY escaping, entries split across read chunks, and every malformed input
# refused with a message naming it.  Prints "scripts: N passed, N failed".
set -uo pipefail
source "$(dirname "$0")/lib.sh"
conv=scripts/glove-to-copy.js

if ! command -v node >/dev/null; then
	bad "node is needed (scripts/setup.sh installs nodejs)"
	finish scripts
	exit
fi

# gen N: N words w0..w{N-1}, 102 numbers each (w3 gets exponents and
# negative zero); the expected COPY rows go to $work/want
gen() {
	node -e '
		const n = +process.argv[1], fs = require("fs");
		let json = "{\"model\":\"x\",\"vectors\":{", want = "";
		for (let i = 0; i < n; i++) {
			const v = [];
			for (let k = 0; k < 102; k++) v.push(i === 3 ? (k % 2 ? "-1.5e-3" : "-0") : String(((i * 31 + k * 7) % 1000) / 997 - 0.5));
			json += (i ? "," : "") + "\"w" + i + "\":[" + v.join(",") + "]";
			want += "w" + i + "\t{" + v.slice(0, 100).join(",") + "}\n";
		}
		process.stdout.write(json + "},\"meta\":{}}\n");
		fs.writeFileSync(process.argv[2], want);
	' "$1" "$work/want"
}

# 1. rows as written, first 100 numbers of each; 20,000 words (several read
#    chunks, so entries are split between them)
gen 20000 >"$work/big.json"
if node "$conv" <"$work/big.json" >"$work/got" 2>"$work/err" && cmp -s "$work/got" "$work/want"; then ok; else
	bad "20,000 generated words: output differs from the expected rows ($(head -c 200 "$work/err"))"; fi
grep -q '^glove-to-copy: 20000 words of 100 dimensions$' "$work/err" && ok || bad "no word count on stderr"

# 2. a truncated input, and an input fed a few bytes at a time through a pipe
if head -c 40000 "$work/big.json" | node "$conv" >/dev/null 2>"$work/err"; then
	bad "a truncated input was accepted"
else
	grep -q 'ends inside the vectors' "$work/err" && ok || bad "truncated input: $(cat "$work/err")"
fi
gen 50 >"$work/small.json"
node -e '
	const d = require("fs").readFileSync(process.argv[1]); let i = 0;
	(function next() { if (i >= d.length) return; const c = d.subarray(i, i + 5); i += 5; process.stdout.write(c, next); })();
' "$work/small.json" | node "$conv" >"$work/got" 2>/dev/null && cmp -s "$work/got" "$work/want" && ok ||
	bad "an input fed 5 bytes at a time converts differently"

# 3. COPY escaping of words: tab, newline, backslash, a quote, non-ASCII
v=$(node -e 'process.stdout.write(Array(102).fill("0.25").join(","))')
printf '{"vectors":{"a\\tb":[%s],"c\\nd":[%s],"e\\\\f":[%s],"g\\"h":[%s],"\\u4e2d\\u6587":[%s]}}' "$v" "$v" "$v" "$v" "$v" >"$work/esc.json"
hv=$(node -e 'process.stdout.write(Array(100).fill("0.25").join(","))')
printf 'a\\tb\t{%s}\nc\\nd\t{%s}\ne\\\\f\t{%s}\ng"h\t{%s}\n中文\t{%s}\n' "$hv" "$hv" "$hv" "$hv" "$hv" >"$work/want"
node "$conv" <"$work/esc.json" >"$work/got" 2>/dev/null && cmp -s "$work/got" "$work/want" && ok ||
	bad "escaped words: $(head -c 300 "$work/got")"

# 4. malformed inputs: each refused (exit 1) with its message
refuse() {	# refuse NAME PATTERN JSON
	if printf '%s' "$3" | node "$conv" >/dev/null 2>"$work/err"; then bad "$1: accepted"; return; fi
	grep -qE "$2" "$work/err" && ok || bad "$1: message '$(cat "$work/err")' lacks /$2/"
}
n99=$(node -e 'process.stdout.write(Array(99).fill("1").join(","))')
n101=$(node -e 'process.stdout.write(Array(101).fill("1").join(","))')
refuse "99 numbers" 'word "a": not 100 numbers' "{\"vectors\":{\"a\":[$n99]}}"
refuse "NaN after the 100 used" 'word "a": not 100 numbers' "{\"vectors\":{\"a\":[$n101,NaN]}}"
refuse "NaN among the first 100" 'word "a": not 100 numbers' "{\"vectors\":{\"a\":[NaN,$n101]}}"
refuse "a string value" 'word "a": not 100 numbers' "{\"vectors\":{\"a\":[\"1\",$n101]}}"
refuse "a leading plus" 'word "a": not 100 numbers' "{\"vectors\":{\"a\":[+1,$n101]}}"
refuse "a value that is not an array" 'word "a": no array of numbers' "{\"vectors\":{\"a\":{\"x\":[$n101]}}}"
refuse "no vectors object" 'no "vectors" object' '{"model":"x"}'
refuse "empty input" 'no "vectors" object' ''
refuse "a key that is not a string" 'expected a word' "{\"vectors\":{1:[$n101]}}"

finish scripts
