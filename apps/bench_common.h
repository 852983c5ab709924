// Small helpers shared by the `switchyard bench` subcommands (cmd_bench*.cpp).
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>

// The Python with torch and the repository, for the PyTorch baselines (set by CMake for the
// switchyard target; these defaults only serve other builds).
#ifndef SY_PYTHON
#define SY_PYTHON "/usr/bin/python3"
#endif
#ifndef SY_SOURCE_DIR
#define SY_SOURCE_DIR "."
#endif

namespace sy::cli {

// "1m 5m 15m" from /proc/loadavg (benchmarks report it: this machine is shared).
std::string load_average();

// splitmix64 (Steele et al. 2014): the seeded generator of the benchmarks' inputs.
inline uint64_t splitmix64(uint64_t& s) {
  uint64_t z = (s += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

// Where a temporary file of `need` bytes shared with the PyTorch helper goes: `requested` (checked:
// a directory with room) when given, else /dev/shm when writable with 25% to spare, else the system
// temp directory. Throws "[who] ..." naming the directory and the sizes.
std::string pick_tmp_dir(const std::string& requested, size_t need, const std::string& who = "bench");

}  // namespace sy::cli
