"""Every model on the ``backend="cupy"`` code path, on a real GPU where there is one and,
everywhere, through the CuPy emulation of tests/_cuda_emulation.py (device arrays are a NumPy
subclass that CuPy's rules apply to: a host array beside one is a TypeError; the
ElementwiseKernels are the GPU kernels' CUDA C++ compiled for the host). That path differs from
the NumPy one in more than the kernels (losses pick their kernels by the array's type, the
convolutions take the whole batch and no direct 3×3 route, results go back through asnumpy),
so the emulation runs it on machines without a GPU, CI's included.

Here, for each model and on each path (tests/_gpu.py): the same seed builds the same initial
model as on the NumPy backend; the float64 objective and every gradient entry equal the NumPy
backend's; the whole objective passes the finite-difference check; float32 training follows
the NumPy backend's; and what users call (encode, sample, the ELBO, the metrics, the
applications, checkpoints, the command line) gives the same host results. On a real GPU that
adds what the emulation cannot show: CUDA's own arithmetic and libraries (cuBLAS, CuPy's
reductions), device memory, and a NumPy function CuPy lacks or treats differently.
"""

import numpy as np
import pytest
from hypothesis import given, settings

import microvae as mv
from _cuda_emulation import leaves
from _gpu import GPU_PATHS, GpuPath
from _model_zoo import API, MODELS, randomize
from microvae import testing
from microvae.verify import gradcheck


@pytest.fixture(params=GPU_PATHS)
def gpu_path(request):
    path = GpuPath(request.param)
    with path.opened():
        yield path


def _both(build, dtype, path):
    """The same model (same seed) on the NumPy backend and on the GPU path: the same numbers."""
    on_cpu, on_gpu = build(backend="numpy", dtype=dtype, seed=3), build(backend="cupy", dtype=dtype, seed=3)
    assert on_gpu.backend.name == "cupy" and on_gpu.backend.kernels is path.kernels
    assert type(on_gpu.flat.data) is path.array_type
    np.testing.assert_array_equal(path.host(on_gpu.flat.data), on_cpu.flat.data)
    return on_cpu, on_gpu


