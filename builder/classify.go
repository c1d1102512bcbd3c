package builder

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"syscall"

	"github.com/google/go-containerregistry/pkg/v1/remote/transport"

	"github.com/kiln-build/kiln/contexts"
	"github.com/kiln-build/kiln/isolation"
	"github.com/kiln-build/kiln/nettimeout"
)

// Class says whose problem a finished build's failure is, so that a user, a CI
// system and an operator each know whether to fix the Dockerfile, the command, the
// registry or the server. Every front door reports it the same way (Classify).
type Class string

// The classes of a finished build.
const (
	// ClassSuccess is a build that produced its image.
	ClassSuccess Class = "success"
	// ClassUser is a problem in what the user sent: the Dockerfile (syntax, an
	// unknown stage, a missing COPY source), the build context or the options.
	ClassUser Class = "user_error"
	// ClassRunFailed is a RUN whose command failed (ExitCode says how) or hit one of
	// the build's resource limits.
	ClassRunFailed Class = "run_failed"
	// ClassRegistry is a registry or network failure: authentication, a missing
	// image, an unreachable host (Registry names it).
	ClassRegistry Class = "registry_error"
	// ClassInfra is the server's own problem: a full disk, a cancelled or timed-out
	// build, a shutdown, an internal error.
	ClassInfra Class = "infra_error"
)

// Classes lists every Class, success first, for callers that pre-declare labels.
var Classes = []Class{ClassSuccess, ClassUser, ClassRunFailed, ClassRegistry, ClassInfra}

// Classification is how a build ended.
type Classification struct {
	Class Class
	// Reason is a short, fixed phrase for logs ("exit code", "disk full",
	// "cancelled", "authentication", "unreachable", "internal", "dockerfile").
	Reason string
	// ExitCode is a failed RUN's exit code; 0 otherwise.
	ExitCode int
	// Registry is the registry (or host) that failed, for ClassRegistry.
	Registry string
}

// String is the classification as a person reads it: "RUN failed (exit code 2)",
// "registry error (127.0.0.1:5000: authentication)".
func (c Classification) String() string {
	switch c.Class {
	case ClassSuccess:
		return "success"
	case ClassUser:
		return "user error (" + c.Reason + ")"
	case ClassRunFailed:
		if c.ExitCode > 0 {
			return fmt.Sprintf("RUN failed (exit code %d)", c.ExitCode)
		}
		return "RUN failed (" + c.Reason + ")"
	case ClassRegistry:
		if c.Registry != "" {
			return "registry error (" + c.Registry + ": " + c.Reason + ")"
		}
		return "registry error (" + c.Reason + ")"
	}
	return "infra error (" + c.Reason + ")"
}

// UserError marks a failure caused by what the build was given (the Dockerfile, its
// context, the request's options) where the error's own type does not say so. Its
// message is the wrapped error's.
type UserError struct{ Err error }

func (e *UserError) Error() string { return e.Err.Error() }

func (e *UserError) Unwrap() error { return e.Err }

