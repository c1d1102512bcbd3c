package buildkitapi

import (
	"testing"
	"time"

	controlapi "github.com/moby/buildkit/api/services/control"
	bkclient "github.com/moby/buildkit/client"
	"github.com/sirupsen/logrus"
	logtest "github.com/sirupsen/logrus/hooks/test"
)

// TestProgressTransferThrottled: a transfer reported for every packet sends a status
// at most every transferEvery, and always its last one, complete, with the total.
func TestProgressTransferThrottled(t *testing.T) {
	var statuses []*controlapi.VertexStatus
	p := newProgress(func(r *controlapi.StatusResponse) { statuses = append(statuses, r.Statuses...) })
	done := p.vertex("[internal] load build context")
	start := time.Now()
	for i := range 10000 {
		p.transfer("transferring context", int64(i), false)
	}
	p.transfer("transferring context", 10000, true)
	done(nil)
	limit := 2 + int(time.Since(start)/transferEvery)
	if len(statuses) > limit {
		t.Errorf("%d statuses for 10,001 reports in %v, want at most %d", len(statuses), time.Since(start), limit)
	}
	if len(statuses) == 0 {
		t.Fatal("no status")
	}
	last := statuses[len(statuses)-1]
	if last.Current != 10000 || last.Completed == nil {
		t.Errorf("the last status: %d bytes, completed %v; want 10000, completed", last.Current, last.Completed)
	}
}

// TestBuildDoneLoggedAfterExport: the BuildKit door logs a build's "build done" line
// once its image is exported, with the export's time among its phases, as /build does.
func TestBuildDoneLoggedAfterExport(t *testing.T) {
	lg, hook := logtest.NewNullLogger()
	lg.SetLevel(logrus.InfoLevel)
	ts := newTestServer(t, func(c *Config) { c.Log = lg })
	dir := writeFiles(t, map[string]string{"Dockerfile": "FROM " + ts.busybox + "\nCOPY a /a\n", "a": "a"})
	if _, _, err := ts.solve(t, dir, nil, bkclient.ExportEntry{Type: "image", Attrs: map[string]string{"name": "kiln-test/done:1"}}); err != nil {
		t.Fatal(err)
	}
	var done *logrus.Entry
	for _, e := range hook.AllEntries() {
		if e.Message == "build done" {
			done = e
		}
	}
	if done == nil {
		t.Fatal("no build done line")
	}
	export, ok := done.Data["phase_export"].(float64)
	if !ok || export <= 0 {
		t.Errorf("build done: phase_export %v, want the export's time", done.Data["phase_export"])
	}
}
