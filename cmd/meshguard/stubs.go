package main

import (
	"errors"

	"github.com/spf13/cobra"
)

func notYet(use, short string) *cobra.Command {
	return &cobra.Command{Use: use, Short: short, RunE: func(*cobra.Command, []string) error {
		return errors.New(use + " is not built yet")
	}}
}

func newServeCmd() *cobra.Command { return notYet("serve", "Run the admission webhook") }
func newAuditCmd() *cobra.Command {
	return notYet("audit", "Report findings for every object in a cluster")
}
func newCheckCmd() *cobra.Command {
	return notYet("check", "Check live traffic against the configuration")
}
func newGraphCmd() *cobra.Command { return notYet("graph", "Print the observed service graph") }
