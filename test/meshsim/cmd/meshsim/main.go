// Command meshsim serves a synthetic Istio mesh's metrics for demos and manual testing:
//
//	meshsim --listen 127.0.0.1:9464 --scenario demo
//
// serves a bookinfo-like mesh (see meshsim.Demo) at /metrics for Prometheus to scrape, and
//
//	meshsim --scenario demo --openmetrics 2h --step 15s > demo.om
//
// prints the same mesh's last two hours as OpenMetrics for
// `promtool tsdb create-blocks-from openmetrics demo.om DATA_DIR`.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/meshguard/meshguard/test/meshsim"
)

func main() {
	if err := run(os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "meshsim:", err)
		os.Exit(1)
	}
}

func run(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("meshsim", flag.ContinueOnError)
	fs.SetOutput(stderr)
	listen := fs.String("listen", "127.0.0.1:9464", "address to serve /metrics on")
	scenario := fs.String("scenario", "demo", "mesh to simulate: demo (bookinfo with plaintext and a retry storm) or scale")
	services := fs.Int("services", 1000, "number of destination services for --scenario scale")
	noHistograms := fs.Bool("no-histograms", false, "leave out istio_request_duration_milliseconds")
	openMetrics := fs.Duration("openmetrics", 0, "instead of serving, print this much history (ending now) as OpenMetrics on stdout")
	step := fs.Duration("step", 15*time.Second, "sample interval for --openmetrics")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %v", fs.Args())
	}

	var flows []meshsim.Flow
	switch *scenario {
	case "demo":
		flows = meshsim.Demo()
	case "scale":
		if *services <= 0 {
			return fmt.Errorf("--services must be > 0, got %d", *services)
		}
		flows = meshsim.Generate(*services)
	default:
		return fmt.Errorf("unknown scenario %q (want demo or scale)", *scenario)
	}
	opts := meshsim.Options{OmitHistograms: *noHistograms}

	if *openMetrics > 0 {
		end := time.Now().Truncate(time.Second)
		span := meshsim.Span{Start: end.Add(-*openMetrics), End: end, Step: *step}
		if err := meshsim.WriteOpenMetrics(stdout, flows, span, opts); err != nil {
			return fmt.Errorf("render openmetrics: %w", err)
		}
		return nil
	}

	exporter, err := meshsim.NewExporter(opts, flows...)
	if err != nil {
		return fmt.Errorf("scenario %s: %w", *scenario, err)
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", exporter)
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, "ok") })
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	fmt.Fprintf(stderr, "meshsim: serving scenario %s (%d flows) on http://%s/metrics\n", *scenario, len(flows), ln.Addr())

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	if err := <-errc; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("serve: %w", err)
	}
	return nil
}
