"""Settings changed on a live model (models/settings.py): each assignment is checked as the
constructor checks the argument, and written into the config, so that a checkpoint stores the
value in use and a resumed run continues exactly. Before, the config kept the constructor's
values: a KL-annealing callback's checkpoint stored β = 0 while the model trained with β = 1,
and the resumed run went back to β = 0 without a word."""

import math
import re

import numpy as np
import pytest

import microvae as mv
from _model_zoo import images, sequences
from microvae.layers.base import Layer
from microvae.models.base import Model
from microvae.models.settings import Setting

RNG = np.random.default_rng(0)

# name: (builder, training data, the setting a callback changes, its value after epoch e)
ANNEALED = {
    "vae, beta": (lambda: mv.VAE(6, (5,), 2, beta=0.0, seed=0), (images(RNG, 12, 6),), "beta", lambda e: min(1.0, 0.5 * e)),
    "vae, capacity": (lambda: mv.VAE(6, (5,), 2, capacity=0.5, seed=0), (images(RNG, 12, 6),), "capacity", lambda e: 0.5 * e),
    "cvae, beta_warmup": (lambda: mv.CVAE(6, 3, (5,), 2, seed=0), (images(RNG, 12, 6), RNG.integers(0, 3, 12)),
                          "beta_warmup", lambda e: 3 * e),
    "convvae, beta": (lambda: mv.ConvVAE((1, 4, 4), latent_dim=2, variant="strided", seed=0), (images(RNG, 6, 16),),
                      "beta", lambda e: 4.0 / e),
    "vrae, input_dropout": (lambda: mv.VRAE(3, 4, 2, seed=0), sequences(RNG, 6, 5, 3), "input_dropout", lambda e: 0.2 * e),
    "aae, mixture_std": (lambda: mv.AAE(6, (5,), 2, prior="mixture", num_classes=3, disc_hidden=(4,), seed=0),
                         (images(RNG, 12, 6),), "mixture_std", lambda e: 0.5 / e),
    "vae, likelihood": (lambda: mv.VAE(6, (5,), 2, likelihood="gaussian", seed=0), (images(RNG, 12, 6),), "likelihood",
                        lambda e: mv.Gaussian(-float(e))),
}


class _Schedule(mv.Callback):
    def __init__(self, name, value_after):
        self.name, self.value_after = name, value_after

    def on_epoch_end(self, model, epoch, record):
        setattr(model, self.name, self.value_after(epoch))


@pytest.mark.parametrize("case", ANNEALED)
def test_a_run_resumed_from_a_checkpoint_continues_with_the_settings_in_use(case, tmp_path):
    build, data, name, value_after = ANNEALED[case]
    options = dict(batch_size=4, verbose=0)
    whole = build()
    whole.fit(*data, epochs=4, callbacks=[_Schedule(name, value_after)], **options)
    first = build()
    path = tmp_path / "run.npz"
    first.fit(*data, epochs=2, callbacks=[_Schedule(name, value_after), mv.ModelCheckpoint(path)], **options)
    resumed = mv.load(path)
    assert repr(getattr(resumed, name)) == repr(value_after(2))  # what the schedule set last, not the constructor's
    resumed.fit(*data, epochs=2, callbacks=[_Schedule(name, value_after)], **options)
    for key in whole.history.keys():
        if key != "seconds":
            assert resumed.history[key] == whole.history[key], key
    np.testing.assert_array_equal(resumed.flat.data, whole.flat.data)


# name: (builder, setting, a valid new value, its form in the config)
VALID = [
    ("vae", lambda: mv.VAE(6, (5,), 2), "beta", np.float32(4.0), 4.0),
    ("vae", lambda: mv.VAE(6, (5,), 2), "beta_warmup", 10.0, 10),
    ("vae", lambda: mv.VAE(6, (5,), 2), "capacity", np.float64(3.0), 3.0),
    ("vae", lambda: mv.VAE(6, (5,), 2, capacity=1.0), "capacity_warmup", 7, 7),
    ("vae", lambda: mv.VAE(6, (5,), 2, likelihood="gaussian"), "likelihood", {"name": "gaussian", "logvar": -2.0},
     {"name": "gaussian", "logvar": -2.0}),
    ("cvae", lambda: mv.CVAE(6, 3, (5,), 2), "beta", 0.0, 0.0),
    ("convvae", lambda: mv.ConvVAE((1, 4, 4), latent_dim=2, variant="strided"), "capacity", 2, 2.0),
    ("vrae", lambda: mv.VRAE(3, 4, 2), "input_dropout", 0.5, 0.5),
    ("vrae", lambda: mv.VRAE(3, 4, 2, likelihood="gaussian"), "likelihood", mv.Gaussian(1.0), {"name": "gaussian", "logvar": 1.0}),
    ("hierarchical-vrae", lambda: mv.HierarchicalVRAE(3, segment_length=2, hidden_size=4, conductor_size=3, latent_dim=2),
     "beta", 0.25, 0.25),
    ("aae", lambda: mv.AAE(6, (5,), 2, disc_hidden=(4,)), "mixture_radius", 2, 2.0),
    ("aae", lambda: mv.AAE(6, (5,), 2, disc_hidden=(4,)), "mixture_std", 0.1, 0.1),
]


@pytest.mark.parametrize("model_name, build, name, value, stored", VALID, ids=[f"{v[0]}-{v[2]}" for v in VALID])
def test_a_setting_assigned_on_a_live_model_is_in_its_config_and_its_checkpoint(model_name, build, name, value, stored, tmp_path):
    model = build()
    setattr(model, name, value)
    assert model.config[name] == stored
    kept = model.config[name]  # plain JSON: a NumPy float in the config failed json.dumps (a dict or list: read-only)
    assert isinstance(kept, type(stored)) if isinstance(stored, (dict, list)) else type(kept) is type(stored)
    model.save(tmp_path / "m.npz")
    loaded = mv.load(tmp_path / "m.npz")
    assert loaded.config == model.config
    assert repr(getattr(loaded, name)) == repr(getattr(model, name))


