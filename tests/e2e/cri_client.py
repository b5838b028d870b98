"""A small CRI RuntimeService client over a unix socket.

Python stubs are generated at run time from cri.proto (next to this file)
into a caller-supplied directory with grpc_tools, so nothing generated is
checked in. Needs Debian's python3-grpcio and python3-grpc-tools.
"""

import importlib
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
PROTO = os.path.join(HERE, "cri.proto")
API_PACKAGES = ("v1", "v1alpha2")


class CriError(Exception):
    """A CRI call failed; the message names the call and gRPC's status."""


def generate_stubs(out_dir, api="v1"):
    """Compile cri.proto into out_dir and return (messages, stubs) modules.

    api selects the protobuf package: "v1" (runtime.v1) or "v1alpha2"
    (runtime.v1alpha2, the older name containerd 1.6 still serves).
    """
    if api not in API_PACKAGES:
        raise ValueError(f"unknown CRI API {api!r}; use one of {', '.join(API_PACKAGES)}")
    try:
        from grpc_tools import protoc
    except ImportError as err:
        raise RuntimeError(
            f"cannot import grpc_tools ({err}): install Debian's python3-grpc-tools "
            "and run this with /usr/bin/python3"
        ) from err

    module = f"cri_{api}"
    os.makedirs(out_dir, exist_ok=True)
    with open(PROTO, encoding="utf-8") as f:
        text = f.read()
    if "package runtime.v1;" not in text:
        raise RuntimeError(f"{PROTO} no longer declares 'package runtime.v1;'")
    proto_path = os.path.join(out_dir, module + ".proto")
    with open(proto_path, "w", encoding="utf-8") as f:
        f.write(text.replace("package runtime.v1;", f"package runtime.{api};"))

    rc = protoc.main(
        [
            "grpc_tools.protoc",
            f"--proto_path={out_dir}",
            f"--python_out={out_dir}",
            f"--grpc_python_out={out_dir}",
            proto_path,
        ]
    )
    if rc != 0:
        raise RuntimeError(f"grpc_tools.protoc failed on {proto_path} (exit {rc})")
    if out_dir not in sys.path:
        sys.path.insert(0, out_dir)
    importlib.invalidate_caches()
    return importlib.import_module(module + "_pb2"), importlib.import_module(module + "_pb2_grpc")


class RuntimeClient:
    """Thin wrapper: every call has a deadline and raises CriError on failure."""

    def __init__(self, socket_path, stubs_dir, api="v1", timeout=60.0):
        import grpc

        self._grpc = grpc
        self.api = api
        self.timeout = timeout
        self.pb, grpc_mod = generate_stubs(stubs_dir, api)
        self.channel = grpc.insecure_channel(f"unix://{socket_path}")
        self.stub = grpc_mod.RuntimeServiceStub(self.channel)

    def close(self):
        self.channel.close()

    def _call(self, name, request, timeout=None):
        try:
            return getattr(self.stub, name)(request, timeout=timeout or self.timeout)
        except self._grpc.RpcError as err:
            code = err.code() if hasattr(err, "code") else None
            details = err.details() if hasattr(err, "details") else str(err)
            raise CriError(f"CRI {self.api} {name} failed: {code}: {details}") from err

    @staticmethod
    def is_not_found(err):
        cause = err.__cause__
        return cause is not None and hasattr(cause, "code") and cause.code().name == "NOT_FOUND"

    def version(self, timeout=None):
        return self._call("Version", self.pb.VersionRequest(version=self.api), timeout)

    def status(self, verbose=False):
        return self._call("Status", self.pb.StatusRequest(verbose=verbose))

    def conditions(self):
        """Status conditions as {type: RuntimeCondition}."""
        return {c.type: c for c in self.status().status.conditions}

    def run_pod_sandbox(self, name, namespace, uid, log_directory, cgroup_parent="", timeout=None):
        pb = self.pb
        config = pb.PodSandboxConfig(
            metadata=pb.PodSandboxMetadata(name=name, uid=uid, namespace=namespace, attempt=0),
            hostname=name,
            log_directory=log_directory,
            labels={"sandbox-cni.e2e": "1"},
            linux=pb.LinuxPodSandboxConfig(cgroup_parent=cgroup_parent),
        )
        return self._call("RunPodSandbox", pb.RunPodSandboxRequest(config=config), timeout).pod_sandbox_id

    def pod_sandbox_status(self, sandbox_id, verbose=False):
        return self._call(
            "PodSandboxStatus",
            self.pb.PodSandboxStatusRequest(pod_sandbox_id=sandbox_id, verbose=verbose),
        )

    def list_pod_sandbox(self):
        return list(self._call("ListPodSandbox", self.pb.ListPodSandboxRequest()).items)

    def stop_pod_sandbox(self, sandbox_id, timeout=None):
        self._call("StopPodSandbox", self.pb.StopPodSandboxRequest(pod_sandbox_id=sandbox_id), timeout)

    def remove_pod_sandbox(self, sandbox_id, timeout=None):
        self._call("RemovePodSandbox", self.pb.RemovePodSandboxRequest(pod_sandbox_id=sandbox_id), timeout)


