"""Read a layer blob as a decompressed byte stream while checking its digest, decompressing in a thread.

`tar -xzf` gets its decompression for free in a second process (gzip); doing the same here (zlib and
hashlib release the GIL) keeps unpacking close to `tar -x` on two cores. The blob's sha256 is computed
over every byte of the compressed blob in the same pass, so a corrupted or substituted layer is caught
without reading it twice; the caller must call `verify()` after consuming the stream. The decompressed
bytes are counted against the image's budget (see unpack.Budget), so a gzip bomb stops at the limit.
"""

from __future__ import annotations

import hashlib
import io
import queue
import threading
import zlib
from typing import BinaryIO

from .errors import ImageError
from .unpack import Budget

GZIP_MAGIC = b"\x1f\x8b"
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
_CHUNK = 1 << 20
_DONE = object()


class LayerStream(io.RawIOBase):
    """A readable stream of a layer's tar bytes; the source is hashed (and gunzipped) in a worker thread."""

    def __init__(self, source: BinaryIO, *, digest: str, what: str, budget: Budget | None = None) -> None:
        super().__init__()
        self._source = source
        self._budget = budget  # touched by the worker only, while it runs
        self._digest = digest
        self._what = what
        self._queue: queue.Queue[object] = queue.Queue(maxsize=16)
        self._stop = threading.Event()
        self._buffer = memoryview(b"")
        self._finished = False
        self._error: BaseException | None = None
        self._hexdigest = ""
        head = source.read(_CHUNK)
        if head.startswith(ZSTD_MAGIC):
            raise ImageError(f"{what}: zstd-compressed layers are not supported (use gzip or uncompressed layers)")
        self._thread = threading.Thread(target=self._work, args=(head,), name="layer-gunzip", daemon=True)
        self._thread.start()

    # --- worker -----------------------------------------------------------------------------------
    def _put(self, item: object) -> bool:
        if self._budget is not None and item is not _DONE:
            self._budget.take(len(item), self._what)  # type: ignore[arg-type]
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.2)
                return True
            except queue.Full:
                continue
        return False

    def _work(self, head: bytes) -> None:
        try:
            hasher = hashlib.sha256()
            gzipped = head.startswith(GZIP_MAGIC)
            inflater = zlib.decompressobj(16 + zlib.MAX_WBITS) if gzipped else None
            chunk = head
            while chunk:
                hasher.update(chunk)
                if inflater is None:
                    if not self._put(chunk):
                        return
                else:
                    while chunk:
                        out = inflater.decompress(chunk, _CHUNK)
                        if out and not self._put(out):
                            return
                        chunk = inflater.unconsumed_tail
                        if inflater.eof:  # concatenated gzip members continue the stream; zero padding ends it
                            chunk = inflater.unused_data
                            if chunk.strip(b"\0"):
                                inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
                            else:
                                chunk = b""
                if self._stop.is_set():
                    return
                chunk = self._source.read(_CHUNK)
            if inflater is not None and not inflater.eof:
                raise ImageError(f"{self._what}: truncated gzip stream")
            self._hexdigest = "sha256:" + hasher.hexdigest()
        except zlib.error as exc:
            self._error = ImageError(f"{self._what}: corrupt gzip data: {exc}")
        except BaseException as exc:  # noqa: BLE001 - handed to the reading thread
            self._error = exc
        finally:
            self._put(_DONE)

    # --- reader -----------------------------------------------------------------------------------
    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:  # type: ignore[override]
        while not self._buffer:
            if self._finished:
                return 0
            item = self._queue.get()
            if item is _DONE:
                self._finished = True
                if self._error is not None:
                    raise self._error
                return 0
            self._buffer = memoryview(item)  # type: ignore[arg-type]
        n = min(len(buffer), len(self._buffer))
        buffer[:n] = self._buffer[:n]
        self._buffer = self._buffer[n:]
        return n

    def verify(self) -> None:
        """Drain what the tar reader left (end-of-archive padding) and check the blob's digest."""
        while self.readinto(bytearray(_CHUNK)):
            pass
        self._thread.join()
        if self._error is not None:
            raise self._error
        if self._digest and self._hexdigest != self._digest:
            raise ImageError(f"{self._what}: digest mismatch: expected {self._digest}, got {self._hexdigest}")

    def close(self) -> None:
        if not self.closed:
            self._stop.set()
            while self._thread.is_alive():
                try:
                    self._queue.get(timeout=0.05)
                except queue.Empty:
                    pass
            self._thread.join()
        super().close()
