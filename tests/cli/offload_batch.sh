#!/usr/bin/env bash
# Batched decode, hot-expert pinning and O_DIRECT through the CLI, on the tiny reference checkpoint
# with a tokenizer (tests/reference/gen_models.py), and a smoke run of `bench offload --quick`:
#   generate --parallel N   N continuations, each the text that generate with its seed gives alone
#   --pin-profile TRACE     same text as without, the cache report counts the pinned experts
#   --direct-io             same text, the report says how the experts were read
# Usage: offload_batch.sh BINARY   (SY_GOLDEN_DIR, SY_SOURCE_DIR, SY_PYTHON: Debian's python3)
set -uo pipefail
BIN=$1
PY=${SY_PYTHON:-/usr/bin/python3}
M=$SY_GOLDEN_DIR/models
fails=0
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
D=$M/olmoe_f32
P="The rail yard sorts the cars"

gen() { "$BIN" -t 1 generate -m "$D" -p "$P" -n 10 --temp 0.9 --top-k 0 --top-p 1 --min-p 0 "$@"; }
# --parallel 3 (seeds 7, 8, 9) vs three single runs with those seeds: the same texts.
gen --seed 7 --parallel 3 --expert-budget 50% --cache-policy lru >"$tmp/par.txt" 2>"$tmp/par.err" ||
  fail "generate --parallel exited $?: $(cat "$tmp/par.err")"
: >"$tmp/want.txt"
for i in 0 1 2; do  # generate prints TEXT\n, --parallel [i]TEXT\n per continuation
  printf '[%d]' $i >>"$tmp/want.txt"
  gen --seed $((7 + i)) --no-stats >>"$tmp/want.txt" 2>/dev/null || fail "generate --seed $((7 + i)) exited $?"
done
cmp -s "$tmp/want.txt" "$tmp/par.txt" || fail "--parallel continuations differ from single runs: $(cat "$tmp/par.txt") vs $(cat "$tmp/want.txt")"
[[ $(grep -c '^\[' "$tmp/par.txt") -ge 3 ]] || fail "--parallel printed fewer than 3 continuations"
grep -qF "3 continuations" "$tmp/par.err" || fail "--parallel report missing: $(cat "$tmp/par.err")"
grep -qF "expert cache (lru" "$tmp/par.err" || fail "--parallel cache report missing"

# --pin-profile: record a profile, then pin its hottest experts; same text.
gen --seed 1 --trace "$tmp/prof.jsonl" >"$tmp/plain.txt" 2>/dev/null || fail "generate --trace exited $?"
gen --seed 1 --expert-budget 50% --cache-policy lru --pin-profile "$tmp/prof.jsonl" --pin-fraction 0.4 \
  >"$tmp/pin.txt" 2>"$tmp/pin.err" || fail "generate --pin-profile exited $?: $(cat "$tmp/pin.err")"
cmp -s "$tmp/plain.txt" "$tmp/pin.txt" || fail "--pin-profile changed the text"
grep -qE "[0-9]+ experts pinned" "$tmp/pin.err" || fail "--pin-profile: no pinned experts reported: $(cat "$tmp/pin.err")"
"$BIN" generate -m "$D" -p x -n 1 --pin-profile "$tmp/prof.jsonl" >"$tmp/out" 2>&1
[[ $? == 1 ]] && grep -qF "needs an expert budget" "$tmp/out" || fail "--pin-profile without a budget: $(cat "$tmp/out")"
"$BIN" generate -m "$D" -p x -n 1 --expert-budget 50% --pin-profile "$tmp/missing.jsonl" >"$tmp/out" 2>&1
[[ $? == 1 ]] && grep -qF "missing.jsonl" "$tmp/out" || fail "--pin-profile of a missing file: $(cat "$tmp/out")"

# --direct-io: same text; the report says O_DIRECT or why not.
gen --seed 1 --expert-budget 25% --direct-io >"$tmp/dio.txt" 2>"$tmp/dio.err" || fail "--direct-io exited $?: $(cat "$tmp/dio.err")"
cmp -s "$tmp/plain.txt" "$tmp/dio.txt" || fail "--direct-io changed the text"
grep -qE "expert reads: O_DIRECT" "$tmp/dio.err" || fail "--direct-io: no read mode reported: $(cat "$tmp/dio.err")"

# bench offload --quick: runs, every configuration decodes the same tokens, the replay table.
"$BIN" -t 1 bench offload --quick --no-cgroup --work "$tmp" --prompt-tokens 6 --decode-tokens 3 --parallel 2 \
  --budgets 25% --python "$PY" --source-dir "${SY_SOURCE_DIR:-.}" --json >"$tmp/bench.txt" 2>"$tmp/bench.err" ||
  fail "bench offload exited $?: $(cat "$tmp/bench.err")"
tail -1 "$tmp/bench.txt" | $PY -c '
import json, sys
j = json.loads(sys.stdin.read())
runs = j["runs"]
assert len(runs) == 8, len(runs)  # (mmap + 3 policies) x (single, parallel2)
assert all(r["tokens_agree"] for r in runs), [r.get("tokens_agree") for r in runs]
assert all("cache" in r for r in runs if r["policy"] != "mmap")
assert j["memory_limit"].startswith("none"), j["memory_limit"]
assert {r["cache"] for r in j["trace_replay"]} >= {"25%", "2x active"}, j["trace_replay"]
' || fail "bench offload report: $(tail -1 "$tmp/bench.txt")"
grep -qF "NOT ENFORCED" "$tmp/bench.txt" || fail "bench offload --no-cgroup must say the limit is not enforced"

if ((fails)); then echo "$fails failure(s)"; exit 1; fi
echo "offload batch CLI: all checks passed"
