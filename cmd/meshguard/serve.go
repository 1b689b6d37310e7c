package main

import (
	"context"
	"crypto/tls"
	"fmt"
	"net/http"
	"os"
	"time"

	"github.com/go-logr/logr"
	"github.com/spf13/cobra"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
	crwebhook "sigs.k8s.io/controller-runtime/pkg/webhook"

	"github.com/meshguard/meshguard/internal/cluster"
	"github.com/meshguard/meshguard/internal/config"
	"github.com/meshguard/meshguard/internal/engine"
	"github.com/meshguard/meshguard/internal/manifest"
	"github.com/meshguard/meshguard/policies"
	"github.com/meshguard/meshguard/webhook"
)

type serveFlags struct {
	rules       ruleFlags
	kubeconfig  string
	certDir     string
	port        int
	metricsAddr string
	probeAddr   string
	pprofAddr   string
	verbosity   int
	log         logFlags
}

func newServeCmd() *cobra.Command {
	var f serveFlags
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Run the validating admission webhook",
		Long: `Serve the validating admission webhook for VirtualService, DestinationRule, PeerAuthentication and
Telemetry at /validate (AdmissionReview v1, HTTPS). Objects are reviewed with the same rules as
` + "`meshguard lint`" + `, against the cluster's Istio objects as a complete inventory. Error findings deny,
warnings become admission warnings; webhook.enforcement and rules.<ID>.enforcement in the config
file turn that into warn or audit. The config file is watched and reloaded without a restart; the
serving certificate (tls.crt and tls.key in --cert-dir) is too.`,
		Example: `  meshguard serve --cert-dir=/tls --config=/etc/meshguard/config.yaml --port=9443 \
    --metrics-bind-address=:8080 --health-probe-bind-address=:8081`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return serve(cmd.Context(), &f) },
	}
	fs := cmd.Flags()
	f.rules.register(fs)
	fs.StringVar(&f.kubeconfig, "kubeconfig", "", "kubeconfig file (default: $KUBECONFIG, the in-cluster config, then ~/.kube/config)")
	fs.StringVar(&f.certDir, "cert-dir", "/tmp/k8s-webhook-server/serving-certs", "directory holding the serving certificate tls.crt and key tls.key (re-read when they change)")
	fs.IntVar(&f.port, "port", 9443, "HTTPS port of the webhook")
	fs.StringVar(&f.metricsAddr, "metrics-bind-address", ":8080", "address of the Prometheus /metrics endpoint (0 turns it off)")
	fs.StringVar(&f.probeAddr, "health-probe-bind-address", ":8081", "address of the /healthz and /readyz endpoints")
	fs.StringVar(&f.pprofAddr, "pprof-bind-address", "", "address of Go's /debug/pprof endpoints, for profiling (off when empty; never expose it)")
	fs.IntVar(&f.verbosity, "v", 0, "log verbosity: 0 info, 1 adds every finding with its message, 2 and up adds debug detail; object contents are never logged at 0")
	f.log.register(fs, "json")
	return cmd
}

