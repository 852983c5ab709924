// This machine's peaks, measured in-process, for `switchyard bench` to report achieved GB/s and
// GFLOP/s as fractions of them (../shared/ROUTING.md, "Measuring this machine's peaks honestly"):
//   read bandwidth: a streaming *read* of a buffer far larger than the last-level cache (1 GiB,
//                   offered to transparent huge pages), every thread summing its own contiguous
//                   slice as 1, 2, 4 or 8 interleaved streams with unrolled vector loads into
//                   independent accumulators; bytes read / time of the slowest thread, best over
//                   stream counts and several passes (one thread reaches only ~60%).
//   FMA peak:       the best of a tuned SGEMM (OpenBLAS cblas_sgemm, square N x N, 2 N^3 flop) and
//                   our own loop of independent vector FMAs (AVX-512 or AVX2, chosen at run time)
//                   on every thread: flops / time of the slowest thread.
//   bf16 dot peak:  the same loop with AVX512-BF16 vdpbf16ps (2 flop per bf16 pair), 0 when absent.
// All measurements use `threads` threads started together behind a barrier.
#pragma once
#include <string>

namespace sy::cli {

struct MachinePeaks {
  int threads = 0;
  double read_gbps = 0;         // streaming read, all threads
  int read_streams = 1;         // interleaved streams per thread of the best read
  double read_gbps_1t = 0;      // one thread (for context)
  double sgemm_gflops = 0;      // cblas_sgemm, all threads
  double fma_loop_gflops = 0;   // our FMA loop, all threads
  double fma_gflops = 0;        // max(sgemm, fma loop): the FMA peak fractions are taken against
  double bf16_dot_gflops = 0;   // vdpbf16ps loop, 0 when the CPU lacks AVX512-BF16
  std::string isa;              // "avx512", "avx2" or "scalar": what the loops used
  std::string openblas_core;    // openblas_get_corename()
  std::string summary() const;  // one line
};

// quick: smaller buffers and problems (a fraction of a second), for smoke tests.
MachinePeaks measure_peaks(int threads, bool quick);

}  // namespace sy::cli
