"""A file system that forgets what was not fsynced when the power goes: the power-cut tests' disk.

LazyFS (the tool Jepsen and the database people use for this) is not packaged for Debian or PyPI,
so this is the same idea, small, in Python with fusepy: a FUSE passthrough over a backing
directory in which

- **data writes stay in memory** (per file, a map of 4 KiB pages, like a page cache) until an
  ``fsync`` or ``fdatasync`` of that file writes them to the backing file. Reads see them (the
  page cache), ``stat`` shows the size they make. Closing a file does not make it durable (it does
  not on a real file system either); neither does another file's fsync.
- **metadata is applied at once and survives a cut**: create, unlink, rename, mkdir, chmod and
  truncate (also ``O_TRUNC``) go to the backing directory immediately, as on a file system that
  journals its metadata. This is kinder than ext4 for a new directory entry never fsynced
  (SQLite's files here are created once and kept), and harsher nowhere. A truncate drops the
  pending pages past the new end, as the page cache does.
- ``fsync`` of a directory is accepted (nothing is pending on directories).
- POSIX locks are left to the kernel (``lock`` not implemented: FUSE then keeps them locally, which
  is right for processes on one mount), and SQLite's ``-shm`` works as a shared writable ``mmap``
  across processes through the kernel's page cache (no ``direct_io``). The ``-shm`` is never
  fsynced by SQLite, so it is always lost on a cut, as its contents may be: SQLite rebuilds it.

**The cut** is a SIGKILL of the file-system process: everything pending in its memory is gone and
nothing arriving later can be written, because the mount is dead (``ENOTCONN``).
:class:`PowerCutMount` then unmounts the dead mount and mounts a fresh process over the same
backing directory: the disk as it comes back after the power does. Kill the processes using the
mount first (their writes already issued are then pending here, and dropped with the rest).

Run: ``python tests/powercut_fs.py BACKING MOUNTPOINT`` (foreground; root, or a user allowed to
mount FUSE). Test code, not shipped.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

PAGE = 4096


class _Pending:
    """One file's unsynced state: its size as the processes see it and its dirty pages."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.pages: dict[int, bytearray] = {}


def _pread(fd: int, n: int, offset: int) -> bytes:
    data = os.pread(fd, n, offset) if n > 0 else b""
    return data + bytes(n - len(data))


