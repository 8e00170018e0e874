"""Layers keep their last forward pass for backward, and only until no backward can follow:
``Layer.forget`` drops it, and the models call it after inference, evaluate, the metrics and
fit, so that no batch's activations stay held (a ConvVAE's last evaluate block held 113 MiB)."""

import numpy as np
import pytest

import microvae as mv
from _model_zoo import API, LAYERS, randomize
from microvae import applications, metrics


def _arrays_in(owner) -> dict:
    """{name: bytes} of the arrays ``owner`` holds in its own attributes (directly, or in a
    tuple, list or dict), whatever their names: parameters, gradients (a recurrent layer's
    dh0 among them, read after backward as grads are) and scratch buffers aside."""
    out = {}
    for name, value in vars(owner).items():
        if name in ("params", "grads", "dh0", "_scratch_store"):
            continue
        values = value.values() if isinstance(value, dict) else value if isinstance(value, (tuple, list)) else [value]
        sizes = [v.nbytes for v in values if isinstance(v, np.ndarray)]
        if sizes:
            out[name] = sum(sizes)
    return out


def held(model) -> dict:
    """{where: bytes} of the arrays of a forward pass that the model still holds: in its layers
    (and their record of the last pass's shape), and at the model's own level (its own
    attributes, its sampler's and its likelihood's), found by what they are, not by name."""
    out = {}
    for network in model.children().values():
        for path, module in network.named_modules():
            out.update({f"{path}.{name}": size for name, size in _arrays_in(module).items()})
            if module.__dict__.get("_out_shape") is not None:
                out[f"{path}._out_shape"] = 0
    for part in ("model", "sampler", "likelihood"):
        owner = model if part == "model" else model.__dict__.get(part)
        if owner is not None and not isinstance(owner, (str, dict)):
            out.update({f"{part}.{name}": size for name, size in _arrays_in(owner).items()})
    return out


def _calls(name):
    """(label, call) of every inference method a model of kind ``name`` has, on its batch."""
    sequences, aae = "vrae" in name, name == "aae"
    if aae:
        return [("encode", lambda m, b: m.encode(*b)), ("decode", lambda m, b: m.decode(np.zeros((2, m.latent_dim)))),
                ("reconstruct", lambda m, b: m.reconstruct(*b)), ("sample", lambda m, b: m.sample(2, seed=0)),
                ("evaluate", lambda m, b: m.evaluate(*b, seed=0)), ("prior_distance", lambda m, b: m.prior_distance(*b, seed=0)),
                ("metrics.reconstruction_error", lambda m, b: metrics.reconstruction_error(m, *b))]
    decode = (lambda m, b: m.decode(np.zeros((2, m.latent_dim)), b[0].shape[1])) if sequences else \
        (lambda m, b: m.decode(np.zeros((len(b[0]), m.latent_dim)), *b[1:]))
    sample = (lambda m, b: m.sample(2, b[0].shape[1], seed=0)) if sequences else \
        (lambda m, b: m.sample(len(b[0]), *b[1:], seed=0))
    return [("encode", lambda m, b: m.encode(*b)), ("decode", decode), ("reconstruct", lambda m, b: m.reconstruct(*b)),
            ("sample", sample), ("elbo", lambda m, b: m.elbo(*b, seed=0)), ("evaluate", lambda m, b: m.evaluate(*b, seed=0)),
            ("metrics.elbo", lambda m, b: metrics.elbo(m, b[0], y=b[1] if len(b) > 1 else None)),
            ("metrics.iwae_bound", lambda m, b: metrics.iwae_bound(m, b[0], k=2, y=b[1] if len(b) > 1 else None)),
            ("metrics.reconstruction_error", lambda m, b: metrics.reconstruction_error(m, b[0], y=b[1] if len(b) > 1 else None)),
            ("applications.denoise", lambda m, b: applications.denoise(m, b[0], y=b[1] if len(b) > 1 else None))]


def _filled(model, batch):
    """The model after a forward pass, whose caches a backward pass would read."""
    if isinstance(model, mv.AAE):
        model.phase_loss("recon", *batch, compute_grads=False)
    else:
        model.loss(*batch)
    assert held(model), "the forward pass cached nothing: this test would prove nothing"
    return model


@pytest.mark.parametrize("name", sorted(API))
def test_every_inference_method_leaves_no_forward_cache(name):
    build, batch_of, _ = API[name]
    model = build(dtype="float64", seed=0)
    randomize(model, 1)
    batch = batch_of(np.random.default_rng(0))
    for label, call in _calls(name):
        _filled(model, batch)
        call(model, batch)
        assert held(model) == {}, f"{label} left {held(model)}"


@pytest.mark.parametrize("name", ["vae", "convvae-pooling", "aae", "vrae-gru"])
def test_fit_leaves_no_forward_cache_and_the_next_step_is_unchanged(name):
    build, batch_of, _ = API[name]
    batch = batch_of(np.random.default_rng(0))
    data = (batch[0], np.array([0, 1, 2, 0])) if name == "aae" else batch  # a mixture prior's components
    model, twin = build(seed=0), build(seed=0)
    model.fit(*data, epochs=1, batch_size=2, verbose=0)
    assert held(model) == {}
    model.fit(*data, epochs=1, batch_size=2, verbose=0)  # the caches are rebuilt by the next forward pass
    twin.fit(*data, epochs=2, batch_size=2, verbose=0)
    np.testing.assert_array_equal(model.flat.data, twin.flat.data)


def test_a_layers_backward_after_forget_raises_and_a_new_pass_works():
    layer, shape = LAYERS["sequential"]
    layer = layer()
    layer.build(backend=mv.Backend("numpy", dtype="float64", seed=0))
    x = np.random.default_rng(0).random(shape)
    y = layer.forward(x)
    dy = np.ones_like(y)
    dx = layer.backward(dy)
    layer.forward(x)
    layer.forget()
    assert all(module.__dict__.get(name) is None for _, module in layer.named_modules() for name in module._FORWARD_CACHE)
    with pytest.raises(RuntimeError, match=r"backward called before forward \(since it was last built, or forget\(\)\)"):
        layer.backward(dy)
    layer.forward(x)
    np.testing.assert_array_equal(layer.backward(dy), dx)


@pytest.mark.parametrize("name", sorted(LAYERS))
def test_forget_drops_every_layers_cache(name):
    make, shape = LAYERS[name]
    layer = make()
    layer.build(backend=mv.Backend("numpy", dtype="float64", seed=0))
    layer.forward(np.random.default_rng(0).random(shape))
    layer.forget()
    left = {k: type(v).__name__ for _, m in layer.named_modules() for k, v in m.__dict__.items()
            if isinstance(v, (np.ndarray, dict)) and k not in ("params", "grads", "_scratch_store") and v is not None
            and (not isinstance(v, dict) or any(isinstance(a, np.ndarray) for a in v.values()))}
    assert left == {}, f"{name} still holds {left}"
