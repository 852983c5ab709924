#include "io/safetensors.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "core/error.h"

namespace sy {
namespace {

bool parse_st_dtype(const std::string& s, DType* out) {
  if (s == "F32") *out = DType::F32;
  else if (s == "BF16") *out = DType::BF16;
  else if (s == "F16") *out = DType::F16;
  else if (s == "I32") *out = DType::I32;
  else if (s == "I64") *out = DType::I64;
  else if (s == "U8" || s == "BOOL") *out = DType::U8;
  else return false;
  return true;
}

const char* st_dtype_name(DType t) {
  switch (t) {
    case DType::F32: return "F32";
    case DType::BF16: return "BF16";
    case DType::F16: return "F16";
    case DType::I32: return "I32";
    case DType::I64: return "I64";
    case DType::U8: return "U8";
  }
  return "?";
}

}  // namespace

int64_t TensorInfo::numel() const {
  int64_t n = 1;
  for (auto d : shape) n *= d;
  return n;
}

std::string TensorInfo::shape_str() const {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

SafeTensors::SafeTensors(const std::string& path)
    : file_(std::make_unique<MappedFile>(path)), path_(path) {
  base_ = file_->data();
  size_ = file_->size();
  parse();
}

SafeTensors::SafeTensors(const uint8_t* data, size_t size, std::string name)
    : base_(data), size_(size), path_(std::move(name)) {
  parse();
}

void SafeTensors::parse() {
  const std::string& P = path_;
  SY_CHECK(size_ >= 8, "[safetensors] ", P, ": file too short (", size_, " bytes) for the 8-byte header length");
  uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | base_[i];
  SY_CHECK(n <= size_ - 8, "[safetensors] ", P, ": header length ", n, " past end of file (", size_, " bytes)");
  SY_CHECK(n <= (100u << 20), "[safetensors] ", P, ": header length ", n, " exceeds 100 MiB");
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(base_ + 8, base_ + 8 + n);
  } catch (const nlohmann::json::exception& e) {
    fail("[safetensors] ", P, ": header is not valid JSON: ", e.what());
  }
  SY_CHECK(j.is_object(), "[safetensors] ", P, ": header is not a JSON object");
  const size_t data_start = 8 + n;
  const size_t data_size = size_ - data_start;
  std::vector<std::pair<size_t, size_t>> ranges;
  std::vector<const std::string*> range_names;
  for (auto it = j.begin(); it != j.end(); ++it) {
    const std::string& name = it.key();
    const auto& v = it.value();
    if (name == "__metadata__") {
      SY_CHECK(v.is_object(), "[safetensors] ", P, ": __metadata__ is not an object");
      for (auto m = v.begin(); m != v.end(); ++m) {
        SY_CHECK(m.value().is_string(), "[safetensors] ", P, ": __metadata__ value '", m.key(), "' is not a string");
        metadata_[m.key()] = m.value().get<std::string>();
      }
      continue;
    }
    SY_CHECK(v.is_object(), "[safetensors] ", P, ": tensor ", name, ": entry is not an object");
    SY_CHECK(v.contains("dtype") && v["dtype"].is_string(), "[safetensors] ", P, ": tensor ", name, ": missing dtype");
    SY_CHECK(v.contains("shape") && v["shape"].is_array(), "[safetensors] ", P, ": tensor ", name, ": missing shape");
    SY_CHECK(v.contains("data_offsets") && v["data_offsets"].is_array() && v["data_offsets"].size() == 2,
             "[safetensors] ", P, ": tensor ", name, ": data_offsets must be [begin, end]");
    TensorInfo t;
    t.name = name;
    std::string dt = v["dtype"].get<std::string>();
    SY_CHECK(parse_st_dtype(dt, &t.dtype), "[safetensors] ", P, ": tensor ", name, ": unsupported dtype ", dt,
             " (supported: F32, BF16, F16, I32, I64, U8, BOOL)");
    uint64_t numel = 1;
    for (const auto& d : v["shape"]) {
      SY_CHECK(d.is_number_unsigned() || (d.is_number_integer() && d.get<int64_t>() >= 0),
               "[safetensors] ", P, ": tensor ", name, ": shape entries must be non-negative integers");
      uint64_t dv = d.get<uint64_t>();
      SY_CHECK(dv == 0 || numel <= (uint64_t(1) << 62) / dv, "[safetensors] ", P, ": tensor ", name, ": shape overflows");
      numel *= dv;
      t.shape.push_back(int64_t(dv));
    }
    const auto& off = v["data_offsets"];
    SY_CHECK(off[0].is_number_unsigned() && off[1].is_number_unsigned(), "[safetensors] ", P, ": tensor ", name,
             ": data_offsets must be non-negative integers");
    uint64_t b = off[0].get<uint64_t>(), e = off[1].get<uint64_t>();
    SY_CHECK(b <= e, "[safetensors] ", P, ": tensor ", name, ": data_offsets begin ", b, " > end ", e);
    SY_CHECK(e <= data_size, "[safetensors] ", P, ": tensor ", name, ": offset ", e, " past end of file (data section is ",
             data_size, " bytes)");
    SY_CHECK(numel <= (uint64_t(1) << 60) && numel * dtype_size(t.dtype) == e - b, "[safetensors] ", P, ": tensor ", name,
             ": shape ", t.shape_str(), " x ", dt, " needs ", numel * dtype_size(t.dtype), " bytes but data_offsets span ", e - b);
    t.nbytes = e - b;
    t.file_offset = data_start + b;
    t.data = base_ + t.file_offset;
    ranges.emplace_back(b, e);
    auto [pos, inserted] = tensors_.emplace(name, std::move(t));
    range_names.push_back(&pos->first);
  }
  std::vector<size_t> order(ranges.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::sort(order.begin(), order.end(), [&](size_t a, size_t b) { return ranges[a] < ranges[b]; });
  for (size_t i = 1; i < order.size(); ++i) {
    auto prev = ranges[order[i - 1]], cur = ranges[order[i]];
    SY_CHECK(cur.first >= prev.second || cur.first == cur.second || prev.first == prev.second, "[safetensors] ", P,
             ": tensors ", *range_names[order[i - 1]], " and ", *range_names[order[i]], " overlap");
  }
}

const TensorInfo* SafeTensors::find(std::string_view name) const {
  auto it = tensors_.find(name);
  return it == tensors_.end() ? nullptr : &it->second;
}

const TensorInfo& SafeTensors::get(std::string_view name) const {
  const TensorInfo* t = find(name);
  SY_CHECK(t, "[safetensors] ", path_, ": missing tensor ", name);
  return *t;
}

const TensorInfo& SafeTensors::get(std::string_view name, const std::vector<int64_t>& shape) const {
  const TensorInfo& t = get(name);
  if (t.shape != shape) {
    TensorInfo want;
    want.shape = shape;
    fail("[safetensors] ", path_, ": tensor ", name, " has shape ", t.shape_str(), ", expected ", want.shape_str());
  }
  return t;
}

std::vector<std::string> SafeTensors::names() const {
  std::vector<std::string> out;
  for (const auto& [k, v] : tensors_) out.push_back(k);
  return out;
}

std::vector<float> SafeTensors::to_f32(std::string_view name) const {
  const TensorInfo& t = get(name);
  std::vector<float> out(size_t(t.numel()));
  if (out.empty()) return out;  // memcpy(nullptr, ..., 0) in sy::to_f32 would be UB
  if (t.dtype == DType::I32) {
    for (size_t i = 0; i < out.size(); ++i) {
      int32_t v;
      std::memcpy(&v, t.data + 4 * i, 4);
      out[i] = float(v);
    }
  } else if (t.dtype == DType::I64) {
    for (size_t i = 0; i < out.size(); ++i) {
      int64_t v;
      std::memcpy(&v, t.data + 8 * i, 8);
      out[i] = float(v);
    }
  } else if (t.dtype == DType::U8) {
    for (size_t i = 0; i < out.size(); ++i) out[i] = float(t.data[i]);
  } else {
    SY_CHECK(t.dtype == DType::F32 || t.dtype == DType::BF16 || t.dtype == DType::F16, "[safetensors] ", path_,
             ": tensor ", name, ": cannot convert ", dtype_name(t.dtype), " to f32");
    sy::to_f32(t.dtype, t.data, out.data(), out.size());
  }
  return out;
}

void write_safetensors(const std::string& path, const std::vector<TensorToWrite>& tensors,
                       const std::map<std::string, std::string>& metadata) {
  nlohmann::json j = nlohmann::json::object();
  if (!metadata.empty()) j["__metadata__"] = metadata;
  size_t off = 0;
  for (const auto& t : tensors) {
    size_t numel = 1;
    for (auto d : t.shape) numel *= size_t(d);
    size_t nb = numel * dtype_size(t.dtype);
    j[t.name] = {{"dtype", st_dtype_name(t.dtype)}, {"shape", t.shape}, {"data_offsets", {off, off + nb}}};
    off += nb;
  }
  std::string header = j.dump();
  while ((header.size() + 8) % 8) header.push_back(' ');
  std::string tmp = path + ".tmp";
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  SY_CHECK(fd >= 0, "[safetensors] ", tmp, ": cannot create: ", std::strerror(errno));
  auto write_all = [&](const void* p, size_t n) {
    auto* c = static_cast<const char*>(p);
    while (n > 0) {
      ssize_t w = ::write(fd, c, n);
      if (w < 0 && errno == EINTR) continue;
      if (w <= 0) {
        int e = errno;
        ::close(fd);
        ::unlink(tmp.c_str());
        fail("[safetensors] ", tmp, ": write failed: ", std::strerror(e));
      }
      c += w;
      n -= size_t(w);
    }
  };
  uint8_t len[8];
  uint64_t n = header.size();
  for (int i = 0; i < 8; ++i) len[i] = uint8_t(n >> (8 * i));
  write_all(len, 8);
  write_all(header.data(), header.size());
  for (const auto& t : tensors) {
    size_t numel = 1;
    for (auto d : t.shape) numel *= size_t(d);
    write_all(t.data, numel * dtype_size(t.dtype));
  }
  if (::fsync(fd) != 0) {
    int e = errno;
    ::close(fd);
    ::unlink(tmp.c_str());
    fail("[safetensors] ", tmp, ": fsync failed: ", std::strerror(e));
  }
  ::close(fd);
  SY_CHECK(::rename(tmp.c_str(), path.c_str()) == 0, "[safetensors] cannot rename ", tmp, " to ", path, ": ",
           std::strerror(errno));
  std::string dir = std::filesystem::path(path).parent_path().string();
  int dfd = ::open(dir.empty() ? "." : dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd >= 0) {
    ::fsync(dfd);
    ::close(dfd);
  }
}

}  // namespace sy
