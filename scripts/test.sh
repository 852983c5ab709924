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
# -O1 with line tables only: the sanitizers need no more, and it compiles much faster.
bash scripts/build.sh build-asan -DCMAKE_BUILD_TYPE=None "-DCMAKE_CXX_FLAGS=-O1 -g1" -DSY_SANITIZE=ON -DSY_BENCH=OFF
(cd build-asan && ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1 \
   ctest -j "$jobs" --output-on-failure --timeout 1800 -LE no_sanitize)
echo "== libFuzzer targets (clang, ASan+UBSan), ${SY_FUZZ_SECONDS:-20} s each =="
fuzzers=$(for f in fuzz/fuzz_*.cpp; do basename "$f" .cpp; done)
# shellcheck disable=SC2086
CC=clang CXX=clang++ bash scripts/build.sh build-fuzz -DCMAKE_BUILD_TYPE=None "-DCMAKE_CXX_FLAGS=-O1 -g1" \
  -DSY_FUZZ=ON -DSY_SANITIZE=ON -DSY_TESTS=OFF -DSY_BENCH=OFF -- $fuzzers
for f in build-fuzz/fuzz/fuzz_*; do
  name=$(basename "$f"); corpus=build-fuzz/corpus/$name; mkdir -p "$corpus"
  seeds=(); [[ -d fuzz/seeds/$name ]] && seeds=(fuzz/seeds/$name)
  ASAN_OPTIONS=detect_leaks=1 "$f" -max_total_time="${SY_FUZZ_SECONDS:-20}" -rss_limit_mb=4096 -timeout=10 \
    -print_final_stats=1 -artifact_prefix=build-fuzz/ "$corpus" "${seeds[@]+"${seeds[@]}"}" 2>&1 | tail -n 40
done
