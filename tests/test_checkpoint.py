"""Checkpoints: round trip, atomic writes, and clear errors for every kind of bad file."""

import json
import zipfile

import numpy as np
import pytest

import microvae as mv
from microvae import checkpoint
from microvae.layers.base import Layer


@pytest.fixture
def trained(tmp_path):
    model = mv.VAE(10, (6,), 2, beta=2.0, likelihood="gaussian-learned", seed=3)
    model.fit(np.random.default_rng(0).standard_normal((40, 10)), epochs=1, batch_size=16, verbose=0)
    path = tmp_path / "model.npz"
    model.save(path)
    return model, path


def test_round_trip_restores_everything(trained):
    model, path = trained
    loaded = mv.load(path)
    assert type(loaded) is mv.VAE and loaded.config == model.config
    np.testing.assert_array_equal(loaded.flat.data, model.flat.data)
    z = np.random.default_rng(0).standard_normal((3, 2))
    np.testing.assert_array_equal(loaded.decode(z), model.decode(z))
    assert loaded.history.epochs == model.history.epochs and loaded.step == model.step
    saved, restored = model.optimizers["model"], loaded.optimizers["model"]
    assert restored.t == saved.t and set(restored.state_arrays()) == {"m", "v"}
    for key, value in saved.state_arrays().items():  # (v was not compared: only m)
        np.testing.assert_array_equal(restored.state_arrays()[key], value, err_msg=key)


def test_custom_architecture_round_trip(tmp_path):
    enc = mv.Sequential(mv.Dense(8, 5), mv.LeakyReLU(0.3), mv.Dense(5, 6))
    dec = mv.Sequential(mv.Dense(3, 4), mv.Tanh(), mv.Dense(4, 8))
    model = mv.VAE(8, latent_dim=3, encoder=enc, decoder=dec, seed=1)
    model.save(tmp_path / "c.npz")
    loaded = mv.load(tmp_path / "c.npz")
    assert repr(loaded.encoder) == repr(enc)
    x = np.full((2, 8), 0.5)
    np.testing.assert_array_equal(loaded.reconstruct(x), model.reconstruct(x))


class _ScaledForCheckpointTest(Layer):
    """y = s·x: a user's layer with a constructor argument, and (below) with and without get_config."""

    def __init__(self, s=1.0):
        super().__init__()
        self.s = s

    def forward(self, x):
        return self.s * x

    def backward(self, dy, input_grad=True):
        return self.s * dy


class _ScaledWithConfigForCheckpointTest(_ScaledForCheckpointTest):
    def get_config(self):
        return {"s": self.s}


class _WideVAEForCheckpointTest(mv.VAE):  # a constructor of its own, which the VAE's config does not fit
    def __init__(self, input_dim=8, width=4, latent_dim=2):
        super().__init__(input_dim, (width, width), latent_dim)


class _ScaledVAEForCheckpointTest(mv.VAE):  # takes the VAE's arguments, and one of its own the config lacks
    def __init__(self, *args, scale=1.0, **kwargs):
        super().__init__(*args, **kwargs)
        self.scale = scale

    def _decode(self, z, condition=None):
        return super()._decode(z * self.scale, condition)


class _ScaledVAEWithConfigForCheckpointTest(_ScaledVAEForCheckpointTest):
    def __init__(self, *args, scale=1.0, **kwargs):
        super().__init__(*args, scale=scale, **kwargs)
        self.config = {**self.config, "scale": scale}


class _PlainVAEForCheckpointTest(mv.VAE):
    pass


