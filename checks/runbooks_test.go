package checks

import (
	"os"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/meshguard/meshguard/internal/config"
)

// TestEveryAlertHasARunbook keeps docs/runbooks.md in step with the alerts: every runbook_url
// the checker sends points at a section of it (the anchor is the alert name in lower case).
func TestEveryAlertHasARunbook(t *testing.T) {
	doc, err := os.ReadFile("../docs/runbooks.md")
	require.NoError(t, err)
	s := SettingsFrom(config.Default())
	s.RunbookBaseURL = "https://example.com/docs/runbooks.md"
	for _, r := range AllAlerts() {
		url := s.runbook(r.Alertname)
		_, anchor, ok := strings.Cut(url, "#")
		require.True(t, ok, url)
		// GitHub's anchor of "## MeshRetryStorm" is "meshretrystorm".
		require.Contains(t, string(doc), "\n## "+r.Alertname+"\n", "docs/runbooks.md has no section for %s", r.Alertname)
		require.Equal(t, strings.ToLower(r.Alertname), anchor)
	}
}

func TestEveryAlertNamesTheKeysThatTuneIt(t *testing.T) {
	s := SettingsFrom(config.Default())
	for _, tc := range []struct {
		alert, key string
		want       any
	}{
		{AlertRetryStorm, "thresholds.retryRatio", 0.05},
		{AlertUpstreamTimeouts, "thresholds.upstreamTimeoutRatio", 0.01},
		{AlertRetryAmplification, "thresholds.retryAmplification", 10.0},
		{AlertCheckerOverLimit, "limits.maxSeriesPerSignal", 1000},
		{AlertPlaintextTraffic, "window", "5m"},
	} {
		t.Run(tc.alert, func(t *testing.T) {
			require.Equal(t, tc.want, s.AlertParams(tc.alert)[tc.key])
		})
	}
}
