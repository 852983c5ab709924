// A Hugging Face model directory's weights: either one `model.safetensors`, or shards listed in
// `model.safetensors.index.json` ({"metadata": {...}, "weight_map": {tensor: shard file}}).
// Like HF `from_pretrained`, a single model.safetensors is preferred when both exist. `open` may
// also be given a .safetensors file directly.
//
// Opening validates that index and shards agree: every mapped file exists (relative path inside
// the directory), every indexed tensor is in the shard the index names, no tensor is in two
// shards, and no shard holds a tensor the index does not list. Errors name the index, the
// shard(s) and the tensor. Tensors are mmapped (zero-copy); TensorInfo::data points into the
// shard's mapping, and file_of(name) + TensorInfo::file_offset allow pread() of the same bytes.
#pragma once
#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "io/safetensors.h"

namespace sy {

// Parses the text of a model.safetensors.index.json: its weight_map as {tensor: shard file}, each
// file a relative path inside the model directory. Throws naming `path` (and the tensor).
std::map<std::string, std::string> parse_checkpoint_index(std::string_view text, const std::string& path);

class Checkpoint {
 public:
  // DIR (model.safetensors or model.safetensors.index.json + shards) or a .safetensors file.
  static std::unique_ptr<Checkpoint> open(const std::string& dir);

  const std::string& dir() const { return dir_; }
  bool sharded() const { return !index_path_.empty(); }
  const std::string& index_path() const { return index_path_; }  // empty when not sharded

  const TensorInfo* find(std::string_view name) const;
  // Throws "[checkpoint] DIR: missing tensor X" (naming the index or file searched).
  const TensorInfo& get(std::string_view name) const;
  // Throws "[checkpoint] SHARD: tensor X has shape [a, b], expected [c, d]".
  const TensorInfo& get(std::string_view name, const std::vector<int64_t>& shape) const;
  std::vector<std::string> names() const;  // sorted
  size_t size() const { return tensors_.size(); }
  size_t total_bytes() const { return total_bytes_; }  // sum of tensor byte lengths
  // Path of the file the tensor is stored in (throws if missing).
  const std::string& file_of(std::string_view name) const;
  std::vector<float> to_f32(std::string_view name) const;  // f32/bf16/f16/int -> f32 copy
  const std::vector<std::unique_ptr<SafeTensors>>& shards() const { return shards_; }

  // DIR/config.json (throws when missing), DIR/tokenizer_config.json and DIR/generation_config.json
  // (nullopt when missing). Read them with json_field<T>(j, field, path) from io/json_file.h.
  std::string config_path() const { return dir_ + "/config.json"; }
  nlohmann::json config() const;
  std::optional<nlohmann::json> tokenizer_config() const;
  std::optional<nlohmann::json> generation_config() const;

 private:
  Checkpoint() = default;
  void add_shard(const std::string& path);
  struct Entry {
    const TensorInfo* info;
    size_t shard;
  };
  std::string dir_;
  std::string index_path_;
  std::vector<std::unique_ptr<SafeTensors>> shards_;
  std::map<std::string, Entry, std::less<>> tensors_;
  size_t total_bytes_ = 0;
};

}  // namespace sy
