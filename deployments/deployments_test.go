package deployments_test

// Shared by every check: the bidder binary, built once with the Dockerfile's
// own `go build` line, and what it says about itself (subcommands, flags).

import (
	"bufio"
	"bytes"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/bidder/bidder/internal/app"
	"github.com/bidder/bidder/internal/config"
)

var (
	repoRoot   string // the root module, where the Dockerfile's build runs
	binPath    string // bidder built by the Dockerfile's go build line
	binVersion string // the VERSION it was stamped with
	buildLine  string // that line, for TestDockerfileBuildsTheBinary
)

func TestMain(m *testing.M) {
	os.Exit(testMain(m))
}

func testMain(m *testing.M) int {
	wd, err := os.Getwd()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	repoRoot = filepath.Dir(wd)
	dir, err := os.MkdirTemp("", "bidder-deployments-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	binVersion = fmt.Sprintf("deploytest-%d", os.Getpid())
	binPath, buildLine, err = buildLikeDockerfile(dir, binVersion)
	if err != nil {
		fmt.Fprintln(os.Stderr, "building bidder with the Dockerfile's go build line:", err)
		return 1
	}
	return m.Run()
}

// dockerfileBuildLine returns the build stage's `go build` command: the RUN
// instruction that contains "go build", continuation lines joined and RUN's
// own --mount/--network options dropped.
func dockerfileBuildLine(dockerfile []byte) (string, error) {
	var insts []string
	var cur strings.Builder
	sc := bufio.NewScanner(bytes.NewReader(dockerfile))
	for sc.Scan() {
		line := sc.Text()
		trim := strings.TrimSpace(line)
		if cur.Len() == 0 && (trim == "" || strings.HasPrefix(trim, "#")) {
			continue
		}
		if strings.HasSuffix(trim, `\`) {
			cur.WriteString(strings.TrimSuffix(trim, `\`) + " ")
			continue
		}
		cur.WriteString(trim)
		insts = append(insts, cur.String())
		cur.Reset()
	}
	var found []string
	for _, in := range insts {
		f := strings.Fields(in)
		if len(f) < 2 || !strings.EqualFold(f[0], "RUN") || !strings.Contains(in, "go build") {
			continue
		}
		f = f[1:]
		for len(f) > 0 && strings.HasPrefix(f[0], "--") {
			f = f[1:]
		}
		found = append(found, strings.Join(f, " "))
	}
	if len(found) != 1 {
		return "", fmt.Errorf("want exactly one RUN with go build, found %d", len(found))
	}
	return found[0], nil
}

// dockerOut is where the Dockerfile's build writes the binary; the test
// writes it to a temp dir instead and changes nothing else.
const dockerOut = "-o /out/bidder"

func buildLikeDockerfile(dir, version string) (bin, line string, err error) {
	df, err := os.ReadFile(filepath.Join(repoRoot, "deployments", "Dockerfile"))
	if err != nil {
		return "", "", err
	}
	line, err = dockerfileBuildLine(df)
	if err != nil {
		return "", "", err
	}
	if strings.Count(line, dockerOut) != 1 {
		return "", "", fmt.Errorf("build line %q: want %q once (the final stage copies /out/bidder)", line, dockerOut)
	}
	bin = filepath.Join(dir, "bidder")
	// sh, as the golang image's RUN does, so ${VERSION} and the VAR=value
	// prefix mean what they mean there.
	cmd := exec.Command("sh", "-c", strings.Replace(line, dockerOut, "-o "+shellQuote(bin), 1))
	cmd.Dir = repoRoot
	cmd.Env = append(os.Environ(), "VERSION="+version)
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", "", fmt.Errorf("%s: %v\n%s", line, err, out)
	}
	return bin, line, nil
}

func shellQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

// runBidder runs the built binary with args and returns its output and exit
// code; the environment is PATH and HOME only, so no REDIS_URL leaks in.
func runBidder(t *testing.T, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	cmd := exec.Command(binPath, args...)
	cmd.Dir = t.TempDir()
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + cmd.Dir}
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err := cmd.Run()
	if err != nil {
		if _, ok := err.(*exec.ExitError); !ok {
			t.Fatalf("bidder %v: %v", args, err)
		}
	}
	return o.String(), e.String(), cmd.ProcessState.ExitCode()
}

// cli is what `bidder --help` and `bidder <cmd> --help` say.
type cliHelp struct {
	commands map[string]map[string]bool // subcommand -> flag name -> takes a value
}

var (
	cliOnce sync.Once
	cliInfo cliHelp
	cliErr  error
)

var (
	// "  worker      Run scan and bid tasks ..." under "Available Commands:"
	commandLineRe = regexp.MustCompile(`^  ([a-z][a-z0-9-]*)\s{2,}`)
	// "  -h, --help   help for worker" / "      --config string   config file ..."
	flagLineRe = regexp.MustCompile(`^\s+(?:-[a-zA-Z], )?--([a-z0-9-]+)(?: (\S+))?\s{2,}`)
)

func bidderCLI(t *testing.T) cliHelp {
	t.Helper()
	cliOnce.Do(func() {
		cliInfo, cliErr = readCLI(t)
	})
	if cliErr != nil {
		t.Fatal(cliErr)
	}
	return cliInfo
}

func readCLI(t *testing.T) (cliHelp, error) {
	out, errOut, code := runBidder(t, "--help")
	if code != 0 {
		return cliHelp{}, fmt.Errorf("bidder --help: exit %d: %s", code, errOut)
	}
	c := cliHelp{commands: map[string]map[string]bool{}}
	section := ""
	for _, l := range strings.Split(out, "\n") {
		if strings.HasSuffix(l, ":") && !strings.HasPrefix(l, " ") {
			section = l
			continue
		}
		if section == "Available Commands:" {
			if m := commandLineRe.FindStringSubmatch(l); m != nil && m[1] != "help" && m[1] != "completion" {
				c.commands[m[1]] = nil
			}
		}
	}
	if len(c.commands) == 0 {
		return cliHelp{}, fmt.Errorf("no commands found in bidder --help:\n%s", out)
	}
	for name := range c.commands {
		out, errOut, code := runBidder(t, name, "--help")
		if code != 0 {
			return cliHelp{}, fmt.Errorf("bidder %s --help: exit %d: %s", name, code, errOut)
		}
		flags := map[string]bool{}
		for _, l := range strings.Split(out, "\n") {
			if m := flagLineRe.FindStringSubmatch(l); m != nil {
				flags[m[1]] = m[2] != ""
			}
		}
		c.commands[name] = flags
	}
	return c, nil
}

// invocation is one parsed bidder command line.
type invocation struct {
	command string
	flags   map[string]string
}

// parseInvocation checks args (without the program name) against the real
// command tree's help: a known subcommand, known flags, values where a flag
// takes one, and no positional arguments (every daemon command takes none).
func parseInvocation(t *testing.T, args []string) (invocation, error) {
	c := bidderCLI(t)
	if len(args) == 0 {
		return invocation{}, fmt.Errorf("no subcommand (the image's CMD would run `run`)")
	}
	flags, ok := c.commands[args[0]]
	if !ok {
		return invocation{}, fmt.Errorf("unknown subcommand %q; bidder has %v", args[0], sortedKeys(c.commands))
	}
	inv := invocation{command: args[0], flags: map[string]string{}}
	for i := 1; i < len(args); i++ {
		a := args[i]
		if !strings.HasPrefix(a, "--") {
			return inv, fmt.Errorf("%s: unexpected argument %q", args[0], a)
		}
		name, val, hasVal := strings.Cut(strings.TrimPrefix(a, "--"), "=")
		takes, ok := flags[name]
		if !ok {
			return inv, fmt.Errorf("bidder %s has no flag --%s (flags: %v)", args[0], name, sortedKeys(flags))
		}
		if takes && !hasVal {
			if i+1 >= len(args) {
				return inv, fmt.Errorf("--%s needs a value", name)
			}
			i++
			val = args[i]
		}
		if !takes && hasVal {
			if _, err := strconv.ParseBool(val); err != nil {
				return inv, fmt.Errorf("--%s is a boolean, got %q", name, val)
			}
		}
		inv.flags[name] = val
	}
	return inv, nil
}

func sortedKeys[V any](m map[string]V) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

// configEnvVars returns the environment variables internal/config reads: the
// values of its Env* string constants, read from the source so that a new or
// renamed variable changes what the manifests may use without a list to
// keep in step.
func configEnvVars(t *testing.T) map[string]bool {
	t.Helper()
	fset := token.NewFileSet()
	dir := filepath.Join(repoRoot, "internal", "config")
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	vars := map[string]bool{}
	for _, e := range ents {
		if !strings.HasSuffix(e.Name(), ".go") || strings.HasSuffix(e.Name(), "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, filepath.Join(dir, e.Name()), nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range f.Decls {
			gd, ok := d.(*ast.GenDecl)
			if !ok || gd.Tok != token.CONST {
				continue
			}
			for _, s := range gd.Specs {
				vs := s.(*ast.ValueSpec)
				for i, n := range vs.Names {
					if !strings.HasPrefix(n.Name, "Env") || i >= len(vs.Values) {
						continue
					}
					if lit, ok := vs.Values[i].(*ast.BasicLit); ok && lit.Kind == token.STRING {
						v, _ := strconv.Unquote(lit.Value)
						vars[v] = true
					}
				}
			}
		}
	}
	// Guard the parse itself: these two are documented and used below.
	for _, must := range []string{"REDIS_PASSWORD", "BIDDER_HTTP_ADDR"} {
		if !vars[must] {
			t.Fatalf("internal/config: no Env* constant with value %s; found %v", must, sortedKeys(vars))
		}
	}
	return vars
}

// namedSecretVars are the variables a loaded config names for its secrets
// (password_env, token_env): the other environment a process may need.
func namedSecretVars(c config.Config) map[string]bool {
	m := map[string]bool{}
	for _, v := range []string{c.Redis.PasswordEnv, c.Redis.Sentinel.PasswordEnv, c.HTTP.Monitoring.BasicAuth.PasswordEnv} {
		if v != "" {
			m[v] = true
		}
	}
	for _, mp := range c.Marketplaces {
		if mp.TokenEnv != "" {
			m[mp.TokenEnv] = true
		}
	}
	return m
}

// loadConfig loads a config file with the binary's loader (strict: unknown
// keys fail), the given environment and flags, and token files from files.
func loadConfig(t *testing.T, path string, env map[string]string, inv invocation, files map[string]string) config.Config {
	t.Helper()
	reg, err := app.Adapters()
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(config.Options{
		Path:      path,
		Adapters:  reg.Names(),
		LookupEnv: func(k string) (string, bool) { v, ok := env[k]; return v, ok },
		ReadFile: func(p string) ([]byte, error) {
			if p == path {
				return os.ReadFile(p)
			}
			if s, ok := files[p]; ok {
				return []byte(s), nil
			}
			return nil, fmt.Errorf("%s: not provided by the deployment: %w", p, os.ErrNotExist)
		},
		Flags: config.Flags{HTTPAddr: inv.flags["http-addr"], LogLevel: inv.flags["log-level"], LogFormat: inv.flags["log-format"]},
	})
	if err != nil {
		t.Fatalf("%s with the deployment's environment: %v", path, err)
	}
	return cfg
}

func TestDockerfile(t *testing.T) {
	df, err := os.ReadFile("Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	var froms []string
	var entry, user string
	for _, l := range strings.Split(string(df), "\n") {
		f := strings.Fields(l)
		if len(f) == 0 {
			continue
		}
		switch strings.ToUpper(f[0]) {
		case "FROM":
			froms = append(froms, strings.Join(f[1:], " "))
		case "ENTRYPOINT":
			entry = strings.Join(f[1:], " ")
		case "USER":
			user = strings.Join(f[1:], " ")
		case "HEALTHCHECK":
			t.Error("HEALTHCHECK: orchestrators probe /healthz and /readyz; the image has no shell to run one")
		}
	}
	if len(froms) != 2 || !strings.HasPrefix(froms[0], "golang:1.26 ") {
		t.Errorf("stages %q: want a golang:1.26 build stage and one final stage", froms)
	}
	if len(froms) > 0 && !strings.Contains(froms[len(froms)-1], "distroless/static") {
		t.Errorf("final stage %q: want distroless static (no shell, no libc)", froms[len(froms)-1])
	}
	if entry != `["/bidder"]` {
		t.Errorf("ENTRYPOINT %s, want [\"/bidder\"]", entry)
	}
	if user == "" || strings.HasPrefix(user, "root") || strings.HasPrefix(user, "0") {
		t.Errorf("USER %q: want a non-root user", user)
	}
	for _, want := range []string{"CGO_ENABLED=0", "-trimpath", `-ldflags "-s -w -X main.version=${VERSION}"`, "./cmd/bidder"} {
		if !strings.Contains(buildLine, want) {
			t.Errorf("build line %q lacks %s", buildLine, want)
		}
	}
}

// TestDockerfileBuildsTheBinary: TestMain built bidder with the Dockerfile's
// line; the binary must carry the stamped version and the build settings
// the line asks for (go version -m reads them from the binary; with
// -trimpath Go does not record -ldflags there, hence the version check).
func TestDockerfileBuildsTheBinary(t *testing.T) {
	out, _, code := runBidder(t, "version")
	// The first line names the version; commit and Go version follow.
	if first, _, _ := strings.Cut(out, "\n"); code != 0 || first != "bidder "+binVersion {
		t.Fatalf("bidder version: exit %d, %q; want a first line %q", code, out, "bidder "+binVersion)
	}
	info, err := exec.Command("go", "version", "-m", binPath).CombinedOutput()
	if err != nil {
		t.Fatalf("go version -m: %v\n%s", err, info)
	}
	for _, want := range []string{"build\t-trimpath=true", "build\tCGO_ENABLED=0", "path\tgithub.com/bidder/bidder/cmd/bidder"} {
		if !strings.Contains(string(info), want) {
			t.Errorf("go version -m lacks %q:\n%s", want, info)
		}
	}
}
