// Registration functions of the built-in architectures, one file each (archs/<arch>.cpp).
#pragma once

namespace sy {
void register_qwen3_moe();
void register_qwen2_moe();
void register_olmoe();
void register_mixtral();
void register_builtin_architectures();
}  // namespace sy
