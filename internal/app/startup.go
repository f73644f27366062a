package app

import (
	"fmt"
	"strings"

	"github.com/bidder/bidder/internal/config"
	"github.com/bidder/bidder/internal/suggest"
)

// Check is what roles refuse in cfg before anything starts (config
// validate runs it too): it needs no Redis.
//
//   - No config file while the environment names a real Redis: the built-in
//     demo's in-process sandbox must never meet a real Redis, and without it
//     there is nothing to run. The message says what to pass.
//   - The in-process Redis for a process that does not both schedule and
//     work: it would share nothing with any other process, so a lone worker
//     would wait on an empty queue and a lone scanner fill one nobody reads.
//   - A worker or scheduler without a marketplace.
func (r Roles) Check(cfg config.Config) error {
	name := r.Name
	if name == "" {
		name = "this command"
	}
	if cfg.Source == config.NoFileSource {
		return &config.Error{Key: "--config", Problem: fmt.Sprintf(
			"not given and none of %s exists, but %s/%s names a Redis: the built-in demo config runs only on the in-process Redis; "+
				"pass --config FILE (e.g. configs/single.yaml), or unset %[2]s and %[3]s to run the demo",
			strings.Join(config.DefaultSearchPaths, ", "), config.EnvRedisURL, config.EnvRedisHost)}
	}
	if cfg.Redis.Mode() == config.ModeEmbedded && !(r.Scheduler && r.Worker) {
		return &config.Error{Key: "redis", Problem: fmt.Sprintf(
			"not configured: %s would get an in-process Redis of its own, shared with no other process; "+
				"set %s or redis.* (e.g. --config configs/single.yaml), or run every role in one process with 'bidder run'",
			name, config.EnvRedisURL)}
	}
	if (r.Worker || r.Scheduler) && len(cfg.Marketplaces) == 0 {
		return &config.Error{Key: "marketplaces", Problem: "none configured; " + name + " needs at least one"}
	}
	return nil
}

// DaemonRoles are the roles of each daemon subcommand.
func DaemonRoles(name string) (Roles, error) {
	switch name {
	case "run":
		return Roles{Name: name, Scheduler: true, Worker: true, Monitor: true}, nil
	case "worker":
		return Roles{Name: name, Worker: true}, nil
	case "scanner":
		return Roles{Name: name, Scheduler: true}, nil
	case "monitor":
		return Roles{Name: name, Monitor: true}, nil
	}
	return Roles{}, fmt.Errorf("no daemon role %q (run, worker, scanner, monitor)%s", name,
		suggest.Hint(name, []string{"run", "worker", "scanner", "monitor"}))
}