def _operations() -> type:
    """The fusepy Operations class; built here so that importing this module needs no fusepy."""
    from fuse import FuseOSError, Operations  # type: ignore[import-untyped]

    class PowerCutOps(Operations):  # type: ignore[misc]
        def __init__(self, backing: str) -> None:
            self.backing = backing
            self._mutex = threading.RLock()
            self.pending: dict[str, _Pending] = {}

        def _full(self, path: str) -> str:
            return os.path.join(self.backing, path.lstrip("/"))

        def __call__(self, op: str, *args: Any) -> Any:
            # One operation at a time: simple, and fast enough for a test. fusepy answers an
            # OSError with its errno.
            with self._mutex:
                return super().__call__(op, *args)

        # -- metadata: immediate --------------------------------------------------------------
        def getattr(self, path: str, fh: int | None = None) -> dict[str, Any]:
            st = os.lstat(self._full(path))
            keys = ("st_atime", "st_ctime", "st_gid", "st_mode", "st_mtime", "st_nlink")
            attrs: dict[str, Any] = {k: getattr(st, k) for k in keys}
            attrs.update(st_uid=st.st_uid, st_size=st.st_size)
            if (p := self.pending.get(path)) is not None:
                attrs["st_size"] = p.size
            return attrs

        def readdir(self, path: str, fh: int) -> list[str]:
            return [".", "..", *os.listdir(self._full(path))]

        def statfs(self, path: str) -> dict[str, Any]:
            sv = os.statvfs(self._full(path))
            keys = ("f_bavail", "f_bfree", "f_blocks", "f_bsize", "f_favail", "f_ffree")
            more = ("f_files", "f_flag", "f_frsize", "f_namemax")
            return {k: getattr(sv, k) for k in keys + more}

        def access(self, path: str, amode: int) -> None:
            if not os.access(self._full(path), amode):
                raise FuseOSError(errno.EACCES)

        def chmod(self, path: str, mode: int) -> None:
            os.chmod(self._full(path), mode)

        def chown(self, path: str, uid: int, gid: int) -> None:
            os.chown(self._full(path), uid, gid)

        def utimens(self, path: str, times: tuple[float, float] | None = None) -> None:
            os.utime(self._full(path), times)

        def mkdir(self, path: str, mode: int) -> None:
            os.mkdir(self._full(path), mode)

        def rmdir(self, path: str) -> None:
            os.rmdir(self._full(path))

        def unlink(self, path: str) -> None:
            os.unlink(self._full(path))
            self.pending.pop(path, None)

        def rename(self, old: str, new: str) -> None:
            os.rename(self._full(old), self._full(new))
            self.pending.pop(new, None)
            if (p := self.pending.pop(old, None)) is not None:
                self.pending[new] = p

        def truncate(self, path: str, length: int, fh: int | None = None) -> None:
            os.truncate(self._full(path), length)
            if (p := self.pending.get(path)) is not None:
                p.size = length
                last = length // PAGE
                for i in [i for i in p.pages if i > last or (i == last and length % PAGE == 0)]:
                    del p.pages[i]
                if (page := p.pages.get(last)) is not None:
                    page[length % PAGE :] = bytes(PAGE - length % PAGE)

        # -- files ----------------------------------------------------------------------------
        def create(self, path: str, mode: int, fi: Any = None) -> int:
            return os.open(self._full(path), os.O_RDWR | os.O_CREAT, mode)

        def open(self, path: str, flags: int) -> int:
            fd = os.open(self._full(path), flags)
            if flags & os.O_TRUNC and (p := self.pending.get(path)) is not None:
                p.size, p.pages = 0, {}
            return fd

        def release(self, path: str, fh: int) -> None:
            os.close(fh)  # not a sync: what is pending stays pending

        def flush(self, path: str, fh: int) -> None:
            return None  # close(2) makes nothing durable

        def read(self, path: str, size: int, offset: int, fh: int) -> bytes:
            p = self.pending.get(path)
            if p is None:
                return os.pread(fh, size, offset)
            end = min(offset + size, p.size)
            if end <= offset:
                return b""
            out = bytearray(_pread(fh, end - offset, offset))
            for i in range(offset // PAGE, (end - 1) // PAGE + 1):
                if (page := p.pages.get(i)) is not None:
                    lo, hi = max(offset, i * PAGE), min(end, (i + 1) * PAGE)
                    out[lo - offset : hi - offset] = page[lo - i * PAGE : hi - i * PAGE]
            return bytes(out)

        def write(self, path: str, data: bytes, offset: int, fh: int) -> int:
            p = self.pending.get(path)
            if p is None:
                p = self.pending[path] = _Pending(os.fstat(fh).st_size)
            end = offset + len(data)
            for i in range(offset // PAGE, (end - 1) // PAGE + 1):
                page = p.pages.get(i)
                if page is None:
                    page = p.pages[i] = bytearray(self._backing_page(path, i))
                lo, hi = max(offset, i * PAGE), min(end, (i + 1) * PAGE)
                page[lo - i * PAGE : hi - i * PAGE] = data[lo - offset : hi - offset]
            p.size = max(p.size, end)
            return len(data)

        def _backing_page(self, path: str, i: int) -> bytes:
            fd = os.open(self._full(path), os.O_RDONLY)
            try:
                return _pread(fd, PAGE, i * PAGE)
            finally:
                os.close(fd)

        def fsync(self, path: str, datasync: int, fh: int) -> None:
            p = self.pending.pop(path, None)
            if p is None:
                return
            fd = os.open(self._full(path), os.O_WRONLY)
            try:
                for i, page in sorted(p.pages.items()):
                    n = min(PAGE, p.size - i * PAGE)
                    if n > 0:
                        os.pwrite(fd, bytes(page[:n]), i * PAGE)
                if os.fstat(fd).st_size < p.size:
                    os.ftruncate(fd, p.size)
            finally:
                os.close(fd)

        def fsyncdir(self, path: str, datasync: int, fh: int) -> None:
            return None

    return PowerCutOps


def main(argv: list[str]) -> None:
    from fuse import FUSE

    backing, mountpoint = argv
    ops = _operations()(os.path.abspath(backing))
    # attr/entry timeouts 0: a size grown by one process is seen by the next stat of another.
    FUSE(ops, mountpoint, foreground=True, attr_timeout=0, entry_timeout=0)


def fuse_problem() -> str | None:
    """Why FUSE cannot be used here, or None when it can."""
    try:
        import fuse  # noqa: F401
    except (ImportError, OSError) as exc:  # fusepy missing, or libfuse2 missing (OSError)
        return f"fusepy cannot load: {exc} (apt-get install libfuse2 fuse; pip install fusepy)"
    if not os.path.exists("/dev/fuse"):
        return "/dev/fuse does not exist"
    if not os.access("/dev/fuse", os.R_OK | os.W_OK):
        return "/dev/fuse is not readable and writable by this user"
    if shutil.which("fusermount") is None and shutil.which("fusermount3") is None:
        return "no fusermount (apt-get install fuse)"
    return None


def _unmount(mountpoint: Path) -> None:
    for cmd in (["fusermount", "-u", "-z"], ["umount", "-l"]):
        if shutil.which(cmd[0]) is None:
            continue
        done = subprocess.run([*cmd, str(mountpoint)], capture_output=True, check=False)
        if done.returncode == 0 or not os.path.ismount(mountpoint):
            return


class PowerCutMount:
    """The file system as a process the test can cut (SIGKILL) and bring back (remount)."""

    def __init__(self, backing: Path, mountpoint: Path) -> None:
        self.backing, self.mountpoint = backing, mountpoint
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = mountpoint.with_name(mountpoint.name + ".log")
        self.cuts = 0

    def mount(self, timeout: float = 15.0) -> None:
        self.backing.mkdir(parents=True, exist_ok=True)
        self.mountpoint.mkdir(parents=True, exist_ok=True)
        self.proc = subprocess.Popen(
            [sys.executable, __file__, str(self.backing), str(self.mountpoint)],
            stderr=self.log.open("ab"),
        )
        _wait(lambda: os.path.ismount(self.mountpoint), self.proc, timeout, self.log)

    def cut(self) -> None:
        """The power goes: every unsynced write is lost. Then the disk comes back."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()
        _unmount(self.mountpoint)
        self.cuts += 1
        self.mount()

    def unmount(self) -> None:
        if self.proc is None:
            return
        _unmount(self.mountpoint)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=10)
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.proc = None


def _wait(
    ready: Callable[[], bool], proc: subprocess.Popen[bytes], timeout: float, log: Path
) -> None:
    deadline = time.monotonic() + timeout
    while not ready():
        if proc.poll() is not None:
            err = log.read_text(errors="replace")[-2000:] if log.exists() else ""
            raise RuntimeError(f"the power-cut file system exited with {proc.returncode}: {err}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"the power-cut file system did not mount within {timeout} s")
        time.sleep(0.02)


REQUIRE_ENV = "GRIDGATE_REQUIRE_FUSE"


def require_fuse() -> None:
    """Skip with the reason on a developer's machine without FUSE; fail in CI, which sets
    GRIDGATE_REQUIRE_FUSE=1, so that the power-cut tests can never pass by not running."""
    import pytest

    if (problem := fuse_problem()) is None:
        return
    if os.environ.get(REQUIRE_ENV) == "1":
        pytest.fail(f"{REQUIRE_ENV}=1 but FUSE is not usable: {problem}")
    pytest.skip(f"FUSE is not usable here: {problem}")


@contextlib.contextmanager
def powercut_mount(base: Path) -> Iterator[PowerCutMount]:
    m = PowerCutMount(base / "backing", base / "mnt")
    m.mount()
    try:
        yield m
    finally:
        m.unmount()


if __name__ == "__main__":
    main(sys.argv[1:])