@pytest.mark.parametrize("build, message", [
    (lambda: _WideVAEForCheckpointTest(8, width=5), r"_WideVAEForCheckpointTest's constructor does not take its config \(.*'fuse_relu'\); "
                                                   r"a subclass with constructor arguments of its own sets self.config in its __init__, after super"),
    (lambda: _ScaledVAEForCheckpointTest(8, (4,), 2, scale=3.0), r"_ScaledVAEForCheckpointTest's constructor takes scale, which its "
                                                                 r"config does not hold, so load\(\) would build it with the defaults"),
])
def test_a_model_subclass_that_load_would_not_rebuild_is_not_saved(tmp_path, build, message):
    """load() calls the class with the stored config: a subclass's own constructor failed on it
    (and the error blamed the file), or, taking **kwargs, silently built another model."""
    path = tmp_path / "c.npz"
    mv.VAE(8, (4,), 2).save(path)
    before = path.read_bytes()
    with pytest.raises(TypeError, match=rf"not saving .*c\.npz': {message}"):
        build().save(path)
    assert path.read_bytes() == before


@pytest.mark.parametrize("cls, options", [(_ScaledVAEWithConfigForCheckpointTest, {"scale": 3.0}), (_PlainVAEForCheckpointTest, {})])
def test_a_model_subclass_whose_config_holds_its_arguments_round_trips(tmp_path, cls, options):
    model = cls(8, (4,), 2, **options)
    model.save(tmp_path / "c.npz")
    loaded = mv.load(tmp_path / "c.npz")
    assert type(loaded) is cls and loaded.config == model.config
    z = np.random.default_rng(0).standard_normal((3, 2))
    np.testing.assert_array_equal(loaded.decode(z), model.decode(z))


def test_a_model_class_of_ones_own_named_as_a_built_in_one_does_not_take_its_place(tmp_path):
    """Models are registered by class name for load(): a notebook's own ``class ConvVAE`` made
    every built-in ConvVAE checkpoint fail to load, for the rest of the process."""
    built_in = mv.ConvVAE((1, 4, 4), latent_dim=2, variant="strided")
    built_in.save(tmp_path / "built_in.npz")

    class ConvVAE(mv.VAE):
        pass

    assert type(mv.load(tmp_path / "built_in.npz")) is mv.ConvVAE
    with pytest.raises(TypeError, match=r"another model class is registered under the name 'ConvVAE' "
                                        r"\(microvae\.models\.conv_vae\.ConvVAE\).*give your class a name of its own"):
        ConvVAE(8, (4,), 2).save(tmp_path / "own.npz")
    assert not (tmp_path / "own.npz").exists()


def test_a_user_layer_without_get_config_is_not_saved_wrongly(tmp_path):
    # its argument would be lost: load() would rebuild it as s=1.0 and decode differently
    path = tmp_path / "c.npz"
    mv.VAE(8, (4,), 2).save(path)
    before = path.read_bytes()
    dec = mv.Sequential(mv.Dense(2, 8), _ScaledForCheckpointTest(3.0))
    model = mv.VAE(8, (4,), 2, decoder=dec)
    with pytest.raises(TypeError, match=r"decoder\.1 \(_ScaledForCheckpointTest\) take constructor arguments but define no get_config"):
        model.save(path)
    assert path.read_bytes() == before
    dec = mv.Sequential(mv.Dense(2, 8), _ScaledWithConfigForCheckpointTest(3.0))
    model = mv.VAE(8, (4,), 2, decoder=dec)
    model.save(path)
    z = np.random.default_rng(0).standard_normal((3, 2))
    np.testing.assert_array_equal(mv.load(path).decode(z), model.decode(z))


def test_saving_without_optimizer_state(tmp_path):
    model = mv.VAE(6, (4,), 2)
    model.fit(np.full((8, 6), 0.5), epochs=1, verbose=0)
    model.save(tmp_path / "p.npz", include_optimizer=False)
    assert mv.load(tmp_path / "p.npz").optimizers == {}


def test_an_optimizer_instance_cannot_be_checkpointed_and_the_error_says_what_to_do(tmp_path):
    model = mv.VAE(6, (4,), 2)
    model.fit(np.full((8, 6), 0.5), epochs=1, verbose=0, optimizer=mv.Adam(model.flat, 1e-3))
    with pytest.raises(TypeError, match=r"created by name .* with include_optimizer=False"):
        model.save(tmp_path / "p.npz")
    assert not (tmp_path / "p.npz").exists()
    model.save(tmp_path / "p.npz", include_optimizer=False)


