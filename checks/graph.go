package checks

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/prometheus/common/model"

	"github.com/meshguard/meshguard/internal/graph"
	"github.com/meshguard/meshguard/internal/mesh"
)

// GraphSignals are the graph's queries (internal/graph.Queries) as signals.
func GraphSignals(window time.Duration, clusters graph.ClusterLabels) []Signal {
	qs := graph.Queries(window, clusters)
	out := make([]Signal, len(qs))
	for i, q := range qs {
		out[i] = Signal{Name: q.Name, Query: q.Query, Describes: q.Describes}
	}
	return out
}

// GraphOptions configure BuildGraph.
type GraphOptions struct {
	Querier Querier
	// Config gives each call's VirtualService and DestinationRule (nil: none written, Istio's
	// defaults apply).
	Config *MeshConfig
	Window time.Duration
	// At is the evaluation time (zero: now).
	At            time.Time
	MeshDomain    string
	RootNamespace string
	QueryTimeout  time.Duration
	Thresholds    graph.Thresholds
	// ClusterLabels name the cluster labels (empty: Istio's source_cluster, destination_cluster).
	ClusterLabels graph.ClusterLabels
}

// BuildGraph runs the graph's queries at one instant, concurrently, and builds the graph. A
// failing query fails the graph: a partial map would mislead.
func BuildGraph(ctx context.Context, opts GraphOptions) (*graph.Graph, error) {
	if opts.At.IsZero() {
		opts.At = time.Now()
	}
	if opts.QueryTimeout <= 0 {
		opts.QueryTimeout = time.Minute
	}
	if opts.Window < time.Second {
		return nil, fmt.Errorf("graph window %s must be at least 1s", opts.Window)
	}
	signals := GraphSignals(opts.Window, opts.ClusterLabels)
	results := make([]QueryResult, len(signals))
	var wg sync.WaitGroup
	for i, sig := range signals {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i] = runQuery(ctx, opts.Querier, sig, opts.At, opts.QueryTimeout, 0)
		}()
	}
	wg.Wait()
	byName := map[string]model.Vector{}
	var errs []error
	queries := make([]string, len(signals))
	for i, r := range results {
		if r.Err != nil {
			errs = append(errs, r.Err)
		}
		byName[r.Signal] = r.Vector
		queries[i] = signals[i].Query
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("build graph: %w", err)
	}
	return graph.Build(byName, graph.Options{Index: opts.Config.index(opts.RootNamespace, opts.MeshDomain),
		Thresholds: opts.Thresholds, Window: opts.Window, At: opts.At, Queries: queries, ClusterLabels: opts.ClusterLabels}), nil
}

// WorkloadLister reads what the cluster holds about the workloads of namespaces
// (ClusterSource does; manifest files do not).
type WorkloadLister interface {
	Workloads(ctx context.Context, namespaces []string) ([]graph.Workload, error)
}

// DescribeWorkloads sets the team, tier and last deploy of g's workloads from src when it can
// list them, and does nothing otherwise. On an error g is left as it was: callers report it
// and keep the map, which is worth having without them.
func DescribeWorkloads(ctx context.Context, g *graph.Graph, src ConfigSource, keys graph.MetadataKeys) error {
	wl, ok := src.(WorkloadLister)
	if !ok {
		return nil
	}
	ws, err := wl.Workloads(ctx, g.WorkloadNamespaces())
	if err != nil {
		return fmt.Errorf("read workloads for the service map: %w", err)
	}
	g.Describe(ws, keys)
	return nil
}

// index is Istio's model of the configuration's VirtualServices and DestinationRules; nil
// configuration: an empty one, where Istio's defaults apply.
func (m *MeshConfig) index(root, domain string) *mesh.Index {
	if m == nil {
		return mesh.NewIndex(root, domain, nil, nil)
	}
	return mesh.NewIndex(root, domain, m.Objects, nil)
}
