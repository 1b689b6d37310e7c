package main

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/meshguard/meshguard/checks"
	"github.com/meshguard/meshguard/internal/config"
	"github.com/meshguard/meshguard/internal/manifest"
)

func newGraphCmd() *cobra.Command {
	var (
		configPath     string
		prometheusURL  string
		window         time.Duration
		configFrom     []string
		kubeconfig     string
		output         string
		prometheusAuth endpointFlags
	)
	cmd := &cobra.Command{
		Use:   "graph",
		Short: "Print the observed service graph, joined with each edge's retries, timeout and outlier detection",
		Long: `Build the dependency graph Prometheus observed over --window from istio_requests_total and
istio_tcp_connections_opened_total: source workload -> destination service, with the request rate,
the share of 5xx, the p99 latency (istio_request_duration_milliseconds) and whether the traffic
was mTLS. Each edge is joined with the configuration that applies to it: the VirtualService routes'
retries and timeout (Istio's defaults when none) and the DestinationRule's outlier detection, from
manifest files (--config-from DIR) or the cluster (--kubeconfig, or in-cluster).

Output: -o json, or -o dot for Graphviz (meshguard graph -o dot | dot -Tsvg > mesh.svg).`,
		Example: `  meshguard graph --prometheus-url http://localhost:9090 --config-from k8s/ -o dot | dot -Tsvg > mesh.svg
  meshguard graph --prometheus-url http://localhost:9090 --window 15m -o json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if !checkContains(checks.GraphFormats(), output) {
				return usageError(fmt.Errorf("-o %q: want one of %s", output, strings.Join(checks.GraphFormats(), ", ")))
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
			prom, err := checks.NewPrometheus(cfg.Check.Prometheus, nil)
			if err != nil {
				return usageError(err)
			}
			var meshCfg *checks.MeshConfig
			source, err := checkConfigSource(configFrom, kubeconfig, cfg.RootNamespace,
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
				MeshDomain: cfg.MeshDomain, RootNamespace: cfg.RootNamespace})
			if err != nil {
				return &exitError{code: 2, err: fmt.Errorf("cannot build the graph from Prometheus at %s: %w", cfg.Check.Prometheus.URL, err)}
			}
			return checks.WriteGraph(cmd.OutOrStdout(), g, output)
		},
	}
	fs := cmd.Flags()
	fs.StringVar(&configPath, "config", "", "meshguard config file (Prometheus endpoint and credentials, root namespace, mesh domain)")
	fs.StringVar(&prometheusURL, "prometheus-url", "", "Prometheus base URL (overrides check.prometheus.url)")
	prometheusAuth.register(fs, "prometheus", "Prometheus")
	fs.DurationVar(&window, "window", 5*time.Minute, "range the rates and latencies are taken over (default from config: 5m)")
	fs.StringArrayVar(&configFrom, "config-from", nil, "read VirtualServices and DestinationRules from manifest files or directories; repeatable")
	fs.StringVar(&kubeconfig, "kubeconfig", "", "read them from the cluster of this kubeconfig (default: KUBECONFIG, ~/.kube/config, or in-cluster)")
	fs.StringVarP(&output, "output", "o", "json", "output format: "+strings.Join(checks.GraphFormats(), ", "))
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
