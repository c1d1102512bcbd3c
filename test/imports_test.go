package test

import (
	"bufio"
	"bytes"
	"os/exec"
	"slices"
	"strings"
	"testing"
)

const module = "github.com/kiln-build/kiln"

// allowed lists, for each kiln package, the kiln packages it may import (DESIGN.md §2).
// Leaf packages import none. A package missing here fails the test, so a new package
// has to take a place in the table.
var allowed = map[string][]string{
	"compression":                 nil, // a leaf every reader of compressed streams shares: sniffing, bounded zstd
	"atomicfile":                  nil, // a leaf the stores and caches share: replace a small file durably
	"compression/compressiontest": nil, // streams that test compression's bounds
	"ctxio":                       nil, // a leaf every long copy shares: a reader that stops when its context ends
	"snapshot":                    {"compression"},
	"isolation":                   nil,
	"nettimeout":                  nil, // a leaf the other fetching leaves share: the network limits
	"fetchpolicy":                 nil, // a leaf: which addresses a fetch for a client may reach (SSRF)
	"contexts":                    {"nettimeout", "compression", "ctxio"},
	"credentials":                 {"nettimeout"},
	"builder/copier":              {"snapshot", "nettimeout", "compression"},
	"builder/output":              {"credentials", "nettimeout"},
	"builder/registrycache":       {"builder", "snapshot", "nettimeout"},
	"builder":                     {"snapshot", "isolation", "contexts", "credentials", "builder/copier", "nettimeout", "ctxio", "atomicfile"},
	"store":                       {"compression", "ctxio", "atomicfile"},
	"apiserver":                   {"builder", "builder/output", "contexts", "credentials", "store", "nettimeout", "compression", "ctxio"},
	"buildkitapi":                 {"builder", "builder/output", "builder/registrycache", "contexts", "credentials", "store", "nettimeout"}, // the BuildKit front door: never apiserver, its sibling
	"cmd/kiln":                    {"*"},
	"test":                        {"*"},
	"test/testworld":              {"*"},
	"test/e2e":                    {"*"},
	"test/conformance":            {"*"},
	"test/deploy":                 {"*"},
	"test/kubeschema":             {"*"},
}

// engineOnly lists libraries that carry a rule of the engine, which front doors get
// through builder rather than apply themselves (DESIGN.md §2: a front door holds no
// build rule of its own).
var engineOnly = map[string]string{
	"github.com/gofrs/flock": "the in-place build lock is builder.Build's",
}

// frontDoors are the packages that turn a protocol into a builder.Request.
var frontDoors = []string{"apiserver", "buildkitapi", "cmd/kiln"}

func TestImportDirection(t *testing.T) {
	out, err := exec.Command("go", "list", "-f", "{{.ImportPath}} {{join .Imports \" \"}}", module+"/...").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		pkg := strings.TrimPrefix(strings.TrimPrefix(fields[0], module), "/")
		rules, ok := allowed[pkg]
		if !ok {
			t.Errorf("package %q has no entry in the import-direction table", pkg)
			continue
		}
		for _, imp := range fields[1:] {
			if why, ok := engineOnly[imp]; ok && slices.Contains(frontDoors, pkg) {
				t.Errorf("front door %s imports %s: %s", pkg, imp, why)
			}
			if !strings.HasPrefix(imp, module+"/") {
				continue
			}
			dep := strings.TrimPrefix(imp, module+"/")
			if !permitted(rules, dep) {
				t.Errorf("%s imports %s: not allowed (DESIGN.md §2)", pkg, dep)
			}
		}
	}
}

func permitted(rules []string, dep string) bool {
	for _, r := range rules {
		if r == "*" || r == dep {
			return true
		}
	}
	return false
}
