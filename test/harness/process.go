// This file owns the generic process helper the Prometheus and Alertmanager harnesses run on:
// start a real binary on loopback, capture its output to a file, stop it (SIGTERM, then SIGKILL)
// and restart it with the same arguments. Every wait is bounded and every process is stopped in
// t.Cleanup, so a failing test leaks neither processes nor goroutines.

package harness

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

const (
	// DefaultStopTimeout is how long Stop waits after SIGTERM before it sends SIGKILL. Prometheus
	// flushes its head block on shutdown, which takes a moment on a busy 2-core machine.
	DefaultStopTimeout = 20 * time.Second
	// procKillTimeout bounds the wait for the process to be reaped after SIGKILL; a process that
	// survives SIGKILL that long is stuck in the kernel and there is nothing more to do.
	procKillTimeout = 10 * time.Second
	// procReadyTimeout bounds WaitHTTP when its context carries no deadline. Both servers are
	// ready in well under a second when idle; the margin is for machines busy compiling.
	procReadyTimeout = 60 * time.Second
	// procPollInterval is how often readiness is re-probed.
	procPollInterval = 50 * time.Millisecond
	// procLogTailLines is how much of a process log is copied into the test log on failure.
	procLogTailLines = 60
)

// Process is a binary started by the harness. Create it with NewProcess (or StartProcess); it is
// stopped in t.Cleanup, and its captured output is copied into the test log when the test failed.
// Its methods are safe for concurrent use.
type Process struct {
	name    string
	bin     string
	args    []string
	logPath string

	// StopTimeout is how long Stop waits after SIGTERM before SIGKILL (DefaultStopTimeout if 0).
	// Set it before the process is started.
	StopTimeout time.Duration
	// Env holds KEY=VALUE entries the process gets over the test's own environment. Set it
	// before the process is started.
	Env []string

	mu      sync.Mutex
	cmd     *exec.Cmd
	done    chan struct{} // closed when the current run has been reaped
	waitErr error         // the current run's exit status, valid once done is closed
	logFile *os.File
	runs    int
}

// NewProcess prepares bin with args without starting it. name labels the log file and messages.
// The process is stopped in t.Cleanup, and the tail of its output is logged if the test failed.
func NewProcess(t testing.TB, name, bin string, args ...string) *Process {
	t.Helper()
	p := &Process{
		name:    name,
		bin:     bin,
		args:    append([]string(nil), args...),
		logPath: filepath.Join(t.TempDir(), name+".log"),
	}
	t.Cleanup(func() {
		if err := p.Stop(); err != nil {
			t.Logf("%s: stop at cleanup: %v", p.name, err)
		}
		p.mu.Lock()
		if p.logFile != nil {
			p.logFile.Close()
			p.logFile = nil
		}
		p.mu.Unlock()
		if t.Failed() {
			t.Logf("%s: last %d lines of %s:\n%s", p.name, procLogTailLines, p.logPath, p.LogTail(procLogTailLines))
		}
	})
	return p
}

// StartProcess is NewProcess followed by Start; a start failure fails the test.
func StartProcess(t testing.TB, name, bin string, args ...string) *Process {
	t.Helper()
	p := NewProcess(t, name, bin, args...)
	if err := p.Start(); err != nil {
		t.Fatalf("%v", err)
	}
	return p
}

// Name returns the name given to NewProcess.
func (p *Process) Name() string { return p.name }

// Args returns a copy of the arguments the process is (re)started with.
func (p *Process) Args() []string { return append([]string(nil), p.args...) }

// LogPath is the file the process's stdout and stderr go to; restarts append to it.
func (p *Process) LogPath() string { return p.logPath }

// Start starts the process. It is an error to start a process that is running.
func (p *Process) Start() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd != nil && !procIsClosed(p.done) {
		return fmt.Errorf("start %s: already running (pid %d)", p.name, p.cmd.Process.Pid)
	}
	if p.logFile == nil {
		f, err := os.OpenFile(p.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
		if err != nil {
			return fmt.Errorf("start %s: open log: %w", p.name, err)
		}
		p.logFile = f
	}
	p.runs++
	// A marker separates the runs of a restarted process in the shared log file.
	fmt.Fprintf(p.logFile, "=== harness: run %d of %s %s at %s\n", p.runs, p.bin, strings.Join(p.args, " "),
		time.Now().Format(time.RFC3339Nano))

	cmd := exec.Command(p.bin, p.args...)
	if len(p.Env) > 0 {
		cmd.Env = append(os.Environ(), p.Env...)
	}
	// An *os.File as stdout/stderr is handed to the child directly: no copying goroutines that
	// could outlive the test.
	cmd.Stdout = p.logFile
	cmd.Stderr = p.logFile
	cmd.SysProcAttr = procSysProcAttr()
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start %s (%s): %w", p.name, p.bin, err)
	}
	done := make(chan struct{})
	p.cmd, p.done, p.waitErr = cmd, done, nil
	go func() {
		err := cmd.Wait()
		p.mu.Lock()
		if p.done == done {
			p.waitErr = err
		}
		p.mu.Unlock()
		close(done)
	}()
	return nil
}

