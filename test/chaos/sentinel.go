package chaos

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// sentinelToken is the claim of a fault that changes the data nodes
// (kill_master, replica_down): one at a time.
const sentinelToken = "sentinel-nodes"

// sentinelMasterName is the name the sentinels monitor the master under
// (redis.sentinel.master_name of the generated bidder.yaml).
const sentinelMasterName = "bidder"

// redisNode is one data node of the sentinel topology. Its port and data
// directory stay; its role changes with failovers.
type redisNode struct {
	proc *Proc
	port int
	addr string
	base []string // redis-server arguments without --replicaof
}

// sentinelTopo is the Redis of the sentinel topology: data nodes (nodes[0]
// is the first master) and 3 sentinels.
type sentinelTopo struct {
	nodes     []*redisNode
	sentinels []*Proc
	addrs     []string // the sentinels' addresses

	mu        sync.Mutex
	failovers []string // one line per kill_master, for the report
}

func nodeArgs(port int, dataDir string, persist bool) []string {
	args := []string{
		"--port", itoa(port), "--bind", "127.0.0.1", "--dir", dataDir,
		"--save", "", "--daemonize", "no", "--protected-mode", "no",
		"--maxmemory-policy", "noeviction",
		// A (re)started replica syncs at once, not after 5 s.
		"--repl-diskless-sync-delay", "0",
	}
	if persist {
		return append(args, "--appendonly", "yes", "--appendfsync", "always")
	}
	return append(args, "--appendonly", "no")
}

// startSentinelTopology starts the master, cfg.Replicas replicas and three
// sentinels (quorum 2, down-after 1 s, failover-timeout 5 s), and waits
// until every sentinel knows every replica and the two other sentinels, so
// that a failover can be agreed on from the first fault.
func (h *Harness) startSentinelTopology() error {
	cfg := h.cfg
	t := &sentinelTopo{}
	h.topo = t
	for i := 0; i <= cfg.Replicas; i++ {
		port, err := FreePort()
		if err != nil {
			return err
		}
		dir := filepath.Join(h.logDir, fmt.Sprintf("redis-%d-data", i))
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return err
		}
		n := &redisNode{port: port, addr: fmt.Sprintf("127.0.0.1:%d", port), base: nodeArgs(port, dir, cfg.Persistence)}
		n.proc = &Proc{Name: fmt.Sprintf("redis-%d", i), Bin: cfg.RedisBin, Dir: h.logDir, Args: n.base}
		if i > 0 {
			n.proc.Args = replicaArgs(n.base, t.nodes[0].port)
		}
		if err := startRedis(n.proc, n.addr); err != nil {
			return err
		}
		t.nodes = append(t.nodes, n)
	}
	if err := waitOnline(t.nodes[0].addr, cfg.Replicas, 30*time.Second); err != nil {
		return fmt.Errorf("replicas: %w", err)
	}
	for i := 0; i < 3; i++ {
		port, err := FreePort()
		if err != nil {
			return err
		}
		dir := filepath.Join(h.logDir, fmt.Sprintf("sentinel-%d-data", i+1))
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return err
		}
		conf := filepath.Join(dir, "sentinel.conf")
		lines := []string{
			"sentinel resolve-hostnames no",
			fmt.Sprintf("sentinel monitor %s 127.0.0.1 %d 2", sentinelMasterName, t.nodes[0].port),
			fmt.Sprintf("sentinel down-after-milliseconds %s 1000", sentinelMasterName),
			fmt.Sprintf("sentinel failover-timeout %s 5000", sentinelMasterName),
			fmt.Sprintf("sentinel parallel-syncs %s 1", sentinelMasterName),
		}
		if err := os.WriteFile(conf, []byte(strings.Join(lines, "\n")+"\n"), 0o644); err != nil {
			return err
		}
		addr := fmt.Sprintf("127.0.0.1:%d", port)
		p := &Proc{Name: fmt.Sprintf("sentinel-%d", i+1), Bin: cfg.RedisBin, Dir: h.logDir,
			Args: []string{conf, "--sentinel", "--port", itoa(port), "--bind", "127.0.0.1", "--dir", dir,
				"--daemonize", "no", "--protected-mode", "no"}}
		if err := startRedis(p, addr); err != nil {
			return err
		}
		t.sentinels = append(t.sentinels, p)
		t.addrs = append(t.addrs, addr)
	}
	deadline := time.Now().Add(40 * time.Second)
	for {
		why := t.sentinelsReady(cfg.Replicas)
		if why == "" {
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("sentinels not ready after 40s: %s", why)
		}
		time.Sleep(200 * time.Millisecond)
	}
	h.redisAddr = t.nodes[0].addr
	h.rdb = redis.NewFailoverClient(&redis.FailoverOptions{
		MasterName: sentinelMasterName, SentinelAddrs: t.addrs, PoolSize: 8,
		DialTimeout: 500 * time.Millisecond, ReadTimeout: 2 * time.Second, WriteTimeout: 2 * time.Second,
		MaxRetries: 5,
	})
	return nil
}

