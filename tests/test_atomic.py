"""write_atomically: every file microvae writes (checkpoints, histories, pictures, downloads)."""

import os
import stat

import numpy as np
import pytest

import microvae as mv
from microvae.atomic import write_atomically


def test_writes_and_replaces_whole(tmp_path):
    path = tmp_path / "a.bin"
    assert write_atomically(path, lambda f: f.write(b"first")) == str(path)
    write_atomically(path, lambda f: f.write(b"second"))
    assert path.read_bytes() == b"second" and os.listdir(tmp_path) == ["a.bin"]


@pytest.mark.parametrize("error", [OSError, KeyboardInterrupt])
def test_a_failed_write_keeps_the_old_file_and_leaves_no_temporary_file(tmp_path, error):
    path = tmp_path / "a.bin"
    path.write_bytes(b"saved")

    def fails(f):
        f.write(b"half")
        raise error("disk full")

    with pytest.raises(error, match="disk full"):
        write_atomically(path, fails)
    assert path.read_bytes() == b"saved" and os.listdir(tmp_path) == ["a.bin"]


def test_the_bytes_are_synced_to_disk_before_the_rename(tmp_path, monkeypatch):
    """A crash after the rename must not leave an empty or partial file: the temporary file's
    whole content is flushed and fsynced before it replaces the target; then the folder is
    fsynced, so that the rename itself is on disk."""
    path = tmp_path / "a.bin"
    path.write_bytes(b"old")
    events, real_fsync, real_replace = [], os.fsync, os.replace

    def fsync(fd):
        info = os.fstat(fd)
        events.append(("fsync", info.st_ino, "folder" if stat.S_ISDIR(info.st_mode) else info.st_size))
        real_fsync(fd)

    def replace(src, dst):
        events.append(("replace", os.stat(src).st_ino, path.read_bytes()))
        real_replace(src, dst)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    write_atomically(path, lambda f: f.write(b"new contents"))
    assert [e[0] for e in events] == ["fsync", "replace", "fsync"]
    assert events[0][1] == events[1][1] and events[0][2] == len(b"new contents")  # the temporary file, whole
    assert events[1][2] == b"old" and path.read_bytes() == b"new contents"
    assert events[2][1:] == (os.stat(tmp_path).st_ino, "folder")


def test_a_symbolic_link_is_written_through_as_a_plain_open_writes_it(tmp_path):
    """Saving to latest.npz -> run3/model.npz replaced the link with a file and left the
    target stale; the bytes now go to the target, atomically, and the link stays."""
    (tmp_path / "run3").mkdir()
    target = tmp_path / "run3" / "model.npz"
    target.write_bytes(b"old")
    target.chmod(0o600)
    link = tmp_path / "latest.npz"
    link.symlink_to(os.path.join("run3", "model.npz"))
    assert write_atomically(link, lambda f: f.write(b"new")) == str(link)
    assert link.is_symlink() and target.read_bytes() == b"new" and link.read_bytes() == b"new"
    assert stat.S_IMODE(target.stat().st_mode) == 0o600  # the target's permissions, kept
    assert sorted(os.listdir(tmp_path / "run3")) == ["model.npz"] and sorted(os.listdir(tmp_path)) == ["latest.npz", "run3"]
    dangling = tmp_path / "next.npz"
    dangling.symlink_to(os.path.join("run3", "fresh.npz"))
    write_atomically(dangling, lambda f: f.write(b"first"))  # as open(path, "wb"): the target is made
    assert dangling.is_symlink() and (tmp_path / "run3" / "fresh.npz").read_bytes() == b"first"


def test_missing_folders_are_made(tmp_path):
    path = tmp_path / "new" / "deeper" / "a.bin"
    write_atomically(path, lambda f: f.write(b"x"))
    assert path.read_bytes() == b"x"


@pytest.mark.parametrize("name", ["a" * 251 + ".npz", "é" * 125 + "a.npz"])
def test_a_name_the_file_system_takes_is_written_although_the_temporary_name_is_longer(tmp_path, name):
    """A target of 255 bytes is allowed; '.<name>.<uuid>.tmp' would not be."""
    assert len(name.encode()) == 255
    write_atomically(tmp_path / name, lambda f: f.write(b"x"))
    assert os.listdir(tmp_path) == [name]


def test_a_file_where_a_folder_should_be_is_named(tmp_path):
    (tmp_path / "afile").write_bytes(b"")
    for path in (tmp_path / "afile" / "m.npz", tmp_path / "afile" / "sub" / "m.npz"):
        with pytest.raises(NotADirectoryError, match=rf"{tmp_path / 'afile'}' is a file, not a folder"):
            write_atomically(path, lambda f: f.write(b"x"))


