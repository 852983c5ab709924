#include "core/find_upward.h"

namespace sy {

namespace fs = std::filesystem;

std::vector<fs::path> find_upward_starts() {
  std::vector<fs::path> starts;
  std::error_code ec;
  fs::path cwd = fs::current_path(ec);
  if (!ec) starts.push_back(cwd);
  fs::path exe = fs::read_symlink("/proc/self/exe", ec);
  if (!ec) starts.push_back(exe.parent_path());
  return starts;
}

std::optional<fs::path> find_upward(const fs::path& rel, const std::function<bool(const fs::path&)>& accept) {
  for (fs::path d : find_upward_starts()) {
    for (;;) {
      const fs::path cand = d / rel;
      if (accept(cand)) return cand;
      if (!d.has_parent_path() || d.parent_path() == d) break;
      d = d.parent_path();
    }
  }
  return std::nullopt;
}

}  // namespace sy
