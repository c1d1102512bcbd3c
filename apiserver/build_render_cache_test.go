package apiserver

import (
	"context"
	"encoding/json"
	"net/http/httptest"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/kiln-build/kiln/builder"
)

// A step taken from the cache reads as dockerd's classic builder writes it:
// " ---> Using cache" between the step and its ID.
func TestRenderCacheHit(t *testing.T) {
	t.Parallel()
	rec := httptest.NewRecorder()
	o := newBuildOutput(context.Background(), rec, false)
	id := v1.Hash{Algorithm: "sha256", Hex: strings.Repeat("cd", 32)}
	for _, e := range []builder.Event{
		builder.StepStarted{Step: 2, Total: 2, Stage: "0", Line: 2, Text: "RUN make"},
		builder.CacheMiss{Step: 2, Text: "RUN make", Reason: "never shown"},
		builder.CacheHit{Step: 2, Text: "RUN make"},
		builder.StepDone{Step: 2, ImageID: id},
	} {
		o.event(e)
	}
	o.built(id, nil)
	var lines []string
	dec := json.NewDecoder(rec.Body)
	for dec.More() {
		var m struct{ Stream string }
		if err := dec.Decode(&m); err != nil {
			t.Fatal(err)
		}
		lines = append(lines, m.Stream)
	}
	got := strings.Join(lines, "")
	want := "Step 2/2 : RUN make\n ---> Using cache\n ---> cdcdcdcdcdcd\nSuccessfully built cdcdcdcdcdcd\n"
	if got != want {
		t.Errorf("stream:\n%s\nwant:\n%s", got, want)
	}
}
