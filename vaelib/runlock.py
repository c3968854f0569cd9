"""Run folders that survive crashes, full disks and a second writer: one lock, atomic files, atomic directories.

Three helpers shared by the commands that write a run folder (``vaelib eval``, ``vaelib train-restorer``,
``vaelib report --out``):

* :func:`lock_folder` — one writer per folder. An exclusive ``fcntl.flock`` on a lock file inside the folder,
  held as long as the returned :class:`FolderLock` is (normally the process's life). The kernel drops it when
  the process ends in any way, ``kill -9`` included, so a lock file left by a dead process never blocks; the
  holder's PID is written into the file so that a second process can say who holds it (:class:`FolderLocked`,
  one line). ``flock`` locks are per open file: a second :func:`lock_folder` on the same folder from the same
  process is refused too. (On NFS, ``flock`` is emulated with POSIX byte-range locks since Linux 2.6.12; it
  still excludes writers on other machines but the PID named is on the holder's machine.)
* :func:`atomic_write` — write a file under a temporary sibling name, ``fsync`` it, rename it over the target:
  the target is either the complete old or the complete new file. On any error (``ENOSPC`` included) the
  temporary file is removed; an ``OSError`` comes back as :class:`StorageError`, one line naming the path and
  the free space of its filesystem (:func:`shutil.disk_usage`).
* :func:`replace_dir` — the same for a directory (a checkpoint of several files that must stay consistent):
  the new version is built in a temporary sibling, ``fsync``-ed (files and folder), marked complete by a
  rename, then swapped in; the previous complete version stays in place until the new one is. Where the kernel
  offers an atomic exchange (Linux ``renameat2(RENAME_EXCHANGE)``) the swap is one step; elsewhere it is two
  renames, and a crash between them leaves ``target`` missing but both complete versions beside it —
  :func:`recover_dir` (called by :func:`replace_dir`, and to be called by readers before they read
  ``target``) puts the newest complete one back. Incomplete builds are deleted.

Only POSIX systems (``fcntl``); vaelib runs on Linux and macOS.
"""

from __future__ import annotations

import errno
import os
import shutil
import uuid
from pathlib import Path

from ._util import one_line

__all__ = ["FolderLocked", "StorageError", "FolderLock", "lock_folder", "atomic_write", "write_bytes", "write_text",
           "replace_dir", "recover_dir", "free_space", "storage_error", "LOCK_NAME"]

#: Default lock file name inside a run folder.
LOCK_NAME = ".vaelib.lock"


class FolderLocked(RuntimeError):
    """Another live process holds the folder's lock; the message is one line naming its PID.

    Attributes
    ----------
    folder : Path
    pid : int or None
        The holder's PID as written in the lock file (None when it could not be read yet).
    """

    def __init__(self, message: str, folder: Path, pid: int | None):
        super().__init__(message)
        self.folder = folder
        self.pid = pid


class StorageError(OSError):
    """Writing failed (disk full, permissions, I/O error...); one line naming the path and the free space.

    It is an :class:`OSError` with the original ``errno``; temporary files have been removed.
    """


