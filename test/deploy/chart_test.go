package deploy

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

// manifest is one rendered Kubernetes object.
type manifest map[string]any

// dig walks maps by key and lists by "[i]" (numeric strings) and returns what it finds,
// nil when a step is missing.
func dig(v any, path ...string) any {
	for _, p := range path {
		if m, ok := v.(manifest); ok {
			v = map[string]any(m)
		}
		switch x := v.(type) {
		case map[string]any:
			v = x[p]
		case []any:
			var i int
			if _, err := fmt.Sscanf(p, "%d", &i); err != nil || i < 0 || i >= len(x) {
				return nil
			}
			v = x[i]
		default:
			return nil
		}
	}
	return v
}

// render runs helm template on the chart with values (a YAML document) and extra
// arguments, in a temporary helm home; it returns the output and helm's error.
func render(t *testing.T, tl tools, values string, extra ...string) ([]byte, error) {
	t.Helper()
	// not t.TempDir(): helm splits -f at commas, which subtest names hold
	dir, err := os.MkdirTemp("", "kiln-chart-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	vf := filepath.Join(dir, "values.yaml")
	if err := os.WriteFile(vf, []byte(values), 0o644); err != nil {
		t.Fatal(err)
	}
	args := append([]string{"template", "rel", filepath.Join(repoRoot(t), "deploy", "helm", "kiln"), "--namespace", "builds", "-f", vf}, extra...)
	cmd := exec.Command(tl.helm, args...)
	cmd.Env = append(os.Environ(), "HELM_CACHE_HOME="+dir+"/cache", "HELM_CONFIG_HOME="+dir+"/config", "HELM_DATA_HOME="+dir+"/data")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return out, fmt.Errorf("helm template: %w: %s", err, stderr.String())
	}
	return out, nil
}

// kubeconform validates docs strictly against the generated schemas; a missing schema
// is an error too.
func kubeconform(tl tools, docs []byte) error {
	cmd := exec.Command(tl.kubeconform, "-strict", "-summary", "-output", "text",
		"-schema-location", filepath.Join(tl.schemas, "{{ .ResourceKind }}{{ .KindSuffix }}.json"), "-")
	cmd.Stdin = bytes.NewReader(docs)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("kubeconform: %w\n%s", err, out)
	}
	return nil
}

// parse splits helm's output into objects, by kind/name.
func parse(t *testing.T, out []byte) map[string]manifest {
	t.Helper()
	objs := map[string]manifest{}
	dec := yaml.NewDecoder(bytes.NewReader(out))
	for {
		var m map[string]any // not manifest: yaml would make every nested map one too
		err := dec.Decode(&m)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("parse rendered chart: %v\n%s", err, out)
		}
		if m == nil {
			continue
		}
		objs[fmt.Sprintf("%v/%v", m["kind"], dig(m, "metadata", "name"))] = manifest(m)
	}
	return objs
}

// checker checks one property of the rendered objects.
type checker func(t *testing.T, objs map[string]manifest)

