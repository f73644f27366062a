package redistest

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// WithReplicaOf starts the server as a replica of m (masterauth from m's
// password). Use WaitReplicas on the master to know it is in sync.
func WithReplicaOf(m *Server) Option { return func(c *config) { c.replicaOf = m } }

// WithCluster starts the server as a Redis Cluster node (cluster-enabled
// yes, node timeout 1.5s); StartCluster joins such nodes.
func WithCluster() Option { return func(c *config) { c.cluster = true } }

type sentinelConf struct {
	master     *Server
	masterName string
	quorum     int
	downAfter  time.Duration
	failover   time.Duration
}

// StartSentinel starts a Redis Sentinel (redis-server sentinel.conf
// --sentinel) monitoring master as masterName with the given quorum. It
// declares the master down after 1s without answers and fails over within
// a few seconds.
func StartSentinel(t testing.TB, master *Server, masterName string, quorum int) *Server {
	t.Helper()
	return Start(t, func(c *config) {
		c.sentinel = &sentinelConf{master: master, masterName: masterName, quorum: quorum,
			downAfter: time.Second, failover: 5 * time.Second}
	})
}

func (s *Server) sentinelArgs() []string {
	sc := s.cfg.sentinel
	m := sc.master
	conf := filepath.Join(s.dir, "sentinel.conf")
	if _, err := os.Stat(conf); err != nil {
		// Sentinel rewrites its config file (state, known replicas and
		// sentinels); only the first start writes it.
		lines := []string{
			"sentinel resolve-hostnames no",
			fmt.Sprintf("sentinel monitor %s 127.0.0.1 %d %d", sc.masterName, m.port, sc.quorum),
			fmt.Sprintf("sentinel down-after-milliseconds %s %d", sc.masterName, sc.downAfter.Milliseconds()),
			fmt.Sprintf("sentinel failover-timeout %s %d", sc.masterName, sc.failover.Milliseconds()),
			fmt.Sprintf("sentinel parallel-syncs %s 1", sc.masterName),
		}
		if m.cfg.password != "" {
			lines = append(lines, fmt.Sprintf("sentinel auth-pass %s %s", sc.masterName, m.cfg.password))
		}
		if err := os.WriteFile(conf, []byte(strings.Join(lines, "\n")+"\n"), 0o600); err != nil {
			s.t.Fatalf("redistest: write sentinel.conf: %v", err)
		}
	}
	return []string{conf, "--sentinel",
		"--port", strconv.Itoa(s.port), "--bind", "127.0.0.1", "--dir", s.dir,
		"--daemonize", "no", "--logfile", filepath.Join(s.dir, "redis.log"), "--protected-mode", "no"}
}

// WaitReplicas polls until the server reports at least n replicas in
// state online (initial sync done), or fails the test.
func (s *Server) WaitReplicas(t testing.TB, n int, within time.Duration) {
	t.Helper()
	c := redis.NewClient(s.Options())
	defer c.Close()
	deadline := time.Now().Add(within)
	for {
		info, err := c.Info(context.Background(), "replication").Result()
		if err == nil && strings.Count(info, "state=online") >= n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("redistest: %s has not %d replica(s) online within %s: %v\n%s", s.Addr(), n, within, err, info)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Cluster is a Redis Cluster of test servers.
type Cluster struct {
	Masters  []*Server
	Replicas []*Server // Replicas[i] replicates some master (redis-cli decides)
}

// StartCluster starts masters+masters*replicasPerMaster cluster nodes and
// joins them with `redis-cli --cluster create`, then waits until every node
// reports cluster_state:ok and agrees on the slot map.
func StartCluster(t testing.TB, masters, replicasPerMaster int, opts ...Option) *Cluster {
	t.Helper()
	cli := CLI(t)
	c := &Cluster{}
	var addrs []string
	for i := 0; i < masters*(1+replicasPerMaster); i++ {
		s := Start(t, append([]Option{WithCluster()}, opts...)...)
		if i < masters {
			c.Masters = append(c.Masters, s)
		} else {
			c.Replicas = append(c.Replicas, s)
		}
		addrs = append(addrs, s.Addr())
	}
	args := append([]string{"--cluster", "create"}, addrs...)
	args = append(args, "--cluster-replicas", strconv.Itoa(replicasPerMaster), "--cluster-yes")
	if out, err := exec.Command(cli, args...).CombinedOutput(); err != nil {
		t.Fatalf("redistest: redis-cli --cluster create: %v\n%s", err, out)
	}
	c.WaitOK(t, 30*time.Second)
	return c
}

// Nodes are all servers of the cluster.
func (c *Cluster) Nodes() []*Server { return append(append([]*Server{}, c.Masters...), c.Replicas...) }

// Addrs are the addresses of all running nodes (seed addresses).
func (c *Cluster) Addrs() []string {
	var out []string
	for _, s := range c.Nodes() {
		out = append(out, s.Addr())
	}
	return out
}

// WaitOK polls until every running node says cluster_state:ok and sees
// all 16384 slots assigned.
func (c *Cluster) WaitOK(t testing.TB, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		bad := ""
		for _, s := range c.Nodes() {
			if !s.Running() {
				continue
			}
			cl := redis.NewClient(s.Options())
			info, err := cl.ClusterInfo(context.Background()).Result()
			cl.Close()
			if err != nil || !strings.Contains(info, "cluster_state:ok") || !strings.Contains(info, "cluster_slots_ok:16384") {
				bad = fmt.Sprintf("%s: %v %s", s.Addr(), err, strings.ReplaceAll(info, "\r\n", " "))
				break
			}
		}
		if bad == "" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("redistest: cluster not ok within %s: %s", within, bad)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// CLI returns the redis-cli path next to redis-server, or skips/fails like
// Binary.
func CLI(t testing.TB) string {
	t.Helper()
	bin := Binary(t)
	p := filepath.Join(filepath.Dir(bin), "redis-cli")
	if _, err := os.Stat(p); err == nil {
		return p
	}
	if p, err := exec.LookPath("redis-cli"); err == nil {
		return p
	}
	msg := "redis-cli not found next to " + bin
	if os.Getenv(RequireEnv) == "1" {
		t.Fatalf("%s, and %s=1 forbids skipping", msg, RequireEnv)
	}
	t.Skip(msg)
	return ""
}