# ----------------------------------------------------------------------------------------------------------
# free space and one-line OS errors
# ----------------------------------------------------------------------------------------------------------
def _size(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"  # pragma: no cover


def free_space(path) -> str:
    """``"1.2 GiB free of 50.0 GiB"`` for the filesystem holding ``path`` (its nearest existing parent)."""
    p = Path(path).absolute()
    while not p.exists() and p != p.parent:
        p = p.parent
    try:
        usage = shutil.disk_usage(p)
    except OSError as exc:
        return f"free space unknown ({one_line(exc.strerror or exc, 80)})"
    return f"{_size(usage.free)} free of {_size(usage.total)}"


def _shown(path) -> str:
    """A path as text that any terminal or UTF-8 file can hold (undecodable bytes as ``\\xNN``)."""
    s = os.fspath(path)
    if isinstance(s, bytes):
        return s.decode("utf-8", "backslashreplace")
    try:
        s.encode("utf-8")
        return s
    except UnicodeEncodeError:
        try:
            return s.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
        except UnicodeEncodeError:
            return s.encode("utf-8", "backslashreplace").decode("utf-8")


def storage_error(path, exc: OSError, action: str = "write") -> StorageError:
    """The one-line :class:`StorageError` for ``exc`` raised while doing ``action`` on ``path``."""
    what = exc.strerror or one_line(exc, 200) or type(exc).__name__
    hint = ""
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        hint = "; free some space (or choose another folder) and rerun"
    elif exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        hint = "; choose a folder you can write to"
    err = StorageError(exc.errno, f"cannot {action} {_shown(path)}: {what} ({free_space(path)}){hint}")
    err.filename = os.fspath(path)
    return err


# ----------------------------------------------------------------------------------------------------------
# the lock
# ----------------------------------------------------------------------------------------------------------
class FolderLock:
    """An acquired folder lock (from :func:`lock_folder`); a context manager; :meth:`release` to drop it early.

    Attributes
    ----------
    folder, path : Path
        The folder and its lock file.
    """

    def __init__(self, folder: Path, path: Path, fd: int):
        self.folder, self.path, self._fd = folder, path, fd

    @property
    def held(self) -> bool:
        return self._fd is not None

    def release(self) -> None:
        """Drop the lock (closing the file drops the ``flock``). The lock file stays; it blocks no one."""
        if self._fd is not None:
            fd, self._fd = self._fd, None
            os.close(fd)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.release()

    def __del__(self):
        self.release()

    def __repr__(self):
        return f"FolderLock({str(self.folder)!r}, held={self.held})"


def _holder_pid(fd: int) -> int | None:
    try:
        text = os.pread(fd, 64, 0).decode("ascii", "replace").split()
        return int(text[0]) if text else None
    except (OSError, ValueError):
        return None


def lock_folder(folder, *, name: str = LOCK_NAME, what: str = "this folder") -> FolderLock:
    """Take the exclusive lock of ``folder`` (which must exist) or fail at once.

    Parameters
    ----------
    folder : str or Path
        The run folder. The lock file ``folder / name`` is created if needed and left in place afterwards.
    name : str
        Lock file name.
    what : str
        How the error message names the folder's use, e.g. ``"eval run folder"``.

    Returns
    -------
    FolderLock
        Hold it (a variable, a ``with`` block) as long as you write; the OS releases it when the process ends.

    Raises
    ------
    FolderLocked
        Another process (or another :class:`FolderLock` of this one) holds it: one line with the PID.
    StorageError
        The lock file cannot be created (read-only folder, disk full...).
    """
    import fcntl

    folder = Path(folder)
    path = folder / name
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o644)
    except OSError as exc:
        raise storage_error(path, exc, "create the lock file") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
            os.close(fd)
            raise StorageError(exc.errno, f"cannot lock {_shown(path)}: {exc.strerror} (the filesystem may not "
                                          "support flock); use a local folder") from None
        pid = _holder_pid(fd)
        os.close(fd)
        who = f"process {pid}" if pid is not None else "another process"
        mine = " (this process)" if pid == os.getpid() else ""
        raise FolderLocked(f"{what} {_shown(folder)} is in use by {who}{mine} (lock {name}); wait for it to end, "
                           f"or stop it (kill {pid if pid is not None else '<pid>'}) and rerun — a stale lock of a "
                           "dead process never blocks", folder, pid) from None
    try:  # ours now: record who holds it (the previous holder's PID, if any, is dead)
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    except OSError as exc:
        os.close(fd)
        raise storage_error(path, exc, "write the lock file") from None
    return FolderLock(folder, path, fd)


