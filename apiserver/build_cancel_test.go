package apiserver

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestBuildClientDisconnect cancels a build mid-RUN by dropping the connection: the
// RUN's processes must go within seconds and the slot must be free for the next build.
func TestBuildClientDisconnect(t *testing.T) {
	t.Parallel()
	w := newBuildWorld(t, nil)
	ts := newBuildServer(t, BuildConfig{MaxConcurrent: 1})
	const marker = "3117" // sleep's argument: how this test finds its process
	body := contextTar(t, map[string]string{"Dockerfile": "FROM " + w.busybox + "\nRUN echo started; sleep " + marker + "\n"})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, ts.URL+"/build", bytes.NewReader(body))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	// Read until the RUN has started, then leave.
	dec := json.NewDecoder(resp.Body)
	for {
		var m message
		if err := dec.Decode(&m); err != nil {
			t.Fatalf("stream ended before the RUN started: %v", err)
		}
		if m.Stream == "started\n" {
			break
		}
	}
	for start := time.Now(); !sleepRunning(marker); time.Sleep(50 * time.Millisecond) {
		if time.Since(start) > 5*time.Second {
			t.Fatal("the RUN's sleep is not running")
		}
	}
	cancel()
	resp.Body.Close()
	deadline := time.Now().Add(10 * time.Second)
	for sleepRunning(marker) {
		if time.Now().After(deadline) {
			t.Fatal("the RUN's sleep outlived its client by 10 seconds")
		}
		time.Sleep(100 * time.Millisecond)
	}
	// The next build may wait a moment for the cancelled one to clean up, no more.
	start := time.Now()
	next := postBuild(t, ts.URL, "", contextTar(t, map[string]string{"Dockerfile": "FROM " + w.busybox + "\nRUN echo next\n"}), nil)
	if next.status != 200 || next.last().ErrorDetail != nil || !strings.Contains(next.text(), "next\n") {
		t.Errorf("the next build: HTTP %d\n%s", next.status, next.text())
	}
	if d := time.Since(start); d > 20*time.Second {
		t.Errorf("the next build took %v: the slot was not released", d)
	}
}

// sleepRunning reports whether a process runs `sleep <arg>`.
func sleepRunning(arg string) bool {
	procs, _ := os.ReadDir("/proc")
	for _, p := range procs {
		cmdline, err := os.ReadFile("/proc/" + p.Name() + "/cmdline")
		if err == nil && bytes.Equal(cmdline, []byte("sleep\x00"+arg+"\x00")) {
			return true
		}
	}
	return false
}

// TestBuildQueueThroughAPI runs three builds at once with one slot: all succeed, and
// the ones that waited were told so.
func TestBuildQueueThroughAPI(t *testing.T) {
	t.Parallel()
	w := newBuildWorld(t, nil)
	ts := newBuildServer(t, BuildConfig{MaxConcurrent: 1})
	var wg sync.WaitGroup
	results := make([]*buildResponse, 3)
	for i := range results {
		wg.Add(1)
		go func() {
			defer wg.Done()
			body := contextTar(t, map[string]string{"Dockerfile": fmt.Sprintf("FROM %s\nRUN sleep 1; echo build %d\n", w.busybox, i)})
			results[i] = postBuild(t, ts.URL, fmt.Sprintf("t=queued:%d", i), body, nil)
		}()
	}
	wg.Wait()
	waited := 0
	for i, r := range results {
		if r.status != 200 || r.last().ErrorDetail != nil || !strings.Contains(r.text(), fmt.Sprintf("build %d\n", i)) {
			t.Errorf("build %d: HTTP %d\n%s", i, r.status, r.text())
		}
		if strings.HasPrefix(r.text(), "Waiting for the build slot: ") {
			waited++
		}
	}
	if waited < 2 {
		t.Errorf("%d builds reported waiting, want 2", waited)
	}
}
