// One registration function per router family (routers/<family>.cpp). Adding a family: write
// the file, declare its function here and call it from register_builtin_routers().
#pragma once

namespace sy {
void register_topk_routers();  // topk (softmax top-k), topk_logits (gpt-oss)
void register_builtin_routers();
}  // namespace sy
