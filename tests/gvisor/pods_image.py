"""A one-layer OCI image holding a static busybox, for tests/gvisor/pods2024.py.

busybox picks its applet from argv[0], so the binary must be called
"busybox" (oci_image.build_image_tar always names it /pause): this builds the
same OCI layout with tests/e2e/oci_image.py's helpers, with /busybox in the
layer and commands such as ["/busybox", "sleep", "600"].
"""

import io
import os
import sys
import tarfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "e2e"))

import oci_image as oci  # noqa: E402


def build(busybox, image_name, entrypoint):
    """(tar bytes, manifest digest) of an OCI layout with /busybox in one layer."""
    tag = image_name.rsplit(":", 1)[1]
    arch = oci.host_architecture()
    layer = oci._layer(busybox, "busybox")  # noqa: SLF001 (the shared layer shape)
    config = oci._canonical_json(  # noqa: SLF001
        {
            "architecture": arch,
            "os": "linux",
            "config": {"Entrypoint": list(entrypoint), "WorkingDir": "/", "Env": ["PATH=/"]},
            "rootfs": {"type": "layers", "diff_ids": [oci._digest(layer)]},  # noqa: SLF001
            "history": [{"created_by": "sandbox-cni tests/gvisor/pods_image.py"}],
        }
    )
    blob = oci._digest  # noqa: SLF001
    manifest = oci._canonical_json(  # noqa: SLF001
        {
            "schemaVersion": 2,
            "mediaType": oci.MEDIA_MANIFEST,
            "config": {"mediaType": oci.MEDIA_CONFIG, "digest": blob(config), "size": len(config)},
            "layers": [{"mediaType": oci.MEDIA_LAYER, "digest": blob(layer), "size": len(layer)}],
        }
    )
    index = oci._canonical_json(  # noqa: SLF001
        {
            "schemaVersion": 2,
            "mediaType": oci.MEDIA_INDEX,
            "manifests": [
                {
                    "mediaType": oci.MEDIA_MANIFEST,
                    "digest": blob(manifest),
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
        oci._add_bytes(tar, "oci-layout", oci._canonical_json({"imageLayoutVersion": "1.0.0"}))  # noqa: SLF001
        oci._add_bytes(tar, "index.json", index)  # noqa: SLF001
        oci._add_dir(tar, "blobs")  # noqa: SLF001
        oci._add_dir(tar, "blobs/sha256")  # noqa: SLF001
        for data in (layer, config, manifest):
            oci._add_bytes(tar, "blobs/sha256/" + blob(data).split(":", 1)[1], data)  # noqa: SLF001
    return out.getvalue(), blob(manifest)
