package checks

import (
	"context"
	"fmt"
	"time"

	promapi "github.com/prometheus/client_golang/api"
	promv1 "github.com/prometheus/client_golang/api/prometheus/v1"
	"github.com/prometheus/common/model"

	"github.com/meshguard/meshguard/internal/config"
)

// Querier runs instant queries; promv1.API satisfies it, and tests wrap it to count queries.
type Querier interface {
	Query(ctx context.Context, query string, ts time.Time, opts ...promv1.Option) (model.Value, promv1.Warnings, promv1.Infos, error)
}

// NewPrometheus returns the client_golang API client for a Prometheus endpoint (do: see
// Transport).
func NewPrometheus(ep config.Endpoint, do DoFunc) (promv1.API, error) {
	rt, err := Transport(ep, do)
	if err != nil {
		return nil, fmt.Errorf("prometheus client: %w", err)
	}
	c, err := promapi.NewClient(promapi.Config{Address: ep.URL, RoundTripper: rt})
	if err != nil {
		return nil, fmt.Errorf("prometheus client for %s: %w", ep.URL, err)
	}
	return promv1.NewAPI(c), nil
}

// QueryResult is the outcome of one signal's query in a cycle.
type QueryResult struct {
	Signal   string        `json:"signal"`
	Query    string        `json:"query"`
	Series   int           `json:"series"`
	Duration time.Duration `json:"duration"`
	Warnings []string      `json:"warnings,omitempty"`
	Err      error         `json:"-"`
	Vector   model.Vector  `json:"-"`
}

// runQuery runs one signal at ts. Only an instant vector is a valid answer: every signal
// aggregates into one.
func runQuery(ctx context.Context, q Querier, sig Signal, ts time.Time, timeout time.Duration) QueryResult {
	start := time.Now()
	res := QueryResult{Signal: sig.Name, Query: sig.Query}
	qctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	v, warnings, _, err := q.Query(qctx, sig.Query, ts, promv1.WithTimeout(timeout))
	res.Duration = time.Since(start)
	res.Warnings = warnings
	if err != nil {
		res.Err = fmt.Errorf("query prometheus for %s: %w", sig.Name, err)
		return res
	}
	vec, ok := v.(model.Vector)
	if !ok {
		res.Err = fmt.Errorf("query prometheus for %s: got a %s, want a vector", sig.Name, v.Type())
		return res
	}
	res.Vector, res.Series = vec, len(vec)
	return res
}