# Containers (added for tests/gvisor/pods2024.py). A pod's config is passed
# again to CreateContainer, as kubelet does; pod_config builds it.


def pod_config(pb, name, namespace, uid, log_directory, cgroup_parent=""):
    """The PodSandboxConfig that RuntimeClient.run_pod_sandbox sends."""
    return pb.PodSandboxConfig(
        metadata=pb.PodSandboxMetadata(name=name, uid=uid, namespace=namespace, attempt=0),
        hostname=name,
        log_directory=log_directory,
        labels={"sandbox-cni.e2e": "1"},
        linux=pb.LinuxPodSandboxConfig(cgroup_parent=cgroup_parent),
    )


class ContainerClient(RuntimeClient):
    """RuntimeClient plus the container calls: create, start, status, exec, stop, remove."""

    def run_pod(self, config, timeout=None):
        return self._call("RunPodSandbox", self.pb.RunPodSandboxRequest(config=config), timeout).pod_sandbox_id

    def create_container(self, sandbox_id, sandbox_config, name, image, command, log_path, own_pid_ns=True, timeout=None):
        """Creates a container; own_pid_ns gives it its own pid namespace (kubelet's default)."""
        pb = self.pb
        pid = pb.CONTAINER if own_pid_ns else pb.POD
        config = pb.ContainerConfig(
            metadata=pb.ContainerMetadata(name=name, attempt=0),
            image=pb.ImageSpec(image=image),
            command=list(command),
            log_path=log_path,
            linux=pb.LinuxContainerConfig(
                security_context=pb.LinuxContainerSecurityContext(namespace_options=pb.NamespaceOption(pid=pid))
            ),
        )
        request = pb.CreateContainerRequest(pod_sandbox_id=sandbox_id, config=config, sandbox_config=sandbox_config)
        return self._call("CreateContainer", request, timeout).container_id

    def start_container(self, container_id, timeout=None):
        self._call("StartContainer", self.pb.StartContainerRequest(container_id=container_id), timeout)

    def container_status(self, container_id, timeout=None):
        return self._call("ContainerStatus", self.pb.ContainerStatusRequest(container_id=container_id), timeout).status

    def exec_sync(self, container_id, cmd, seconds=10, timeout=None):
        """(exit code, stdout bytes, stderr bytes) of cmd run in the container."""
        request = self.pb.ExecSyncRequest(container_id=container_id, cmd=list(cmd), timeout=seconds)
        reply = self._call("ExecSync", request, timeout or seconds + 10)
        return reply.exit_code, reply.stdout, reply.stderr

    def stop_container(self, container_id, seconds=5, timeout=None):
        request = self.pb.StopContainerRequest(container_id=container_id, timeout=seconds)
        self._call("StopContainer", request, timeout or seconds + 20)

    def remove_container(self, container_id, timeout=None):
        self._call("RemoveContainer", self.pb.RemoveContainerRequest(container_id=container_id), timeout)
