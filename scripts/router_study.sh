#!/usr/bin/env bash
# The router study (docs/router_study.md): one small MoE language model trained by `switchyard train`
# on the Brown corpus under several routing setups, each for the same number of tokens and the same
# seed, then measured by `switchyard route` on the validation files (loss, experts per token, load
# balance, specialisation by genre) and drawn by docs/router_study/plot.py.
#
# usage: bash scripts/router_study.sh [TOKENS_PER_RUN (default 300000)] [RUN_DIR (default runs/router_study)]
# Writes RUN_DIR/NAME/ (checkpoints + log.jsonl), RUN_DIR/NAME.route.json, RUN_DIR/NAME.cmd, and
# docs/router_study/{expert_load.png,results.md}. Uses the demo model's tokenizer.
set -euo pipefail
cd "$(dirname "$0")/.."
TOKENS=${1:-300000}
RUN=${2:-runs/router_study}
if [[ -z ${SY:-} ]]; then  # SY=path/to/switchyard: use that binary as it is (no setup, no build)
  bash scripts/setup.sh >&2
  bash scripts/build.sh build -DCMAKE_BUILD_TYPE=Release -- switchyard >&2
  SY=./build/switchyard
fi
if ! dpkg-query -W -f='${Status}' python3-matplotlib 2>/dev/null | grep -q "install ok installed"; then
  SUDO=""; [[ $(id -u) -ne 0 ]] && SUDO="sudo"
  $SUDO apt-get install -y -q --no-install-recommends python3-matplotlib
fi
mkdir -p "$RUN"

COMMON=(--data brown --tokenizer "${TOKENIZER:-models/brown-moe/tokenizer.json}"
        --hidden 128 --layers 4 --heads 4 --kv-heads 2 --head-dim 32 --experts 8 --expert-ffn 256
        --seq-len 128 --batch 4 --grad-accum 4 --lr 3e-3 --min-lr 3e-4 --warmup 50 --wd 0.1 --clip 1.0 --seed 1
        --tokens "$TOKENS" --eval-every 0 --save-every 0 --keep 1)
declare -A SETUP=(
  [top2-micro]="--router topk:k=2,norm=true --lb-coef 0.01 --balance micro"
  [top2-global]="--router topk:k=2,norm=true --lb-coef 0.01 --balance global"
  [aux-free]="--router sigmoid:k=2,norm=true --lb-coef 0 --bias-rate 0.01"
  [top-p]="--router topp:p=0.4 --lb-coef 0.01 --entropy-coef 0.0001"
  [null]="--router null:k=4,m=4,norm=true --lb-coef 0.01"
  [top2-noloss]="--router topk:k=2,norm=true --lb-coef 0"
)
for name in top2-micro top2-global aux-free top-p null top2-noloss; do
  read -r -a extra <<< "${SETUP[$name]}"
  echo "== $name: ${SETUP[$name]}" >&2
  echo "$SY train ${COMMON[*]} ${extra[*]} --out $RUN/$name" > "$RUN/$name.cmd"
  if [[ ! -e $RUN/$name/latest ]]; then
    "$SY" train "${COMMON[@]}" "${extra[@]}" --out "$RUN/$name" >&2
  fi
  "$SY" route -m "$RUN/$name/latest" --data brown --max-tokens 1000000 --ctx 128 --json > "$RUN/$name.route.json"
done
/usr/bin/python3 docs/router_study/plot.py "$RUN" docs/router_study
