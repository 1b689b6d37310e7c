package main

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/meshguard/meshguard/checks"
	"github.com/meshguard/meshguard/internal/config"
	"github.com/meshguard/meshguard/internal/graph"
	"github.com/meshguard/meshguard/internal/manifest"
	"github.com/meshguard/meshguard/internal/report"
)

func newGraphCmd() *cobra.Command {
	var (
		configPath     string
		prometheusURL  string
		window         time.Duration
		configFrom     []string
		kubeconfig     string
		output         string
		impact         string
		amplification  bool
		budget         float64
		prometheusAuth endpointFlags
	)
	cmd := &cobra.Command{
		Use:   "graph",
		Short: "Print the live service map: topology, health, impact of a service and retry amplification",
		Long: `Build the service map Prometheus observed over --window from Istio's request and TCP metrics:
caller workload -> service -> the workloads behind it, namespaces as groups, the cluster in every
node's identity. Each call carries its requests/s, error rate (HTTP 5xx and gRPC non-OK), p50 and
p99 latency, protocol and observed mTLS share, joined with what Istio applies to it: the
VirtualService route's retries and timeout (Istio's default retries when none is written) and the
DestinationRule's outlier detection and connection pool, from manifest files (--config-from DIR)
or the cluster (--kubeconfig, or in-cluster). Nodes and edges are green, yellow or red by the
thresholds in check.graph.health (docs/graph.md). From the cluster, each workload also gets its
owner team and tier (the labels or annotations check.graph.teamKeys and tierKeys name) and last
deploy (its Deployment's newest ReplicaSet, a StatefulSet's or DaemonSet's newest revision).

Output: -o json (schema in docs/graph.md), dot (Graphviz), mermaid (GitHub renders it in
Markdown), or html: one self-contained page with the interactive map.

--impact SERVICE prints what depends on the service, transitively, with the share of each one's
traffic that passes through it, and what it depends on (where to look for a root cause).
--amplification prints, for every observed call chain, the worst case requests one call at the
entry causes at each service (the product of attempts + 1 over the hops) and the share of the
entry's traffic that follows the chain; chains over --budget are marked. Both: -o text or json.`,
		Example: `  meshguard graph --prometheus-url http://localhost:9090 --config-from k8s/ -o html > mesh.html
  meshguard graph --prometheus-url http://localhost:9090 --config-from k8s/ -o dot | dot -Tsvg > mesh.svg
  meshguard graph --prometheus-url http://localhost:9090 --impact ratings.bookinfo
  meshguard graph --prometheus-url http://localhost:9090 --amplification --budget 10`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			formats := graph.Formats()
			if impact != "" || amplification {
				formats = []string{"text", "json"}
				if !cmd.Flags().Changed("output") {
					output = "text"
				}
			}
			if impact != "" && amplification {
				return usageError(errors.New("give --impact or --amplification, not both"))
			}
			if !checkContains(formats, output) {
				return usageError(report.UnknownFormat(output, formats...))
			}
			cfg, err := config.Load(configPath)
			if err != nil {
				return usageError(err)
			}
			cfg.Check.Prometheus = prometheusAuth.endpoint(prometheusURL, cfg.Check.Prometheus)
			if cfg.Check.Prometheus.URL == "" {
				return usageError(errors.New("no Prometheus: give --prometheus-url or check.prometheus.url in --config"))
			}
			if !cmd.Flags().Changed("window") {
				window = cfg.Check.Window.Duration
			}
			if !cmd.Flags().Changed("budget") {
				budget = cfg.Check.Thresholds.RetryAmplification
			}
			thresholds := checks.GraphThresholds(cfg)
			if err := thresholds.Validate(); err != nil {
				return usageError(fmt.Errorf("check.graph.health: %w", err))
			}
			prom, err := checks.NewPrometheus(cfg.Check.Prometheus, nil)
			if err != nil {
				return usageError(err)
			}
			var meshCfg *checks.MeshConfig
			source, err := checkConfigSource(configFrom, kubeconfig, cfg,
				manifest.KindVirtualService, manifest.KindDestinationRule)
			switch {
			case err != nil && (len(configFrom) > 0 || kubeconfig != ""):
				return usageError(err)
			case err != nil:
				// Without a cluster the observed graph is still worth printing.
				fmt.Fprintln(cmd.ErrOrStderr(), "meshguard: no configuration joined:", err)
			default:
				if meshCfg, err = source.Load(cmd.Context()); err != nil {
					return &exitError{code: 2, err: err}
				}
			}
			g, err := checks.BuildGraph(cmd.Context(), checks.GraphOptions{Querier: prom, Config: meshCfg, Window: window,
				MeshDomain: cfg.MeshDomain, RootNamespace: cfg.RootNamespace, Thresholds: thresholds,
				ClusterLabels: graph.ClusterLabels(cfg.Check.ClusterLabels)})
			if err != nil {
				return &exitError{code: 2, err: fmt.Errorf("cannot build the graph from Prometheus at %s: %w", cfg.Check.Prometheus.URL, err)}
			}
			if meshCfg != nil {
				if err := checks.DescribeWorkloads(cmd.Context(), g, source, checks.GraphKeys(cfg)); err != nil {
					// The map without owners still answers what calls what.
					fmt.Fprintln(cmd.ErrOrStderr(), "meshguard:", err)
				}
			}
			switch {
			case impact != "":
				imp, err := g.Impact(impact)
				if err != nil {
					return usageError(err)
				}
				return graph.WriteImpact(cmd.OutOrStdout(), imp, output)
			case amplification:
				return graph.WriteAmplification(cmd.OutOrStdout(), g, g.Amplification(), budget, output)
			}
			return graph.Write(cmd.OutOrStdout(), g, output, budget)
		},
	}
	fs := cmd.Flags()
	fs.StringVar(&configPath, "config", "", "meshguard config file (Prometheus endpoint and credentials, root namespace, mesh domain)")
	fs.StringVar(&prometheusURL, "prometheus-url", "", "Prometheus base URL (overrides check.prometheus.url)")
	prometheusAuth.register(fs, "prometheus", "Prometheus")
	fs.DurationVar(&window, "window", 5*time.Minute, "range the rates and latencies are taken over (default from config: 5m)")
	fs.StringArrayVar(&configFrom, "config-from", nil, "read VirtualServices and DestinationRules from manifest files or directories; repeatable")
	fs.StringVar(&kubeconfig, "kubeconfig", "", "read them, and the workloads' team, tier and last deploy, from the cluster of this kubeconfig (default: KUBECONFIG, ~/.kube/config, or in-cluster)")
	fs.StringVarP(&output, "output", "o", "json", "output format: "+strings.Join(graph.Formats(), ", ")+"; with --impact or --amplification: text (default), json")
	fs.StringVar(&impact, "impact", "", "print the impact set of this service (name, name.namespace or host) instead of the map")
	fs.BoolVar(&amplification, "amplification", false, "print the retry amplification of every observed call chain instead of the map")
	fs.Float64Var(&budget, "budget", 10, "worst case above which a chain is over budget (default from config: check.thresholds.retryAmplification)")
	return cmd
}

func checkContains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
