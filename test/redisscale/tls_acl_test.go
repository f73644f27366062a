package redisscale

import (
	"context"
	"errors"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"

	"github.com/bidder/bidder/internal/config"
	"github.com/bidder/bidder/internal/history"
	"github.com/bidder/bidder/internal/redisconn"
	"github.com/bidder/bidder/internal/redistest"
	"github.com/bidder/bidder/ledger"
	"github.com/bidder/bidder/notify"
)

// bidderACL is the ACL rule set of bidder's Redis user: what the lock,
// ledger, budget, scanner and asynq (client, server, inspector) use, found
// by running the whole pipeline under the user (TestTLSAndACLUser) and
// reading INFO commandstats. docs/redis.md shows it as an ACL SETUSER line.
const bidderACL = "on resetkeys ~bid_* ~asynq:* resetchannels &asynq:* -@all " +
	// connection: go-redis' HELLO/AUTH/PING, asynq's health check; on Redis
	// >= 7.2 also +client|setinfo (go-redis sends it and ignores a refusal)
	"+hello +auth +ping +client|setname +time " +
	// the lock, ledger, budget, scanner and asynq run Lua scripts
	"+eval +evalsha +script|load +script|exists " +
	// inside those scripts, and direct calls (INFO commandstats of a full run)
	"+get +set +setex +del +exists +expire +expireat +pexpire +incr " +
	"+hget +hmget +hset +hsetnx +hdel +hgetall +hexists +hincrby +incrby +mget " +
	"+lpush +lrem +rpoplpush +lrange +llen +lindex " +
	// the notification outbox and its sweeper, the status page's history
	"+rpush +lpop +ltrim " +
	// operators' reads: `bidder locks list`, the status page
	"+scan +info " +
	"+zadd +zrem +zrangebyscore +zremrangebyscore +zrange +zcard +zscore " +
	"+sadd +srem +smembers +sismember +scard " +
	// asynq's cancelation channel, inspector / asynqmon reads
	"+subscribe +unsubscribe +publish +memory|usage +type +ttl +pttl " +
	// Cluster clients learn the slot map
	"+cluster|slots +cluster|shards +cluster|nodes +cluster|keyslot +cluster|info +readonly"

const aclPassword = "acl-pw-2f9d1c0b7e"

// TestTLSAndACLUser runs the whole pipeline (scanner, asynq, lock, ledger)
// over TLS with a client certificate, as an ACL user limited to bidderACL,
// through the config and client bidder itself builds. Then a wrong
// password, an untrusted server certificate and a missing client
// certificate each give one clear line without the secret.
func TestTLSAndACLUser(t *testing.T) {
	ca := redistest.NewCA(t, "bidder test CA")
	ca.AuthClients = "yes"
	rs := redistest.Start(t, redistest.WithTLS(ca))
	admin := rs.Client(t)
	ctx := context.Background()
	if err := admin.Do(ctx, append([]any{"acl", "setuser", "bidder"}, aclArgs(bidderACL, aclPassword)...)...).Err(); err != nil {
		t.Fatalf("ACL SETUSER: %v", err)
	}
	if err := admin.ConfigResetStat(ctx).Err(); err != nil {
		t.Fatal(err)
	}

	cfg := config.Defaults()
	cfg.Redis.URL = "rediss://" + rs.Addr() + "/0"
	cfg.Redis.Username, cfg.Redis.Password = "bidder", aclPassword
	cfg.Redis.HashTags = true
	cfg.Redis.TLS = config.TLS{CAFile: ca.CA, CertFile: ca.ClientCert, KeyFile: ca.ClientKey}
	conn, err := redisconn.Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if err := conn.Ping(ctx, 2*time.Second); err != nil {
		t.Fatal(err)
	}
	t.Logf("connected: %s", conn.Where)

	m := newMarket(t, 60, 5*time.Millisecond)
	runPipeline(t, conn.Client, m, true, 60*time.Second, nil, nil)
	st := assertNoDuplicates(t, m)
	if st.Bids != 60 {
		t.Fatalf("%d bids for 60 postings", st.Bids)
	}
	aclBeyondThePipeline(t, conn.Client)
	if log := admin.Do(ctx, "acl", "log").Val(); log != nil && len(log.([]any)) > 0 {
		t.Fatalf("ACL denials while running the pipeline: %v", log)
	}
	t.Logf("commands used: %s", usedCommands(t, rs))

	// The same user cannot touch keys outside bidder's patterns.
	if err := conn.Client.Set(ctx, "other_app:key", "x", 0).Err(); err == nil || !strings.Contains(err.Error(), "NOPERM") {
		t.Fatalf("write outside bid_*/asynq:* allowed: %v", err)
	}

	for _, c := range []struct {
		name   string
		tune   func(*config.Config)
		reason string
	}{
		{"wrong password", func(c *config.Config) { c.Redis.Password = "wrong-" + aclPassword }, "authentication failed"},
		{"unknown user", func(c *config.Config) { c.Redis.Username = "nobody" }, "authentication failed"},
		{"untrusted certificate", func(c *config.Config) { c.Redis.TLS.CAFile = redistest.NewCA(t, "other CA").CA }, "unknown authority"},
		{"wrong server name", func(c *config.Config) { c.Redis.TLS.ServerName = "redis.example.com" }, "not valid for the host"},
		{"no client certificate", func(c *config.Config) { c.Redis.TLS.CertFile, c.Redis.TLS.KeyFile = "", "" }, "refused the handshake"},
	} {
		t.Run(c.name, func(t *testing.T) {
			bad := cfg
			c.tune(&bad)
			bc, err := redisconn.Open(bad)
			if err != nil {
				t.Fatal(err)
			}
			defer bc.Close()
			err = bc.Ping(ctx, 2*time.Second)
			msg := ""
			if err != nil {
				msg = err.Error()
			}
			if !errors.Is(err, redisconn.ErrMisconfigured) || !strings.Contains(msg, c.reason) ||
				!strings.Contains(msg, "redis") || strings.Contains(msg, aclPassword) || strings.Contains(msg, "\n") {
				t.Fatalf("got %v, want one line with %q and no password", err, c.reason)
			}
			t.Logf("%s", msg)

			// At start the daemon does not wait it out: WaitReady returns
			// the same error at once, and the daemon exits 2 with it.
			wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			defer cancel()
			start := time.Now()
			werr := bc.WaitReady(wctx, zap.NewNop())
			if !errors.Is(werr, redisconn.ErrMisconfigured) || time.Since(start) > 5*time.Second {
				t.Fatalf("WaitReady after %s: %v, want ErrMisconfigured at once", time.Since(start), werr)
			}
		})
	}
}