// TestChart renders the chart with several value sets, validates every object with
// kubeconform -strict, and checks what the chart promises in each.
func TestChart(t *testing.T) {
	tl := findTools(t)
	cases := []struct {
		name   string
		values string
		checks []checker
	}{{
		name:   "defaults (in place)",
		values: "{}",
		checks: []checker{
			podSecurity("Deployment/rel-kiln", false),
			args("Deployment/rel-kiln", "serve", "--isolation=inplace", "--host=tcp://0.0.0.0:2375",
				"--buildkit-addr=tcp://0.0.0.0:1234", "--metrics-addr=0.0.0.0:9090", "--shutdown-grace=600s", "--state-dir=/var/lib/kiln"),
			ports("Deployment/rel-kiln", map[string]int{"engine": 2375, "buildkit": 1234, "metrics": 9090}),
			servicePorts("Service/rel-kiln", map[string]int{"engine": 2375, "buildkit": 1234, "metrics": 9090}),
			httpProbes("Deployment/rel-kiln"),
			equal("Deployment/rel-kiln", 630, "spec", "template", "spec", "terminationGracePeriodSeconds"),
			present("Deployment/rel-kiln", true, "spec", "template", "spec", "volumes", "0", "emptyDir"),
			present("Deployment/rel-kiln", true, "spec", "template", "spec", "containers", "0", "resources", "limits", "memory"),
			present("Deployment/rel-kiln", true, "spec", "template", "spec", "containers", "0", "resources", "requests", "cpu"),
			absent("Secret/rel-kiln-registry", "Job/rel-kiln-build"),
		},
	}, {
		name:   "chroot (rootless)",
		values: "isolation: chroot\n",
		checks: []checker{
			podSecurity("Deployment/rel-kiln", true),
			args("Deployment/rel-kiln", "--isolation=chroot"),
		},
	}, {
		name: "a kiln without --metrics-addr and --shutdown-grace, no BuildKit listener",
		values: `serve:
  metrics: {enabled: false}
  shutdownGrace: {enabled: false, seconds: 300}
  buildkit: {enabled: false}
`,
		checks: []checker{
			noArgs("Deployment/rel-kiln", "--metrics-addr", "--shutdown-grace", "--buildkit-addr"),
			ports("Deployment/rel-kiln", map[string]int{"engine": 2375}),
			servicePorts("Service/rel-kiln", map[string]int{"engine": 2375}),
			equal("Deployment/rel-kiln", "engine", "spec", "template", "spec", "containers", "0", "readinessProbe", "tcpSocket", "port"),
			equal("Deployment/rel-kiln", "engine", "spec", "template", "spec", "containers", "0", "livenessProbe", "tcpSocket", "port"),
			equal("Deployment/rel-kiln", 330, "spec", "template", "spec", "terminationGracePeriodSeconds"),
		},
	}, {
		name: "credentials, token, PVC and a git build Job",
		values: `registryAuth:
  dockerConfigJson: '{"auths":{"registry.example":{"auth":"dTpw"}}}'
serve:
  shutdownGrace: {seconds: 1200}
  authToken: {secretName: kiln-token, key: token}
  pushOnBuild: true
  insecureRegistries: [registry.internal:5000]
state:
  persistence: {enabled: true, size: 100Gi, storageClassName: fast}
buildJob:
  enabled: true
  context: git://git.example/app.git#refs/heads/main
  destinations: [registry.example/app:1.0]
  buildArgs: [VERSION=1.0]
  cache: {enabled: true, repo: registry.example/app/cache}
  envFromSecrets: [git-token]
`,
		checks: []checker{
			equal("Secret/rel-kiln-registry", "kubernetes.io/dockerconfigjson", "type"),
			dockerConfig("Deployment/rel-kiln", "rel-kiln-registry"),
			dockerConfig("Job/rel-kiln-build", "rel-kiln-registry"),
			args("Deployment/rel-kiln", "--shutdown-grace=1200s", "--auth-token-file=/etc/kiln/auth/token", "--push-on-build", "--insecure-registry=registry.internal:5000"),
			equal("Deployment/rel-kiln", 1230, "spec", "template", "spec", "terminationGracePeriodSeconds"),
			equal("Deployment/rel-kiln", "rel-kiln-state", "spec", "template", "spec", "volumes", "0", "persistentVolumeClaim", "claimName"),
			equal("PersistentVolumeClaim/rel-kiln-state", "100Gi", "spec", "resources", "requests", "storage"),
			podSecurity("Job/rel-kiln-build", false),
			args("Job/rel-kiln-build", "build", "--context=git://git.example/app.git#refs/heads/main", "--destination=registry.example/app:1.0",
				"--build-arg=VERSION=1.0", "--cache=true", "--cache-repo=registry.example/app/cache", "--isolation=inplace"),
			equal("Job/rel-kiln-build", "Never", "spec", "template", "spec", "restartPolicy"),
			equal("Job/rel-kiln-build", "git-token", "spec", "template", "spec", "containers", "0", "envFrom", "0", "secretRef", "name"),
		},
	}, {
		name: "a bucket build Job in chroot with an existing Secret",
		values: `registryAuth: {existingSecret: push-creds}
buildJob:
  enabled: true
  isolation: chroot
  context: s3://builds/app/context.tar.gz
  destinations: [registry.example/app:2.0]
`,
		checks: []checker{
			absent("Secret/rel-kiln-registry"),
			dockerConfig("Job/rel-kiln-build", "push-creds"),
			dockerConfig("Deployment/rel-kiln", "push-creds"),
			podSecurity("Job/rel-kiln-build", true),
			args("Job/rel-kiln-build", "--context=s3://builds/app/context.tar.gz", "--isolation=chroot"),
		},
	}}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			out, err := render(t, tl, c.values)
			if err != nil {
				t.Fatal(err)
			}
			if err := kubeconform(tl, out); err != nil {
				t.Fatalf("%v\nrendered:\n%s", err, out)
			}
			objs := parse(t, out)
			for key, m := range objs {
				unprivileged(t, key, m)
			}
			for _, check := range c.checks {
				check(t, objs)
			}
		})
	}
}

