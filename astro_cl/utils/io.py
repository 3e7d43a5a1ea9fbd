"""File helpers: atomic writes, clean-up after killed writers, and checksums.

An atomic write goes to a temporary file ``.<name>.<pid>.<random>.tmp`` beside
its destination and is renamed onto it once complete. A writer killed in the
middle (``kill -9``, power loss) leaves that file behind;
`remove_stale_temp_files` deletes such files when their writer (the process
whose id is in the name) is gone.
"""

import contextlib
import glob
import hashlib
import os
import tempfile
import time
from pathlib import Path

__all__ = ["atomic_path", "atomic_write", "file_checksum", "remove_stale_temp_files"]

#: When this module was imported: an upper bound of this process's start time.
_IMPORTED = time.time()
#: Seconds of slack when comparing a file's time with a process start time
#: (the kernel's boot time is given to the second).
_CLOCK_SLACK = 2.0


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
    # the writer's pid in the name tells a killed writer's leftover from a live one's file
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.{os.getpid()}.", suffix=".tmp",
                               dir=path.parent)
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


def _alive(pid):
    """Whether a process with this id exists (True when it cannot be told)."""
    if os.name != "posix":  # os.kill(pid, 0) would signal the process on Windows
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # PermissionError: it exists, owned by someone else
        return True
    return True


def _start_time(pid):
    """Start time of a process (seconds since the epoch), or None where unknown."""
    try:
        with open(f"/proc/{int(pid)}/stat", encoding="ascii", errors="replace") as fh:
            fields = fh.read().rpartition(")")[2].split()
        with open("/proc/stat", encoding="ascii", errors="replace") as fh:
            boot = next(int(line.split()[1]) for line in fh if line.startswith("btime "))
        # field 22 of /proc/<pid>/stat (the 20th after the command name): clock ticks
        return boot + int(fields[19]) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError, StopIteration):
        return None


def _is_stale(tmp, name):
    # ".<name>.<pid>.<random>.tmp", or ".<name>.<random>.tmp" from an older astro_cl
    middle = tmp.name[len(name) + 2:-len(".tmp")].split(".")
    if len(middle) > 2 or (len(middle) == 2 and not middle[0].isdigit()):
        return False  # the file of another destination (".<name>.bak.<random>.tmp")
    try:
        mtime = tmp.stat().st_mtime
    except FileNotFoundError:
        return False
    if len(middle) == 2:
        pid = int(middle[0])
        if pid == os.getpid():
            return False  # this process's own write, maybe in progress
        if not _alive(pid):
            return True
        started = _start_time(pid)
        # a live process with that id started after the file was last written: the
        # writer died and its id was reused
        return started is not None and mtime < started - _CLOCK_SLACK
    # no pid in the name (an older astro_cl): stale if written before this process started
    own = _start_time(os.getpid())
    return mtime < (own if own is not None else _IMPORTED) - _CLOCK_SLACK


def remove_stale_temp_files(directory, names):
    """Delete the temporary files of atomic writes whose writer was killed.

    Only files named ``.<name>.<pid>.<random>.tmp`` for one of ``names`` are
    considered. Such a file is removed when no process ``<pid>`` exists, or
    when the process now holding that id started after the file was last
    written. A file without a pid in its name (written by an older
    astro_cl) is removed when it is older than this process. A concurrent
    writer's file is never removed.

    Parameters
    ----------
    directory : str or `~pathlib.Path`
    names : sequence of str
        Destination file names (e.g. ``"last.pt"``, ``"history.csv"``).

    Returns
    -------
    removed : list of `~pathlib.Path`
        The files deleted.
    """
    directory = Path(directory)
    if not directory.is_dir():
        return []
    removed = []
    for name in names:
        for tmp in sorted(directory.glob(f".{glob.escape(name)}.*.tmp")):
            if not tmp.is_file() or not _is_stale(tmp, name):
                continue
            try:
                tmp.unlink()
            except FileNotFoundError:  # renamed into place meanwhile
                continue
            removed.append(tmp)
    return removed
