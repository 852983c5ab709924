// Finding a repository resource (the demo model, the npm Brown corpus) from wherever the program
// runs: the current directory and the executable's directory, then each of their parents in turn.
#pragma once
#include <filesystem>
#include <functional>
#include <optional>
#include <vector>

namespace sy {

// The first d / rel (d = the current directory, then its parents; then the executable's directory,
// then its parents) for which accept(d / rel) is true; nullopt if none.
std::optional<std::filesystem::path> find_upward(const std::filesystem::path& rel,
                                                 const std::function<bool(const std::filesystem::path&)>& accept);

// The start directories find_upward searches from (for error messages): cwd, executable dir.
std::vector<std::filesystem::path> find_upward_starts();

}  // namespace sy
