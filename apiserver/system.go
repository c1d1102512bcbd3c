package apiserver

import (
	"encoding/json"
	"net/http"
	"runtime"
	"strconv"
	"time"

	"github.com/gorilla/mux"
	"github.com/sirupsen/logrus"
)

// systemRoutes registers /_ping, /version, /info and /system/df.
func (s *Server) systemRoutes(r *mux.Router) {
	r.HandleFunc("/_ping", s.ping).Methods(http.MethodGet, http.MethodHead)
	r.HandleFunc("/version", s.versionInfo).Methods(http.MethodGet)
	r.HandleFunc("/info", s.info).Methods(http.MethodGet)
	r.HandleFunc("/system/df", s.systemDiskUsage).Methods(http.MethodGet)
}

// ping answers as dockerd 20.10 does. The CLI negotiates its API version from the
// headers (set on every response by the middleware); the body is for humans and curl.
func (s *Server) ping(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Cache-Control", "no-cache, no-store, must-revalidate")
	h.Set("Pragma", "no-cache")
	h.Set("Content-Type", "text/plain; charset=utf-8")
	if r.Method == http.MethodHead {
		// net/http leaves Content-Length out of an empty HEAD answer; dockerd sends 0.
		h.Set("Content-Length", "0")
		w.WriteHeader(http.StatusOK)
		return
	}
	h.Set("Content-Length", "2")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write([]byte("OK"))
}

// versionBody is GET /version's answer, dockerd's fields in dockerd's order.
type versionBody struct {
	Platform      struct{ Name string } `json:"Platform"`
	Components    []versionComponent    `json:"Components"`
	Version       string                `json:"Version"`
	APIVersion    string                `json:"ApiVersion"`
	MinAPIVersion string                `json:"MinAPIVersion"`
	GitCommit     string                `json:"GitCommit"`
	GoVersion     string                `json:"GoVersion"`
	Os            string                `json:"Os"`
	Arch          string                `json:"Arch"`
	KernelVersion string                `json:"KernelVersion,omitempty"`
	BuildTime     string                `json:"BuildTime,omitempty"`
}

type versionComponent struct {
	Name    string            `json:"Name"`
	Version string            `json:"Version"`
	Details map[string]string `json:"Details,omitempty"`
}

// versionInfo answers GET /version. `docker version` prints the "Engine" component,
// so kiln reports itself under that name.
func (s *Server) versionInfo(w http.ResponseWriter, _ *http.Request) {
	f := s.facts
	b := versionBody{
		Version:       s.version,
		APIVersion:    APIVersion,
		MinAPIVersion: MinAPIVersion,
		GitCommit:     f.gitCommit,
		GoVersion:     runtime.Version(),
		Os:            runtime.GOOS,
		Arch:          runtime.GOARCH,
		KernelVersion: f.kernel,
		BuildTime:     f.buildTime,
	}
	b.Platform.Name = "kiln"
	b.Components = []versionComponent{{
		Name:    "Engine",
		Version: s.version,
		Details: map[string]string{
			"ApiVersion":    APIVersion,
			"Arch":          b.Arch,
			"BuildTime":     b.BuildTime,
			"Experimental":  "false",
			"GitCommit":     b.GitCommit,
			"GoVersion":     b.GoVersion,
			"KernelVersion": b.KernelVersion,
			"MinAPIVersion": MinAPIVersion,
			"Os":            b.Os,
		},
	}}
	replyJSON(w, http.StatusOK, b)
}

