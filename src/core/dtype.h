// Element types for weights and activations. Compute is f32; weights may be f32, bf16 or f16.
#pragma once
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

namespace sy {

enum class DType : uint8_t { F32, BF16, F16, I32, I64, U8 };

size_t dtype_size(DType t);
std::string_view dtype_name(DType t);  // "f32", "bf16", ...
DType parse_dtype(std::string_view s);  // accepts f32/bf16/f16 and F32/BF16/F16; throws on others

// bf16: the upper 16 bits of an f32. Conversion to bf16 rounds to nearest even (NaN stays NaN).
inline float bf16_to_f32(uint16_t h) {
  uint32_t u = uint32_t(h) << 16;
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}
inline uint16_t f32_to_bf16(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  if ((u & 0x7fffffffu) > 0x7f800000u) return uint16_t((u >> 16) | 0x40);  // quiet NaN
  u += 0x7fffu + ((u >> 16) & 1u);
  return uint16_t(u >> 16);
}
// IEEE half precision, round to nearest even; handles subnormals, inf and NaN.
float f16_to_f32(uint16_t h);
uint16_t f32_to_f16(float f);

// Converts n elements of type `src_type` at src into f32 at dst.
void to_f32(DType src_type, const void* src, float* dst, size_t n);
// Converts n f32 values into `dst_type` at dst (f32, bf16, f16 only).
void from_f32(DType dst_type, const float* src, void* dst, size_t n);

}  // namespace sy
