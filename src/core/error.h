// Errors: library code throws sy::Error with context ("[safetensors] tensor X: offset 812 past end
// of file (640)"); only the CLI or server decides how to report it. Never exit/abort on bad input.
#pragma once
#include <sstream>
#include <stdexcept>
#include <string>
#include <utility>

namespace sy {

class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& what) : std::runtime_error(what) {}
};

// Concatenates anything streamable: str("[router] k=", k, " > experts ", e).
template <typename... Args>
std::string str(Args&&... args) {
  std::ostringstream os;
  (os << ... << std::forward<Args>(args));
  return os.str();
}

template <typename... Args>
[[noreturn]] void fail(Args&&... args) {
  throw Error(str(std::forward<Args>(args)...));
}

}  // namespace sy

// SY_CHECK(cond, "[component] message ", value, ...): throws sy::Error when cond is false.
#define SY_CHECK(cond, ...)                 \
  do {                                      \
    if (!(cond)) ::sy::fail(__VA_ARGS__);   \
  } while (0)