func replicaArgs(base []string, masterPort int) []string {
	return append(append([]string{}, base...), "--replicaof", "127.0.0.1", itoa(masterPort))
}

// sentinelsReady is "" when every sentinel sees the master, n replicas and
// the two other sentinels.
func (t *sentinelTopo) sentinelsReady(n int) string {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	for _, a := range t.addrs {
		c := redis.NewSentinelClient(&redis.Options{Addr: a})
		reps, err1 := c.Replicas(ctx, sentinelMasterName).Result()
		others, err2 := c.Sentinels(ctx, sentinelMasterName).Result()
		c.Close()
		if err1 != nil || err2 != nil || len(reps) != n || len(others) != 2 {
			return fmt.Sprintf("%s: %d replicas, %d other sentinels (%v %v)", a, len(reps), len(others), err1, err2)
		}
	}
	return ""
}

// masterPort asks every sentinel for the master's address and returns the
// port a majority names (0 if none does).
func (t *sentinelTopo) masterPort() int {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	votes := map[int]int{}
	for _, a := range t.addrs {
		c := redis.NewSentinelClient(&redis.Options{Addr: a, DialTimeout: 300 * time.Millisecond})
		res, err := c.GetMasterAddrByName(ctx, sentinelMasterName).Result()
		c.Close()
		if err == nil && len(res) == 2 {
			if p, err := strconv.Atoi(res[1]); err == nil {
				votes[p]++
			}
		}
	}
	for p, v := range votes {
		if v >= 2 {
			return p
		}
	}
	return 0
}

func (t *sentinelTopo) node(port int) *redisNode {
	for _, n := range t.nodes {
		if n.port == port {
			return n
		}
	}
	return nil
}

