#!/usr/bin/env bash
# Smoke test of `switchyard bench model --quick --json` (small Qwen3-MoE shape, with the PyTorch
# reference): the fields issue #3 asks for, f32 greedy tokens identical to the PyTorch reference's,
# the touched-bytes accounting consistent, the checkpoint cached, and a wrong or broken reference
# reported with a non-zero exit. No timing is asserted.
# Usage: bench_model.sh BINARY   (SY_PYTHON: Debian's python3 with torch)
set -euo pipefail
bin=$1
py=${SY_PYTHON:-/usr/bin/python3}
src=${SY_SOURCE_DIR:-$(cd "$(dirname "$0")/../.." && pwd)}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
run() { "$bin" -t 2 bench model --quick --json --no-peaks --cache-dir "$tmp" "$@"; }

run --dtype f32 --require-agreement >"$tmp/f32.json" 2>"$tmp/err.txt" || {
  echo "bench model --quick --dtype f32 failed:"; cat "$tmp/err.txt"; exit 1; }
grep -q "writing the random checkpoint" "$tmp/err.txt" || { echo "first run did not write the checkpoint"; exit 1; }
run --dtype bf16 --torch-compute f32 --decode-tokens 4 >"$tmp/bf16.json" 2>"$tmp/err2.txt" || {
  echo "bench model --quick --dtype bf16 failed:"; cat "$tmp/err2.txt"; exit 1; }

"$py" - "$tmp/f32.json" "$tmp/bf16.json" <<'EOF'
import json, math, sys
for path in sys.argv[1:]:
    r = json.load(open(path))
    P, D, L, E = r["prompt_tokens"], r["decode_tokens"], r["layers"], r["experts"]
    assert (P, L, E, r["preset"]) == (32, 4, 16, "quick"), r
    for side in ("ours", "torch"):
        for run in ("cold", "warm"):
            x = r[side][run]
            assert len(x["tokens"]) == D + 1, (side, run, x["tokens"])
            for k in ("prompt_tok_s", "decode_tok_s"):
                assert x[k] > 0 and math.isfinite(x[k]), (side, run, k, x[k])
            assert abs(x["prompt_tok_s"] * x["prompt_s"] - P) < 1e-6 * P, x
    assert r["ours"]["cold_warm_tokens_equal"] is True
    assert r["compared_tokens"] == D + 1
    m = r["memory"]
    parts = ["embedding_rows_bytes", "attention_norm_bytes", "router_bytes", "expert_bytes", "lm_head_bytes", "kv_cache_bytes"]
    assert m["touched_bytes"] == sum(m[k] for k in parts), m
    es = 2 if r["weight_dtype"] == "bf16" else 4
    H, F, k, V = r["hidden"], r["expert_ffn"], r["top_k"], r["vocab"]
    assert len(m["experts_touched_per_layer"]) == L
    assert all(k <= n <= E for n in m["experts_touched_per_layer"]), m
    assert m["expert_bytes"] == sum(m["experts_touched_per_layer"]) * 3 * H * F * es, m
    assert m["lm_head_bytes"] == (V + 1) * H * es and m["embedding_rows_bytes"] == m["distinct_ids"] * H * es, m
    assert m["kv_cache_bytes"] == 2 * L * (P + D) * r["kv_heads"] * r["head_dim"] * 4, m
    assert 0 < m["touched_bytes"] <= m["checkpoint_bytes"] + m["kv_cache_bytes"], m
    for s in ("before_load", "after_load", "after_cold", "after_warm"):
        assert r["ours"]["mem"][s]["VmRSS"] > 0, s
    assert r["torch"]["mem"]["VmRSS"] > 0
print("f32: %d of %d greedy tokens agree; bf16 (torch f32 compute): %d of %d" % (
    json.load(open(sys.argv[1]))["agree_tokens"], json.load(open(sys.argv[1]))["compared_tokens"],
    json.load(open(sys.argv[2]))["agree_tokens"], json.load(open(sys.argv[2]))["compared_tokens"]))
f32 = json.load(open(sys.argv[1]))
assert f32["agree_tokens"] == f32["compared_tokens"] and f32["first_difference"] is None, f32
EOF

# The second f32 run reuses the cached checkpoint (and --no-torch runs without the helper).
run --dtype f32 --no-torch >"$tmp/again.json" 2>"$tmp/err3.txt"
grep -q '"checkpoint_cached":true' "$tmp/again.json" || { echo "checkpoint not reused"; cat "$tmp/err3.txt"; exit 1; }
grep -q '"torch"' "$tmp/again.json" && { echo "--no-torch still ran PyTorch"; exit 1; }

# A reference that disagrees must fail --require-agreement, naming the position.
cat >"$tmp/off.py" <<PYEOF
import sys
sys.path.insert(0, "$src/bench")
import model_torch as m
real = m.TorchQwen3Moe.generate
def off(self, prompt, n):
    t, a, b = real(self, prompt, n)
    t[3] = (t[3] + 1) % self.cfg["vocab_size"]
    return t, a, b
m.TorchQwen3Moe.generate = off
m.main()
PYEOF
if run --dtype f32 --require-agreement --torch-script "$tmp/off.py" >"$tmp/off.json" 2>"$tmp/off.txt"; then
  echo "a disagreeing reference did not fail --require-agreement"; exit 1
fi
grep -q "differ from the PyTorch reference at position 3" "$tmp/off.txt" || { echo "unexpected message:"; cat "$tmp/off.txt"; exit 1; }

# A broken helper fails loudly.
printf 'import sys\nsys.exit(3)\n' >"$tmp/bad.py"
if run --dtype f32 --torch-script "$tmp/bad.py" >/dev/null 2>"$tmp/bad.txt"; then
  echo "a failing PyTorch helper did not fail the command"; exit 1
fi
grep -q "PyTorch helper exited" "$tmp/bad.txt" || { echo "unexpected message:"; cat "$tmp/bad.txt"; exit 1; }
if "$bin" bench model --quick --dtype f16 --cache-dir "$tmp" >/dev/null 2>"$tmp/dt.txt"; then
  echo "--dtype f16 was accepted"; exit 1
fi
grep -q "dtype must be bf16 or f32" "$tmp/dt.txt" || { echo "unexpected message:"; cat "$tmp/dt.txt"; exit 1; }
echo "ok"
