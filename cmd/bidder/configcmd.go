package main

import (
	"errors"
	"fmt"

	"github.com/spf13/cobra"
	"gopkg.in/yaml.v3"
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
	validate := &cobra.Command{
		Use:   "validate",
		Short: "Load and check the config (file, environment, flags); exit 2 naming the bad key",
		Example: `  bidder config validate --config configs/single.yaml
  SANDBOX_TOKEN=x bidder config validate --config configs/single.yaml && echo ok`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := vf.load()
			if err != nil {
				return err
			}
			_, err = fmt.Fprintf(e.stdout, "config OK (%s): redis %s, %d marketplace(s)\n", cfg.Source, cfg.Redis.Mode(), len(cfg.Marketplaces))
			return err
		},
	}
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
