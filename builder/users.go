package builder

import (
	"bufio"
	"fmt"
	"os"
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
// user database, as runc does for a container's user: a numeric uid need not exist
// (gid 0 then), a name must; supplementary groups come from /etc/group membership.
func resolveUser(root, spec string) (identity, error) {
	if spec == "" {
		spec = "root"
	}
	userPart, groupPart, hasGroup := strings.Cut(spec, ":")
	users, err := readPasswd(root)
	if err != nil {
		return identity{}, fmt.Errorf("reading /etc/passwd: %w", err)
	}
	id := identity{Home: "/"}
	var userName string
	found := false
	if n, err := strconv.Atoi(userPart); err == nil {
		id.UID = n
		for _, u := range users {
			if u.uid == n {
				id.GID, id.Home, userName, found = u.gid, u.home, u.name, true
				break
			}
		}
	} else {
		for _, u := range users {
			if u.name == userPart {
				id.UID, id.GID, id.Home, userName, found = u.uid, u.gid, u.home, u.name, true
				break
			}
		}
		if !found {
			return identity{}, fmt.Errorf("unable to find user %s: no matching entries in passwd file", userPart)
		}
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
		return id, nil
	}
	if found {
		for _, g := range groups {
			for _, m := range g.members {
				if m == userName && g.gid != id.GID {
					id.Groups = append(id.Groups, g.gid)
				}
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

// resolveChown resolves a --chown value. Docker's classic builder resolves names in the
// image being built; a user without a group takes the user's primary group for names
// and the uid itself for numbers ("--chown=1000" means 1000:1000).
func resolveChown(root, spec string) (identity, error) {
	userPart, groupPart, hasGroup := strings.Cut(spec, ":")
	var id identity
	if n, err := strconv.Atoi(userPart); err == nil {
		id.UID, id.GID = n, n
	} else {
		users, err := readPasswd(root)
		if err != nil {
			return identity{}, fmt.Errorf("reading /etc/passwd: %w", err)
		}
		found := false
		for _, u := range users {
			if u.name == userPart {
				id.UID, id.GID, found = u.uid, u.gid, true
				break
			}
		}
		if !found {
			return identity{}, fmt.Errorf("unable to convert uid/gid chown string to host mapping: can't find uid for user %s: no such user: %s", userPart, userPart)
		}
	}
	if hasGroup {
		groups, err := readGroup(root)
		if err != nil {
			return identity{}, fmt.Errorf("reading /etc/group: %w", err)
		}
		gid, err := resolveGroup(groups, groupPart)
		if err != nil {
			return identity{}, fmt.Errorf("unable to convert uid/gid chown string to host mapping: can't find gid for group %s: %w", groupPart, err)
		}
		id.GID = gid
	}
	return id, nil
}