def test_files_hold_no_pickles(trained):
    _, path = trained
    with np.load(path, allow_pickle=False) as npz:
        assert all(npz[key].dtype != object for key in npz.files)
        assert str(npz["format"]) == "microvae-checkpoint"


def test_write_is_atomic_and_failure_keeps_the_old_file(trained, monkeypatch):
    model, path = trained
    before = path.read_bytes()

    def broken_savez(file, **arrays):
        file.write(b"partial garbage")
        raise OSError("disk full")

    monkeypatch.setattr(checkpoint.np, "savez", broken_savez)
    with pytest.raises(OSError, match="disk full"):
        model.save(path)
    assert path.read_bytes() == before
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temporary file left behind


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="no checkpoint"):
        mv.load(tmp_path / "nope.npz")


def test_truncated_file(trained, tmp_path):
    _, path = trained
    cut = tmp_path / "cut.npz"
    cut.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(mv.CheckpointError, match="truncated, corrupt"):
        mv.load(cut)


def test_random_bytes(tmp_path):
    junk = tmp_path / "junk.npz"
    junk.write_bytes(np.random.default_rng(0).bytes(3000))
    with pytest.raises(mv.CheckpointError, match="not an .npz archive"):
        mv.load(junk)


def test_foreign_npz(tmp_path):
    other = tmp_path / "other.npz"
    np.savez(other, weights=np.ones(3))
    with pytest.raises(mv.CheckpointError, match="not a microvae checkpoint"):
        mv.load(other)


def test_a_compressed_archive_with_a_corrupt_stream(trained, tmp_path):
    """np.savez_compressed archives load; a damaged deflate stream in one raised a bare zlib.error."""
    model, path = trained
    with np.load(path, allow_pickle=False) as npz:
        arrays = {k: npz[k] for k in npz.files}
    packed = tmp_path / "packed.npz"
    np.savez_compressed(packed, **arrays)
    np.testing.assert_array_equal(mv.load(packed).flat.data, model.flat.data)
    with zipfile.ZipFile(packed) as zf:
        offset = zf.getinfo("params/model.npy").header_offset
    data = bytearray(packed.read_bytes())
    start = offset + 30 + int.from_bytes(data[offset + 26:offset + 28], "little") + int.from_bytes(data[offset + 28:offset + 30], "little")
    data[start + 10:start + 40] = bytes(b ^ 0xFF for b in data[start + 10:start + 40])  # inside the member's deflate stream
    packed.write_bytes(bytes(data))
    with pytest.raises(mv.CheckpointError, match="truncated, corrupt"):
        mv.load(packed)


def _rewrite(path, out, **changes):
    with np.load(path, allow_pickle=False) as npz:
        arrays = {k: npz[k] for k in npz.files}
    arrays.update(changes)
    np.savez(out, **arrays)


UNPICKLED = []


def _record_unpickling(tag):
    UNPICKLED.append(tag)
    return tag


class _Trap:
    def __reduce__(self):  # unpickling it calls _record_unpickling: proof that a pickle was loaded
        return _record_unpickling, ("trap",)


def test_pickled_object_arrays_are_refused(trained, tmp_path):
    # a real checkpoint with one entry swapped for a pickled object array, so that the only
    # thing wrong with the file is the pickle (no earlier metadata error can stand in for it)
    _, path = trained
    evil = tmp_path / "evil.npz"
    _rewrite(path, evil, **{"params/model": np.array([_Trap()], dtype=object)})
    UNPICKLED.clear()
    with pytest.raises(mv.CheckpointError, match="not a readable microvae checkpoint.*allow_pickle=False"):
        mv.load(evil)
    assert UNPICKLED == []


@pytest.mark.parametrize("content", [b"hello\n", b"", b"\x80\x04\x95 a pickle"])
def test_a_file_that_is_no_archive_is_named_as_such_without_numpys_pickle_advice(tmp_path, content):
    other = tmp_path / "other.npz"
    other.write_bytes(content)
    with pytest.raises(mv.CheckpointError, match=r"not a microvae checkpoint: not an .npz archive \(it starts with b") as info:
        mv.load(other)
    assert "allow_pickle" not in str(info.value) and "pickle.load" not in str(info.value)


