#!/usr/bin/env bash
# Smoke test of `switchyard bench train --preset tiny --json` (with the PyTorch baseline): the JSON
# fields, the tokens/s and GFLOP/s arithmetic, the in-run loss check passed (our first 3 losses
# within 1e-4 of PyTorch's from the same weights and batches) for every thread split PyTorch is run
# with, the fastest split as the baseline, --torch-amp reported beside it, --precision bf16 against
# PyTorch's autocast, a disagreeing or broken baseline
# reported with a non-zero exit, and bad flags refused. No timing is asserted.
# Usage: bench_train.sh BINARY   (SY_PYTHON: Debian's python3 with torch)
set -euo pipefail
bin=$1
py=${SY_PYTHON:-/usr/bin/python3}
src=${SY_SOURCE_DIR:-$(cd "$(dirname "$0")/../.." && pwd)}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
run() { "$bin" -t 2 bench train --preset tiny --steps 2 --no-peaks --tmp-dir "$tmp" "$@"; }

run --json >"$tmp/r.json" 2>"$tmp/err.txt" || { echo "bench train --preset tiny failed:"; cat "$tmp/err.txt"; exit 1; }

"$py" - "$tmp/r.json" <<'EOF'
import json, math, sys
r = json.load(open(sys.argv[1]))
assert r["bench"] == "train" and r["preset"] == "tiny", r
assert (r["vocab"], r["hidden"], r["layers"], r["experts"], r["top_k"], r["seq"], r["batch"]) == (256, 64, 2, 4, 2, 32, 2), r
assert r["tokens_per_step"] == 64 and r["check_steps"] == 3 and r["timed_steps"] == 2 and r["threads"] >= 1, r
# active matmul parameters: L (2 H q + 2 H kv + E H + k 3 H F) + V H
H, F, V = 64, 64, 256
assert r["active_params"] == 2 * (2 * H * 64 + 2 * H * 32 + 4 * H + 2 * 3 * H * F) + V * H, r["active_params"]
assert r["flop_per_token"] == 6 * r["active_params"] + 6 * 2 * 4 * 16 * 33, r["flop_per_token"]
for side in ("ours", "torch"):
    s = r[side]
    assert len(s["losses"]) == 5 and len(s["step_s"]) == 2, (side, s)
    assert all(math.isfinite(x) and 4.0 < x < 7.0 for x in s["losses"]), (side, s["losses"])  # ln 256 = 5.55
    assert all(t > 0 for t in s["step_s"]), s
    tps = 64 * 2 / sum(s["step_s"])
    assert abs(s["tokens_per_s"] - tps) <= 1e-9 * tps, (side, s["tokens_per_s"], tps)
    assert abs(s["gflops"] - r["flop_per_token"] * tps / 1e9) <= 1e-9 * s["gflops"], s
assert "peak_fraction" not in r["ours"] and "machine" not in r  # --no-peaks
assert r["loss_check"] == "pass" and r["loss_max_rel_diff"] <= 1e-4 and r["tolerance"] == 1e-4, r
lo, lt = r["ours"]["losses"], r["torch"]["losses"]
assert max(abs(a - b) / abs(b) for a, b in zip(lo[:3], lt[:3])) == r["loss_max_rel_diff"]
assert abs(r["speedup"] - r["ours"]["tokens_per_s"] / r["torch"]["tokens_per_s"]) < 1e-12 * r["speedup"]
# -t 2: torch tried the three splits of 2 threads (OpenMP x OpenBLAS), all f32, all passing the
# loss check; the baseline is the fastest of them
runs = r["torch_runs"]
assert sorted((x["threads"], x["blas_threads"]) for x in runs) == [(1, 2), (2, 1), (2, 2)], runs
assert not any(x["amp"] for x in runs) and "torch_amp" not in r, runs
assert all(x["loss_max_rel_diff"] <= 1e-4 for x in runs), runs
assert r["torch"]["tokens_per_s"] == max(x["tokens_per_s"] for x in runs), (r["torch"], runs)
assert (r["torch"]["threads"], r["torch"]["blas_threads"]) in [(x["threads"], x["blas_threads"]) for x in runs]
assert r["loss_max_rel_diff"] == max(x["loss_max_rel_diff"] for x in runs)
print("tiny: losses ours %s torch %s, max rel diff %.2e" % (["%.5f" % x for x in lo[:3]], ["%.5f" % x for x in lt[:3]],
      r["loss_max_rel_diff"]))
EOF

# --torch-threads same: one f32 run with all threads in both pools; --torch-amp adds bf16 autocast
# (reported beside the f32 baseline, never as it).
run --torch-threads same --torch-amp --json >"$tmp/amp.json" 2>"$tmp/err3.txt" ||
  { echo "--torch-threads same --torch-amp failed:"; cat "$tmp/err3.txt"; exit 1; }
