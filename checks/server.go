package checks

import (
	"fmt"
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Handler serves the daemon's endpoints: /metrics (the registry given, which should hold the
// checker's Metrics), /healthz (the process answers), /readyz (the last cycle ran every
// query; 503 with the reason otherwise, so a degraded checker shows in its readiness) and, when
// the settings ask for it, /graph (the service map of the last cycle, read-only).
func Handler(c *Checker, g prometheus.Gatherer) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(g, promhttp.HandlerOpts{}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		if err := c.Ready(); err != nil {
			http.Error(w, "not ready: "+err.Error(), http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ready")
	})
	if c.opts.Settings.Graph {
		mux.HandleFunc("GET /graph", func(w http.ResponseWriter, _ *http.Request) {
			page := c.Page()
			if page == nil {
				http.Error(w, "no service map yet: the first cycle has not built one", http.StatusServiceUnavailable)
				return
			}
			w.Header().Set("Content-Type", "text/html; charset=utf-8")
			// The page embeds everything it runs; it may fetch nothing.
			w.Header().Set("Content-Security-Policy", "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; img-src data:")
			_, _ = w.Write(page)
		})
	}
	return mux
}
