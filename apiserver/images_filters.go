package apiserver

import (
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"
)

// filterArgs is the decoded filters= parameter, dockerd's filters.Args: for each key,
// the set of values given ({"reference":{"app*":true}}).
type filterArgs map[string]map[string]bool

// errInvalidFilter is dockerd's answer to filters= that is not JSON.
var errInvalidFilter = errors.New("invalid filter")

// parseFilters decodes filters= in the current map form or the legacy list form
// ({"reference":["app*"]}) that old clients send, as dockerd does.
func parseFilters(raw string) (filterArgs, error) {
	f := filterArgs{}
	if raw == "" {
		return f, nil
	}
	if err := json.Unmarshal([]byte(raw), &f); err == nil {
		return f, nil
	}
	var legacy map[string][]string
	if err := json.Unmarshal([]byte(raw), &legacy); err != nil {
		return nil, errInvalidFilter
	}
	f = filterArgs{}
	for k, vs := range legacy {
		f[k] = map[string]bool{}
		for _, v := range vs {
			f[k][v] = true
		}
	}
	return f, nil
}

// validate refuses keys outside accepted, naming the first (sorted) like dockerd:
// "invalid filter 'foo'".
func (f filterArgs) validate(accepted ...string) error {
	keys := make([]string, 0, len(f))
	for k := range f {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		ok := false
		for _, a := range accepted {
			ok = ok || k == a
		}
		if !ok {
			return fmt.Errorf("invalid filter '%s'", k)
		}
	}
	return nil
}

// values returns the values of key, sorted.
func (f filterArgs) values(key string) []string {
	var vs []string
	for v := range f[key] {
		vs = append(vs, v)
	}
	sort.Strings(vs)
	return vs
}

// boolFilter reads a true/false filter such as dangling=; present reports whether it
// was given at all.
func (f filterArgs) boolFilter(key string) (value, present bool, err error) {
	vs := f.values(key)
	if len(vs) == 0 {
		return false, false, nil
	}
	if len(vs) > 1 {
		return false, true, fmt.Errorf("invalid filter '%s=%s': give one value", key, strings.Join(vs, ","))
	}
	switch strings.ToLower(vs[0]) {
	case "true", "1":
		return true, true, nil
	case "false", "0":
		return false, true, nil
	}
	return false, true, fmt.Errorf("invalid filter '%s=%s'", key, vs[0])
}

// matchLabels applies label= (key present, or key=value) and label!= (neither) to an
// image's labels; every condition must hold.
func (f filterArgs) matchLabels(labels map[string]string) bool {
	for _, cond := range f.values("label") {
		k, v, hasValue := strings.Cut(cond, "=")
		got, ok := labels[k]
		if !ok || (hasValue && got != v) {
			return false
		}
	}
	for _, cond := range f.values("label!") {
		k, v, hasValue := strings.Cut(cond, "=")
		got, ok := labels[k]
		if ok && (!hasValue || got == v) {
			return false
		}
	}
	return true
}

// untilFilter reads until= as dockerd does: a duration back from now ("24h"), an
// RFC 3339 time or date, or Unix seconds with an optional fraction. Zero when absent.
func (f filterArgs) untilFilter(now time.Time) (time.Time, error) {
	vs := f.values("until")
	if len(vs) == 0 {
		return time.Time{}, nil
	}
	if len(vs) > 1 {
		return time.Time{}, errors.New("more than one until filter specified")
	}
	v := vs[0]
	if d, err := time.ParseDuration(v); err == nil {
		return now.Add(-d), nil
	}
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05", "2006-01-02T15:04", "2006-01-02"} {
		if t, err := time.Parse(layout, v); err == nil {
			return t, nil
		}
	}
	if secs, err := strconv.ParseFloat(v, 64); err == nil {
		whole := int64(secs)
		return time.Unix(whole, int64((secs-float64(whole))*1e9)), nil
	}
	return time.Time{}, fmt.Errorf("invalid filter 'until=%s': not a duration, time or Unix timestamp", v)
}
