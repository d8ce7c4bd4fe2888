"""Reading an upload while it is still arriving, so conversion overlaps the network transfer.

The spool makes bytes visible only after it has checked and written them (`_Progress.advance`);
a `TailReader` blocks at the visible end until more arrive, returns end-of-file once the spool
finished, and raises `UploadAborted` if the upload failed or was cancelled, which stops the
conversion thread promptly.
"""

from __future__ import annotations

import io
import threading
from pathlib import Path


class UploadAborted(Exception):
    """The upload being read stopped before its end (error, cancellation or deduplication)."""


class _Progress:
    def __init__(self) -> None:
        self._cond = threading.Condition()
        self.visible = 0
        self.done = False
        self.aborted = False

    def advance(self, n: int) -> None:
        with self._cond:
            self.visible += n
            self._cond.notify_all()

    def finish(self) -> None:
        with self._cond:
            self.done = True
            self._cond.notify_all()

    def abort(self) -> None:
        with self._cond:
            self.aborted = True
            self._cond.notify_all()

    def wait_beyond(self, position: int) -> int:
        """Bytes readable after `position` (0 at the end of a finished upload); blocks while none."""
        with self._cond:
            while self.visible <= position and not self.done and not self.aborted:
                self._cond.wait()
            if self.aborted:
                raise UploadAborted("the upload stopped before its end")
            return self.visible - position


class TailReader(io.RawIOBase):
    """A read-only file over a spool file that is still being written."""

    def __init__(self, path: Path, progress: _Progress) -> None:
        super().__init__()
        self._file = open(path, "rb")  # noqa: SIM115 - closed in close()
        self._progress = progress
        self._position = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        available = self._progress.wait_beyond(self._position)
        if available == 0:
            return 0
        view = memoryview(buffer)
        count = self._file.readinto(view[:min(len(view), available)]) or 0
        self._position += count
        return count

    def close(self) -> None:
        self._file.close()
        super().close()


def read_up_to(stream: io.RawIOBase, size: int) -> bytes:
    """Read until `size` bytes or end of file (a raw read may return fewer bytes than asked)."""
    parts, total = [], 0
    while total < size:
        part = stream.read(size - total)
        if not part:
            break
        parts.append(part)
        total += len(part)
    return b"".join(parts)
