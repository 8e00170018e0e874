"""The array backend: selection, dtypes, seeding, clear errors."""

import numpy as np
import pytest

import microvae as mv
from _gpu import gpu_available
from microvae.kernels import cpu
from microvae.kernels import reference as reference_kernels


def test_default_backend():
    be = mv.get_backend()
    assert be.name == "numpy" and be.xp is np and be.dtype == np.float32 and be.kernels is cpu


def test_environment_variable_selects_backend(monkeypatch):
    monkeypatch.setenv("MICROVAE_BACKEND", "numpy")
    assert mv.get_backend().name == "numpy"
    monkeypatch.setenv("MICROVAE_BACKEND", "tpu")
    with pytest.raises(ValueError, match=r"'numpy' or 'cupy', got 'tpu' \(from \$MICROVAE_BACKEND\)"):
        mv.get_backend()
    with pytest.raises(ValueError, match="got 'gpu'$"):  # an argument is not blamed on the variable
        mv.get_backend("gpu")


def test_a_bad_kernels_variable_is_named(monkeypatch):
    monkeypatch.setenv("MICROVAE_KERNELS", "fast")
    with pytest.raises(ValueError, match=r"'compiled' or 'reference', got 'fast' \(from \$MICROVAE_KERNELS\)"):
        mv.Backend("numpy")
    with pytest.raises(ValueError, match="got 'fastest'$"):
        mv.Backend("numpy", kernels="fastest")


@pytest.mark.parametrize("kernels", ["", 0, False])
def test_only_none_reads_the_kernels_variable(monkeypatch, kernels):
    """kernels="" (or 0, or False) was taken for "unset" and read $MICROVAE_KERNELS, as the
    backend's name once was: an argument that is not a kernel kind is refused by name."""
    monkeypatch.setenv("MICROVAE_KERNELS", "reference")
    with pytest.raises(ValueError, match=rf"'compiled' or 'reference', got {kernels!r}$"):
        mv.Backend("numpy", kernels=kernels)
    assert mv.Backend("numpy", kernels=None).kernel_kind == "reference"


def test_an_empty_kernels_variable_means_the_compiled_kernels(monkeypatch):
    """MICROVAE_KERNELS set but empty (`MICROVAE_KERNELS= python ...`) is unset, as an empty
    MICROVAE_BACKEND is, not a refused kernel kind ''."""
    monkeypatch.setenv("MICROVAE_KERNELS", "")
    assert mv.Backend("numpy").kernel_kind == "compiled"
    assert mv.Dense(2, 3).build().backend.kernel_kind == "compiled"


def test_a_float32_normal_draw_is_the_float64_draw_rounded_at_any_scale():
    """Drawn in float64, scaled, then cast once: a seed gives the same numbers in float32 as in
    float64, rounded, scale included (He initialisation passes one)."""
    a = mv.get_backend("numpy", dtype="float32", seed=3).normal((2000,), scale=0.37)
    b = mv.get_backend("numpy", dtype="float64", seed=3).normal((2000,), scale=0.37)
    assert a.dtype == np.float32
    np.testing.assert_array_equal(a, b.astype(np.float32))


def test_a_normal_draw_from_a_callers_generator_leaves_the_backends_own_stream_alone():
    """The AAE draws its seeded prior samples so: the caller's stream, rounded as above."""
    backend = mv.get_backend("numpy", dtype="float32", seed=3)
    drawn = backend.normal((50,), rng=np.random.default_rng(7))
    np.testing.assert_array_equal(drawn, np.random.default_rng(7).standard_normal(50).astype(np.float32))
    np.testing.assert_array_equal(backend.normal((50,)), mv.get_backend("numpy", dtype="float32", seed=3).normal((50,)))


def test_kernels_for_honours_the_reference_kernels_variable(monkeypatch):
    from microvae.backend import kernels_for
    from microvae.kernels import reference

    monkeypatch.delenv("MICROVAE_KERNELS", raising=False)
    assert kernels_for(np.zeros(1)) is cpu
    monkeypatch.setenv("MICROVAE_KERNELS", "reference")
    assert kernels_for(np.zeros(1)) is reference
    monkeypatch.setenv("MICROVAE_KERNELS", "Reference")  # refused as Backend refuses it, not taken for 'compiled'
    with pytest.raises(ValueError, match=r"got 'Reference' \(from \$MICROVAE_KERNELS\)"):
        kernels_for(np.zeros(1))