# (builder, setting, a bad value, the error, its message); the old value must stay
INVALID = [
    (lambda: mv.VAE(6, (5,), 2), "beta", -1.0, ValueError, "beta must be a finite number >= 0"),
    (lambda: mv.VAE(6, (5,), 2), "beta", math.nan, ValueError, "beta must be a finite number >= 0"),
    (lambda: mv.VAE(6, (5,), 2), "beta", "1", TypeError, "beta must be a finite number >= 0"),
    (lambda: mv.VAE(6, (5,), 2), "beta_warmup", 2.5, ValueError, "beta_warmup must be an integer >= 0"),
    (lambda: mv.VAE(6, (5,), 2), "capacity", -0.5, ValueError, "capacity must be >= 0 nats or None"),
    (lambda: mv.VAE(6, (5,), 2), "capacity_warmup", 5, ValueError, "capacity_warmup=5 ramps up a capacity target, but capacity is None"),
    (lambda: mv.VAE(6, (5,), 2, capacity=1.0, capacity_warmup=5), "capacity", None, ValueError,
     "capacity=None would leave capacity_warmup=5 ramping up nothing"),
    (lambda: mv.VAE(6, (5,), 2), "likelihood", "gaussian", ValueError, "likelihood can change only to another of the same kind"),
    (lambda: mv.VAE(6, (5,), 2, likelihood="gaussian"), "likelihood", "gaussian-learned", ValueError,
     "same decoder outputs"),
    (lambda: mv.VAE(6, (5,), 2), "likelihood", "poisson", ValueError, "likelihood must be 'bernoulli'"),
    (lambda: mv.VRAE(3, 4, 2), "input_dropout", 1.0, ValueError, r"input_dropout must be in \[0, 1\)"),
    (lambda: mv.VRAE(3, 4, 2), "capacity", 1.0, AttributeError, "VRAE takes no 'capacity' option and keeps capacity=None"),
    (lambda: mv.VRAE(3, 4, 2), "capacity_warmup", 0, AttributeError, "VRAE takes no 'capacity_warmup' option"),
    (lambda: mv.AAE(6, (5,), 2, disc_hidden=(4,)), "mixture_std", 0.0, ValueError, "mixture_std must be a positive, finite number"),
    (lambda: mv.AAE(6, (5,), 2, disc_hidden=(4,)), "mixture_radius", math.inf, ValueError,
     "mixture_radius must be a positive, finite number"),
    (lambda: mv.AAE(6, (5,), 2, disc_hidden=(4,)), "beta", 1.0, None, None),  # no setting: a plain attribute
]


@pytest.mark.parametrize("build, name, value, error, message", INVALID,
                         ids=[f"{i}-{case[1]}" for i, case in enumerate(INVALID)])
def test_a_bad_setting_is_refused_by_name_and_the_model_keeps_its_value(build, name, value, error, message):
    model = build()
    if error is None:  # the AAE has no β: an attribute of that name is the user's own, and not stored
        setattr(model, name, value)
        assert name not in model.config
        return
    before, config = repr(getattr(model, name)), dict(model.config)
    with pytest.raises(error, match=message):
        setattr(model, name, value)
    assert repr(getattr(model, name)) == before
    assert model.config == config


def test_a_gaussians_variance_is_fixed_once_built_so_the_config_cannot_go_stale():
    """``model.likelihood.logvar = -2`` changed the loss while the config, and so every
    checkpoint, kept the old variance; a new Gaussian is assigned to the model instead."""
    model = mv.VAE(6, (5,), 2, likelihood="gaussian")
    with pytest.raises(AttributeError, match=r"logvar is fixed once built; .*model.likelihood = Gaussian\(-2\)"):
        model.likelihood.logvar = -2
    with pytest.raises(AttributeError):
        model.likelihood.learned = True
    assert model.likelihood.logvar == 0.0 and model.config["likelihood"] == "gaussian"
    model.likelihood = mv.Gaussian(-2)
    assert model.config["likelihood"] == {"name": "gaussian", "logvar": -2.0}
    x = RNG.random((3, 6))
    eps = RNG.standard_normal((3, 2))
    assert model.loss(x, eps=eps).recon == mv.VAE(6, (5,), 2, likelihood=mv.Gaussian(-2)).loss(x, eps=eps).recon


def test_a_models_repr_shows_the_settings_given_that_it_does_not_show_by_default():
    """`microvae train` prints the model's repr: a β warm-up, a capacity target, the AAE's number of
    mixture components or a VRAE's input dropout given on the command line were missing from it."""
    cases = [
        (mv.VAE(8, (4,), 2, beta=4, beta_warmup=1000, capacity=25), ["beta_warmup=1000", "capacity=25.0"]),
        (mv.AAE(8, (4,), 2, prior="mixture", num_classes=3), ["num_classes=3"]),
        (mv.VRAE(3, input_dropout=0.3), ["input_dropout=0.3"]),
        (mv.HierarchicalVRAE(3, segment_length=2, input_dropout=0.5), ["segment_length=2", "input_dropout=0.5"]),
        (mv.CVAE(6, 3, (4,), 2, learned_prior=True, prior_hidden=8), ["prior_hidden=8"]),
        (mv.ConvVAE((1, 8, 8), fuse_relu=False), ["fuse_relu=False"]),
    ]
    for model, shown in cases:
        text = repr(model)
        head, tail = text.split(", parameters=")
        assert all(f", {item}" in head for item in shown), text
        assert tail.startswith(f"{model.num_parameters}, backend=") and text.count("segment_length=") <= 1, text
    plain = repr(mv.VAE(8, (4,), 2))
    assert plain == ("VAE(input_dim=8, hidden=(4,), latent_dim=2, beta=1.0, likelihood='bernoulli', parameters=108, "
                     f"backend={mv.VAE(8, (4,), 2).backend!r})")  # defaults, the dtype and the seed add nothing
    model = mv.VAE(8, (4,), 2)
    model.beta_warmup = 50  # a live setting's value in use
    assert ", beta_warmup=50, parameters=" in repr(model)
    custom = mv.VAE(8, latent_dim=2, encoder=mv.Sequential([mv.Dense(8, 4)]))
    assert "encoder=" not in repr(custom)  # a network given as a spec would fill the line


