package main

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/kiln-build/kiln/builder"
)

func TestRenderer(t *testing.T) {
	t.Parallel()
	id := v1.Hash{Algorithm: "sha256", Hex: strings.Repeat("ab", 32)}
	events := []builder.Event{
		builder.Info{Message: "Retrieving image alpine"},
		builder.StepStarted{Step: 3, Total: 7, Stage: "build", Line: 5, Text: "RUN make"},
		builder.Running{Step: 3, ID: "c0ffee"},
		builder.Output{Step: 3, Data: []byte("compiling\n")},
		builder.Output{Step: 3, Stderr: true, Data: []byte("warning: x\n")},
		builder.LayerWritten{Step: 3, Digest: id, Size: 10, Files: 2},
		builder.StepDone{Step: 3, ImageID: id},
		builder.Warning{Message: "unused build arg FOO"},
		builder.Debug{Message: "detail"},
		builder.CacheHit{Step: 4, Text: "COPY . /src"},
		builder.CacheMiss{Step: 5, Text: "RUN make test", Reason: "file main.go changed"},
	}
	tests := []struct {
		name, level         string
		wantLog, notLog     []string
		wantStdout, wantErr string
	}{
		{
			name:       "info",
			level:      "info",
			wantLog:    []string{"Retrieving image alpine", "Step 3/7 : RUN make", "unused build arg FOO", "Using caching version of cmd: COPY . /src"},
			notLog:     []string{"detail", "Running in", "abababababab", "main.go"},
			wantStdout: "compiling\n",
			wantErr:    "warning: x\n",
		},
		{
			name:       "debug",
			level:      "debug",
			wantLog:    []string{"Step 3/7 : RUN make", "detail", " ---> Running in c0ffee", " ---> abababababab", "2 files", "No cached layer found for cmd RUN make test: file main.go changed"},
			wantStdout: "compiling\n",
			wantErr:    "warning: x\n",
		},
		{
			name:       "error hides progress, never RUN output",
			level:      "error",
			notLog:     []string{"Step 3/7", "unused build arg"},
			wantStdout: "compiling\n",
			wantErr:    "warning: x\n",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var logs, stdout, stderr bytes.Buffer
			log, err := newLogger(&logs, tt.level, "text", false)
			if err != nil {
				t.Fatal(err)
			}
			r := &renderer{log: log, stdout: &stdout, stderr: &stderr}
			for _, e := range events {
				r.event(e)
			}
			for _, s := range tt.wantLog {
				if !strings.Contains(logs.String(), s) {
					t.Errorf("log lacks %q:\n%s", s, logs.String())
				}
			}
			for _, s := range tt.notLog {
				if strings.Contains(logs.String(), s) {
					t.Errorf("log has %q at level %s:\n%s", s, tt.level, logs.String())
				}
			}
			if stdout.String() != tt.wantStdout || stderr.String() != tt.wantErr {
				t.Errorf("RUN output: stdout %q stderr %q, want %q and %q", stdout.String(), stderr.String(), tt.wantStdout, tt.wantErr)
			}
		})
	}
}

func TestLoggerFormats(t *testing.T) {
	t.Parallel()
	tests := []struct {
		format     string
		timestamps bool
		check      func(t *testing.T, line string)
	}{
		{format: "text", check: func(t *testing.T, line string) {
			if line != "level=info msg=hello" {
				t.Errorf("text line %q, want %q", line, "level=info msg=hello")
			}
		}},
		{format: "color", check: func(t *testing.T, line string) {
			if !strings.Contains(line, "\x1b[") || !strings.Contains(line, "INFO") || !strings.Contains(line, "hello") {
				t.Errorf("color line %q: want a coloured INFO line", line)
			}
		}},
		{format: "text", timestamps: true, check: func(t *testing.T, line string) {
			if !strings.HasPrefix(line, "time=") {
				t.Errorf("timestamped line %q has no timestamp", line)
			}
		}},
		{format: "json", check: func(t *testing.T, line string) {
			var m map[string]any
			if err := json.Unmarshal([]byte(line), &m); err != nil {
				t.Fatalf("json line %q: %v", line, err)
			}
			if m["msg"] != "hello" || m["level"] != "info" {
				t.Errorf("json line %v", m)
			}
			if _, ok := m["time"]; ok {
				t.Errorf("json line %v has a time without --log-timestamp", m)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.format, func(t *testing.T) {
			t.Parallel()
			var buf bytes.Buffer
			log, err := newLogger(&buf, "info", tt.format, tt.timestamps)
			if err != nil {
				t.Fatal(err)
			}
			log.Info("hello")
			tt.check(t, strings.TrimSpace(buf.String()))
		})
	}
}
