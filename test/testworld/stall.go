package testworld

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// A fake commit the stalling git servers advertise; the client never gets its objects.
const stallCommit = "0123456789abcdef0123456789abcdef01234567"

// StallTCP listens on a free loopback port, accepts every connection and never sends
// a byte (what it receives is discarded), until the test ends. It returns host:port.
func StallTCP(t testing.TB) string {
	t.Helper()
	return stallListener(t, func(c net.Conn) { _, _ = io.Copy(io.Discard, c) })
}

// StallGit is a git daemon (git:// protocol) that answers a request with a valid
// ref advertisement (HEAD and refs/heads/main at a fake commit) and then, once the
// client has asked for objects, sends nothing more. It returns host:port.
func StallGit(t testing.TB) string {
	t.Helper()
	return stallListener(t, func(c net.Conn) {
		br := bufio.NewReader(c)
		if _, err := readPktLine(br); err != nil { // git-upload-pack /path\0host=…\0
			return
		}
		_, _ = io.WriteString(c, gitAdvertisement())
		_, _ = io.Copy(io.Discard, br)
	})
}

// stallListener serves each connection with serve on a loopback listener closed, with
// its connections, when the test ends.
func stallListener(t testing.TB, serve func(net.Conn)) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var (
		mu    sync.Mutex
		conns []net.Conn
		wg    sync.WaitGroup
	)
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			wg.Add(1)
			go func() { defer wg.Done(); serve(c) }()
		}
	}()
	t.Cleanup(func() {
		l.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	return l.Addr().String()
}

// StallHTTP serves next on a free loopback port (plain HTTP), except that a request
// stall matches (nil: every request) gets a 200 with its headers and a promised body
// of length bytes, and then nothing. It returns the server's URL. Handlers end when
// the test does.
func StallHTTP(t testing.TB, next http.Handler, stall func(*http.Request) bool) string {
	t.Helper()
	done := make(chan struct{})
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if next != nil && stall != nil && !stall(r) {
			next.ServeHTTP(w, r)
			return
		}
		w.Header().Set("Content-Length", "1048576")
		w.Header().Set("Content-Type", "application/octet-stream")
		w.Header().Set("Connection", "close") // the stalled connection is never reused
		w.WriteHeader(http.StatusOK)
		w.(http.Flusher).Flush()
		if r.Method == http.MethodHead {
			return // a HEAD answer has no body to withhold
		}
		select {
		case <-r.Context().Done():
		case <-done:
		}
	}))
	t.Cleanup(func() { close(done); ts.Close() })
	return ts.URL
}

// StallGitHTTP is a smart-HTTP git server that advertises refs (GET
// info/refs?service=git-upload-pack) like StallGit and stalls the fetch (POST
// git-upload-pack: headers, then nothing). Its repository is URL/repo.git.
func StallGitHTTP(t testing.TB) string {
	t.Helper()
	adv := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !strings.HasSuffix(r.URL.Path, "/info/refs") {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "application/x-git-upload-pack-advertisement")
		svc := "# service=git-upload-pack\n"
		fmt.Fprintf(w, "%04x%s0000%s", len(svc)+4, svc, gitAdvertisement())
	})
	return StallHTTP(t, adv, func(r *http.Request) bool { return r.Method == http.MethodPost }) + "/repo.git"
}

// gitAdvertisement is a ref advertisement of HEAD and main at stallCommit.
func gitAdvertisement() string {
	pkt := func(s string) string { return fmt.Sprintf("%04x%s", len(s)+4, s) }
	return pkt(stallCommit+" HEAD\x00multi_ack_detailed side-band-64k ofs-delta shallow no-progress symref=HEAD:refs/heads/main\n") +
		pkt(stallCommit+" refs/heads/main\n") + "0000"
}

// readPktLine reads one git pkt-line.
func readPktLine(r *bufio.Reader) (string, error) {
	var size [4]byte
	if _, err := io.ReadFull(r, size[:]); err != nil {
		return "", err
	}
	var n int
	if _, err := fmt.Sscanf(string(size[:]), "%04x", &n); err != nil || n < 4 {
		return "", fmt.Errorf("bad pkt-line length %q", size)
	}
	buf := make([]byte, n-4)
	_, err := io.ReadFull(r, buf)
	return string(buf), err
}

// FullBacklog returns a loopback address whose listener never accepts and whose
// backlog is full, so a further connection's handshake never completes: the loopback
// stand-in for an unreachable host. Tests skip when the backlog does not fill.
func FullBacklog(t testing.TB) string {
	t.Helper()
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { syscall.Close(fd) })
	if err := syscall.Bind(fd, &syscall.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Listen(fd, 0); err != nil {
		t.Fatal(err)
	}
	sa, err := syscall.Getsockname(fd)
	if err != nil {
		t.Fatal(err)
	}
	addr := (&net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: sa.(*syscall.SockaddrInet4).Port}).String()
	for i := 0; i < 8; i++ {
		c, err := net.DialTimeout("tcp", addr, 300*time.Millisecond)
		if err != nil {
			return addr // the queue is full: this handshake did not complete
		}
		t.Cleanup(func() { c.Close() })
	}
	t.Skip("the loopback listener's backlog never filled")
	return ""
}
