#!/usr/bin/env bash
# Expert offloading through the CLI (`generate` / `perplexity` with --expert-budget, --cache-policy,
# --trace) on the tiny reference checkpoints (tests/reference/gen_models.py): the same text and
# bitwise the same per-token log-probabilities as without offloading, the cache report on stderr,
# a too-small budget refused with the minimum (exit 1), and a trace that `trace analyze` reads.
# Usage: offload_cli.sh BINARY   (SY_GOLDEN_DIR, SY_PYTHON: Debian's python3)
set -uo pipefail
BIN=$1
PY=${SY_PYTHON:-/usr/bin/python3}
M=$SY_GOLDEN_DIR/models
fails=0
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
D=$M/olmoe_f32  # the checkpoint with a tokenizer

gen() { "$BIN" -t 1 generate -m "$D" -p "The rail yard sorts the cars" -n 12 --temp 0 "$@"; }
gen >"$tmp/plain.txt" 2>"$tmp/plain.err" || fail "generate exited $?: $(cat "$tmp/plain.err")"
[[ -s "$tmp/plain.txt" ]] || fail "generate printed nothing"
for pol in lru lfu predictive; do
  for b in 25% 50%; do
    gen --expert-budget "$b" --cache-policy "$pol" >"$tmp/off.txt" 2>"$tmp/off.err" ||
      fail "generate --expert-budget $b --cache-policy $pol exited $?: $(cat "$tmp/off.err")"
    cmp -s "$tmp/plain.txt" "$tmp/off.txt" || fail "generate $pol $b: text differs from the mapped model"
    for what in "expert cache ($pol" "hit rate" "MiB read" "stalled" "tokens/s"; do
      grep -qF "$what" "$tmp/off.err" || fail "generate $pol $b: stderr lacks '$what': $(cat "$tmp/off.err")"
    done
  done
done
grep -q "expert cache" "$tmp/plain.err" && fail "generate without --expert-budget reports a cache"
# sizes in bytes work too: 1 GiB is more than every expert here (nothing evicted, same text)
gen --expert-budget 1GiB >"$tmp/off.txt" 2>"$tmp/off.err" || fail "--expert-budget 1GiB exited $?: $(cat "$tmp/off.err")"
cmp -s "$tmp/plain.txt" "$tmp/off.txt" || fail "generate 1GiB: text differs"
# --budget-split per-layer: each layer its share of the budget, the same text
for pol in lru predictive; do
  gen --expert-budget 25% --cache-policy "$pol" --budget-split per-layer >"$tmp/off.txt" 2>"$tmp/off.err" ||
    fail "generate --budget-split per-layer ($pol) exited $?: $(cat "$tmp/off.err")"
  cmp -s "$tmp/plain.txt" "$tmp/off.txt" || fail "generate --budget-split per-layer ($pol): text differs"
  grep -qF "hit rate" "$tmp/off.err" || fail "generate --budget-split per-layer: no cache report: $(cat "$tmp/off.err")"
done

# perplexity: bitwise identical per-token log-probabilities (JSON numbers printed in full).
for d in olmoe_f32 qwen2_moe_linear_rope_bf16 mixtral_window_f16 mixtral_sharded_f32; do
  [[ -d "$M/$d" ]] || { fail "missing reference checkpoint $d"; continue; }
  "$BIN" perplexity -m "$M/$d" --ids "$M/$d/prompt_ids.txt" --json --per-token >"$tmp/a.json" ||
    fail "perplexity $d exited $?"
  b=25% split=global
  [[ $d == mixtral_sharded_f32 ]] && b=50% split=per-layer  # 4 experts, top-2: per layer at least 50%
  "$BIN" perplexity -m "$M/$d" --ids "$M/$d/prompt_ids.txt" --json --per-token --expert-budget $b --cache-policy lru \
    --budget-split $split >"$tmp/b.json" 2>"$tmp/b.err" || fail "perplexity $d --expert-budget exited $?: $(cat "$tmp/b.err")"
  $PY - "$tmp/a.json" "$tmp/b.json" <<'PY' || fail "perplexity $d: offloaded log-probs differ"
import json, sys
a, b = json.load(open(sys.argv[1])), json.load(open(sys.argv[2]))
assert a["per_token"] == b["per_token"] and a["ppl"] == b["ppl"], (a, b)
assert "expert_cache" not in a and b["expert_cache"]["bytes_read"] > 0, b
PY
done

# errors: exit 1, one clear message
expect_error() {  # expect_error FRAGMENT CMD...
  local frag=$1; shift
  "$@" >"$tmp/out" 2>&1
  local rc=$?
  ((rc != 0 && rc < 128)) || fail "'$*' exited $rc (want an error exit, not a crash)"
  grep -qF -- "$frag" "$tmp/out" || fail "'$*' output lacks '$frag': $(cat "$tmp/out")"
}
expect_error "minimum budget" gen --expert-budget 1KiB
"$BIN" generate -m "$D" -p x -n 1 --expert-budget 1KiB >/dev/null 2>&1
[[ $? == 1 ]] || fail "a too-small budget must exit 1"
expect_error "--expert-budget 'lots'" gen --expert-budget lots
expect_error "percentage must be in (0, 100]" gen --expert-budget 150%
expect_error "--cache-policy" gen --expert-budget 50% --cache-policy mru
expect_error "--budget-split" gen --expert-budget 50% --budget-split halves
# per layer, each MoE layer's share must hold its 2 active experts: 10% of 8 experts does not
expect_error "split per layer gives layer" gen --expert-budget 10% --budget-split per-layer

# --trace: generate writes a trace that `trace analyze` replays.
gen --expert-budget 50% --trace "$tmp/run.trace" >"$tmp/off.txt" 2>"$tmp/off.err" || fail "generate --trace exited $?"
cmp -s "$tmp/plain.txt" "$tmp/off.txt" || fail "generate --trace: text differs"
[[ -s "$tmp/run.trace" && ! -e "$tmp/run.trace.tmp" ]] || fail "trace file not written in place"
ntok=$($PY -c "import sys; print(sum(1 for _ in open(sys.argv[1])) - 1)" "$tmp/run.trace")
out=$("$BIN" trace analyze "$tmp/run.trace" --json 2>&1) || fail "trace analyze exited $?: $out"
$PY - "$out" "$ntok" <<'PY' || fail "trace analyze of a generate trace: $out"
import json, sys
j, n = json.loads(sys.argv[1]), int(sys.argv[2])
assert n > 12 and j["tokens"] == n, (j.get("tokens"), n)
assert j["max_active"] == 2, j["max_active"]
assert any(r["policy"] == "belady" for r in j["replays"]), j["replays"][:3]
PY
# a trace without offloading works too (perplexity), and is what ran: one line per token
"$BIN" perplexity -m "$D" --ids "$D/prompt_ids.txt" --trace "$tmp/ppl.trace" >/dev/null || fail "perplexity --trace exited $?"
[[ $(($(wc -l <"$tmp/ppl.trace") - 1)) == $(wc -w <"$D/prompt_ids.txt") ]] || fail "perplexity trace token count"
"$BIN" trace analyze "$tmp/ppl.trace" >/dev/null 2>&1 || fail "trace analyze of a perplexity trace exited $?"

if ((fails)); then echo "$fails failure(s)"; exit 1; fi
echo "offload CLI: all checks passed"
