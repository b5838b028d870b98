"""Build a single-layer OCI image tarball around one static binary.

The result is an OCI image layout (oci-layout, index.json, blobs/sha256/...)
packed as a tar stream, which `ctr images import` accepts. Everything is
deterministic (fixed mtimes, owners and JSON key order), so the same binary
always gives the same digests.
"""

import hashlib
import io
import json
import platform
import tarfile

MEDIA_INDEX = "application/vnd.oci.image.index.v1+json"
MEDIA_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
MEDIA_CONFIG = "application/vnd.oci.image.config.v1+json"
MEDIA_LAYER = "application/vnd.oci.image.layer.v1.tar"

# Go's GOARCH names, which OCI platforms use, for the machines we run on.
_GOARCH = {
    "x86_64": "amd64",
    "amd64": "amd64",
    "aarch64": "arm64",
    "arm64": "arm64",
    "armv7l": "arm",
    "ppc64le": "ppc64le",
    "s390x": "s390x",
    "riscv64": "riscv64",
}


def host_architecture():
    """OCI architecture name of this machine; raises ValueError if unknown."""
    machine = platform.machine()
    try:
        return _GOARCH[machine]
    except KeyError:
        raise ValueError(
            f"unknown machine type {machine!r}: add its GOARCH name to _GOARCH in oci_image.py"
        ) from None


def _canonical_json(value):
    return json.dumps(value, sort_keys=True, separators=(",", ":")).encode()


def _digest(data):
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _add_bytes(tar, name, data, mode=0o644):
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mode = mode
    info.mtime = 0
    info.uid = info.gid = 0
    info.uname = info.gname = "root"
    tar.addfile(info, io.BytesIO(data))


def _add_dir(tar, name):
    info = tarfile.TarInfo(name)
    info.type = tarfile.DIRTYPE
    info.mode = 0o755
    info.mtime = 0
    info.uid = info.gid = 0
    info.uname = info.gname = "root"
    tar.addfile(info)


def _layer(binary, entrypoint_name):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        # Mount points runc would otherwise have to create in the rootfs.
        for directory in ("dev", "proc", "sys", "etc"):
            _add_dir(tar, directory)
        _add_bytes(tar, entrypoint_name, binary, mode=0o755)
    return buf.getvalue()


def build_image_tar(binary, image_name, entrypoint=None, binary_name="pause"):
    """Return (tar bytes, manifest digest) of an OCI layout holding one image.

    binary: contents of the static executable, stored as /<binary_name> in the layer;
      None gives an image with no layer at all (an empty root filesystem),
      for runtimes that cannot unpack layers (gVisor's runsc, where the
      snapshot mount fails).
    image_name: full reference, e.g. "sandbox-cni.local/e2e/pause:1"; stored
      in the index annotations that `ctr images import` reads.
    entrypoint: the command the image runs; defaults to ["/<binary_name>"]. A
      test may pass a path that does not exist to get an image runc cannot start.
    binary_name: the file name in the layer (default "pause"); a multi-call
      binary such as busybox needs its own name, which it reads from argv[0].
    """
    if ":" not in image_name.rsplit("/", 1)[-1]:
        raise ValueError(f"image name {image_name!r} needs an explicit tag (name:tag)")
    tag = image_name.rsplit(":", 1)[1]
    arch = host_architecture()

    layers = [] if binary is None else [_layer(binary, binary_name)]
    config = _canonical_json(
        {
            "architecture": arch,
            "os": "linux",
            "config": {
                "Entrypoint": entrypoint or ["/" + binary_name],
                "WorkingDir": "/",
                "Env": ["PATH=/"],
            },
            "rootfs": {"type": "layers", "diff_ids": [_digest(layer) for layer in layers]},
            "history": [{"created_by": "sandbox-cni tests/e2e/oci_image.py"}],
        }
    )
    manifest = _canonical_json(
        {
            "schemaVersion": 2,
            "mediaType": MEDIA_MANIFEST,
            "config": {"mediaType": MEDIA_CONFIG, "digest": _digest(config), "size": len(config)},
            "layers": [{"mediaType": MEDIA_LAYER, "digest": _digest(layer), "size": len(layer)} for layer in layers],
        }
    )
    index = _canonical_json(
        {
            "schemaVersion": 2,
            "mediaType": MEDIA_INDEX,
            "manifests": [
                {
                    "mediaType": MEDIA_MANIFEST,
                    "digest": _digest(manifest),
                    "size": len(manifest),
                    "platform": {"architecture": arch, "os": "linux"},
                    "annotations": {
                        "io.containerd.image.name": image_name,
                        "org.opencontainers.image.ref.name": tag,
                    },
                }
            ],
        }
    )

    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
        _add_bytes(tar, "oci-layout", _canonical_json({"imageLayoutVersion": "1.0.0"}))
        _add_bytes(tar, "index.json", index)
        _add_dir(tar, "blobs")
        _add_dir(tar, "blobs/sha256")
        for blob in (*layers, config, manifest):
            _add_bytes(tar, "blobs/sha256/" + _digest(blob).split(":", 1)[1], blob)
    return out.getvalue(), _digest(manifest)