ARCHITECTURE = [
    (lambda: mv.VAE(8, (4,), 2), ["input_dim", "hidden", "latent_dim", "input_shape"]),
    (lambda: mv.CVAE(6, 3, (4,), 2), ["num_classes", "condition_at", "learned_prior", "prior_hidden", "latent_dim"]),
    (lambda: mv.ConvVAE((1, 8, 8)), ["variant", "input_shape", "latent_dim"]),
    (lambda: mv.AAE(6, (4,), 2), ["input_dim", "hidden", "latent_dim", "disc_hidden", "input_shape", "encoder_type", "prior",
                                  "num_classes"]),
    (lambda: mv.VRAE(3), ["input_size", "hidden_size", "cell", "latent_dim"]),
    (lambda: mv.HierarchicalVRAE(3, segment_length=2), ["segment_length", "conductor_size", "hidden_size", "latent_dim"]),
]


@pytest.mark.parametrize("make, names", ARCHITECTURE, ids=lambda v: v if isinstance(v, list) else "")
def test_the_architecture_is_read_only_once_built_and_the_refusal_says_how_to_change_it(make, names):
    """model.latent_dim = 5 was taken: decode then wanted 5 columns, the layers 2, and fit blamed the encoder.
    The settings the objective reads (beta, ...) stay assignable (tests above)."""
    model = make()
    kind = type(model).__name__
    for name in names:
        before = getattr(model, name)
        with pytest.raises(AttributeError, match=rf"^{kind}\.{name} is fixed once the model is built \(its layers were made "
                                                 rf"from it\); (make a new model from its config: {kind}\(\*\*\{{\*\*model\.config, "
                                                 rf"'{name}': \.\.\.\}}\)|it follows from the constructor's arguments)"):
            setattr(model, name, 5)
        assert getattr(model, name) == before
    model.beta = 2.0  # a setting, not the architecture
    assert model.beta == 2.0


def test_a_new_model_from_the_config_as_the_refusal_advises_builds_the_other_architecture():
    model = mv.VAE(8, (4,), 2)
    other = mv.VAE(**{**model.config, "latent_dim": 5})
    assert other.latent_dim == 5 and other.decode(np.zeros((2, 5))).shape == (2, 8)
    assert mv.ConvVAE((1, 8, 8)).input_shape == (1, 8, 8) and mv.VAE(8, (4,), 2).input_shape == (8,)


@pytest.mark.parametrize("make", [make for make, _ in ARCHITECTURE], ids=[names[0] + "-model" for _, names in ARCHITECTURE])
def test_a_built_models_networks_cannot_be_swapped_for_others_that_would_not_train(make):
    """model.encoder = other.encoder was taken: the forward pass then ran the other network while
    the optimizer updated the old one's values in model.flat, and fit trained no encoder at all."""
    model, other = make(), make()
    kind = type(model).__name__
    children = model.children()
    assert children  # every model kind has networks to protect
    for name, child in children.items():
        with pytest.raises(AttributeError, match=rf"^{kind}\.{name} is fixed once the model is built: model\.flat holds its "
                                                 rf"parameters .* would not train; (pass it to the constructor: "
                                                 rf"{kind}\(\.\.\., {name}=network\)|make a new {kind})$"):
            setattr(model, name, getattr(other, name))
        assert getattr(model, name) is child
    for name, advice in (("backend", r"to move the model, save it and load it: microvae\.load\(path, backend=\.\.\.\)"),
                         ("flat", r"model\.flat\.data\[\.\.\.\] = values writes new values into it")):
        kept = getattr(model, name)
        with pytest.raises(AttributeError, match=rf"^{kind}\.{name} is fixed once the model is built \(.*\); {advice}$"):
            setattr(model, name, getattr(other, name))
        assert getattr(model, name) is kept


def test_a_vae_whose_encoder_swap_was_refused_trains_its_own_encoder_and_leaves_the_other_alone():
    x = RNG.random((32, 8))
    model, other = mv.VAE(8, (4,), 2, seed=0), mv.VAE(8, (4,), 2, seed=1)
    with pytest.raises(AttributeError):
        model.encoder = other.encoder
    first_weights = model.encoder.named_modules()
    path, first = next((path, layer) for path, layer in first_weights if "W" in layer.params)
    weights, others = first.params["W"].copy(), other.flat.data.copy()
    model.fit(x, epochs=1, batch_size=16, verbose=0)
    assert not np.array_equal(first.params["W"], weights), path
    assert np.array_equal(other.flat.data, others)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_a_models_dtype_is_fixed_once_built_and_the_advised_copy_converts_it(dtype):
    """model.dtype = 'float64' was taken and changed nothing: the parameters stayed float32."""
    model = mv.VAE(8, (4,), 2, dtype=dtype)
    assert model.backend.dtype == np.dtype(dtype) and model.flat.data.dtype == np.dtype(dtype)
    other_dtype = "float64" if dtype == "float32" else "float32"
    with pytest.raises(AttributeError, match=rf"^VAE\.dtype is fixed once the model is built \(its parameters are {dtype} "
                                             rf"arrays: model\.backend\.dtype\); make a new model from its config and copy "
                                             rf"the values: new = "
                                             rf"VAE\(\*\*\{{\*\*model\.config, 'dtype': \.\.\.\}}\); "
                                             rf"new\.flat\.data\[\.\.\.\] = model\.flat\.data$"):
        model.dtype = other_dtype
    assert "dtype" not in vars(model) and model.flat.data.dtype == np.dtype(dtype) and model.config["dtype"] == dtype
    new = mv.VAE(**{**model.config, "dtype": other_dtype})
    new.flat.data[...] = model.flat.data
    assert new.flat.data.dtype == np.dtype(other_dtype)
    x = RNG.random((3, 8))
    np.testing.assert_allclose(new.decode(new.encode(x)[0]), model.decode(model.encode(x)[0]), rtol=1e-5, atol=1e-6)


