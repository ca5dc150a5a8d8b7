// The standard process_* metrics every Prometheus client exports, read
// from /proc on each scrape.
#pragma once

#include "observability/metrics.h"

namespace seqserve {

// Appends process_cpu_seconds_total, process_resident_memory_bytes,
// process_virtual_memory_bytes, process_open_fds, process_max_fds and
// process_start_time_seconds. A value /proc does not give is left out.
void WriteProcessMetrics(ExpositionWriter& out);

}  // namespace seqserve
