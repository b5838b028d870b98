// Command libcni-driver runs CNI plugins through libcni (the library inside
// cnitool, CRI-O and containerd) with cnitool's command line and environment
// contract, so that sandbox-cni's plugins can be exercised by the real client
// code. It is our own program written against the libcni API; it is not a copy
// of cnitool.
//
// Usage:
//
//	libcni-driver add|check|del NETWORK NETNS
//	libcni-driver gc|status NETWORK      (built with -tags libcni12: libcni 1.2 or later)
//	libcni-driver validate NETWORK
//	libcni-driver version PLUGIN_TYPE...
//	libcni-driver client                 (the library this driver is built on, as JSON)
//
// With -tags libcni12 the driver has the whole command line of cnitool 1.3:
// "gc" calls GCNetworkList (without GCArgs, as cnitool does, unless GC_VALID
// is set) and "status" calls GetStatusNetworkList.
//
// Environment, as read by cnitool:
//
//	NETCONFPATH  directory holding *.conflist / *.conf / *.json (default /etc/cni/net.d)
//	CNI_PATH     plugin directories, ':'-separated
//	CNI_IFNAME   interface name (default eth0; set but empty is passed on as empty)
//	CNI_ARGS     "K=V;K2=V2" pairs, each with a non-empty key and value
//	CAP_ARGS     JSON object of capability arguments (portMappings, bandwidth, ...)
//
// Additions of this driver:
//
//	CNI_CACHE_DIR  libcni cache directory (default: libcni's own, /var/lib/cni)
//	INTEROP_TRACE  file to which every plugin execution is appended as JSON
//	GC_VALID       for "gc": the valid attachments, "ID/IFNAME" separated by
//	               commas ("" = an empty list); unset = no GCArgs at all
//
// As in cnitool, the container ID is "cnitool-" followed by the hex form of
// the first 10 bytes of the SHA-512 of the absolute netns path.
package main

import (
	"context"
	"crypto/sha512"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/containernetworking/cni/libcni"
	"github.com/containernetworking/cni/pkg/version"

	"interop/tracing"
)

const usage = `usage:
  libcni-driver add|check|del NETWORK NETNS
  libcni-driver gc|status NETWORK      (libcni 1.2 or later, -tags libcni12)
  libcni-driver validate NETWORK
  libcni-driver version PLUGIN_TYPE...
  libcni-driver client
environment: NETCONFPATH CNI_PATH CNI_IFNAME CNI_ARGS CAP_ARGS CNI_CACHE_DIR INTEROP_TRACE GC_VALID`

// The libraries this driver and gocni-driver are built on, for reports (set by
// the build with -ldflags "-X main.library=... -X main.gocniLibrary=...").
var (
	library      = "libcni"
	gocniLibrary = "go-cni"
)

