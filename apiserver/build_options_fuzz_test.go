package apiserver

import (
	"net/url"
	"testing"
)

// FuzzParseBuildOptions: any query string gives options or a 4xx error, never a panic.
func FuzzParseBuildOptions(f *testing.F) {
	for _, seed := range []string{
		"t=a:1&t=b&buildargs=%7B%22A%22%3Anull%7D&labels=%7B%7D&q=1&rm=0",
		"buildargs=%7Bbad", "t=UPPER", "platform=linux/arm64/v8&target=x&networkmode=host",
		"remote=git://example.invalid/x.git", "version=2", "shmsize=-1&memory=abc",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		q, err := url.ParseQuery(raw)
		if err != nil {
			return
		}
		o, apiErr := parseBuildOptions(q)
		if apiErr == nil && o == nil {
			t.Fatal("no options and no error")
		}
		if apiErr != nil && (apiErr.status < 400 || apiErr.status > 599) {
			t.Fatalf("error status %d for %q", apiErr.status, raw)
		}
	})
}
