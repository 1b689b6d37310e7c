package config

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestParseLayersTheFileOverDefaults(t *testing.T) {
	c := Default()
	require.NoError(t, Parse([]byte("webhook:\n  enforcement: warn\ncheck:\n  interval: 10s\n"), c))
	require.Equal(t, EnforceWarn, c.Webhook.Enforcement)
	require.Equal(t, "allow", c.Webhook.FailurePolicy, "unset values keep their defaults")
	require.Equal(t, 10*time.Second, c.Check.Interval.Duration)
	require.Equal(t, 5*time.Minute, c.Check.Window.Duration)
	require.Equal(t, 1000, c.Check.Limits.MaxSeriesPerSignal, "the checker is bounded by default")
	require.Equal(t, []string{"team"}, c.Check.Graph.TeamKeys)
}

func TestGraphKeysInTheFileReplaceTheDefaults(t *testing.T) {
	c := Default()
	require.NoError(t, Parse([]byte("check:\n  graph:\n    teamKeys: [owner, app.kubernetes.io/part-of]\n"), c))
	require.Equal(t, []string{"owner", "app.kubernetes.io/part-of"}, c.Check.Graph.TeamKeys, "a list replaces the default, it does not extend it")
	require.Equal(t, []string{"tier"}, c.Check.Graph.TierKeys, "an unset list keeps its default")
}

func TestParseRefusesMistakes(t *testing.T) {
	tests := []struct{ name, yaml, want string }{
		{"an unknown key", "webhok: {}\n", "webhok"},
		{"an unknown enforcement", "webhook: {enforcement: block}\n", "webhook.enforcement"},
		{"an unknown failure policy", "webhook: {failurePolicy: ignore}\n", "webhook.failurePolicy"},
		{"a bad severity", "rules: {MG101: {severity: fatal}}\n", "rules.MG101.severity"},
		{"a bad duration", "check: {interval: soon}\n", "duration"},
		{"a series limit of zero, which would be no bound", "check: {limits: {maxSeriesPerSignal: 0}}\n", "check.limits.maxSeriesPerSignal"},
		{"a negative alert limit", "check: {limits: {maxAlertsPerCycle: -1}}\n", "check.limits.maxAlertsPerCycle"},
		{"an empty team key", "check: {graph: {teamKeys: [team, '']}}\n", "check.graph.teamKeys"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := Parse([]byte(tt.yaml), Default())
			require.Error(t, err)
			require.Contains(t, err.Error(), tt.want)
		})
	}
}

func TestRuleEnforcementFallsBackToTheWebhookDefault(t *testing.T) {
	c := Default()
	require.NoError(t, Parse([]byte("rules: {MG204: {enforcement: audit}}\n"), c))
	require.Equal(t, EnforceAudit, c.EnforcementFor("MG204"))
	require.Equal(t, EnforceDeny, c.EnforcementFor("MG101"))
}
