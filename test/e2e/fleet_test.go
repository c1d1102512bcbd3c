package e2e

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kiln-build/kiln/test/testworld"
)

// fleetDockerfiles are the fleet test's workloads: small ones on busybox, each with a
// RUN that writes NONCE first, so that a test run starts from an empty cache.
var fleetDockerfiles = []string{
	"FROM {{base}}\nRUN echo NONCE > /nonce\nENV APP=small\nCMD [\"cat\", \"/nonce\"]\n",
	"FROM {{base}}\nRUN echo NONCE > /nonce\nCOPY file.txt /srv/file.txt\nRUN wc -c /srv/file.txt > /srv/size\n",
	"FROM {{base}}\nRUN echo NONCE > /nonce\nRUN seq 1 2000 > /seq && sha256sum /seq > /sum\nRUN tail -n 1 /seq > /last\n",
	"FROM {{base}}\nRUN echo NONCE > /nonce\nWORKDIR /app\nCOPY . .\nRUN ls -la > /listing\nLABEL fleet=4\n",
	"FROM {{base}}\nRUN echo NONCE > /nonce\nRUN mkdir -p /data && echo owned > /data/x && chown -R 1000 /data\nUSER 1000\n",
}

var (
	fleetStep  = regexp.MustCompile(`(?m)^Step \d+/(\d+) : `)
	fleetCache = regexp.MustCompile(`(?m)^ ---> Using cache$`)
)

// fleetBuild is one docker build through the load balancer.
type fleetBuild struct {
	df        int
	tag       string
	pod       int // the pod whose store holds the tag
	steps     int // steps but FROM
	hits      int // " ---> Using cache"
	firstHere bool
	out       string
	err       error
}

