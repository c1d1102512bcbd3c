package buildkitapi

import (
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/kiln-build/kiln/builder"
)

// usageFields are the fields BuildKit's usage filters name (containerd's filter syntax
// over a usage record): a filter naming another is refused.
var usageFields = []string{"id", "parents", "description", "inuse", "mutable", "immutable", "type", "shared", "private"}

// usageField is a record's field as a filter sees it: its value and whether it is
// present (a boolean field is present when true).
func usageField(r builder.CacheRecord, field string) (string, bool) {
	u := usageRecord(r)
	switch field {
	case "id":
		return u.ID, u.ID != ""
	case "parents":
		return "", false // kiln's records have no parents
	case "description":
		return u.Description, u.Description != ""
	case "inuse":
		return "", u.InUse
	case "mutable":
		return "", u.Mutable
	case "immutable":
		return "", !u.Mutable
	case "type":
		return u.RecordType, u.RecordType != ""
	case "shared":
		return "", u.Shared
	case "private":
		return "", !u.Shared
	}
	return "", false
}

// condition is one `field`, `field==value`, `field!=value` or `field~=regexp`.
type condition struct {
	field, op, value string
	re               *regexp.Regexp
}

func (c condition) match(r builder.CacheRecord) bool {
	v, present := usageField(r, c.field)
	switch c.op {
	case "":
		return present
	case "==":
		return present && v == c.value
	case "!=":
		return v != c.value
	default: // ~=
		return present && c.re.MatchString(v)
	}
}

// parseUsageFilters reads DiskUsage's and Prune's filters as BuildKit does: each
// string is a comma-separated list of conditions that must all hold, and a record
// matches when any string's conditions do (no strings, or only empty ones: every
// record). An unknown field or a malformed condition is an InvalidArgument naming it.
func parseUsageFilters(filters []string) (func(builder.CacheRecord) bool, error) {
	var alts [][]condition
	for _, f := range filters {
		if strings.TrimSpace(f) == "" {
			continue
		}
		conds, err := parseConditions(f)
		if err != nil {
			return nil, err
		}
		alts = append(alts, conds)
	}
	return func(r builder.CacheRecord) bool {
		if len(alts) == 0 {
			return true
		}
		for _, conds := range alts {
			ok := true
			for _, c := range conds {
				ok = ok && c.match(r)
			}
			if ok {
				return true
			}
		}
		return false
	}, nil
}

func parseConditions(f string) ([]condition, error) {
	var out []condition
	rest := f
	for rest != "" {
		rest = strings.TrimLeft(rest, " ")
		end := strings.IndexFunc(rest, func(r rune) bool {
			return !(r == '_' || r == '.' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9')
		})
		if end < 0 {
			end = len(rest)
		}
		c := condition{field: rest[:end]}
		rest = rest[end:]
		if c.field == "" {
			return nil, invalidFilter("filter %q: a condition names no field", f)
		}
		if !slices.Contains(usageFields, c.field) {
			hint := ""
			if c.field == "until" || c.field == "unused-for" {
				hint = " (an age bound is the prune's keep duration: buildx --filter until=24h, buildctl prune --keep-duration 24h)"
			}
			return nil, invalidFilter("filter %q: unknown field %q; kiln filters build cache records on %s%s", f, c.field, strings.Join(usageFields, ", "), hint)
		}
		switch {
		case rest == "" || rest[0] == ',':
		case strings.HasPrefix(rest, "=="), strings.HasPrefix(rest, "!="), strings.HasPrefix(rest, "~="):
			c.op, rest = rest[:2], rest[2:]
		default:
			return nil, invalidFilter("filter %q: after %q want ==, != or ~=", f, c.field)
		}
		if c.op != "" {
			var err error
			if c.value, rest, err = filterValue(rest); err != nil {
				return nil, invalidFilter("filter %q: %v", f, err)
			}
			if c.op == "~=" {
				if c.re, err = regexp.Compile(c.value); err != nil {
					return nil, invalidFilter("filter %q: %v", f, err)
				}
			}
		}
		out = append(out, c)
		rest = strings.TrimPrefix(strings.TrimLeft(rest, " "), ",")
	}
	return out, nil
}

// filterValue reads a condition's value, quoted or up to the next comma.
func filterValue(s string) (value, rest string, err error) {
	if strings.HasPrefix(s, `"`) {
		q, err := strconv.QuotedPrefix(s)
		if err != nil {
			return "", "", err
		}
		v, err := strconv.Unquote(q)
		return v, s[len(q):], err
	}
	value, rest, _ = strings.Cut(s, ",")
	if rest != "" || strings.HasSuffix(s, ",") {
		rest = "," + rest
	}
	return value, rest, nil
}