def test_seed_and_fuse_relu_are_fixed_once_built_and_say_what_to_use_instead():
    """Both were taken as new attributes that nothing read: the parameters had been drawn, and
    the layers built, from the constructor's values."""
    model = mv.VAE(8, (4,), 2, seed=3)
    with pytest.raises(AttributeError, match=r"^VAE\.seed is fixed once the model is built: config\['seed'\] is the seed "
                                             r"its initial parameters were drawn with; fit\(\.\.\., seed=n\) seeds .*"
                                             r"model\.backend\.seed\(n\) reseeds the model's generator$"):
        model.seed = 4
    with pytest.raises(AttributeError, match=r"^VAE\.fuse_relu is fixed once the model is built \(its layers were made from "
                                             r"it\); make a new model from its config: VAE\(\*\*\{\*\*model\.config, "
                                             r"'fuse_relu': \.\.\.\}\)$"):
        model.fuse_relu = False
    assert "seed" not in vars(model) and "fuse_relu" not in vars(model)
    assert model.config["seed"] == 3 and model.config["fuse_relu"] is True
    model.step, model.info = 7, {"note": "kept"}  # the state a run keeps is not fixed
    assert model.step == 7 and model.info == {"note": "kept"}


# a batch for each model of WITH_SEQUENTIALS, by class name
BATCHES = {
    "VAE": lambda rng: (images(rng, 8, 8),),
    "CVAE": lambda rng: (images(rng, 8, 6), np.arange(8) % 3),
    "ConvVAE": lambda rng: (images(rng, 4, 64),),
    "AAE": lambda rng: (images(rng, 8, 6),),
}


WITH_SEQUENTIALS = ARCHITECTURE[:4]  # the recurrent models hold their layers as attributes (refused above)


@pytest.mark.parametrize("make", [make for make, _ in WITH_SEQUENTIALS], ids=[names[0] + "-model" for _, names in WITH_SEQUENTIALS])
def test_a_layer_put_into_a_built_models_network_is_refused_by_fit_and_save(make, tmp_path):
    """model.encoder.layers[0] = another_layer was taken: the model computed with the new layer
    while Adam updated, and save wrote, the values of the one it replaced."""
    model = make()
    kind = type(model).__name__
    # the first layer with parameters inside a Sequential
    path, sequential, index = next((path, module, i) for path, module in model.named_modules()
                                   if isinstance(module, mv.Sequential) for i, layer in enumerate(module.layers)
                                   if layer.parameter_specs())
    where = f"{path}.{index}" if path else str(index)
    sequential.layers[index] = dict(make().named_modules())[where]  # same shape, another model's values
    saved = tmp_path / "model.npz"
    make().save(saved)
    on_disk, flat = saved.read_bytes(), model.flat.data.copy()
    refusal = (rf"^the networks of this {kind} changed after it was built: a {type(sequential.layers[index]).__name__} was "
               rf"put in at {re.escape(where)}\. model\.flat holds the values of the layers it was built with")
    with pytest.raises(RuntimeError, match=refusal):
        model.save(saved)
    assert saved.read_bytes() == on_disk
    batch = BATCHES[kind](np.random.default_rng(0))
    with pytest.raises(RuntimeError, match=refusal):
        model.fit(*batch, epochs=1, verbose=0)
    if hasattr(model, "loss_and_grads"):  # (the AAE's objective is a game of two steps: fit only)
        with pytest.raises(RuntimeError, match=refusal):
            model.loss_and_grads(*batch)
    assert np.array_equal(model.flat.data, flat) and model.step == 0 and not model.flat.grad.any()


# (change to a built VAE's networks, built with separate ReLU layers, what the refusal says)
CHANGES = [
    (lambda m: m.decoder.layers.__delitem__(1), r"the ReLU at decoder\.1 was taken out"),
    (lambda m: m.decoder.layers.insert(1, mv.Tanh().build()), r"a Tanh was put in at decoder\.1"),
    (lambda m: m.decoder.layers.append(mv.Tanh()), r"a Tanh was put in at decoder\.3"),
    (lambda m: m.decoder.layers.__setitem__(1, m.encoder.layers[1]), r"one ReLU object is at encoder\.1 and at decoder\.1"),
    (lambda m: m.decoder.layers.reverse(), r"the Dense built at decoder\.2 was moved to decoder\.0"),
]


