#!/usr/bin/env bash
# Configures and builds one build directory. Usage: scripts/build.sh DIR [cmake args...] [-- targets...]
set -euo pipefail
cd "$(dirname "$0")/.."
dir=$1; shift
args=(); targets=()
while (($#)); do
  if [[ $1 == -- ]]; then shift; targets=("$@"); break; fi
  args+=("$1"); shift
done
if [[ ! -f $dir/build.ninja ]]; then
  cmake -S . -B "$dir" -G Ninja "${args[@]+"${args[@]}"}" >/dev/null
elif ((${#args[@]})); then
  cmake -S . -B "$dir" "${args[@]}" >/dev/null
fi
jobs=$(nproc)
cmake --build "$dir" -j "$jobs" ${targets[@]+--target "${targets[@]}"}
