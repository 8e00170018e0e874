"""Atomic file writes: a reader finds the old file or the new one, never half of one.

Every file microvae writes (checkpoints, histories, pictures, downloads) goes through
``write_atomically``: the bytes go to a hidden temporary file in the target's folder, are
flushed to disk, and the temporary file is renamed over the target (``os.replace`` is atomic
within one file system). If anything fails, the temporary file is removed and an existing
target is left as it was. No imports from the rest of microvae, so any module can use it.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
import uuid

__all__ = ["write_atomically", "names_a_folder", "refuse_write_protected", "keep_mode"]


def write_atomically(path, write) -> str:
    """Call ``write(f)`` with a binary file object, then move what it wrote to ``path``.

    Missing folders are made. As with a plain ``open(path, "wb")``, a symbolic link is written
    through (its target gets the bytes, the link stays), the permissions are an existing
    file's, or for a new file 0o666 less the umask, an existing file this process may not
    write (``chmod a-w``, to keep a checkpoint) is a PermissionError, and a path that names a
    folder (ending in a separator, "." or "..") is an IsADirectoryError. An error names
    ``path``, not the temporary file (a full disk too, which names no file of its own), and
    after one the folders made for it are removed again. Returns ``path`` as a string.
    """
    path = os.fsdecode(os.fspath(path))  # a bytes path too: the temporary name is built as a str
    if names_a_folder(path):  # realpath drops a final "/" or "/.": "a.idx/" would replace the file a.idx
        raise IsADirectoryError(errno.EISDIR, "not a file name (it is empty, or ends in a separator, '.' or '..')", path)
    target = os.path.realpath(path)  # the rename would otherwise replace a link with a file
    folder = os.path.dirname(target)
    refuse_write_protected(target, path)
    made = _make_folder(folder, path)
    try:
        _write_and_rename(path, target, folder, write)
    except BaseException:
        _remove_empty(made)
        raise
    _sync_folder(folder)
    return path


# errors of writing the bytes themselves, which name no file: fit's pictures, say, failing on a
# full disk said only "[Errno 28] No space left on device"
_WRITE_ERRNOS = {errno.ENOSPC, errno.EIO, errno.EFBIG, errno.EROFS, getattr(errno, "EDQUOT", errno.ENOSPC)}


def _write_and_rename(path: str, target: str, folder: str, write) -> None:
    # The temporary name keeps at most 64 bytes of the target's, so that it stays within the
    # file system's 255-byte limit whenever the target's own name does.
    stem = os.path.basename(target).encode("utf-8", "surrogateescape")[:64].decode("utf-8", "ignore")
    tmp = os.path.join(folder, f".{stem}.{uuid.uuid4().hex[:12]}.tmp")
    try:
        # os.open with 0o666, not tempfile.mkstemp, whose files are private (0600)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
    except OSError as exc:  # an unwritable folder: name the file asked for, not the hidden one
        raise OSError(exc.errno, exc.strerror, path) from None
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            keep_mode(target, f.fileno())
            os.fsync(f.fileno())
        try:
            os.replace(tmp, target)
        except OSError as exc:  # e.g. a folder at the target: name the file asked for, not the hidden one
            if exc.errno is None:  # no errno to rebuild the error from: keep it as it is
                raise
            raise OSError(exc.errno, exc.strerror, path) from None
    except BaseException as exc:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        if isinstance(exc, OSError) and exc.filename is None and exc.errno in _WRITE_ERRNOS:
            raise OSError(exc.errno, exc.strerror, path) from exc
        raise


def names_a_folder(path: str) -> bool:
    """True for a path that can only name a folder: empty, or ending in a separator, "." or ".."."""
    separators = tuple(sep for sep in (os.sep, os.altsep, "/") if sep)
    return not path or path.endswith(separators) or os.path.basename(path) in (".", "..")


def _sync_folder(folder: str) -> None:
    """Flush the folder's entry for the rename, so that it too survives a power cut (best
    effort: where a folder cannot be opened, as on Windows, the rename is atomic all the same)."""
    try:
        fd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def refuse_write_protected(target: str, path=None) -> None:
    """A PermissionError naming ``path`` (default ``target``) if ``target`` is an existing file
    this process may not write (``chmod a-w``, to keep a checkpoint), as ``open(path, "wb")``
    refuses it. For anyone who renames a file over ``target``: the rename needs only the
    folder's write permission, and without this check would replace the file."""
    if os.path.isfile(target) and not os.access(target, os.W_OK):
        raise PermissionError(errno.EACCES, "the file is write-protected", target if path is None else path)


def keep_mode(path: str, new) -> None:
    """Give the new file (a descriptor, or the path of a file about to be renamed over ``path``)
    an existing ``path``'s permissions: a plain overwrite keeps them, and the rename must not
    turn a private (0600) checkpoint into a readable one."""
    try:
        mode = stat.S_IMODE(os.stat(path).st_mode)
    except FileNotFoundError:
        return
    if hasattr(os, "fchmod"):  # (not on Windows, where the mode bits barely apply)
        os.chmod(new, mode)  # (a descriptor too, as fchmod)


def _remove_empty(folders) -> None:
    """Remove the folders given, deepest first; one that another writer filled, or that was never made, stays."""
    for folder in folders:
        with contextlib.suppress(OSError):
            os.rmdir(folder)


def _make_folder(folder: str, path: str) -> list:
    """Make ``folder`` and its missing parents; returns those it made, deepest first."""
    missing, probe = [], folder
    while probe and not os.path.lexists(probe) and os.path.dirname(probe) != probe:
        missing.append(probe)
        probe = os.path.dirname(probe)
    try:
        try:
            os.makedirs(folder, exist_ok=True)
        except BaseException:
            _remove_empty(missing)  # a failure part-way (a full disk, say) keeps none of those it made
            raise
    except (FileExistsError, NotADirectoryError):
        # os.makedirs names only the folder it could not make; name the file in the way
        blocker = folder
        while not os.path.lexists(blocker):  # lexists: a broken or looping link is in the way too
            blocker = os.path.dirname(blocker)
        if os.path.islink(blocker) and not os.path.exists(blocker):
            raise NotADirectoryError(f"cannot write {path!r}: {blocker!r} is a symbolic link that leads nowhere "
                                     "(broken, or a loop), not a folder") from None
        raise NotADirectoryError(f"cannot write {path!r}: {blocker!r} is a file, not a folder") from None
    return missing