@pytest.mark.parametrize("change, what", CHANGES, ids=["removed", "inserted", "appended", "shared", "reordered"])
def test_a_built_models_networks_changed_in_any_way_are_refused_by_name(change, what, tmp_path):
    """Only a layer with parameters put in was refused: a ReLU taken out trained and saved (and
    loaded back as the network built), and one ReLU at two places gave wrong encoder gradients."""
    x = RNG.random((16, 8))
    model = mv.VAE(8, (6,), 2, fuse_relu=False, dtype="float64")
    change(model)
    flat = model.flat.data.copy()
    refusal = rf"^the networks of this VAE changed after it was built: {what}\. model\.flat holds"
    for call in (lambda: model.fit(x, epochs=1, verbose=0), lambda: model.loss_and_grads(x),
                 lambda: model.save(tmp_path / "model.npz")):
        with pytest.raises(RuntimeError, match=refusal):
            call()
    assert np.array_equal(model.flat.data, flat) and not (tmp_path / "model.npz").exists()


class _TanhOnFirstCall(Layer):
    """A layer of one's own that makes its parameter-free child on its first forward pass."""

    def __init__(self):
        super().__init__()
        self.act = None

    def children(self):
        return {} if self.act is None else {"act": self.act}

    def forward(self, x):
        if self.act is None:
            self.act = mv.Tanh()
            self.act.backend = self.backend
        return self._output(self.act.forward(x))

    def backward(self, dy, input_grad=True):
        return self.act.backward(dy, input_grad=input_grad)


def test_a_parameter_free_child_a_layer_of_ones_own_makes_later_is_not_a_changed_network(tmp_path):
    """It holds nothing of model.flat, and its parent rebuilds from its own config; the second
    fit was refused ("a Tanh was put in at encoder.1.act"). In a library container it still is."""
    x = RNG.random((16, 8))
    model = mv.VAE(8, latent_dim=2, encoder=mv.Sequential(mv.Dense(8, 4), _TanhOnFirstCall()))
    model.fit(x, epochs=1, batch_size=8, verbose=0)
    assert isinstance(model.encoder.layers[1].act, mv.Tanh)
    model.fit(x, epochs=1, batch_size=8, verbose=0)
    model.save(tmp_path / "model.npz")
    model.encoder.layers.append(mv.Tanh())
    with pytest.raises(RuntimeError, match=r"^the networks of this VAE changed after it was built: a Tanh was put in at "
                                           r"encoder\.2\. "):
        model.fit(x, epochs=1, batch_size=8, verbose=0)


class _DenseThen(Layer):
    """A layer of one's own: a Dense, then a parameter-free activation it holds as a child."""

    def __init__(self, n_in, n_out):
        super().__init__()
        self.n_in, self.n_out = n_in, n_out
        self.dense, self.act = mv.Dense(n_in, n_out), mv.LeakyReLU(0.2)

    def get_config(self):
        return {"n_in": self.n_in, "n_out": self.n_out}

    def children(self):
        return {"dense": self.dense, "act": self.act}

    def forward(self, x):
        return self.act.forward(self.dense.forward(x))

    def backward(self, dy, input_grad=True):
        return self.dense.backward(self.act.backward(dy), input_grad=input_grad)


def test_another_parameter_free_child_put_in_place_of_one_a_layer_of_ones_own_was_built_with_is_refused(tmp_path):
    """Only a child made later is let through: a LeakyReLU(0) put in place of the LeakyReLU(0.2)
    passed fit and save, and the checkpoint loaded as the function built, not the one trained."""
    x = RNG.random((16, 8))
    model = mv.VAE(8, latent_dim=2, encoder=mv.Sequential(_DenseThen(8, 4), mv.Dense(4, 4)))
    model.fit(x, epochs=1, batch_size=8, verbose=0)
    flat = model.flat.data.copy()
    other = mv.LeakyReLU(0.0)
    other.backend = model.backend
    model.encoder.layers[0].act = other
    for call in (lambda: model.fit(x, epochs=1, batch_size=8, verbose=0), lambda: model.save(tmp_path / "model.npz")):
        with pytest.raises(RuntimeError, match=r"^the networks of this VAE changed after it was built: a LeakyReLU was put "
                                               r"in at encoder\.0\.act\. "):
            call()
    assert np.array_equal(model.flat.data, flat) and not (tmp_path / "model.npz").exists()
    model = mv.VAE(8, latent_dim=2, encoder=mv.Sequential(_DenseThen(8, 4), mv.Dense(4, 4)))
    model.encoder.layers[0].act.negative_slope = 0.0  # the same child, a setting changed: refused as before
    with pytest.raises(RuntimeError, match=r"encoder\.0\.act \(LeakyReLU\) now has negative_slope=0\.0 \(built with 0\.2\)"):
        model.fit(x, epochs=1, batch_size=8, verbose=0)


def test_a_subclass_of_a_built_in_layer_that_keeps_its_config_has_its_settings_checked(tmp_path):
    """MyDense(Dense) has Dense's get_config, so checkpoints rebuild it from that: an activation
    set to None later trained a linear layer that loaded with its ReLU."""

    class MyDense(mv.Dense):
        pass

    x = RNG.random((16, 8))
    model = mv.VAE(8, latent_dim=2, encoder=mv.Sequential(MyDense(8, 4, activation="relu"), mv.Dense(4, 4)))
    model.fit(x, epochs=1, batch_size=8, verbose=0)
    model.encoder.layers[0].activation = None
    with pytest.raises(RuntimeError, match=r"encoder\.0 \(MyDense\) now has activation=None \(built with 'relu'\)"):
        model.save(tmp_path / "model.npz")
    assert not (tmp_path / "model.npz").exists()