const defaultNetDir = "/etc/cni/net.d"

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintf(os.Stderr, "libcni-driver: %v\n", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	if len(args) == 0 {
		return fmt.Errorf("missing command\n%s", usage)
	}
	ctx := context.Background()
	cninet := libcni.NewCNIConfigWithCacheDir(
		filepath.SplitList(os.Getenv("CNI_PATH")),
		os.Getenv("CNI_CACHE_DIR"),
		tracing.NewExec(os.Getenv("INTEROP_TRACE")),
	)

	switch cmd := args[0]; cmd {
	case "client":
		return printJSON(map[string]interface{}{
			"library":      library,
			"gocniLibrary": gocniLibrary,
			"specVersions": version.All.SupportedVersions(),
			"gcAndStatus":  gcAndStatus,
		})
	case "gc", "status":
		if len(args) != 2 {
			return fmt.Errorf("%s needs exactly one NETWORK argument\n%s", cmd, usage)
		}
		list, err := loadList(args[1])
		if err != nil {
			return err
		}
		return gcOrStatus(ctx, cninet, cmd, list)
	case "version":
		if len(args) < 2 {
			return fmt.Errorf("version needs at least one plugin type\n%s", usage)
		}
		return versions(ctx, cninet, args[1:])
	case "validate":
		if len(args) != 2 {
			return fmt.Errorf("validate needs exactly one NETWORK argument\n%s", usage)
		}
		list, err := loadList(args[1])
		if err != nil {
			return err
		}
		caps, err := cninet.ValidateNetworkList(ctx, list)
		if err != nil {
			return fmt.Errorf("validating network %q: %w", list.Name, err)
		}
		sort.Strings(caps)
		return printJSON(map[string]interface{}{
			"name":         list.Name,
			"cniVersion":   list.CNIVersion,
			"capabilities": caps,
		})
	case "add", "check", "del":
		if len(args) != 3 {
			return fmt.Errorf("%s needs NETWORK and NETNS arguments\n%s", cmd, usage)
		}
		list, err := loadList(args[1])
		if err != nil {
			return err
		}
		rt, err := runtimeConf(args[2])
		if err != nil {
			return err
		}
		switch cmd {
		case "add":
			result, err := cninet.AddNetworkList(ctx, list, rt)
			if err != nil {
				return err
			}
			if result == nil {
				return nil
			}
			return result.PrintTo(os.Stdout)
		case "check":
			return cninet.CheckNetworkList(ctx, list, rt)
		default:
			return cninet.DelNetworkList(ctx, list, rt)
		}
	default:
		return fmt.Errorf("unknown command %q\n%s", cmd, usage)
	}
}

func loadList(name string) (*libcni.NetworkConfigList, error) {
	dir := os.Getenv("NETCONFPATH")
	if dir == "" {
		dir = defaultNetDir
	}
	list, err := libcni.LoadConfList(dir, name)
	if err != nil {
		return nil, fmt.Errorf("loading network %q from %s: %w", name, dir, err)
	}
	return list, nil
}

// runtimeConf builds the per-attachment arguments from the environment the
// way cnitool does.
func runtimeConf(netnsArg string) (*libcni.RuntimeConf, error) {
	netns, err := filepath.Abs(netnsArg)
	if err != nil {
		return nil, fmt.Errorf("making netns path %q absolute: %w", netnsArg, err)
	}

	var pairs [][2]string
	if raw := os.Getenv("CNI_ARGS"); raw != "" {
		for _, item := range strings.Split(raw, ";") {
			kv := strings.Split(item, "=")
			if len(kv) != 2 || kv[0] == "" || kv[1] == "" {
				return nil, fmt.Errorf("invalid CNI_ARGS pair %q: want KEY=VALUE", item)
			}
			pairs = append(pairs, [2]string{kv[0], kv[1]})
		}
	}

	var capArgs map[string]interface{}
	if raw := os.Getenv("CAP_ARGS"); raw != "" {
		if err := json.Unmarshal([]byte(raw), &capArgs); err != nil {
			return nil, fmt.Errorf("CAP_ARGS is not a JSON object: %w", err)
		}
	}

	ifName, set := os.LookupEnv("CNI_IFNAME")
	if !set {
		ifName = "eth0"
	}

	sum := sha512.Sum512([]byte(netns))
	return &libcni.RuntimeConf{
		ContainerID:    fmt.Sprintf("cnitool-%x", sum[:10]),
		NetNS:          netns,
		IfName:         ifName,
		Args:           pairs,
		CapabilityArgs: capArgs,
	}, nil
}

// versions asks each plugin type for its VERSION through libcni and prints
// {"type": {"cniVersion": ..., "supportedVersions": [...]}}.
func versions(ctx context.Context, cninet *libcni.CNIConfig, types []string) error {
	out := map[string]interface{}{}
	for _, t := range types {
		info, err := cninet.GetVersionInfo(ctx, t)
		if err != nil {
			return fmt.Errorf("VERSION of plugin %q: %w", t, err)
		}
		out[t] = map[string]interface{}{
			"supportedVersions": info.SupportedVersions(),
		}
	}
	return printJSON(out)
}

func printJSON(v interface{}) error {
	enc := json.NewEncoder(os.Stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}
