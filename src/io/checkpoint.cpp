#include "io/checkpoint.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "core/error.h"
#include "io/json_file.h"

namespace sy {
namespace fs = std::filesystem;

namespace {

// Shard names come from a file we do not trust: keep them inside the model directory.
bool safe_relative(const std::string& f) {
  if (f.empty() || f.find('\0') != std::string::npos) return false;
  fs::path p(f);
  if (p.is_absolute() || p.has_root_name()) return false;
  for (const auto& part : p)
    if (part == "..") return false;
  return true;
}

std::string read_text_file(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  SY_CHECK(f.good(), "[checkpoint] ", path, ": cannot open");
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

}  // namespace

std::map<std::string, std::string> parse_checkpoint_index(std::string_view text, const std::string& I) {
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(text);
  } catch (const nlohmann::json::exception& e) {
    fail("[checkpoint] ", I, ": not valid JSON: ", e.what());
  }
  SY_CHECK(j.is_object(), "[checkpoint] ", I, ": expected a JSON object");
  auto wm = j.find("weight_map");
  SY_CHECK(wm != j.end(), "[checkpoint] ", I, ": missing field 'weight_map'");
  SY_CHECK(wm->is_object(), "[checkpoint] ", I, ": field 'weight_map' is ", detail::json_type_name(*wm),
           ", expected an object {tensor: file}");
  SY_CHECK(!wm->empty(), "[checkpoint] ", I, ": 'weight_map' is empty");
  std::map<std::string, std::string> out;
  for (auto it = wm->begin(); it != wm->end(); ++it) {
    const std::string& tensor = it.key();
    SY_CHECK(it.value().is_string(), "[checkpoint] ", I, ": weight_map entry for tensor ", tensor, " is ",
             detail::json_type_name(it.value()), ", expected a file name");
    std::string file = it.value().get<std::string>();
    SY_CHECK(safe_relative(file), "[checkpoint] ", I, ": tensor ", tensor, " maps to '", file,
             "', which is not a relative path inside the model directory");
    out.emplace(tensor, std::move(file));
  }
  return out;
}

void Checkpoint::add_shard(const std::string& path) {
  shards_.push_back(std::make_unique<SafeTensors>(path));
}

std::unique_ptr<Checkpoint> Checkpoint::open(const std::string& dir_in) {
  std::unique_ptr<Checkpoint> ck(new Checkpoint());
  std::error_code ec;
  SY_CHECK(fs::exists(dir_in, ec), "[checkpoint] ", dir_in, ": does not exist");
  if (fs::is_regular_file(dir_in, ec)) {
    SY_CHECK(fs::path(dir_in).extension() == ".safetensors", "[checkpoint] ", dir_in,
             ": not a model directory or a .safetensors file");
    std::string parent = fs::path(dir_in).parent_path().string();
    ck->dir_ = parent.empty() ? "." : parent;
    ck->add_shard(dir_in);
  } else {
    SY_CHECK(fs::is_directory(dir_in, ec), "[checkpoint] ", dir_in, ": not a directory");
    ck->dir_ = dir_in;
    while (ck->dir_.size() > 1 && ck->dir_.back() == '/') ck->dir_.pop_back();
    const std::string single = ck->dir_ + "/model.safetensors";
    const std::string index = ck->dir_ + "/model.safetensors.index.json";
    if (fs::exists(single, ec)) {
      ck->add_shard(single);
    } else {
      SY_CHECK(fs::exists(index, ec), "[checkpoint] ", ck->dir_,
               ": no model.safetensors or model.safetensors.index.json in the directory");
      ck->index_path_ = index;
    }
  }

  if (ck->index_path_.empty()) {
    const SafeTensors& st = *ck->shards_[0];
    for (const auto& n : st.names()) {
      const TensorInfo* t = st.find(n);
      ck->tensors_.emplace(n, Entry{t, 0});
      ck->total_bytes_ += t->nbytes;
    }
    return ck;
  }

  // Sharded: read the index, open every shard it names, check both sides agree.
  const std::string& I = ck->index_path_;
  std::map<std::string, size_t> file_index;         // shard file name -> shards_ index
  std::vector<std::string> file_names;              // shards_ index -> file name as in the index
  std::map<std::string, size_t, std::less<>> want;  // tensor -> shards_ index per the index
  for (const auto& [tensor, file] : parse_checkpoint_index(read_text_file(I), I)) {
    auto f = file_index.find(file);
    if (f == file_index.end()) {
      const std::string path = ck->dir_ + "/" + file;
      SY_CHECK(fs::is_regular_file(path, ec), "[checkpoint] ", I, ": tensor ", tensor, " maps to shard ", file,
               ", which does not exist (", path, ")");
      f = file_index.emplace(file, file_names.size()).first;
      file_names.push_back(file);
    }
    want.emplace(tensor, f->second);
  }
  for (const auto& file : file_names) ck->add_shard(ck->dir_ + "/" + file);

  // Every tensor present in a shard: no duplicates across shards, each listed in the index.
  for (size_t s = 0; s < ck->shards_.size(); ++s) {
    const SafeTensors& st = *ck->shards_[s];
    for (const auto& n : st.names()) {
      auto prev = ck->tensors_.find(n);
      SY_CHECK(prev == ck->tensors_.end(), "[checkpoint] ", ck->dir_, ": tensor ", n, " is in two shards: ",
               ck->shards_[prev->second.shard]->path(), " and ", st.path());
      auto w = want.find(n);
      SY_CHECK(w != want.end(), "[checkpoint] ", st.path(), ": tensor ", n, " is not listed in ", I);
      const TensorInfo* t = st.find(n);
      ck->tensors_.emplace(n, Entry{t, s});
    }
  }
  // Every indexed tensor is in the shard the index names.
  for (const auto& [n, s] : want) {
    auto got = ck->tensors_.find(n);
    SY_CHECK(got != ck->tensors_.end(), "[checkpoint] ", I, ": tensor ", n, " is listed in shard ",
             ck->shards_[s]->path(), ", which does not contain it");
    SY_CHECK(got->second.shard == s, "[checkpoint] ", I, ": tensor ", n, " is listed in shard ", ck->shards_[s]->path(),
             " but is stored in ", ck->shards_[got->second.shard]->path());
    ck->total_bytes_ += got->second.info->nbytes;
  }
  return ck;
}

const TensorInfo* Checkpoint::find(std::string_view name) const {
  auto it = tensors_.find(name);
  return it == tensors_.end() ? nullptr : it->second.info;
}

const TensorInfo& Checkpoint::get(std::string_view name) const {
  const TensorInfo* t = find(name);
  SY_CHECK(t, "[checkpoint] ", sharded() ? index_path_ : shards_[0]->path(), ": missing tensor ", name);
  return *t;
}

const TensorInfo& Checkpoint::get(std::string_view name, const std::vector<int64_t>& shape) const {
  const TensorInfo& t = get(name);
  if (t.shape != shape) {
    TensorInfo want;
    want.shape = shape;
    fail("[checkpoint] ", file_of(name), ": tensor ", name, " has shape ", t.shape_str(), ", expected ",
         want.shape_str());
  }
  return t;
}

std::vector<std::string> Checkpoint::names() const {
  std::vector<std::string> out;
  out.reserve(tensors_.size());
  for (const auto& [k, v] : tensors_) out.push_back(k);
  return out;
}

const std::string& Checkpoint::file_of(std::string_view name) const {
  auto it = tensors_.find(name);
  SY_CHECK(it != tensors_.end(), "[checkpoint] ", sharded() ? index_path_ : shards_[0]->path(), ": missing tensor ",
           name);
  return shards_[it->second.shard]->path();
}

std::vector<float> Checkpoint::to_f32(std::string_view name) const {
  auto it = tensors_.find(name);
  SY_CHECK(it != tensors_.end(), "[checkpoint] ", sharded() ? index_path_ : shards_[0]->path(), ": missing tensor ",
           name);
  return shards_[it->second.shard]->to_f32(name);
}

nlohmann::json Checkpoint::config() const {
  const std::string p = config_path();
  SY_CHECK(fs::exists(p), "[checkpoint] ", dir_, ": no config.json in the model directory");
  return read_json_file(p);
}

std::optional<nlohmann::json> Checkpoint::tokenizer_config() const {
  return read_json_file_if_exists(dir_ + "/tokenizer_config.json");
}

std::optional<nlohmann::json> Checkpoint::generation_config() const {
  return read_json_file_if_exists(dir_ + "/generation_config.json");
}

}  // namespace sy
