package deploy

import (
	"fmt"
	"slices"
	"strings"
	"testing"
)

// The properties TestChart checks on rendered objects.

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
