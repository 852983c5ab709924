#include "bench_common.h"

#include <sys/statvfs.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "core/error.h"

namespace sy::cli {

std::string load_average() {
  std::ifstream f("/proc/loadavg");
  std::string a, b, c;
  f >> a >> b >> c;
  return a + " " + b + " " + c;
}

std::string pick_tmp_dir(const std::string& requested, size_t need, const std::string& who) {
  auto avail = [](const std::string& d) -> size_t {
    struct statvfs v;
    if (::statvfs(d.c_str(), &v) != 0) return 0;
    return size_t(v.f_bavail) * size_t(v.f_frsize);
  };
  if (!requested.empty()) {
    SY_CHECK(std::filesystem::is_directory(requested), "[", who, "] --tmp-dir ", requested, " is not a directory");
    SY_CHECK(avail(requested) > need, "[", who, "] --tmp-dir ", requested, " has ", avail(requested) >> 20,
             " MiB free, the weights need ", need >> 20, " MiB");
    return requested;
  }
  if (std::filesystem::is_directory("/dev/shm") && ::access("/dev/shm", W_OK) == 0 && avail("/dev/shm") > need * 5 / 4)
    return "/dev/shm";
  std::string t = std::filesystem::temp_directory_path().string();
  SY_CHECK(avail(t) > need, "[", who, "] temporary directory ", t, " has ", avail(t) >> 20,
           " MiB free, the weights need ", need >> 20, " MiB (use --tmp-dir)");
  return t;
}

}  // namespace sy::cli
