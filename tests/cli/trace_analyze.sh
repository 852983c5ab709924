#!/usr/bin/env bash
# `switchyard trace analyze`: JSON output on a hand-made trace (the replay answers are worked out in
# tests/test_trace.cpp), and malformed input reported with the line and a non-zero exit.
# Usage: trace_analyze.sh BINARY   (SY_PYTHON: Debian's python3)
set -uo pipefail
BIN=$1
PY=${SY_PYTHON:-/usr/bin/python3}
fails=0
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# One layer, 4 experts, requests 0 1 2 0 1 3 0 1.
{
  echo '{"format":"switchyard-trace","version":1,"n_layers":1,"n_experts":4,"expert_bytes":[1048576],"top_k":1}'
  i=0
  for e in 0 1 2 0 1 3 0 1; do echo "{\"pos\":$i,\"r\":[[0,[$e],[1]]]}"; i=$((i + 1)); done
} >"$tmp/classic.trace"

out=$("$BIN" trace analyze "$tmp/classic.trace" --json --cache 2,3 --segments 2 2>&1) || fail "analyze exited $?: $out"
"$PY" - "$out" <<'PYEOF' || fail "JSON check"
import json, sys
j = json.loads(sys.argv[1])
hits = {(r["scope"], r["capacity"], r["policy"]): r["hits"] for r in j["replays"]}
assert hits[("per-layer", 2, "lru")] == 0, hits
assert hits[("per-layer", 2, "lfu")] == 1, hits
assert hits[("per-layer", 2, "belady")] == 2, hits
assert hits[("per-layer", 3, "lru")] == 4, hits
assert hits[("per-layer", 3, "belady")] == 4, hits
assert j["tokens"] == 8 and j["max_active"] == 1, j
b = {(r["capacity"], r["policy"]): r["bytes_read"] for r in j["replays"] if r["scope"] == "per-layer"}
assert b[(2, "belady")] == 6 * 1048576, b
assert j["predictor"] == [], j["predictor"]
assert j["srp"][0]["segment"] == 2 and 0 < j["srp"][0]["srp"] <= 1, j["srp"]
PYEOF

# The table form runs and names Belady.
"$BIN" trace analyze "$tmp/classic.trace" | grep -q belady || fail "table output lacks the belady column"

# Malformed: line 3 has an expert out of range.
sed '3s/\[0,\[1\]/[0,[9]/' "$tmp/classic.trace" >"$tmp/bad.trace"
out=$("$BIN" trace analyze "$tmp/bad.trace" 2>&1) && fail "bad trace accepted"
grep -q "bad.trace line 3: expert id = 9 is out of range" <<<"$out" || fail "bad trace message: $out"

# Truncated (no newline at the end).
head -c -1 "$tmp/classic.trace" >"$tmp/trunc.trace"
out=$("$BIN" trace analyze "$tmp/trunc.trace" 2>&1) && fail "truncated trace accepted"
grep -q "truncated" <<<"$out" || fail "truncated trace message: $out"

# Missing file, and a cache too small for one token's experts.
out=$("$BIN" trace analyze "$tmp/missing.trace" 2>&1) && fail "missing file accepted"
grep -q "cannot open" <<<"$out" || fail "missing file message: $out"
out=$("$BIN" trace analyze "$tmp/classic.trace" --cache 0 2>&1) && fail "--cache 0 accepted"

if ((fails)); then exit 1; fi
echo "trace_analyze: all checks passed"
