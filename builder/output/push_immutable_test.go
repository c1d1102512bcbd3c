package output_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/kiln-build/kiln/builder/output"
)

var manifestByTag = regexp.MustCompile(`^/v2/(.+)/manifests/([^/:]+)$`)

// fakeECRImmutability is a hand-written fake of ECR's tag immutability, in front of
// a real registry: a manifest PUT to a tag that already exists is refused with the
// status, code and message ECR answers (400 TAG_INVALID, "... cannot be overwritten
// because the repository is immutable."). It counts those PUTs in refused.
func fakeECRImmutability(refused *atomic.Int64) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			m := manifestByTag.FindStringSubmatch(r.URL.Path)
			if r.Method == http.MethodPut && m != nil {
				head := httptest.NewRequest(http.MethodHead, r.URL.Path, nil)
				rec := httptest.NewRecorder()
				next.ServeHTTP(rec, head)
				if rec.Code == http.StatusOK {
					refused.Add(1)
					w.Header().Set("Content-Type", "application/json; charset=utf-8")
					w.WriteHeader(http.StatusBadRequest)
					fmt.Fprintf(w, `{"errors":[{"code":"TAG_INVALID","message":"The image tag '%s' already exists in the '%s' repository and cannot be overwritten because the repository is immutable."}]}`, m[2], m[1])
					return
				}
			}
			next.ServeHTTP(w, r)
		})
	}
}

func TestPushImmutableTag(t *testing.T) {
	t.Parallel()
	var refused atomic.Int64
	host := newRegistry(t, fakeECRImmutability(&refused))
	ref := mustRef(t, host+"/app:v1")
	first := randomImage(t)
	firstDigest, err := output.Push(context.Background(), first, []name.Reference{ref})
	if err != nil {
		t.Fatalf("first push: %v", err)
	}

	tests := []struct {
		name    string
		ignore  bool
		wantErr bool
	}{
		{name: "refused without the option", wantErr: true},
		{name: "ignored with the option", ignore: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := refused.Load()
			var mu sync.Mutex
			var warned []string
			opts := []output.PushOption{output.WithRetries(3), output.WithRetryBackoff(time.Millisecond)}
			if tt.ignore {
				opts = append(opts, output.WithIgnoreImmutableTagErrors(func(r name.Reference, err error) {
					mu.Lock()
					defer mu.Unlock()
					warned = append(warned, r.String()+": "+err.Error())
				}))
			}
			second := randomImage(t)
			_, err := output.Push(context.Background(), second, []name.Reference{ref}, opts...)
			if tt.wantErr {
				if err == nil {
					t.Fatal("push over an immutable tag succeeded")
				}
				if !strings.Contains(err.Error(), ref.String()) || !strings.Contains(err.Error(), "immutable") {
					t.Errorf("error does not name the tag and the cause: %v", err)
				}
			} else {
				if err != nil {
					t.Fatalf("push with immutable tag errors ignored: %v", err)
				}
				if len(warned) != 1 || !strings.HasPrefix(warned[0], ref.String()) {
					t.Errorf("warnings = %q, want one for %s", warned, ref)
				}
			}
			if got := refused.Load() - before; got != 1 {
				t.Errorf("the registry refused %d manifest PUTs; an immutable tag must not be retried", got)
			}
			// Either way the tag still holds the first image.
			desc, err := remote.Head(ref)
			if err != nil {
				t.Fatal(err)
			}
			if desc.Digest != firstDigest {
				t.Errorf("tag moved to %s, want %s", desc.Digest, firstDigest)
			}
		})
	}
}

func TestPushOtherErrorsNotIgnored(t *testing.T) {
	t.Parallel()
	host := newRegistry(t, func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Method == http.MethodPut && manifestByTag.MatchString(r.URL.Path) {
				w.Header().Set("Content-Type", "application/json")
				w.WriteHeader(http.StatusBadRequest)
				fmt.Fprint(w, `{"errors":[{"code":"MANIFEST_INVALID","message":"manifest invalid"}]}`)
				return
			}
			next.ServeHTTP(w, r)
		})
	})
	_, err := output.Push(context.Background(), randomImage(t), []name.Reference{mustRef(t, host+"/app:v1")},
		output.WithIgnoreImmutableTagErrors(func(name.Reference, error) { t.Error("a non-immutability error was ignored") }))
	if err == nil || !strings.Contains(err.Error(), "MANIFEST_INVALID") {
		t.Errorf("err = %v, want MANIFEST_INVALID", err)
	}
}