// waitOnline waits until the Redis at addr reports at least n replicas in
// state online.
func waitOnline(addr string, n int, d time.Duration) error {
	c := redis.NewClient(&redis.Options{Addr: addr, MaxRetries: -1, DialTimeout: 300 * time.Millisecond})
	defer c.Close()
	deadline := time.Now().Add(d)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		info, err := c.Info(ctx, "replication").Result()
		cancel()
		if err == nil && strings.Count(info, "state=online") >= n {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s: not %d replicas online after %s (%v): %s", addr, n, d, err, strings.ReplaceAll(info, "\r\n", " "))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// waitMasterOnline waits until the node the sentinels name as master
// reports n replicas online, and returns it (or the last one named).
func (t *sentinelTopo) waitMasterOnline(n int, d time.Duration) (*redisNode, error) {
	deadline := time.Now().Add(d)
	var last *redisNode
	for {
		if m := t.node(t.masterPort()); m != nil {
			last = m
			left := time.Until(deadline)
			if left > 2*time.Second {
				left = 2 * time.Second
			}
			if waitOnline(m.addr, n, max(left, 100*time.Millisecond)) == nil && t.node(t.masterPort()) == m {
				return m, nil
			}
		} else {
			time.Sleep(100 * time.Millisecond)
		}
		if time.Now().After(deadline) {
			return last, fmt.Errorf("the master has not %d replicas online after %s (%s)", n, d, t.nodeRoles())
		}
	}
}

// killMaster is the kill_master fault: SIGKILL the node the sentinels call
// master, wait for them to promote another, then start the old master
// again as a replica of the new one (after a moment, as an orchestrator
// would) and wait until every replica is online again. Only one runs at a
// time; the caller tracks it with wg.
func (h *Harness) killMaster(wg *sync.WaitGroup) {
	t := h.topo
	const token = sentinelToken
	if !h.claim(token) {
		return
	}
	old := t.node(t.masterPort())
	if old == nil || !old.proc.Running() {
		h.release(token)
		return
	}
	back := h.dur(200*time.Millisecond, time.Second) // h.rng is the injector's alone
	killed := time.Now()
	old.proc.Kill()
	h.record(FaultKillMaster, "%s (%s) killed", old.proc.Name, old.addr)
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer h.release(token)
		line := fmt.Sprintf("%s killed at %s", old.proc.Name, killed.Format("15:04:05.000"))
		defer func() {
			t.mu.Lock()
			t.failovers = append(t.failovers, line)
			t.mu.Unlock()
		}()
		var nm *redisNode
		for time.Since(killed) < 30*time.Second {
			if p := t.masterPort(); p != 0 && p != old.port {
				nm = t.node(p)
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
		if nm == nil {
			// No promotion: bring it back as it was, so the run can go on.
			h.record("failover_missing", "%s: no replica promoted within 30s; restarting it as master", old.proc.Name)
			line += "; NO promotion within 30 s, restarted as master"
			old.proc.Args = old.base
			if err := startRedis(old.proc, old.addr); err != nil {
				h.record("restart_error", "%s: %v", old.proc.Name, err)
			}
			return
		}
		promoted := time.Since(killed)
		line += fmt.Sprintf("; %s promoted after %.1fs", nm.proc.Name, promoted.Seconds())
		h.count("failovers", 1, "%s promoted after %s", nm.proc.Name, promoted.Round(time.Millisecond))
		time.Sleep(back)
		// Started with --replicaof the new master: it loads its AOF and then
		// resyncs; Sentinel would reconfigure it too, but only seconds
		// later on a loaded machine, and WAIT needs the replica.
		old.proc.Args = replicaArgs(old.base, nm.port)
		if err := startRedis(old.proc, old.addr); err != nil {
			h.record("restart_error", "%s: %v", old.proc.Name, err)
			line += "; restart failed: " + err.Error()
			return
		}
		// Sentinel may fail over again on its own (a loaded machine and a
		// 1 s down-after): wait on whichever node is master now.
		cur, err := t.waitMasterOnline(h.cfg.Replicas, 30*time.Second)
		if cur != nil && cur != nm {
			line += fmt.Sprintf("; then Sentinel failed over again on its own, to %s", cur.proc.Name)
		}
		if err != nil {
			h.record("resync_slow", "%v", err)
			line += "; replicas not all online within 30 s"
			return
		}
		line += fmt.Sprintf("; all %d replicas online again after %.1fs", h.cfg.Replicas, time.Since(killed).Seconds())
	}()
}

// stop ends every node and sentinel.
func (t *sentinelTopo) stop() {
	for _, p := range t.sentinels {
		if p.Running() {
			_, _ = p.Terminate(10 * time.Second)
		}
	}
	for _, n := range t.nodes {
		if n.proc.Running() {
			_, _ = n.proc.Terminate(10 * time.Second)
		}
	}
}

// nodeRoles describes every node's role, for the report.
func (t *sentinelTopo) nodeRoles() string {
	var parts []string
	for _, n := range t.nodes {
		role := "down"
		if n.proc.Running() {
			c := redis.NewClient(&redis.Options{Addr: n.addr, DialTimeout: 300 * time.Millisecond})
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			info, err := c.Info(ctx, "replication").Result()
			cancel()
			c.Close()
			role = "?"
			if err == nil {
				for _, l := range strings.Split(info, "\r\n") {
					if r, ok := strings.CutPrefix(l, "role:"); ok {
						role = r
					}
				}
			}
		}
		parts = append(parts, fmt.Sprintf("%s(:%d)=%s", n.proc.Name, n.port, role))
	}
	return strings.Join(parts, " ")
}

// watchMaster polls the sentinels until ctx ends and counts every change of
// the master they name as master_changes: kill_master's promotions and any
// failover Sentinel makes on its own (the report compares the two).
func (h *Harness) watchMaster(ctx context.Context) {
	last := h.topo.masterPort()
	for {
		sleepCtx(ctx, 300*time.Millisecond)
		if ctx.Err() != nil {
			return
		}
		p := h.topo.masterPort()
		if p == 0 || p == last {
			continue
		}
		name := func(port int) string {
			if n := h.topo.node(port); n != nil {
				return n.proc.Name
			}
			return itoa(port)
		}
		h.count("master_changes", 1, "the sentinels name %s master (was %s)", name(p), name(last))
		last = p
	}
}
