package contexts

import (
	"context"
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/kiln-build/kiln/nettimeout"
	"github.com/kiln-build/kiln/test/testworld"
)

// stallLimits are short limits for the stalling servers; stallSlack is how much
// later a loaded machine may report them.
var stallLimits = nettimeout.Limits{Connect: time.Second, Stall: time.Second}

const stallSlack = 5 * time.Second

// wantStall checks that err is the stall (or connect) limit naming host, reported
// within stallSlack of the limit, and that tmp holds nothing.
func wantStall(t *testing.T, err error, start time.Time, host, tmp string, connect bool) {
	t.Helper()
	want := host + ": no data for 1s (--net-stall-timeout)"
	if connect {
		want = "connect to " + host + ": no connection within 1s (--net-connect-timeout)"
	}
	var fired *nettimeout.Error
	if !errors.As(err, &fired) || !strings.Contains(err.Error(), want) {
		t.Fatalf("error = %v, want one saying %q", err, want)
	}
	if took := time.Since(start); took > time.Second+stallSlack {
		t.Errorf("failed after %s, want about 1s", took)
	}
	left, _ := os.ReadDir(tmp)
	for _, e := range left {
		t.Errorf("left behind: %s", e.Name())
	}
}

// TestOpenStalledRemotes: every fetch of a context from a server that accepts and
// then sends nothing fails at the stall limit, naming the server and the limit,
// and leaves nothing in the temporary directory.
func TestOpenStalledRemotes(t *testing.T) {
	t.Parallel()
	tcp := testworld.StallTCP(t)
	gitd := testworld.StallGit(t)
	gitHTTP := testworld.StallGitHTTP(t)
	headers := testworld.StallHTTP(t, nil, nil)
	hostOf := func(u string) string { return strings.SplitN(strings.SplitN(u, "://", 2)[1], "/", 2)[0] }

	tests := []struct {
		name    string
		spec    string
		g       GitOptions
		host    string
		connect bool
	}{
		{name: "git protocol, TCP accept and no bytes", spec: "git://" + tcp + "/repo.git", host: tcp},
		{name: "git protocol, advertisement then nothing", spec: "git://" + gitd + "/repo.git#refs/heads/main", host: gitd},
		{name: "git over http, advertisement then nothing", spec: gitHTTP, host: hostOf(gitHTTP)},
		{name: "git over http, headers then nothing", spec: headers + "/repo.git", host: hostOf(headers)},
		{name: "kaniko's git form over http, TCP accept and no bytes", spec: "git://" + tcp + "/repo.git", g: GitOptions{PullMethod: "http"}, host: tcp},
		{name: "kaniko's git form over http, advertisement then nothing", spec: "git://" + hostOf(gitHTTP) + "/repo.git", g: GitOptions{PullMethod: "http"}, host: hostOf(gitHTTP)},
		{name: "git, no handshake", spec: "git://" + testworld.FullBacklog(t) + "/repo.git", connect: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			host := tt.host
			if tt.connect {
				host = hostOf(tt.spec)
			}
			tmp := t.TempDir()
			start := time.Now()
			c, err := Open(context.Background(), tt.spec, WithGit(tt.g), WithTempDir(tmp), WithArchiveOptions(WithNetLimits(stallLimits)))
			if err == nil {
				c.Close()
			}
			wantStall(t, err, start, host, tmp, tt.connect)
		})
	}
}

// TestFromURLStalled: a remote= download whose server sends headers and then
// nothing, or nothing at all, fails at the stall limit.
func TestFromURLStalled(t *testing.T) {
	t.Parallel()
	for name, url := range map[string]string{
		"headers then nothing":    testworld.StallHTTP(t, nil, nil) + "/context.tar",
		"TCP accept and no bytes": "http://" + testworld.StallTCP(t) + "/context.tar",
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			tmp := t.TempDir()
			start := time.Now()
			_, err := FromURL(context.Background(), url, tmp+"/ctx", WithNetLimits(stallLimits))
			if err == nil {
				t.Fatal("FromURL succeeded")
			}
			os.RemoveAll(tmp + "/ctx") // FromURL's caller removes what it made
			wantStall(t, err, start, strings.SplitN(strings.TrimPrefix(url, "http://"), "/", 2)[0], tmp, false)
		})
	}
}

