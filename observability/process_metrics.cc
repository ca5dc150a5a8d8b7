#include "observability/process_metrics.h"

#include <dirent.h>
#include <sys/resource.h>
#include <unistd.h>

#include <fstream>
#include <limits>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"

namespace seqserve {
namespace {

// Fields of /proc/self/stat after the command name, which may hold spaces
// and parentheses: split after the last ')'. Index 0 is field 3 (state).
std::vector<std::string> StatFields() {
  std::ifstream file("/proc/self/stat");
  std::string line;
  std::getline(file, line);
  const size_t end = line.rfind(')');
  if (end == std::string::npos) return {};
  return absl::StrSplit(line.substr(end + 2), ' ', absl::SkipEmpty());
}

// Seconds since the epoch at boot, from /proc/stat's btime.
bool BootTime(double* seconds) {
  std::ifstream file("/proc/stat");
  std::string key;
  while (file >> key) {
    if (key == "btime") return static_cast<bool>(file >> *seconds);
    file.ignore(std::numeric_limits<std::streamsize>::max(), '\n');
  }
  return false;
}

bool OpenFds(uint64_t* count) {
  DIR* dir = opendir("/proc/self/fd");
  if (dir == nullptr) return false;
  uint64_t entries = 0;
  while (const dirent* entry = readdir(dir)) {
    if (entry->d_name[0] != '.') ++entries;
  }
  closedir(dir);
  *count = entries - 1;  // the directory stream's own descriptor
  return true;
}

}  // namespace

void WriteProcessMetrics(ExpositionWriter& out) {
  const double ticks = static_cast<double>(sysconf(_SC_CLK_TCK));
  const double page = static_cast<double>(sysconf(_SC_PAGESIZE));
  const std::vector<std::string> stat = StatFields();
  // stat(5) numbers fields from 1; StatFields() starts at field 3.
  auto field = [&stat](int number, double* value) {
    const size_t index = static_cast<size_t>(number - 3);
    return index < stat.size() && absl::SimpleAtod(stat[index], value);
  };
  double utime, stime, starttime, vsize, rss;
  if (field(14, &utime) && field(15, &stime)) {
    out.Family("process_cpu_seconds_total", "counter",
               "Total user and system CPU time spent in seconds.");
    out.Sample("process_cpu_seconds_total", {}, (utime + stime) / ticks);
  }
  if (field(24, &rss)) {
    out.Family("process_resident_memory_bytes", "gauge", "Resident memory size in bytes.");
    out.Sample("process_resident_memory_bytes", {}, rss * page);
  }
  if (field(23, &vsize)) {
    out.Family("process_virtual_memory_bytes", "gauge", "Virtual memory size in bytes.");
    out.Sample("process_virtual_memory_bytes", {}, vsize);
  }
  double boot;
  if (field(22, &starttime) && BootTime(&boot)) {
    out.Family("process_start_time_seconds", "gauge",
               "Start time of the process since unix epoch in seconds.");
    out.Sample("process_start_time_seconds", {}, boot + starttime / ticks);
  }
  uint64_t fds;
  if (OpenFds(&fds)) {
    out.Family("process_open_fds", "gauge", "Number of open file descriptors.");
    out.Sample("process_open_fds", {}, fds);
  }
  rlimit limit;
  if (getrlimit(RLIMIT_NOFILE, &limit) == 0) {
    out.Family("process_max_fds", "gauge", "Maximum number of open file descriptors.");
    out.Sample("process_max_fds", {}, static_cast<double>(limit.rlim_cur));
  }
}

}  // namespace seqserve
