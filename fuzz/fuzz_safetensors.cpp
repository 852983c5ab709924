// libFuzzer target for the safetensors header parser and the checkpoint index parser.
//   input starting with '{': the text of a model.safetensors.index.json (parse_checkpoint_index);
//     every accepted shard file must be a relative path without "..".
//   any other input: a whole safetensors file (SafeTensors over the buffer); when it parses, every
//     tensor's bytes must lie inside the buffer with nbytes = numel x dtype size, and are read
//     (to_f32 for small tensors) so that AddressSanitizer sees any out-of-range access.
// Errors (sy::Error) are the expected outcome for malformed input; anything else is a bug.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "core/error.h"
#include "io/checkpoint.h"
#include "io/safetensors.h"

namespace {

void check(bool ok) {
  if (!ok) std::abort();
}

void fuzz_index(const uint8_t* data, size_t size) {
  try {
    auto map = sy::parse_checkpoint_index(std::string_view(reinterpret_cast<const char*>(data), size), "fuzz.index.json");
    check(!map.empty());
    for (const auto& [tensor, file] : map) {
      check(!file.empty() && file[0] != '/');
      for (size_t b = 0; b <= file.size();) {  // no path component is ".."
        size_t e = file.find('/', b);
        if (e == std::string::npos) e = file.size();
        check(file.compare(b, e - b, "..") != 0);
        b = e + 1;
      }
    }
  } catch (const sy::Error&) {
  }
}

void fuzz_file(const uint8_t* data, size_t size) {
  try {
    sy::SafeTensors st(data, size, "fuzz.safetensors");
    volatile float sink = 0;
    for (const auto& name : st.names()) {
      const sy::TensorInfo& t = st.get(name, st.get(name).shape);
      check(t.file_offset <= size && t.nbytes <= size - t.file_offset);
      check(t.data == data + t.file_offset);
      check(size_t(t.numel()) * sy::dtype_size(t.dtype) == t.nbytes);
      if (t.nbytes > 0) sink = sink + float(t.data[0]) + float(t.data[t.nbytes - 1]);
      if (t.numel() <= (1 << 16)) {
        auto v = st.to_f32(name);
        check(v.size() == size_t(t.numel()));
        if (!v.empty()) sink = sink + v.back();
      }
    }
    for (const auto& [k, v] : st.metadata()) sink = sink + float(k.size() + v.size());
    (void)sink;
  } catch (const sy::Error&) {
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size > 0 && data[0] == '{')
    fuzz_index(data, size);
  else
    fuzz_file(data, size);
  return 0;
}
