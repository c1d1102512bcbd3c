package builder

import (
	"context"
	"fmt"
	"path"
	"sort"
	"strconv"
	"strings"

	"github.com/moby/buildkit/frontend/dockerfile/instructions"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// dispatch expands and executes one instruction against the stage, without the cache.
func (s *stage) dispatch(ctx context.Context, cmd instructions.Command) error {
	if err := s.expand(cmd, false); err != nil {
		return err
	}
	return s.apply(ctx, cmd)
}

// apply executes one expanded instruction against the stage.
func (s *stage) apply(ctx context.Context, cmd instructions.Command) error {
	cfg := &s.state.config.Config
	switch c := cmd.(type) {
	case *instructions.EnvCommand:
		for _, kv := range c.Env {
			cfg.Env = setEnv(cfg.Env, kv.Key, kv.Value)
		}
		return s.commit("ENV " + kvText(c.Env))
	case *instructions.LabelCommand:
		return s.label(c.Labels)
	case *labelOption:
		return s.label(c.Labels)
	case *instructions.MaintainerCommand:
		s.state.config.Author = c.Maintainer
		return s.commit("MAINTAINER " + c.Maintainer)
	case *instructions.ExposeCommand:
		return s.expose(c)
	case *instructions.VolumeCommand:
		if cfg.Volumes == nil {
			cfg.Volumes = map[string]struct{}{}
		}
		for _, v := range c.Volumes {
			if strings.TrimSpace(v) == "" {
				return fmt.Errorf("VOLUME specified can not be an empty string")
			}
			cfg.Volumes[v] = struct{}{}
		}
		return s.commit(fmt.Sprintf("VOLUME %v", c.Volumes))
	case *instructions.UserCommand:
		cfg.User = c.User
		return s.commit("USER " + c.User)
	case *instructions.WorkdirCommand:
		return s.workdir(ctx, c)
	case *instructions.StopSignalCommand:
		if err := validateSignal(c.Signal); err != nil {
			return err
		}
		cfg.StopSignal = c.Signal
		return s.commit("STOPSIGNAL " + c.Signal)
	case *instructions.CmdCommand:
		cfg.Cmd = s.withShell(c.ShellDependantCmdLine)
		s.cmdSet = true
		return s.commit(fmt.Sprintf("CMD %q", cfg.Cmd))
	case *instructions.EntrypointCommand:
		cfg.Entrypoint = s.withShell(c.ShellDependantCmdLine)
		if !s.cmdSet {
			cfg.Cmd = nil
		}
		return s.commit(fmt.Sprintf("ENTRYPOINT %q", cfg.Entrypoint))
	case *instructions.ShellCommand:
		cfg.Shell = append([]string(nil), c.Shell...)
		return s.commit(fmt.Sprintf("SHELL %q", c.Shell))
	case *instructions.HealthCheckCommand:
		return s.healthcheck(c)
	case *instructions.OnbuildCommand:
		cfg.OnBuild = append(cfg.OnBuild, c.Expression)
		return s.commit("ONBUILD " + c.Expression)
	case *instructions.ArgCommand:
		for _, kv := range c.Args {
			s.b.args.declare(kv.Key, kv.Value)
		}
		return s.commit("ARG " + argText(c))
	case *instructions.RunCommand:
		return s.run(ctx, c)
	case *instructions.CopyCommand:
		return s.b.phases.Exclusive(PhaseCopy, func() error { return s.copy(ctx, c) })
	case *instructions.AddCommand:
		return s.b.phases.Exclusive(PhaseCopy, func() error { return s.add(ctx, c) })
	}
	return fmt.Errorf("%s: %w", cmd.Name(), ErrUnsupported)
}

// expand substitutes ARG and ENV values into the instruction's arguments, for the
// instructions Docker expands. lint runs the build checks that need the stage's state
// (see lint_dispatch.go) on a Dockerfile instruction.
func (s *stage) expand(cmd instructions.Command, lint bool) error {
	env := s.b.args.expansionEnv(s.state.config.Config.Env)
	var report func(map[string]struct{})
	_, fromFlag := cmd.(*labelOption)
	lint = lint && !fromFlag && s.b.df.lint != nil
	if lint {
		declared := s.declaredArgs()
		report = func(unmatched map[string]struct{}) { s.undefinedVars(cmd, unmatched, env, declared) }
		if c, ok := cmd.(*instructions.ArgCommand); ok {
			s.lintArg(c, env)
			report = nil
		}
	}
	expander := func(word string) (string, error) {
		out, unmatched, err := s.b.lex.ProcessWord(word, env)
		if report != nil && err == nil {
			report(unmatched)
		}
		return out, err
	}
	if e, ok := cmd.(instructions.SupportsSingleWordExpansion); ok {
		if err := e.Expand(expander); err != nil {
			return err
		}
	}
	if err := expandHeredocs(cmd, env, report); err != nil {
		return err
	}
	if c, ok := cmd.(*instructions.ExposeCommand); ok {
		var ports []string
		for _, p := range c.Ports {
			words, err := s.b.lex.ProcessWords(p, env)
			if err != nil {
				return err
			}
			ports = append(ports, words...)
		}
		c.Ports = ports
	}
	if lint {
		s.lintExpanded(cmd)
		return s.b.flushLint()
	}
	return nil
}

// commit records a metadata-only instruction in the history.
func (s *stage) commit(text string) error {
	s.state.addHistory("/bin/sh -c #(nop)  "+text, s.b.created)
	return nil
}

func (s *stage) label(labels instructions.KeyValuePairs) error {
	cfg := &s.state.config.Config
	if cfg.Labels == nil {
		cfg.Labels = map[string]string{}
	}
	for _, kv := range labels {
		if kv.Key == "" {
			return fmt.Errorf("LABEL names can not be blank")
		}
		cfg.Labels[kv.Key] = kv.Value
	}
	return s.commit("LABEL " + kvText(labels))
}

// expose adds ports; ranges ("8000-8002/udp") expand to each port, as Docker does.
func (s *stage) expose(c *instructions.ExposeCommand) error {
	cfg := &s.state.config.Config
	if cfg.ExposedPorts == nil {
		cfg.ExposedPorts = map[string]struct{}{}
	}
	var added []string
	for _, spec := range c.Ports {
		ports, err := parsePortSpec(spec)
		if err != nil {
			return err
		}
		for _, p := range ports {
			cfg.ExposedPorts[p] = struct{}{}
			added = append(added, p)
		}
	}
	sort.Strings(added)
	return s.commit("EXPOSE " + strings.Join(added, " "))
}

// parsePortSpec parses "80", "80/tcp", "1000-1002/udp" (an optional "ip:" or
// "ip:hostport:" prefix is accepted and dropped, as Docker does).
func parsePortSpec(spec string) ([]string, error) {
	raw := spec
	if i := strings.LastIndex(spec, ":"); i >= 0 {
		spec = spec[i+1:]
	}
	port, proto, _ := strings.Cut(spec, "/")
	if proto == "" {
		proto = "tcp"
	}
	proto = strings.ToLower(proto)
	switch proto {
	case "tcp", "udp", "sctp":
	default:
		return nil, fmt.Errorf("invalid proto: %s", proto)
	}
	lo, hi, isRange := strings.Cut(port, "-")
	start, err := strconv.ParseUint(lo, 10, 16)
	if err != nil {
		return nil, fmt.Errorf("invalid containerPort: %s", raw)
	}
	end := start
	if isRange {
		if end, err = strconv.ParseUint(hi, 10, 16); err != nil || end < start {
			return nil, fmt.Errorf("invalid range specified for containerPort: %s", raw)
		}
	}
	var out []string
	for p := start; p <= end; p++ {
		out = append(out, fmt.Sprintf("%d/%s", p, proto))
	}
	return out, nil
}

// healthcheck sets HEALTHCHECK. Durations and retries left at zero keep the values of
// the healthcheck before it: Docker's classic builder creates a container for every step,
// and the daemon fills a config's zero healthcheck fields from its image's (a quirk the
// corpus shows with HEALTHCHECK NONE keeping the parent's interval).
func (s *stage) healthcheck(c *instructions.HealthCheckCommand) error {
	h := c.Health
	next := &v1.HealthConfig{
		Test:        append([]string(nil), h.Test...),
		Interval:    h.Interval,
		Timeout:     h.Timeout,
		StartPeriod: h.StartPeriod,
		Retries:     h.Retries,
	}
	if prev := s.state.config.Config.Healthcheck; prev != nil {
		if next.Interval == 0 {
			next.Interval = prev.Interval
		}
		if next.Timeout == 0 {
			next.Timeout = prev.Timeout
		}
		if next.StartPeriod == 0 {
			next.StartPeriod = prev.StartPeriod
		}
		if next.Retries == 0 {
			next.Retries = prev.Retries
		}
	}
	s.state.config.Config.Healthcheck = next
	return s.commit(fmt.Sprintf("HEALTHCHECK &{%q}", h.Test))
}

// withShell turns a shell-form command line into SHELL + [line]; exec form is kept.
func (s *stage) withShell(c instructions.ShellDependantCmdLine) []string {
	if !c.PrependShell {
		return append([]string{}, c.CmdLine...)
	}
	return append(s.shell(), strings.Join(c.CmdLine, " "))
}

// shell is the stage's SHELL, or Docker's default.
func (s *stage) shell() []string {
	if sh := s.state.config.Config.Shell; len(sh) > 0 {
		return append([]string(nil), sh...)
	}
	return []string{"/bin/sh", "-c"}
}

// resolveWorkdir returns the absolute form of a WORKDIR value relative to the current
// working directory.
func resolveWorkdir(current, p string) string {
	if !path.IsAbs(p) {
		if current == "" {
			current = "/"
		}
		p = path.Join(current, p)
	}
	return path.Clean(p)
}

// setEnv replaces the value of key in env, or appends it.
func setEnv(env []string, key, value string) []string {
	for i, kv := range env {
		if k, _, _ := strings.Cut(kv, "="); k == key {
			out := append([]string(nil), env...)
			out[i] = key + "=" + value
			return out
		}
	}
	return append(append([]string(nil), env...), key+"="+value)
}

// getEnv returns the value of key in env.
func getEnv(env []string, key string) (string, bool) {
	for _, kv := range env {
		if k, v, _ := strings.Cut(kv, "="); k == key {
			return v, true
		}
	}
	return "", false
}

func kvText(kvs instructions.KeyValuePairs) string {
	parts := make([]string, len(kvs))
	for i, kv := range kvs {
		parts[i] = kv.Key + "=" + kv.Value
	}
	return strings.Join(parts, " ")
}

func argText(c *instructions.ArgCommand) string {
	parts := make([]string, len(c.Args))
	for i, kv := range c.Args {
		parts[i] = kv.String()
	}
	return strings.Join(parts, " ")
}

// validateSignal accepts signal numbers and names (with or without SIG), as Docker does.
func validateSignal(sig string) error {
	if _, err := strconv.Atoi(sig); err == nil {
		return nil
	}
	name := strings.TrimPrefix(strings.ToUpper(sig), "SIG")
	if _, ok := signalNames[name]; ok {
		return nil
	}
	if strings.HasPrefix(name, "RTMIN") || strings.HasPrefix(name, "RTMAX") {
		return nil
	}
	return fmt.Errorf("invalid signal: %s", sig)
}

var signalNames = map[string]struct{}{
	"ABRT": {}, "ALRM": {}, "BUS": {}, "CHLD": {}, "CLD": {}, "CONT": {}, "FPE": {}, "HUP": {},
	"ILL": {}, "INT": {}, "IO": {}, "IOT": {}, "KILL": {}, "PIPE": {}, "POLL": {}, "PROF": {},
	"PWR": {}, "QUIT": {}, "SEGV": {}, "STKFLT": {}, "STOP": {}, "SYS": {}, "TERM": {}, "TRAP": {},
	"TSTP": {}, "TTIN": {}, "TTOU": {}, "UNUSED": {}, "URG": {}, "USR1": {}, "USR2": {}, "VTALRM": {},
	"WINCH": {}, "XCPU": {}, "XFSZ": {},
}
