package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// slowPolicy is a Rego rule of 10^12 steps: without a deadline or an interrupt, lint ran it for
// as long as it was let (and past SIGTERM).
const slowPolicy = `package acme.slow

import rego.v1

deny contains msg if {
	n := count([x | some x in numbers.range(1, 1000000); some y in numbers.range(1, 1000000); x == y + 2000000])
	msg := sprintf("%d", [n])
}
`

func TestLintStopsWhenItIsToldTo(t *testing.T) {
	pol := t.TempDir()
	writeFile(t, pol, "slow.rego", slowPolicy)
	dir := t.TempDir()
	vs := writeFile(t, dir, "vs.yaml", badVS)
	cfg := writeFile(t, dir, "config.yaml", "evaluation: {timeout: 10m}\n")

	// main cancels the command's context on SIGINT and SIGTERM; this is that cancellation.
	ctx, cancel := context.WithCancel(context.Background())
	cmd := newRootCmd()
	var out, errb bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetErr(&errb)
	cmd.SetArgs([]string{"lint", "--config", cfg, "--policy", pol, vs})
	done := make(chan error, 1)
	go func() { done <- cmd.ExecuteContext(ctx) }()
	time.Sleep(300 * time.Millisecond)
	cancel()
	err := <-done
	require.Error(t, err, "a cancelled lint must not report as if it had checked everything")
	require.ErrorIs(t, err, context.Canceled)
	require.Empty(t, out.String(), "no report from a run that did not finish")
}

func TestLintRefusesAnObjectWhoseEvaluationOutlastsTheTimeout(t *testing.T) {
	pol := t.TempDir()
	writeFile(t, pol, "slow.rego", slowPolicy)
	dir := t.TempDir()
	vs := writeFile(t, dir, "vs.yaml", badVS)
	cfg := writeFile(t, dir, "config.yaml", "evaluation: {timeout: 300ms}\n")
	out, stderr, code := run(t, "", "lint", "--config", cfg, "--policy", pol, vs)
	require.Equal(t, 1, code, stderr)
	require.Contains(t, out, "MG002")
	require.Contains(t, out, "MG101", "the rules that ran before the deadline still report")
	require.True(t, strings.Contains(out, "time budget"), out)
}
