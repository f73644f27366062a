package deployments_test

import (
	"context"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// TestRedisConf starts the machine's redis-server on deployments/redis/redis.conf
// (only the address and data dir overridden, and the password fed the way
// the compose file does) and reads back what the bid guarantee needs. It
// proves the file parses with a real Redis and that no later line undoes an
// earlier one.
func TestRedisConf(t *testing.T) {
	srv, err := exec.LookPath("redis-server")
	if err != nil {
		if os.Getenv("BIDDER_REQUIRE_REDIS") == "1" {
			t.Fatal("redis-server not found and BIDDER_REQUIRE_REDIS=1")
		}
		t.Skip("redis-server not found (apt-get install redis-server); set BIDDER_REQUIRE_REDIS=1 to fail instead")
	}
	conf, err := os.ReadFile("redis/redis.conf")
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	const pw = "deploy-test-pw"
	// Redis changes directory as it reads `dir`, so the file's /data is
	// replaced in place; for the rest later lines win: bind and port for
	// the test, the password as compose adds it.
	if !strings.Contains(string(conf), "\ndir /data\n") {
		t.Fatal("redis.conf: no `dir /data` line (the volume the compose file mounts)")
	}
	stdin := strings.Replace(string(conf), "\ndir /data\n", "\ndir "+t.TempDir()+"\n", 1) +
		"\nbind 127.0.0.1\nport " + strconv.Itoa(port) + "\nrequirepass " + pw + "\n"
	cmd := exec.Command(srv, "-")
	cmd.Stdin = strings.NewReader(stdin)
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	t.Cleanup(func() { _ = cmd.Process.Kill(); <-exited })

	rdb := redis.NewClient(&redis.Options{Addr: net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), Password: pw, MaxRetries: -1})
	defer rdb.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for rdb.Ping(ctx).Err() != nil {
		select {
		case <-exited:
			t.Fatalf("redis-server rejected redis.conf:\n%s", out.String())
		case <-ctx.Done():
			t.Fatalf("redis-server did not answer:\n%s", out.String())
		case <-time.After(50 * time.Millisecond):
		}
	}
	want := map[string]string{
		"appendonly":                "yes",
		"appendfsync":               "always",
		"no-appendfsync-on-rewrite": "no",
		"maxmemory-policy":          "noeviction",
		"min-replicas-to-write":     "1",
		"replica-serve-stale-data":  "no",
	}
	for k, v := range want {
		got, err := rdb.ConfigGet(ctx, k).Result()
		if err != nil {
			t.Fatal(err)
		}
		if got[k] != v {
			t.Errorf("%s = %q, want %q", k, got[k], v)
		}
	}
	// asynq needs >= 6.2 (ZRANGE BYSCORE); the file is written for that too.
	info, err := rdb.Info(ctx, "server").Result()
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(info, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(l), "redis_version:"); ok {
			parts := strings.SplitN(v, ".", 3)
			maj, _ := strconv.Atoi(parts[0])
			mnr, _ := strconv.Atoi(parts[1])
			if maj < 6 || (maj == 6 && mnr < 2) {
				t.Errorf("redis-server %s here; the deployment needs >= 6.2", v)
			}
		}
	}
	// min-replicas-to-write 1 without replicas refuses writes: the reason
	// the compose demo, which has no replica, sets it to 0.
	if err := rdb.Set(ctx, "k", "v", 0).Err(); err == nil || !strings.Contains(err.Error(), "NOREPLICAS") {
		t.Errorf("a write without replicas: %v, want NOREPLICAS", err)
	}
}
