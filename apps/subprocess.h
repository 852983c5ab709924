// Child processes for `switchyard bench`: a line-based conversation with a helper (the PyTorch
// baselines, bench/moe_torch.py) over its stdin/stdout; its stderr goes to ours.
#pragma once
#include <cstdio>
#include <string>
#include <sys/types.h>
#include <vector>

#include <nlohmann/json.hpp>

namespace sy::cli {

class ChildProcess {
 public:
  // Starts argv[0] (searched in PATH when it has no '/') with our environment minus `unset_env`.
  // Throws sy::Error naming the program when it cannot be started.
  ChildProcess(const std::vector<std::string>& argv, const std::vector<std::string>& unset_env);
  ~ChildProcess();  // closes the child's stdin and waits for it
  ChildProcess(const ChildProcess&) = delete;
  ChildProcess& operator=(const ChildProcess&) = delete;

  void write_line(const std::string& line);  // appends '\n' and flushes; throws if the child is gone
  bool read_line(std::string& line);         // false at end of output (the child exited)
  int finish();                              // closes stdin, waits; the exit status (128+sig if killed)
  // The next line as JSON; throws "[who] the PyTorch helper exited without WHAT ..." at end of
  // output and "[who] the PyTorch helper printed '...' instead of JSON" on a bad line.
  nlohmann::json read_json_line(const std::string& who, const std::string& what);

 private:
  std::string name_;
  pid_t pid_ = -1;
  FILE* in_ = nullptr;   // the child's stdin
  FILE* out_ = nullptr;  // the child's stdout
  int status_ = -1;
};

// Variables this machine sets for old OpenBLAS builds; they slow down a current one (issue #2).
inline const std::vector<std::string> kOpenblasVars = {"OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE"};

// When any of `vars` is set, re-executes this program (/proc/self/exe, same arguments) without
// them and does not return; returns normally when none is set or re-executing is impossible.
// Needed for variables a shared library reads when it loads (OpenBLAS: OPENBLAS_CORETYPE).
void reexec_without(const std::vector<std::string>& vars);

}  // namespace sy::cli
