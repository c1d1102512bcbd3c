package isolation

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"os/user"
	"runtime"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// rootlessEnv marks a kiln that EnterUserNamespace started. Its value is
// "wait:<mapping>" in the first stage (waiting for its maps) and "<mapping>" once it
// runs as uid 0 of the namespace.
const rootlessEnv = "_KILN_ROOTLESS"

// The user-namespace mappings EnterUserNamespace sets up.
const (
	// MappingRange maps uid and gid 0 to kiln's own and 1..N to the user's
	// /etc/subuid and /etc/subgid ranges, through newuidmap and newgidmap.
	MappingRange = "range"
	// MappingSingle maps only uid and gid 0, to kiln's own: every file is owned by 0.
	MappingSingle = "single"
)

// Rootless returns the mapping of the user namespace EnterUserNamespace put this
// process in (MappingRange or MappingSingle), or "" when it did not.
func Rootless() string {
	v := os.Getenv(rootlessEnv)
	if v == MappingRange || v == MappingSingle {
		return v
	}
	return ""
}

// rootlessWhyEnv carries, to the kiln in the namespace, why MappingSingle was used.
const rootlessWhyEnv = "_KILN_ROOTLESS_WHY"

// RootlessReason says why a MappingSingle namespace maps no range ("" otherwise).
func RootlessReason() string {
	if Rootless() != MappingSingle {
		return ""
	}
	return os.Getenv(rootlessWhyEnv)
}

// idRange is one line of /etc/subuid or /etc/subgid.
type idRange struct{ start, count int }

// subRanges finds the user's first /etc/subuid and /etc/subgid ranges and checks
// that newuidmap and newgidmap exist; why says what is missing otherwise.
func subRanges() (uids, gids idRange, why string) {
	name := strconv.Itoa(os.Getuid())
	if u, err := user.LookupId(name); err == nil {
		name = u.Username
	}
	for _, tool := range []string{"newuidmap", "newgidmap"} {
		if _, err := exec.LookPath(tool); err != nil {
			return uids, gids, tool + " is not installed"
		}
	}
	uids, ok := subRange("/etc/subuid", name, os.Getuid())
	if !ok {
		return uids, gids, fmt.Sprintf("/etc/subuid has no range for user %s", name)
	}
	gids, ok = subRange("/etc/subgid", name, os.Getuid())
	if !ok {
		return uids, gids, fmt.Sprintf("/etc/subgid has no range for user %s", name)
	}
	return uids, gids, ""
}

// subRange reads the first "name:start:count" line of file for the user (by name
// or uid).
func subRange(file, name string, uid int) (idRange, bool) {
	f, err := os.Open(file)
	if err != nil {
		return idRange{}, false
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		parts := strings.Split(strings.TrimSpace(s.Text()), ":")
		if len(parts) != 3 || (parts[0] != name && parts[0] != strconv.Itoa(uid)) {
			continue
		}
		start, err1 := strconv.Atoi(parts[1])
		count, err2 := strconv.Atoi(parts[2])
		if err1 == nil && err2 == nil && count > 0 {
			return idRange{start, count}, true
		}
	}
	return idRange{}, false
}