def test_a_models_flat_buffers_and_its_layers_view_dicts_cannot_be_replaced():
    """model.flat.data = values and layer.params = {...} were taken: the layers computed with
    the old views while the optimizer updated (and save wrote) the new arrays."""
    model = mv.VAE(8, (4,), 2)
    kept = model.flat.data, model.flat.grad
    for name in ("data", "grad"):
        with pytest.raises(AttributeError, match=rf"^FlatParameters\.{name} is fixed once allocated: the layers' params "
                                                 rf"and grads are views into data and grad, .*; write the values into it: "
                                                 rf"flat\.{name}\[\.\.\.\] = values$"):
            setattr(model.flat, name, getattr(model.flat, name).copy())
    for name, other in (("size", model.flat.size + 1), ("layout", list(model.flat.layout)), ("backend", object())):
        with pytest.raises(AttributeError, match=rf"^FlatParameters\.{name} is fixed once allocated: .*; build a new model$"):
            setattr(model.flat, name, other)
    assert model.flat.data is kept[0] and model.flat.grad is kept[1]
    dense = model.encoder.layers[0]
    for name in ("params", "grads"):
        views = getattr(dense, name)
        with pytest.raises(AttributeError, match=rf"^a built Dense's {name} are views into its flat buffer, .*; write the "
                                                 rf"values into the views: {name}\['W'\]\[\.\.\.\] = values$"):
            setattr(dense, name, {key: value.copy() for key, value in views.items()})
        assert getattr(dense, name) is views
    model.flat.grad *= 2  # in place: the same array comes back
    model.encoder.layers[0].params["W"] -= 0.0
    model.flat.data[...] = 0.5  # the way the refusals advise
    assert (dense.params["W"] == 0.5).all()
    assert mv.Dense(3, 2).params == {}  # unbuilt: an empty plain dict, as before


@pytest.mark.parametrize("make", [make for make, _ in ARCHITECTURE], ids=[names[0] + "-model" for _, names in ARCHITECTURE])
def test_a_models_config_is_read_only_and_follows_the_settings_set_on_the_model(make, tmp_path):
    """config["beta"] = 4 was saved and loaded back as β = 4 while the live model trained on
    with its own β; config["latent_dim"] = 3 wrote a checkpoint that did not load."""
    import copy
    import json

    model = make()
    config, before = model.config, dict(model.config)
    key = "latent_dim"
    for misuse in (lambda: config.__setitem__(key, 3), lambda: config.__delitem__(key), lambda: config.update({key: 3}),
                   lambda: config.setdefault("other", 1), lambda: config.pop(key), lambda: config.popitem(),
                   lambda: config.clear(), lambda: config.__ior__({key: 3})):
        with pytest.raises(TypeError, match=r"^model\.config is read-only: it records the model as built and the "
                                            r"settings in use, which checkpoints store; "):
            misuse()
    assert model.config == before and json.loads(json.dumps(model.config)) == before
    for copied in (dict(config), config.copy(), copy.copy(config), copy.deepcopy(config), {**config}):
        assert type(copied) is dict and copied == before
        copied[key] = 3  # a copy is the caller's own
    assert model.config[key] == before[key]
    model.save(tmp_path / "model.npz")
    assert mv.load(tmp_path / "model.npz").config == before


def test_a_setting_set_on_the_model_still_lands_in_its_read_only_config():
    model = mv.VAE(8, (4,), 2)
    with pytest.raises(TypeError, match=r"^model\.config is read-only: .*; set beta on the model: model\.beta = \.\.\. "
                                        r"\(checked, and written here\)$"):
        model.config["beta"] = 4.0
    model.beta = 4.0
    assert model.config["beta"] == 4.0 and model.beta == 4.0
    assert mv.VAE(**{**model.config, "latent_dim": 3}).latent_dim == 3  # the advised new model



NESTED_EDITS = [
    (lambda: mv.VAE(8, (6, 4), 2), lambda c: c["hidden"].append(64)),
    (lambda: mv.VAE(8, (6, 4), 2), lambda c: c["hidden"].__setitem__(0, 64)),
    (lambda: mv.VAE(8, (6, 4), 2), lambda c: c["hidden"].__iadd__([64])),
    (lambda: mv.ConvVAE((1, 8, 8), latent_dim=2), lambda c: c["input_shape"].reverse()),
    (lambda: mv.VAE(8, latent_dim=2, encoder=mv.Sequential(mv.Dense(8, 6), mv.ReLU(), mv.Dense(6, 4))),
     lambda c: c["encoder"]["config"]["layers"][0]["config"].__setitem__("activation", "relu")),
    (lambda: mv.VAE(8, latent_dim=2, encoder=mv.Sequential(mv.Dense(8, 6), mv.ReLU(), mv.Dense(6, 4))),
     lambda c: c["encoder"]["config"]["layers"].pop()),
]


@pytest.mark.parametrize("make, edit", NESTED_EDITS, ids=["append", "setitem", "iadd", "reverse", "spec-dict", "spec-list"])
def test_the_lists_and_dicts_inside_a_models_config_are_read_only_too(make, edit, tmp_path):
    """config["hidden"].append(64) was taken: the checkpoint then described a network the
    parameters did not fit, and load refused the file."""
    import copy

    model = make()
    before = copy.deepcopy(model.config)
    with pytest.raises(TypeError, match=r"^model\.config is read-only, its lists and dicts too \(.*\); edit a copy for a "
                                        r"new model: config = model\.config\.copy\(\), then type\(model\)\(\*\*config\)$"):
        edit(model.config)
    assert model.config == before
    model.save(tmp_path / "model.npz")
    assert mv.load(tmp_path / "model.npz").config == before
    def exact_types(value):  # what PyYAML's safe_dump takes: no subclass of dict or list anywhere
        if isinstance(value, (dict, list)):
            items = value.values() if isinstance(value, dict) else value
            return type(value) in (dict, list) and all(exact_types(item) for item in items)
        return True

    for copied in (model.config.copy(), copy.deepcopy(model.config)):  # the advised copy is writable all the way down
        assert exact_types(copied)
        edit(copied)
        assert copied != before and model.config == before


