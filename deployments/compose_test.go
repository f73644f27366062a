package deployments_test

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/compose-spec/compose-go/v2/cli"
	"github.com/compose-spec/compose-go/v2/types"
	"gopkg.in/yaml.v3"
)

// loadCompose loads a compose file with compose-go (the parser docker
// compose itself uses), with an empty environment so the files' own
// defaults are what is checked.
func loadCompose(t *testing.T, path string) *types.Project {
	t.Helper()
	opts, err := cli.NewProjectOptions([]string{path},
		cli.WithWorkingDirectory(filepath.Dir(path)),
		cli.WithEnv([]string{}),
		cli.WithDiscardEnvFile,
		cli.WithConsistency(true),
		cli.WithResolvedPaths(true))
	if err != nil {
		t.Fatal(err)
	}
	p, err := opts.LoadProject(context.Background())
	if err != nil {
		t.Fatalf("compose-go: %s: %v", path, err)
	}
	return p
}

func envOf(s types.ServiceConfig) map[string]string {
	m := map[string]string{}
	for k, v := range s.Environment {
		if v != nil {
			m[k] = *v
		}
	}
	return m
}

// mountedAt returns the host file mounted at target in s.
func mountedAt(s types.ServiceConfig, target string) (string, bool) {
	for _, v := range s.Volumes {
		if v.Type == types.VolumeTypeBind && v.Target == target {
			return v.Source, true
		}
	}
	return "", false
}

