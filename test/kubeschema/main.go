// Command kubeschema turns the Kubernetes OpenAPI v2 spec (api/openapi-spec/swagger.json
// of the k8s.io/kubernetes Go module) into the JSON schemas kubeconform reads, one file
// per kind and API version, so deploy/helm/kiln is validated offline
// (scripts/deploy-tools.sh runs it; test/deploy uses the result).
//
// The layout is kubeconform's "standalone-strict" one, read with
// -schema-location 'DIR/{{ .ResourceKind }}{{ .KindSuffix }}.json': the file for
// apps/v1 Deployment is deployment-apps-v1.json, for v1 Service service-v1.json. Each
// file holds the kind's schema with every definition it refers to under $defs, and
// every object that lists its properties refuses others (additionalProperties: false),
// so a misspelt field fails validation.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

func main() {
	spec := flag.String("spec", "", "path of swagger.json (Kubernetes OpenAPI v2)")
	out := flag.String("out", "", "directory to write the schemas to")
	flag.Parse()
	if *spec == "" || *out == "" {
		fmt.Fprintln(os.Stderr, "usage: kubeschema -spec swagger.json -out DIR")
		os.Exit(2)
	}
	n, err := generate(*spec, *out)
	if err != nil {
		fmt.Fprintln(os.Stderr, "kubeschema:", err)
		os.Exit(1)
	}
	fmt.Fprintf(os.Stderr, "kubeschema: %d schemas in %s\n", n, *out)
}

// swagger is the part of an OpenAPI v2 document kubeschema reads.
type swagger struct {
	Definitions map[string]any `json:"definitions"`
}

// gvk is one entry of a definition's x-kubernetes-group-version-kind.
type gvk struct{ Group, Version, Kind string }

// generate writes one schema file per kind of the spec at specPath into outDir and
// returns how many it wrote.
func generate(specPath, outDir string) (int, error) {
	b, err := os.ReadFile(specPath)
	if err != nil {
		return 0, err
	}
	var doc swagger
	if err := json.Unmarshal(b, &doc); err != nil {
		return 0, fmt.Errorf("%s: %w", specPath, err)
	}
	if len(doc.Definitions) == 0 {
		return 0, fmt.Errorf("%s: no definitions", specPath)
	}
	if err := os.MkdirAll(outDir, 0o755); err != nil {
		return 0, err
	}
	files := map[string]map[string]any{}
	for name, def := range doc.Definitions {
		for _, k := range kinds(def) {
			files[fileName(k)] = standalone(doc.Definitions, name)
		}
	}
	names := make([]string, 0, len(files))
	for f := range files {
		names = append(names, f)
	}
	sort.Strings(names)
	for _, f := range names {
		data, err := json.MarshalIndent(files[f], "", " ")
		if err != nil {
			return 0, fmt.Errorf("%s: %w", f, err)
		}
		if err := os.WriteFile(filepath.Join(outDir, f), data, 0o644); err != nil {
			return 0, err
		}
	}
	return len(names), nil
}

// kinds returns the group/version/kinds a definition is the schema of.
func kinds(def any) []gvk {
	m, _ := def.(map[string]any)
	list, _ := m["x-kubernetes-group-version-kind"].([]any)
	var out []gvk
	for _, e := range list {
		em, _ := e.(map[string]any)
		g, _ := em["group"].(string)
		v, _ := em["version"].(string)
		k, _ := em["kind"].(string)
		if v != "" && k != "" {
			out = append(out, gvk{g, v, k})
		}
	}
	return out
}

// fileName is kubeconform's {{ .ResourceKind }}{{ .KindSuffix }}.json for k: the kind
// in lower case, the first label of the group, the version.
func fileName(k gvk) string {
	suffix := ""
	if k.Group != "" {
		suffix = "-" + strings.ToLower(strings.Split(k.Group, ".")[0])
	}
	return strings.ToLower(k.Kind) + suffix + "-" + strings.ToLower(k.Version) + ".json"
}

const refPrefix = "#/definitions/"

// standalone returns the schema of definition name with every definition it reaches
// under $defs, made strict.
func standalone(defs map[string]any, name string) map[string]any {
	used := map[string]any{}
	var visit func(string)
	visit = func(n string) {
		if _, ok := used[n]; ok {
			return
		}
		used[n] = nil // mark before recursing: definitions refer to themselves
		def, ok := defs[n]
		if !ok {
			used[n] = map[string]any{} // a dangling reference accepts anything
			return
		}
		conv, refs := convert(n, def)
		used[n] = conv
		for _, r := range refs {
			visit(r)
		}
	}
	visit(name)
	return map[string]any{
		"$schema": "https://json-schema.org/draft/2020-12/schema",
		"$ref":    "#/$defs/" + name,
		"$defs":   used,
	}
}

// convert returns a strict JSON Schema copy of the OpenAPI schema v (definition name)
// and the definitions it refers to.
func convert(name string, v any) (any, []string) {
	switch name {
	case "io.k8s.apimachinery.pkg.util.intstr.IntOrString":
		return map[string]any{"oneOf": []any{map[string]any{"type": "string"}, map[string]any{"type": "integer"}}}, nil
	case "io.k8s.apimachinery.pkg.api.resource.Quantity":
		return map[string]any{"oneOf": []any{map[string]any{"type": "string"}, map[string]any{"type": "number"}}}, nil
	}
	var refs []string
	var walk func(any) any
	walk = func(v any) any {
		switch x := v.(type) {
		case map[string]any:
			out := make(map[string]any, len(x)+1)
			for k, e := range x {
				switch {
				case k == "$ref":
					s, _ := e.(string)
					if r, ok := strings.CutPrefix(s, refPrefix); ok {
						refs = append(refs, r)
						out[k] = "#/$defs/" + r
						continue
					}
					out[k] = e
				case strings.HasPrefix(k, "x-kubernetes-"):
					// annotations for clients, not validation keywords
				case k == "properties" || k == "patternProperties":
					// a map of names to schemas: walk the schemas, keep the names
					pm, _ := e.(map[string]any)
					np := make(map[string]any, len(pm))
					for pn, ps := range pm {
						np[pn] = walk(ps)
					}
					out[k] = np
				default:
					out[k] = walk(e)
				}
			}
			if f, _ := out["format"].(string); f == "int-or-string" {
				delete(out, "format")
				delete(out, "type")
				out["oneOf"] = []any{map[string]any{"type": "string"}, map[string]any{"type": "integer"}}
			}
			if _, ok := out["properties"]; ok {
				if _, set := out["additionalProperties"]; !set {
					out["additionalProperties"] = false
				}
			}
			return out
		case []any:
			out := make([]any, len(x))
			for i, e := range x {
				out[i] = walk(e)
			}
			return out
		}
		return v
	}
	return walk(v), refs
}
