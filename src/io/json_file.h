// JSON files of a Hugging Face model directory (config.json, tokenizer_config.json,
// generation_config.json, model.safetensors.index.json), with errors that name the file and field:
//   auto cfg = read_json_file(dir + "/config.json");
//   int64_t e = json_field<int64_t>(cfg, "num_experts", path);        // missing or wrong type: throws
//   double th = json_field_or<double>(cfg, "rope_theta", 1e4, path);  // missing or null: default
// Integer fields accept only JSON integers (3.5 is an error, not 3); float fields accept any number.
#pragma once
#include <cstdint>
#include <limits>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/error.h"

namespace sy {

// Parses a JSON file; throws "[json] PATH: cannot open" / "[json] PATH: not valid JSON: ...".
nlohmann::json read_json_file(const std::string& path);
// As read_json_file, but std::nullopt when the file does not exist (a malformed file still throws).
std::optional<nlohmann::json> read_json_file_if_exists(const std::string& path);

namespace detail {
std::string json_type_name(const nlohmann::json& v);

template <typename T>
struct is_vector : std::false_type {};
template <typename T>
struct is_vector<std::vector<T>> : std::true_type {};

// Converts v to T or throws naming `file` and `field`.
template <typename T>
T json_as(const nlohmann::json& v, std::string_view field, const std::string& file) {
  auto bad = [&](const char* want) -> T {
    fail("[json] ", file, ": field '", field, "' is ", json_type_name(v), ", expected ", want);
  };
  if constexpr (std::is_same_v<T, bool>) {
    if (!v.is_boolean()) return bad("a boolean");
    return v.get<bool>();
  } else if constexpr (std::is_integral_v<T>) {
    if (!v.is_number_integer()) return bad("an integer");
    if (v.is_number_unsigned()) {
      uint64_t u = v.get<uint64_t>();
      if (u > uint64_t(std::numeric_limits<T>::max())) fail("[json] ", file, ": field '", field, "' = ", u, " is out of range");
      return T(u);
    }
    int64_t s = v.get<int64_t>();
    if (s < int64_t(std::numeric_limits<T>::min()) ||
        (s > 0 && uint64_t(s) > uint64_t(std::numeric_limits<T>::max())))
      fail("[json] ", file, ": field '", field, "' = ", s, " is out of range");
    return T(s);
  } else if constexpr (std::is_floating_point_v<T>) {
    if (!v.is_number()) return bad("a number");
    return v.get<T>();
  } else if constexpr (std::is_same_v<T, std::string>) {
    if (!v.is_string()) return bad("a string");
    return v.get<std::string>();
  } else if constexpr (is_vector<T>::value) {
    if (!v.is_array()) return bad("an array");
    T out;
    for (size_t i = 0; i < v.size(); ++i)
      out.push_back(json_as<typename T::value_type>(v[i], str(field, "[", i, "]"), file));
    return out;
  } else {
    static_assert(std::is_same_v<T, nlohmann::json>, "json_field: unsupported type");
    return v;
  }
}
}  // namespace detail

// j[field] as T; throws "[json] FILE: missing field 'F'" or "... field 'F' is a string, expected an integer".
template <typename T>
T json_field(const nlohmann::json& j, std::string_view field, const std::string& file) {
  SY_CHECK(j.is_object(), "[json] ", file, ": expected a JSON object when reading field '", field, "'");
  auto it = j.find(field);
  SY_CHECK(it != j.end(), "[json] ", file, ": missing field '", field, "'");
  return detail::json_as<T>(*it, field, file);
}

// j[field] as T, or `def` when the field is missing or null (HF configs write null for "unset").
template <typename T>
T json_field_or(const nlohmann::json& j, std::string_view field, T def, const std::string& file) {
  SY_CHECK(j.is_object(), "[json] ", file, ": expected a JSON object when reading field '", field, "'");
  auto it = j.find(field);
  if (it == j.end() || it->is_null()) return def;
  return detail::json_as<T>(*it, field, file);
}

}  // namespace sy
