package main

import (
	"errors"
	"fmt"

	"github.com/spf13/cobra"
	"go.uber.org/zap"
	"gopkg.in/yaml.v3"

	"github.com/bidder/bidder/internal/app"
)

func newConfigCommand(e env) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "config",
		Short: "Check or show the effective configuration",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return usageError{errors.New("config needs a subcommand: validate or print")}
		},
	}
	var vf, pf configFlags
	var role string
	validate := &cobra.Command{
		Use:   "validate",
		Short: "Run every start-up check on the config (file, environment, flags); exit 2 naming the bad key",
		Long: `Load the config and run every check a daemon runs before it starts, for the
role given (--role, default run): decoding, values, secrets, marketplaces
for the roles that need them, the Redis URL as the client parses it, TLS
files, adapters and rules. The process is built as at start-up and torn
down again; nothing outside it is contacted (whether Redis accepts the
credentials is only known when it answers).`,
		Example: `  bidder config validate --config configs/single.yaml
  SANDBOX_TOKEN=x bidder config validate --config configs/single.yaml && echo ok
  bidder config validate --config monitor.yaml --role monitor`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			roles, err := app.DaemonRoles(role)
			if err != nil {
				return usageError{err}
			}
			cfg, err := vf.load()
			if err != nil {
				return err
			}
			if err := roles.Check(cfg); err != nil {
				return err
			}
			a, err := app.New(cmd.Context(), cfg, zap.NewNop(), "")
			if err != nil {
				return err
			}
			a.Close()
			_, err = fmt.Fprintf(e.stdout, "config OK for %s (%s): redis %s, %d marketplace(s)\n", role, cfg.Source, cfg.Redis.Mode(), len(cfg.Marketplaces))
			return err
		},
	}
	validate.Flags().StringVar(&role, "role", "run", "check for this role: run, worker, scanner or monitor")
	print := &cobra.Command{
		Use:   "print",
		Short: "Print the effective config as YAML, secrets redacted",
		Example: `  bidder config print
  REDIS_URL=redis://:pw@redis:6379/0 bidder config print --config prod.yaml   # shows redis://:xxxxx@redis:6379/0`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := pf.load()
			if err != nil {
				return err
			}
			out, err := yaml.Marshal(cfg.Redacted())
			if err != nil {
				return fmt.Errorf("config print: %w", err)
			}
			_, err = fmt.Fprintf(e.stdout, "# source: %s\n%s", cfg.Source, out)
			return err
		},
	}
	vf.add(validate, true)
	pf.add(print, true)
	cmd.AddCommand(validate, print)
	return cmd
}