@pytest.mark.parametrize("target", ["folder", "folder/", ""])
def test_saving_to_a_folder_is_refused_up_front_and_writes_nothing(trained, tmp_path, monkeypatch, target):
    model, _ = trained
    monkeypatch.chdir(tmp_path)
    (tmp_path / "folder").mkdir()
    before = sorted(p.name for p in tmp_path.rglob("*"))
    for write in (lambda p: model.save(p), lambda p: model.history.to_json(p), lambda p: model.history.to_csv(p),
                  lambda p: mv.ModelCheckpoint(p)):
        with pytest.raises(ValueError, match=r"names a folder, not a file; give a file name, such as '(folder|\.)/\w+\.\w+'"):
            write(target)
    assert sorted(p.name for p in tmp_path.rglob("*")) == before


def test_info_is_stored_beside_the_model_and_read_back(trained, tmp_path):
    model, path = trained
    assert checkpoint.read_info(path) == {}  # saved without one
    info = {"data": "sprites", "length": np.int64(32), "shape": (28, 28), "nested": {"a": [1.5, None]}}
    target = tmp_path / "with_info.npz"
    model.save(target, info=info)
    assert checkpoint.read_info(target) == {"data": "sprites", "length": 32, "shape": [28, 28], "nested": {"a": [1.5, None]}}
    assert np.array_equal(mv.load(target).flat.data, model.flat.data)


def test_info_survives_a_load_fit_save_cycle(tmp_path):
    """load ignored the info, so resuming a CLI run with a ModelCheckpoint to the same file
    emptied it, and ``microvae sample`` then drew sprites as piano rolls."""
    path = tmp_path / "model.npz"
    x = np.random.default_rng(0).random((8, 6))
    model = mv.VAE(6, (4,), 2)
    info = {"data": "sprites", "draw_as": "image-rows", "length": 32}
    model.save(path, info=info)
    info["length"] = 1  # the caller's dict, changed after the save: not what the model keeps
    assert model.info == {"data": "sprites", "draw_as": "image-rows", "length": 32}
    resumed = mv.load(path)
    assert resumed.info == model.info
    resumed.fit(x, epochs=1, batch_size=4, verbose=0, callbacks=[mv.ModelCheckpoint(path)])
    assert checkpoint.read_info(path) == {"data": "sprites", "draw_as": "image-rows", "length": 32}
    resumed.save(tmp_path / "copy.npz")
    assert checkpoint.read_info(tmp_path / "copy.npz") == model.info
    resumed.save(path, info={"data": "fashion-mnist"})  # a new info replaces it
    assert checkpoint.read_info(path) == {"data": "fashion-mnist"} == resumed.info
    resumed.save(path, info={})  # and {} writes none
    assert checkpoint.read_info(path) == {} and resumed.info is None and mv.load(path).info is None


@pytest.mark.parametrize("info, error, message", [
    (["data"], TypeError, "info must be a dict with string keys"),
    ({1: "x"}, TypeError, "info must be a dict with string keys"),
    ({"a": {1: 2}}, TypeError, "info must be a dict with string keys, nested dicts too"),  # read back as {"1": 2}
    ({"a": [{"b": {(1, 2): 0}}]}, TypeError, "info must be a dict with string keys, nested dicts too"),
    ({"x": float("nan")}, ValueError, "info must hold JSON values"),
    ({"x": object()}, TypeError, "cannot be stored in a checkpoint"),
])
def test_bad_info_is_refused_and_the_old_file_kept(trained, info, error, message):
    model, path = trained
    before = path.read_bytes()
    with pytest.raises(error, match=message):
        model.save(path, info=info)
    assert path.read_bytes() == before and [p.name for p in path.parent.iterdir()] == [path.name]


