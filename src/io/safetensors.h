// safetensors reader (mmap, zero-copy) and writer (atomic: write, fsync, rename).
// Format: u64 little-endian header length N, N bytes of JSON {name: {dtype, shape, data_offsets:
// [begin, end]}, "__metadata__": {str: str}}, then the data section; offsets are relative to it.
// The header is validated: known dtypes, offsets in range and not overlapping, shape x dtype size
// equal to the byte length.
#pragma once
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "core/dtype.h"
#include "core/mapped_file.h"

namespace sy {

struct TensorInfo {
  std::string name;
  DType dtype = DType::F32;
  std::vector<int64_t> shape;
  const uint8_t* data = nullptr;  // points into the mapped file
  size_t nbytes = 0;
  size_t file_offset = 0;  // absolute offset of the first byte in the file
  int64_t numel() const;
  std::string shape_str() const;  // "[4, 8]"
};

class SafeTensors {
 public:
  explicit SafeTensors(const std::string& path);
  // Parses an in-memory buffer (for fuzzing); `data` must outlive the object.
  SafeTensors(const uint8_t* data, size_t size, std::string name);

  const std::string& path() const { return path_; }
  const TensorInfo* find(std::string_view name) const;
  const TensorInfo& get(std::string_view name) const;  // throws naming file and tensor
  // get() plus a shape check; throws "[safetensors] FILE: tensor X has shape [a, b], expected [c, d]".
  const TensorInfo& get(std::string_view name, const std::vector<int64_t>& shape) const;
  std::vector<std::string> names() const;
  const std::map<std::string, std::string>& metadata() const { return metadata_; }
  std::vector<float> to_f32(std::string_view name) const;  // f32/bf16/f16 -> f32 copy
  size_t file_size() const { return size_; }

 private:
  void parse();
  std::unique_ptr<MappedFile> file_;
  const uint8_t* base_ = nullptr;
  size_t size_ = 0;
  std::string path_;
  std::map<std::string, TensorInfo, std::less<>> tensors_;
  std::map<std::string, std::string> metadata_;
};

struct TensorToWrite {
  std::string name;
  DType dtype;
  std::vector<int64_t> shape;
  const void* data;  // numel x dtype_size bytes
};

// Writes a safetensors file atomically: PATH.tmp, fsync, rename over PATH, fsync the directory.
void write_safetensors(const std::string& path, const std::vector<TensorToWrite>& tensors,
                       const std::map<std::string, std::string>& metadata = {});

}  // namespace sy
