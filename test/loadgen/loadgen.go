package loadgen

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Config is one phase of load.
type Config struct {
	// URL of the webhook, e.g. https://127.0.0.1:9443/validate.
	URL string
	// Client sends the requests (see NewClient).
	Client *http.Client
	// Rate in requests per second; 0 means as fast as the server answers, with Concurrency
	// requests in flight (a closed loop).
	Rate        float64
	Concurrency int
	// Warmup runs first at the same rate and is not measured.
	Warmup, Duration time.Duration
	// Bodies are sent round-robin.
	Bodies [][]byte
	// PID is the server process whose CPU time is read from /proc; 0 skips it.
	PID int
}

// Result of one phase.
type Result struct {
	Rate     float64 // target, 0 for max
	Requests int
	Errors   int
	Elapsed  time.Duration
	Achieved float64 // completed requests per second
	// Latency is from the moment a request was due (its slot in the fixed-rate schedule) to the
	// end of its answer, so a server or generator that falls behind shows up in it rather than
	// silently lowering the rate (no coordinated omission). In the closed loop it is the time
	// of each request.
	Latency []time.Duration
	// At is when each request of Latency was due (same order), for looking at tails over time.
	At []time.Duration
	// Service is from the moment each request was actually sent: the server's share of
	// Latency, without the generator's own lateness.
	Service []time.Duration
	// Late counts requests sent more than 1 ms after their slot: the generator itself could not
	// keep up (two shared cores).
	Late int
	// CPU is the server's user+system CPU time over the phase, and CPUPerReview that divided
	// by Requests.
	CPU, CPUPerReview time.Duration
	FirstError        string
}

// Merge pools phases run at the same rate into one result, as if they were one phase: their
// latencies together, their CPU time over their requests. Slices of a phase that take turns
// with another server's are merged this way, so that both servers meet the same moments of
// a shared machine.
func Merge(parts ...*Result) *Result {
	out := &Result{}
	for _, r := range parts {
		out.Rate = r.Rate
		out.Requests += r.Requests
		out.Errors += r.Errors
		out.Elapsed += r.Elapsed
		out.Latency = append(out.Latency, r.Latency...)
		out.At = append(out.At, r.At...)
		out.Service = append(out.Service, r.Service...)
		out.Late += r.Late
		out.CPU += r.CPU
		if out.FirstError == "" {
			out.FirstError = r.FirstError
		}
	}
	if out.Elapsed > 0 {
		out.Achieved = float64(len(out.Latency)) / out.Elapsed.Seconds()
	}
	if out.Requests > 0 {
		out.CPUPerReview = out.CPU / time.Duration(out.Requests)
	}
	return out
}

// Percentile returns the p-th percentile (0 < p < 100) of the latencies.
func (r *Result) Percentile(p float64) time.Duration { return percentile(r.Latency, p) }

// ServicePercentile returns the p-th percentile of the service times.
func (r *Result) ServicePercentile(p float64) time.Duration { return percentile(r.Service, p) }

func percentile(d []time.Duration, p float64) time.Duration {
	if len(d) == 0 {
		return 0
	}
	s := slices.Clone(d)
	slices.Sort(s)
	i := int(float64(len(s))*p/100+0.5) - 1
	return s[min(max(i, 0), len(s)-1)]
}

// NewClient returns an HTTP/2 client trusting caPEM, as kube-apiserver's webhook client is.
func NewClient(caPEM []byte) (*http.Client, error) {
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		return nil, errors.New("load CA: no PEM certificate")
	}
	tr := &http.Transport{
		TLSClientConfig:     &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12},
		ForceAttemptHTTP2:   true,
		MaxIdleConnsPerHost: 64,
		IdleConnTimeout:     90 * time.Second,
	}
	return &http.Client{Transport: tr, Timeout: 10 * time.Second}, nil
}

// Run runs one phase: the warmup, then the measured part.
func Run(ctx context.Context, cfg Config) (*Result, error) {
	if len(cfg.Bodies) == 0 || cfg.Client == nil || cfg.URL == "" {
		return nil, errors.New("load: URL, Client and Bodies are required")
	}
	if cfg.Warmup > 0 {
		w := cfg
		w.Duration, w.PID = cfg.Warmup, 0
		if _, err := run(ctx, w); err != nil {
			return nil, fmt.Errorf("warmup: %w", err)
		}
	}
	return run(ctx, cfg)
}

