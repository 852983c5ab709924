#include "moe/routers/families.h"

namespace sy {
void register_builtin_routers() {
  register_topk_routers();
}
}  // namespace sy
