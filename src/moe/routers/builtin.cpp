#include "moe/routers/families.h"

namespace sy {
void register_builtin_routers() {
  register_topk_routers();
  register_sigmoid_router();
  register_grouped_router();
  register_topp_router();
  register_null_router();
  register_expert_choice_router();
  register_capacity_router();
  register_hash_routers();
  register_relu_router();
}
}  // namespace sy