def test_malformed_info_and_foreign_files(trained, tmp_path):
    _, path = trained
    _rewrite(path, tmp_path / "i.npz", info=np.array(json.dumps([1, 2])))
    with pytest.raises(mv.CheckpointError, match="'info' is a list; expected a JSON object"):
        checkpoint.read_info(tmp_path / "i.npz")
    np.savez(tmp_path / "foreign.npz", a=np.zeros(3))
    with pytest.raises(mv.CheckpointError, match="not a microvae checkpoint"):
        checkpoint.read_info(tmp_path / "foreign.npz")
    with pytest.raises(FileNotFoundError):
        checkpoint.read_info(tmp_path / "none.npz")


def test_future_format_version(trained, tmp_path):
    _, path = trained
    _rewrite(path, tmp_path / "v9.npz", format_version=np.array(9))
    with pytest.raises(mv.CheckpointError, match="version 9"):
        mv.load(tmp_path / "v9.npz")


def test_an_older_or_the_next_format_version_is_refused_too(trained, tmp_path):
    """Only version 1 is read: an older layout (0), or the next one (2), is not this reader's."""
    _, path = trained
    for version in (0, 2):
        _rewrite(path, tmp_path / f"v{version}.npz", format_version=np.array(version))
        for read in (mv.load, checkpoint.read_info):
            with pytest.raises(mv.CheckpointError, match=f"version {version}; this microvae reads version 1"):
                read(tmp_path / f"v{version}.npz")


def test_another_format_marker_is_refused(trained, tmp_path):
    _, path = trained
    _rewrite(path, tmp_path / "f.npz", format=np.array("someone-elses-checkpoint"))
    for read in (mv.load, checkpoint.read_info):
        with pytest.raises(mv.CheckpointError, match="no 'microvae-checkpoint' marker"):
            read(tmp_path / "f.npz")


def test_unknown_model_class(trained, tmp_path):
    _, path = trained
    _rewrite(path, tmp_path / "u.npz", model=np.array(json.dumps({"class": "GAN", "config": {}})))
    with pytest.raises(mv.CheckpointError, match="metadata"):
        mv.load(tmp_path / "u.npz")


def test_parameters_of_the_wrong_size_or_non_finite(trained, tmp_path):
    model, path = trained
    for size in (5, model.flat.data.size + 1):  # too few values, and one too many (not cut to fit)
        _rewrite(path, tmp_path / "s.npz", **{"params/model": np.ones(size, dtype=np.float32)})
        with pytest.raises(mv.CheckpointError, match="wrong size"):
            mv.load(tmp_path / "s.npz")
    bad = model.flat.data.copy()
    bad[0] = np.nan
    _rewrite(path, tmp_path / "n.npz", **{"params/model": bad})
    with pytest.raises(mv.CheckpointError, match="NaN"):
        mv.load(tmp_path / "n.npz")


def test_layout_mismatch(trained, tmp_path):
    _, path = trained
    _rewrite(path, tmp_path / "l.npz", layout=np.array(json.dumps({"model": [["encoder.0.W", [1, 1]]]})))
    with pytest.raises(mv.CheckpointError, match="layout"):
        mv.load(tmp_path / "l.npz")


def test_the_layout_names_each_tensor_and_other_names_are_a_mismatch(trained, tmp_path):
    """The same shapes under other names (a renamed layer, two same-shaped layers swapped) are not this model's."""
    model, path = trained
    with np.load(path, allow_pickle=False) as npz:
        layout = json.loads(str(npz["layout"]))
    assert layout == {"model": [[name, list(shape)] for name, _, shape in model.flat.layout]}
    layout["model"][0][0] = "renamed.W"
    _rewrite(path, tmp_path / "l.npz", layout=np.array(json.dumps(layout)))
    with pytest.raises(mv.CheckpointError, match="layout"):
        mv.load(tmp_path / "l.npz")


def test_a_checkpoint_loads_onto_the_backend_given(trained):
    model, path = trained
    be = mv.get_backend("numpy", dtype="float64")
    loaded = mv.load(path, backend=be)
    assert loaded.backend is be and loaded.flat.data.dtype == np.float64
    np.testing.assert_array_equal(loaded.flat.data, model.flat.data)


