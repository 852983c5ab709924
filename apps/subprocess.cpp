#include "subprocess.h"

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iterator>

#include "core/error.h"

extern char** environ;

namespace sy::cli {
namespace {

bool is_unset(const char* entry, const std::vector<std::string>& names) {
  for (const auto& n : names)
    if (std::strncmp(entry, n.c_str(), n.size()) == 0 && entry[n.size()] == '=') return true;
  return false;
}

}  // namespace

ChildProcess::ChildProcess(const std::vector<std::string>& argv, const std::vector<std::string>& unset_env) {
  SY_CHECK(!argv.empty(), "[subprocess] no program given");
  name_ = argv[0];
  // A child that dies must surface as a write error here, not kill us with SIGPIPE.
  ::signal(SIGPIPE, SIG_IGN);
  int to_child[2], from_child[2];
  SY_CHECK(::pipe2(to_child, O_CLOEXEC) == 0, "[subprocess] pipe: ", std::strerror(errno));
  if (::pipe2(from_child, O_CLOEXEC) != 0) {
    int e = errno;
    ::close(to_child[0]);
    ::close(to_child[1]);
    fail("[subprocess] pipe: ", std::strerror(e));
  }
  std::vector<char*> args, env;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  for (char** e = environ; *e; ++e)
    if (!is_unset(*e, unset_env)) env.push_back(*e);
  env.push_back(nullptr);
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_adddup2(&fa, to_child[0], 0);
  posix_spawn_file_actions_adddup2(&fa, from_child[1], 1);
  int rc = ::posix_spawnp(&pid_, args[0], &fa, nullptr, args.data(), env.data());
  posix_spawn_file_actions_destroy(&fa);
  ::close(to_child[0]);
  ::close(from_child[1]);
  if (rc != 0) {
    ::close(to_child[1]);
    ::close(from_child[0]);
    fail("[subprocess] cannot start ", name_, ": ", std::strerror(rc));
  }
  in_ = ::fdopen(to_child[1], "w");
  out_ = ::fdopen(from_child[0], "r");
  SY_CHECK(in_ && out_, "[subprocess] fdopen failed for ", name_);
}

ChildProcess::~ChildProcess() {
  try {
    finish();
  } catch (...) {
  }
}

void ChildProcess::write_line(const std::string& line) {
  SY_CHECK(in_, "[subprocess] ", name_, ": stdin already closed");
  bool ok = std::fwrite(line.data(), 1, line.size(), in_) == line.size() && std::fputc('\n', in_) != EOF &&
            std::fflush(in_) == 0;
  SY_CHECK(ok, "[subprocess] ", name_, " stopped reading its input (", std::strerror(errno), ")");
}

bool ChildProcess::read_line(std::string& line) {
  line.clear();
  if (!out_) return false;
  int c;
  while ((c = std::fgetc(out_)) != EOF) {
    if (c == '\n') return true;
    line.push_back(char(c));
  }
  return !line.empty();
}

int ChildProcess::finish() {
  if (in_) {
    std::fclose(in_);
    in_ = nullptr;
  }
  if (out_) {
    std::fclose(out_);
    out_ = nullptr;
  }
  if (pid_ > 0) {
    int st = 0;
    while (::waitpid(pid_, &st, 0) < 0 && errno == EINTR) {
    }
    status_ = WIFEXITED(st) ? WEXITSTATUS(st) : WIFSIGNALED(st) ? 128 + WTERMSIG(st) : -1;
    pid_ = -1;
  }
  return status_;
}

void reexec_without(const std::vector<std::string>& vars) {
  bool any = false;
  for (const auto& v : vars) any = any || std::getenv(v.c_str()) != nullptr;
  if (!any || std::getenv("SY_REEXECED")) return;
  std::ifstream f("/proc/self/cmdline", std::ios::binary);
  std::string all((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  std::vector<std::string> argv;
  for (size_t b = 0; b < all.size();) {
    size_t e = all.find('\0', b);
    if (e == std::string::npos) e = all.size();
    argv.push_back(all.substr(b, e - b));
    b = e + 1;
  }
  if (argv.empty()) return;
  for (const auto& v : vars) ::unsetenv(v.c_str());
  ::setenv("SY_REEXECED", "1", 1);
  std::vector<char*> args;
  for (auto& a : argv) args.push_back(a.data());
  args.push_back(nullptr);
  std::fflush(nullptr);
  ::execv("/proc/self/exe", args.data());
  ::unsetenv("SY_REEXECED");  // exec failed: carry on; the caller's children still lose the variables
}

nlohmann::json ChildProcess::read_json_line(const std::string& who, const std::string& what) {
  std::string line;
  SY_CHECK(read_line(line), "[", who, "] the PyTorch helper exited without ", what,
           " (see its messages above; exit status ", finish(), ")");
  try {
    return nlohmann::json::parse(line);
  } catch (const nlohmann::json::exception& e) {
    fail("[", who, "] the PyTorch helper printed '", line.substr(0, 200), "' instead of JSON (", e.what(), ")");
  }
}

}  // namespace sy::cli
