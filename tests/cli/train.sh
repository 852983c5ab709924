#!/usr/bin/env bash
# `switchyard train` end to end on a tiny model (byte-level tokenizer, small text folder):
#  - a checkpoint directory (OUT/latest) with Qwen3-MoE config.json, model.safetensors,
#    tokenizer.json, generation_config.json, train_state.safetensors; `generate` loads it;
#  - `perplexity` on the trainer's own validation windows gives the trainer's validation loss, for
#    the softmax top-k, sigmoid + bias, top-p and null-expert routers (the runtime reads the trained
#    router tensors: e_score_correction_bias, null-expert gate rows);
#  - exact resume: stop at step 3, --resume, and the logged losses of steps 4..6 equal, as JSON
#    text, those of an uninterrupted run; also -t 1 and -t 2 give identical logs;
#  - bad input: changed model flag on --resume, damaged / truncated checkpoint, empty data,
#    non-UTF-8 data, bad flags -> non-zero exit and a message naming the problem.
# Usage: train.sh BINARY   (SY_PYTHON: Debian's python3)
set -euo pipefail
bin=$1
py=${SY_PYTHON:-/usr/bin/python3}
here=$(cd "$(dirname "$0")" && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

"$py" "$here/lib/tiny_tokenizer.py" "$tmp/tok.json"
mkdir -p "$tmp/data"
"$py" - "$tmp/data" <<'EOF'
import random, sys
rng = random.Random(7)
words = ("the a man woman dog cat saw found took gave house river city old new small red quick "
         "and but then when because while it was is were over under near").split()
for f in range(4):
    with open(f"{sys.argv[1]}/part{f}.txt", "w") as out:
        for _ in range(120):
            out.write(" ".join(rng.choice(words) for _ in range(rng.randint(5, 14))).capitalize() + ".\n")
EOF
model=(--tokenizer "$tmp/tok.json" --hidden 32 --layers 2 --heads 4 --kv-heads 2 --head-dim 8
      --experts 4 --expert-ffn 32 --seq-len 32 --batch 4 --lr 3e-3 --warmup 2 --eval-tokens 1000 --log-every 1 -q)
tiny=(--data "$tmp/data" "${model[@]}")
fail() { echo "FAIL: $*"; exit 1; }

# 1. Uninterrupted run, saving every 3 steps.
"$bin" -t 2 train "${tiny[@]}" --steps 6 --save-every 3 --eval-every 3 --out "$tmp/a" --save-val-ids "$tmp/val.ids" \
  >"$tmp/a.out" 2>"$tmp/a.err" || { cat "$tmp/a.err"; fail "train"; }
for f in config.json model.safetensors tokenizer.json generation_config.json train_state.safetensors; do
  [ -f "$tmp/a/latest/$f" ] || fail "checkpoint lacks $f"
done
[ "$(readlink "$tmp/a/latest")" = checkpoint-0000006 ] || fail "latest -> $(readlink "$tmp/a/latest")"
[ -d "$tmp/a/checkpoint-0000003" ] || fail "checkpoint of step 3 missing"

# 2. generate loads the checkpoint; perplexity on the validation windows equals the trainer's eval.
"$bin" -t 2 generate -m "$tmp/a/latest" -p "The dog" -n 8 --temp 0 --no-stats >"$tmp/gen.txt" 2>"$tmp/gen.err" || {
  cat "$tmp/gen.err"; fail "generate on the trained checkpoint"; }
check_ppl() {  # OUT: last val_loss of OUT/log.jsonl vs perplexity over OUT's validation ids
  "$bin" -t 2 perplexity -m "$1/latest" --ids "$2" --ctx 33 --json >"$tmp/ppl.json" 2>"$tmp/ppl.err" || {
    cat "$tmp/ppl.err"; fail "perplexity on $1"; }
  "$py" - "$1/log.jsonl" "$tmp/ppl.json" "$3" <<'EOF'
import json, sys
evals = [json.loads(l) for l in open(sys.argv[1]) if '"eval"' in l]
ppl = json.load(open(sys.argv[2]))
ours, theirs = evals[-1]["val_loss"], ppl["nll"]
assert evals[-1]["val_tokens"] == ppl["scored"], (evals[-1], ppl["scored"])
assert abs(ours - theirs) <= 1e-4 * abs(ours), f"{sys.argv[3]}: trainer val loss {ours} vs perplexity {theirs}"
print(f"{sys.argv[3]}: trainer val loss {ours:.6f}, perplexity nll {theirs:.6f}")
EOF
}
check_ppl "$tmp/a" "$tmp/val.ids" topk
"$py" - "$tmp/a/latest/config.json" <<'EOF'
import json, sys
c = json.load(open(sys.argv[1]))
assert c["model_type"] == "qwen3_moe" and c["architectures"] == ["Qwen3MoeForCausalLM"], c
assert (c["num_experts"], c["num_experts_per_tok"], c["moe_intermediate_size"], c["head_dim"]) == (4, 2, 32, 8), c
assert c["eos_token_id"] == 256 and c["vocab_size"] == 257, c
EOF

# Other routers, a gated shared expert, global-batch balance with gradient accumulation.
cases=("sigmoid --router sigmoid:k=2 --bias-rate 0.05" "topp --router topp:p=0.5 --entropy-coef 0.01"
       "null --router null:k=2,m=2 --z-coef 0.001" "shared --shared-ffn 16 --shared-gate"
       "global --balance global --grad-accum 2")
for c in "${cases[@]}"; do
  read -r name flags <<<"$c"
  # shellcheck disable=SC2086
  "$bin" -t 2 train "${tiny[@]}" --steps 3 $flags --out "$tmp/$name" --save-val-ids "$tmp/$name.ids" \
    >/dev/null 2>"$tmp/$name.err" || { cat "$tmp/$name.err"; fail "train $flags"; }
  check_ppl "$tmp/$name" "$tmp/$name.ids" "$name ($flags)"
done
# bf16 weights load too (loss within bf16 rounding of the f32 eval).
"$bin" -t 2 train "${tiny[@]}" --steps 2 --save-dtype bf16 --out "$tmp/bf16" >/dev/null 2>&1 || fail "--save-dtype bf16"
"$bin" -t 2 generate -m "$tmp/bf16/latest" -p "The" -n 4 --temp 0 --no-stats >/dev/null 2>&1 || fail "generate bf16"
# bf16 mixed-precision products: the same run's losses move by bf16 rounding only (not bit-equal,
# within 1e-2), and the precision is kept in the checkpoint's train_config (a bad value: below).
"$bin" -t 2 train "${tiny[@]}" --steps 2 --precision bf16 --out "$tmp/mp" >/dev/null 2>"$tmp/mp.err" ||
  { cat "$tmp/mp.err"; fail "--precision bf16"; }
"$py" - "$tmp/bf16/log.jsonl" "$tmp/mp/log.jsonl" "$tmp/mp/latest/train_state.safetensors" <<'EOF'
import json, struct, sys
def losses(p):
    return [j["loss"] for j in map(json.loads, open(p)) if j["type"] == "step"]
f32, mp = losses(sys.argv[1]), losses(sys.argv[2])
assert len(f32) == len(mp) == 2, (f32, mp)
assert f32 != mp and all(abs(a - b) <= 1e-2 * abs(a) for a, b in zip(f32, mp)), (f32, mp)
with open(sys.argv[3], "rb") as fh:
    n = struct.unpack("<Q", fh.read(8))[0]
    meta = json.loads(fh.read(n))["__metadata__"]
assert json.loads(meta["train_config"])["precision"] == "bf16", meta["train_config"]
EOF

# 3. Exact resume and thread-count independence.
"$bin" -t 2 train "${tiny[@]}" --steps 6 --save-every 3 --eval-every 3 --out "$tmp/b" --stop-at 3 >/dev/null 2>&1 ||
  fail "train --stop-at 3"
"$bin" -t 2 train --resume "$tmp/b" -q >/dev/null 2>"$tmp/b.err" || { cat "$tmp/b.err"; fail "resume"; }
"$bin" -t 1 train "${tiny[@]}" --steps 6 --save-every 3 --eval-every 3 --out "$tmp/c" >/dev/null 2>&1 || fail "-t 1"
"$py" - "$tmp/a/log.jsonl" "$tmp/b/log.jsonl" "$tmp/c/log.jsonl" <<'EOF'
import json, sys
def losses(p):
    out = {}
    for l in open(p):
        j = json.loads(l)
        if j["type"] in ("step", "eval"):
            out[(j["type"], j["step"])] = {k: v for k, v in j.items() if k != "tokens_per_second"}
    return out
a, b, c = (losses(p) for p in sys.argv[1:])
assert sorted(a) == sorted(b) == sorted(c), (sorted(a), sorted(b))
assert any(k[1] > 3 for k in a)
for k in a:
    assert a[k] == b[k], f"resumed run differs at {k}: {a[k]} vs {b[k]}"
    assert a[k] == c[k], f"-t 1 differs at {k}: {a[k]} vs {c[k]}"
print("resume and -t 1 logs identical over", len(a), "entries")
EOF

# 4. Bad input.
expect_error() {  # PATTERN CMD...
  local pat=$1; shift
  if "$@" >"$tmp/x.out" 2>"$tmp/x.err"; then fail "expected an error from: $*"; fi
  grep -q -- "$pat" "$tmp/x.err" || { cat "$tmp/x.err"; fail "message lacks '$pat' for: $*"; }
}
expect_error "model.hidden" "$bin" train --resume "$tmp/a" --hidden 64 --steps 8
expect_error "model.router" "$bin" train --resume "$tmp/a" --router topk:k=1 --steps 8
cp -r "$tmp/a/checkpoint-0000006" "$tmp/damaged"
"$py" - "$tmp/damaged/train_state.safetensors" <<'EOF'
import sys
b = bytearray(open(sys.argv[1], "rb").read())
b[-5] ^= 0x40  # one bit of the router biases / moments
open(sys.argv[1], "wb").write(b)
EOF
expect_error "checksum mismatch" "$bin" train --resume "$tmp/damaged" --out "$tmp/d2"
truncate -s 100 "$tmp/damaged/train_state.safetensors"
expect_error "train_state.safetensors" "$bin" train --resume "$tmp/damaged" --out "$tmp/d2"
expect_error "no checkpoint" "$bin" train --resume "$tmp/data" --out "$tmp/d2"
mkdir -p "$tmp/empty"
expect_error "no \*.txt\|no text\|empty" "$bin" train "${model[@]}" --data "$tmp/empty" --steps 2 --out "$tmp/e"
mkdir -p "$tmp/bad"
printf 'good text\n' >"$tmp/bad/a.txt"
printf 'bad \xff\xfe text\n' >"$tmp/bad/b.txt"
expect_error "UTF-8" "$bin" train "${model[@]}" --data "$tmp/bad" --steps 2 --out "$tmp/e"
expect_error "balance" "$bin" train "${tiny[@]}" --balance sideways --steps 2 --out "$tmp/e"
expect_error "precision" "$bin" train "${tiny[@]}" --precision f16 --steps 2 --out "$tmp/e"
expect_error "cannot be trained" "$bin" train "${tiny[@]}" --router hash:seed=1 --steps 2 --out "$tmp/e"
expect_error "steps" "$bin" train "${tiny[@]}" --out "$tmp/e"
expect_error "out" "$bin" train "${tiny[@]}" --steps 2
expect_error "tokenizer" "$bin" train --data "$tmp/data" --steps 2 --out "$tmp/e"
echo "train: all checks passed"
