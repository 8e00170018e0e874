"""Dense(activation="relu") and the models' fuse_relu: a ReLU inside the Dense layer before it is
the same function, with the same parameters and gradients bit for bit, as the two layers apart.
(Its finite-difference checks are in test_layers.py, through testing.dense_layers, and in the
models' whole-objective checks, which run fused by default.)"""

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import microvae as mv
from microvae import testing
from microvae.layers.base import layer_from_spec, layer_to_spec


@settings(max_examples=40)
@given(batch=st.integers(1, 40), n_in=st.integers(1, 12), n_out=st.one_of(st.just(1), st.integers(2, 40)), bias=st.booleans(),
       dtype=st.sampled_from(["float32", "float64"]), seed=st.integers(0, 2**31))
def test_a_fused_relu_is_dense_then_relu_bit_for_bit(batch, n_in, n_out, bias, dtype, seed):
    """Y, dX, dW and db of Dense(activation="relu") equal those of Dense then ReLU exactly (the
    bias sum runs in NumPy's order), with and without a bias, in float32 and float64; and the
    layer's dY is left as it was."""
    fused = mv.Dense(n_in, n_out, init="he", bias=bias, activation="relu").build(dtype=dtype, seed=1)
    dense, relu = mv.Dense(n_in, n_out, init="he", bias=bias).build(dtype=dtype, seed=1), mv.ReLU().build(dtype=dtype)
    np.testing.assert_array_equal(fused.flat.data, dense.flat.data)  # the same initial values
    values = testing.normal_array(fused.flat.size, seed, dtype=np.dtype(dtype))
    fused.flat.data[...] = dense.flat.data[...] = values  # non-zero biases: some units off, some on
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((batch, n_in)).astype(dtype)
    dy = rng.standard_normal((batch, n_out)).astype(dtype)
    y = fused.forward(x)
    np.testing.assert_array_equal(y, relu.forward(dense.forward(x)))
    assert y.dtype == np.dtype(dtype)
    kept = dy.copy()
    np.testing.assert_array_equal(fused.backward(dy), dense.backward(relu.backward(dy)))
    np.testing.assert_array_equal(dy, kept)
    np.testing.assert_array_equal(fused.flat.grad, dense.flat.grad)
    assert fused.backward(dy, input_grad=False) is None
    np.testing.assert_array_equal(fused.flat.grad, dense.flat.grad)  # the parameter gradients all the same


def test_a_fused_relu_passes_no_gradient_through_an_inactive_unit():
    layer = mv.Dense(2, 3, activation="relu").build(dtype="float64")
    layer.params["W"][...] = [[1.0, -1.0, 0.0], [0.0, 0.0, 1.0]]
    layer.params["b"][...] = [0.0, 0.0, -5.0]
    y = layer.forward(np.array([[2.0, 1.0]]))  # pre-activations 2, −2, −4
    np.testing.assert_array_equal(y, [[2.0, 0.0, 0.0]])
    dx = layer.backward(np.array([[1.0, np.nan, np.inf]]))  # nothing reaches X or θ from the off units
    np.testing.assert_array_equal(dx, [[1.0, 0.0]])
    np.testing.assert_array_equal(layer.grads["W"], [[2.0, 0.0, 0.0], [1.0, 0.0, 0.0]])
    np.testing.assert_array_equal(layer.grads["b"], [1.0, 0.0, 0.0])


def test_activation_is_checked_kept_in_specs_and_shown():
    with pytest.raises(ValueError, match=r"activation must be one of \(None, 'relu'\).*got 'tanh'"):
        mv.Dense(2, 3, activation="tanh")
    layer = mv.Dense(5, 4, init="he", activation="relu")
    assert repr(layer) == "Dense(5, 4, init='he', activation='relu')"
    assert repr(mv.Dense(5, 4)) == "Dense(5, 4, init='glorot')"
    # every setting that differs from the default shows, and the repr rebuilds the layer
    for layer in (mv.Dense(5, 4, bias=False), mv.Dense(5, 4, init="he", bias=False, activation="relu")):
        assert "bias=False" in repr(layer) and eval("mv." + repr(layer)).get_config() == layer.get_config()
    assert layer.get_config()["activation"] == "relu" and mv.Dense(5, 4).get_config()["activation"] is None
    rebuilt = layer_from_spec(json.loads(json.dumps(layer_to_spec(mv.Sequential(layer, mv.Dense(4, 2))))))
    assert [l.activation for l in rebuilt.layers] == ["relu", None]
    old_spec = {"type": "Dense", "config": {"in_features": 5, "out_features": 4, "init": "he", "bias": True}}
    assert layer_from_spec(old_spec).activation is None  # specs written before the option: no ReLU inside


