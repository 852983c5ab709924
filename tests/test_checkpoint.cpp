// Checkpoint directories: single file, sharded through model.safetensors.index.json, and every way
// the index and the shards can disagree. The fixtures are inputs (not numerics), written here with
// sy::write_safetensors into a fresh temporary directory per test.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "io/checkpoint.h"
#include "io/json_file.h"

namespace sy {
namespace {
namespace fs = std::filesystem;

class TempDir {
 public:
  TempDir() {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    path_ = (fs::temp_directory_path() /
             str("sy_ckpt_", ::getpid(), "_", info->test_suite_name(), "_", info->name()))
                .string();
    fs::remove_all(path_);
    fs::create_directories(path_);
  }
  ~TempDir() { fs::remove_all(path_); }
  const std::string& path() const { return path_; }
  std::string operator/(const std::string& f) const { return path_ + "/" + f; }

 private:
  std::string path_;
};

void write_text(const std::string& path, const std::string& text) {
  std::ofstream(path, std::ios::binary) << text;
}

// A shard with tensors `names`, each [2, n] f32 filled with `base + i`.
void write_shard(const std::string& path, const std::vector<std::string>& names, float base = 0) {
  std::vector<std::vector<float>> data;
  std::vector<TensorToWrite> ts;
  for (size_t i = 0; i < names.size(); ++i) data.emplace_back(2 * (i + 1), base + float(i));
  for (size_t i = 0; i < names.size(); ++i)
    ts.push_back({names[i], DType::F32, {2, int64_t(i + 1)}, data[i].data()});
  write_safetensors(path, ts);
}

void write_index(const std::string& path, const std::vector<std::pair<std::string, std::string>>& map) {
  nlohmann::json j = {{"metadata", {{"total_size", 0}}}, {"weight_map", nlohmann::json::object()}};
  for (const auto& [t, f] : map) j["weight_map"][t] = f;
  write_text(path, j.dump(2));
}

// Runs f, expects sy::Error whose text contains every one of `parts`.
template <typename F>
void expect_error(F&& f, const std::vector<std::string>& parts) {
  try {
    f();
    ADD_FAILURE() << "no error thrown";
  } catch (const Error& e) {
    std::string msg = e.what();
    for (const auto& p : parts) EXPECT_NE(msg.find(p), std::string::npos) << "'" << p << "' not in: " << msg;
  }
}

TEST(Checkpoint, SingleFile) {
  TempDir d;
  write_shard(d / "model.safetensors", {"a.weight", "b.weight"}, 1.0f);
  auto ck = Checkpoint::open(d.path());
  EXPECT_FALSE(ck->sharded());
  EXPECT_EQ(ck->names(), (std::vector<std::string>{"a.weight", "b.weight"}));
  EXPECT_EQ(ck->get("b.weight", {2, 2}).nbytes, 16u);
  EXPECT_EQ(ck->total_bytes(), 8u + 16u);
  EXPECT_EQ(ck->file_of("a.weight"), d / "model.safetensors");
  EXPECT_EQ(ck->to_f32("b.weight"), std::vector<float>(4, 2.0f));
  EXPECT_EQ(ck->find("c"), nullptr);
  expect_error([&] { ck->get("c.weight"); }, {"missing tensor c.weight", d / "model.safetensors"});
  expect_error([&] { ck->get("a.weight", {3, 1}); }, {"a.weight", "[2, 1]", "expected [3, 1]", "model.safetensors"});
  // A .safetensors file can be given directly.
  auto ck2 = Checkpoint::open(d / "model.safetensors");
  EXPECT_EQ(ck2->names(), ck->names());
}

TEST(Checkpoint, ShardedAgreesWithIndexAndFileOffsetAllowsPread) {
  TempDir d;
  write_shard(d / "model-00001-of-00002.safetensors", {"x", "y"}, 10.0f);
  write_shard(d / "model-00002-of-00002.safetensors", {"z"}, 20.0f);
  write_index(d / "model.safetensors.index.json", {{"x", "model-00001-of-00002.safetensors"},
                                                   {"y", "model-00001-of-00002.safetensors"},
                                                   {"z", "model-00002-of-00002.safetensors"}});
  auto ck = Checkpoint::open(d.path() + "/");
  EXPECT_TRUE(ck->sharded());
  EXPECT_EQ(ck->size(), 3u);
  EXPECT_EQ(ck->names(), (std::vector<std::string>{"x", "y", "z"}));
  EXPECT_EQ(ck->shards().size(), 2u);
  EXPECT_EQ(ck->file_of("z"), d / "model-00002-of-00002.safetensors");
  EXPECT_EQ(ck->total_bytes(), 8u + 16u + 8u);
  EXPECT_EQ(ck->to_f32("z"), std::vector<float>(2, 20.0f));
  EXPECT_EQ(ck->to_f32("y"), std::vector<float>(4, 11.0f));
  // file + file_offset point at the same bytes as the mapping.
  const TensorInfo& y = ck->get("y");
  std::ifstream f(ck->file_of("y"), std::ios::binary);
  f.seekg(std::streamoff(y.file_offset));
  std::vector<float> buf(4);
  f.read(reinterpret_cast<char*>(buf.data()), 16);
  EXPECT_EQ(buf, std::vector<float>(4, 11.0f));
  expect_error([&] { ck->get("w"); }, {"missing tensor w", "model.safetensors.index.json"});
  expect_error([&] { ck->get("z", {2}); }, {"model-00002-of-00002.safetensors", "tensor z", "[2, 1]"});
}

TEST(Checkpoint, SingleFileIsPreferredOverIndex) {
  TempDir d;
  write_shard(d / "model.safetensors", {"only"});
  write_index(d / "model.safetensors.index.json", {{"x", "missing.safetensors"}});
  auto ck = Checkpoint::open(d.path());
  EXPECT_FALSE(ck->sharded());
  EXPECT_EQ(ck->names(), std::vector<std::string>{"only"});
}

TEST(Checkpoint, IndexAndShardsDisagree) {
  const std::string A = "model-00001-of-00002.safetensors", B = "model-00002-of-00002.safetensors";
  const std::string I = "model.safetensors.index.json";
  {  // listed in the index, missing from its shard
    TempDir d;
    write_shard(d / A, {"x"});
    write_shard(d / B, {"z"});
    write_index(d / I, {{"x", A}, {"y", A}, {"z", B}});
    expect_error([&] { Checkpoint::open(d.path()); }, {I, "tensor y", A, "does not contain it"});
  }
  {  // present in two shards
    TempDir d;
    write_shard(d / A, {"x", "z"});
    write_shard(d / B, {"z"});
    write_index(d / I, {{"x", A}, {"z", B}});
    expect_error([&] { Checkpoint::open(d.path()); }, {"tensor z", "two shards", A, B});
  }
  {  // stored in another shard than the index says
    TempDir d;
    write_shard(d / A, {"x", "z"});
    write_shard(d / B, {"y"});
    write_index(d / I, {{"x", A}, {"y", B}, {"z", B}});
    expect_error([&] { Checkpoint::open(d.path()); }, {I, "tensor z", "listed in shard", B, "stored in", A});
  }
  {  // in a shard but not in the index
    TempDir d;
    write_shard(d / A, {"x", "extra"});
    write_index(d / I, {{"x", A}});
    expect_error([&] { Checkpoint::open(d.path()); }, {A, "tensor extra", "not listed in", I});
  }
  {  // shard file missing
    TempDir d;
    write_shard(d / A, {"x"});
    write_index(d / I, {{"x", A}, {"y", B}});
    expect_error([&] { Checkpoint::open(d.path()); }, {I, "tensor y", B, "does not exist"});
  }
  {  // path escaping the directory
    TempDir d;
    write_index(d / I, {{"x", "../elsewhere.safetensors"}});
    expect_error([&] { Checkpoint::open(d.path()); }, {I, "tensor x", "not a relative path"});
  }
  {  // malformed index
    TempDir d;
    write_text(d / I, "{\"weight_map\": {\"x\": ");
    expect_error([&] { Checkpoint::open(d.path()); }, {I, "not valid JSON"});
    write_text(d / I, "{\"weight_map\": [1, 2]}");
    expect_error([&] { Checkpoint::open(d.path()); }, {I, "weight_map", "expected an object"});
    write_text(d / I, "{\"metadata\": {}}");
    expect_error([&] { Checkpoint::open(d.path()); }, {I, "missing field 'weight_map'"});
    write_text(d / I, "{\"weight_map\": {\"x\": 3}}");
    expect_error([&] { Checkpoint::open(d.path()); }, {I, "tensor x", "expected a file name"});
  }
  {  // a corrupt shard: the safetensors error names the shard
    TempDir d;
    write_text(d / A, "short");
    write_index(d / I, {{"x", A}});
    expect_error([&] { Checkpoint::open(d.path()); }, {A, "too short"});
  }
}

TEST(Checkpoint, MissingDirectoryOrWeights) {
  TempDir d;
  expect_error([&] { Checkpoint::open(d / "nope"); }, {"nope", "does not exist"});
  expect_error([&] { Checkpoint::open(d.path()); }, {d.path(), "no model.safetensors"});
  write_text(d / "weights.bin", "x");
  expect_error([&] { Checkpoint::open(d / "weights.bin"); }, {"weights.bin", "not a model directory"});
}

TEST(Checkpoint, ConfigFilesAndJsonFields) {
  TempDir d;
  write_shard(d / "model.safetensors", {"a"});
  auto ck = Checkpoint::open(d.path());
  expect_error([&] { ck->config(); }, {"no config.json"});
  EXPECT_FALSE(ck->tokenizer_config().has_value());
  EXPECT_FALSE(ck->generation_config().has_value());
  write_text(d / "config.json",
             R"({"num_experts": 8, "rope_theta": 1000000, "norm_topk_prob": true, "model_type": "qwen3_moe",
                 "mlp_only_layers": [0, 2], "head_dim": 3.5, "sliding_window": null, "big": 5000000000})");
  write_text(d / "generation_config.json", R"({"eos_token_id": [151645, 151643]})");
  write_text(d / "tokenizer_config.json", "{not json");
  const auto cfg = ck->config();
  const std::string P = ck->config_path();
  EXPECT_EQ(json_field<int>(cfg, "num_experts", P), 8);
  EXPECT_EQ(json_field<double>(cfg, "rope_theta", P), 1e6);
  EXPECT_TRUE(json_field<bool>(cfg, "norm_topk_prob", P));
  EXPECT_EQ(json_field<std::string>(cfg, "model_type", P), "qwen3_moe");
  EXPECT_EQ(json_field<std::vector<int>>(cfg, "mlp_only_layers", P), (std::vector<int>{0, 2}));
  EXPECT_EQ(json_field_or<int>(cfg, "sliding_window", 7, P), 7);
  EXPECT_EQ(json_field_or<int>(cfg, "absent", 9, P), 9);
  EXPECT_EQ(json_field<int64_t>(cfg, "big", P), 5000000000);
  expect_error([&] { json_field<int>(cfg, "big", P); }, {P, "'big'", "out of range"});
  expect_error([&] { json_field<int>(cfg, "num_layers", P); }, {P, "missing field 'num_layers'"});
  expect_error([&] { json_field<int>(cfg, "head_dim", P); }, {P, "'head_dim'", "a number, expected an integer"});
  expect_error([&] { json_field<std::string>(cfg, "num_experts", P); }, {P, "'num_experts'", "expected a string"});
  expect_error([&] { json_field<std::vector<std::string>>(cfg, "mlp_only_layers", P); },
               {P, "mlp_only_layers[0]", "expected a string"});
  auto gen = ck->generation_config();
  ASSERT_TRUE(gen.has_value());
  EXPECT_EQ(json_field<std::vector<int64_t>>(*gen, "eos_token_id", "g").size(), 2u);
  expect_error([&] { ck->tokenizer_config(); }, {"tokenizer_config.json", "not valid JSON"});
}

}  // namespace
}  // namespace sy
