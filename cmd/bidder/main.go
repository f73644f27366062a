// Command bidder scans freelance marketplaces and bids on postings from many
// instances, never bidding twice on one posting.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"go.uber.org/zap"

	"github.com/bidder/bidder/internal/app"
	"github.com/bidder/bidder/internal/config"
	"github.com/bidder/bidder/internal/suggest"
	buildinfo "github.com/bidder/bidder/internal/version"
)

// version names a release when set at build time (go build -ldflags
// "-X main.version=v1.2.3"); otherwise the module version and commit the
// toolchain stamped into the binary are shown.
var version = ""

// Exit codes.
const (
	exitOK      = 0
	exitFailure = 1 // the command ran and failed
	exitUsage   = 2 // the command line was wrong
)

// env is what main hands every subcommand: where output goes, so tests can
// capture it.
type env struct {
	stdout, stderr io.Writer
}

// logger logs to stderr at info (console on a terminal, JSON elsewhere);
// stdout stays for a command's actual output.
func (e env) logger() *zap.Logger {
	log, err := app.NewLogger(config.Log{Level: "info", Format: config.LogFormatAuto}, e.stderr)
	if err != nil {
		panic(err) // a constant config: cannot happen
	}
	return log
}

// commands lists the subcommands; each lives in its own file. A function,
// not a package variable, so nothing at package level can be changed.
func commands() []func(env) *cobra.Command {
	return []func(env) *cobra.Command{
		newVersionCommand,
		newSandboxCommand,
		newRunCommand,
		newWorkerCommand,
		newScannerCommand,
		newMonitorCommand,
		newScanOnceCommand,
		newLocksCommand,
		newLedgerCommand,
		newReviewCommand,
		newBidCommand,
		newReportCommand,
		newConfigCommand,
	}
}

func main() {
	// SIGHUP's default action ends the process; the daemons handle it once
	// they run (reload or log it, internal/app), and until then, like every
	// other command, ignore it.
	signal.Ignore(syscall.SIGHUP)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	root := buildRoot(env{stdout: stdout, stderr: stderr})
	root.SetArgs(args)

	cmd, err := root.ExecuteContextC(ctx)
	if err == nil {
		return exitOK
	}
	fmt.Fprintf(stderr, "bidder: %v\n", err)
	// A bad config is the operator's to fix, like bad usage, but the message
	// already names the key: no help hint after it, so it stays one line.
	if errors.Is(err, config.ErrInvalid) {
		return exitUsage
	}
	var ue usageError
	if errors.As(err, &ue) {
		fmt.Fprintf(stderr, "Run '%s --help' for usage.\n", cmd.CommandPath())
		return exitUsage
	}
	return exitFailure
}

// buildRoot is the command tree, writing to e.
func buildRoot(e env) *cobra.Command {
	stderr := e.stderr
	root := &cobra.Command{
		Use:   "bidder",
		Short: "Scan freelance marketplaces and bid on postings from many instances, never twice on one posting",
		Example: `  # The whole system in one process: in-process Redis and sandbox marketplace
  bidder run
  open http://127.0.0.1:8080/

  # A marketplace to try it on (adapter sandbox), then every role against a real Redis
  bidder sandbox --postings 1000 --rate 50
  export REDIS_URL=redis://127.0.0.1:6379/0 SANDBOX_TOKEN=sandbox-token
  bidder config validate --config configs/single.yaml
  bidder scanner --config configs/single.yaml --http-addr 127.0.0.1:8082
  bidder worker  --config configs/single.yaml --http-addr 127.0.0.1:8081
  bidder monitor --config configs/single.yaml --http-addr 127.0.0.1:8083

  # What happened to one posting, and the ledger as a whole
  bidder ledger get --config configs/single.yaml --marketplace sandbox --posting p-000001
  bidder ledger stats --config configs/single.yaml

  # Freelancer.com (adapter freelancer): bids are real; the config is in docs/freelancer.md
  FREELANCER_TOKEN=... bidder config validate --config freelancer.yaml`,
		Version: buildinfo.Read(version).Version,
		// Errors are printed once, below, with the exit code they deserve.
		SilenceUsage:  true,
		SilenceErrors: true,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cmd.SetOut(stderr)
			_ = cmd.Help()
			return usageError{errors.New("no command given")}
		},
	}
	root.SetVersionTemplate(buildinfo.Read(version).String())
	root.SetOut(e.stdout)
	root.SetErr(e.stderr)
	root.SetFlagErrorFunc(flagError)
	for _, add := range commands() {
		root.AddCommand(add(e))
	}
	suggestSubcommands(root)
	return root
}

// usageError marks an error as the command line's fault (exit 2).
type usageError struct{ err error }

func (u usageError) Error() string { return u.err.Error() }
func (u usageError) Unwrap() error { return u.err }

// noArgs is cobra.NoArgs reported as a usage error.
func noArgs(cmd *cobra.Command, args []string) error {
	if err := cobra.NoArgs(cmd, args); err != nil {
		return usageError{err}
	}
	return nil
}

// suggestSubcommands makes every command with subcommands answer an
// unknown one with "did you mean": cobra suggests only at the top level.
func suggestSubcommands(cmd *cobra.Command) {
	if !cmd.HasSubCommands() {
		return
	}
	cmd.Args = func(cmd *cobra.Command, args []string) error {
		if len(args) == 0 {
			return nil
		}
		var names []string
		for _, c := range cmd.Commands() {
			if c.IsAvailableCommand() {
				names = append(names, c.Name())
			}
		}
		return usageError{fmt.Errorf("unknown command %q for %q%s", args[0], cmd.CommandPath(), suggest.Hint(args[0], names))}
	}
	for _, c := range cmd.Commands() {
		suggestSubcommands(c)
	}
}

// flagError reports a bad flag as a usage error, with the flag the
// operator probably meant.
func flagError(cmd *cobra.Command, err error) error {
	var ne *pflag.NotExistError
	if errors.As(err, &ne) && ne.GetSpecifiedShortnames() == "" {
		var names []string
		cmd.Flags().VisitAll(func(f *pflag.Flag) { names = append(names, f.Name) })
		cmd.InheritedFlags().VisitAll(func(f *pflag.Flag) { names = append(names, f.Name) })
		if s := suggest.Closest(ne.GetSpecifiedName(), names); len(s) > 0 {
			err = fmt.Errorf("%w; did you mean --%s?", err, strings.Join(s, " or --"))
		}
	}
	return usageError{err}
}

func newVersionCommand(e env) *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print bidder's version, commit, commit time and Go version (also: bidder --version)",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			_, err := fmt.Fprint(e.stdout, buildinfo.Read(version).String())
			return err
		},
	}
}