func TestCompose(t *testing.T) {
	abs, err := filepath.Abs("docker-compose.yml")
	if err != nil {
		t.Fatal(err)
	}
	p := loadCompose(t, abs)
	allowedEnv := configEnvVars(t)

	replicas := map[string]int{"sandbox": 1, "scanner": 2, "worker": 3, "monitor": 1}
	for _, name := range []string{"redis", "sandbox", "scanner", "worker", "monitor", "prometheus", "grafana"} {
		if _, ok := p.Services[name]; !ok {
			t.Errorf("service %s missing", name)
		}
	}
	bidderCommands := map[string]string{} // service -> subcommand
	bidderPort := ""
	for name, s := range p.Services {
		if !strings.HasPrefix(s.Image, "bidder:") {
			continue
		}
		t.Run(name, func(t *testing.T) {
			if s.Build == nil || s.Build.Dockerfile != "deployments/Dockerfile" {
				t.Errorf("build: %+v, want deployments/Dockerfile", s.Build)
			}
			if want, ok := replicas[name]; ok && s.GetScale() != want {
				t.Errorf("scale %d, want %d", s.GetScale(), want)
			}
			inv, err := parseInvocation(t, s.Command)
			if err != nil {
				t.Fatalf("command %q: %v", s.Command, err)
			}
			bidderCommands[name] = inv.command
			if inv.command == "sandbox" {
				host, _, err := net.SplitHostPort(inv.flags["listen"])
				if err != nil || host != "0.0.0.0" {
					t.Errorf("sandbox --listen %q: want 0.0.0.0:port so other containers reach it", inv.flags["listen"])
				}
				return
			}
			cfgPath := inv.flags["config"]
			src, ok := mountedAt(s, cfgPath)
			if cfgPath == "" || !ok {
				t.Fatalf("--config %q is not a file mounted into the container", cfgPath)
			}
			env := envOf(s)
			cfg := loadConfig(t, src, env, inv, nil)
			secrets := namedSecretVars(cfg)
			for k := range env {
				if !allowedEnv[k] && !secrets[k] {
					t.Errorf("environment %s: neither read by internal/config nor named by the config's *_env keys", k)
				}
			}
			host, port, err := net.SplitHostPort(cfg.HTTP.Addr)
			if err != nil || host == "127.0.0.1" || host == "localhost" {
				t.Errorf("http.addr %q: loopback inside a container is unreachable for Prometheus", cfg.HTTP.Addr)
			}
			bidderPort = port
			if inv.command == "worker" || inv.command == "run" {
				grace := time.Duration(0)
				if s.StopGracePeriod != nil {
					grace = time.Duration(*s.StopGracePeriod)
				}
				if min := time.Duration(cfg.Worker.ShutdownTimeout) + 15*time.Second; grace < min {
					t.Errorf("stop_grace_period %v < worker.shutdown_timeout + 15s (%v): Docker would SIGKILL a draining worker", grace, min)
				}
			}
			if !s.ReadOnly {
				t.Error("read_only: false; bidder writes nothing to its filesystem")
			}
		})
	}
	for _, role := range []string{"scanner", "worker", "monitor", "sandbox"} {
		if bidderCommands[role] != role {
			t.Errorf("service %s runs %q, want `bidder %s`", role, bidderCommands[role], role)
		}
	}

	t.Run("redis", func(t *testing.T) {
		s := p.Services["redis"]
		if !strings.HasPrefix(s.Image, "redis:7") {
			t.Errorf("image %s: want redis:7.x (asynq needs >= 6.2)", s.Image)
		}
		src, ok := mountedAt(s, "/usr/local/etc/redis/redis.conf")
		if !ok || filepath.Base(src) != "redis.conf" || filepath.Base(filepath.Dir(src)) != "redis" {
			t.Errorf("redis.conf mounted from %q, want deployments/redis/redis.conf", src)
		}
		cmd := strings.Join(s.Command, " ")
		for _, want := range []string{"/usr/local/etc/redis/redis.conf", "requirepass $REDIS_PASSWORD", "redis-server -"} {
			if !strings.Contains(cmd, want) {
				t.Errorf("command %q lacks %q", cmd, want)
			}
		}
		if s.HealthCheck == nil {
			t.Error("no healthcheck: bidder services depend on service_healthy")
		}
	})

	t.Run("prometheus scrapes every bidder service", func(t *testing.T) {
		s := p.Services["prometheus"]
		src, ok := mountedAt(s, "/etc/prometheus/prometheus.yml")
		if !ok {
			t.Fatal("prometheus.yml not mounted")
		}
		b, err := os.ReadFile(src)
		if err != nil {
			t.Fatal(err)
		}
		var pc struct {
			RuleFiles     []string `yaml:"rule_files"`
			ScrapeConfigs []struct {
				JobName      string `yaml:"job_name"`
				DNSSDConfigs []struct {
					Names []string
					Port  int
				} `yaml:"dns_sd_configs"`
				StaticConfigs []struct{ Targets []string } `yaml:"static_configs"`
			} `yaml:"scrape_configs"`
		}
		if err := yaml.Unmarshal(b, &pc); err != nil {
			t.Fatal(err)
		}
		scraped := map[string]bool{}
		for _, sc := range pc.ScrapeConfigs {
			for _, d := range sc.DNSSDConfigs {
				for _, n := range d.Names {
					if _, ok := p.Services[n]; !ok || strconv.Itoa(d.Port) != bidderPort {
						t.Errorf("job %s: %s:%d is not a compose service on bidder's port %s", sc.JobName, n, d.Port, bidderPort)
					}
					scraped[n] = true
				}
			}
			for _, st := range sc.StaticConfigs {
				for _, tg := range st.Targets {
					h, port, _ := net.SplitHostPort(tg)
					if _, ok := p.Services[h]; !ok || port != bidderPort {
						t.Errorf("job %s: target %s is not a compose service on bidder's port %s", sc.JobName, tg, bidderPort)
					}
					scraped[h] = true
				}
			}
		}
		for name, cmd := range bidderCommands {
			if cmd != "sandbox" && !scraped[name] {
				t.Errorf("bidder service %s is not scraped", name)
			}
		}
		for _, rf := range pc.RuleFiles {
			if _, ok := mountedAt(s, rf); !ok {
				t.Errorf("rule file %s is not mounted", rf)
			}
		}
		if src, ok := mountedAt(s, "/etc/prometheus/alerts.yml"); !ok || filepath.Base(src) != "alerts.yml" || !slices.Contains(pc.RuleFiles, "/etc/prometheus/alerts.yml") {
			t.Error("prometheus/alerts.yml is not mounted and loaded")
		}
	})

	t.Run("grafana provisions the dashboard", func(t *testing.T) {
		s := p.Services["grafana"]
		prov, ok1 := mountedAt(s, "/etc/grafana/provisioning")
		dash, ok2 := mountedAt(s, "/var/lib/grafana/dashboards")
		if !ok1 || !ok2 {
			t.Fatal("provisioning or dashboards not mounted")
		}
		b, err := os.ReadFile(filepath.Join(prov, "dashboards", "bidder.yml"))
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(b), "path: /var/lib/grafana/dashboards") {
			t.Error("dashboard provider does not read /var/lib/grafana/dashboards")
		}
		if _, err := os.Stat(filepath.Join(dash, "bidder.json")); err != nil {
			t.Error(err)
		}
	})
}

// TestSentinelCompose loads the Sentinel example: three sentinels, a master
// and two replicas, each Redis on the production redis.conf.
func TestSentinelCompose(t *testing.T) {
	abs, err := filepath.Abs("redis/sentinel/docker-compose.yml")
	if err != nil {
		t.Fatal(err)
	}
	p := loadCompose(t, abs)
	sentinels, replicas := 0, 0
	for name, s := range p.Services {
		cmd := strings.Join(s.Command, " ")
		switch {
		case strings.HasPrefix(name, "sentinel-"):
			sentinels++
			if !strings.Contains(cmd, "--sentinel") {
				t.Errorf("%s: not started as a sentinel: %q", name, cmd)
			}
		case strings.HasPrefix(name, "redis-"):
			if src, ok := mountedAt(s, "/usr/local/etc/redis/redis.conf"); !ok || filepath.Base(src) != "redis.conf" {
				t.Errorf("%s: production redis.conf not mounted", name)
			}
			if strings.Contains(cmd, "replicaof redis-0") {
				replicas++
			}
		}
	}
	if sentinels != 3 || replicas != 2 {
		t.Errorf("%d sentinels and %d replicas, want 3 and 2", sentinels, replicas)
	}
}