# ----------------------------------------------------------------------------------------------------------
# atomic files
# ----------------------------------------------------------------------------------------------------------
def _fsync_path(path, directory: bool = False) -> None:
    fd = os.open(path, os.O_RDONLY | (getattr(os, "O_DIRECTORY", 0) if directory else 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_dir(path) -> None:
    try:
        _fsync_path(path, directory=True)
    except OSError:  # some filesystems refuse fsync on directories; the rename is still atomic
        pass


def atomic_write(path, write, *, fsync: bool = True) -> Path:
    """Write ``path`` all or nothing: ``write(tmp)`` fills a temporary sibling, which is fsync-ed and renamed.

    Parameters
    ----------
    path : str or Path
        The target (replaced if it exists; readers see the old or the new content, never a mix).
    write : callable
        ``write(tmp_path)`` writes the whole content to ``tmp_path`` (a :class:`~pathlib.Path` in the same
        folder, named ``.<name>.<random>.tmp``), e.g. ``lambda p: table.to_parquet(p)``.
    fsync : bool
        Flush the file (and the folder entry) to disk before returning.

    Returns
    -------
    Path

    Raises
    ------
    StorageError
        Any ``OSError`` (disk full, quota, read-only, I/O), as one line naming the path and the free space.
        Other exceptions of ``write`` propagate unchanged. In every case the temporary file is gone.
    """
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        write(tmp)
        if fsync:
            _fsync_path(tmp)
        os.replace(tmp, path)
    except OSError as exc:
        _remove(tmp)
        if isinstance(exc, StorageError):
            raise
        raise storage_error(path, exc) from None
    except BaseException:
        _remove(tmp)
        raise
    if fsync:
        _fsync_dir(path.parent)
    return path


def write_bytes(path, data: bytes, *, fsync: bool = True) -> Path:
    """:func:`atomic_write` of ``data``."""
    return atomic_write(path, lambda p: p.write_bytes(data), fsync=fsync)


def write_text(path, text: str, *, fsync: bool = True) -> Path:
    """:func:`atomic_write` of ``text`` (UTF-8)."""
    return atomic_write(path, lambda p: p.write_text(text, encoding="utf-8"), fsync=fsync)


def _remove(p: Path) -> None:
    try:
        if p.is_dir() and not p.is_symlink():
            shutil.rmtree(p, ignore_errors=True)
        else:
            p.unlink()
    except OSError:
        pass


# ----------------------------------------------------------------------------------------------------------
# atomic directories
# ----------------------------------------------------------------------------------------------------------
_PARTIAL, _NEW, _OLD = "partial", "new", "old"


def _sibling(target: Path, kind: str, tag: str | None = None) -> Path:
    return target.with_name(f".{target.name}.{kind}-{tag or uuid.uuid4().hex[:8]}")


def _siblings(target: Path, kind: str) -> list[Path]:
    """Siblings of ``kind``, newest first (by modification time, then name)."""
    found = [p for p in target.parent.glob(f".{target.name}.{kind}-*") if p.is_dir() and not p.is_symlink()]
    return sorted(found, key=lambda p: (p.stat().st_mtime_ns, p.name), reverse=True)


def recover_dir(target) -> Path | None:
    """Bring ``target`` back to a complete version after a crash in :func:`replace_dir`; return it (or None).

    * ``target`` exists: it is complete; leftovers (partial builds, versions already replaced) are deleted.
    * ``target`` is missing (crash between the two renames of the fallback swap): the newest complete new
      version is moved into place, else the newest previous version.
    * Neither: None (there never was a complete version).

    Call it under the folder's lock (:func:`lock_folder`): it deletes and renames.
    """
    target = Path(target)
    if not target.exists():
        for kind in (_NEW, _OLD):
            cands = _siblings(target, kind)
            if cands:
                os.rename(cands[0], target)
                _fsync_dir(target.parent)
                break
    for kind in (_PARTIAL, _NEW, _OLD):
        for p in _siblings(target, kind):
            _remove(p)
    return target if target.exists() else None


def _fsync_tree(folder: Path) -> None:
    for dirpath, _dirs, files in os.walk(folder):
        for f in files:
            _fsync_path(os.path.join(dirpath, f))
        _fsync_dir(dirpath)


def _exchange(a: Path, b: Path) -> bool:
    """Atomically swap two existing paths (Linux ``renameat2(RENAME_EXCHANGE)``); False where unsupported."""
    import sys

    if not sys.platform.startswith("linux"):
        return False
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        fn = libc.renameat2
    except (OSError, AttributeError):
        return False
    fn.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    AT_FDCWD, RENAME_EXCHANGE = -100, 2
    if fn(AT_FDCWD, os.fsencode(a), AT_FDCWD, os.fsencode(b), RENAME_EXCHANGE) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.EINVAL, errno.ENOSYS, errno.ENOTSUP, errno.EOPNOTSUPP):
        return False
    raise OSError(err, os.strerror(err), str(a))


def replace_dir(target, build, *, exchange: bool = True) -> Path:
    """Replace the directory ``target`` by a new version all at once; the previous one stays until it is.

    Steps: ``build(tmp)`` fills a new sibling folder ``.<name>.partial-<id>``; every file and the folder are
    fsync-ed; it is renamed ``.<name>.new-<id>`` (complete); then it takes ``target``'s place — by one atomic
    exchange where the kernel offers it, else by renaming ``target`` to ``.<name>.old-<id>`` and the new one to
    ``target``; last, the previous version is deleted. A crash at any point leaves a complete version that
    :func:`recover_dir` restores (the new one once it was complete, else the previous one).

    Parameters
    ----------
    target : str or Path
        The directory (need not exist yet).
    build : callable
        ``build(tmp_dir)`` writes the new version's files into the existing empty folder ``tmp_dir``.
    exchange : bool
        Use the atomic exchange when available (False: always the two-rename path; for tests).

    Returns
    -------
    Path

    Raises
    ------
    StorageError
        An ``OSError`` while building or swapping (one line naming the path and the free space); the partial
        build is deleted and ``target`` is untouched. Other exceptions of ``build`` propagate, likewise cleaned.
    """
    target = Path(target)
    recover_dir(target)
    tag = uuid.uuid4().hex[:8]
    partial, new, old = (_sibling(target, k, tag) for k in (_PARTIAL, _NEW, _OLD))
    try:
        partial.mkdir()
        build(partial)
        _fsync_tree(partial)
        os.rename(partial, new)
        _fsync_dir(target.parent)
    except OSError as exc:
        _remove(partial)
        if isinstance(exc, StorageError):
            raise
        raise storage_error(target, exc) from None
    except BaseException:
        _remove(partial)
        raise
    try:
        if target.exists() and exchange and _exchange(new, target):
            _remove(new)  # now holds the previous version
        else:
            if target.exists():
                os.rename(target, old)
            os.rename(new, target)
            _fsync_dir(target.parent)
            _remove(old)
    except OSError as exc:
        raise storage_error(target, exc, "replace") from None
    _fsync_dir(target.parent)
    return target
