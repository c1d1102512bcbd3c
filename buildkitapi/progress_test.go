package buildkitapi

import (
	"testing"
	"time"

	controlapi "github.com/moby/buildkit/api/services/control"
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
