// One registration function per router family (routers/<family>.cpp). Adding a family: write
// the file, declare its function here and call it from register_builtin_routers().
#pragma once

namespace sy {
void register_topk_routers();  // topk (softmax top-k), topk_logits (gpt-oss)
void register_sigmoid_router();        // sigmoid (DeepSeek-V3)
void register_grouped_router();        // grouped (DeepSeek-V2 group-limited greedy)
void register_topp_router();           // topp (top-p dynamic routing)
void register_null_router();           // null (AdaMoE null experts)
void register_expert_choice_router();  // expert_choice (Zhou et al. 2022)
void register_capacity_router();       // capacity (Switch / GShard capacity and dropping)
void register_hash_routers();          // random (THOR), hash (hash layers)
void register_relu_router();           // relu (BlockFFN)
void register_builtin_routers();
}  // namespace sy
