package checks

// AlertParams returns the configuration keys that tune an alert (as the config file spells them,
// under `check.`) with their values in s, for `meshguard policies list` and the generated docs.
// The alerts of the checker's own health read no traffic, so no window.
func (s Settings) AlertParams(alertname string) map[string]any {
	p := map[string]any{}
	if alertname != AlertCheckerDegraded && alertname != AlertCheckerOverLimit {
		p["window"] = promDuration(s.Window)
	}
	switch alertname {
	case AlertRetryStorm:
		p["thresholds.retryRatio"] = s.RetryRatio
	case AlertUpstreamTimeouts:
		p["thresholds.upstreamTimeoutRatio"] = s.UpstreamTimeoutRatio
	case AlertRetryAmplification:
		p["thresholds.retryAmplification"] = s.RetryAmplification
	case AlertCheckerOverLimit:
		p["limits.maxSeriesPerSignal"] = s.MaxSeriesPerSignal
		p["limits.maxAlertsPerCycle"] = s.MaxAlertsPerCycle
	}
	return p
}