// TestChartRefuses checks that values the chart cannot honour fail the render, by
// values.schema.json (a misspelt or mistyped value) or by the templates.
func TestChartRefuses(t *testing.T) {
	tl := findTools(t)
	for _, c := range []struct{ name, values, want string }{
		{"unknown isolation", "isolation: privileged\n", "at '/isolation': value must be one of"},
		{"a misspelt value", "serve:\n  metrcs: {enabled: false}\n", "metrcs"},
		{"a port that is not a number", "serve:\n  port: http\n", "at '/serve/port'"},
		{"a Job in an unknown isolation", "buildJob: {isolation: privileged}\n", "at '/buildJob/isolation'"},
		{"a Job without a context", "buildJob: {enabled: true, destinations: [r/a:1]}\n", "buildJob.context is required"},
		{"a Job with nowhere to put the image", "buildJob: {enabled: true, context: 'git://g/a.git'}\n", "buildJob.destinations"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := render(t, tl, c.values)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("render: %v, want an error containing %q", err, c.want)
			}
		})
	}
}

// TestKubeconformRejects proves the schemas are strict: a misspelt field, a wrong type
// and a kind without a schema each fail validation.
func TestKubeconformRejects(t *testing.T) {
	tl := findTools(t)
	for name, doc := range map[string]string{
		"misspelt field": "apiVersion: v1\nkind: Service\nmetadata: {name: s}\nspec:\n  ports: [{port: 80, protocl: TCP}]\n",
		"wrong type":     "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: d}\nspec:\n  replicas: many\n  selector: {}\n  template: {spec: {containers: [{name: c, image: i}]}}\n",
		"unknown kind":   "apiVersion: example.com/v1\nkind: Widget\nmetadata: {name: w}\n",
	} {
		t.Run(name, func(t *testing.T) {
			if err := kubeconform(tl, []byte(doc)); err == nil {
				t.Fatal("kubeconform accepted it")
			}
		})
	}
}

// podSpec returns the pod template's spec of a Deployment or Job.
func podSpec(t *testing.T, objs map[string]manifest, key string) map[string]any {
	t.Helper()
	m, ok := objs[key]
	if !ok {
		t.Fatalf("%s not rendered (have %v)", key, keys(objs))
	}
	s, ok := dig(m, "spec", "template", "spec").(map[string]any)
	if !ok {
		t.Fatalf("%s: no pod spec", key)
	}
	return s
}

