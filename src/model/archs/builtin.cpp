#include "model/archs/archs.h"

namespace sy {
void register_builtin_architectures() {
  register_qwen3_moe();
  register_qwen2_moe();
  register_olmoe();
  register_mixtral();
}
}  // namespace sy
