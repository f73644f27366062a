package deployments_test

import (
	"bytes"
	"io/fs"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"sigs.k8s.io/yaml"

	"github.com/bidder/bidder/internal/httpserver"
)

// serviceMonitor mirrors the fields of monitoring.coreos.com/v1
// ServiceMonitor that the component uses (the operator's Go types would
// pull in its whole module); strict decoding still catches a misspelt or
// misplaced key among them.
type serviceMonitor struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata"`
	Spec              struct {
		Selector  metav1.LabelSelector `json:"selector"`
		Endpoints []struct {
			Port          string `json:"port"`
			Path          string `json:"path"`
			Interval      string `json:"interval"`
			ScrapeTimeout string `json:"scrapeTimeout"`
		} `json:"endpoints"`
	} `json:"spec"`
}

// kustomization is the part of kustomization.yaml the checks read.
type kustomization struct {
	Kind               string `json:"kind"`
	ConfigMapGenerator []struct {
		Name  string   `json:"name"`
		Files []string `json:"files"`
	} `json:"configMapGenerator"`
}

// k8sObjects is every object of a set of manifests, decoded strictly into
// its API type.
type k8sObjects struct {
	deployments     []*appsv1.Deployment
	services        []*corev1.Service
	secrets         []*corev1.Secret
	configMaps      []*corev1.ConfigMap
	hpas            []*autoscalingv2.HorizontalPodAutoscaler
	pdbs            []*policyv1.PodDisruptionBudget
	netpols         []*networkingv1.NetworkPolicy
	serviceMonitors []*serviceMonitor
	kinds           map[string]int
}

func splitYAML(b []byte) [][]byte {
	var docs [][]byte
	for _, d := range bytes.Split(append([]byte("\n"), b...), []byte("\n---")) {
		if len(bytes.TrimSpace(stripComments(d))) > 0 {
			docs = append(docs, d)
		}
	}
	return docs
}

func stripComments(b []byte) []byte {
	var out [][]byte
	for _, l := range bytes.Split(b, []byte("\n")) {
		if !bytes.HasPrefix(bytes.TrimSpace(l), []byte("#")) {
			out = append(out, l)
		}
	}
	return bytes.Join(out, []byte("\n"))
}

// decodeK8s decodes every document of b strictly (unknown or misplaced
// fields fail) into the Go type of its apiVersion/kind.
func decodeK8s(t *testing.T, name string, b []byte, into *k8sObjects) {
	t.Helper()
	if into.kinds == nil {
		into.kinds = map[string]int{}
	}
	for i, doc := range splitYAML(b) {
		var tm metav1.TypeMeta
		if err := yaml.Unmarshal(doc, &tm); err != nil {
			t.Errorf("%s doc %d: %v", name, i, err)
			continue
		}
		var obj any
		switch tm.APIVersion + " " + tm.Kind {
		case "apps/v1 Deployment":
			o := &appsv1.Deployment{}
			into.deployments, obj = append(into.deployments, o), o
		case "v1 Service":
			o := &corev1.Service{}
			into.services, obj = append(into.services, o), o
		case "v1 Secret":
			o := &corev1.Secret{}
			into.secrets, obj = append(into.secrets, o), o
		case "v1 ConfigMap":
			o := &corev1.ConfigMap{}
			into.configMaps, obj = append(into.configMaps, o), o
		case "v1 ServiceAccount":
			obj = &corev1.ServiceAccount{}
		case "v1 Namespace":
			obj = &corev1.Namespace{}
		case "autoscaling/v2 HorizontalPodAutoscaler":
			o := &autoscalingv2.HorizontalPodAutoscaler{}
			into.hpas, obj = append(into.hpas, o), o
		case "policy/v1 PodDisruptionBudget":
			o := &policyv1.PodDisruptionBudget{}
			into.pdbs, obj = append(into.pdbs, o), o
		case "networking.k8s.io/v1 NetworkPolicy":
			o := &networkingv1.NetworkPolicy{}
			into.netpols, obj = append(into.netpols, o), o
		case "monitoring.coreos.com/v1 ServiceMonitor":
			o := &serviceMonitor{}
			into.serviceMonitors, obj = append(into.serviceMonitors, o), o
		default:
			t.Errorf("%s doc %d: no Go type for %s %s", name, i, tm.APIVersion, tm.Kind)
			continue
		}
		if err := yaml.UnmarshalStrict(doc, obj); err != nil {
			t.Errorf("%s doc %d (%s): %v", name, i, tm.Kind, err)
			continue
		}
		into.kinds[tm.Kind]++
	}
}

