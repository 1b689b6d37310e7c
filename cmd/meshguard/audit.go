package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"path"
	"strings"

	"github.com/go-logr/logr"
	"github.com/spf13/cobra"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/restmapper"

	"github.com/meshguard/meshguard/internal/engine"
	"github.com/meshguard/meshguard/internal/lint"
	"github.com/meshguard/meshguard/internal/manifest"
	"github.com/meshguard/meshguard/internal/report"
	"github.com/meshguard/meshguard/webhook"
)

// auditPageSize bounds one LIST call; large clusters are read in pages.
const auditPageSize = 500

func newAuditCmd() *cobra.Command {
	var (
		rf         ruleFlags
		kubeconfig string
		output     string
		failOn     string
		namespace  string
		noColor    bool
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
  meshguard audit --kubeconfig ~/.kube/prod --fail-on warning -o sarif > audit.sarif`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			tuneGC(logr.Discard())
			threshold, err := parseFailOn(failOn)
			if err != nil {
				return err
			}
			color := !noColor && output == "text" && isTerminal(cmd.OutOrStdout())
			out, err := report.Get(output, report.Options{Color: color})
			if err != nil {
				return usageError(err)
			}
			_, eng, err := rf.build(cmd.Context())
			if err != nil {
				return err
			}
			restCfg, err := restConfig(kubeconfig)
			if err != nil {
				return usageError(err)
			}
			objects, problems, err := listCluster(cmd.Context(), restCfg, cmd.ErrOrStderr())
			if err != nil {
				return usageError(err)
			}
			findings, err := lint.Run(cmd.Context(), eng, objects, problems, true)
			if err != nil {
				return err
			}
			reported := len(objects) + len(problems)
			if namespace != "" {
				// The inventory stays the whole cluster (cross-object rules need it); only what
				// is reported is narrowed.
				findings = inNamespace(findings, namespace)
				reported = 0
				for _, o := range objects {
					if o.Namespace == namespace {
						reported++
					}
				}
				for _, p := range problems {
					if p.Namespace == namespace {
						reported++
					}
				}
			}
			rep := &report.Report{Findings: findings, Rules: eng.Rules(), Objects: reported}
			if err := out.Output(cmd.OutOrStdout(), rep); err != nil {
				return fmt.Errorf("write report: %w", err)
			}
			if threshold > 0 && engine.Max(findings) >= threshold {
				return &exitError{code: 1}
			}
			return nil
		},
	}
	fs := cmd.Flags()
	rf.register(fs)
	fs.StringVar(&kubeconfig, "kubeconfig", "", "kubeconfig file (default: $KUBECONFIG, the in-cluster config, then ~/.kube/config)")
	fs.StringVarP(&output, "output", "o", "text", "output format: "+strings.Join(report.Formats(), ", "))
	fs.StringVar(&failOn, "fail-on", "error", "exit 1 when a finding is at or above this severity: error, warning, info or none")
	fs.StringVarP(&namespace, "namespace", "n", "", "report only the findings of objects in this namespace (the whole cluster is still the inventory)")
	fs.BoolVar(&noColor, "no-color", false, "never colour the text output (it is coloured only on a terminal anyway)")
	return cmd
}

// listCluster reads every object of the checked kinds, each in the version the cluster prefers
// among those Istio serves. Objects that fail the strict check come back as problems (MG001),
// as in lint. Each object's File is its API path, which is what reports print and link to.
func listCluster(ctx context.Context, cfg *rest.Config, stderr io.Writer) ([]*manifest.Object, []*manifest.Problem, error) {
	dc, err := discovery.NewDiscoveryClientForConfig(cfg)
	if err != nil {
		return nil, nil, fmt.Errorf("connect to the cluster: %w", err)
	}
	mapper := restmapper.NewDeferredDiscoveryRESTMapper(memory.NewMemCacheClient(dc))
	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		return nil, nil, fmt.Errorf("connect to the cluster: %w", err)
	}
	var (
		objects  []*manifest.Object
		problems []*manifest.Problem
		served   int
	)
	for _, kind := range manifest.Kinds() {
		group, versions := manifest.GroupVersions(kind)
		mapping, err := mapper.RESTMapping(schema.GroupKind{Group: group, Kind: kind}, versions...)
		if meta.IsNoMatchError(err) {
			fmt.Fprintf(stderr, "meshguard: the cluster serves no %s.%s; skipped\n", kind, group)
			continue
		}
		if err != nil {
			return nil, nil, fmt.Errorf("look up %s.%s: %w", kind, group, err)
		}
		served++
		gvr := mapping.Resource
		opts := metav1.ListOptions{Limit: auditPageSize}
		for {
			list, err := dyn.Resource(gvr).List(ctx, opts)
			if err != nil {
				return nil, nil, fmt.Errorf("list %s: %w", gvr.GroupResource(), err)
			}
			for i := range list.Items {
				u := &list.Items[i]
				raw := webhook.Normalize(u.Object).(map[string]any)
				// The file of a cluster object is its API path.
				file := path.Join("/apis", gvr.Group, gvr.Version, "namespaces", u.GetNamespace(), gvr.Resource, u.GetName())
				obj, problem := webhook.ObjectOf(raw)
				switch {
				case problem != nil:
					problem.File = file
					problems = append(problems, problem)
				case obj != nil:
					obj.File = file
					objects = append(objects, obj)
				}
			}
			if opts.Continue = list.GetContinue(); opts.Continue == "" {
				break
			}
		}
	}
	if served == 0 {
		return nil, nil, errors.New("the cluster serves none of the Istio kinds meshguard checks: are the Istio CRDs installed?")
	}
	return objects, problems, nil
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
