// Package tracing wraps libcni's plugin executor so that every plugin
// invocation made by libcni (or by go-cni through libcni) is appended to a
// JSON-lines file. The interop tests read that file to see what the real
// client actually sent to each plugin: verb, CNI_* variables, stdin
// (runtimeConfig, prevResult, ...) and the raw stdout.
package tracing

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/containernetworking/cni/pkg/invoke"
	"github.com/containernetworking/cni/pkg/version"
)

// Record is one line of the trace file.
type Record struct {
	Plugin      string          `json:"plugin"`
	Command     string          `json:"command"`
	ContainerID string          `json:"containerId"`
	NetNS       string          `json:"netns"`
	IfName      string          `json:"ifName"`
	Args        string          `json:"args"`
	Path        string          `json:"path"`
	Stdin       json.RawMessage `json:"stdin,omitempty"`
	StdinText   string          `json:"stdinText,omitempty"`
	Stdout      json.RawMessage `json:"stdout,omitempty"`
	StdoutText  string          `json:"stdoutText,omitempty"`
	Error       string          `json:"error,omitempty"`
}

// Exec is an invoke.Exec that delegates to libcni's default executor and
// records each plugin execution.
type Exec struct {
	inner invoke.Exec
	path  string
	mu    sync.Mutex
}

// NewExec returns the executor libcni uses by default (plugin stderr goes to
// our stderr), wrapped so that executions are recorded in tracePath. An empty
// tracePath disables recording.
func NewExec(tracePath string) *Exec {
	return &Exec{
		inner: &invoke.DefaultExec{
			RawExec:       &invoke.RawExec{Stderr: os.Stderr},
			PluginDecoder: version.PluginDecoder{},
		},
		path: tracePath,
	}
}

var _ invoke.Exec = (*Exec)(nil)

// ExecPlugin runs the plugin and records the call.
func (e *Exec) ExecPlugin(ctx context.Context, pluginPath string, stdinData []byte, environ []string) ([]byte, error) {
	out, err := e.inner.ExecPlugin(ctx, pluginPath, stdinData, environ)
	if e.path != "" {
		rec := Record{Plugin: filepath.Base(pluginPath)}
		for _, kv := range environ {
			k, v, ok := strings.Cut(kv, "=")
			if !ok {
				continue
			}
			switch k {
			case "CNI_COMMAND":
				rec.Command = v
			case "CNI_CONTAINERID":
				rec.ContainerID = v
			case "CNI_NETNS":
				rec.NetNS = v
			case "CNI_IFNAME":
				rec.IfName = v
			case "CNI_ARGS":
				rec.Args = v
			case "CNI_PATH":
				rec.Path = v
			}
		}
		if json.Valid(stdinData) {
			rec.Stdin = append(json.RawMessage(nil), stdinData...)
		} else {
			rec.StdinText = string(stdinData)
		}
		if len(out) > 0 && json.Valid(out) {
			rec.Stdout = append(json.RawMessage(nil), out...)
		} else {
			rec.StdoutText = string(out)
		}
		if err != nil {
			rec.Error = err.Error()
		}
		if werr := e.append(rec); werr != nil {
			return nil, fmt.Errorf("recording plugin call in trace file %s: %w", e.path, werr)
		}
	}
	return out, err
}

// FindInPath delegates to libcni's default lookup.
func (e *Exec) FindInPath(plugin string, paths []string) (string, error) {
	return e.inner.FindInPath(plugin, paths)
}

// Decode delegates to libcni's default VERSION decoder.
func (e *Exec) Decode(jsonBytes []byte) (version.PluginInfo, error) {
	return e.inner.Decode(jsonBytes)
}

func (e *Exec) append(rec Record) error {
	line, err := json.Marshal(rec)
	if err != nil {
		return err
	}
	line = append(line, '\n')
	// go-cni attaches networks in parallel: serialise the writes.
	e.mu.Lock()
	defer e.mu.Unlock()
	f, err := os.OpenFile(e.path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return err
	}
	if _, err := f.Write(line); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