@pytest.mark.parametrize("model_name", ["vae", "convvae", "aae", "vrae"])
def test_a_model_on_the_reference_kernels_runs_no_compiled_kernel(model_name, monkeypatch):
    """Backend(kernels="reference") is how a kernel is ruled out when debugging: every kernel a
    model's step runs, the Bernoulli loss's included, must then be a NumPy twin."""
    import microvae.kernels.cpu as compiled

    monkeypatch.delenv("MICROVAE_KERNELS", raising=False)
    ran = []
    for name in dir(compiled):
        if callable(getattr(compiled, name)) and not name.startswith("_") and hasattr(reference_kernels, name):
            monkeypatch.setattr(compiled, name, lambda *args, name=name: ran.append(name))
    backend = mv.Backend("numpy", dtype="float64", kernels="reference")
    rng = np.random.default_rng(0)
    if model_name == "vrae":
        model, x = mv.VRAE(3, 4, 2, backend=backend), rng.random((2, 5, 3))
    elif model_name == "convvae":
        model, x = mv.ConvVAE((1, 8, 8), latent_dim=2, backend=backend), rng.random((3, 1, 8, 8))
    elif model_name == "aae":
        model, x = mv.AAE(6, hidden=(5,), latent_dim=2, disc_hidden=(4,), backend=backend), rng.random((3, 6))
    else:
        model, x = mv.VAE(6, (5,), 2, backend=backend), rng.random((3, 6))
    model.fit(x, epochs=1, batch_size=2, verbose=0)
    model.elbo(x) if model_name != "aae" else model.reconstruct(x)
    assert ran == []


def test_asarray_gives_c_contiguous_arrays_in_the_backends_dtype():
    """The GPU kernels index raw memory, so Fortran-ordered or strided input must come out C-contiguous."""
    be = mv.get_backend()
    for x in (np.asfortranarray(np.ones((3, 4), np.float32)), np.ones((4, 6), np.float32)[:, ::2]):
        out = be.asarray(x)
        assert out.flags.c_contiguous and out.dtype == np.float32
        np.testing.assert_array_equal(out, x)


def test_zeros_and_empty_take_the_backends_dtype_unless_another_is_asked_for():
    """Like asarray, zeros and empty default to the backend's dtype and keep a dtype that is given
    (nothing in microvae passes one yet, so no other test would see it dropped)."""
    be = mv.get_backend(dtype="float32")
    assert be.zeros((2, 3)).dtype == np.float32 and be.empty(4).dtype == np.float32
    assert be.zeros(3, dtype=np.int64).dtype == np.int64 and be.empty((2,), dtype=np.float64).dtype == np.float64
    assert not be.zeros((2, 3)).any()


def test_backend_instance_passes_through():
    be = mv.get_backend(dtype="float64")
    assert mv.get_backend(be) is be


# every model class, small: CVAE and ConvVAE rebuilt their config after the VAE's, and wrote the
# dtype and seed arguments back over what a Backend object had put there
SMALL_MODELS = {"VAE": lambda **kw: mv.VAE(8, (6,), 2, **kw), "CVAE": lambda **kw: mv.CVAE(8, 3, (6,), 2, **kw),
                "ConvVAE": lambda **kw: mv.ConvVAE((1, 4, 4), 2, **kw), "AAE": lambda **kw: mv.AAE(8, (6,), 2, **kw),
                "VRAE": lambda **kw: mv.VRAE(3, 4, 2, **kw),
                "HierarchicalVRAE": lambda **kw: mv.HierarchicalVRAE(3, 2, 4, 3, 2, **kw)}


