#include "serving/version_routing.h"

#include "absl/random/random.h"

namespace seqserve {

namespace {

// FNV-1a's offset basis, and the state FNV-1a reaches from it over
// "shadow": another start, so another hash of the same key.
constexpr uint64_t kTrafficBasis = 14695981039346656037ull;
constexpr uint64_t kShadowBasis = [] {
  uint64_t hash = kTrafficBasis;
  for (char c : {'s', 'h', 'a', 'd', 'o', 'w'}) {
    hash ^= static_cast<unsigned char>(c);
    hash *= 1099511628211ull;
  }
  return hash;
}();

double Point(absl::string_view key, uint64_t basis) {
  if (key.empty()) {
    thread_local absl::BitGen random;
    return absl::Uniform(random, 0.0, 100.0);
  }
  // FNV-1a: the same on every replica and every run, unlike absl::Hash.
  uint64_t hash = basis;
  for (unsigned char c : key) {
    hash ^= c;
    hash *= 1099511628211ull;
  }
  // MurmurHash3's finalizer: FNV-1a alone leaves its top bits to a few
  // bytes, so ids that count up ("request-1", "request-2", ...) fell in
  // narrow bands (2,000 such ids, all in the 90% share of a 90/10 split).
  hash ^= hash >> 33;
  hash *= 0xff51afd7ed558ccdull;
  hash ^= hash >> 33;
  hash *= 0xc4ceb9fe1a85ec53ull;
  hash ^= hash >> 33;
  // The top 53 bits, as a double in [0, 100).
  return static_cast<double>(hash >> 11) * (100.0 / 9007199254740992.0);
}

}  // namespace

double TrafficPoint(absl::string_view routing_key) { return Point(routing_key, kTrafficBasis); }

double ShadowPoint(absl::string_view request_id) { return Point(request_id, kShadowBasis); }

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
