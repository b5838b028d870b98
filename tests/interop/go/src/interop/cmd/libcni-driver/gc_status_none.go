//go:build !libcni12

package main

import (
	"context"
	"fmt"

	"github.com/containernetworking/cni/libcni"
)

// gcAndStatus: libcni before 1.2 has no GC or STATUS API.
const gcAndStatus = false

func gcOrStatus(_ context.Context, _ *libcni.CNIConfig, cmd string, _ *libcni.NetworkConfigList) error {
	return fmt.Errorf("%s needs libcni 1.2 or later: build this driver with -tags libcni12", cmd)
}