func run(ctx context.Context, cfg Config) (*Result, error) {
	var cpu0 time.Duration
	if cfg.PID > 0 {
		var err error
		if cpu0, err = ProcessCPU(cfg.PID); err != nil {
			return nil, err
		}
	}
	res := &Result{Rate: cfg.Rate}
	began := time.Now()
	var mu sync.Mutex
	var next atomic.Int64
	record := func(at time.Time, lat, service time.Duration, err error) {
		mu.Lock()
		defer mu.Unlock()
		res.Requests++
		if err != nil {
			res.Errors++
			if res.FirstError == "" {
				res.FirstError = err.Error()
			}
			return
		}
		res.Latency = append(res.Latency, lat)
		res.At = append(res.At, at.Sub(began))
		res.Service = append(res.Service, service)
	}
	send := func() error {
		i := int(next.Add(1)-1) % len(cfg.Bodies)
		return post(ctx, cfg.Client, cfg.URL, cfg.Bodies[i])
	}

	deadline := began.Add(cfg.Duration)
	var wg sync.WaitGroup
	if cfg.Rate > 0 {
		interval := time.Duration(float64(time.Second) / cfg.Rate)
		for i := 0; ; i++ {
			due := began.Add(time.Duration(i) * interval)
			if !due.Before(deadline) || ctx.Err() != nil {
				break
			}
			if d := time.Until(due); d > 0 {
				time.Sleep(d)
			}
			if time.Since(due) > time.Millisecond {
				mu.Lock()
				res.Late++
				mu.Unlock()
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				sent := time.Now()
				err := send()
				done := time.Now()
				record(due, done.Sub(due), done.Sub(sent), err)
			}()
		}
	} else {
		n := max(cfg.Concurrency, 1)
		for range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for time.Now().Before(deadline) && ctx.Err() == nil {
					t0 := time.Now()
					err := send()
					d := time.Since(t0)
					record(t0, d, d, err)
				}
			}()
		}
	}
	wg.Wait()
	res.Elapsed = time.Since(began)
	res.Achieved = float64(len(res.Latency)) / res.Elapsed.Seconds()
	if cfg.PID > 0 {
		cpu1, err := ProcessCPU(cfg.PID)
		if err != nil {
			return nil, err
		}
		res.CPU = cpu1 - cpu0
		if res.Requests > 0 {
			res.CPUPerReview = res.CPU / time.Duration(res.Requests)
		}
	}
	return res, ctx.Err()
}

// post sends one review and checks the answer is a 200 AdmissionReview for it.
func post(ctx context.Context, c *http.Client, url string, body []byte) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	out, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("HTTP %d: %.200s", resp.StatusCode, out)
	}
	if !bytes.Contains(out, []byte(`"response":`)) {
		return fmt.Errorf("not an AdmissionReview answer: %.200s", out)
	}
	return nil
}

// clockTicks is USER_HZ, the unit of /proc/PID/stat's CPU times; it is 100 on every Linux
// platform Go supports (the kernel's internal HZ may differ, the exported unit does not).
const clockTicks = 100

// ProcessCPU returns a process's user+system CPU time so far, from /proc/PID/stat.
func ProcessCPU(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, fmt.Errorf("read CPU time of pid %d: %w", pid, err)
	}
	// The command name (field 2) may hold spaces and parentheses: split after the last ')'.
	s := string(b)
	end := strings.LastIndexByte(s, ')')
	if end < 0 {
		return 0, fmt.Errorf("read CPU time of pid %d: malformed /proc stat", pid)
	}
	fields := strings.Fields(s[end+1:])
	// fields[0] is field 3 (state); utime and stime are fields 14 and 15.
	if len(fields) < 13 {
		return 0, fmt.Errorf("read CPU time of pid %d: short /proc stat", pid)
	}
	utime, err1 := strconv.ParseInt(fields[11], 10, 64)
	stime, err2 := strconv.ParseInt(fields[12], 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		return 0, fmt.Errorf("read CPU time of pid %d: %w", pid, err)
	}
	return time.Duration(utime+stime) * time.Second / clockTicks, nil
}

// Table renders results as a Markdown table, one row per phase and server.
func Table(rows map[string][]*Result, order []string) string {
	var b strings.Builder
	b.WriteString("| server | target/s | achieved/s | p50 | p99 | p99.9 | p99 service | CPU/review | errors | late sends |\n")
	b.WriteString("|---|---|---|---|---|---|---|---|---|---|\n")
	for _, name := range order {
		for _, r := range rows[name] {
			target := "max"
			if r.Rate > 0 {
				target = strconv.Itoa(int(r.Rate))
			}
			fmt.Fprintf(&b, "| %s | %s | %.0f | %s | %s | %s | %s | %s | %d | %d |\n", name, target, r.Achieved,
				ms(r.Percentile(50)), ms(r.Percentile(99)), ms(r.Percentile(99.9)), ms(r.ServicePercentile(99)), us(r.CPUPerReview), r.Errors, r.Late)
		}
	}
	return b.String()
}

func ms(d time.Duration) string { return fmt.Sprintf("%.2f ms", float64(d)/float64(time.Millisecond)) }
func us(d time.Duration) string { return fmt.Sprintf("%.0f µs", float64(d)/float64(time.Microsecond)) }