// Classify says how a build that returned err ended. It looks through wrapping
// (errors.As), so an error a door wrapped keeps its class. The order matters: a
// cancelled build is infra whatever it was doing, a RUN's failure inside an
// InstructionError is the RUN's, and a registry failure while pulling FROM's image
// is the registry's, not the Dockerfile's.
func Classify(err error) Classification {
	if err == nil {
		return Classification{Class: ClassSuccess}
	}
	var (
		te    *TimeoutError
		re    *RunError
		le    *isolation.LimitError
		ee    *isolation.ExitError
		qf    *QueueFullError
		dr    *DrainingError
		terr  *transport.Error
		nerr  *nettimeout.Error
		uerr  *url.Error
		dns   *net.DNSError
		operr *net.OpError
		ue    *UserError
		ie    *InstructionError
		pe    *PlatformError
	)
	switch {
	case errors.As(err, &te):
		return Classification{Class: ClassInfra, Reason: "build timeout"}
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return Classification{Class: ClassInfra, Reason: "cancelled"}
	case errors.As(err, &qf), errors.As(err, &dr):
		return Classification{Class: ClassInfra, Reason: "refused"}
	case errors.Is(err, syscall.ENOSPC), errors.Is(err, syscall.EDQUOT):
		return Classification{Class: ClassInfra, Reason: "disk full"}
	case errors.As(err, &le):
		return Classification{Class: ClassRunFailed, Reason: le.Limit + " limit"}
	case errors.As(err, &re):
		return Classification{Class: ClassRunFailed, Reason: "exit code", ExitCode: re.Code}
	case errors.As(err, &ee):
		return Classification{Class: ClassRunFailed, Reason: "exit code", ExitCode: ee.Code}
	case errors.As(err, &terr):
		c := Classification{Class: ClassRegistry, Reason: registryReason(terr.StatusCode)}
		if terr.Request != nil && terr.Request.URL != nil {
			c.Registry = terr.Request.URL.Host
		}
		return c
	case errors.As(err, &nerr):
		return Classification{Class: ClassRegistry, Reason: "unreachable", Registry: nerr.Host}
	case errors.As(err, &dns):
		return Classification{Class: ClassRegistry, Reason: "unreachable", Registry: dns.Name}
	case errors.As(err, &uerr) && (errors.As(err, &operr) || errors.Is(err, syscall.ECONNREFUSED)):
		host := uerr.URL
		if u, perr := url.Parse(uerr.URL); perr == nil && u.Host != "" {
			host = u.Host
		}
		return Classification{Class: ClassRegistry, Reason: "unreachable", Registry: host}
	case errors.As(err, &ue), errors.As(err, &ie), errors.As(err, &pe),
		errors.Is(err, ErrLimit), errors.Is(err, ErrUnsupported), errors.Is(err, ErrSecretNotFound),
		errors.Is(err, ErrSSHNotFound), errors.Is(err, contexts.ErrLimitExceeded), errors.Is(err, contexts.ErrOutsideContext):
		return Classification{Class: ClassUser, Reason: "dockerfile or context"}
	}
	return Classification{Class: ClassInfra, Reason: "internal"}
}

// registryReason names what an HTTP status from a registry means for the user.
func registryReason(status int) string {
	switch status {
	case 401, 403:
		return "authentication"
	case 404:
		return "not found"
	case 429:
		return "rate limited"
	}
	if status >= 500 {
		return "registry failure"
	}
	return "request refused"
}

// Fields are the classification as structured log fields: class, and reason,
// exit_code and registry where they say something.
func (c Classification) Fields() map[string]any {
	f := map[string]any{"class": string(c.Class)}
	if c.Reason != "" {
		f["reason"] = c.Reason
	}
	if c.ExitCode != 0 {
		f["exit_code"] = c.ExitCode
	}
	if c.Registry != "" {
		f["registry"] = c.Registry
	}
	return f
}

// Annotate returns a failed build's final message with its classification after it,
// as every door shows it: "<message> [registry error (host: authentication)]".
func Annotate(msg string, err error) string {
	c := Classify(err)
	if c.Class == ClassSuccess {
		return msg
	}
	return msg + " [" + c.String() + "]"
}

// ClassifiedError is a failed build's error whose message ends with its
// classification (Annotate); errors.As and errors.Is see through it.
type ClassifiedError struct {
	Err            error
	Classification Classification
}

// WithClass returns err annotated with its classification, nil for nil.
func WithClass(err error) error {
	if err == nil {
		return nil
	}
	var ce *ClassifiedError
	if errors.As(err, &ce) {
		return err
	}
	return &ClassifiedError{Err: err, Classification: Classify(err)}
}

func (e *ClassifiedError) Error() string {
	return e.Err.Error() + " [" + e.Classification.String() + "]"
}

func (e *ClassifiedError) Unwrap() error { return e.Err }
