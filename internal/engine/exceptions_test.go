package engine

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestExceptionAnnotations(t *testing.T) {
	day := func(s string) time.Time {
		d, err := time.Parse("2006-01-02", s)
		require.NoError(t, err)
		return d
	}
	tests := []struct {
		name        string
		value       string
		now         string
		wantProblem string
		wantExpired bool
	}{
		{"a reason alone never expires", "reason=vendor appliance", "2030-01-01", "", false},
		{"order does not matter", "expires=2026-12-31; reason=migration", "2026-06-01", "", false},
		{"an exception holds through its expiry day", "reason=migration; expires=2026-12-31", "2026-12-31", "", false},
		{"it expires the day after", "reason=migration; expires=2026-12-31", "2027-01-01", "", true},
		{"a missing reason is malformed", "expires=2026-12-31", "2026-01-01", "reason is required", false},
		{"an empty reason is malformed", "reason=; expires=2026-12-31", "2026-01-01", "reason is required", false},
		{"an unparseable date is malformed", "reason=x; expires=31/12/2026", "2026-01-01", "not a date", false},
		{"an unknown key is malformed", "reason=x; owner=team", "2026-01-01", "unknown key", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := ParseException("MG301", tt.value)
			if tt.wantProblem != "" {
				require.Contains(t, e.Problem, tt.wantProblem)
				return
			}
			require.Empty(t, e.Problem)
			require.Equal(t, tt.wantExpired, e.Expired(day(tt.now)))
		})
	}
}
