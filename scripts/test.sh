#!/usr/bin/env bash
# Runs every test: installs what is missing, builds Release and ASan+UBSan builds, runs CTest in
# both (the PyTorch reference generators run first as CTest fixtures).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
jobs=$(nproc)
echo "== Release build =="
bash scripts/build.sh build -DCMAKE_BUILD_TYPE=Release
(cd build && ctest -j "$jobs" --output-on-failure --timeout 900)
echo "== AddressSanitizer + UndefinedBehaviorSanitizer build =="
bash scripts/build.sh build-asan -DCMAKE_BUILD_TYPE=RelWithDebInfo -DSY_SANITIZE=ON
(cd build-asan && ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1 \
   ctest -j "$jobs" --output-on-failure --timeout 1800 -LE no_sanitize)
