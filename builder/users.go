package builder

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"

	securejoin "github.com/cyphar/filepath-securejoin"
)

// identity is a resolved user: what a process runs as, or what files are owned by.
type identity struct {
	UID, GID int
	Groups   []int  // supplementary groups (RUN only)
	Home     string // from /etc/passwd; "/" when unknown
}

type passwdEntry struct {
	name     string
	uid, gid int
	home     string
}

type groupEntry struct {
	name    string
	gid     int
	members []string
}

// readPasswd reads root's /etc/passwd. A missing file is an empty database.
func readPasswd(root string) ([]passwdEntry, error) {
	var out []passwdEntry
	err := scanDB(root, "/etc/passwd", func(f []string) {
		if len(f) < 4 {
			return
		}
		uid, err1 := strconv.Atoi(f[2])
		gid, err2 := strconv.Atoi(f[3])
		if err1 != nil || err2 != nil {
			return
		}
		e := passwdEntry{name: f[0], uid: uid, gid: gid, home: "/"}
		if len(f) > 5 && f[5] != "" {
			e.home = f[5]
		}
		out = append(out, e)
	})
	return out, err
}

// readGroup reads root's /etc/group. A missing file is an empty database.
func readGroup(root string) ([]groupEntry, error) {
	var out []groupEntry
	err := scanDB(root, "/etc/group", func(f []string) {
		if len(f) < 3 {
			return
		}
		gid, err := strconv.Atoi(f[2])
		if err != nil {
			return
		}
		e := groupEntry{name: f[0], gid: gid}
		if len(f) > 3 && f[3] != "" {
			e.members = strings.Split(f[3], ",")
		}
		out = append(out, e)
	})
	return out, err
}

// scanDB calls fn with the colon-separated fields of each line of a file in root.
func scanDB(root, file string, fn func([]string)) error {
	p, err := securejoin.SecureJoin(root, file)
	if err != nil {
		return err
	}
	f, err := os.Open(p)
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		return err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		fn(strings.Split(line, ":"))
	}
	return sc.Err()
}

// resolveUser resolves a USER value ("name", "uid", "name:group", "uid:gid") in root's
// user database as dockerd and runc do for a container's process (checked against
// dockerd 20.10's classic builder):
//   - an empty USER is uid 0, taking the gid and home of the first passwd entry with
//     uid 0 if there is one (and no error if there is none);
//   - a name must have a passwd entry; a numeric uid need not (gid 0 then);
//   - a numeric group need not exist, a group name must;
//   - the supplementary groups are the gid first, then, only when no group is given
//     and a passwd entry matched, every group in /etc/group listing that entry's name,
//     in file order ("USER 1000" with an entry named u gets u's groups too).
func resolveUser(root, spec string) (identity, error) {
	userPart, groupPart, hasGroup := strings.Cut(spec, ":")
	users, err := readPasswd(root)
	if err != nil {
		return identity{}, fmt.Errorf("reading /etc/passwd: %w", err)
	}
	id := identity{Home: "/"}
	var matched *passwdEntry
	if userPart == "" {
		userPart = "0" // root by uid, whatever its entry is named, and with no entry at all
	}
	if uid, err := strconv.Atoi(userPart); err == nil {
		id.UID = uid
		if i := slices.IndexFunc(users, func(u passwdEntry) bool { return u.uid == uid }); i >= 0 {
			matched = &users[i]
		}
	} else {
		i := slices.IndexFunc(users, func(u passwdEntry) bool { return u.name == userPart })
		if i < 0 {
			return identity{}, fmt.Errorf("unable to find user %s: no matching entries in passwd file", userPart)
		}
		matched = &users[i]
	}
	if matched != nil {
		id.UID, id.GID, id.Home = matched.uid, matched.gid, matched.home
	}
	groups, err := readGroup(root)
	if err != nil {
		return identity{}, fmt.Errorf("reading /etc/group: %w", err)
	}
	if hasGroup {
		gid, err := resolveGroup(groups, groupPart)
		if err != nil {
			return identity{}, err
		}
		id.GID = gid
	}
	id.Groups = []int{id.GID}
	if !hasGroup && matched != nil {
		for _, g := range groups {
			if slices.Contains(g.members, matched.name) && !slices.Contains(id.Groups, g.gid) {
				id.Groups = append(id.Groups, g.gid)
			}
		}
	}
	return id, nil
}

