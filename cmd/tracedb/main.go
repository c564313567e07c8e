// Command tracedb runs and inspects a tracedb store.
package main

import (
	"fmt"
	"os"

	"github.com/spf13/cobra"
)

func main() {
	if err := rootCmd().Execute(); err != nil {
		fmt.Fprintln(os.Stderr, "tracedb:", err)
		os.Exit(1)
	}
}

func rootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:           "tracedb",
		Short:         "An embedded trace database: store, search and inspect OpenTelemetry traces",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.AddCommand(demoCmd(), serveCmd())
	root.AddCommand(inspectCmds()...)
	root.AddCommand(maintenanceCmds()...)
	return root
}
