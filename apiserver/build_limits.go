package apiserver

import (
	"net/url"
	"strconv"

	"github.com/kiln-build/kiln/builder"
)

// parseLimits reads /build's resource parameters. The docker CLI sends every one of
// them, 0 or empty when unset; a value that is not a number is refused naming its
// parameter (dockerd reads it as 0). The builder checks the values themselves, as
// dockerd does (builder.Build), and applies them to every RUN.
func parseLimits(q url.Values) (builder.Limits, *apiError) {
	var l builder.Limits
	for _, p := range []struct {
		name string
		dst  *int64
	}{
		{"memory", &l.Memory}, {"memswap", &l.MemorySwap}, {"cpushares", &l.CPUShares},
		{"cpuquota", &l.CPUQuota}, {"cpuperiod", &l.CPUPeriod}, {"shmsize", &l.ShmSize},
	} {
		s := q.Get(p.name)
		if s == "" {
			continue
		}
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return l, badRequest("%s: %q is not a number of bytes or microseconds", p.name, s)
		}
		*p.dst = n
	}
	l.CPUSetCPUs, l.CPUSetMems = q.Get("cpusetcpus"), q.Get("cpusetmems")
	if v := q.Get("cgroupparent"); v != "" {
		return l, badRequest("cgroupparent (--cgroup-parent) is not supported by kiln: the server puts each RUN in a cgroup of its own under its own")
	}
	var ulimits []struct {
		Name       string
		Hard, Soft int64
	}
	if err := jsonParam(q, "ulimits", &ulimits); err != nil {
		return l, badRequest("error reading ulimit settings: %s", err)
	}
	for _, u := range ulimits {
		ul := builder.Ulimit{Name: u.Name, Soft: u.Soft, Hard: u.Hard}
		if err := ul.Check(); err != nil {
			return l, badRequest("ulimits: %s", err)
		}
		l.Ulimits = append(l.Ulimits, ul)
	}
	return l, nil
}