@pytest.mark.parametrize("name", SMALL_MODELS)
def test_a_model_on_a_backend_object_records_that_backends_dtype_and_no_seed(name):
    build = SMALL_MODELS[name]
    be = mv.Backend("numpy", dtype="float64", seed=3)
    model = build(backend=be)  # dtype left at its default, float32: the backend's float64 is used
    assert model.backend is be and model.flat.data.dtype == np.float64
    assert model.config["dtype"] == "float64" and model.config["seed"] is None
    assert type(model)(**model.config).flat.data.dtype == np.float64
    assert build(dtype="float64", seed=3).config["seed"] == 3  # by name: the arguments as given


@pytest.mark.parametrize("spelling,expected", [("f8", "float64"), ("double", "float64"), (np.float64, "float64"),
                                               (float, "float64"), ("f4", "float32"), ("single", "float32")])
def test_any_numpy_spelling_of_the_two_dtypes_is_read(spelling, expected):
    assert mv.Backend(dtype=spelling).dtype == np.dtype(expected)
    assert mv.VAE(4, (3,), 2, dtype=spelling).config["dtype"] == expected


@pytest.mark.parametrize("dtype", ["float16", "abc", None, "int32"])
def test_other_dtypes_are_refused(dtype):
    with pytest.raises(ValueError, match=rf"dtype must be 'float32' or 'float64', got {dtype!r}"):
        mv.Backend(dtype=dtype)


@pytest.mark.parametrize("dtype", ["float16", "abc", 5, "int32"])
@pytest.mark.parametrize("build", [lambda dtype: mv.VAE(4, (3,), 2, dtype=dtype), lambda dtype: mv.AAE(4, (3,), 2, dtype=dtype),
                                   lambda dtype: mv.VRAE(2, 3, 2, dtype=dtype),
                                   lambda dtype: mv.VAE(4, (3,), 2, backend=mv.Backend(), dtype=dtype)],
                         ids=["VAE", "AAE", "VRAE", "VAE-on-a-Backend"])
def test_models_refuse_other_dtypes_as_the_backend_does(build, dtype):
    # a name NumPy does not know ("abc") gave NumPy's "data type 'abc' not understood"
    with pytest.raises(ValueError, match=rf"dtype must be 'float32' or 'float64', got {dtype!r}"):
        build(dtype)


def test_bad_dtype():
    with pytest.raises(ValueError, match="float32' or 'float64"):
        mv.get_backend(dtype="float16")


def test_seeded_generator_is_reproducible():
    a, b = mv.get_backend(seed=5), mv.get_backend(seed=5)
    np.testing.assert_array_equal(a.normal((3, 3)), b.normal((3, 3)))
    assert a.normal((2,)).dtype == np.float32
    # the same seed gives the same numbers in either dtype
    np.testing.assert_allclose(mv.get_backend(dtype="float64", seed=2).normal((4,)), mv.get_backend(seed=2).normal((4,)), rtol=1e-7)


@pytest.mark.skipif(gpu_available(), reason="a GPU is present, so CuPy is available")
def test_cupy_without_gpu_is_a_clear_error():
    with pytest.raises(mv.BackendUnavailable, match="CuPy"):
        mv.get_backend("cupy")
    with pytest.raises(mv.BackendUnavailable):
        mv.VAE(backend="cupy")


def test_layers_never_import_numpy_or_cupy_for_their_math():
    import pathlib

    layers = pathlib.Path(mv.__file__).parent / "layers"
    for path in layers.glob("*.py"):
        source = path.read_text()
        assert "import numpy" not in source and "import cupy" not in source, path.name


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("size", [1, 2, 7])
def test_orthogonal_draws_are_orthogonal_seeded_and_in_the_backends_dtype(size, dtype):
    q = mv.get_backend(dtype=dtype, seed=4).orthogonal(size)
    assert q.shape == (size, size) and q.dtype == np.dtype(dtype)
    np.testing.assert_allclose(q.T.astype(np.float64) @ q, np.eye(size), atol=1e-6 if dtype == "float32" else 1e-12)
    np.testing.assert_array_equal(mv.get_backend(dtype=dtype, seed=4).orthogonal(size), q)
    other_seed = mv.get_backend(dtype=dtype, seed=5).orthogonal(size)
    assert np.array_equal(other_seed, q) == (size == 1)  # the one 1×1 draw with R's diagonal positive is [[1]]