// EnterUserNamespace runs this kiln again, with the same arguments, as uid 0 of a
// new user namespace and mount namespace, and returns the exit code it ended with;
// stdin, stdout and stderr are shared, SIGINT and SIGTERM are passed on. The user's
// /etc/subuid and /etc/subgid ranges are mapped after 0 when newuidmap and newgidmap
// exist (MappingRange), otherwise only 0 (MappingSingle).
//
// The child starts unmapped, waits for its maps, then executes itself once more so
// that it holds every capability of the namespace as its uid 0.
func EnterUserNamespace(ctx context.Context) (int, error) {
	if os.Geteuid() == 0 || os.Getenv(rootlessEnv) != "" {
		return 0, errors.New("already root: no user namespace needed")
	}
	uids, gids, why := subRanges()
	mapping := MappingRange
	if why != "" {
		mapping = MappingSingle
	}
	r, w, err := os.Pipe()
	if err != nil {
		return 0, err
	}
	// Pdeathsig fires when the thread that started the child ends, not the process:
	// keep this one until the child has.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	cmd := exec.Command("/proc/self/exe", os.Args[1:]...)
	cmd.Args[0] = os.Args[0]
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	cmd.ExtraFiles = []*os.File{r} // fd 3
	cmd.Env = append(os.Environ(), rootlessEnv+"=wait:"+mapping, rootlessWhyEnv+"="+why)
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Cloneflags: unix.CLONE_NEWUSER | unix.CLONE_NEWNS,
		Pdeathsig:  syscall.SIGKILL,
	}
	if err := cmd.Start(); err != nil {
		r.Close()
		w.Close()
		return 0, fmt.Errorf("create a user namespace (does the kernel allow unprivileged ones? see /proc/sys/user/max_user_namespaces): %w", err)
	}
	r.Close()
	if err := writeMaps(cmd.Process.Pid, mapping, uids, gids); err != nil {
		w.Close()
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		return 0, fmt.Errorf("map uids in the user namespace: %w", err)
	}
	_, _ = w.Write([]byte("ok"))
	w.Close()

	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	defer signal.Stop(sigs)
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	for {
		select {
		case s := <-sigs:
			_ = cmd.Process.Signal(s)
		case <-ctx.Done():
			_ = cmd.Process.Signal(syscall.SIGTERM)
			ctx = context.Background()
		case err := <-done:
			var exit *exec.ExitError
			if errors.As(err, &exit) {
				if code := exit.ExitCode(); code > 0 {
					return code, nil
				}
				return 1, nil
			}
			if err != nil {
				return 0, err
			}
			return 0, nil
		}
	}
}

// writeMaps writes pid's uid and gid maps: 0 → this user (and 1.. → its sub ranges
// through newuidmap/newgidmap for MappingRange).
func writeMaps(pid int, mapping string, uids, gids idRange) error {
	p := strconv.Itoa(pid)
	uid, gid := strconv.Itoa(os.Getuid()), strconv.Itoa(os.Getgid())
	if mapping == MappingRange {
		for _, c := range [][]string{
			{"newuidmap", p, "0", uid, "1", "1", strconv.Itoa(uids.start), strconv.Itoa(uids.count)},
			{"newgidmap", p, "0", gid, "1", "1", strconv.Itoa(gids.start), strconv.Itoa(gids.count)},
		} {
			if out, err := exec.Command(c[0], c[1:]...).CombinedOutput(); err != nil {
				return fmt.Errorf("%s: %w: %s", strings.Join(c, " "), err, strings.TrimSpace(string(out)))
			}
		}
		return nil
	}
	dir := "/proc/" + p + "/"
	if err := os.WriteFile(dir+"uid_map", []byte("0 "+uid+" 1\n"), 0); err != nil {
		return err
	}
	// An unprivileged writer may map its gid only once setgroups is denied.
	if err := os.WriteFile(dir+"setgroups", []byte("deny"), 0); err != nil {
		return err
	}
	return os.WriteFile(dir+"gid_map", []byte("0 "+gid+" 1\n"), 0)
}

// initRootless is the first stage of EnterUserNamespace's child: it waits for the
// parent to write its maps, then executes itself as uid 0 of the namespace.
func initRootless() {
	v := os.Getenv(rootlessEnv)
	mapping, ok := strings.CutPrefix(v, "wait:")
	if !ok {
		return
	}
	sync := os.NewFile(3, "userns-sync")
	b, _ := io.ReadAll(sync)
	sync.Close()
	if string(b) != "ok" {
		os.Exit(125) // the parent failed and says why
	}
	if err := os.Setenv(rootlessEnv, mapping); err != nil {
		fmt.Fprintf(os.Stderr, "error: user namespace: %v\n", err)
		os.Exit(125)
	}
	// Our uid is now 0 in the namespace, but the capabilities were lost at the
	// exec that ran this stage: executing again as uid 0 gives them back.
	err := unix.Exec("/proc/self/exe", os.Args, os.Environ())
	fmt.Fprintf(os.Stderr, "error: user namespace: exec %s: %v\n", os.Args[0], err)
	os.Exit(125)
}

// CheckOwner refuses an owner other than root in a MappingSingle user namespace,
// where no other uid or gid exists; elsewhere it accepts every owner.
func CheckOwner(uid, gid int) error {
	if Rootless() != MappingSingle || (uid == 0 && gid == 0) {
		return nil
	}
	return fmt.Errorf("uid %d/gid %d does not exist here: kiln runs rootless in a user namespace that maps only uid and gid 0 (give the user a range in /etc/subuid and /etc/subgid, with newuidmap and newgidmap installed, or run kiln as root)", uid, gid)
}
