"""Container images for podline's runtimes: pull or read an image once per node and hand back its rootfs.

`prepare(reference, pull_policy, cache_dir)` accepts registry references (`host[:port]/repo:tag`,
`@sha256:` digests, `docker://`), OCI layouts (`oci:/dir[:tag]`), `oci-archive:` and `docker-archive:`
tarballs and plain rootfs directories (`dir:/path` or a bare absolute path, used in place). Images are
unpacked safely (see unpack.py) into a content-addressed cache keyed by manifest digest (see cache.py).
"""

from .errors import INVALID_NAME, NEVER_PULL, PULL, ImageError
from .model import ImageConfig, PreparedImage
from .prepare import POLICIES, prepare
from .reference import Reference, parse_reference

__all__ = [
    "INVALID_NAME",
    "NEVER_PULL",
    "POLICIES",
    "PULL",
    "ImageConfig",
    "ImageError",
    "PreparedImage",
    "Reference",
    "parse_reference",
    "prepare",
]
