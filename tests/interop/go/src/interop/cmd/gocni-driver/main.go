// Command gocni-driver drives CNI plugins through containerd's go-cni library
// the way containerd's CRI plugin does: one loopback network ("cni-loopback",
// cniVersion 0.3.1, interface lo) plus the default network, i.e. the first
// configuration file of the conf dir (interface eth0), and a minimum network
// count of 2 for the plugin to count as initialised.
//
// Usage:
//
//	gocni-driver [flags] status
//	gocni-driver [flags] setup|check|remove SANDBOX_ID NETNS
//
// "status" prints the NetworkReady condition the CRI plugin would report and
// exits non-zero when it is false. "setup" prints, as JSON, each interface of
// go-cni's result (MAC, sandbox, IPs), the pod IPs containerd would pick (the
// IPs of eth0, IPv4 first) and the raw per-network results; it fails like
// containerd when eth0 has no IP. Every invocation loads the configuration
// afresh, like a containerd restart; libcni's result cache persists between
// invocations in -cache-dir.
//
// Note on "check": go-cni checks the loopback network too, and libcni refuses
// CHECK for its cniVersion 0.3.1, so with containerd's networks Check always
// fails before any plugin runs. "-no-loopback -min-networks 1" loads only the
// default network, whose CHECK then reaches the plugins.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"time"
	"unsafe"

	gocni "github.com/containerd/go-cni"
	"github.com/containernetworking/cni/libcni"

	"interop/tracing"
)

type portFlags []gocni.PortMapping

func (p *portFlags) String() string { return fmt.Sprint(*p) }

// Set parses HOSTPORT:CONTAINERPORT[/PROTOCOL].
func (p *portFlags) Set(s string) error {
	spec, proto, hasProto := strings.Cut(s, "/")
	if !hasProto {
		proto = "tcp"
	}
	host, container, ok := strings.Cut(spec, ":")
	if !ok {
		return fmt.Errorf("port mapping %q: want HOSTPORT:CONTAINERPORT[/PROTOCOL]", s)
	}
	hp, err := strconv.ParseInt(host, 10, 32)
	if err != nil {
		return fmt.Errorf("port mapping %q: bad host port: %w", s, err)
	}
	cp, err := strconv.ParseInt(container, 10, 32)
	if err != nil {
		return fmt.Errorf("port mapping %q: bad container port: %w", s, err)
	}
	*p = append(*p, gocni.PortMapping{HostPort: int32(hp), ContainerPort: int32(cp), Protocol: proto})
	return nil
}

type options struct {
	confDir     string
	binDirs     string
	cacheDir    string
	maxConfNum  int
	minNetworks int
	trace       string
	timeout     time.Duration
	ports       portFlags
	ingressRate uint64
	egressRate  uint64
	dnsServers  string
	podName     string
	podNS       string
	noLoopback  bool
}

func main() {
	var o options
	fs := flag.NewFlagSet("gocni-driver", flag.ContinueOnError)
	fs.StringVar(&o.confDir, "conf-dir", gocni.DefaultNetDir, "CNI configuration directory")
	fs.StringVar(&o.binDirs, "bin-dir", gocni.DefaultCNIDir, "plugin directories, ':'-separated")
	fs.StringVar(&o.cacheDir, "cache-dir", "", "libcni cache directory (default: libcni's own, /var/lib/cni)")
	fs.IntVar(&o.maxConfNum, "max-conf-num", gocni.DefaultMaxConfNum, "how many conf files to load (containerd's max_conf_num)")
	fs.IntVar(&o.minNetworks, "min-networks", 2, "networks needed for Status to succeed (containerd: loopback + default = 2)")
	fs.StringVar(&o.trace, "trace", os.Getenv("INTEROP_TRACE"), "append every plugin execution to this JSON-lines file")
	fs.DurationVar(&o.timeout, "timeout", 60*time.Second, "deadline for the whole operation")
	fs.Var(&o.ports, "portmap", "HOSTPORT:CONTAINERPORT[/PROTOCOL] port mapping (repeatable)")
	fs.Uint64Var(&o.ingressRate, "ingress-rate", 0, "bandwidth capability: ingress rate and burst (0 = not sent)")
	fs.Uint64Var(&o.egressRate, "egress-rate", 0, "bandwidth capability: egress rate and burst (0 = not sent)")
	fs.StringVar(&o.dnsServers, "dns", "", "dns capability: comma-separated servers (empty = not sent)")
	fs.StringVar(&o.podName, "pod-name", "interop-pod", "K8S_POD_NAME label")
	fs.StringVar(&o.podNS, "pod-namespace", "default", "K8S_POD_NAMESPACE label")
	fs.BoolVar(&o.noLoopback, "no-loopback", false, "load only the default network, not containerd's loopback network (use with -min-networks 1)")
	if err := fs.Parse(os.Args[1:]); err != nil {
		os.Exit(2)
	}
	code, err := run(&o, fs.Args())
	if err != nil {
		fmt.Fprintf(os.Stderr, "gocni-driver: %v\n", err)
	}
	os.Exit(code)
}

