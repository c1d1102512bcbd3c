package builder

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"syscall"
	"testing"

	"github.com/google/go-containerregistry/pkg/v1/remote/transport"

	"github.com/kiln-build/kiln/contexts"
	"github.com/kiln-build/kiln/isolation"
	"github.com/kiln-build/kiln/nettimeout"
)

func TestClassify(t *testing.T) {
	t.Parallel()
	regReq := &http.Request{URL: &url.URL{Scheme: "https", Host: "registry.example:5000", Path: "/v2/x/manifests/1"}}
	inLine := func(err error) error {
		return &InstructionError{File: "Dockerfile", Line: 3, Instruction: "RUN x", Err: err}
	}
	for _, tc := range []struct {
		name string
		err  error
		want Classification
		text string
	}{
		{"success", nil, Classification{Class: ClassSuccess}, "success"},
		{"run failed", inLine(&RunError{Args: []string{"false"}, Code: 2, Err: &isolation.ExitError{Code: 2}}),
			Classification{Class: ClassRunFailed, Reason: "exit code", ExitCode: 2}, "RUN failed (exit code 2)"},
		{"run memory limit", inLine(&isolation.LimitError{Limit: "memory", Value: 1 << 20}),
			Classification{Class: ClassRunFailed, Reason: "memory limit"}, "RUN failed (memory limit)"},
		{"parse error", &UserError{Err: errors.New("unknown instruction: FOO")},
			Classification{Class: ClassUser, Reason: "dockerfile or context"}, "user error (dockerfile or context)"},
		{"missing COPY source", inLine(errors.New("no source files were specified")),
			Classification{Class: ClassUser, Reason: "dockerfile or context"}, ""},
		{"context too large", fmt.Errorf("reading: %w", contexts.ErrLimitExceeded),
			Classification{Class: ClassUser, Reason: "dockerfile or context"}, ""},
		{"registry auth", inLine(fmt.Errorf("pulling: %w", &transport.Error{StatusCode: 401, Request: regReq})),
			Classification{Class: ClassRegistry, Reason: "authentication", Registry: "registry.example:5000"},
			"registry error (registry.example:5000: authentication)"},
		{"registry not found", &transport.Error{StatusCode: 404, Request: regReq},
			Classification{Class: ClassRegistry, Reason: "not found", Registry: "registry.example:5000"}, ""},
		{"registry stalled", &nettimeout.Error{Host: "r.example:443", Limit: 1},
			Classification{Class: ClassRegistry, Reason: "unreachable", Registry: "r.example:443"}, ""},
		{"connection refused", &url.Error{Op: "Get", URL: "https://r.example:5000/v2/", Err: &net.OpError{Op: "dial", Err: syscall.ECONNREFUSED}},
			Classification{Class: ClassRegistry, Reason: "unreachable", Registry: "r.example:5000"}, ""},
		{"dns", &net.DNSError{Name: "nowhere.example", Err: "no such host"},
			Classification{Class: ClassRegistry, Reason: "unreachable", Registry: "nowhere.example"}, ""},
		{"disk full", inLine(fmt.Errorf("writing layer: %w", syscall.ENOSPC)),
			Classification{Class: ClassInfra, Reason: "disk full"}, "infra error (disk full)"},
		{"cancelled", inLine(context.Canceled), Classification{Class: ClassInfra, Reason: "cancelled"}, ""},
		{"timeout", &TimeoutError{}, Classification{Class: ClassInfra, Reason: "build timeout"}, ""},
		{"draining", &DrainingError{}, Classification{Class: ClassInfra, Reason: "refused"}, ""},
		{"internal", errors.New("something odd"), Classification{Class: ClassInfra, Reason: "internal"}, "infra error (internal)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got := Classify(tc.err)
			if got != tc.want {
				t.Errorf("Classify(%v) = %+v, want %+v", tc.err, got, tc.want)
			}
			if tc.text != "" && got.String() != tc.text {
				t.Errorf("String() = %q, want %q", got.String(), tc.text)
			}
		})
	}
}