// TestFromBucketStalled: a bucket whose service sends the object's headers and then
// nothing fails at the stall limit. The SDKs retry a stalled request or read a few
// times (S3's retryer, Azure's retry reader), each retry held to the limit, so the
// whole wait is bounded by a few stall limits.
func TestFromBucketStalled(t *testing.T) {
	t.Setenv("AWS_ACCESS_KEY_ID", "")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "")
	t.Setenv("AWS_REGION", "us-east-1")
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	url := testworld.StallHTTP(t, nil, nil)
	host := strings.TrimPrefix(url, "http://")
	tests := []struct {
		name string
		spec string
		o    CloudOptions
	}{
		{name: "s3", spec: "s3://ctx/context.tar.gz", o: CloudOptions{S3Endpoint: url, S3ForcePathStyle: true}},
		{name: "gcs", spec: "gs://ctx/context.tar.gz", o: CloudOptions{GCSEndpoint: url}},
		{name: "azure", spec: url + "/devstoreaccount1/ctx/context.tar.gz", o: CloudOptions{AzureBlobEndpoints: []string{url + "/devstoreaccount1"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tmp := t.TempDir()
			start := time.Now()
			c, err := Open(context.Background(), tt.spec, WithCloud(tt.o), WithTempDir(tmp), WithArchiveOptions(WithNetLimits(stallLimits)))
			if err == nil {
				c.Close()
				t.Fatal("Open succeeded")
			}
			var fired *nettimeout.Error
			want := host + ": no data for 1s (--net-stall-timeout)"
			if !errors.As(err, &fired) && !strings.Contains(err.Error(), want) {
				t.Fatalf("error = %v, want one saying %q", err, want)
			}
			if took := time.Since(start); took > 8*time.Second+stallSlack {
				t.Errorf("failed after %s", took)
			}
			if left, _ := os.ReadDir(tmp); len(left) > 0 {
				t.Errorf("left behind: %v", left)
			}
		})
	}
}

// TestOpenStalledCancelled: cancelling the caller's context (a /build client gone,
// Ctrl-C) ends a stalled fetch at once, long before the stall limit, with the
// context's error rather than the limit's.
func TestOpenStalledCancelled(t *testing.T) {
	t.Parallel()
	long := nettimeout.Limits{Stall: time.Hour}
	for name, spec := range map[string]string{
		"git protocol":  "git://" + testworld.StallGit(t) + "/repo.git",
		"git over http": testworld.StallGitHTTP(t),
		"URL":           testworld.StallHTTP(t, nil, nil) + "/context.tar",
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			tmp := t.TempDir()
			ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
			defer cancel()
			start := time.Now()
			var err error
			if strings.HasSuffix(spec, ".tar") {
				_, err = FromURL(ctx, spec, tmp+"/ctx", WithNetLimits(long))
				os.RemoveAll(tmp + "/ctx")
			} else {
				var c *Context
				c, err = Open(ctx, spec, WithTempDir(tmp), WithArchiveOptions(WithNetLimits(long)))
				if err == nil {
					c.Close()
				}
			}
			var fired *nettimeout.Error
			if err == nil || errors.As(err, &fired) {
				t.Fatalf("error = %v, want the context's", err)
			}
			if took := time.Since(start); took > stallSlack {
				t.Errorf("the cancelled fetch returned after %s", took)
			}
			if left, _ := os.ReadDir(tmp); len(left) > 0 {
				t.Errorf("left behind: %v", left)
			}
		})
	}
}
