package graph

import (
	"errors"
	"fmt"
)

// Health is the colour of a node or edge.
type Health string

// Health values. Unknown: no requests in the window, or a TCP edge, which has no error signal.
const (
	Green   Health = "green"
	Yellow  Health = "yellow"
	Red     Health = "red"
	Unknown Health = "unknown"
)

// Thresholds decide health: red at or above a critical figure, yellow at or above a warning one,
// green below both.
type Thresholds struct {
	ErrorRateWarning  float64 `json:"errorRateWarning"`
	ErrorRateCritical float64 `json:"errorRateCritical"`
	P99WarningMs      float64 `json:"p99WarningMs"`
	P99CriticalMs     float64 `json:"p99CriticalMs"`
}

// DefaultThresholds: red from 1% errors or a p99 of 1s, yellow from half of each.
func DefaultThresholds() Thresholds {
	return Thresholds{ErrorRateWarning: 0.005, ErrorRateCritical: 0.01, P99WarningMs: 500, P99CriticalMs: 1000}
}

// Validate reports thresholds that cannot order green, yellow and red.
func (t Thresholds) Validate() error {
	var errs []error
	if t.ErrorRateWarning <= 0 || t.ErrorRateWarning > t.ErrorRateCritical || t.ErrorRateCritical > 1 {
		errs = append(errs, fmt.Errorf("error rate thresholds %v (warning) and %v (critical) must satisfy 0 < warning <= critical <= 1",
			t.ErrorRateWarning, t.ErrorRateCritical))
	}
	if t.P99WarningMs <= 0 || t.P99WarningMs > t.P99CriticalMs {
		errs = append(errs, fmt.Errorf("p99 thresholds %vms (warning) and %vms (critical) must satisfy 0 < warning <= critical",
			t.P99WarningMs, t.P99CriticalMs))
	}
	return errors.Join(errs...)
}

// Judge colours figures; an unknown p99 (nil) does not count against them.
func (t Thresholds) Judge(rate, errorRate float64, p99 *float64, tcp bool) Health {
	if rate == 0 || tcp {
		return Unknown
	}
	switch {
	case errorRate >= t.ErrorRateCritical || (p99 != nil && *p99 >= t.P99CriticalMs):
		return Red
	case errorRate >= t.ErrorRateWarning || (p99 != nil && *p99 >= t.P99WarningMs):
		return Yellow
	}
	return Green
}
