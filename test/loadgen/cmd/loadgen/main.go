// Command loadgen sends AdmissionReviews to a running webhook at fixed rates and at its maximum,
// and prints latency percentiles and the server's CPU time per review.
//
//	go run ./test/loadgen/cmd/loadgen --url https://127.0.0.1:9443/validate --ca /tls/ca.crt \
//	    --pid $(pgrep -f 'meshguard serve') --rates 500,1000,2000,max --duration 15s
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/meshguard/meshguard/test/loadgen"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "loadgen:", err)
		os.Exit(1)
	}
}

func run() error {
	url := flag.String("url", "https://127.0.0.1:9443/validate", "webhook URL")
	caFile := flag.String("ca", "", "PEM CA that signed the server's certificate")
	pid := flag.Int("pid", 0, "server process ID, to report its CPU time per review (0: don't)")
	rates := flag.String("rates", "500,1000,2000,max", "comma-separated phases: requests per second, or max")
	duration := flag.Duration("duration", 15*time.Second, "measured time per phase")
	warmup := flag.Duration("warmup", 2*time.Second, "unmeasured time before each phase")
	concurrency := flag.Int("concurrency", 8, "requests in flight in the max phase")
	bodies := flag.Int("bodies", 2048, "distinct AdmissionReviews to cycle through")
	name := flag.String("name", "server", "name of the server in the table")
	flag.Parse()

	ca, err := os.ReadFile(*caFile)
	if err != nil {
		return fmt.Errorf("read --ca: %w", err)
	}
	client, err := loadgen.NewClient(ca)
	if err != nil {
		return err
	}
	reviews, err := loadgen.Reviews(*bodies, 1)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	var results []*loadgen.Result
	for _, r := range strings.Split(*rates, ",") {
		cfg := loadgen.Config{URL: *url, Client: client, Bodies: reviews, PID: *pid,
			Warmup: *warmup, Duration: *duration, Concurrency: *concurrency}
		if r != "max" {
			if cfg.Rate, err = strconv.ParseFloat(r, 64); err != nil {
				return fmt.Errorf("--rates: %q is not a number or max", r)
			}
		}
		res, err := loadgen.Run(ctx, cfg)
		if err != nil {
			return err
		}
		if res.Errors > 0 {
			fmt.Fprintf(os.Stderr, "loadgen: %d errors at %s/s, first: %s\n", res.Errors, r, res.FirstError)
		}
		results = append(results, res)
	}
	fmt.Print(loadgen.Table(map[string][]*loadgen.Result{*name: results}, []string{*name}))
	return nil
}