func keys(objs map[string]manifest) []string {
	var ks []string
	for k := range objs {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	return ks
}

// unprivileged fails if any container of m is privileged or adds capabilities.
func unprivileged(t *testing.T, key string, m manifest) {
	t.Helper()
	cs, _ := dig(m, "spec", "template", "spec", "containers").([]any)
	for i, c := range cs {
		if p := dig(c, "securityContext", "privileged"); p == true {
			t.Errorf("%s container %d is privileged", key, i)
		}
		if add := dig(c, "securityContext", "capabilities", "add"); add != nil {
			t.Errorf("%s container %d adds capabilities %v", key, i, add)
		}
	}
	if dig(m, "spec", "template", "spec", "hostPID") == true || dig(m, "spec", "template", "spec", "hostNetwork") == true {
		t.Errorf("%s shares the host's PID or network namespace", key)
	}
}

// podSecurity checks the isolation mode's security context: chroot runs as non-root
// with an unmasked /proc in a user namespace; in place runs as uid 0 unprivileged.
func podSecurity(key string, chroot bool) checker {
	return func(t *testing.T, objs map[string]manifest) {
		t.Helper()
		s := podSpec(t, objs, key)
		c := dig(s, "containers", "0")
		if chroot {
			if dig(s, "securityContext", "runAsNonRoot") != true || dig(c, "securityContext", "runAsNonRoot") != true {
				t.Errorf("%s: chroot isolation without runAsNonRoot: %v", key, dig(s, "securityContext"))
			}
			if u, _ := dig(s, "securityContext", "runAsUser").(int); u == 0 {
				t.Errorf("%s: chroot isolation runs as uid 0", key)
			}
			if dig(c, "securityContext", "procMount") != "Unmasked" || dig(s, "hostUsers") != false {
				t.Errorf("%s: chroot isolation needs procMount Unmasked and hostUsers false: %v", key, s)
			}
			return
		}
		if dig(s, "securityContext", "runAsUser") != 0 {
			t.Errorf("%s: in-place isolation needs uid 0 in the container: %v", key, dig(s, "securityContext"))
		}
		if dig(c, "securityContext", "procMount") != nil || dig(s, "hostUsers") != nil {
			t.Errorf("%s: in-place isolation asks for chroot's settings: %v", key, s)
		}
	}
}

func containerArgs(t *testing.T, objs map[string]manifest, key string) []string {
	t.Helper()
	var out []string
	list, _ := dig(podSpec(t, objs, key), "containers", "0", "args").([]any)
	for _, a := range list {
		out = append(out, fmt.Sprint(a))
	}
	return out
}

// args checks that the container's arguments include want.
func args(key string, want ...string) checker {
	return func(t *testing.T, objs map[string]manifest) {
		t.Helper()
		got := containerArgs(t, objs, key)
		for _, w := range want {
			if !slices.Contains(got, w) {
				t.Errorf("%s: args %q lack %q", key, got, w)
			}
		}
	}
}

// noArgs checks that no argument starts with one of the flags.
func noArgs(key string, flags ...string) checker {
	return func(t *testing.T, objs map[string]manifest) {
		t.Helper()
		for _, a := range containerArgs(t, objs, key) {
			for _, f := range flags {
				if strings.HasPrefix(a, f) {
					t.Errorf("%s: %q given", key, a)
				}
			}
		}
	}
}

// ports checks the container ports by name, exactly.
func ports(key string, want map[string]int) checker {
	return func(t *testing.T, objs map[string]manifest) {
		t.Helper()
		got := map[string]int{}
		list, _ := dig(podSpec(t, objs, key), "containers", "0", "ports").([]any)
		for _, p := range list {
			n, _ := dig(p, "containerPort").(int)
			got[fmt.Sprint(dig(p, "name"))] = n
		}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("%s: ports %v, want %v", key, got, want)
		}
	}
}

// servicePorts checks a Service's ports by name, exactly, and that each targets the
// container port of the same name.
func servicePorts(key string, want map[string]int) checker {
	return func(t *testing.T, objs map[string]manifest) {
		t.Helper()
		got := map[string]int{}
		list, _ := dig(objs[key], "spec", "ports").([]any)
		for _, p := range list {
			n, _ := dig(p, "port").(int)
			name := fmt.Sprint(dig(p, "name"))
			got[name] = n
			if dig(p, "targetPort") != name {
				t.Errorf("%s: port %s targets %v", key, name, dig(p, "targetPort"))
			}
		}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("%s: ports %v, want %v", key, got, want)
		}
	}
}

