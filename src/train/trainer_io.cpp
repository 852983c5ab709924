// Checkpoints of the trainer (layout and atomicity: trainer.h) and TrainConfig <-> JSON.
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <type_traits>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "core/dtype.h"
#include "core/error.h"
#include "io/atomic_file.h"
#include "io/safetensors.h"
#include "moe/router.h"
#include "train/trainer.h"

namespace sy::train {

namespace fs = std::filesystem;

// ---- TrainConfig as JSON ----------------------------------------------------------------------

#define SY_MODEL_FIELDS(X)                                                                                  \
  X(vocab) X(hidden) X(n_layers) X(n_heads) X(n_kv_heads) X(head_dim) X(n_experts) X(expert_ffn) X(shared_ffn) \
      X(shared_gate) X(router) X(rope_theta) X(rms_eps) X(lb_coef) X(z_coef) X(entropy_coef) X(bias_update_rate)
#define SY_TRAIN_FIELDS(X)                                                                                 \
  X(data) X(brown_dir) X(val_fraction) X(tokenizer) X(seq_len) X(batch) X(grad_accum) X(steps) X(tokens) X(lr) \
      X(min_lr) X(warmup) X(wd) X(clip) X(seed) X(balance) X(eval_every) X(eval_tokens) X(save_every)         \
          X(log_every) X(keep) X(save_dtype) X(precision) X(out)

nlohmann::json to_json(const TrainConfig& c) {
  nlohmann::json j, m;
#define X(f) m[#f] = c.model.f;
  SY_MODEL_FIELDS(X)
#undef X
#define X(f) j[#f] = c.f;
  SY_TRAIN_FIELDS(X)
#undef X
  j["model"] = m;
  return j;
}

namespace {

// One field, type-checked without lossy conversions (a float for an integer field, an integer out
// of range, a non-finite or out-of-range float are refused, never cast).
template <typename T>
void get_field(const nlohmann::json& v, T& out, const std::string& key) {
  auto bad = [&](const char* what) { fail("[train] train_config field '", key, "' = ", v.dump(), " is not ", what); };
  if constexpr (std::is_same_v<T, bool>) {
    if (!v.is_boolean()) bad("true or false");
    out = v.get<bool>();
  } else if constexpr (std::is_same_v<T, std::string>) {
    if (!v.is_string()) bad("a string");
    out = v.get<std::string>();
  } else if constexpr (std::is_integral_v<T>) {
    if (!v.is_number_integer()) bad("an integer");
    if (v.is_number_unsigned()) {
      const uint64_t u = v.get<uint64_t>();
      if (u > uint64_t(std::numeric_limits<T>::max())) bad("in range");
      out = T(u);
    } else {
      const int64_t i = v.get<int64_t>();
      if (i < 0 && std::is_unsigned_v<T>) bad("a non-negative integer");
      if (i < int64_t(std::numeric_limits<T>::min()) || (i > 0 && uint64_t(i) > uint64_t(std::numeric_limits<T>::max())))
        bad("in range");
      out = T(i);
    }
  } else {
    if (!v.is_number()) bad("a number");
    const double d = v.get<double>();
    if (!std::isfinite(d) || std::abs(d) > double(std::numeric_limits<T>::max())) bad("a finite number in range");
    out = T(d);
  }
}

}  // namespace

TrainConfig train_config_from_json(const nlohmann::json& j) {
  TrainConfig c;
  SY_CHECK(j.is_object(), "[train] train_config is not a JSON object");
  try {
    for (const auto& [k, v] : j.items()) {
      if (k == "model") {
        SY_CHECK(v.is_object(), "[train] train_config.model is not a JSON object");
        for (const auto& [mk, mv] : v.items()) {
#define X(f)                                \
  if (mk == #f) {                           \
    get_field(mv, c.model.f, "model." #f);  \
    continue;                               \
  }
          SY_MODEL_FIELDS(X)
#undef X
          fail("[train] train_config.model has an unknown field '", mk, "'");
        }
        continue;
      }
#define X(f)          \
  if (k == #f) {      \
    get_field(v, c.f, #f); \
    continue;         \
  }
      SY_TRAIN_FIELDS(X)
#undef X
      fail("[train] train_config has an unknown field '", k, "'");
    }
  } catch (const nlohmann::json::exception& e) {
    fail("[train] train_config: ", e.what());
  }
  return c;
}

const std::vector<std::string>& fixed_on_resume() {
  static const std::vector<std::string> keys = [] {
    std::vector<std::string> k;
#define X(f) k.push_back("/model/" #f);
    SY_MODEL_FIELDS(X)
#undef X
    for (const char* f : {"/data", "/brown_dir", "/val_fraction", "/seq_len", "/seed"}) k.push_back(f);
    return k;
  }();
  return keys;
}

// ---- files ------------------------------------------------------------------------------------

namespace {

void fsync_dir(const std::string& dir) {
  int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  SY_CHECK(fd >= 0, "[train] cannot open directory ", dir, ": ", std::strerror(errno));
  const int rc = ::fsync(fd);
  const int e = errno;
  ::close(fd);
  SY_CHECK(rc == 0, "[train] fsync of directory ", dir, " failed: ", std::strerror(e));
}

// FNV-1a 64 over the bytes of the state tensors, to detect a damaged train_state file.
uint64_t fnv1a(uint64_t h, const void* data, size_t n) {
  const auto* b = static_cast<const uint8_t*>(data);
  for (size_t i = 0; i < n; ++i) h = (h ^ b[i]) * 0x100000001B3ull;
  return h;
}

std::string checkpoint_name(int64_t step) {
  std::string s = std::to_string(step);
  return "checkpoint-" + std::string(s.size() < 7 ? 7 - s.size() : 0, '0') + s;
}

// num_experts_per_tok / norm_topk_prob of a router spec (top-p: its max_k, unnormalised).
struct RouterSpecSummary {
  int64_t k = 2;
  bool norm = true;
};
RouterSpecSummary summarize_router(const std::string& spec, int64_t n_experts) {
  const RouterSpec s = RouterSpec::parse(spec);
  if (s.name == "topp") return {s.get_int("max_k", n_experts), false};
  return {s.get_int("k", 2), s.get_bool("norm", true)};
}

// Hugging Face Qwen3-MoE config.json (transformers Qwen3MoeConfig field names) for the model.
nlohmann::json hf_config(const TrainConfig& c, int32_t bos, int32_t eos) {
  const MoELMConfig& m = c.model;
  RouterSpecSummary rs = summarize_router(m.router, m.n_experts);
  nlohmann::json j = {
      {"architectures", {"Qwen3MoeForCausalLM"}},
      {"model_type", "qwen3_moe"},
      {"vocab_size", m.vocab},
      {"hidden_size", m.hidden},
      {"intermediate_size", m.expert_ffn},  // dense-layer width; every layer here is sparse
      {"moe_intermediate_size", m.expert_ffn},
      {"num_hidden_layers", m.n_layers},
      {"num_attention_heads", m.n_heads},
      {"num_key_value_heads", m.n_kv_heads},
      {"head_dim", m.head_dim},
      {"num_experts", m.n_experts},
      {"num_experts_per_tok", rs.k},
      {"norm_topk_prob", rs.norm},
      {"decoder_sparse_step", 1},
      {"mlp_only_layers", nlohmann::json::array()},
      {"max_position_embeddings", std::max<int64_t>(c.seq_len, 4096)},
      {"rope_theta", m.rope_theta},
      {"rope_scaling", nullptr},
      {"rms_norm_eps", m.rms_eps},
      {"hidden_act", "silu"},
      {"attention_bias", false},
      {"attention_dropout", 0.0},
      {"use_sliding_window", false},
      {"sliding_window", nullptr},
      {"tie_word_embeddings", false},
      {"router_aux_loss_coef", m.lb_coef},
      {"output_router_logits", false},
      {"initializer_range", 0.02},
      {"use_cache", true},
      {"torch_dtype", c.save_dtype == "bf16" ? "bfloat16" : "float32"},
      {"bos_token_id", bos >= 0 ? nlohmann::json(bos) : nlohmann::json(nullptr)},
      {"eos_token_id", eos},
      {"switchyard_router", m.router},
  };
  if (m.shared_ffn > 0) {
    j["shared_expert_intermediate_size"] = m.shared_ffn;
    j["switchyard_shared_expert_gate"] = m.shared_gate;
  }
  return j;
}

}  // namespace

std::string Trainer::resolve_checkpoint(const std::string& dir) {
  const fs::path latest = fs::path(dir) / "latest";
  std::error_code ec;
  if (fs::is_symlink(latest, ec)) {
    const fs::path target = fs::read_symlink(latest, ec);
    SY_CHECK(!ec, "[train] cannot read the link ", latest.string(), ": ", ec.message());
    const fs::path full = target.is_absolute() ? target : fs::path(dir) / target;
    SY_CHECK(fs::exists(full / "train_state.safetensors", ec), "[train] ", latest.string(), " points to ",
             full.string(), ", which holds no train_state.safetensors");
    return full.string();
  }
  SY_CHECK(fs::exists(fs::path(dir) / "train_state.safetensors", ec), "[train] ", dir,
           " holds no checkpoint (neither a 'latest' link nor train_state.safetensors)");
  return dir;
}

TrainConfig Trainer::load_config(const std::string& dir) {
  const std::string ckpt = resolve_checkpoint(dir);
  const SafeTensors st(ckpt + "/train_state.safetensors");
  const auto it = st.metadata().find("train_config");
  SY_CHECK(it != st.metadata().end(), "[train] ", st.path(), ": no 'train_config' in the metadata");
  return parse_train_config(it->second, st.path());
}

TrainConfig parse_train_config(std::string_view text, const std::string& name) {
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(text);
  } catch (const nlohmann::json::exception& e) {
    fail("[train] ", name, ": train_config is not valid JSON: ", e.what());
  }
  try {
    return train_config_from_json(j);
  } catch (const Error& e) {
    fail(name, ": ", e.what());
  }
}

std::string Trainer::save() {
  const std::string out = cfg_.out, name = checkpoint_name(step_);
  const std::string tmp = out + "/." + name + ".tmp", dir = out + "/" + name;
  std::error_code ec;
  // A link already naming this step (a resume that ends where it started) needs no new save.
  if (fs::is_symlink(out + "/latest", ec) && fs::read_symlink(out + "/latest", ec) == name) return dir;
  fs::remove_all(tmp, ec);
  fs::create_directories(tmp, ec);
  SY_CHECK(!ec, "[train] cannot create ", tmp, ": ", ec.message());

  MoELM& m = *model_;
  // Model weights, in the dtype asked for.
  std::vector<TensorToWrite> tensors = m.tensors();
  std::vector<std::vector<uint16_t>> bf16;
  if (cfg_.save_dtype == "bf16") {
    bf16.reserve(tensors.size());
    for (auto& t : tensors) {
      int64_t n = 1;
      for (int64_t d : t.shape) n *= d;
      bf16.emplace_back(size_t(n));
      from_f32(DType::BF16, static_cast<const float*>(t.data), bf16.back().data(), size_t(n));
      t.dtype = DType::BF16;
      t.data = bf16.back().data();
    }
  }
  write_safetensors(tmp + "/model.safetensors", tensors, {{"format", "pt"}});
  write_file_atomic(tmp + "/config.json", hf_config(cfg_, bos_id_, eos_id_).dump(2) + "\n");
  nlohmann::json gen = {{"eos_token_id", eos_id_}, {"do_sample", true}, {"temperature", 0.8}, {"top_p", 0.95}};
  if (bos_id_ >= 0) gen["bos_token_id"] = bos_id_;
  write_file_atomic(tmp + "/generation_config.json", gen.dump(2) + "\n");
  write_file_atomic(tmp + "/tokenizer.json", tokenizer_json_);
  if (!tokenizer_config_.empty()) write_file_atomic(tmp + "/tokenizer_config.json", tokenizer_config_);

  // Training state (always f32) with a checksum over its bytes.
  const auto w = m.weights(), mm = m.adam_m(), vv = m.adam_v(), b = m.router_biases();
  uint64_t h = 0xCBF29CE484222325ull;
  for (auto s : {w, mm, vv, b}) h = fnv1a(h, s.data(), s.size() * sizeof(float));
  const std::map<std::string, std::string> meta = {{"format", "switchyard-train-state-1"},
                                                   {"step", std::to_string(step_)},
                                                   {"tokens_seen", std::to_string(tokens_seen_)},
                                                   {"rng", std::to_string(rng_)},
                                                   {"checksum", std::to_string(h)},
                                                   {"train_config", to_json(cfg_).dump()}};
  write_safetensors(tmp + "/train_state.safetensors",
                    {{"weights", DType::F32, {int64_t(w.size())}, w.data()},
                     {"adam_m", DType::F32, {int64_t(mm.size())}, mm.data()},
                     {"adam_v", DType::F32, {int64_t(vv.size())}, vv.data()},
                     {"router_bias", DType::F32, {int64_t(b.size())}, b.data()}},
                    meta);
  fsync_dir(tmp);

  // Publish: rename the finished directory, then point `latest` at it.
  if (fs::exists(dir, ec)) fs::remove_all(dir, ec);  // a leftover that `latest` does not name
  SY_CHECK(::rename(tmp.c_str(), dir.c_str()) == 0, "[train] cannot rename ", tmp, " to ", dir, ": ",
           std::strerror(errno));
  fsync_dir(out);
  const std::string link_tmp = out + "/.latest.tmp";
  ::unlink(link_tmp.c_str());
  SY_CHECK(::symlink(name.c_str(), link_tmp.c_str()) == 0, "[train] cannot create the link ", link_tmp, ": ",
           std::strerror(errno));
  SY_CHECK(::rename(link_tmp.c_str(), (out + "/latest").c_str()) == 0, "[train] cannot rename ", link_tmp, " to ",
           out, "/latest: ", std::strerror(errno));
  fsync_dir(out);

  // Prune: keep the newest `keep` checkpoints (the one just written among them) and no tmp dirs.
  std::vector<std::string> old;
  for (const auto& e : fs::directory_iterator(out, ec)) {
    const std::string n = e.path().filename().string();
    if (n.rfind("checkpoint-", 0) == 0 && n != name) old.push_back(n);
    if (n.rfind(".checkpoint-", 0) == 0) fs::remove_all(e.path(), ec);
  }
  std::sort(old.begin(), old.end());
  for (size_t i = 0; i + size_t(cfg_.keep - 1) < old.size(); ++i) fs::remove_all(out + "/" + old[i], ec);
  log({{"type", "save"}, {"step", step_}, {"dir", dir}});
  if (cb_.on_save) cb_.on_save(step_, dir);
  return dir;
}

void Trainer::restore(const std::string& ckpt) {
  const SafeTensors st(ckpt + "/train_state.safetensors");
  const auto& meta = st.metadata();
  auto field = [&](const char* k) -> const std::string& {
    const auto it = meta.find(k);
    SY_CHECK(it != meta.end(), "[train] ", st.path(), ": metadata field '", k, "' is missing");
    return it->second;
  };
  SY_CHECK(field("format") == "switchyard-train-state-1", "[train] ", st.path(), ": format '", field("format"),
           "' is not switchyard-train-state-1");
  auto u64 = [&](const char* k) -> uint64_t {
    const std::string& v = field(k);
    size_t used = 0;
    unsigned long long x = 0;
    try {
      x = std::stoull(v, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    SY_CHECK(used == v.size() && !v.empty(), "[train] ", st.path(), ": metadata field '", k, "' = '", v,
             "' is not an unsigned integer");
    return x;
  };
  MoELM& m = *model_;
  uint64_t h = 0xCBF29CE484222325ull;
  for (auto [name, span] : {std::pair{"weights", m.weights()}, std::pair{"adam_m", m.adam_m()},
                            std::pair{"adam_v", m.adam_v()}, std::pair{"router_bias", m.router_biases()}}) {
    const TensorInfo& t = st.get(name, {int64_t(span.size())});
    SY_CHECK(t.dtype == DType::F32, "[train] ", st.path(), ": tensor '", name, "' is ", dtype_name(t.dtype),
             ", expected f32");
    std::memcpy(span.data(), t.data, t.nbytes);
    h = fnv1a(h, span.data(), t.nbytes);
  }
  SY_CHECK(h == u64("checksum"), "[train] ", st.path(),
           ": checksum mismatch (the file is damaged; resume from an older checkpoint)");
  step_ = int64_t(u64("step"));
  tokens_seen_ = int64_t(u64("tokens_seen"));
  rng_ = u64("rng");
  // Keep the log consistent with the resumed state: drop what was logged after this step.
  std::vector<std::string> keep;
  {
    std::ifstream f(cfg_.out + "/log.jsonl");
    std::string line;
    while (std::getline(f, line)) {
      try {
        const auto j = nlohmann::json::parse(line);
        if (j.value("step", int64_t(0)) <= step_) keep.push_back(line);
      } catch (const nlohmann::json::exception&) {
        // a torn last line from a kill: dropped
      }
    }
  }
  std::error_code ec;
  fs::create_directories(cfg_.out, ec);
  std::string text;
  for (const auto& l : keep) text += l + "\n";
  write_file_atomic(cfg_.out + "/log.jsonl", text);
  log({{"type", "resume"}, {"step", step_}, {"from", ckpt}});
}

}  // namespace sy::train
