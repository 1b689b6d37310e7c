package main

import (
	"math"
	"runtime/debug"
	"testing"

	"github.com/go-logr/logr"
	"github.com/stretchr/testify/require"
)

func TestTheCollectorIsSetForWhatTheCommandTradesMemoryFor(t *testing.T) {
	_, containerLimit := cgroupMemoryLimit()
	for _, c := range []struct {
		name        string
		mode        gcMode
		env         map[string]string
		wantPercent int
	}{
		{"serve under a memory limit collects only near it", gcLatency, map[string]string{"GOMEMLIMIT": "460MiB"}, -1},
		{"lint under a memory limit keeps GOGC=400", gcBatch, map[string]string{"GOMEMLIMIT": "460MiB"}, 400},
		{"serve without a known limit keeps GOGC=400", gcLatency, nil, 400},
		{"a GOGC the user set is left alone", gcLatency, map[string]string{"GOMEMLIMIT": "460MiB", "GOGC": "150"}, 100},
	} {
		t.Run(c.name, func(t *testing.T) {
			if c.env == nil && containerLimit {
				t.Skip("this machine's container has a memory limit")
			}
			t.Setenv("GOMEMLIMIT", "")
			t.Setenv("GOGC", "")
			for k, v := range c.env {
				t.Setenv(k, v)
			}
			// The runtime read GOGC and GOMEMLIMIT at start; tuneGC only decides from them.
			before, beforeLimit := debug.SetGCPercent(100), debug.SetMemoryLimit(math.MaxInt64)
			defer func() { debug.SetGCPercent(before); debug.SetMemoryLimit(beforeLimit) }()
			tuneGC(logr.Discard(), c.mode)
			require.Equal(t, c.wantPercent, debug.SetGCPercent(100))
		})
	}
}