def test_permissions_are_those_of_a_plain_open(tmp_path):
    old = os.umask(0o027)
    try:
        write_atomically(tmp_path / "a.bin", lambda f: f.write(b"x"))
        with open(tmp_path / "b.bin", "wb") as f:
            f.write(b"x")
    finally:
        os.umask(old)
    assert os.stat(tmp_path / "a.bin").st_mode & 0o777 == os.stat(tmp_path / "b.bin").st_mode & 0o777 == 0o640


@pytest.mark.skipif(not hasattr(os, "fchmod"), reason="POSIX permissions")
@pytest.mark.parametrize("mode", [0o600, 0o640, 0o444])
def test_an_existing_files_permissions_are_kept_as_a_plain_open_keeps_them(tmp_path, mode):
    """Saving over a private (0600) checkpoint made it 0644, readable by everyone."""
    for name in ("a.bin", "b.bin"):
        (tmp_path / name).write_bytes(b"old")
        os.chmod(tmp_path / name, mode)
    write_atomically(tmp_path / "a.bin", lambda f: f.write(b"new"))
    if mode & 0o200:  # a plain open of a read-only file fails (unless root): only compare where it works
        with open(tmp_path / "b.bin", "wb") as f:
            f.write(b"new")
        assert os.stat(tmp_path / "b.bin").st_mode & 0o777 == mode
    assert os.stat(tmp_path / "a.bin").st_mode & 0o777 == mode and (tmp_path / "a.bin").read_bytes() == b"new"
    model = mv.VAE(4, (3,), 2)
    os.chmod(tmp_path / "a.bin", 0o600)
    model.save(tmp_path / "a.bin")
    assert os.stat(tmp_path / "a.bin").st_mode & 0o777 == 0o600


@pytest.mark.parametrize("save", [
    lambda path: write_atomically(path, lambda f: f.write(b"new")),
    lambda path: mv.VAE(4, (3,), 2).save(path),
    lambda path: mv.VAE(4, (3,), 2).fit(np.zeros((4, 4)), epochs=1, verbose=0, callbacks=[mv.ModelCheckpoint(path)]),
], ids=["write_atomically", "save", "ModelCheckpoint"])
def test_a_write_protected_file_is_refused_as_a_plain_open_refuses_it(tmp_path, monkeypatch, save):
    """The rename needs only the folder's permission, so a checkpoint kept with chmod a-w was
    replaced where open(path, "wb") says "Permission denied". (The tests run as root, for whom
    the mode bits refuse nothing, so the process's answer is stood in for.)"""
    target = tmp_path / "best.npz"
    target.write_bytes(b"precious")
    os.chmod(target, 0o444)
    real_access = os.access
    monkeypatch.setattr(os, "access", lambda p, mode, **kw: False if os.fspath(p) == str(target) and mode == os.W_OK
                        else real_access(p, mode, **kw))
    with pytest.raises(PermissionError, match="write-protected") as info:
        save(target)
    assert info.value.filename == str(target)
    assert target.read_bytes() == b"precious" and os.listdir(tmp_path) == ["best.npz"]


def test_an_unwritable_folder_is_reported_with_the_target_name(tmp_path, monkeypatch):
    """The error named the hidden temporary file (".a.png.9865736510bf.tmp"), not the file asked for."""
    real_open = os.open

    def refuse(path, *args, **kwargs):
        if os.fspath(path).endswith(".tmp"):
            raise PermissionError(13, "Permission denied", path)
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr(os, "open", refuse)
    target = tmp_path / "a.png"
    with pytest.raises(PermissionError) as info:
        write_atomically(target, lambda f: f.write(b"x"))
    assert info.value.filename == str(target) and info.value.strerror == "Permission denied"
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("where", ["write", "fsync"])
def test_a_full_disk_is_reported_with_the_target_name_and_the_folders_made_for_it_removed(tmp_path, monkeypatch, where):
    """ENOSPC (or EIO) from the write or the fsync names no file: fit's pictures failing on a
    full disk said only "[Errno 28] No space left on device", and the folders made for the
    file stayed behind, empty. Other errors pass as they are."""
    import errno

    def full(*args):
        raise OSError(errno.ENOSPC, "No space left on device")

    if where == "fsync":
        monkeypatch.setattr(os, "fsync", full)
    target = tmp_path / "runs" / "one" / "model.npz"
    with pytest.raises(OSError) as info:
        write_atomically(target, full if where == "write" else (lambda f: f.write(b"x")))
    assert info.value.errno == errno.ENOSPC and info.value.filename == str(target)
    assert os.listdir(tmp_path) == []
    (tmp_path / "runs").mkdir()
    with pytest.raises(ValueError, match="not an OSError"):  # a folder that was there stays
        write_atomically(target, lambda f: (_ for _ in ()).throw(ValueError("not an OSError")))
    assert os.listdir(tmp_path) == ["runs"] and os.listdir(tmp_path / "runs") == []