// readManifests decodes every YAML file under dir except kustomizations and
// the bidder config files, which are not Kubernetes objects. Overlay files
// (partial objects: patches) are decoded just as strictly but kept apart:
// the cross-checks run on the base and components.
func readManifests(t *testing.T, dir string) (objs, overlays *k8sObjects) {
	t.Helper()
	objs, overlays = &k8sObjects{}, &k8sObjects{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(p, ".yaml") {
			return err
		}
		if d.Name() == "kustomization.yaml" || filepath.Base(filepath.Dir(p)) == "config" {
			return nil
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		if strings.Contains(filepath.ToSlash(p), "/overlays/") {
			decodeK8s(t, p, b, overlays)
		} else {
			decodeK8s(t, p, b, objs)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return objs, overlays
}

func matches(sel *metav1.LabelSelector, lbls map[string]string) bool {
	s, err := metav1.LabelSelectorAsSelector(sel)
	return err == nil && !s.Empty() && s.Matches(labels.Set(lbls))
}

// deploymentEnv is the container's environment as the loader would see it:
// literal values as given, secret references as a placeholder (after
// checking the Secret and key exist).
func deploymentEnv(t *testing.T, c corev1.Container, secrets []*corev1.Secret) map[string]string {
	t.Helper()
	env := map[string]string{}
	for _, e := range c.Env {
		switch {
		case e.ValueFrom == nil:
			env[e.Name] = e.Value
		case e.ValueFrom.SecretKeyRef != nil:
			ref := e.ValueFrom.SecretKeyRef
			if !secretHasKey(secrets, ref.Name, ref.Key) {
				t.Errorf("env %s: Secret %s has no key %s", e.Name, ref.Name, ref.Key)
			}
			env[e.Name] = "placeholder-" + ref.Key
		default:
			t.Errorf("env %s: unsupported valueFrom", e.Name)
		}
	}
	return env
}

func secretHasKey(secrets []*corev1.Secret, name, key string) bool {
	for _, s := range secrets {
		if s.Name == name {
			_, a := s.StringData[key]
			_, b := s.Data[key]
			return a || b
		}
	}
	return false
}

// servedPaths reports the status of path on bidder's real HTTP handler, asked
// as the kubelet asks: with the pod's IP as Host.
func servedStatus(t *testing.T, h http.Handler, path string) int {
	t.Helper()
	rec := httptest.NewRecorder()
	req := httptest.NewRequest(http.MethodGet, path, nil)
	req.Host = "10.244.0.7:8080"
	h.ServeHTTP(rec, req)
	return rec.Code
}

func TestKubernetesManifests(t *testing.T) {
	const dir = "kubernetes"
	objs, overlays := readManifests(t, dir)
	if overlays.kinds["Deployment"] == 0 {
		t.Error("the example overlay patches no Deployment; was it decoded?")
	}
	base := filepath.Join(dir, "base")
	var kz kustomization
	if b, err := os.ReadFile(filepath.Join(base, "kustomization.yaml")); err != nil {
		t.Fatal(err)
	} else if err := yaml.Unmarshal(b, &kz); err != nil {
		t.Fatal(err)
	}
	// configMapGenerator name -> ConfigMap key -> file in the repo.
	configMaps := map[string]map[string]string{}
	for _, g := range kz.ConfigMapGenerator {
		configMaps[g.Name] = map[string]string{}
		for _, f := range g.Files {
			key, file, ok := strings.Cut(f, "=")
			if !ok {
				key, file = filepath.Base(f), f
			}
			configMaps[g.Name][key] = filepath.Join(base, file)
		}
	}

	// Pods listen on every interface (http.addr 0.0.0.0:8080), which the
	// handler's Host check treats differently from loopback.
	hs, err := httpserver.Listen(httpserver.Options{Addr: "0.0.0.0:0"})
	if err != nil {
		t.Fatal(err)
	}
	handler := hs.Handler()
	if code := servedStatus(t, handler, "/no-such-probe"); code != http.StatusNotFound {
		t.Fatalf("bidder's handler answers %d to an unknown path; the probe check below would prove nothing", code)
	}
	allowedEnv := configEnvVars(t)

	roles := map[string]bool{}
	for _, d := range objs.deployments {
		t.Run("Deployment/"+d.Name, func(t *testing.T) {
			ps := d.Spec.Template.Spec
			if !matches(d.Spec.Selector, d.Spec.Template.Labels) {
				t.Error("selector does not match the pod template")
			}
			if len(ps.Containers) != 1 {
				t.Fatalf("%d containers, want 1", len(ps.Containers))
			}
			c := ps.Containers[0]
			if c.Image != "bidder" {
				t.Errorf("image %q: want \"bidder\", which kustomize's images: rewrites", c.Image)
			}
			if len(c.Command) != 0 {
				t.Errorf("command %q overrides the image's ENTRYPOINT /bidder", c.Command)
			}
			inv, err := parseInvocation(t, c.Args)
			if err != nil {
				t.Fatalf("args %q: %v", c.Args, err)
			}
			roles[inv.command] = true

			// The config file: mounted from a generated ConfigMap key.
			cfgPath := inv.flags["config"]
			var cfgFile string
			mounts := map[string]corev1.VolumeMount{}
			for _, m := range c.VolumeMounts {
				mounts[m.Name] = m
			}
			files := map[string]string{} // token files the Secret volumes provide
			for _, v := range ps.Volumes {
				m, ok := mounts[v.Name]
				if !ok {
					continue
				}
				switch {
				case v.ConfigMap != nil:
					for key, file := range configMaps[v.ConfigMap.Name] {
						if filepath.Join(m.MountPath, key) == cfgPath {
							cfgFile = file
						}
					}
				case v.Secret != nil:
					for _, it := range v.Secret.Items {
						if !secretHasKey(objs.secrets, v.Secret.SecretName, it.Key) {
							t.Errorf("volume %s: Secret %s has no key %s", v.Name, v.Secret.SecretName, it.Key)
						}
						files[filepath.Join(m.MountPath, it.Path)] = "placeholder-" + it.Key
					}
				}
			}
			if cfgFile == "" {
				t.Fatalf("--config %q is not a key of a generated ConfigMap mounted in the pod", cfgPath)
			}
			env := deploymentEnv(t, c, objs.secrets)
			cfg := loadConfig(t, cfgFile, env, inv, files)
			secrets := namedSecretVars(cfg)
			for k := range env {
				if !allowedEnv[k] && !secrets[k] {
					t.Errorf("env %s: neither read by internal/config nor named by the config's *_env keys", k)
				}
			}

			// Ports and probes: the named port is the one http.addr binds,
			// on every interface, and the probe paths are bidder's routes.
			host, portStr, err := net.SplitHostPort(cfg.HTTP.Addr)
			if err != nil {
				t.Fatal(err)
			}
			if host == "127.0.0.1" || host == "localhost" {
				t.Errorf("http.addr %q: kubelet probes and Prometheus cannot reach loopback", cfg.HTTP.Addr)
			}
			port, _ := strconv.Atoi(portStr)
			var httpPort int32
			for _, p := range c.Ports {
				if p.Name == "http" {
					httpPort = p.ContainerPort
				}
			}
			if int(httpPort) != port {
				t.Errorf("containerPort http = %d, bidder listens on %d (http.addr %q after env and flags)", httpPort, port, cfg.HTTP.Addr)
			}
			for _, pr := range []struct {
				name  string
				probe *corev1.Probe
				path  string
			}{{"readiness", c.ReadinessProbe, "/readyz"}, {"liveness", c.LivenessProbe, "/healthz"}} {
				if pr.probe == nil || pr.probe.HTTPGet == nil {
					t.Errorf("no HTTP %s probe", pr.name)
					continue
				}
				g := pr.probe.HTTPGet
				if g.Path != pr.path {
					t.Errorf("%s probe path %q, want %q", pr.name, g.Path, pr.path)
				}
				if code := servedStatus(t, handler, g.Path); code != http.StatusOK {
					t.Errorf("%s probe %s: bidder's handler answers %d", pr.name, g.Path, code)
				}
				if g.Port.String() != "http" && g.Port.IntValue() != port {
					t.Errorf("%s probe port %s is not bidder's port", pr.name, g.Port.String())
				}
			}

			// Shutdown: the kubelet must not SIGKILL a draining worker.
			if inv.command == "worker" || inv.command == "run" {
				grace := time.Duration(0)
				if ps.TerminationGracePeriodSeconds != nil {
					grace = time.Duration(*ps.TerminationGracePeriodSeconds) * time.Second
				}
				if min := time.Duration(cfg.Worker.ShutdownTimeout) + 15*time.Second; grace < min {
					t.Errorf("terminationGracePeriodSeconds %v < worker.shutdown_timeout + lock release + HTTP shutdown (%v)", grace, min)
				}
				if d.Spec.Replicas != nil {
					t.Error("replicas set on a Deployment an HPA scales: every apply would reset it")
				}
			}

			// Hardening.
			psc, csc := ps.SecurityContext, c.SecurityContext
			if psc == nil || psc.RunAsNonRoot == nil || !*psc.RunAsNonRoot {
				t.Error("pod securityContext.runAsNonRoot is not true")
			}
			if csc == nil || csc.ReadOnlyRootFilesystem == nil || !*csc.ReadOnlyRootFilesystem ||
				csc.AllowPrivilegeEscalation == nil || *csc.AllowPrivilegeEscalation {
				t.Error("container securityContext: want readOnlyRootFilesystem true, allowPrivilegeEscalation false")
			}
			if c.Resources.Requests.Cpu().IsZero() || c.Resources.Requests.Memory().IsZero() || c.Resources.Limits.Memory().IsZero() {
				t.Error("resources: want cpu and memory requests and a memory limit")
			}
		})
	}
	for _, r := range []string{"worker", "scanner", "monitor"} {
		if !roles[r] {
			t.Errorf("no Deployment runs `bidder %s`", r)
		}
	}

	podLabels := func(sel *metav1.LabelSelector) []*appsv1.Deployment {
		var out []*appsv1.Deployment
		for _, d := range objs.deployments {
			if matches(sel, d.Spec.Template.Labels) {
				out = append(out, d)
			}
		}
		return out
	}
	for _, h := range objs.hpas {
		found := false
		for _, d := range objs.deployments {
			found = found || (h.Spec.ScaleTargetRef.Kind == "Deployment" && h.Spec.ScaleTargetRef.Name == d.Name &&
				d.Spec.Template.Spec.Containers[0].Resources.Requests.Cpu() != nil)
		}
		if !found {
			t.Errorf("HPA %s scales %s/%s, which is not a Deployment here", h.Name, h.Spec.ScaleTargetRef.Kind, h.Spec.ScaleTargetRef.Name)
		}
	}
	for _, p := range objs.pdbs {
		if len(podLabels(p.Spec.Selector)) == 0 {
			t.Errorf("PDB %s selects no pods", p.Name)
		}
	}
	for _, np := range objs.netpols {
		if len(podLabels(&np.Spec.PodSelector)) == 0 {
			t.Errorf("NetworkPolicy %s selects no pods", np.Name)
		}
	}
	svcPorts := map[string]map[string]bool{} // service -> port names
	for _, s := range objs.services {
		ds := podLabels(&metav1.LabelSelector{MatchLabels: s.Spec.Selector})
		if len(ds) == 0 {
			t.Errorf("Service %s selects no pods", s.Name)
		}
		svcPorts[s.Name] = map[string]bool{}
		for _, p := range s.Spec.Ports {
			svcPorts[s.Name][p.Name] = true
			for _, d := range ds {
				ok := false
				for _, cp := range d.Spec.Template.Spec.Containers[0].Ports {
					ok = ok || cp.Name == p.TargetPort.String() || int(cp.ContainerPort) == p.TargetPort.IntValue()
				}
				if !ok {
					t.Errorf("Service %s port %s: targetPort %s is not a port of %s", s.Name, p.Name, p.TargetPort.String(), d.Name)
				}
			}
		}
	}
	if len(objs.serviceMonitors) != 1 {
		t.Fatalf("%d ServiceMonitors, want 1", len(objs.serviceMonitors))
	}
	sm := objs.serviceMonitors[0]
	var target *corev1.Service
	for _, s := range objs.services {
		if matches(&sm.Spec.Selector, s.Labels) {
			if target != nil {
				t.Errorf("ServiceMonitor selects Services %s and %s: pods would be scraped twice", target.Name, s.Name)
			}
			target = s
		}
	}
	if target == nil {
		t.Fatal("ServiceMonitor selects no Service")
	}
	if got := podLabels(&metav1.LabelSelector{MatchLabels: target.Spec.Selector}); len(got) != len(objs.deployments) {
		t.Errorf("ServiceMonitor's Service %s reaches %d of %d Deployments", target.Name, len(got), len(objs.deployments))
	}
	for _, e := range sm.Spec.Endpoints {
		if !svcPorts[target.Name][e.Port] || e.Path != "/metrics" {
			t.Errorf("ServiceMonitor endpoint port %q path %q: want a port of %s and /metrics", e.Port, e.Path, target.Name)
		}
		if code := servedStatus(t, handler, e.Path); code != http.StatusOK {
			t.Errorf("ServiceMonitor path %s: bidder's handler answers %d", e.Path, code)
		}
	}
}

// TestKustomizeRenders renders the base and the example overlay with
// kubectl's kustomize and decodes the result strictly: the generated
// ConfigMap, the component's ServiceMonitor and the patches included.
func TestKustomizeRenders(t *testing.T) {
	kubectl, err := exec.LookPath("kubectl")
	if err != nil {
		if os.Getenv("BIDDER_REQUIRE_KUBECTL") == "1" {
			t.Fatal("kubectl not found and BIDDER_REQUIRE_KUBECTL=1")
		}
		t.Skip("kubectl not found: the manifests were decoded file by file only (set BIDDER_REQUIRE_KUBECTL=1 to fail instead)")
	}
	cfg, err := os.ReadFile("kubernetes/base/config/bidder.yaml")
	if err != nil {
		t.Fatal(err)
	}
	allowedEnv := configEnvVars(t)
	cfgEnv := envKeysIn(t, cfg)
	for _, c := range []struct {
		dir         string
		wantMonitor bool
		image       string
	}{
		{"kubernetes/base", false, "bidder:dev"},
		{"kubernetes/overlays/example", true, "registry.example.com/bidder:v1.0.0"},
	} {
		t.Run(c.dir, func(t *testing.T) {
			out, err := exec.Command(kubectl, "kustomize", c.dir).CombinedOutput()
			if err != nil {
				t.Fatalf("kubectl kustomize %s: %v\n%s", c.dir, err, out)
			}
			objs := &k8sObjects{}
			decodeK8s(t, c.dir, out, objs)
			if got := len(objs.serviceMonitors) == 1; got != c.wantMonitor {
				t.Errorf("ServiceMonitor rendered: %v, want %v", got, c.wantMonitor)
			}
			if len(objs.configMaps) != 1 || objs.configMaps[0].Data["bidder.yaml"] != string(cfg) {
				t.Fatal("the rendered ConfigMap does not hold config/bidder.yaml as bidder.yaml")
			}
			// Patches can add env vars and change args: check them again.
			for _, d := range objs.deployments {
				c := d.Spec.Template.Spec.Containers[0]
				if _, err := parseInvocation(t, c.Args); err != nil {
					t.Errorf("%s: args %q: %v", d.Name, c.Args, err)
				}
				for _, e := range c.Env {
					if !allowedEnv[e.Name] && !cfgEnv[e.Name] {
						t.Errorf("%s: env %s: neither read by internal/config nor named by the config's *_env keys", d.Name, e.Name)
					}
				}
			}
			cm := objs.configMaps[0].Name
			if !strings.HasPrefix(cm, "bidder-config-") {
				t.Errorf("ConfigMap %s: want a content-hash suffix, so config changes roll the pods", cm)
			}
			for _, d := range objs.deployments {
				ps := d.Spec.Template.Spec
				if img := ps.Containers[0].Image; img != c.image {
					t.Errorf("%s: image %s, want %s", d.Name, img, c.image)
				}
				ok := false
				for _, v := range ps.Volumes {
					ok = ok || (v.ConfigMap != nil && v.ConfigMap.Name == cm)
				}
				if !ok {
					t.Errorf("%s does not mount the generated ConfigMap %s", d.Name, cm)
				}
			}
			if t.Failed() {
				t.Logf("rendered:\n%s", out)
			}
		})
	}
}

// envKeysIn returns the values of every *_env key of a bidder config
// document: the variables it names for its secrets.
func envKeysIn(t *testing.T, doc []byte) map[string]bool {
	t.Helper()
	var v any
	if err := yaml.Unmarshal(doc, &v); err != nil {
		t.Fatal(err)
	}
	out := map[string]bool{}
	var walk func(v any)
	walk = func(v any) {
		switch v := v.(type) {
		case map[string]any:
			for k, c := range v {
				if s, ok := c.(string); ok && strings.HasSuffix(k, "_env") {
					out[s] = true
				}
				walk(c)
			}
		case []any:
			for _, c := range v {
				walk(c)
			}
		}
	}
	walk(v)
	if len(out) == 0 {
		t.Fatal("no *_env key found in the config")
	}
	return out
}
