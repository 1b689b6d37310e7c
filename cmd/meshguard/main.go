// Command meshguard keeps an Istio mesh honest: it lints Istio configuration in CI, rejects bad
// objects at admission, and checks live traffic against what the configuration promises.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"

	"github.com/spf13/cobra"
)

// exitError carries a process exit code out of a command: 1 for findings at or above
// --fail-on, 2 for usage errors and unreadable input.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string {
	if e.err == nil {
		return fmt.Sprintf("exit status %d", e.code)
	}
	return e.err.Error()
}

func (e *exitError) Unwrap() error { return e.err }

func usageError(err error) error { return &exitError{code: 2, err: err} }

func newRootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:           "meshguard",
		Short:         "Keep an Istio mesh honest: lint, admission webhook and runtime checks with one rule set",
		Version:       readBuildInfo(debug.ReadBuildInfo).String(),
		SilenceUsage:  true,
		SilenceErrors: true,
		Args:          cobra.ArbitraryArgs,
		RunE:          requireSubcommand,
	}
	root.SetVersionTemplate("{{.Version}}\n")
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageError(err) })
	root.SetHelpCommand(newHelpCmd())
	root.AddCommand(newLintCmd(), newPoliciesCmd(), newServeCmd(), newAuditCmd(), newCheckCmd(), newGraphCmd(), newVersionCmd())
	return root
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := newRootCmd().ExecuteContext(ctx)
	stop()
	if err == nil {
		return
	}
	var ee *exitError
	if errors.As(err, &ee) {
		if ee.err != nil {
			fmt.Fprintln(os.Stderr, "meshguard:", ee.err)
		}
		os.Exit(ee.code)
	}
	fmt.Fprintln(os.Stderr, "meshguard:", err)
	// Cobra's own argument errors (unknown command, wrong number of args) are usage errors.
	os.Exit(2)
}
