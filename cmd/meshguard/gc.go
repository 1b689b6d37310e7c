package main

import (
	"os"
	"runtime/debug"
	"strconv"
	"strings"

	"github.com/go-logr/logr"
)

// gcMode says what a command's collector trades memory for.
type gcMode int

const (
	// gcBatch is for `lint` and `audit`: a short run whose garbage is almost all of what it
	// allocates. GOGC=400 took 10,000 objects from 1.13 s to 0.92 s on two cores.
	gcBatch gcMode = iota
	// gcLatency is for `serve`: each review allocates about 46 KB over a live heap of tens of
	// MB (compiled rules and the inventory). While the collector marks, it takes a quarter of
	// the CPU and assists from the requests themselves, and the requests that land then make the
	// latency tail; the share of time spent marking is the allocation rate over the headroom
	// the heap is given. With GOGC=400 (headroom four times the live heap) p99 at 1,000
	// reviews/s was 2.0x an allow-everything webhook's; collecting only near a soft limit of
	// 384 MiB (75% of the chart's 512Mi) it was 1.06x (the load test, test/loadgen).
	gcLatency
)

// tuneGC sets the collector for the command's mode, unless GOGC is set.
//
// Unless GOMEMLIMIT is set, a soft limit under the container's memory limit keeps the heap
// under it (the collector works harder near the soft limit instead): at 90% of it for batch
// runs, whose heap only nears it with a large input. `serve`, where a memory limit is known,
// collects only as its heap nears the soft limit: a webhook's memory is reserved for it (the
// chart's request equals its limit), and every collection it skips is latency it does not add.
// Its heap then stays near the soft limit, so that is set at 75%, leaving a quarter of the
// container for what a burst of requests adds before the collector catches up. Without a
// known limit, and for batch runs, the heap may grow to five times the live heap between
// collections (GOGC=400).
func tuneGC(log logr.Logger, mode gcMode) {
	limited := os.Getenv("GOMEMLIMIT") != ""
	if !limited {
		if limit, ok := cgroupMemoryLimit(); ok {
			soft := limit / 10 * 9
			if mode == gcLatency {
				soft = limit / 4 * 3
			}
			debug.SetMemoryLimit(soft)
			log.Info("memory limit from the container", "limit", limit, "softLimit", soft)
			limited = true
		}
	}
	if os.Getenv("GOGC") != "" {
		return
	}
	if mode == gcLatency && limited {
		debug.SetGCPercent(-1)
		log.Info("the collector runs as the heap nears the memory limit", "softLimit", debug.SetMemoryLimit(-1))
		return
	}
	debug.SetGCPercent(400)
}

// cgroupMemoryLimit reads the container's memory limit (cgroup v2, then v1).
func cgroupMemoryLimit() (int64, bool) {
	for _, f := range []string{"/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"} {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		n, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
		// "max" (v2) and a page-rounded huge number (v1) both mean no limit.
		if err != nil || n <= 0 || n >= 1<<50 {
			return 0, false
		}
		return n, true
	}
	return 0, false
}
