//go:build libcni12

package main

import (
	"context"
	"fmt"
	"os"
	"strings"

	"github.com/containernetworking/cni/libcni"
	"github.com/containernetworking/cni/pkg/types"
)

// gcAndStatus: this build has libcni's GC and STATUS API (libcni 1.2 and later).
const gcAndStatus = true

// gcOrStatus runs cnitool 1.3's "gc" (GCNetworkList) or "status"
// (GetStatusNetworkList) for one network list.
func gcOrStatus(ctx context.Context, cninet *libcni.CNIConfig, cmd string, list *libcni.NetworkConfigList) error {
	if cmd == "status" {
		return cninet.GetStatusNetworkList(ctx, list)
	}
	raw, set := os.LookupEnv("GC_VALID")
	if !set {
		// What cnitool 1.3 does: no GCArgs, so libcni DELs every cached
		// attachment of the network and sends GC without a list.
		return cninet.GCNetworkList(ctx, list, nil)
	}
	valid := []types.GCAttachment{}
	for _, item := range strings.Split(raw, ",") {
		if item == "" {
			continue
		}
		id, ifName, ok := strings.Cut(item, "/")
		if !ok || id == "" || ifName == "" {
			return fmt.Errorf("invalid GC_VALID entry %q: want CONTAINERID/IFNAME", item)
		}
		valid = append(valid, types.GCAttachment{ContainerID: id, IfName: ifName})
	}
	return cninet.GCNetworkList(ctx, list, &libcni.GCArgs{ValidAttachments: valid})
}
