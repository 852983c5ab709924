#!/usr/bin/env bash
# `switchyard tokenizer train`: trains on 20 Brown files (plain text by tests/reference/brown.mjs),
# vocab 1024; the written tokenizer.json gives the same ids in our runtime (`switchyard tokenize`)
# and in npm's @lenml/tokenizers (tests/reference/encode_with_npm.mjs) on every file, the Brown
# validation files among them, and on the whole text; the summary reports merges and bytes/token;
# a .json --out writes just that file. Bad input (empty data, too small a vocabulary, an
# unwritable --out, a missing path) gives one clear error and exit 1.
set -uo pipefail
bin=$1
src=${SY_SOURCE_DIR:?}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*"; exit 1; }

mkdir -p "$tmp/brown20"
(cd "$src" && node --input-type=module -e '
import { brownFiles, brownPlain } from "./tests/reference/brown.mjs";
import { writeFileSync } from "node:fs";
for (const f of brownFiles().filter((_, i) => i % 25 === 0)) writeFileSync(process.argv[1] + "/" + f + ".txt", brownPlain([f]));
' "$tmp/brown20") || fail "node could not write the Brown subset"
[[ $(ls "$tmp/brown20" | wc -l) == 20 ]] || fail "expected 20 Brown files"

"$bin" tokenizer train --data "$tmp/brown20" --vocab-size 1024 --out "$tmp/tok" > "$tmp/out" 2> "$tmp/err" ||
  fail "train: exit $? ($(cat "$tmp/err"))"
cat "$tmp/out"
grep -q "^data: .*: 18 training files .*, 2 validation files" "$tmp/out" || fail "summary: no data line"
grep -q "^merges: 765 (stopped: vocab_size), vocabulary 1024 = 256 bytes + 765 merged tokens + 3 special" "$tmp/out" ||
  fail "summary: wrong merges line"
grep -Eq "^validation: [0-9]+ bytes -> [0-9]+ tokens = [0-9.]+ bytes/token" "$tmp/out" || fail "summary: no bytes/token"
[[ -f $tmp/tok/tokenizer.json && -f $tmp/tok/tokenizer_config.json ]] || fail "missing output files"
[[ ! -e $tmp/tok/tokenizer.json.tmp ]] || fail "temporary file left behind"

# Same ids in our runtime and in the npm library, file by file and for all of it at once.
cat "$tmp"/brown20/*.txt > "$tmp/all.txt"
files=("$tmp"/brown20/*.txt "$tmp/all.txt")
node "$src/tests/reference/encode_with_npm.mjs" "$tmp/tok/tokenizer.json" "${files[@]}" > "$tmp/npm.txt" ||
  fail "npm tokenizer could not load or encode"
: > "$tmp/ours.txt"
for f in "${files[@]}"; do "$bin" tokenize -m "$tmp/tok" -f "$f" >> "$tmp/ours.txt" || fail "tokenize $f"; done
[[ $(wc -l < "$tmp/npm.txt") == 21 ]] || fail "npm output has $(wc -l < "$tmp/npm.txt") lines"
cmp -s "$tmp/npm.txt" "$tmp/ours.txt" || fail "ids differ between switchyard tokenize and @lenml/tokenizers"
echo "ids identical (npm vs runtime): $(wc -w < "$tmp/ours.txt") tokens over 21 texts"

# --out as a file.
"$bin" tokenizer train --data "$tmp/brown20" --vocab-size 300 --out "$tmp/one/t.json" > /dev/null 2>&1 ||
  fail "--out FILE.json: exit $?"
[[ -f $tmp/one/t.json && ! -e $tmp/one/tokenizer_config.json ]] || fail "--out FILE.json: wrong files"

# Bad input: exit 1 and one clear message.
expect_error() {  # expect_error PATTERN ARGS...
  local pat=$1; shift
  "$bin" tokenizer train "$@" > "$tmp/o" 2> "$tmp/e"; local rc=$?
  [[ $rc == 1 ]] || fail "$*: exit $rc, expected 1"
  grep -q -- "$pat" "$tmp/e" || fail "$*: error '$(cat "$tmp/e")' does not match '$pat'"
}
mkdir -p "$tmp/empty" && printf ' \n\n' > "$tmp/empty/a.txt"
expect_error "no text" --data "$tmp/empty" --out "$tmp/x"
printf 'ok\n\xff\n' > "$tmp/bad.txt"
expect_error "bad.txt: invalid UTF-8 at byte 3" --data "$tmp/bad.txt" --out "$tmp/x"
expect_error "no such file or folder" --data "$tmp/missing" --out "$tmp/x"
expect_error "vocab size 100 is too small" --data "$tmp/brown20" --vocab-size 100 --out "$tmp/x"
touch "$tmp/afile"
expect_error "cannot create output folder" --data "$tmp/brown20" --out "$tmp/afile/sub"
expect_error "t.json.tmp: cannot create" --data "$tmp/brown20" --vocab-size 300 --out /proc/t.json
echo "tokenizer train: all checks passed"