def test_draws_are_made_on_the_host_by_numpys_generator():
    """So a seed gives the same numbers on the GPU backend (tests/test_gpu_models.py holds whole
    models to that): the backend's generator is NumPy's, and to_device keeps the dtype."""
    be = mv.get_backend(dtype="float64", seed=8)
    assert isinstance(be.rng, np.random.Generator)
    np.testing.assert_array_equal(be.normal((2, 3)), np.random.default_rng(8).standard_normal((2, 3)))
    ints = np.arange(3)
    assert be.to_device(ints) is ints


def test_a_backends_seed_and_name_are_checked_as_everywhere_in_microvae():
    """Backend passed its seed to NumPy (True accepted, -1 refused as "expected non-negative
    integer"), and get_backend took "" and 0 for "no name", reading $MICROVAE_BACKEND."""
    from microvae.backend import Backend

    for seed, error in ((True, TypeError), ("1", TypeError), (-1, ValueError), (1.5, ValueError)):
        with pytest.raises(error, match=r"seed must be None or an integer >= 0, got"):
            Backend(seed=seed)
        with pytest.raises(error, match=r"seed must be None or an integer >= 0, got"):
            mv.layers.Dense(2, 3).build(seed=seed)
    np.testing.assert_array_equal(Backend(seed=3.0).normal((3,)), Backend(seed=3).normal((3,)))
    for name in ("", 0, False):
        with pytest.raises(ValueError, match=rf"backend must be 'numpy' or 'cupy', got {name!r}$"):
            mv.get_backend(name)


def test_without_cupy_the_error_says_what_to_install_from_pypi_and_from_a_checkout(monkeypatch):
    """'pip install microvae[gpu]' would ask the package index for a distribution that need not be this project."""
    import sys

    monkeypatch.setitem(sys.modules, "cupy", None)  # import cupy raises ImportError
    with pytest.raises(mv.BackendUnavailable, match=r"pip install cupy-cuda12x .*pip install -e '\.\[gpu\]'\) or use backend='numpy'"):
        mv.get_backend("cupy")


def test_without_hypothesis_microvae_testing_says_what_to_install(monkeypatch):
    import importlib
    import sys

    monkeypatch.setitem(sys.modules, "hypothesis", None)
    monkeypatch.delitem(sys.modules, "microvae.testing", raising=False)
    with pytest.raises(ImportError, match=r"needs hypothesis: pip install hypothesis \(in a microvae checkout, pip install -e '\.\[dev\]'"):
        importlib.import_module("microvae.testing")


@pytest.mark.parametrize("copier", ["copy", "deepcopy", "pickle"])
@pytest.mark.parametrize("bit_generator", ["PCG64", "MT19937"])
def test_a_backend_copies_and_pickles_with_its_generator_where_it_stands(copier, bit_generator):
    """deepcopy and pickle failed with "cannot pickle 'module' object" (the backend holds numpy),
    and copy.copy shared the generator, so drawing from the copy moved the original's stream.
    A copy now has the same name, dtype and kernels, and a generator of its own that starts
    where the original's stands, whichever bit generator was put in it."""
    import copy
    import pickle

    do = {"copy": copy.copy, "deepcopy": copy.deepcopy, "pickle": lambda b: pickle.loads(pickle.dumps(b))}[copier]
    original = mv.Backend("numpy", dtype="float64", seed=3, kernels="reference")
    original.rng = np.random.Generator(getattr(np.random, bit_generator)(3))
    original.normal(5)  # a stream part-way through
    twin = do(original)
    assert repr(twin) == repr(original) and twin.kernels is original.kernels and twin.rng is not original.rng
    assert type(twin.rng.bit_generator).__name__ == bit_generator
    drawn = twin.normal((2, 3))
    np.testing.assert_array_equal(original.normal((2, 3)), drawn)  # the copy's draw left the original where it was
    np.testing.assert_array_equal(do(mv.Backend("numpy", dtype="float32", seed=1)).uniform(4),
                                  mv.Backend("numpy", dtype="float32", seed=1).uniform(4))