func resolveGroup(groups []groupEntry, spec string) (int, error) {
	if n, err := strconv.Atoi(spec); err == nil {
		return n, nil
	}
	for _, g := range groups {
		if g.name == spec {
			return g.gid, nil
		}
	}
	return 0, fmt.Errorf("unable to find group %s: no matching entries in group file", spec)
}

// chownError is the classic builder's prefix for every --chown resolution failure.
const chownError = "unable to convert uid/gid chown string to host mapping"

// resolveChown resolves a --chown value in the image being built (also for COPY
// --from: the destination's /etc/passwd and /etc/group count), as the classic builder
// does: "user:group", or a single spec that stands for both, so "--chown=1000" is
// 1000:1000 and "--chown=app" is user app and *group* app (not app's primary group;
// BuildKit takes the primary group instead). Numbers are taken as they are, names must
// exist; the errors are dockerd's, word for word.
func resolveChown(root, spec string) (identity, error) {
	parts := strings.Split(spec, ":")
	if len(parts) > 2 {
		return identity{}, fmt.Errorf("%s: invalid chown string format: %s", chownError, spec)
	}
	userPart, groupPart := parts[0], parts[0]
	if len(parts) == 2 {
		groupPart = parts[1]
	}
	var id identity
	uid, err := strconv.Atoi(userPart)
	if err != nil {
		users, err := readPasswdStrict(root)
		if err != nil {
			return identity{}, fmt.Errorf("%s: can't find uid for user %s: %w", chownError, userPart, err)
		}
		i := slices.IndexFunc(users, func(u passwdEntry) bool { return u.name == userPart })
		if i < 0 {
			return identity{}, fmt.Errorf("%s: can't find uid for user %s: no such user: %s", chownError, userPart, userPart)
		}
		uid = users[i].uid
	}
	id.UID = uid
	gid, err := strconv.Atoi(groupPart)
	if err != nil {
		groups, err := readGroupStrict(root)
		if err != nil {
			return identity{}, fmt.Errorf("%s: can't find gid for group %s: %w", chownError, groupPart, err)
		}
		i := slices.IndexFunc(groups, func(g groupEntry) bool { return g.name == groupPart })
		if i < 0 {
			return identity{}, fmt.Errorf("%s: can't find gid for group %s: no such group: %s", chownError, groupPart, groupPart)
		}
		gid = groups[i].gid
	}
	id.GID = gid
	return id, nil
}

// readPasswdStrict is readPasswd for --chown, where (as in the classic builder) a
// missing file is an error rather than an empty database. The error names the image
// path, where dockerd's names its host path.
func readPasswdStrict(root string) ([]passwdEntry, error) {
	if err := requireDB(root, "/etc/passwd"); err != nil {
		return nil, err
	}
	return readPasswd(root)
}

// readGroupStrict is readGroup with a missing file an error (see readPasswdStrict).
func readGroupStrict(root string) ([]groupEntry, error) {
	if err := requireDB(root, "/etc/group"); err != nil {
		return nil, err
	}
	return readGroup(root)
}

func requireDB(root, file string) error {
	p, err := securejoin.SecureJoin(root, file)
	if err != nil {
		return err
	}
	if _, err := os.Stat(p); err != nil {
		if os.IsNotExist(err) {
			return fmt.Errorf("open %s: no such file or directory", file)
		}
		return fmt.Errorf("open %s: %w", file, errors.Unwrap(err))
	}
	return nil
}