"$py" - "$tmp/amp.json" <<'EOF'
import json, sys
r = json.load(open(sys.argv[1]))
runs = r["torch_runs"]
assert [(x["threads"], x["blas_threads"], x["amp"]) for x in runs] == [(2, 2, False), (2, 2, True)], runs
assert r["torch"]["amp"] is False and r["torch_amp"]["amp"] is True, r
assert abs(r["speedup_vs_amp"] - r["ours"]["tokens_per_s"] / r["torch_amp"]["tokens_per_s"]) < 1e-12 * r["speedup_vs_amp"]
assert r["loss_check"] == "pass" and r["loss_max_rel_diff"] == runs[0]["loss_max_rel_diff"], r
EOF
# --precision bf16: ours in bf16 mixed precision; the baseline is PyTorch under bf16 autocast, the
# f32 run reported beside it, the loss check against the autocast run at 1e-3.
run --torch-threads same --precision bf16 --json >"$tmp/bf16.json" 2>"$tmp/err4.txt" ||
  { echo "--precision bf16 failed:"; cat "$tmp/err4.txt"; exit 1; }
"$py" - "$tmp/bf16.json" <<'EOF'
import json, sys
r = json.load(open(sys.argv[1]))
runs = r["torch_runs"]
assert r["precision"] == "bf16", r
assert [(x["threads"], x["blas_threads"], x["amp"]) for x in runs] == [(2, 2, False), (2, 2, True)], runs
assert r["torch"]["amp"] is True and r["torch_f32"]["amp"] is False, r
assert abs(r["speedup"] - r["ours"]["tokens_per_s"] / r["torch"]["tokens_per_s"]) < 1e-12 * r["speedup"]
assert abs(r["speedup_vs_f32"] - r["ours"]["tokens_per_s"] / r["torch_f32"]["tokens_per_s"]) < 1e-12 * r["speedup_vs_f32"]
assert r["tolerance"] == 1e-3 and r["loss_check"] == "pass", r
assert r["loss_max_rel_diff"] == runs[1]["loss_max_rel_diff"], r
EOF
if run --precision f16 >/dev/null 2>"$tmp/pr.txt"; then echo "--precision f16 was accepted"; exit 1; fi
grep -q "precision" "$tmp/pr.txt" || { echo "unexpected message:"; cat "$tmp/pr.txt"; exit 1; }
if run --torch-threads some >/dev/null 2>"$tmp/tt.txt"; then echo "--torch-threads some was accepted"; exit 1; fi
grep -q "torch-threads" "$tmp/tt.txt" || { echo "unexpected message:"; cat "$tmp/tt.txt"; exit 1; }

# --no-torch times ours alone and writes no shared file.
run --no-torch --json >"$tmp/alone.json" 2>"$tmp/err2.txt" || { echo "--no-torch failed:"; cat "$tmp/err2.txt"; exit 1; }
grep -q '"torch"' "$tmp/alone.json" && { echo "--no-torch still ran PyTorch"; exit 1; }
ls "$tmp"/sy_bench_train_* >/dev/null 2>&1 && { echo "the shared weights file was left behind"; exit 1; }

# A baseline whose model differs (here: a perturbed initial lm_head) must fail the loss check.
cat >"$tmp/off.py" <<PYEOF
import sys
sys.path.insert(0, "$src/bench")
import train_torch as m
real = m.MoeForCausalLM.load_state_dict
def off(self, sd, strict=True):
    sd["lm_head.weight"] = sd["lm_head.weight"] * 1.5
    return real(self, sd, strict=strict)
m.MoeForCausalLM.load_state_dict = off
m.main()
PYEOF
if run --torch-threads same --torch-script "$tmp/off.py" >"$tmp/off.out" 2>"$tmp/off.txt"; then
  echo "a disagreeing baseline passed the loss check"; exit 1
fi
grep -q "differ from PyTorch's" "$tmp/off.txt" || { echo "unexpected message:"; cat "$tmp/off.txt"; exit 1; }
grep -q "FAIL" "$tmp/off.out" || { echo "the table does not say FAIL:"; cat "$tmp/off.out"; exit 1; }

# A broken helper fails loudly.
printf 'import sys\nsys.exit(3)\n' >"$tmp/bad.py"
if run --torch-threads same --torch-script "$tmp/bad.py" >/dev/null 2>"$tmp/bad.txt"; then
  echo "a failing PyTorch helper did not fail the command"; exit 1
fi
grep -q "PyTorch helper exited" "$tmp/bad.txt" || { echo "unexpected message:"; cat "$tmp/bad.txt"; exit 1; }

# Bad sizes are refused with the reason.
if run --top-k 5 >/dev/null 2>"$tmp/k.txt"; then echo "--top-k 5 of 4 experts was accepted"; exit 1; fi
grep -q "top-k 5 exceeds --experts 4" "$tmp/k.txt" || { echo "unexpected message:"; cat "$tmp/k.txt"; exit 1; }
if "$bin" bench train --preset huge >/dev/null 2>"$tmp/p.txt"; then echo "--preset huge was accepted"; exit 1; fi
grep -q "preset must be tiny, small or demo" "$tmp/p.txt" || { echo "unexpected message:"; cat "$tmp/p.txt"; exit 1; }
echo "ok"