// Stop stops the process: SIGTERM, then SIGKILL after StopTimeout. It returns nil when the process
// exited cleanly (status 0 or killed by our SIGTERM), and an error when it had to be killed or had
// exited on its own with a failure. Stopping a process that is not running returns nil.
func (p *Process) Stop() error {
	p.mu.Lock()
	cmd, done := p.cmd, p.done
	timeout := p.StopTimeout
	p.mu.Unlock()
	if cmd == nil {
		return nil
	}
	if timeout <= 0 {
		timeout = DefaultStopTimeout
	}
	if procIsClosed(done) {
		// It exited before we asked: report how, once.
		err := p.exitError()
		p.forget(done)
		if err != nil {
			return fmt.Errorf("stop %s: had already exited: %w", p.name, err)
		}
		return nil
	}

	// Errors from Signal only mean the process exited between the check above and now; the
	// wait below tells the real story.
	_ = cmd.Process.Signal(syscall.SIGTERM)
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	select {
	case <-done:
		err := p.exitError()
		p.forget(done)
		if err != nil && !procTerminatedBy(err, syscall.SIGTERM) {
			return fmt.Errorf("stop %s: exit after SIGTERM: %w", p.name, err)
		}
		return nil
	case <-timer.C:
	}
	_ = cmd.Process.Kill()
	kill := time.NewTimer(procKillTimeout)
	defer kill.Stop()
	select {
	case <-done:
		p.forget(done)
		return fmt.Errorf("stop %s: still running %s after SIGTERM, killed", p.name, timeout)
	case <-kill.C:
		return fmt.Errorf("stop %s: pid %d survived SIGKILL for %s", p.name, cmd.Process.Pid, procKillTimeout)
	}
}

// Restart stops the process and starts it again with the same binary and arguments.
func (p *Process) Restart() error {
	if err := p.Stop(); err != nil {
		return fmt.Errorf("restart: %w", err)
	}
	if err := p.Start(); err != nil {
		return fmt.Errorf("restart: %w", err)
	}
	return nil
}

// Running reports whether the process has been started and has not exited.
func (p *Process) Running() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.cmd != nil && !procIsClosed(p.done)
}

// Pid returns the pid of the current run, or 0 if the process is not running.
func (p *Process) Pid() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd == nil || procIsClosed(p.done) {
		return 0
	}
	return p.cmd.Process.Pid
}

// Exited returns a channel closed when the current run exits (nil if never started).
func (p *Process) Exited() <-chan struct{} {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.done
}

// WaitHTTP polls url until it answers 200, the process exits, or ctx ends (procReadyTimeout when
// ctx has no deadline). Errors carry the tail of the process log so the cause is in the message.
func (p *Process) WaitHTTP(ctx context.Context, url string) error {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, procReadyTimeout)
		defer cancel()
	}
	done := p.Exited()
	if done == nil {
		return fmt.Errorf("wait for %s: not started", p.name)
	}
	client := &http.Client{Timeout: 2 * time.Second}
	ticker := time.NewTicker(procPollInterval)
	defer ticker.Stop()
	var lastErr error
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return fmt.Errorf("wait for %s: %w", p.name, err)
		}
		resp, err := client.Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			lastErr = fmt.Errorf("GET %s: %s", url, resp.Status)
		} else {
			lastErr = err
		}
		select {
		case <-done:
			return fmt.Errorf("wait for %s at %s: process exited (%v); log tail:\n%s",
				p.name, url, p.exitError(), p.LogTail(20))
		case <-ctx.Done():
			return fmt.Errorf("wait for %s at %s: %w (last error: %v); log tail:\n%s",
				p.name, url, ctx.Err(), lastErr, p.LogTail(20))
		case <-ticker.C:
		}
	}
}