// infoBody is GET /info's answer: the part of dockerd's that describes a build server,
// in dockerd's order. Container counts are zero (kiln runs none), and the fields
// `docker info` reads without a nil check (Plugins, Swarm, Labels, the security
// options) are always present.
type infoBody struct {
	ID                 string         `json:"ID"`
	Containers         int            `json:"Containers"`
	ContainersRunning  int            `json:"ContainersRunning"`
	ContainersPaused   int            `json:"ContainersPaused"`
	ContainersStopped  int            `json:"ContainersStopped"`
	Images             int            `json:"Images"`
	Driver             string         `json:"Driver"`
	DriverStatus       [][2]string    `json:"DriverStatus"`
	Plugins            infoPlugins    `json:"Plugins"`
	Debug              bool           `json:"Debug"`
	NGoroutines        int            `json:"NGoroutines"`
	SystemTime         string         `json:"SystemTime"`
	KernelVersion      string         `json:"KernelVersion"`
	OperatingSystem    string         `json:"OperatingSystem"`
	OSVersion          string         `json:"OSVersion"`
	OSType             string         `json:"OSType"`
	Architecture       string         `json:"Architecture"`
	IndexServerAddress string         `json:"IndexServerAddress"`
	NCPU               int            `json:"NCPU"`
	MemTotal           int64          `json:"MemTotal"`
	DockerRootDir      string         `json:"DockerRootDir"`
	Name               string         `json:"Name"`
	Labels             []string       `json:"Labels"`
	ExperimentalBuild  bool           `json:"ExperimentalBuild"`
	ServerVersion      string         `json:"ServerVersion"`
	Swarm              infoSwarm      `json:"Swarm"`
	LiveRestoreEnabled bool           `json:"LiveRestoreEnabled"`
	SecurityOptions    []string       `json:"SecurityOptions"`
	Warnings           []string       `json:"Warnings"`
	DefaultRuntime     string         `json:"DefaultRuntime"`
	Runtimes           map[string]any `json:"Runtimes"`
}

type infoPlugins struct {
	Volume        []string `json:"Volume"`
	Network       []string `json:"Network"`
	Authorization []string `json:"Authorization"`
	Log           []string `json:"Log"`
}

type infoSwarm struct {
	NodeID           string `json:"NodeID"`
	NodeAddr         string `json:"NodeAddr"`
	LocalNodeState   string `json:"LocalNodeState"`
	ControlAvailable bool   `json:"ControlAvailable"`
	Error            string `json:"Error"`
}

// noContainersWarning stands in for the warnings `docker info` would otherwise derive
// from the missing cgroup and network fields ("No memory limit support", ...): the
// CLI prints the server's warnings instead when there are any, and this is the true
// one.
const noContainersWarning = "WARNING: kiln is a build server: it runs no containers (docker run, networks and volumes are not available)"

// info answers GET /info.
func (s *Server) info(w http.ResponseWriter, r *http.Request) {
	f := s.facts
	b := infoBody{
		ID:                 f.id,
		Images:             s.imageCount(r),
		Driver:             "kiln",
		DriverStatus:       s.driverStatus(),
		Plugins:            infoPlugins{Volume: []string{}, Network: []string{}, Log: []string{}},
		Debug:              s.log.IsLevelEnabled(logrus.DebugLevel),
		NGoroutines:        runtime.NumGoroutine(),
		SystemTime:         time.Now().Format(time.RFC3339Nano),
		KernelVersion:      f.kernel,
		OperatingSystem:    f.osName,
		OSVersion:          f.osVersion,
		OSType:             runtime.GOOS,
		Architecture:       f.machine,
		IndexServerAddress: "https://index.docker.io/v1/",
		NCPU:               runtime.NumCPU(),
		MemTotal:           f.memTotal,
		DockerRootDir:      s.stateDir,
		Name:               f.hostname,
		Labels:             []string{},
		ServerVersion:      s.version,
		Swarm:              infoSwarm{LocalNodeState: "inactive"},
		SecurityOptions:    []string{},
		Warnings:           []string{noContainersWarning},
		Runtimes:           map[string]any{},
	}
	replyJSON(w, http.StatusOK, b)
}

// imageCount is the number of images in the store; 0 without one, or when listing it
// fails (logged: /info is not the place to fail for that).
func (s *Server) imageCount(r *http.Request) int {
	if s.store == nil {
		return 0
	}
	images, err := s.store.List()
	if err != nil {
		s.requestLog(r).WithError(err).Warn("counting images for /info")
		return 0
	}
	return len(images)
}

// driverStatus describes how builds run; `docker info` prints it under
// "Storage Driver: kiln".
func (s *Server) driverStatus() [][2]string {
	var st [][2]string
	if s.build.Workspace.Isolation != 0 {
		st = append(st, [2]string{"Isolation", s.build.Workspace.Isolation.String()})
	}
	st = append(st, [2]string{"Max concurrent builds", strconv.Itoa(max(s.build.MaxConcurrent, 1))})
	st = append(st, [2]string{"Push on build", strconv.FormatBool(s.build.PushOnBuild)})
	st = append(st, [2]string{"Auth token", strconv.FormatBool(s.authToken != "")})
	return st
}

// replyJSON answers with v as JSON, with the exact Content-Type the CLI checks for.
// Like dockerd's, it leaves <, > and & as they are ("<missing>", "a && b").
func replyJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(v)
}
