package apiserver

import (
	"net/url"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/kiln-build/kiln/builder"
)

func str(s string) *string { return &s }

func TestParseBuildOptions(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		query string
		want  *buildOptions // compared without tags (see typed)
		// or an error answered before the build
		status int
		msg    string
	}{{
		name:  "what the CLI sends for docker build -t app .",
		query: "dockerfile=Dockerfile&t=app&version=1",
		want:  &buildOptions{dockerfile: "Dockerfile", typed: []string{"app"}},
	}, {
		name:  "build-misc-flags-ok's resource limits are the build's (without its cgroupparent)",
		query: `buildargs=%7B%22X%22%3A%22a%3Db%22%7D&cachefrom=%5B%22busybox%3Alocal%22%5D&cpuperiod=100000&cpuquota=50000&cpusetcpus=0&cpusetmems=0&cpushares=512&dockerfile=Dockerfile&forcerm=1&memory=268435456&memswap=536870912&rm=0&shmsize=134217728&t=apicap-misc&ulimits=%5B%7B%22Name%22%3A%22nofile%22%2C%22Hard%22%3A2048%2C%22Soft%22%3A1024%7D%5D&version=1`,
		want: &buildOptions{dockerfile: "Dockerfile", typed: []string{"apicap-misc"}, buildArgs: map[string]*string{"X": str("a=b")}, cacheFrom: []string{"busybox:local"},
			limits: builder.Limits{
				Memory: 268435456, MemorySwap: 536870912, CPUShares: 512, CPUQuota: 50000, CPUPeriod: 100000,
				CPUSetCPUs: "0", CPUSetMems: "0", ShmSize: 134217728,
				Ulimits: []builder.Ulimit{{Name: "nofile", Soft: 1024, Hard: 2048}},
			}},
	}, {
		name:  "what the classic docker CLI sends without resource flags: no limits",
		query: `cgroupparent=&cpuperiod=0&cpuquota=0&cpusetcpus=&cpusetmems=&cpushares=0&memory=0&memswap=0&shmsize=0&ulimits=null&version=1`,
		want:  &buildOptions{},
	}, {
		name: "cgroupparent is refused", query: "cgroupparent=apicap",
		status: 400, msg: "cgroupparent (--cgroup-parent) is not supported by kiln: the server puts each RUN in a cgroup of its own under its own",
	}, {
		name: "memory not a number", query: "memory=1g",
		status: 400, msg: `memory: "1g" is not a number of bytes or microseconds`,
	}, {
		name: "memswap not a number", query: "memswap=x",
		status: 400, msg: `memswap: "x" is not a number of bytes or microseconds`,
	}, {
		name: "cpushares not a number", query: "cpushares=x",
		status: 400, msg: `cpushares: "x" is not a number of bytes or microseconds`,
	}, {
		name: "cpuquota not a number", query: "cpuquota=x",
		status: 400, msg: `cpuquota: "x" is not a number of bytes or microseconds`,
	}, {
		name: "cpuperiod not a number", query: "cpuperiod=x",
		status: 400, msg: `cpuperiod: "x" is not a number of bytes or microseconds`,
	}, {
		name: "shmsize not a number", query: "shmsize=64m",
		status: 400, msg: `shmsize: "64m" is not a number of bytes or microseconds`,
	}, {
		name: "ulimits not JSON", query: "ulimits={",
		status: 400, msg: "error reading ulimit settings: unexpected end of JSON input",
	}, {
		name: "ulimits with an unknown name", query: `ulimits=[{"Name":"bogus","Soft":1,"Hard":1}]`,
		status: 400,
	}, {
		name: "ulimits soft above hard", query: `ulimits=[{"Name":"nofile","Soft":10,"Hard":5}]`,
		status: 400, msg: "ulimits: ulimit nofile: soft limit 10 must not exceed hard limit 5",
	}, {
		name:  "build args with null, labels, target, platform, quiet, repeated t",
		query: `buildargs={"A":"1","UNSET":null}&labels={"l":"v"}&target=base&platform=Linux/AMD64&q=1&t=a&t=127.0.0.1:5000/b:2&networkmode=host&nocache=1&pull=1`,
		want: &buildOptions{
			typed: []string{"a", "127.0.0.1:5000/b:2"}, buildArgs: map[string]*string{"A": str("1"), "UNSET": nil},
			labels: map[string]string{"l": "v"}, target: "base", platform: "linux/amd64", quiet: true, noCache: true, pull: true,
		},
	}, {
		name:  "networkmode=none takes RUN's network away (docker build --network=none)",
		query: "networkmode=none",
		want:  &buildOptions{noNetwork: true},
	}, {
		name:  "networkmode=bridge is the server's network",
		query: "networkmode=bridge",
		want:  &buildOptions{},
	}, {
		name:  "q=false is false, as dockerd's BoolValue reads it",
		query: "q=false",
		want:  &buildOptions{},
	}, {
		name:  "remote http URL",
		query: "remote=http://127.0.0.1:8080/ctx.tar.gz",
		want:  &buildOptions{remote: "http://127.0.0.1:8080/ctx.tar.gz"},
	}, {
		name: "bad build args (curl-build-badquery)", query: "buildargs=notjson",
		status: 400, msg: "error reading build args: invalid character 'o' in literal null (expecting 'u')",
	}, {
		name: "bad labels", query: "labels=[1]",
		status: 400, msg: "error reading labels: json: cannot unmarshal array into Go value of type map[string]string",
	}, {
		name: "bad cachefrom", query: "cachefrom={",
		status: 400, msg: "error reading cache-from: unexpected end of JSON input",
	}, {
		name: "invalid tag", query: "t=ok&t=Upper",
		status: 400, msg: "invalid reference format: repository name (library/Upper) must be lowercase",
	}, {
		name: "tag with a digest", query: "t=app@sha256:" + "0123456789012345678901234567890123456789012345678901234567890123",
		status: 400,
	}, {
		name: "version 2 is BuildKit", query: "version=2",
		status: 400, msg: "BuildKit (version=2) is not supported by kiln: use the classic builder (DOCKER_BUILDKIT=0 docker build, or a docker CLI without buildx)",
	}, {
		name: "version 3 (curl-build-badquery)", query: "version=3",
		status: 500, msg: `invalid version "3"`,
	}, {
		name: "isolation (build-isolation-bad)", query: "isolation=hyperv",
		status: 400, msg: `Unsupported isolation: "hyperv"`,
	}, {
		name:  "isolation default",
		query: "isolation=default",
		want:  &buildOptions{},
	}, {
		name: "security options (build-misc-flags)", query: "securityopt=seccomp%3Dunconfined",
		status: 400, msg: "The daemon on this platform does not support setting security options on build",
	}, {
		name: "squash", query: "squash=1",
		status: 400, msg: "squash is only supported with experimental mode",
	}, {
		name: "extra hosts", query: "extrahosts=foo:1.2.3.4",
		status: 400, msg: "extrahosts (--add-host) is not supported by kiln: RUN sees the server's /etc/hosts",
	}, {
		name: "a named network", query: "networkmode=mynet",
		status: 400, msg: `network mode "mynet" is not supported by kiln: RUN uses the server's network`,
	}, {
		name: "a bad platform", query: "platform=linux/amd64/v2/x",
		status: 400,
	}, {
		name: "git remote", query: "remote=https://github.com/kiln-build/kiln.git%23main",
		want: &buildOptions{remote: "https://github.com/kiln-build/kiln.git#main"},
	}, {
		name: "git@ remote", query: "remote=git@github.com:kiln-build/kiln.git",
		want: &buildOptions{remote: "git@github.com:kiln-build/kiln.git"},
	}, {
		name: "bucket remote", query: "remote=s3://bucket/ctx.tar",
		want: &buildOptions{remote: "s3://bucket/ctx.tar"},
	}, {
		name: "other remote", query: "remote=ftp://host/ctx.tar",
		status: 400, msg: `remote context "ftp://host/ctx.tar" is not supported: give a git repository, an http(s) URL of a tar or a Dockerfile, or an s3:// or gs:// archive`,
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			q, err := url.ParseQuery(tt.query)
			if err != nil {
				t.Fatal(err)
			}
			got, aerr := parseBuildOptions(q)
			if tt.status != 0 {
				if aerr == nil {
					t.Fatalf("accepted, want HTTP %d %q", tt.status, tt.msg)
				}
				if aerr.status != tt.status || (tt.msg != "" && aerr.msg != tt.msg) {
					t.Fatalf("HTTP %d %q, want %d %q", aerr.status, aerr.msg, tt.status, tt.msg)
				}
				return
			}
			if aerr != nil {
				t.Fatalf("refused: HTTP %d %q", aerr.status, aerr.msg)
			}
			if len(got.tags) != len(got.typed) {
				t.Errorf("%d tags for %d typed", len(got.tags), len(got.typed))
			}
			got.tags = nil
			if diff := cmp.Diff(tt.want, got, cmp.AllowUnexported(buildOptions{})); diff != "" {
				t.Errorf("options (-want +got):\n%s", diff)
			}
		})
	}
}

func TestBoolValue(t *testing.T) {
	t.Parallel()
	for s, want := range map[string]bool{"": false, "0": false, "no": false, "FALSE": false, "none": false, "1": true, "true": true, "yes": true, "x": true} {
		if got := boolValue(s); got != want {
			t.Errorf("boolValue(%q) = %v, want %v", s, got, want)
		}
	}
}

func TestNamesRegistry(t *testing.T) {
	t.Parallel()
	for s, want := range map[string]bool{
		"app": false, "u/app:1": false, "127.0.0.1:5000/app": true, "localhost/app": true,
		"ghcr.io/x/y": true, "docker.io/library/busybox": true, "localhost": false,
	} {
		if got := namesRegistry(s); got != want {
			t.Errorf("namesRegistry(%q) = %v, want %v", s, got, want)
		}
	}
}