// TestFleetSharesOneCache starts three kiln serve processes (chroot isolation, state
// directories of their own, one --cache-repo in the test world's registry) behind
// HAProxy (round robin, loopback), and runs 30 docker builds (DOCKER_BUILDKIT=0, the
// real CLI) of 5 Dockerfiles from 6 clients through it: the first build of each
// Dockerfile, then 25 rebuilds. Every build succeeds, every rebuild takes every step
// from the cache, including those that run on a pod that never built that Dockerfile
// (its local cache is empty: the steps came from the registry). The hit rate and
// builds per minute are logged ("fleet:" lines) and quoted in docs/scaling.md.
func TestFleetSharesOneCache(t *testing.T) {
	testworld.RequireRoot(t)
	reg := testworld.Registry(t)
	busybox := testworld.Busybox(t)
	docker, err := exec.LookPath("docker")
	if err != nil {
		t.Skipf("no docker CLI: %v", err)
	}
	nonce := uniqueTag()
	repo := reg + "/kiln-test/fleet-" + nonce
	pods := make([]*server, 3)
	var backends []string
	for i := range pods {
		port := freeLoopbackPort(t)
		backends = append(backends, net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
		pods[i] = startServer(t, "-H", "tcp://"+backends[i], "--cache-repo", repo, "--max-concurrent-builds", "2")
	}
	t.Cleanup(func() { // leave the registry as it was
		out, code := tryRun(testworld.KilnBinary(t), "cache", "gc", "--repo", repo, "--cache-ttl", "1ms")
		if code != 0 {
			t.Errorf("kiln cache gc --repo: exit %d\n%s", code, out)
		}
	})
	lb := "tcp://" + testworld.HAProxy(t, backends...)

	contexts := make([]string, len(fleetDockerfiles))
	for i, df := range fleetDockerfiles {
		df = strings.ReplaceAll(strings.ReplaceAll(df, "{{base}}", busybox), "NONCE", nonce+"-"+strconv.Itoa(i))
		contexts[i] = writeContext(t, map[string]string{"Dockerfile": df, "file.txt": strings.Repeat("fleet ", 100*(i+1))})
	}
	builtOn := make([]map[int]bool, len(pods)) // pod -> Dockerfiles it built
	for i := range builtOn {
		builtOn[i] = map[int]bool{}
	}
	var mu sync.Mutex
	run := func(client, df int) *fleetBuild {
		b := &fleetBuild{df: df, tag: fmt.Sprintf("kiln-fleet/df%d:%s-c%d-%s", df, nonce, client, uniqueTag())}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, docker, "build", "-t", b.tag, contexts[df])
		cmd.Env = append(os.Environ(), "DOCKER_HOST="+lb, "DOCKER_BUILDKIT=0", "DOCKER_CONFIG="+filepath.Join(t.TempDir()))
		out, err := cmd.CombinedOutput()
		b.out, b.err = string(out), err
		if m := fleetStep.FindAllStringSubmatch(b.out, 1); m != nil {
			n, _ := strconv.Atoi(m[0][1])
			b.steps = n - 1
		}
		b.hits = len(fleetCache.FindAllString(b.out, -1))
		b.pod = -1
		for i, p := range pods {
			if p.hasImage(b.tag) {
				b.pod = i
			}
		}
		mu.Lock()
		if b.pod >= 0 {
			b.firstHere = !builtOn[b.pod][df]
			builtOn[b.pod][df] = true
		}
		mu.Unlock()
		return b
	}

	start := time.Now()
	var builds []*fleetBuild
	// The first build of each Dockerfile, 5 clients at once.
	first := make([]*fleetBuild, len(fleetDockerfiles))
	var wg sync.WaitGroup
	for df := range fleetDockerfiles {
		wg.Add(1)
		go func() { defer wg.Done(); first[df] = run(df, df) }()
	}
	wg.Wait()
	builds = append(builds, first...)
	// 25 rebuilds from 6 clients.
	jobs := make(chan int)
	results := make(chan *fleetBuild, 25)
	for c := range 6 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for df := range jobs {
				results <- run(c, df)
			}
		}()
	}
	for i := range 25 {
		jobs <- i % len(fleetDockerfiles)
	}
	close(jobs)
	wg.Wait()
	close(results)
	for b := range results {
		builds = append(builds, b)
	}
	elapsed := time.Since(start)

	var steps, hits, remote, perPod = 0, 0, 0, make([]int, len(pods))
	for i, b := range builds {
		if b.err != nil || !strings.Contains(b.out, "Successfully built") || b.pod < 0 || b.steps == 0 {
			t.Errorf("build %d (Dockerfile %d) on pod %d: %v\n%s", i, b.df, b.pod, b.err, tail(b.out, 3000))
			continue
		}
		perPod[b.pod]++
		steps += b.steps
		hits += b.hits
		rebuild := i >= len(fleetDockerfiles)
		switch {
		case !rebuild && b.hits != 0:
			t.Errorf("first build of Dockerfile %d: %d steps from the cache, want none\n%s", b.df, b.hits, b.out)
		case rebuild && b.hits != b.steps:
			t.Errorf("rebuild of Dockerfile %d on pod %d (first there: %v): %d of %d steps from the cache, want all\n%s",
				b.df, b.pod, b.firstHere, b.hits, b.steps, b.out)
		case rebuild && b.firstHere:
			remote++ // an empty local cache for these keys: every hit came from the registry
		}
	}
	if remote == 0 {
		t.Errorf("no rebuild ran on a pod that had not built its Dockerfile (builds per pod %v): the registry cache was not exercised", perPod)
	}
	t.Logf("fleet: %d builds (5 first, 25 rebuilds) in %s on 3 pods behind haproxy: %.1f builds/minute",
		len(builds), elapsed.Round(100*time.Millisecond), float64(len(builds))/elapsed.Minutes())
	t.Logf("fleet: step cache hit rate %.1f%% overall (%d of %d steps), 100%% expected and checked for the 25 rebuilds; %d rebuilds served from the registry on a pod new to their Dockerfile; builds per pod %v",
		100*float64(hits)/float64(max(steps, 1)), hits, steps, remote, perPod)
}

// hasImage reports whether the server's store holds ref.
func (s *server) hasImage(ref string) bool {
	resp, err := s.httpClient().Get("http://kiln/images/" + ref + "/json")
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

// freeLoopbackPort is a TCP port free on 127.0.0.1 now.
func freeLoopbackPort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}
