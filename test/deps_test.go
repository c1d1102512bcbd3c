package test

import (
	"bufio"
	"os"
	"strings"
	"testing"
)

// TestDependenciesDocumented: every module go.mod requires directly has a row in
// docs/dependencies.md with the same version (what kiln uses it for and why this
// version), so no dependency changes without its reason.
func TestDependenciesDocumented(t *testing.T) {
	doc, err := os.ReadFile("../docs/dependencies.md")
	if err != nil {
		t.Fatal(err)
	}
	rows := map[string]string{} // module → version
	for _, line := range strings.Split(string(doc), "\n") {
		cells := strings.Split(line, "|")
		if len(cells) < 4 || !strings.HasPrefix(strings.TrimSpace(cells[1]), "`") {
			continue
		}
		rows[strings.Trim(strings.TrimSpace(cells[1]), "`")] = strings.TrimSpace(cells[2])
	}
	f, err := os.Open("../go.mod")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	direct := 0
	inRequire := false
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		switch {
		case line == "require (":
			inRequire = true
			continue
		case line == ")":
			inRequire = false
			continue
		case strings.HasPrefix(line, "require "):
			line = strings.TrimPrefix(line, "require ")
		case !inRequire:
			continue
		}
		if strings.Contains(line, "// indirect") {
			continue
		}
		fields := strings.Fields(line)
		if len(fields) < 2 {
			continue
		}
		direct++
		mod, version := fields[0], fields[1]
		switch got, ok := rows[mod]; {
		case !ok:
			t.Errorf("%s %s: required directly by go.mod but not in docs/dependencies.md (say what kiln uses it for and why this version)", mod, version)
		case got != version:
			t.Errorf("%s: go.mod requires %s, docs/dependencies.md says %s", mod, version, got)
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if direct < 10 {
		t.Fatalf("found only %d direct requirements in go.mod: the parser is broken", direct)
	}
}
