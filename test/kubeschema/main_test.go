package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

// TestGenerate converts a miniature spec and checks the file names kubeconform looks
// for, the strictness and the $defs closure.
func TestGenerate(t *testing.T) {
	spec := `{"definitions": {
	  "io.k8s.api.apps.v1.Deployment": {"type": "object",
	    "properties": {"spec": {"$ref": "#/definitions/io.k8s.api.apps.v1.DeploymentSpec"}},
	    "x-kubernetes-group-version-kind": [{"group": "apps", "version": "v1", "kind": "Deployment"}]},
	  "io.k8s.api.apps.v1.DeploymentSpec": {"type": "object",
	    "properties": {"replicas": {"type": "integer"}, "port": {"type": "string", "format": "int-or-string"},
	      "labels": {"type": "object", "additionalProperties": {"type": "string"}}}},
	  "io.k8s.api.core.v1.Service": {"type": "object", "properties": {"kind": {"type": "string"}},
	    "x-kubernetes-group-version-kind": [{"group": "", "version": "v1", "kind": "Service"}]},
	  "io.k8s.api.networking.v1.Ingress": {"type": "object",
	    "x-kubernetes-group-version-kind": [{"group": "networking.k8s.io", "version": "v1", "kind": "Ingress"}]},
	  "io.k8s.unused.Thing": {"type": "object"}
	}}`
	dir := t.TempDir()
	p := filepath.Join(dir, "swagger.json")
	if err := os.WriteFile(p, []byte(spec), 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "out")
	n, err := generate(p, out)
	if err != nil {
		t.Fatal(err)
	}
	entries, _ := os.ReadDir(out)
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	want := []string{"deployment-apps-v1.json", "ingress-networking-v1.json", "service-v1.json"}
	if n != 3 || !reflect.DeepEqual(names, want) {
		t.Fatalf("files %v (n=%d), want %v", names, n, want)
	}
	var d struct {
		Ref  string                    `json:"$ref"`
		Defs map[string]map[string]any `json:"$defs"`
	}
	b, _ := os.ReadFile(filepath.Join(out, "deployment-apps-v1.json"))
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatal(err)
	}
	if d.Ref != "#/$defs/io.k8s.api.apps.v1.Deployment" || len(d.Defs) != 2 {
		t.Fatalf("ref %q, defs %d: %s", d.Ref, len(d.Defs), b)
	}
	specDef := d.Defs["io.k8s.api.apps.v1.DeploymentSpec"]
	if specDef["additionalProperties"] != false {
		t.Errorf("DeploymentSpec is not strict: %v", specDef)
	}
	props := specDef["properties"].(map[string]any)
	if _, ok := props["port"].(map[string]any)["oneOf"]; !ok {
		t.Errorf("int-or-string not turned into oneOf: %v", props["port"])
	}
	if ap := props["labels"].(map[string]any)["additionalProperties"]; !reflect.DeepEqual(ap, map[string]any{"type": "string"}) {
		t.Errorf("a map's additionalProperties was changed: %v", ap)
	}
	if ref := d.Defs["io.k8s.api.apps.v1.Deployment"]["properties"].(map[string]any)["spec"].(map[string]any)["$ref"]; ref != "#/$defs/io.k8s.api.apps.v1.DeploymentSpec" {
		t.Errorf("ref not rewritten: %v", ref)
	}
}
