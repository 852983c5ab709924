// Routing traces: which experts every token chose at every MoE layer, written while a model runs
// (`--trace FILE`) and replayed offline by `switchyard trace analyze` (offload/trace_analysis.h).
//
// File format: JSON lines (UTF-8 text, one JSON object per line, '\n' terminated).
//   line 1, the header:
//     {"format":"switchyard-trace","version":1,"n_layers":L,"n_experts":E,
//      "expert_bytes":[b_0,...,b_{L-1}],"top_k":k,"model":"name"}
//     expert_bytes[l] = bytes of one routed expert of layer l (gate+up+down as stored in the
//     checkpoint; 0 for a layer without routed experts). top_k (experts per token, 0 = unknown)
//     and model are informational.
//   every further line is one token, in the order the model processed them:
//     {"pos":P,"seq":S,"r":[[l,[e,...],[w,...]],...],"p":[[from,to,[e,...]],...]}
//     pos: position in its sequence (>= 0); seq: sequence id (>= 0; default 0), so that batched
//     decode of several sequences can interleave. "r": per MoE layer l (each at most once, any
//     order) the chosen experts in rank order and their combine weights (same length, finite);
//     a token may choose no expert. "p" (optional): predictions made at layer `from` for layer
//     `to` (from < to < L), e.g. by offload/predictor.h.
//   Expert ids are in [0, E) and distinct within one list.
// The reader validates everything above and throws sy::Error "[trace] FILE line N: ...".
//
// Writing is safe: lines go to FILE.tmp; close() flushes, fsyncs and renames it over FILE, so
// FILE is either the previous file or a complete trace, never a torn one.
#pragma once
#include <cstdint>
#include <cstdio>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "moe/router.h"

namespace sy::offload {

struct TraceHeader {
  int n_layers = 0;
  int n_experts = 0;
  std::vector<uint64_t> expert_bytes;  // [n_layers]
  int top_k = 0;                       // 0 = unknown
  std::string model;
};

struct TracePrediction {
  int from = 0, to = 0;
  std::vector<int32_t> experts;
};

struct TraceToken {
  int64_t pos = 0;
  int32_t seq = 0;
  // [n_layers]; a layer with no record has an empty list (and recorded[l] = false)
  std::vector<std::vector<int32_t>> experts;
  std::vector<std::vector<float>> weights;
  std::vector<bool> recorded;
  std::vector<TracePrediction> predictions;
};

struct Trace {
  TraceHeader header;
  std::vector<TraceToken> tokens;
  std::string name;  // file name, for messages
  bool has_predictions() const;
  // Largest number of experts one token chose at one layer.
  int max_active() const;
};

Trace read_trace(const std::string& path);
// Parses trace text (the whole file); `name` is used in error messages. For tests and fuzzing.
Trace parse_trace(std::string_view text, const std::string& name);

class TraceWriter {
 public:
  TraceWriter(const std::string& path, TraceHeader header);  // throws if FILE.tmp cannot be created
  ~TraceWriter();  // close() if still open; errors are swallowed here (call close() to see them)
  TraceWriter(const TraceWriter&) = delete;
  TraceWriter& operator=(const TraceWriter&) = delete;

  // Starts a token; later record()/predict() calls without a token index go to it.
  void begin_token(int64_t pos, int32_t seq = 0);
  // The current token's routing at `layer`: experts in rank order with their combine weights.
  void record(int layer, std::span<const int32_t> experts, std::span<const float> weights);
  // Prediction for the current token made at layer `from` for layer `to`.
  void predict(int from, int to, std::span<const int32_t> experts);

  // Batch forms for a forward over T tokens: the last T begun tokens, in order.
  void record_batch(int layer, const Routing& r);
  void predict_batch(int from, int to, const std::vector<std::vector<int32_t>>& per_token);

  void flush();  // writes the begun tokens to FILE.tmp (they stay in memory no longer)
  void close();  // flush, fsync, rename FILE.tmp -> FILE, fsync the directory
  const std::string& path() const { return path_; }
  int64_t tokens_written() const { return written_; }

 private:
  TraceToken& token_back(int64_t from_end, const char* what);
  void check_layer(int layer, const char* what) const;
  void check_experts(std::span<const int32_t> experts, const char* what) const;
  std::string path_, tmp_;
  TraceHeader header_;
  std::FILE* f_ = nullptr;
  std::vector<TraceToken> pending_;
  int64_t written_ = 0;
};

}  // namespace sy::offload