def test_a_folder_that_cannot_be_made_part_way_takes_the_ones_made_before_it_away(tmp_path, monkeypatch):
    """os.makedirs failing at the third level (a full disk) left the two it had made, empty;
    a folder that was already there stays."""
    import errno

    real_mkdir = os.mkdir

    def mkdir(path, *args, **kwargs):
        if os.path.basename(path) == "three":
            raise OSError(errno.ENOSPC, "No space left on device", path)
        return real_mkdir(path, *args, **kwargs)

    monkeypatch.setattr(os, "mkdir", mkdir)
    (tmp_path / "there").mkdir()
    with pytest.raises(OSError, match="No space left on device") as info:
        write_atomically(tmp_path / "there" / "one" / "two" / "three" / "m.npz", lambda f: f.write(b"x"))
    assert info.value.errno == errno.ENOSPC
    assert os.listdir(tmp_path) == ["there"] and os.listdir(tmp_path / "there") == []

def test_every_writer_goes_through_it(tmp_path):
    """Checkpoints and histories into folders that do not exist yet, under a long name."""
    model = mv.VAE(4, (3,), 2)
    model.fit(np.full((4, 4), 0.5), epochs=1, verbose=0)
    long = "h" * 240
    model.save(tmp_path / "ckpt" / f"{long}.npz")
    model.history.to_json(tmp_path / "new" / f"{long}.json")
    model.history.to_csv(tmp_path / "other" / f"{long}.csv")
    assert mv.load(tmp_path / "ckpt" / f"{long}.npz").step == model.step
    assert (tmp_path / "new" / f"{long}.json").read_text().startswith("[")
    assert (tmp_path / "other" / f"{long}.csv").read_text().startswith("epoch,loss")
    (tmp_path / "afile").write_bytes(b"")
    with pytest.raises(NotADirectoryError, match="is a file, not a folder"):
        model.save(tmp_path / "afile" / "m.npz")


def test_the_temporary_file_is_made_beside_the_target(tmp_path, monkeypatch):
    """os.replace is atomic only within one file system: the temporary file lies in the
    target's own folder, not in a temp dir that may be on another disk."""
    path = tmp_path / "sub" / "a.bin"
    moved, real_replace = [], os.replace

    def replace(src, dst):
        moved.append((os.path.dirname(os.path.abspath(src)), os.path.basename(src)))
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", replace)
    write_atomically(path, lambda f: f.write(b"x"))
    assert moved[0][0] == str(tmp_path / "sub") and moved[0][1].startswith(".a.bin.")


def test_another_writers_temporary_file_is_never_clobbered(tmp_path, monkeypatch):
    """The temporary file is created exclusively: should its name already exist (another
    writer's), the write fails and leaves that file and the target as they were."""
    import uuid

    class Fixed:
        hex = "0" * 32

    monkeypatch.setattr(uuid, "uuid4", lambda: Fixed)
    path = tmp_path / "a.bin"
    path.write_bytes(b"old")
    other = tmp_path / f".a.bin.{'0' * 12}.tmp"
    other.write_bytes(b"someone else's")
    with pytest.raises(FileExistsError):
        write_atomically(path, lambda f: f.write(b"new"))
    assert other.read_bytes() == b"someone else's" and path.read_bytes() == b"old"


def test_write_idx_replaces_a_file_whole(tmp_path):
    """write_idx rewrote its file in place, so a reader (or a crash) could meet half of one."""
    from microvae.datasets import read_idx, write_idx

    path = tmp_path / "new" / "a.idx.gz"  # the folder is made, as for every other writer
    write_idx(path, np.zeros((3, 4), np.uint8))
    inode = os.stat(path).st_ino
    write_idx(path, np.ones((3, 4), np.uint8))
    assert os.stat(path).st_ino != inode  # a new file renamed over the old one
    np.testing.assert_array_equal(read_idx(path), np.ones((3, 4), np.uint8))
    assert sorted(os.listdir(path.parent)) == ["a.idx.gz"]


