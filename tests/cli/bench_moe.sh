#!/usr/bin/env bash
# Smoke test of `switchyard bench moe --quick --json` (small shapes, with the PyTorch baselines):
# one JSON object per case with the fields issue #2 asks for, our output matching the PyTorch loop
# in every case, and a wrong helper or option reported with a non-zero exit. No timing is asserted.
# Usage: bench_moe.sh BINARY   (SY_PYTHON: Debian's python3 with torch)
set -euo pipefail
bin=$1
py=${SY_PYTHON:-/usr/bin/python3}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

"$bin" -t 2 bench moe --quick --json --tmp-dir "$tmp" >"$tmp/out.jsonl" 2>"$tmp/err.txt" || {
  echo "bench moe --quick --json failed:"; cat "$tmp/err.txt"; exit 1; }

"$py" - "$tmp/out.jsonl" <<'EOF'
import json, math, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
need = ["case", "tokens", "weight_dtype", "ours_ms", "torch_loop_ms", "torch_dense_ms", "speedup", "gbps",
        "bandwidth_fraction", "gflops", "flops_fraction", "max_rel_err", "check", "routing_mismatch_tokens"]
# --compute both (default): f32 compute on the 8 cases, plus bf16 compute on the 4 bf16-weight cases
assert len(rows) == 12, "expected 12 rows (2 shapes x 2 token counts x 2 dtypes in f32, bf16 weights in bf16), got %d" % len(rows)
seen = set()
for r in rows:
    for k in need:
        assert k in r, "case %s lacks %s" % (r.get("label"), k)
    for k in ["ours_ms", "torch_loop_ms", "torch_dense_ms", "speedup", "gbps", "gflops"]:
        assert isinstance(r[k], (int, float)) and r[k] > 0 and math.isfinite(r[k]), "%s: %s = %r" % (r["label"], k, r[k])
    assert r["check"] == "pass", "%s: correctness check %s (err %g)" % (r["label"], r["check"], r["max_rel_err"])
    assert r["max_rel_err"] <= r["tolerance"], r
    assert abs(r["speedup"] - min(r["torch_loop_ms"], r["torch_dense_ms"]) / r["ours_ms"]) < 1e-6 * r["speedup"], r
    assert r["torch_dense_vs_loop_rel_err"] < (1e-4 if r["weight_dtype"] == "f32" else 5e-2), r
    assert r["compute"] in ("f32", "bf16") and r["backend"] == ("cpu" if r["compute"] == "f32" else "cpu-bf16"), r
    seen.add((r["case"], r["tokens"], r["weight_dtype"], r["compute"]))
assert len(seen) == 12, seen
assert all(w == "bf16" for (_, _, w, c) in seen if c == "bf16"), seen
print("bench moe --quick: %d cases ok" % len(rows))
EOF

# The case filter selects; a broken helper fails loudly (exit != 0, message names the helper).
"$bin" -t 1 bench moe --quick --json --no-torch --cases qwen3-quick/1/f32 --tmp-dir "$tmp" >"$tmp/one.jsonl" 2>/dev/null
[[ $(wc -l <"$tmp/one.jsonl") -eq 1 ]] || { echo "--cases did not select exactly one case"; cat "$tmp/one.jsonl"; exit 1; }
grep -q '"check":"skipped (--no-torch)"' "$tmp/one.jsonl" || { echo "--no-torch case not marked skipped"; exit 1; }
# --compute bf16 alone: bf16 compute on every selected case (also f32 weights); a bad value is refused.
"$bin" -t 2 bench moe --quick --json --no-torch --compute bf16 --cases qwen3-quick/32 --tmp-dir "$tmp" >"$tmp/bf.jsonl" 2>/dev/null
[[ $(grep -c '"compute":"bf16"' "$tmp/bf.jsonl") -eq 2 && $(wc -l <"$tmp/bf.jsonl") -eq 2 ]] || {
  echo "--compute bf16 did not give 2 bf16-compute rows"; cat "$tmp/bf.jsonl"; exit 1; }
if "$bin" bench moe --quick --compute fp8 --no-torch >"$tmp/bad.txt" 2>&1; then echo "--compute fp8 accepted"; exit 1; fi
grep -q "compute" "$tmp/bad.txt" || { echo "--compute fp8: message does not name the option"; cat "$tmp/bad.txt"; exit 1; }

printf 'import sys\nsys.exit(3)\n' >"$tmp/bad.py"
if "$bin" -t 1 bench moe --quick --json --cases qwen3-quick/1/f32 --torch-script "$tmp/bad.py" --tmp-dir "$tmp" \
    >/dev/null 2>"$tmp/bad.txt"; then
  echo "a failing PyTorch helper did not fail the command"; exit 1
fi
grep -q "PyTorch helper exited" "$tmp/bad.txt" || { echo "unexpected message:"; cat "$tmp/bad.txt"; exit 1; }

# A baseline whose reference is 1% off must fail the correctness check (the check can fail).
src=${SY_SOURCE_DIR:-$(cd "$(dirname "$0")/../.." && pwd)}
cat >"$tmp/off.py" <<PYEOF
import sys
sys.path.insert(0, "$src/bench")
import moe_torch as m
real = m.hf_loop
def off(*a, **k):
    y, sel = real(*a, **k)
    return y * 1.01, sel
m.hf_loop = off
m.main()
PYEOF
if "$bin" -t 1 bench moe --quick --json --cases qwen3-quick/32/f32 --torch-script "$tmp/off.py" --tmp-dir "$tmp" \
    >"$tmp/off.jsonl" 2>"$tmp/off.txt"; then
  echo "a wrong reference did not fail the command"; exit 1
fi
grep -q '"check":"FAIL"' "$tmp/off.jsonl" || { echo "wrong reference not reported as FAIL"; cat "$tmp/off.jsonl"; exit 1; }
grep -q "does not match the PyTorch loop" "$tmp/off.txt" || { echo "unexpected message:"; cat "$tmp/off.txt"; exit 1; }
echo "ok"
