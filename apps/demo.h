// `switchyard demo`: the main job. Without flags it generates text with the demo model
// (models/brown-moe, trained by `switchyard train` on the Brown corpus) and shows how each token
// was routed (apps/cmd_demo_model.cpp); --layer runs one batch through a random MoE layer under
// every router (apps/cmd_demo.cpp).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace sy::cli {

struct DemoOptions {
  // model demo
  std::string model, prompt = "It was";
  int n_predict = 32;
  // layer demo
  bool layer = false;
  int64_t tokens = 256, hidden = 256, experts = 16, ffn = 128;
  std::vector<std::string> routers;
  uint64_t seed = 0;
};

void run_layer_demo(const DemoOptions& o);
void run_model_demo(const DemoOptions& o);

}  // namespace sy::cli
