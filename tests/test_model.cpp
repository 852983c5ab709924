// Model runtime: bad checkpoints fail with errors naming the file and the tensor or field; router
// overrides, decode marking, the architecture registry and the parameter summary. Checkpoints are
// the tiny ones written by tests/reference/gen_models.py, copied and damaged here.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <functional>
#include <unistd.h>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "golden.h"
#include "model/model.h"
#include "model/ops.h"

namespace sy {
namespace {

namespace fs = std::filesystem;

std::string golden_model(const std::string& name) {
  return (fs::path(test::env_or_empty("SY_GOLDEN_DIR")) / "models" / name).string();
}

// A scratch copy of a golden checkpoint, removed at the end of the test.
struct ScratchModel {
  fs::path dir;
  explicit ScratchModel(const std::string& from, const std::string& tag) {
    dir = fs::temp_directory_path() / ("sy_model_" + tag + "_" + std::to_string(::getpid()));
    fs::remove_all(dir);
    fs::create_directories(dir);
    for (const auto& e : fs::directory_iterator(golden_model(from))) fs::copy(e.path(), dir / e.path().filename());
  }
  ~ScratchModel() { fs::remove_all(dir); }
  std::string path(const std::string& f) const { return (dir / f).string(); }

  void edit_config(const std::function<void(nlohmann::json&)>& fn) const {
    std::ifstream in(path("config.json"));
    nlohmann::json j = nlohmann::json::parse(in);
    fn(j);
    std::ofstream(path("config.json")) << j.dump(2);
  }
  // Rewrites model.safetensors; fn may change or drop (return false) each tensor.
  void edit_tensors(const std::function<bool(TensorToWrite&, std::vector<uint8_t>&)>& fn) const {
    const std::string file = path("model.safetensors");
    std::vector<std::vector<uint8_t>> bufs;
    std::vector<TensorToWrite> out;
    {
      SafeTensors st(file);
      for (const auto& n : st.names()) {
        const TensorInfo& t = st.get(n);
        bufs.emplace_back(t.data, t.data + t.nbytes);
      }
      size_t i = 0;
      for (const auto& n : st.names()) {
        const TensorInfo& t = st.get(n);
        TensorToWrite w{n, t.dtype, t.shape, nullptr};
        auto& b = bufs[i++];
        if (!fn(w, b)) continue;
        w.data = b.data();
        out.push_back(w);
      }
    }
    write_safetensors(file, out);
  }
};

// Loading must throw sy::Error whose text contains every fragment.
void expect_load_error(const std::string& dir, const std::vector<std::string>& fragments) {
  try {
    Model::load(dir);
    ADD_FAILURE() << "loading " << dir << " did not fail";
  } catch (const Error& e) {
    const std::string msg = e.what();
    for (const auto& f : fragments) EXPECT_NE(msg.find(f), std::string::npos) << "error '" << msg << "' lacks '" << f << "'";
  }
}

const char* kExpertUp = "model.layers.2.mlp.experts.5.up_proj.weight";

TEST(ModelErrors, UnknownArchitectureListsKnownOnes) {
  ScratchModel m("qwen3_moe_f32", "arch");
  m.edit_config([](nlohmann::json& j) { j["architectures"] = {"FooForCausalLM"}; });
  expect_load_error(m.dir.string(), {"config.json", "FooForCausalLM", "Qwen3MoeForCausalLM", "Qwen2MoeForCausalLM",
                                     "OlmoeForCausalLM", "MixtralForCausalLM"});
}

TEST(ModelErrors, BadOrMissingConfigFieldIsNamed) {
  ScratchModel m("qwen3_moe_f32", "cfg");
  m.edit_config([](nlohmann::json& j) { j["num_experts"] = "8"; });
  expect_load_error(m.dir.string(), {"config.json", "num_experts"});
  m.edit_config([](nlohmann::json& j) {
    j["num_experts"] = 8;
    j.erase("hidden_size");
  });
  expect_load_error(m.dir.string(), {"config.json", "hidden_size"});
  m.edit_config([](nlohmann::json& j) {
    j["hidden_size"] = 64;
    j["rope_scaling"] = {{"rope_type", "longrope"}, {"factor", 2.0}};
  });
  expect_load_error(m.dir.string(), {"config.json", "rope_scaling.rope_type", "longrope"});
  m.edit_config([](nlohmann::json& j) {
    j["rope_scaling"] = nullptr;
    j["num_key_value_heads"] = 3;
  });
  expect_load_error(m.dir.string(), {"config.json", "num_key_value_heads"});
  m.edit_config([](nlohmann::json& j) {
    j["num_key_value_heads"] = 2;
    j["num_experts_per_tok"] = 9;  // more than num_experts
  });
  expect_load_error(m.dir.string(), {"k=9"});
}

TEST(ModelErrors, MissingConfigOrWeights) {
  expect_load_error("/nonexistent/sy_model", {"/nonexistent/sy_model"});
  ScratchModel m("qwen3_moe_f32", "nocfg");
  fs::remove(m.path("config.json"));
  expect_load_error(m.dir.string(), {"config.json"});
  ScratchModel w("qwen3_moe_f32", "noweights");
  fs::remove(w.path("model.safetensors"));
  expect_load_error(w.dir.string(), {w.dir.string()});
}

TEST(ModelErrors, MissingTensorIsNamed) {
  ScratchModel m("qwen3_moe_f32", "missing");
  m.edit_tensors([](TensorToWrite& t, std::vector<uint8_t>&) { return t.name != kExpertUp; });
  expect_load_error(m.dir.string(), {kExpertUp, m.dir.string()});
}

TEST(ModelErrors, WrongShapeIsNamed) {
  ScratchModel m("qwen3_moe_f32", "shape");
  m.edit_tensors([](TensorToWrite& t, std::vector<uint8_t>&) {
    if (t.name == kExpertUp) std::swap(t.shape[0], t.shape[1]);
    return true;
  });
  expect_load_error(m.dir.string(), {kExpertUp, "model.safetensors", "[64, 32]", "[32, 64]"});
}

TEST(ModelErrors, UnsupportedDtypeIsNamed) {
  ScratchModel m("qwen3_moe_f32", "dtype");
  m.edit_tensors([](TensorToWrite& t, std::vector<uint8_t>&) {
    if (t.name == kExpertUp) t.dtype = DType::I32;  // same byte size as f32
    return true;
  });
  expect_load_error(m.dir.string(), {kExpertUp, "model.safetensors", "i32"});
}

TEST(ModelErrors, RequiredDtypeIsChecked) {
  LoadOptions o;
  o.require_dtype = "f32";
  EXPECT_NO_THROW(Model::load(golden_model("qwen3_moe_f32"), o));
  try {
    Model::load(golden_model("qwen3_moe_bf16"), o);
    ADD_FAILURE() << "bf16 checkpoint accepted with require_dtype=f32";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("bf16"), std::string::npos) << e.what();
  }
}

TEST(ModelErrors, TruncatedFileIsNamed) {
  ScratchModel m("qwen3_moe_f32", "trunc");
  fs::resize_file(m.path("model.safetensors"), fs::file_size(m.path("model.safetensors")) / 2);
  expect_load_error(m.dir.string(), {"model.safetensors"});
}

TEST(ModelErrors, BadTokensAndFullCache) {
  auto m = Model::load(golden_model("olmoe_f32"));
  std::vector<float> logits(static_cast<size_t>(m->config().vocab));
  KVCache cache = m->make_cache(2);
  std::vector<int32_t> bad = {int32_t(m->config().vocab)};
  EXPECT_THROW(m->forward(bad, cache, logits.data(), false), Error);
  std::vector<int32_t> three = {3, 4, 5};
  EXPECT_THROW(m->forward(three, cache, logits.data(), false), Error);
  std::vector<int32_t> none;
  EXPECT_THROW(m->forward(none, cache, logits.data(), false), Error);
  EXPECT_EQ(cache.len, 0);
}

TEST(ModelRouting, ExpertsPerTokenAndRouterOverride) {
  LoadOptions o;
  o.experts_per_token = 3;
  auto m = Model::load(golden_model("qwen3_moe_f32"), o);
  auto specs = m->router_specs();
  ASSERT_EQ(specs.size(), 4u);
  EXPECT_EQ(specs[1], "");  // mlp_only_layers = [1]
  EXPECT_EQ(specs[0], "topk:k=3,norm=true");
  m->set_router("topk:k=1,norm=false");
  EXPECT_EQ(m->router_specs()[3], "topk:k=1,norm=false");
  m->set_router("");
  EXPECT_EQ(m->router_specs()[3], "topk:k=2,norm=true");
  EXPECT_THROW(m->set_router("no_such_router"), Error);
  // k changes the routing, hence the output.
  const int64_t V = m->config().vocab;
  std::vector<int32_t> ids = {5, 6, 7, 8};
  std::vector<float> a(static_cast<size_t>(V)), b(static_cast<size_t>(V));
  KVCache c1 = m->make_cache(4), c2 = m->make_cache(4);
  m->forward(ids, c1, a.data(), false);
  m->set_router("", 4);
  m->forward(ids, c2, b.data(), false);
  EXPECT_NE(a, b);
}

TEST(ModelRouting, ContinuationCallsAreDecodeSoNonCausalRoutersRefuse) {
  // expert_choice looks at the whole batch: fine for a prompt, refused once the sequence continues
  // from the cache (RouteInput::decode), as the issue requires.
  LoadOptions o;
  o.router = "expert_choice:cf=1";
  auto m = Model::load(golden_model("mixtral_sharded_f32"), o);
  std::vector<float> logits(static_cast<size_t>(m->config().vocab));
  KVCache cache = m->make_cache(8);
  std::vector<int32_t> prompt = {3, 4, 5}, one = {6};
  EXPECT_NO_THROW(m->forward(prompt, cache, logits.data(), false));
  try {
    m->forward(one, cache, logits.data(), false);
    ADD_FAILURE() << "a decode step with expert_choice did not fail";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("decode"), std::string::npos) << e.what();
  }
  EXPECT_THROW(m->forward(prompt, cache, logits.data(), false), Error);  // a chunk continuing the sequence
  KVCache fresh = m->make_cache(1);
  EXPECT_NO_THROW(m->forward(one, fresh, logits.data(), false));  // a one-token prompt is no decode step
}

