"""The one exception image preparation raises, with the Kubernetes waiting reason it maps to.

Runtimes turn it into a container's `waiting.reason` and decide from `transient` whether a retry can help
(an unreachable registry may come back; a missing tag or a hostile layer will not).
"""

from __future__ import annotations

PULL = "ErrImagePull"
NEVER_PULL = "ErrImageNeverPull"
INVALID_NAME = "InvalidImageName"


class ImageError(Exception):
    """A one-line, user-facing failure to prepare an image (it names the image and the problem)."""

    def __init__(self, message: str, *, reason: str = PULL, transient: bool = False) -> None:
        super().__init__(" ".join(message.split()))
        self.reason = reason
        self.transient = transient

    def __reduce__(self):  # keeps reason/transient across pickling (multiprocessing, worker pools)
        return (_rebuild, (str(self), self.reason, self.transient))


def _rebuild(message: str, reason: str, transient: bool) -> ImageError:
    return ImageError(message, reason=reason, transient=transient)