# (a change to one layer's settings on a built model, what the refusal names)
LAYER_SETTING_CHANGES = [
    (lambda: mv.VAE(8, (6,), 2), lambda m: setattr(m.encoder.layers[0], "activation", None),
     r"encoder\.0 \(Dense\) now has activation=None \(built with 'relu'\)"),
    (lambda: mv.VAE(8, latent_dim=2, encoder=mv.Sequential(mv.Dense(8, 6), mv.LeakyReLU(0.2), mv.Dense(6, 4))),
     lambda m: setattr(m.encoder.layers[1], "negative_slope", 0.0),
     r"encoder\.1 \(LeakyReLU\) now has negative_slope=0\.0 \(built with 0\.2\)"),
    (lambda: mv.ConvVAE((1, 8, 8), latent_dim=2), lambda m: setattr(m.encoder.layers[0], "stride", 2),
     r"encoder\.0 \(Conv2D\) now has stride=2 \(built with 1\)"),
]


@pytest.mark.parametrize("make, change, what", LAYER_SETTING_CHANGES, ids=["dense-activation", "leaky-slope", "conv-stride"])
def test_a_layer_setting_changed_on_a_built_model_is_refused_by_fit_and_save(make, change, what, tmp_path):
    """dense.activation = None was taken: the model ran linear, while its checkpoint loaded back
    with the ReLU it was built with (another function)."""
    model = make()
    change(model)
    flat = model.flat.data.copy()
    refusal = (rf"^the networks of this {type(model).__name__} changed after it was built: {what}\. Checkpoints rebuild "
               rf"the layers as built; make a new {type(model).__name__} with the network you want$")
    x = np.random.default_rng(0).random((4, model.input_dim))
    with pytest.raises(RuntimeError, match=refusal):
        model.fit(x, epochs=1, batch_size=4, verbose=0)
    with pytest.raises(RuntimeError, match=refusal):
        model.save(tmp_path / "model.npz")
    assert np.array_equal(model.flat.data, flat) and model.step == 0 and not (tmp_path / "model.npz").exists()


@pytest.mark.parametrize("key", ["latent_dim", "seed"])
def test_the_config_refusal_for_what_is_not_a_live_setting_names_the_models_class(key):
    """It advised model.latent_dim = ... (itself refused) and a placeholder ModelClass."""
    model = mv.CVAE(8, 3, (4,), 2)
    with pytest.raises(TypeError, match=rf"^model\.config is read-only: .*; {key!r} is not a setting to change on a live "
                                        rf"model: make a new model from a copy: CVAE\(\*\*\{{\*\*model\.config, {key!r}: "
                                        rf"\.\.\.\}}\)$"):
        model.config[key] = 3
    with pytest.raises(TypeError, match=r"a training setting is set on the model \(model\.<setting> = \.\.\.\), and a "
                                        r"copy makes a new model: CVAE\(\*\*\{\*\*model\.config, key: \.\.\.\}\)$"):
        model.config.update(beta=2.0)


@pytest.mark.parametrize("model, key", [(lambda: mv.CVAE(8, 3, (4,), 2), "brand_new"), (lambda: mv.VRAE(3, 4, 2), "capacity"),
                                        (lambda: mv.AAE(6, (4,), 2), "beta")])
def test_the_config_refusal_of_a_key_the_model_does_not_take_says_so(model, key):
    """It advised model.capacity = ... on a VRAE (refused: it takes no capacity) and a new AAE
    with a beta (which its constructor refuses)."""
    model = model()
    with pytest.raises(TypeError, match=rf"^model\.config is read-only: .*; {type(model).__name__} takes no {key!r} option "
                                        rf"\(its config holds input_"):
        model.config[key] = 2


def test_a_config_assigned_whole_that_gives_a_setting_or_a_size_another_value_is_refused_by_save(tmp_path):
    """model.config = {**model.config, "beta": 4} was saved as the run's β while the model ran
    with its own, and "latent_dim": 3 wrote a checkpoint that did not load."""
    x = RNG.random((16, 8))
    model = mv.VAE(8, (4,), 2)
    model.fit(x, epochs=1, batch_size=8, verbose=0)
    built = model.config.copy()
    model.config = {**built, "beta": 4.0}
    with pytest.raises(TypeError, match=r"model\.config holds beta=4\.0, but the model runs with beta=1\.0: a config "
                                        r"assigned whole \(model\.config = \.\.\.\) sets no setting; set model\.beta = "):
        model.save(tmp_path / "model.npz")
    model.config = {**built, "latent_dim": 3}
    with pytest.raises(TypeError, match=r"model\.config holds latent_dim=3, but the model was built with latent_dim=2: .* "
                                        r"make a new one from a copy: VAE\(\*\*\{\*\*model\.config, 'latent_dim': \.\.\.\}\)$"):
        model.save(tmp_path / "model.npz")
    assert not (tmp_path / "model.npz").exists()
    model.config = {**built, "hidden": (4,)}  # the same value in another JSON form: saved
    model.beta = 2.0
    model.save(tmp_path / "model.npz")
    assert mv.load(tmp_path / "model.npz").beta == 2.0


def test_a_setting_a_subclass_declares_before_its_config_holds_it_says_to_add_it_first():
    """The docstring had said to set the config "at the end", and following it gave "takes no
    'gamma' option", which the subclass plainly did."""

    class LateGammaVAE(mv.VAE):
        gamma = Setting(lambda model, value: (float(value), float(value)))

        def __init__(self, *args, gamma=1.0, **kwargs):
            super().__init__(*args, **kwargs)
            self.gamma = gamma
            self.config = {**self.config, "gamma": gamma}

    with pytest.raises(AttributeError, match=r"^LateGammaVAE\.gamma is a Setting, written into model\.config, which holds "
                                             r"no 'gamma' yet: add it first \(self\.config = \{\*\*self\.config, 'gamma': "
                                             r"\.\.\.\}\), then assign self\.gamma$"):
        LateGammaVAE(8, (4,), 2, gamma=2.0)
    with pytest.raises(AttributeError, match=r"^VRAE takes no 'capacity' option"):  # a built-in class's own: as before
        mv.VRAE(3, 4, 2).capacity = 1.0