TEST(ModelRouting, StatsAccumulatePerLayer) {
  auto m = Model::load(golden_model("qwen2_moe_f32"));  // decoder_sparse_step 2: layers 1 and 3
  std::vector<float> logits(static_cast<size_t>(m->config().vocab));
  KVCache cache = m->make_cache(8);
  ForwardStats st;
  std::vector<int32_t> prompt = {3, 4, 5, 6, 7}, one = {8};
  m->forward(prompt, cache, logits.data(), false, &st);
  m->forward(one, cache, logits.data(), false, &st);
  ASSERT_EQ(st.layers.size(), 4u);
  EXPECT_EQ(st.tokens, 6);
  EXPECT_EQ(st.layers[0].n_tokens, 0);
  EXPECT_EQ(st.layers[1].n_tokens, 6);
  EXPECT_EQ(st.layers[3].n_tokens, 6);
  int64_t assigned = 0;
  for (auto n : st.layers[3].tokens_per_expert) assigned += n;
  EXPECT_EQ(assigned, 12);  // k = 2
}

TEST(ModelInfo, ParameterCounts) {
  // qwen3_moe_f32: H 64, V 384, heads 4 x 32, kv 2 x 32, 4 layers, layer 1 dense (96), others
  // 8 experts of width 32 with k 2; untied head.
  auto m = Model::load(golden_model("qwen3_moe_f32"));
  const int64_t H = 64, V = 384, attn = 128 * H * 2 + 64 * H * 2 + 2 * 32 + 2 * H;
  const int64_t expert = 3 * 32 * H, moe = 8 * expert + 8 * H, dense = 3 * 96 * H;
  const int64_t total = 2 * V * H + H + 4 * attn + 3 * moe + dense;
  ModelSummary s = m->summary();
  EXPECT_EQ(s.params_total, total);
  EXPECT_EQ(s.params_active, total - 3 * 6 * expert);
  EXPECT_EQ(s.weight_bytes, total * 4);
  EXPECT_EQ(s.params_by_dtype.at("f32"), total);
  EXPECT_EQ(s.n_moe_layers, 3);
  EXPECT_EQ(s.n_dense_layers, 1);
  EXPECT_EQ(s.kv_bytes_per_token, 2 * 4 * 64 * 4);
  // Tied embeddings are counted once.
  auto tied = Model::load(golden_model("qwen3_moe_yarn_tied_f32"));
  EXPECT_EQ(tied->summary().params_total, tied->summary().weight_bytes / 4);
  EXPECT_TRUE(tied->config().tie_embeddings);
}