// LogTail returns the last n lines of the captured output.
func (p *Process) LogTail(n int) string {
	f, err := os.Open(p.logPath)
	if err != nil {
		return fmt.Sprintf("(no log: %v)", err)
	}
	defer f.Close()
	lines := make([]string, 0, n)
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for sc.Scan() {
		if len(lines) == n {
			lines = lines[1:]
		}
		lines = append(lines, sc.Text())
	}
	if err := sc.Err(); err != nil {
		lines = append(lines, fmt.Sprintf("(reading log: %v)", err))
	}
	return strings.Join(lines, "\n")
}

// LogContains reports whether the captured output contains s (for asserting on server messages).
func (p *Process) LogContains(s string) bool {
	b, err := os.ReadFile(p.logPath)
	return err == nil && strings.Contains(string(b), s)
}

func (p *Process) exitError() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.waitErr
}

// forget drops the record of a reaped run so a second Stop is a no-op.
func (p *Process) forget(done chan struct{}) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.done == done {
		p.cmd = nil
	}
}

func procIsClosed(ch chan struct{}) bool {
	if ch == nil {
		return true
	}
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

func procTerminatedBy(err error, sig syscall.Signal) bool {
	var exitErr *exec.ExitError
	if !errors.As(err, &exitErr) {
		return false
	}
	ws, ok := exitErr.Sys().(syscall.WaitStatus)
	return ok && ws.Signaled() && ws.Signal() == sig
}

// procSysProcAttr asks Linux to SIGKILL the child when the test binary dies (a `go test -timeout`
// panic skips t.Cleanup, and an orphaned Prometheus would keep its port and data dir). The field
// only exists on Linux, so it is set by reflection to keep the package building elsewhere.
// Pdeathsig fires when the forking OS thread exits; Go only retires threads whose goroutine
// exits while locked with LockOSThread, which nothing here does.
func procSysProcAttr() *syscall.SysProcAttr {
	attr := &syscall.SysProcAttr{}
	if f := reflect.ValueOf(attr).Elem().FieldByName("Pdeathsig"); f.IsValid() && f.CanSet() {
		f.Set(reflect.ValueOf(syscall.SIGKILL))
	}
	return attr
}

// FreePort returns a TCP port on 127.0.0.1 that was free a moment ago. Another process can take
// it before it is used, so starters retry with a new port when a bind fails.
func FreePort(t testing.TB) int {
	t.Helper()
	port, err := procFreePort()
	if err != nil {
		t.Fatalf("%v", err)
	}
	return port
}

func procFreePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("find a free loopback port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// LookupBinary finds a server binary: the environment variable envVar if set, else the first of
// names on PATH. A missing binary fails the test (never skips it: CI must run the real thing)
// with a message pointing at `make tools`.
func LookupBinary(t testing.TB, envVar string, names ...string) string {
	t.Helper()
	if p := os.Getenv(envVar); p != "" {
		info, err := os.Stat(p)
		if err != nil || info.IsDir() || info.Mode().Perm()&0o111 == 0 {
			t.Fatalf("%s=%s is not an executable file (err: %v); unset it or run `make tools`", envVar, p, err)
		}
		return p
	}
	for _, n := range names {
		if p, err := exec.LookPath(n); err == nil {
			return p
		}
	}
	t.Fatalf("none of %s found on PATH and %s is not set: run `make tools` to install them "+
		"(Debian packages prometheus and prometheus-alertmanager), or set %s", strings.Join(names, ", "), envVar, envVar)
	return ""
}

// PrometheusBinary, AlertmanagerBinary and PromtoolBinary locate the Debian-packaged servers
// (or the binaries named by PROMETHEUS_BIN, ALERTMANAGER_BIN and PROMTOOL_BIN).
func PrometheusBinary(t testing.TB) string {
	t.Helper()
	return LookupBinary(t, "PROMETHEUS_BIN", "prometheus")
}

// AlertmanagerBinary: Debian names the binary prometheus-alertmanager; upstream alertmanager.
func AlertmanagerBinary(t testing.TB) string {
	t.Helper()
	return LookupBinary(t, "ALERTMANAGER_BIN", "prometheus-alertmanager", "alertmanager")
}

// PromtoolBinary locates promtool, which ships with the prometheus package.
func PromtoolBinary(t testing.TB) string {
	t.Helper()
	return LookupBinary(t, "PROMTOOL_BIN", "promtool")
}
