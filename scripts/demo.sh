#!/usr/bin/env bash
# The main job on the embedded default: installs what is missing, builds, runs `switchyard demo`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh >&2
bash scripts/build.sh build -DCMAKE_BUILD_TYPE=Release -- switchyard >&2
exec ./build/switchyard demo "$@"
