#!/usr/bin/env bash
# Kill test of `switchyard train` checkpoints: a tiny model saving every step is SIGKILLed at
# random moments (seeded; many of them fall inside a checkpoint write), 12 times; after every kill
# OUT/latest must name a complete checkpoint that `--resume` continues from, and the run finally
# completes with the same logged losses as an uninterrupted run (exact resume through kills).
# Usage: train_kill.sh BINARY   (SY_PYTHON: Debian's python3)
set -euo pipefail
bin=$1
py=${SY_PYTHON:-/usr/bin/python3}
here=$(cd "$(dirname "$0")" && pwd)
tmp=$(mktemp -d)
pid=
trap '[ -n "$pid" ] && kill -9 "$pid" 2>/dev/null; rm -rf "$tmp"' EXIT

"$py" "$here/lib/tiny_tokenizer.py" "$tmp/tok.json"
mkdir -p "$tmp/data"
"$py" - "$tmp/data" <<'EOF'
import random, sys
rng = random.Random(3)
words = "the a man dog saw took house river old new and but then when it was over near".split()
for f in range(3):
    with open(f"{sys.argv[1]}/part{f}.txt", "w") as out:
        for _ in range(100):
            out.write(" ".join(rng.choice(words) for _ in range(rng.randint(5, 12))) + ".\n")
EOF
steps=40
flags=(--data "$tmp/data" --tokenizer "$tmp/tok.json" --hidden 32 --layers 2 --heads 4 --kv-heads 2 --head-dim 8
       --experts 4 --expert-ffn 64 --seq-len 32 --batch 4 --steps $steps --save-every 1 --eval-every 0
       --eval-tokens 200 --log-every 1 --keep 2 -q)

"$bin" -t 1 train "${flags[@]}" --out "$tmp/ref" >/dev/null 2>"$tmp/ref.err" || { cat "$tmp/ref.err"; exit 1; }

RANDOM=11
started=0
in_save=0  # kills that left a half-written checkpoint directory behind
for kill in $(seq 1 12); do
  if [ $started = 0 ]; then
    "$bin" -t 1 train "${flags[@]}" --out "$tmp/k" >/dev/null 2>>"$tmp/k.err" &
    started=1
  else
    "$bin" -t 1 train --resume "$tmp/k" -q >/dev/null 2>>"$tmp/k.err" &
  fi
  pid=$!
  # 50..400 ms: past start-up (tokenizing, restoring) into steps and saves
  sleep "0.$(printf '%03d' $((50 + RANDOM % 350)))"
  kill -9 "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  pid=
  if compgen -G "$tmp/k/.checkpoint-*.tmp" >/dev/null; then in_save=$((in_save + 1)); fi
  if [ -L "$tmp/k/latest" ]; then
    # The newest checkpoint must be complete and loadable.
    for f in config.json model.safetensors tokenizer.json train_state.safetensors; do
      [ -f "$tmp/k/latest/$f" ] || { echo "FAIL: after kill $kill, latest lacks $f"; exit 1; }
    done
    "$bin" -t 1 perplexity -m "$tmp/k/latest" --ids <(seq 65 100) --ctx 16 >/dev/null 2>"$tmp/p.err" || {
      cat "$tmp/p.err"; echo "FAIL: after kill $kill, latest does not load"; exit 1; }
    echo "kill $kill: latest -> $(readlink "$tmp/k/latest")"
  else
    echo "kill $kill: killed before the first checkpoint"
    rm -rf "$tmp/k"
    started=0
  fi
done
# Finish the run and compare with the uninterrupted one.
if [ $started = 0 ]; then
  "$bin" -t 1 train "${flags[@]}" --out "$tmp/k" >/dev/null 2>>"$tmp/k.err"
else
  "$bin" -t 1 train --resume "$tmp/k" -q >/dev/null 2>>"$tmp/k.err" || { cat "$tmp/k.err"; exit 1; }
fi
"$py" - "$tmp/ref/log.jsonl" "$tmp/k/log.jsonl" $steps <<'EOF'
import json, sys
def steps(p):
    out = {}
    for l in open(p):
        j = json.loads(l)
        if j["type"] == "step":
            j.pop("tokens_per_second")
            out[j["step"]] = j
    return out
a, b = steps(sys.argv[1]), steps(sys.argv[2])
n = int(sys.argv[3])
assert sorted(a) == list(range(1, n + 1)), sorted(a)
assert sorted(b) == sorted(a), sorted(b)
for s in a:
    assert a[s] == b[s], f"step {s}: {a[s]} vs {b[s]}"
print(f"killed run matches the uninterrupted run over {n} steps")
EOF
echo "train_kill: all checks passed ($in_save of 12 kills interrupted a checkpoint write)"
