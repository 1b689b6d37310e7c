package checks

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"time"

	promapi "github.com/prometheus/client_golang/api"
	promv1 "github.com/prometheus/client_golang/api/prometheus/v1"
	"github.com/prometheus/common/model"

	"github.com/meshguard/meshguard/internal/config"
	"github.com/meshguard/meshguard/internal/endpoint"
)

// Querier runs instant queries; promv1.API satisfies it, and tests wrap it to count queries.
type Querier interface {
	Query(ctx context.Context, query string, ts time.Time, opts ...promv1.Option) (model.Value, promv1.Warnings, promv1.Infos, error)
}

// ErrPartialResponse marks a query answered with warnings: a Thanos querier that could not reach
// every store answers with what the others hold and says so in warnings. Such an answer may
// raise alerts but never resolves one.
var ErrPartialResponse = errors.New("partial response")

// PrometheusOption configures NewPrometheus.
type PrometheusOption func(*promOptions)

type promOptions struct{ partialResponse *bool }

// PartialResponse sends Thanos' partial_response parameter with every query (nil: not sent).
func PartialResponse(v *bool) PrometheusOption {
	return func(o *promOptions) { o.partialResponse = v }
}

// NewPrometheus returns the client_golang API client for a Prometheus endpoint (do: see
// Transport). Answers to bounded queries hold at most the bound, whatever the backend does.
func NewPrometheus(ep config.Endpoint, do endpoint.DoFunc, opts ...PrometheusOption) (promv1.API, error) {
	var o promOptions
	for _, opt := range opts {
		opt(&o)
	}
	rt, err := endpoint.Transport(ep, do)
	if err != nil {
		return nil, fmt.Errorf("prometheus client: %w", err)
	}
	if o.partialResponse != nil {
		rt = partialResponseTransport{next: rt, value: strconv.FormatBool(*o.partialResponse)}
	}
	c, err := promapi.NewClient(promapi.Config{Address: ep.URL, RoundTripper: topkTransport{next: rt}})
	if err != nil {
		return nil, fmt.Errorf("prometheus client for %s: %w", ep.URL, err)
	}
	return promv1.NewAPI(c), nil
}

// partialResponseTransport adds partial_response to the URL: Thanos reads it with FormValue, so
// it counts for posted forms too, and Prometheus ignores it.
type partialResponseTransport struct {
	next  http.RoundTripper
	value string
}

func (t partialResponseTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	q := r.URL.Query()
	q.Set("partial_response", t.value)
	r.URL.RawQuery = q.Encode()
	return t.next.RoundTrip(r)
}

// QueryResult is the outcome of one signal's query in a cycle.
type QueryResult struct {
	Signal string `json:"signal"`
	Query  string `json:"query"`
	// Series are the series kept; Dropped those over the limit, counted but not evaluated.
	Series   int           `json:"series"`
	Dropped  int           `json:"dropped,omitempty"`
	Duration time.Duration `json:"duration"`
	Warnings []string      `json:"warnings,omitempty"`
	// At is when the answer was asked for; Reused says it was not asked again this cycle
	// (Signal.Refresh).
	At     time.Time    `json:"at"`
	Reused bool         `json:"reused,omitempty"`
	Err    error        `json:"-"`
	Vector model.Vector `json:"-"`
}

// boundedQuery asks Prometheus for the limit+1 series of q with the highest values: the bytes
// of a larger answer never arrive, and one series more than the limit tells that there are more.
func boundedQuery(q string, limit int) string { return fmt.Sprintf("topk(%d,\n%s\n)", limit+1, q) }

// countQuery counts the series of q, asked only when q has more than the limit.
func countQuery(q string) string { return "count(\n" + q + "\n)" }

// runQuery runs one signal at ts. Only an instant vector is a valid answer: every signal
// aggregates into one. With limit > 0 at most limit series are kept, those with the highest
// values, and the others are counted in Dropped.
func runQuery(ctx context.Context, q Querier, sig Signal, ts time.Time, timeout time.Duration, limit int) QueryResult {
	start := time.Now()
	res := QueryResult{Signal: sig.Name, Query: sig.Query}
	qctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	query := sig.Query
	if limit > 0 {
		query = boundedQuery(sig.Query, limit)
	}
	vec, warnings, err := queryVector(qctx, q, query, ts, timeout)
	res.Warnings = warnings
	if err == nil && limit > 0 && len(vec) > limit {
		res.Dropped = len(vec) - limit
		// Exactly one more than the limit: topk was honoured and the real number is unknown.
		// More: the backend ignored topk, and the whole answer is here to be cut.
		// If the count fails, one is still reported: a lower bound, with the reason as a warning.
		if len(vec) == limit+1 {
			total, _, cerr := queryVector(qctx, q, countQuery(sig.Query), ts, timeout)
			switch {
			case cerr != nil:
				res.Warnings = append(res.Warnings, fmt.Sprintf("count the series over the limit: %v", cerr))
			case len(total) == 1:
				res.Dropped = max(res.Dropped, int(total[0].Value)-limit)
			}
		}
		vec = highest(vec, limit)
	}
	res.Duration = time.Since(start)
	if err == nil && len(warnings) > 0 {
		// The answer is kept, since what it shows is there, and marked: absence proves nothing.
		res.Vector, res.Series = vec, len(vec)
		err = fmt.Errorf("%w: %s", ErrPartialResponse, strings.Join(warnings, "; "))
	}
	if err != nil {
		res.Err = fmt.Errorf("query prometheus for %s: %w", sig.Name, err)
		return res
	}
	res.Vector, res.Series = vec, len(vec)
	return res
}

func queryVector(ctx context.Context, q Querier, query string, ts time.Time, timeout time.Duration) (model.Vector, []string, error) {
	v, warnings, _, err := q.Query(ctx, query, ts, promv1.WithTimeout(timeout))
	if err != nil {
		return nil, warnings, err
	}
	vec, ok := v.(model.Vector)
	if !ok {
		return nil, warnings, fmt.Errorf("got a %s, want a vector", v.Type())
	}
	return vec, warnings, nil
}

// highest keeps the n series with the highest values, as topk does, in a new slice so that the
// rest of the answer can be collected.
func highest(vec model.Vector, n int) model.Vector {
	sort.SliceStable(vec, func(i, j int) bool {
		if vec[i].Value != vec[j].Value {
			return vec[i].Value > vec[j].Value
		}
		return vec[i].Metric.Before(vec[j].Metric)
	})
	return append(model.Vector(nil), vec[:n]...)
}