# the models ------------------------------------------------------------------------------
MODELS = {
    "vae": (lambda **kw: mv.VAE(6, (5, 4), 3, **kw), lambda rng: (rng.random((8, 6)),), 4),
    "cvae": (lambda **kw: mv.CVAE(6, 3, (5, 4), 2, condition_at="hidden", learned_prior=True, prior_hidden=4, **kw),
             lambda rng: (rng.random((8, 6)), rng.integers(0, 3, 8)), 5),
    "aae": (lambda **kw: mv.AAE(6, (5,), 2, encoder_type="gaussian", prior="mixture", num_classes=3, disc_hidden=(4,),
                                **kw),
            lambda rng: (rng.random((8, 6)), rng.integers(-1, 3, 8)), 3),
}


@pytest.mark.parametrize("name", MODELS)
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_fused_relus_change_nothing_but_the_layer_list(name, dtype):
    """fuse_relu=True (the default) puts every ReLU of the networks built from ``hidden`` inside
    the Dense layer before it: the same initial parameters, in the same order, and the same
    losses and parameters after training, to the last bit."""
    build, batch, relus = MODELS[name]
    fused, separate = build(dtype=dtype, seed=4), build(dtype=dtype, seed=4, fuse_relu=False)
    assert fused.config["fuse_relu"] is True and separate.config["fuse_relu"] is False
    layers = lambda m: [l for part in m.children().values() for l in part.layers]
    assert sum(isinstance(l, mv.ReLU) for l in layers(fused)) == 0
    assert sum(getattr(l, "activation", None) == "relu" for l in layers(fused)) == relus
    assert sum(isinstance(l, mv.ReLU) for l in layers(separate)) == relus
    assert [shape for _, _, shape in fused.flat.layout] == [shape for _, _, shape in separate.flat.layout]
    np.testing.assert_array_equal(fused.flat.data, separate.flat.data)
    data = batch(np.random.default_rng(0))
    histories = [m.fit(*data, epochs=2, batch_size=4, verbose=0, seed=5) for m in (fused, separate)]
    for key in fused.metric_names:
        assert histories[0][key] == histories[1][key], key
    np.testing.assert_array_equal(fused.flat.data, separate.flat.data)


@pytest.mark.parametrize("name", [*MODELS, "convvae"])
def test_checkpoints_from_before_fused_relus_load_with_separate_relus(name, tmp_path):
    """A checkpoint whose config has no fuse_relu (written before the option existed) holds
    separate ReLU layers, and so their parameter names: it loads as fuse_relu=False."""
    if name == "convvae":
        build, data = (lambda **kw: mv.ConvVAE(input_shape=(1, 8, 8), latent_dim=2, **kw),
                       (np.random.default_rng(3).uniform(0.05, 0.95, (16, 1, 8, 8)).astype(np.float32),))
    else:
        build, batch, _ = MODELS[name]
        data = batch(np.random.default_rng(3))
    model = build(seed=3, fuse_relu=False)
    model.fit(*data, epochs=1, batch_size=8, verbose=0)
    path = tmp_path / "old.npz"
    model.save(path)
    with np.load(path, allow_pickle=False) as stored:
        arrays = {k: stored[k] for k in stored.files}
    meta = json.loads(str(arrays["model"]))
    del meta["config"]["fuse_relu"]
    arrays["model"] = np.array(json.dumps(meta))
    old = tmp_path / "older.npz"
    np.savez(old, **arrays)
    assert "fuse_relu" not in json.loads(str(np.load(old, allow_pickle=False)["model"]))["config"]
    loaded = mv.load(old)
    assert loaded.config["fuse_relu"] is False and loaded.flat.layout == model.flat.layout
    np.testing.assert_array_equal(loaded.flat.data, model.flat.data)
    inputs = data[:1] if name == "aae" else data  # the AAE's labels are for training only
    np.testing.assert_array_equal(loaded.reconstruct(*inputs), model.reconstruct(*inputs))
    assert mv.load(path).config["fuse_relu"] is False  # written with the option: read as written


def test_a_fused_model_saves_and_loads_fused(tmp_path):
    model = mv.VAE(6, (5,), 2, seed=1)
    model.save(tmp_path / "m.npz")
    loaded = mv.load(tmp_path / "m.npz")
    assert loaded.config["fuse_relu"] is True and loaded.flat.layout == model.flat.layout
    assert [l.activation for l in loaded.encoder.layers] == ["relu", None]


def test_models_without_the_option_do_not_take_it():
    """The recurrent models inherit from VAE but have no Dense-ReLU networks: a checkpoint's
    config gets no fuse_relu there (it would not build), and the constructor refuses one."""
    assert mv.VRAE.config_from_checkpoint({"input_size": 3}) == {"input_size": 3}
    assert mv.VAE.config_from_checkpoint({"input_dim": 3}) == {"fuse_relu": False, "input_dim": 3}
    with pytest.raises(TypeError, match="fuse_relu"):
        mv.VRAE(3, 4, 2, fuse_relu=True)
