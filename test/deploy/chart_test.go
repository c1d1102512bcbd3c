package deploy

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
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
			// In place, the pod lets kiln give each RUN the namespaces that hide its
			// credentials (docs/security.md), and kiln refuses to start without them.
			equal("Deployment/rel-kiln", "Unconfined", "spec", "template", "spec", "securityContext", "seccompProfile", "type"),
			args("Deployment/rel-kiln", "serve", "--isolation=inplace", "--inplace-namespaces=on", "--host=tcp://0.0.0.0:2375",
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
			noArgs("Deployment/rel-kiln", "--inplace-namespaces"),
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
			args("Deployment/rel-kiln", "--shutdown-grace=1200s", "--auth-token-file=/kiln/auth/token", "--push-on-build", "--insecure-registry=registry.internal:5000"),
			equal("Deployment/rel-kiln", 1230, "spec", "template", "spec", "terminationGracePeriodSeconds"),
			equal("Deployment/rel-kiln", "rel-kiln-state", "spec", "template", "spec", "volumes", "0", "persistentVolumeClaim", "claimName"),
			equal("PersistentVolumeClaim/rel-kiln-state", "100Gi", "spec", "resources", "requests", "storage"),
			podSecurity("Job/rel-kiln-build", false),
			args("Job/rel-kiln-build", "build", "--context=git://git.example/app.git#refs/heads/main", "--destination=registry.example/app:1.0",
				"--build-arg=VERSION=1.0", "--cache=true", "--cache-repo=registry.example/app/cache", "--isolation=inplace", "--inplace-namespaces=on"),
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
