package main

import (
	"fmt"
	"net"

	"github.com/spf13/cobra"
	"go.uber.org/zap"

	"github.com/bidder/bidder/marketplace/sandbox"
)

func newSandboxCommand(e env) *cobra.Command {
	var cfg sandbox.ServerConfig
	cmd := &cobra.Command{
		Use:   "sandbox",
		Short: "Run the sandbox marketplace (sandbox API v1) for demos, load and fault runs",
		Long: `Run an in-memory marketplace that speaks the sandbox API v1, with seeded
posting generation and fault injection, until SIGINT or SIGTERM.

GET /v1/stats (with any accepted token) tells how many bids were made and how
many postings got more than one: with --idempotency off --duplicates accept,
only bidder itself can keep that number at zero.`,
		Example: `  # 1000 postings now, 50 more every second, default token "sandbox-token"
  bidder sandbox --postings 1000 --rate 50

  # The strictest fault run: keys ignored, duplicates accepted, 10% ambiguous bids
  bidder sandbox --postings 1000 --rate 50 --idempotency off --duplicates accept --ambiguous-rate 0.1

  # Slow and flaky, postings closing after two minutes, two accounts
  bidder sandbox --latency 5ms..80ms --error-rate 0.05 --rate-limit-rate 0.02 --close-after 2m --tokens tok-a,tok-b

  # Outcomes: every bid is awarded (30%, chosen by --seed) or rejected a minute after it was placed
  bidder sandbox --postings 1000 --decide-after 1m --award-rate 0.3

  curl -H 'Authorization: Bearer sandbox-token' http://127.0.0.1:9090/v1/stats`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := cfg.Validate(); err != nil {
				return usageError{err}
			}
			log := e.logger().Named("sandbox")
			defer func() { _ = log.Sync() }()
			cfg.Logger = log

			srv, err := sandbox.NewServer(cfg)
			if err != nil {
				return err
			}
			ln, err := net.Listen("tcp", cfg.Addr)
			if err != nil {
				return fmt.Errorf("sandbox: %w", err)
			}
			log.Info("sandbox marketplace listening",
				zap.String("url", "http://"+ln.Addr().String()),
				zap.Object("config", srv.Config()))
			err = srv.Serve(cmd.Context(), ln)
			st := srv.Stats()
			log.Info("sandbox marketplace stopped",
				zap.Int64("postings", st.Postings), zap.Int64("bids", st.Bids),
				zap.Int64("postings_with_multiple_bids", st.PostingsWithMultipleBids),
				zap.Int64("duplicate_bids", st.DuplicateBids), zap.Int64("awarded_bids", st.AwardedBids),
				zap.Int64("rejected_bids", st.RejectedBids), zap.Int64("retracted_bids", st.RetractedBids), zap.Error(err))
			return err
		},
	}
	cfg.AddFlags(cmd.Flags())
	return cmd
}
