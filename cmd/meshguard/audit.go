package main

import (
	"fmt"
	"time"

	"github.com/go-logr/logr"
	"github.com/spf13/cobra"

	"github.com/meshguard/meshguard/internal/cluster"
	"github.com/meshguard/meshguard/internal/engine"
	"github.com/meshguard/meshguard/internal/lint"
	"github.com/meshguard/meshguard/internal/manifest"
	"github.com/meshguard/meshguard/internal/report"
)

func newAuditCmd() *cobra.Command {
	var (
		rf         ruleFlags
		out        reportFlags
		logs       logFlags
		write      bool
		kubeconfig string
		namespace  string
	)
	cmd := &cobra.Command{
		Use:   "audit",
		Short: "Report findings for every Istio object already in a cluster",
		Long: `Read every VirtualService, DestinationRule, PeerAuthentication and Telemetry in the cluster and check
them with the same rules as the webhook, against the whole cluster as a complete inventory (so the
rules that report something missing run too). Objects admitted before meshguard was installed, or
while its enforcement was audit or warn, show up here.
Exit status: 0 when no finding is at or above --fail-on, 1 when one is, 2 for usage errors and an
unreachable cluster.`,
		Example: `  meshguard audit
  meshguard audit -n shop -o json
  meshguard audit --kubeconfig ~/.kube/prod --fail-on warning -o sarif > audit.sarif
  meshguard audit -o policyreport | kubectl apply -f -
  meshguard audit --write   # the same, and removes the reports of namespaces now clean`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			h, err := logs.handler(cmd.ErrOrStderr(), 0)
			if err != nil {
				return err
			}
			tuneGC(logr.FromSlogHandler(h), gcBatch)
			rep, err := out.reporter(cmd)
			if err != nil {
				return err
			}
			rf.stderr = cmd.ErrOrStderr()
			_, eng, err := rf.build(cmd.Context())
			if err != nil {
				return err
			}
			restCfg, err := cluster.RESTConfig(kubeconfig)
			if err != nil {
				return usageError(err)
			}
			items, err := cluster.List(cmd.Context(), restCfg, nil, cmd.ErrOrStderr())
			if err != nil {
				return usageError(err)
			}
			// As in lint, an object that fails the strict check is its MG001 problem only.
			var objects []*manifest.Object
			var problems []*manifest.Problem
			for _, it := range items {
				if it.Problem != nil {
					problems = append(problems, it.Problem)
				} else {
					objects = append(objects, it.Object)
				}
			}
			findings, err := lint.Run(cmd.Context(), eng, objects, problems, true)
			if err != nil {
				return err
			}
			reported := lint.Checked(objects) + len(problems)
			if namespace != "" {
				// The inventory stays the whole cluster (cross-object rules need it); only what
				// is reported is narrowed.
				findings = inNamespace(findings, namespace)
				reported = 0
				for _, o := range objects {
					if o.Namespace == namespace && !manifest.InventoryOnly(o.Kind) {
						reported++
					}
				}
				for _, p := range problems {
					if p.Namespace == namespace {
						reported++
					}
				}
			}
			if write {
				reports := report.PolicyReports(&report.Report{Findings: findings, Rules: eng.Rules(), Time: time.Now()})
				if err := cluster.WritePolicyReports(cmd.Context(), restCfg, reports, namespace); err != nil {
					return err
				}
				fmt.Fprintf(cmd.ErrOrStderr(), "meshguard: wrote %d policy reports\n", len(reports))
			}
			return rep.write(cmd, &report.Report{Findings: findings, Rules: eng.Rules(), Objects: reported})
		},
	}
	fs := cmd.Flags()
	rf.discover = true
	rf.register(fs)
	fs.StringVar(&kubeconfig, "kubeconfig", "", "kubeconfig file (default: $KUBECONFIG, the in-cluster config, then ~/.kube/config)")
	out.register(fs)
	logs.register(fs, "text")
	fs.BoolVar(&write, "write", false, "also keep the findings in the cluster as wgpolicyk8s.io/v1alpha2 PolicyReports (one per namespace) and a ClusterPolicyReport, replacing the previous audit's")
	fs.StringVarP(&namespace, "namespace", "n", "", "report only the findings of objects in this namespace (the whole cluster is still the inventory)")
	return cmd
}

func inNamespace(fs []engine.Finding, ns string) []engine.Finding {
	out := fs[:0:0]
	for _, f := range fs {
		if f.Namespace == ns {
			out = append(out, f)
		}
	}
	return out
}