func run(o *options, args []string) (int, error) {
	if len(args) == 0 {
		return 2, errors.New("missing command: status | setup|check|remove SANDBOX_ID NETNS")
	}
	c, err := newCNI(o)
	if err != nil {
		return 1, err
	}
	// What containerd's CRI plugin does at start-up and on conf dir changes.
	// A load failure is only logged by containerd; Status then reports it.
	loadOpts := []gocni.Opt{gocni.WithLoNetwork, gocni.WithDefaultConf}
	if o.noLoopback {
		loadOpts = loadOpts[1:]
	}
	if err := c.Load(loadOpts...); err != nil {
		fmt.Fprintf(os.Stderr, "gocni-driver: failed to load cni configuration: %v\n", err)
	}

	cmd := args[0]
	if cmd == "status" {
		if len(args) != 1 {
			return 2, errors.New("status takes no arguments")
		}
		if err := c.Status(); err != nil {
			fmt.Printf("NetworkReady=false reason=NetworkPluginNotReady message=Network plugin returns error: %v\n", err)
			return 1, nil
		}
		fmt.Println("NetworkReady=true")
		return 0, nil
	}
	if len(args) != 3 {
		return 2, fmt.Errorf("%s needs SANDBOX_ID and NETNS arguments", cmd)
	}
	id, netns := args[1], args[2]
	ctx, cancel := context.WithTimeout(context.Background(), o.timeout)
	defer cancel()
	nsOpts := namespaceOpts(o, id)

	switch cmd {
	case "setup":
		res, err := c.Setup(ctx, id, netns, nsOpts...)
		if err != nil {
			return 1, fmt.Errorf("failed to setup network for sandbox %q: %w", id, err)
		}
		return printSetup(id, res)
	case "check":
		if err := c.Check(ctx, id, netns, nsOpts...); err != nil {
			return 1, fmt.Errorf("network check of sandbox %q failed: %w", id, err)
		}
		return 0, nil
	case "remove":
		if err := c.Remove(ctx, id, netns, nsOpts...); err != nil {
			return 1, fmt.Errorf("failed to destroy network for sandbox %q: %w", id, err)
		}
		return 0, nil
	default:
		return 2, fmt.Errorf("unknown command %q", cmd)
	}
}

// newCNI builds the go-cni instance with containerd's CRI options.
func newCNI(o *options) (gocni.CNI, error) {
	dirs := filepath.SplitList(o.binDirs)
	c, err := gocni.New(
		gocni.WithMinNetworkCount(o.minNetworks),
		gocni.WithPluginConfDir(o.confDir),
		gocni.WithPluginMaxConfNum(o.maxConfNum),
		gocni.WithPluginDir(dirs),
	)
	if err != nil {
		return nil, fmt.Errorf("creating go-cni instance: %w", err)
	}
	if o.cacheDir != "" || o.trace != "" {
		if err := replaceLibcni(c, libcni.NewCNIConfigWithCacheDir(dirs, o.cacheDir, tracing.NewExec(o.trace))); err != nil {
			return nil, err
		}
	}
	return c, nil
}

