#!/usr/bin/env bash
# Installs everything Switchyard needs on a fresh Debian 12 machine. Idempotent: a second run
# checks the packages and returns at once. Needs root (or sudo) for apt-get.
set -euo pipefail
cd "$(dirname "$0")/.."

PKGS=(build-essential cmake ninja-build pkg-config
      libhwy-dev libopenblas-dev libopenblas0-pthread libdnnl-dev
      nlohmann-json3-dev libcli11-dev libgtest-dev libgmock-dev libbenchmark-dev
      clang libclang-rt-14-dev
      python3 python3-torch python3-numpy unicode-data
      nodejs npm)

missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
# node/npm may come from outside Debian's packages (the image ships its own); accept them if present.
if command -v node >/dev/null && command -v npm >/dev/null; then
  tmp=(); for p in "${missing[@]}"; do [[ $p == nodejs || $p == npm ]] || tmp+=("$p"); done
  missing=("${tmp[@]+"${tmp[@]}"}")
fi
if ((${#missing[@]})); then
  SUDO=""; [[ $(id -u) -ne 0 ]] && SUDO="sudo"
  echo "[setup] installing: ${missing[*]}"
  $SUDO apt-get update -q
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
fi
# torch links libblas.so.3 / liblapack.so.3: the PyTorch baselines of `switchyard bench` must get
# OpenBLAS (pthread), not the reference BLAS, whatever the alternatives were set to.
ma=$(gcc -dumpmachine)
for lib in libblas.so.3 liblapack.so.3; do
  want=/usr/lib/$ma/openblas-pthread/$lib
  if [[ -e $want && $(readlink -f "/usr/lib/$ma/$lib") != "$(readlink -f "$want")" ]]; then
    S=""; [[ $(id -u) -ne 0 ]] && S="sudo"
    $S update-alternatives --set "$lib-$ma" "$want"
  fi
done
echo "[setup] system packages ok"
# npm packages of the tokenizer reference tests (package.json / package-lock.json): `npm ci` unless
# node_modules already holds exactly this lock (its hash is stamped there after a successful install).
lock_sum=$(sha256sum package-lock.json | cut -d' ' -f1)
if [[ $(cat node_modules/.sy-lock-sha256 2>/dev/null) != "$lock_sum" ]]; then
  echo "[setup] npm ci"
  npm ci --no-audit --no-fund --loglevel=error
  echo "$lock_sum" > node_modules/.sy-lock-sha256
fi
echo "[setup] npm packages ok"