func serve(ctx context.Context, f *serveFlags) error {
	h, err := f.log.handler(os.Stderr, f.verbosity)
	if err != nil {
		return err
	}
	log := logr.FromSlogHandler(h)
	// controller-runtime's components log through its global logger; set it before any of them.
	ctrl.SetLogger(log)
	log = log.WithName("meshguard")
	tuneGC(log, gcLatency)

	now, err := f.rules.clock()
	if err != nil {
		return err
	}
	metrics, err := webhook.NewMetrics(ctrlmetrics.Registry)
	if err != nil {
		return err
	}
	if err := ctrlmetrics.Registry.Register(buildInfoCollector()); err != nil {
		return fmt.Errorf("register build info: %w", err)
	}
	reloader := &webhook.Reloader{
		Path: f.rules.configPath,
		Build: func(ctx context.Context, cfg *config.Config) (*engine.Engine, error) {
			return policies.Engine(ctx, cfg, f.rules.policyDirs, now)
		},
		Log:     log.WithName("config"),
		Metrics: metrics,
	}
	began := time.Now()
	rs, err := reloader.Load(ctx)
	if err != nil {
		return usageError(err)
	}
	log.Info("rules compiled", "rules", len(rs.Engine.Rules()), "took", time.Since(began).String(),
		"enforcement", rs.Config.Webhook.Enforcement, "failurePolicy", rs.Config.Webhook.FailurePolicy)
	rules := webhook.NewRules(rs)
	reloader.Rules = rules

	restCfg, err := cluster.RESTConfig(f.kubeconfig)
	if err != nil {
		return usageError(err)
	}
	server := crwebhook.NewServer(crwebhook.Options{
		Port:    f.port,
		CertDir: f.certDir,
		TLSOpts: []func(*tls.Config){func(c *tls.Config) { c.MinVersion = tls.VersionTLS12 }},
	})
	mgr, err := manager.New(restCfg, manager.Options{
		Logger:                 log,
		Metrics:                metricsserver.Options{BindAddress: f.metricsAddr},
		HealthProbeBindAddress: f.probeAddr,
		PprofBindAddress:       f.pprofAddr,
		WebhookServer:          server,
		// Rules never read managedFields or last-applied-configuration; dropping them more
		// than halves what the cache holds.
		Cache: cache.Options{DefaultTransform: webhook.StripUnread},
	})
	if err != nil {
		return fmt.Errorf("create manager: %w", err)
	}

	kinds := manifest.Kinds()
	// An informer that may not list Services would never sync, and the webhook never be ready:
	// without them, hosts fall back to Istio's app label convention, as their findings say.
	switch ok, err := cluster.MayWatch(ctx, restCfg, "", "services"); {
	case err != nil:
		return err
	case ok:
		kinds = append(kinds, manifest.KindService)
	default:
		log.Info("may not list and watch services: the workloads behind a host are those labelled app: <service> (Istio's convention)")
	}
	inv := webhook.NewCache(log.WithName("inventory"), metrics)
	if err := inv.Watch(ctx, mgr.GetCache(), mgr.GetRESTMapper(), kinds); err != nil {
		return err
	}
	// Where istiod's own validating webhook fails closed, its checks are left to it
	// (webhook.istiodValidation: auto). Without the right to watch webhook configurations,
	// meshguard cannot know, and runs them.
	var istiod *webhook.IstiodWebhooks
	switch ok, err := cluster.MayWatch(ctx, restCfg, "admissionregistration.k8s.io", "validatingwebhookconfigurations"); {
	case err != nil:
		return err
	case ok:
		istiod = webhook.NewIstiodWebhooks(log.WithName("istiod-webhook"))
		if err := istiod.Watch(ctx, mgr.GetCache()); err != nil {
			return err
		}
	default:
		log.Info("may not list and watch validatingwebhookconfigurations: istiod's validation runs in meshguard too")
	}
	// GetWebhookServer, not the server variable: it is what adds the server to the manager.
	mgr.GetWebhookServer().Register(webhook.Path, webhook.NewHTTPHandler(&webhook.Handler{
		Rules: rules, Inventory: inv, Metrics: metrics, Log: log.WithName("admission"), Istiod: istiod,
	}))
	if err := mgr.Add(reloader); err != nil {
		return fmt.Errorf("add config reloader: %w", err)
	}
	checks := []struct {
		name  string
		check healthz.Checker
	}{
		{"inventory", inv.ReadyCheck},
		{"webhook", server.StartedChecker()},
		{"rules", func(*http.Request) error {
			if rules.Load() == nil {
				return fmt.Errorf("rules not compiled")
			}
			return nil
		}},
	}
	for _, c := range checks {
		if err := mgr.AddReadyzCheck(c.name, c.check); err != nil {
			return fmt.Errorf("add readiness check %s: %w", c.name, err)
		}
	}
	if err := mgr.AddHealthzCheck("ping", healthz.Ping); err != nil {
		return fmt.Errorf("add health check: %w", err)
	}
	log.Info("starting", "port", f.port, "path", webhook.Path, "certDir", f.certDir)
	if err := mgr.Start(ctx); err != nil {
		return fmt.Errorf("run webhook server: %w", err)
	}
	return nil
}
