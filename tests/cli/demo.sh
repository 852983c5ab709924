#!/usr/bin/env bash
# `switchyard demo`: the main job. With no arguments it finds the committed demo model
# (models/brown-moe) from the repository, generates, and prints the routing views; the same seed
# gives the same text; the model's loss on Brown validation text is well below the unigram entropy
# of Brown's tokens (6.90 nats, models/brown-moe/TRAINING.md), so a damaged model file is caught;
# `switchyard route` runs on it; --layer runs the random-layer demo; a missing model is a clear error.
set -uo pipefail
bin=$1
src=${SY_SOURCE_DIR:?}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*"; exit 1; }

cd "$src" || fail "cd $src"
"$bin" -t 2 demo -n 12 > "$tmp/a.txt" 2> "$tmp/a.err" || fail "demo: exit $? ($(cat "$tmp/a.err"))"
for want in "Switchyard demo:" "Experts chosen for each generated token" "Per layer, over all" \
            "The same model under other routers" "--experts-per-token 1" "--router topp:p=0.5"; do
  grep -q -- "$want" "$tmp/a.txt" || fail "demo output lacks '$want'"
done
# 12 generated tokens -> 12 rows of expert lists ("a,b" in each of the 4 layer columns)
rows=$(grep -cE "^  '.*'( +[0-9]+,[0-9]+){4} *$" "$tmp/a.txt")
[[ $rows -ge 11 ]] || fail "expected ~12 routing rows, got $rows"
"$bin" -t 1 demo -n 12 > "$tmp/b.txt" 2>/dev/null || fail "demo -t 1: exit $?"
# the generated text (the line after the prompt line) is the same for any thread count
diff <(sed -n '/^prompt:/,/^(/p' "$tmp/a.txt" | grep -v '^(') <(sed -n '/^prompt:/,/^(/p' "$tmp/b.txt" | grep -v '^(') > /dev/null \
  || fail "the same seed gave different text with 1 and 2 threads"
loss=$(awk '/\(trained router\)/ {print $3}' "$tmp/a.txt")
awk -v l="$loss" 'BEGIN { exit !(l > 0 && l < 6.0) }' || fail "demo model loss on Brown validation text is $loss (want < 6.0)"

"$bin" route -m models/brown-moe --max-tokens 3000 --json > "$tmp/route.json" 2>/dev/null || fail "route: exit $?"
grep -q '"mi_bits"' "$tmp/route.json" || fail "route --json lacks mi_bits"

"$bin" demo --layer --tokens 32 -r 'topk:k=2' > "$tmp/l.txt" 2>&1 || fail "demo --layer: exit $?"
grep -q "topk:k=2" "$tmp/l.txt" || fail "demo --layer did not run the router"

"$bin" demo -m "$tmp/nope" > "$tmp/e.txt" 2>&1 && fail "demo with a missing model succeeded"
grep -q "nope" "$tmp/e.txt" || fail "missing-model error does not name the path: $(cat "$tmp/e.txt")"
echo "demo: ok"