@pytest.mark.parametrize("name", MODELS)
def test_objective_and_gradient_equal_the_numpy_backends(name, gpu_path):
    build, make_batch, kernels = MODELS[name]
    on_cpu, on_gpu = _both(build, "float64", gpu_path)
    batch = make_batch(np.random.default_rng(0))
    eps = on_cpu.fixed_noise(*batch, seed=1)
    for model in (on_cpu, on_gpu):
        randomize(model, 2)
    gpu_path.calls.clear()
    got = on_gpu.loss_and_grads(*batch, eps=eps)
    assert kernels <= set(gpu_path.calls), set(gpu_path.calls)
    want = on_cpu.loss_and_grads(*batch, eps=eps)
    np.testing.assert_allclose(float(got.loss), float(want.loss), rtol=1e-12)
    np.testing.assert_allclose(gpu_path.host(on_gpu.flat.grad), on_cpu.flat.grad, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("name", MODELS)
def test_the_reference_kernels_on_device_arrays_give_what_the_gpu_kernels_give(name, gpu_path, monkeypatch):
    """MICROVAE_KERNELS=reference on the GPU: the NumPy twins run on CuPy arrays (through
    array_module), with nothing host-only in them."""
    build, make_batch, kernels = MODELS[name]
    batch = make_batch(np.random.default_rng(0))
    results = []
    for kind in ("compiled", "reference"):
        monkeypatch.setenv("MICROVAE_KERNELS", kind)
        model = build(backend="cupy", dtype="float64", seed=3)
        randomize(model, 2)
        gpu_path.calls.clear()
        loss = float(model.loss_and_grads(*batch, eps=model.fixed_noise(*batch, seed=1)).loss)
        ran = set(gpu_path.calls)
        assert (kernels <= ran) if kind == "compiled" else not ran, (kind, ran)
        results.append((loss, model.flat.grad.get()))
    np.testing.assert_allclose(results[1][0], results[0][0], rtol=1e-12)
    np.testing.assert_allclose(results[1][1], results[0][1], rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("name", MODELS)
def test_whole_objective_gradient_on_the_gpu_path(name, gpu_path):
    build, make_batch, _ = MODELS[name]
    model = build(backend="cupy", dtype="float64", seed=5)
    randomize(model, 4)
    batch = make_batch(np.random.default_rng(1))
    # along random directions: the full check takes every parameter, slow through the emulation
    # (the test above holds every gradient entry to the NumPy backend's, which is fully checked)
    result = mv.check_model(model, *batch, seed=6, mode="directional", directions=4)
    assert result.passed(1e-6), f"{name}\n{result}"


@pytest.mark.parametrize("path_name", GPU_PATHS)
@settings(max_examples=10)
@given(config_and_batch=testing.vae_configs(), seed=testing.seeds())
def test_vae_whole_objective_gradient_on_the_gpu_path_over_drawn_configs(path_name, config_and_batch, seed):
    config, batch = config_and_batch
    rng = np.random.default_rng(seed)
    x = rng.random((batch, config["input_dim"]))
    if config["likelihood"] != "bernoulli":
        x = rng.standard_normal(x.shape)
    with GpuPath(path_name).opened():  # opened here: hypothesis refuses function-scoped fixtures
        model = mv.VAE(**{**config, "backend": "cupy"})
        randomize(model, seed % 1000)
        result = mv.check_model(model, x, seed=seed % 1000)  # every entry: these models are small
    assert result.passed(1e-6), f"{config}\n{result}"


PHASE_GROUPS = {"recon": "autoencoder", "disc": "discriminator", "gen": "generator"}


@pytest.mark.parametrize("prior", ["gaussian", "mixture"])
def test_aae_phases_equal_the_numpy_backends_and_pass_the_gradient_check(prior, gpu_path):
    def build(**kw):
        return mv.AAE(6, (5,), 2, encoder_type="gaussian", prior=prior, num_classes=3, disc_hidden=(4,), **kw)

    on_cpu, on_gpu = _both(build, "float64", gpu_path)
    rng = np.random.default_rng(0)
    x, y = rng.random((4, 6)), (rng.integers(-1, 3, 4) if prior == "mixture" else None)  # -1: unlabelled
    eps, real = rng.standard_normal((4, 2)), rng.standard_normal((4, 2))
    for model in (on_cpu, on_gpu):
        randomize(model, 2)
    for phase in ("recon", "disc", "gen"):
        losses = []
        for model in (on_cpu, on_gpu):
            model.flat.grad.fill(0)
            losses.append(model.phase_loss(phase, x, y, eps=eps, prior_samples=real))
        np.testing.assert_allclose(float(losses[1]), float(losses[0]), rtol=1e-12)
        np.testing.assert_allclose(gpu_path.host(on_gpu.flat.grad), on_cpu.flat.grad, rtol=1e-9, atol=1e-12)
        wrt, analytic = {}, {}
        for name, value, grad in on_gpu.parameter_groups()[PHASE_GROUPS[phase]].named():  # what the phase updates
            wrt[name], analytic[name] = value, grad.copy()

        def f():
            return on_gpu.phase_loss(phase, x, y, eps=eps, prior_samples=real, compute_grads=False)

        result = gradcheck(f, wrt, analytic, title=f"AAE {phase} phase")
        assert result.passed(1e-6), f"{phase}\n{result}"


@pytest.mark.parametrize("name", MODELS)
def test_float32_training_follows_the_numpy_backend(name, gpu_path):
    build, make_batch, _ = MODELS[name]
    on_cpu, on_gpu = _both(build, "float32", gpu_path)
    batch = make_batch(np.random.default_rng(7))
    batch = tuple(np.concatenate([b] * 3) for b in batch)  # a few batches per epoch
    gpu_path.calls.clear()
    histories = [model.fit(*batch, epochs=2, batch_size=4, seed=8, verbose=False) for model in (on_cpu, on_gpu)]
    assert gpu_path.calls["microvae_adam_update"] > 0
    np.testing.assert_allclose(histories[1]["loss"], histories[0]["loss"], rtol=1e-4)
    np.testing.assert_allclose(gpu_path.host(on_gpu.flat.data), on_cpu.flat.data, rtol=1e-3, atol=1e-5)
    # and what users call after training, which moves results back to the host
    first_two = [b[:2] for b in batch]
    encoded = on_gpu.encode(*first_two) if name.startswith("cvae") else on_gpu.encode(first_two[0])
    assert all(isinstance(a, np.ndarray) and np.isfinite(a).all() for a in encoded)


@pytest.mark.parametrize("values", [[3.0, -4.0, 1e-3], [3e200, -4e200], [3e-160, 4e-160], [3.0, np.inf], [1.0, np.nan]])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_clip_grad_norm_of_a_device_gradient_equals_the_hosts(values, dtype, gpu_path):
    """clip_grad_norm works on whatever array it is given (no host copy): a device gradient is
    scaled in place to the host's values, the out-of-range and non-finite cases included."""
    import cupy

    with np.errstate(over="ignore", under="ignore"):
        on_host = np.array(values, dtype=dtype)
    on_device = cupy.asarray(on_host)
    norms = [mv.clip_grad_norm(g, 0.5) for g in (on_host, on_device)]
    assert type(on_device) is gpu_path.array_type and isinstance(norms[1], float)
    np.testing.assert_equal(norms[1], norms[0])
    np.testing.assert_array_equal(on_device.get(), on_host)


@pytest.mark.parametrize("name", API)
def test_what_users_call_gives_host_results_equal_to_the_numpy_backends(name, gpu_path, tmp_path):
    """Encoding, decoding, sampling, the ELBO, evaluation, the metrics and the applications, on
    the GPU path: host NumPy arrays and Python numbers, as on the CPU, and the same values."""
    build, make_batch, calls = API[name]
    on_cpu, on_gpu = _both(build, "float64", gpu_path)
    for model in (on_cpu, on_gpu):
        randomize(model, 2)
    batch = make_batch(np.random.default_rng(3))
    want, got = calls(on_cpu, *batch), calls(on_gpu, *batch)
    assert want.keys() == got.keys()
    for key in want:
        for g, w in zip(leaves(got[key]), leaves(want[key]), strict=True):
            assert not isinstance(g, gpu_path.array_type), f"{key} handed a device array to the user"
            assert type(g) is type(w), (key, type(g), type(w))
            np.testing.assert_allclose(g, w, rtol=1e-9, atol=1e-12, err_msg=key)
    # a checkpoint written from the device loads onto either backend, and back
    on_gpu.save(tmp_path / "gpu.npz")
    for backend in ("numpy", "cupy"):
        loaded = mv.load(tmp_path / "gpu.npz", backend=backend)
        np.testing.assert_array_equal(gpu_path.host(loaded.flat.data), on_cpu.flat.data)


@pytest.mark.parametrize("argv", [["--model", "vae", "--hidden", "32"], ["--model", "cvae", "--hidden", "32"],
                                  ["--model", "convvae", "--batch-size", "50"], ["--model", "aae", "--prior", "mixture"],
                                  ["--model", "vrae", "--rnn-hidden", "8", "--data", "sinusoids"]],
                         ids=lambda argv: argv[1])
def test_the_command_line_trains_and_samples_on_the_gpu_path(argv, gpu_path, tmp_path):
    from microvae.cli import main

    assert main(["train", *argv, "--backend", "cupy", "--epochs", "1", "--limit", "200", "--out", str(tmp_path),
                 "--verbose", "0"]) == 0
    pictures = {p.name for p in tmp_path.glob("*.png") if p.stat().st_size > 0}
    assert "reconstructions.png" in pictures and ({"samples.png", "samples_by_class.png"} & pictures), pictures
    model = mv.load(tmp_path / "model.npz", backend="cupy")
    assert model.backend.name == "cupy" and model.epochs_trained == 1
    extra = ["--label", "2"] if argv[1] == "cvae" else ["--length", "16"] if argv[1] == "vrae" else []  # sprites: 3 classes
    assert main(["sample", str(tmp_path / "model.npz"), "-n", "4", "--backend", "cupy", "--out", str(tmp_path / "s.png"),
                 *extra]) == 0
    assert (tmp_path / "s.png").stat().st_size > 0