def test_file_is_a_real_zip(trained):
    _, path = trained
    assert zipfile.is_zipfile(path)


def test_a_damaged_array_header_is_named_not_allocated(trained, tmp_path):
    """One digit of a shape changed in an entry's .npy header (the data and the header's length
    unchanged) made load ask for 124 TiB: a bare MemoryError naming neither file nor fault."""
    model, path = trained
    damaged = tmp_path / "damaged.npz"
    with zipfile.ZipFile(path) as source, zipfile.ZipFile(damaged, "w") as target:  # members' CRCs made anew
        for name in source.namelist():
            member = source.read(name)
            if name == "params/model.npy":
                # ten more digits in the shape, ten fewer of the spaces that pad the header to its length
                shape = f"'shape': ({model.flat.size},), }}{' ' * 10}".encode()
                assert member.count(shape) == 1
                member = member.replace(shape, f"'shape': ({model.flat.size}{'0' * 10},), }}".encode())
            target.writestr(name, member)
    with pytest.raises(mv.CheckpointError, match=r"damaged\.npz.*entry 'params/model' declares a float32 array of shape "
                                                 r"\(\d+,\) \([\d,]+ bytes\), more than the [\d,]+ bytes it holds: the file is corrupt"):
        mv.load(damaged)


def test_a_file_that_is_not_a_checkpoint_is_refused_before_its_arrays_are_read(tmp_path, monkeypatch):
    """A data set given to load by mistake was read whole (all of its arrays) before the
    missing marker refused it."""
    path = tmp_path / "dataset.npz"
    np.savez(path, x=np.zeros((50, 784), np.float32), y=np.zeros(50, np.int64))
    read = []
    original = np.lib.npyio.NpzFile.__getitem__
    monkeypatch.setattr(np.lib.npyio.NpzFile, "__getitem__", lambda self, key: read.append(key) or original(self, key))
    for load in (mv.load, checkpoint.read_info):
        with pytest.raises(mv.CheckpointError, match="not a microvae checkpoint"):
            load(path)
    assert read == []


def test_read_info_reads_only_the_marker_version_and_info(trained, monkeypatch):
    """`microvae sample` loads a checkpoint and reads its info: the second read used to read the
    parameters and optimizer moments again."""
    model, path = trained
    model.save(path, info={"data": "sprites"})
    read = []
    original = np.lib.npyio.NpzFile.__getitem__

    def spy(self, key):
        read.append(key)
        return original(self, key)

    monkeypatch.setattr(np.lib.npyio.NpzFile, "__getitem__", spy)
    assert checkpoint.read_info(path) == {"data": "sprites"}
    assert set(read) == {"format", "format_version", "info"}  # (the marker is read first, then again with the info)


def test_a_layer_spec_nested_too_deep_to_build_is_a_checkpoint_error(tmp_path):
    """A foreign file whose encoder spec wraps one Sequential in hundreds of others parses as
    JSON, but building it ran out of Python's recursion: a bare RecursionError with no file
    name, where every other config that builds no model is a CheckpointError."""
    from microvae.layers import Dense, Sequential

    path = tmp_path / "custom.npz"
    mv.VAE(4, latent_dim=1, encoder=Sequential(Dense(4, 2))).save(path)
    with np.load(path, allow_pickle=False) as npz:
        meta = json.loads(str(npz["model"]))
    spec = meta["config"]["encoder"]
    for _ in range(200):  # 600 levels of JSON, which parse; each Sequential built takes more frames than that
        spec = {"type": "Sequential", "config": {"layers": [spec]}}
    meta["config"]["encoder"] = spec
    deep = tmp_path / "deep.npz"
    _rewrite(path, deep, model=np.array(json.dumps(meta)))
    with pytest.raises(mv.CheckpointError, match=r"deep\.npz.*its config does not build a VAE .*recursion"):
        mv.load(deep)
    assert mv.load(path).config == mv.VAE(4, latent_dim=1, encoder=Sequential(Dense(4, 2))).config  # the saved file is intact