// httpProbes checks liveness on /healthz and readiness on /readyz, on the metrics port.
func httpProbes(key string) checker {
	return func(t *testing.T, objs map[string]manifest) {
		t.Helper()
		c := dig(podSpec(t, objs, key), "containers", "0")
		for probe, path := range map[string]string{"livenessProbe": "/healthz", "readinessProbe": "/readyz"} {
			if dig(c, probe, "httpGet", "path") != path || dig(c, probe, "httpGet", "port") != "metrics" {
				t.Errorf("%s: %s is %v, want GET %s on port metrics", key, probe, dig(c, probe), path)
			}
		}
	}
}

// dockerConfig checks that the Secret is mounted read-only as config.json in the
// directory DOCKER_CONFIG names.
func dockerConfig(key, secret string) checker {
	return func(t *testing.T, objs map[string]manifest) {
		t.Helper()
		s := podSpec(t, objs, key)
		var vol string
		for _, v := range dig(s, "volumes").([]any) {
			if dig(v, "secret", "secretName") == secret {
				vol = fmt.Sprint(dig(v, "name"))
				if dig(v, "secret", "items", "0", "key") != ".dockerconfigjson" || dig(v, "secret", "items", "0", "path") != "config.json" {
					t.Errorf("%s: Secret %s is not mapped to config.json: %v", key, secret, v)
				}
			}
		}
		if vol == "" {
			t.Fatalf("%s: no volume from Secret %s", key, secret)
		}
		c := dig(s, "containers", "0")
		var mountPath any
		for _, m := range dig(c, "volumeMounts").([]any) {
			if dig(m, "name") == vol {
				mountPath = dig(m, "mountPath")
				if dig(m, "readOnly") != true {
					t.Errorf("%s: %s mounted writable", key, vol)
				}
			}
		}
		var env any
		for _, e := range dig(c, "env").([]any) {
			if dig(e, "name") == "DOCKER_CONFIG" {
				env = dig(e, "value")
			}
		}
		if mountPath == nil || mountPath != env {
			t.Errorf("%s: Secret mounted at %v, DOCKER_CONFIG=%v", key, mountPath, env)
		}
	}
}

// equal checks one field's value.
func equal(key string, want any, path ...string) checker {
	return func(t *testing.T, objs map[string]manifest) {
		t.Helper()
		m, ok := objs[key]
		if !ok {
			t.Fatalf("%s not rendered (have %v)", key, keys(objs))
		}
		if got := dig(m, path...); got != want {
			t.Errorf("%s: %s = %v (%T), want %v", key, strings.Join(path, "."), got, got, want)
		}
	}
}

// present checks that a field is (or is not) there.
func present(key string, want bool, path ...string) checker {
	return func(t *testing.T, objs map[string]manifest) {
		t.Helper()
		if got := dig(objs[key], path...) != nil; got != want {
			t.Errorf("%s: %s present = %v, want %v", key, strings.Join(path, "."), got, want)
		}
	}
}

// absent checks that objects were not rendered.
func absent(objKeys ...string) checker {
	return func(t *testing.T, objs map[string]manifest) {
		t.Helper()
		for _, k := range objKeys {
			if _, ok := objs[k]; ok {
				t.Errorf("%s rendered", k)
			}
		}
	}
}

// TestChartLint runs helm lint --strict on the chart with its defaults and with the
// build Job and chroot isolation turned on.
func TestChartLint(t *testing.T) {
	tl := findTools(t)
	dir := t.TempDir()
	for _, set := range [][]string{nil, {"--set", "isolation=chroot", "--set", "buildJob.enabled=true",
		"--set", "buildJob.context=git://g/a.git", "--set", "buildJob.destinations={r/a:1}"}} {
		args := append([]string{"lint", "--strict", filepath.Join(repoRoot(t), "deploy", "helm", "kiln")}, set...)
		cmd := exec.Command(tl.helm, args...)
		cmd.Env = append(os.Environ(), "HELM_CACHE_HOME="+dir+"/cache", "HELM_CONFIG_HOME="+dir+"/config", "HELM_DATA_HOME="+dir+"/data")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("helm %q: %v\n%s", args, err, out)
		}
	}
}
