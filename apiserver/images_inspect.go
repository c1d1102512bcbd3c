package apiserver

import (
	"encoding/json"
	"fmt"
	"net/http"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/gorilla/mux"
)

// imageInspect is GET /images/{name}/json's answer, dockerd 20.10's ImageInspect in its
// field order (docs/server.md, "Images").
type imageInspect struct {
	ID              string           `json:"Id"`
	RepoTags        []string         `json:"RepoTags"`
	RepoDigests     []string         `json:"RepoDigests"`
	Parent          string           `json:"Parent"`
	Comment         string           `json:"Comment"`
	Created         string           `json:"Created"`
	Container       string           `json:"Container"`
	ContainerConfig containerConfig  `json:"ContainerConfig"`
	DockerVersion   string           `json:"DockerVersion"`
	Author          string           `json:"Author"`
	Config          containerConfig  `json:"Config"`
	Architecture    string           `json:"Architecture"`
	Variant         string           `json:"Variant,omitempty"`
	Os              string           `json:"Os"`
	OsVersion       string           `json:"OsVersion,omitempty"`
	Size            int64            `json:"Size"`
	VirtualSize     *int64           `json:"VirtualSize,omitempty"`
	GraphDriver     graphDriver      `json:"GraphDriver"`
	RootFS          inspectRootFS    `json:"RootFS"`
	Metadata        metadataLastTime `json:"Metadata"`
}

// containerConfig is Docker's container.Config as inspect prints it: the fields without
// omitempty appear even when empty (null or ""), like dockerd's.
type containerConfig struct {
	Hostname     string              `json:"Hostname"`
	Domainname   string              `json:"Domainname"`
	User         string              `json:"User"`
	AttachStdin  bool                `json:"AttachStdin"`
	AttachStdout bool                `json:"AttachStdout"`
	AttachStderr bool                `json:"AttachStderr"`
	ExposedPorts map[string]struct{} `json:"ExposedPorts,omitempty"`
	Tty          bool                `json:"Tty"`
	OpenStdin    bool                `json:"OpenStdin"`
	StdinOnce    bool                `json:"StdinOnce"`
	Env          []string            `json:"Env"`
	Cmd          []string            `json:"Cmd"`
	Healthcheck  *v1.HealthConfig    `json:"Healthcheck,omitempty"`
	ArgsEscaped  bool                `json:"ArgsEscaped,omitempty"`
	Image        string              `json:"Image"`
	Volumes      map[string]struct{} `json:"Volumes"`
	WorkingDir   string              `json:"WorkingDir"`
	Entrypoint   []string            `json:"Entrypoint"`
	OnBuild      []string            `json:"OnBuild"`
	Labels       map[string]string   `json:"Labels"`
	StopSignal   string              `json:"StopSignal,omitempty"`
	Shell        []string            `json:"Shell,omitempty"`
}

func toContainerConfig(c v1.Config) containerConfig {
	return containerConfig{
		Hostname:     c.Hostname,
		Domainname:   c.Domainname,
		User:         c.User,
		AttachStdin:  c.AttachStdin,
		AttachStdout: c.AttachStdout,
		AttachStderr: c.AttachStderr,
		ExposedPorts: c.ExposedPorts,
		Tty:          c.Tty,
		OpenStdin:    c.OpenStdin,
		StdinOnce:    c.StdinOnce,
		Env:          c.Env,
		Cmd:          c.Cmd,
		Healthcheck:  c.Healthcheck,
		ArgsEscaped:  c.ArgsEscaped,
		Image:        c.Image,
		Volumes:      c.Volumes,
		WorkingDir:   c.WorkingDir,
		Entrypoint:   c.Entrypoint,
		OnBuild:      c.OnBuild,
		Labels:       c.Labels,
		StopSignal:   c.StopSignal,
		Shell:        c.Shell,
	}
}

// graphDriver says where the image lives: kiln keeps images as an OCI layout.
type graphDriver struct {
	Data map[string]string `json:"Data"`
	Name string            `json:"Name"`
}

type inspectRootFS struct {
	Type   string   `json:"Type"`
	Layers []string `json:"Layers"`
}

type metadataLastTime struct {
	LastTagTime time.Time `json:"LastTagTime"`
}

// inspectImage answers GET /images/{name}/json. A missing image is dockerd's 404
// "no such image: X: No such image: X:latest".
func (s *Server) inspectImage(w http.ResponseWriter, r *http.Request) {
	st := s.imageStore(w)
	if st == nil {
		return
	}
	ref := mux.Vars(r)["name"]
	img, im, err := st.Resolve(ref)
	if err != nil {
		msg := err.Error()
		if storeErrorStatus(err) == http.StatusNotFound {
			msg = fmt.Sprintf("no such image: %s: %s", ref, msg)
		}
		writeError(w, storeErrorStatus(err), msg)
		return
	}
	cfg, err := img.ConfigFile()
	if err != nil {
		writeError(w, http.StatusInternalServerError, fmt.Sprintf("image %s: reading its config: %v", im.ID, err))
		return
	}
	// Fields go-containerregistry's ConfigFile does not model.
	var extra struct {
		Comment         string    `json:"comment"`
		ContainerConfig v1.Config `json:"container_config"`
		DockerVersion   string    `json:"docker_version"`
	}
	if raw, err := img.RawConfigFile(); err == nil {
		_ = json.Unmarshal(raw, &extra)
	}
	out := imageInspect{
		ID:              im.ID.String(),
		RepoTags:        nonNil(im.RepoTags),
		RepoDigests:     nonNil(im.RepoDigests),
		Comment:         extra.Comment,
		Created:         cfg.Created.UTC().Format(time.RFC3339Nano),
		Container:       cfg.Container,
		ContainerConfig: toContainerConfig(extra.ContainerConfig),
		DockerVersion:   extra.DockerVersion,
		Author:          cfg.Author,
		Config:          toContainerConfig(cfg.Config),
		Architecture:    cfg.Architecture,
		Variant:         cfg.Variant,
		Os:              cfg.OS,
		OsVersion:       cfg.OSVersion,
		Size:            im.Size,
		GraphDriver:     graphDriver{Data: map[string]string{"Dir": st.Dir()}, Name: "oci-layout"},
		RootFS:          inspectRootFS{Type: "layers", Layers: []string{}},
		Metadata:        metadataLastTime{LastTagTime: im.LastTagTime},
	}
	if cfg.RootFS.Type != "" {
		out.RootFS.Type = cfg.RootFS.Type
	}
	for _, d := range cfg.RootFS.DiffIDs {
		out.RootFS.Layers = append(out.RootFS.Layers, d.String())
	}
	if !versionAtLeast(r.Context(), "1.44") {
		size := im.Size
		out.VirtualSize = &size
	}
	replyJSON(w, http.StatusOK, out)
}

// nonNil turns nil into an empty list: inspect prints [] where the list prints null.
func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}