def _writers():
    """(name, write(path, version)) for every public writer: each writes different bytes for
    version 0 and 1."""
    from microvae.datasets import download as download_module, write_idx

    def checkpoint(path, version):
        mv.VAE(4, (3,), 2, seed=version).save(path)

    def history(method):
        def write(path, version):
            getattr(mv.History([{"epoch": 1, "loss": 1.0 + version}]), method)(path)
        return write

    def picture(path, version):
        pytest.importorskip("matplotlib")
        from microvae import plot

        plot.plot_samples(np.full((4, 16), 0.25 + 0.5 * version), nrow=2, image_shape=(4, 4), path=path)

    def idx(path, version):
        write_idx(path, np.full((2, 3), version, np.uint8))

    def download(path, version):
        data = b"version %d" % version
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(download_module, "_fetch", lambda url: data)
            download_module.download_file("https://example.invalid/f", path, download_module._md5_hex(data), quiet=True)

    return [("checkpoint", "m.npz", checkpoint), ("history.to_json", "h.json", history("to_json")),
            ("history.to_csv", "h.csv", history("to_csv")), ("picture", "p.png", picture),
            ("write_idx", "a.idx", idx), ("download_file", "f.gz", download)]


@pytest.mark.parametrize("name, filename, write", _writers(), ids=[w[0] for w in _writers()])
def test_every_writer_puts_a_new_file_in_place_of_the_old_one(tmp_path, name, filename, write):
    """A writer that opened its target and wrote into it (``fig.savefig(path)``,
    ``Path.write_text``) would leave half a file, and no old one, if it were cut off. Here a
    hard link keeps the old file's bytes in view: a writer that replaces the file leaves them
    as they were; one that writes into the same file changes them."""
    target = tmp_path / filename
    write(target, 0)
    old = target.read_bytes()
    os.link(target, tmp_path / "old")
    write(target, 1)
    assert (tmp_path / "old").read_bytes() == old, f"{name} wrote into the file it replaces"
    assert target.read_bytes() != old and sorted(os.listdir(tmp_path)) == sorted([filename, "old"])


def test_no_module_opens_a_file_for_writing_but_the_atomic_writer():
    """Every file microvae writes goes through write_atomically (README: "as is every file microvae writes")."""
    import pathlib
    import re

    package = pathlib.Path(mv.__file__).parent
    writes = re.compile(r"""\bopen\([^)]*['"][wax]b?\+?['"]""")
    offenders = [f"{path.relative_to(package)}:{number}" for path in package.rglob("*.py") if path.name != "atomic.py"
                 for number, line in enumerate(path.read_text().splitlines(), 1) if writes.search(line)]
    assert offenders == []


def test_a_folder_at_the_target_is_named_as_a_plain_open_names_it(tmp_path):
    """The rename's error named the hidden temporary file (".x.idx.ed71….tmp -> x.idx")."""
    target = tmp_path / "x.idx"
    target.mkdir()
    with pytest.raises(IsADirectoryError) as info:
        write_atomically(target, lambda f: f.write(b"data"))
    assert info.value.filename == str(target) and ".tmp" not in str(info.value)
    assert os.listdir(tmp_path) == ["x.idx"] and os.listdir(target) == []  # no temporary file left


@pytest.mark.parametrize("suffix", ["/", "/.", "/.."])
def test_a_path_that_names_a_folder_is_refused_and_the_file_before_it_kept(tmp_path, suffix):
    """realpath dropped a final "/" or "/.", so write_idx("a.idx/") replaced the file a.idx, and
    "new/" made a file called new; a plain open() refuses both."""
    target = tmp_path / "a.idx"
    mv.datasets.write_idx(target, np.arange(12, dtype=np.uint8).reshape(3, 4))
    before = target.read_bytes()
    for path in (str(target) + suffix, os.fsencode(str(target) + suffix)):
        with pytest.raises(IsADirectoryError, match="not a file name") as info:
            mv.datasets.write_idx(path, np.zeros(2, np.uint8))
        assert info.value.filename == os.fsdecode(path)
    with pytest.raises(IsADirectoryError, match="not a file name"):
        write_atomically(str(tmp_path / "new") + suffix, lambda f: f.write(b"x"))
    assert target.read_bytes() == before and sorted(os.listdir(tmp_path)) == ["a.idx"]
    with pytest.raises(IsADirectoryError, match="not a file name"):
        write_atomically("", lambda f: f.write(b"x"))


def test_a_looping_link_in_the_way_is_named_not_the_folder_before_it(tmp_path):
    """The search for what blocks the folder climbed past a link that leads nowhere (exists()
    is False for it) and blamed the real folder above it as "a file"."""
    os.symlink("loop", tmp_path / "loop")
    with pytest.raises(NotADirectoryError, match=rf"'{tmp_path / 'loop'}' is a symbolic link that leads nowhere"):
        write_atomically(tmp_path / "loop" / "x.bin", lambda f: f.write(b"x"))
    assert os.listdir(tmp_path) == ["loop"]