// replaceLibcni swaps go-cni's private libcni handle for one with our cache
// dir and the tracing executor. go-cni 1.1.7 has no option for either (its
// handle always uses /var/lib/cni and the default executor), and the tests
// must not write to the machine's /var/lib/cni. Everything else (config
// loading, parallel attach, result handling) stays go-cni's own code. Must
// run before Load, which copies the handle into each network.
func replaceLibcni(c gocni.CNI, cfg libcni.CNI) error {
	v := reflect.ValueOf(c)
	if v.Kind() != reflect.Ptr || v.Elem().Kind() != reflect.Struct {
		return fmt.Errorf("unexpected go-cni implementation %T: this driver needs go-cni 1.1.7", c)
	}
	f := v.Elem().FieldByName("cniConfig")
	if !f.IsValid() || f.Type() != reflect.TypeOf((*libcni.CNI)(nil)).Elem() {
		return fmt.Errorf("go-cni %T has no cniConfig field of type libcni.CNI: this driver needs go-cni 1.1.7", c)
	}
	reflect.NewAt(f.Type(), unsafe.Pointer(f.UnsafeAddr())).Elem().Set(reflect.ValueOf(cfg))
	return nil
}

// namespaceOpts mirrors the per-sandbox options containerd's CRI plugin
// passes: pod labels as CNI_ARGS (with IgnoreUnknown=1), pod annotations,
// port mappings, and bandwidth and DNS when configured.
func namespaceOpts(o *options, id string) []gocni.NamespaceOpts {
	opts := []gocni.NamespaceOpts{
		gocni.WithLabels(map[string]string{
			"K8S_POD_NAMESPACE":          o.podNS,
			"K8S_POD_NAME":               o.podName,
			"K8S_POD_INFRA_CONTAINER_ID": id,
			"K8S_POD_UID":                "uid-" + id,
			"IgnoreUnknown":              "1",
		}),
		gocni.WithCapability("io.kubernetes.cri.pod-annotations", map[string]string{}),
	}
	if len(o.ports) > 0 {
		opts = append(opts, gocni.WithCapabilityPortMap(o.ports))
	}
	if o.ingressRate > 0 || o.egressRate > 0 {
		opts = append(opts, gocni.WithCapabilityBandWidth(gocni.BandWidth{
			IngressRate:  o.ingressRate,
			IngressBurst: o.ingressRate,
			EgressRate:   o.egressRate,
			EgressBurst:  o.egressRate,
		}))
	}
	if o.dnsServers != "" {
		opts = append(opts, gocni.WithCapabilityDNS(gocni.DNS{Servers: strings.Split(o.dnsServers, ",")}))
	}
	return opts
}

type ipOut struct {
	IP      string `json:"ip"`
	Gateway string `json:"gateway,omitempty"`
}

type ifaceOut struct {
	Mac     string  `json:"mac"`
	Sandbox string  `json:"sandbox"`
	IPs     []ipOut `json:"ips"`
}

func printSetup(id string, res *gocni.Result) (int, error) {
	out := struct {
		Interfaces map[string]ifaceOut `json:"interfaces"`
		PodIPs     []string            `json:"podIPs"`
		Raw        interface{}         `json:"raw"`
	}{Interfaces: map[string]ifaceOut{}, Raw: res.Raw()}

	for name, cfg := range res.Interfaces {
		io := ifaceOut{Mac: cfg.Mac, Sandbox: cfg.Sandbox, IPs: []ipOut{}}
		for _, ipc := range cfg.IPConfigs {
			e := ipOut{IP: ipc.IP.String()}
			if ipc.Gateway != nil {
				e.Gateway = ipc.Gateway.String()
			}
			io.IPs = append(io.IPs, e)
		}
		out.Interfaces[name] = io
	}

	// containerd's pod IP selection: the IPs of the default interface,
	// IPv4 first, and failure when there are none.
	if eth0, ok := res.Interfaces["eth0"]; ok {
		for _, want4 := range []bool{true, false} {
			for _, ipc := range eth0.IPConfigs {
				if isV4(ipc.IP) == want4 {
					out.PodIPs = append(out.PodIPs, ipc.IP.String())
				}
			}
		}
	}
	enc := json.NewEncoder(os.Stdout)
	enc.SetIndent("", "  ")
	if err := enc.Encode(out); err != nil {
		return 1, err
	}
	if len(out.PodIPs) == 0 {
		return 1, fmt.Errorf("failed to find network info for sandbox %q", id)
	}
	return 0, nil
}

func isV4(ip net.IP) bool { return ip.To4() != nil }