func aclArgs(rules, pw string) []any {
	out := []any{"reset"}
	for _, f := range strings.Fields(rules) {
		out = append(out, f)
	}
	return append(out, ">"+pw)
}

// usedCommands lists the commands INFO commandstats counted (inside Lua
// scripts too), for keeping bidderACL honest.
func usedCommands(t *testing.T, rs *redistest.Server) string {
	t.Helper()
	info := rs.Client(t).Info(context.Background(), "commandstats").Val()
	var cmds []string
	for _, l := range strings.Split(info, "\n") {
		if name, ok := strings.CutPrefix(l, "cmdstat_"); ok {
			name, _, _ = strings.Cut(name, ":")
			cmds = append(cmds, name)
		}
	}
	sort.Strings(cmds)
	return strings.Join(cmds, " ")
}

// aclBeyondThePipeline runs, as the ACL user, what the pipeline above does
// not: the process-level notification events and a sweep of the outbox,
// the status page's history, an operator's lock listing. Each fails on a
// command bidderACL lacks (and the ACL log check after it says which).
func aclBeyondThePipeline(t *testing.T, rdb redis.UniversalClient) {
	t.Helper()
	ctx := context.Background()
	led := ledger.New(rdb, ledger.WithHashTags(true), ledger.WithNotifications(true))
	if err := led.NotifyBudgetSpent(ctx, mpID, time.Now().Add(time.Hour)); err != nil {
		t.Fatalf("budget_spent as the ACL user: %v", err)
	}
	if err := led.NotifyUnauthorized(ctx, mpID, time.Now(), "test"); err != nil {
		t.Fatalf("marketplace_unauthorized as the ACL user: %v", err)
	}
	client := asynq.NewClientFromRedisClient(rdb)
	defer client.Close()
	hook := notify.NewWebhook("hook", "http://127.0.0.1:9/unused", "secret", nil)
	sw := notify.NewSweeper(rdb, client, led, notify.Config{Marketplaces: []string{mpID}, Routes: []notify.Route{{Channel: hook}}}, nil, nil)
	if err := sw.Sweep(ctx); err != nil {
		t.Fatalf("notification sweep as the ACL user: %v", err)
	}
	rec := history.NewRecorder(rdb)
	rec.Decided(mpID, history.Decision{Posting: "p-1", State: "placed", Amount: 10, Currency: "USD"})
	if err := rec.Flush(ctx); err != nil {
		t.Fatalf("history flush as the ACL user: %v", err)
	}
	if _, _, err := rdb.Scan(ctx, 0, "bid_lock:*", 100).Result(); err != nil {
		t.Fatalf("SCAN as the ACL user: %v", err)
	}
}
