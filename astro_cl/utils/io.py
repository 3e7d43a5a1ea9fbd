"""File helpers: atomic writes and checksums."""

import contextlib
import hashlib
import os
import tempfile
from pathlib import Path

__all__ = ["atomic_path", "atomic_write", "file_checksum"]


def _umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_path(path):
    """Yield a temporary path next to ``path``; rename it onto ``path`` on success.

    The temporary file lives in the same directory (same file system), so the
    final `os.replace` is atomic: readers see the old file or the new one,
    never a half-written one. On error the temporary file is removed and the
    old file is untouched.

    Parameters
    ----------
    path : str or `~pathlib.Path`
        Final destination.

    Yields
    ------
    tmp : `~pathlib.Path`
        Where to write.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp)
    # mkstemp creates the file 0600; give the result the mode a plain open() would.
    os.chmod(tmp, 0o666 & ~_umask())
    try:
        yield tmp
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


@contextlib.contextmanager
def atomic_write(path, mode="w", **open_kwargs):
    """Open a file for writing that appears at ``path`` only once complete.

    Parameters
    ----------
    path : str or `~pathlib.Path`
        Final destination.
    mode : {"w", "wb"}, optional
        Text or binary.
    **open_kwargs
        Passed to `open` (e.g. ``encoding``).

    Yields
    ------
    fh : file object
    """
    if mode not in ("w", "wb"):
        msg = f"atomic_write: mode must be 'w' or 'wb', got {mode!r}"
        raise ValueError(msg)
    if mode == "w":
        open_kwargs.setdefault("encoding", "utf-8")
    with atomic_path(path) as tmp, open(tmp, mode, **open_kwargs) as fh:
        yield fh


def file_checksum(path, algorithm="sha256", *, chunk_size=1 << 20):
    """Return the hex digest of a file's contents.

    Parameters
    ----------
    path : str or `~pathlib.Path`
    algorithm : str, optional
        Any `hashlib` algorithm.
    chunk_size : int, optional
        Bytes read at a time.

    Returns
    -------
    digest : str
    """
    h = hashlib.new(algorithm)
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(chunk_size), b""):
            h.update(chunk)
    return h.hexdigest()