class _GammaVAE(mv.VAE):
    """A subclass with a constructor argument of its own, set as the save() refusal advises."""

    def __init__(self, *args, gamma=1.0, **kwargs):
        super().__init__(*args, **kwargs)
        self.config = {**self.config, "gamma": gamma}
        self.gamma = gamma


class _GammaFirstVAE(mv.VAE):
    def __init__(self, *args, gamma=1.0, **kwargs):
        super().__init__(*args, **kwargs)
        self.gamma = gamma
        self.config = {**self.config, "gamma": gamma}


class _CheckedGammaVAE(mv.VAE):
    """Declared as a Setting: assignments are checked and written into the config."""

    gamma = Setting(lambda model, value: (float(value), float(value)))

    def __init__(self, *args, gamma=1.0, **kwargs):
        super().__init__(*args, **kwargs)
        self.config = {**self.config, "gamma": gamma}
        self.gamma = gamma


class _CyclicBetaVAE(mv.VAE):
    """beta as a property of the subclass's own (a cyclical schedule, say)."""

    @property
    def beta(self):
        return self.__dict__["beta"]

    @beta.setter
    def beta(self, value):
        mv.VAE.beta.__set__(self, value)


@pytest.mark.parametrize("cls", [_GammaVAE, _GammaFirstVAE, _CheckedGammaVAE])
def test_a_subclass_sets_and_changes_a_setting_of_its_own(cls, tmp_path):
    """Once built, every config key without a Setting or Fixed was refused, in the subclass's own
    __init__ too ("GammaVAE.gamma is fixed once the model is built (its layers were made from it)")."""
    model = cls(8, (4,), 2, gamma=2.0)
    model.gamma = 3.0  # a schedule of its own, in a callback
    assert model.gamma == 3.0
    model.save(tmp_path / "m.npz")
    loaded = mv.load(tmp_path / "m.npz")
    assert type(loaded) is cls
    assert loaded.gamma == (3.0 if cls is _CheckedGammaVAE else 2.0)  # only a Setting writes the config
    with pytest.raises(AttributeError, match=rf"^{cls.__name__}\.latent_dim is fixed once the model is built"):
        model.latent_dim = 3  # what the library built from still is fixed
    with pytest.raises(AttributeError, match=rf"^{cls.__name__}\.fuse_relu is fixed once the model is built"):
        model.fuse_relu = False


def test_a_subclass_property_over_a_setting_is_its_own_to_set():
    model = _CyclicBetaVAE(8, (4,), 2)
    model.beta = 2.0
    assert model.beta == 2.0 and model.config["beta"] == 2.0


class _AutoEncoderOfOwn(Model):
    """A Model of one's own, written to Model's contract, with a setting set after _setup."""

    def __init__(self, input_dim=6, code=2, noise=0.1, backend="numpy", dtype="float32", seed=0):
        super().__init__()
        self.net = mv.Sequential(mv.Dense(input_dim, code), mv.Dense(code, input_dim))
        self._setup(backend, dtype, seed, dict(input_dim=input_dim, code=code, noise=noise, dtype=dtype, seed=seed))
        self.noise = noise

    def children(self):
        return {"net": self.net}


def test_a_model_of_ones_own_sets_its_own_attributes_after_setup():
    model = _AutoEncoderOfOwn()
    model.noise = 0.2
    assert model.noise == 0.2
    with pytest.raises(AttributeError, match=r"^_AutoEncoderOfOwn\.net is fixed once the model is built: model\.flat holds "
                                             r"its parameters"):
        model.net = mv.Sequential(mv.Dense(6, 2), mv.Dense(2, 6))


def test_a_helper_module_outside_the_built_networks_may_be_replaced_and_the_same_object_set_again():
    """A parameter-free helper that is no child of the model was refused with "model.flat holds
    its parameters"; setting an attribute to the object it already holds changes nothing."""
    model = mv.VAE(8, (4,), 2)
    model.post = mv.Sigmoid()
    model.post = mv.Sigmoid()
    encoder, flat, backend = model.encoder, model.flat, model.backend
    model.encoder, model.flat, model.backend = encoder, flat, backend
    assert model.encoder is encoder and model.flat is flat and model.backend is backend
    with pytest.raises(AttributeError, match=r"^VAE\.encoder is fixed once the model is built"):
        model.encoder = mv.VAE(8, (4,), 2).encoder


def test_optimizer_spec_is_read_only_and_says_how_to_start_a_new_run():
    model = mv.VAE(8, (4,), 2)
    model.fit(np.random.default_rng(0).random((16, 8)), epochs=1, batch_size=8, verbose=0)
    with pytest.raises(AttributeError, match=r"^model\.optimizer_spec is read from the optimizers in use .*; fit\(\.\.\., "
                                             r"optimizer=\.\.\., lr=\.\.\.\) with other settings starts a new run, as does "
                                             r"fit after model\.optimizers = \{\}$"):
        model.optimizer_spec = None
    run = model.optimizers["model"]
    model.optimizers = {}
    model.fit(np.random.default_rng(0).random((16, 8)), epochs=1, batch_size=8, verbose=0)
    assert model.optimizers["model"] is not run and model.optimizers["model"].t == 2
