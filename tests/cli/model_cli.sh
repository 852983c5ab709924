#!/usr/bin/env bash
# `switchyard info` and `switchyard perplexity` on the tiny reference checkpoints
# (tests/reference/gen_models.py): exit codes, messages, and perplexity against the PyTorch reference.
set -uo pipefail
BIN=$1
PY=${SY_PYTHON:-/usr/bin/python3}
M=$SY_GOLDEN_DIR/models
fails=0
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# info: exit 0, names the architecture and counts parameters.
for d in qwen3_moe_f32 qwen2_moe_f32 olmoe_f32 mixtral_sharded_f32; do
  out=$("$BIN" info -m "$M/$d" 2>&1) || fail "info $d exited $?: $out"
  arch=$($PY -c "import json,sys; print(json.load(open(sys.argv[1]))['architectures'][0])" "$M/$d/config.json")
  grep -q "$arch" <<<"$out" || fail "info $d does not name $arch: $out"
  grep -q "active per token" <<<"$out" || fail "info $d has no active parameter count"
done
"$BIN" info -m "$M/qwen3_moe_f32" --json >"$tmp/info.json" || fail "info --json exited $?"
$PY - "$tmp/info.json" <<'PY' || fail "info --json content"
import json, sys
j = json.load(open(sys.argv[1]))
assert j["architecture"] == "Qwen3MoeForCausalLM", j
assert 0 < j["params_active"] < j["params_total"], j
assert j["moe_layers"] == 3 and j["dense_layers"] == 1, j
PY

# perplexity over the reference prompt equals exp(-mean reference log-prob).
for d in qwen3_moe_f32 olmoe_clip_bf16 mixtral_sharded_f32; do
  "$BIN" perplexity -m "$M/$d" --ids "$M/$d/prompt_ids.txt" --json --per-token >"$tmp/ppl.json" 2>"$tmp/err" ||
    fail "perplexity $d exited $?: $(cat "$tmp/err")"
  $PY - "$tmp/ppl.json" "$M/$d/expected.json" <<'PY' || fail "perplexity $d differs from the reference"
import json, math, sys
got, want = json.load(open(sys.argv[1])), json.load(open(sys.argv[2]))
assert got["scored"] == len(want["logprobs"]), (got["scored"], len(want["logprobs"]))
assert abs(got["ppl"] - want["ppl"]) <= 1e-3 * want["ppl"], (got["ppl"], want["ppl"])
for a, b in zip(got["per_token"], want["logprobs"]):
    assert abs(a["logprob"] - b) <= 1e-3, (a, b)
PY
done
# windows: --ctx 4 scores 3 of every 4 tokens (12 ids -> 9 scored)
out=$("$BIN" perplexity -m "$M/olmoe_f32" --ids "$M/olmoe_f32/prompt_ids.txt" --ctx 4 2>&1) || fail "perplexity --ctx exited $?"
grep -q "over 9 scored tokens" <<<"$out" || fail "perplexity --ctx 4: $out"
out=$("$BIN" perplexity -m "$M/olmoe_f32" --ids "$M/olmoe_f32/prompt_ids.txt" --per-token 2>&1)
[[ $(grep -c '^[0-9]* -[0-9.]*$' <<<"$out") == 11 ]] || fail "--per-token should list 11 tokens: $out"

# -f FILE goes through the checkpoint's tokenizer.json: same result as the ids `tokenize` prints.
"$BIN" tokenize -m "$M/olmoe_f32" -f "$M/olmoe_f32/sample.txt" >"$tmp/sample_ids.txt" || fail "tokenize exited $?"
a=$("$BIN" perplexity -m "$M/olmoe_f32" -f "$M/olmoe_f32/sample.txt" --json) || fail "perplexity -f exited $?"
b=$("$BIN" perplexity -m "$M/olmoe_f32" --ids "$tmp/sample_ids.txt" --json) || fail "perplexity --ids exited $?"
$PY - "$a" "$b" "$(wc -w <"$tmp/sample_ids.txt")" <<'PY' || fail "perplexity -f and --ids of the same text differ"
import json, sys
a, b, n = json.loads(sys.argv[1]), json.loads(sys.argv[2]), int(sys.argv[3])
assert n > 20 and a["tokens"] == n and a["ppl"] == b["ppl"], (a, b, n)
PY

# errors: non-zero exit, one clear message, no crash
expect_error() {  # expect_error FRAGMENT CMD...
  local frag=$1; shift
  "$@" >"$tmp/out" 2>&1
  local rc=$?
  if ((rc == 0 || rc >= 128)); then fail "'$*' exited $rc (want an error exit, not a crash)"; fi
  grep -q -- "$frag" "$tmp/out" || fail "'$*' output lacks '$frag': $(cat "$tmp/out")"
}
expect_error "/nonexistent/model" "$BIN" info -m /nonexistent/model
expect_error "required" "$BIN" info
mkdir "$tmp/bad" && cp "$M/qwen3_moe_f32/"* "$tmp/bad/"
sed -i 's/Qwen3MoeForCausalLM/GrokForCausalLM/' "$tmp/bad/config.json"
expect_error "unknown architecture 'GrokForCausalLM'" "$BIN" info -m "$tmp/bad"
expect_error "exactly one of" "$BIN" perplexity -m "$M/olmoe_f32"
echo "1 2 x" >"$tmp/ids.txt"
expect_error "'x' is not a token id" "$BIN" perplexity -m "$M/olmoe_f32" --ids "$tmp/ids.txt"
echo "1 99999" >"$tmp/ids.txt"
expect_error "outside the vocabulary" "$BIN" perplexity -m "$M/olmoe_f32" --ids "$tmp/ids.txt"
expect_error "no_such_router" "$BIN" perplexity -m "$M/olmoe_f32" --ids "$M/olmoe_f32/prompt_ids.txt" --router no_such_router
expect_error "tokenizer" "$BIN" perplexity -m "$M/qwen3_moe_f32" -f "$M/olmoe_f32/sample.txt"

if ((fails)); then echo "$fails failure(s)"; exit 1; fi
echo "model CLI: all checks passed"
