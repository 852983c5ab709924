#!/usr/bin/env bash
# Rebuilds the demo model models/brown-moe from scratch: the exact commands that made the committed
# one (see models/brown-moe/TRAINING.md for its log and results). About 15-20 minutes on 2 idle cores.
#   bash scripts/train_demo_model.sh [RUN_DIR (default runs/brown-moe)]
# Writes RUN_DIR/tok (tokenizer), RUN_DIR/run (checkpoints, log.jsonl), and replaces models/brown-moe
# with the final checkpoint (without train_state.safetensors, the optimizer state).
set -euo pipefail
cd "$(dirname "$0")/.."
RUN=${1:-runs/brown-moe}
bash scripts/setup.sh >&2
bash scripts/build.sh build -DCMAKE_BUILD_TYPE=Release -- switchyard >&2
SY=./build/switchyard
mkdir -p "$RUN"
"$SY" tokenizer train --data brown --vocab-size 8192 --out "$RUN/tok"
"$SY" train --data brown --tokenizer "$RUN/tok/tokenizer.json" \
  --hidden 256 --layers 4 --heads 4 --kv-heads 2 --head-dim 64 --experts 8 --expert-ffn 384 \
  --router topk:k=2,norm=true --lb-coef 0.01 --seq-len 256 --batch 16 --tokens 2200000 \
  --lr 2e-3 --min-lr 2e-4 --warmup 60 --wd 0.1 --clip 1.0 --seed 0 \
  --eval-every 100 --eval-tokens 32768 --save-every 100 --keep 2 --save-dtype bf16 --log-every 10 \
  --out "$RUN/run"
rm -rf models/brown-moe.new && mkdir -p models/brown-moe.new
for f in config.json generation_config.json model.safetensors tokenizer.json tokenizer_config.json; do
  cp "$RUN/run/latest/$f" models/brown-moe.new/
done
cp "$RUN/run/log.jsonl" models/brown-moe.new/train_log.jsonl
[[ -e models/brown-moe/TRAINING.md ]] && cp models/brown-moe/TRAINING.md models/brown-moe.new/
rm -rf models/brown-moe && mv models/brown-moe.new models/brown-moe
echo "models/brown-moe rebuilt from $RUN/run/latest"