TEST(ModelConfigParse, ArchitectureSpecificFields) {
  auto q2 = load_model_config(golden_model("qwen2_moe_f32"));
  EXPECT_TRUE(q2.qkv_bias);
  EXPECT_FALSE(q2.o_bias);
  EXPECT_EQ(q2.layers[1].shared_ffn, 48);
  EXPECT_TRUE(q2.layers[1].shared_gate);
  EXPECT_FALSE(q2.layers[0].moe);
  EXPECT_EQ(q2.layers[1].router, "topk:k=2,norm=false");
  auto ol = load_model_config(golden_model("olmoe_clip_bf16"));
  EXPECT_EQ(ol.qk_norm, QKNorm::Full);
  EXPECT_DOUBLE_EQ(ol.clip_qkv, 1.0);
  EXPECT_DOUBLE_EQ(ol.rms_eps, 1e-5);
  auto mx = load_model_config(golden_model("mixtral_window_f16"));
  EXPECT_EQ(mx.sliding_window, 6);
  EXPECT_EQ(mx.layers[0].router, "topk:k=2,norm=true");
  auto y = load_model_config(golden_model("qwen3_moe_yarn_tied_f32"));
  EXPECT_EQ(y.rope.scaling, RopeScaling::Yarn);
  EXPECT_EQ(y.rope.original_max_pos, 16);
  EXPECT_NEAR(y.rope.attention_factor, 0.1 * std::log(4.0) + 1.0, 1e-12);
  EXPECT_EQ(y.head_dim, 32);
}

TEST(ModelOps, DynamicRopeGrowsBaseOnlyPastMaxPositions) {
  RopeConfig r;
  r.theta = 10000;
  r.scaling = RopeScaling::Dynamic;
  r.factor = 2.0;
  auto plain = rope_inv_freq(RopeConfig{}, 8, 16, 16);
  auto within = rope_inv_freq(r, 8, 16, 16);
  EXPECT_EQ(plain, within);
  // HF _compute_dynamic_ntk_parameters at seq_len 32, max 16: base * (2*32/16 - 1)^(8/6).
  auto past = rope_inv_freq(r, 8, 32, 16);
  const double base = 10000 * std::pow(3.0, 8.0 / 6.0);
  for (int i = 0; i < 4; ++i) EXPECT_NEAR(past[size_t(i)], 1.0 / std::pow(base, 2.0 * i / 8.0), 1e-15);
}

}  // namespace
}  // namespace sy
