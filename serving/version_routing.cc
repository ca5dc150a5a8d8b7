#include "serving/version_routing.h"

#include "absl/random/random.h"

namespace seqserve {

double TrafficPoint(absl::string_view routing_key) {
  if (routing_key.empty()) {
    thread_local absl::BitGen random;
    return absl::Uniform(random, 0.0, 100.0);
  }
  // FNV-1a: the same on every replica and every run, unlike absl::Hash.
  uint64_t hash = 14695981039346656037ull;
  for (unsigned char c : routing_key) {
    hash ^= c;
    hash *= 1099511628211ull;
  }
  // The top 53 bits, as a double in [0, 1).
  return static_cast<double>(hash >> 11) * (100.0 / 9007199254740992.0);
}

int64_t ChooseShare(const google::protobuf::RepeatedPtrField<v1::TrafficShare>& shares,
                    const std::set<int64_t>& available, double point) {
  uint32_t total = 0;
  for (const v1::TrafficShare& share : shares) {
    if (available.count(share.version())) total += share.percent();
  }
  if (total == 0) return 0;
  const double scaled = point * total / 100.0;
  double end = 0;
  int64_t last = 0;
  for (const v1::TrafficShare& share : shares) {
    if (!available.count(share.version())) continue;
    end += share.percent();
    last = share.version();
    if (scaled < end) return last;
  }
  return last;  // rounding at the very top
}

}  // namespace seqserve
