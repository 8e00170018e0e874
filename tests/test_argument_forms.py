"""Arguments whose order matters refuse a set or a dict; a choice named by a list is refused by name.

A set iterates in hash order, so ``output_padding={1, 0}`` used to become (0, 1) and
``hidden={512, 256}`` could build the layers in the other order, without a word. A list given
where a name is expected (``init=["he"]``) used to fail with Python's "unhashable type: 'list'",
which names no argument.
"""

import numpy as np
import pytest

import microvae as mv
import microvae.applications
import microvae.metrics
from microvae.checks import check_sizes, is_choice, is_sequence, is_unordered
from microvae.datasets import make_sinusoids, make_sprites

UNORDERED = [{1, 2}, frozenset({1, 2}), {1: 0, 2: 0}, {1: 0, 2: 0}.keys()]


@pytest.mark.parametrize("value", UNORDERED, ids=["set", "frozenset", "dict", "dict_keys"])
def test_is_unordered_names_sets_and_mappings(value):
    assert is_unordered(value)


@pytest.mark.parametrize("value", [(1, 2), [1, 2], np.array([1, 2]), range(2), "ab", 3])
def test_is_unordered_passes_sequences_and_scalars(value):
    assert not is_unordered(value)


@pytest.mark.parametrize("value, expected", [((1, 2), True), ([1, 2], True), (np.array([1, 2]), True), (range(2), True),
                                             ("ab", False), (b"ab", False), ({1, 2}, False), ({1: 0}, False), (3, False)])
def test_is_sequence_takes_ordered_iterables_only(value, expected):
    assert is_sequence(value) is expected


def test_is_choice():
    choices = {"he": 1, "glorot": 2}
    assert is_choice("he", choices) and is_choice("glorot", ("he", "glorot"))
    assert not is_choice("hee", choices)
    for unhashable in (["he"], np.array("he"), {"he": 1}):
        assert not is_choice(unhashable, choices)  # no TypeError from hashing


@pytest.mark.parametrize("make, unordered, pair", [
    (lambda v: mv.Conv2D(1, 2, kernel_size=v), {3, 5}, (3, 5)),
    (lambda v: mv.Conv2DTranspose(1, 2, kernel_size=v), {3, 5}, (3, 5)),
    (lambda v: mv.Conv2DTranspose(1, 2, kernel_size=3, stride=2, output_padding=v), {1, 0}, (1, 0)),
], ids=["conv kernel_size", "convT kernel_size", "convT output_padding"])
def test_pairs_refuse_sets(make, unordered, pair):
    with pytest.raises(TypeError, match=r"or a pair of them, got \{"):
        make(unordered)
    make(pair)  # the same values as a tuple are taken


def test_output_padding_keeps_the_written_order():
    layer = mv.Conv2DTranspose(1, 2, kernel_size=3, stride=2, output_padding=[1, 0])
    assert layer.output_padding == (1, 0)


def test_reshape_refuses_a_set():
    with pytest.raises(TypeError, match="Reshape needs a non-empty shape of positive ints"):
        mv.Reshape({7, 32})
    assert mv.Reshape([32, 7]).shape == (32, 7)


@pytest.mark.parametrize("hidden", [{512, 256}, {512: 1, 256: 2}])
def test_layer_sizes_refuse_a_set(hidden):
    with pytest.raises(TypeError, match="hidden must be a sequence of layer sizes"):
        check_sizes("hidden", hidden)
    with pytest.raises(TypeError, match="hidden must be a sequence of layer sizes"):
        mv.VAE(16, hidden=hidden, latent_dim=2)
    with pytest.raises(TypeError, match="disc_hidden must be a sequence of layer sizes"):
        mv.AAE(16, (8,), 2, disc_hidden=hidden)


def _vae_and_rows():
    return mv.VAE(6, (4,), 2, dtype="float64"), np.random.default_rng(0).random((3, 6))


@pytest.mark.parametrize("make, name", [
    (lambda v: mv.Dense(3, 2, init=v), "init"),
    (lambda v: mv.Conv2D(1, 2, 3, init=v), "init"),
    (lambda v: mv.VRAE(3, hidden_size=4, latent_dim=2, cell=v), "cell"),
    (lambda v: mv.Dense(3, 2, activation=v), "activation"),
    (lambda v: mv.Conv2D(1, 2, 3, padding=v), "padding"),
    (lambda v: mv.Conv2D(1, 2, 3, activation=v), "activation"),
    (lambda v: mv.ConvVAE((1, 4, 4), variant=v), "variant"),
    (lambda v: mv.CVAE(6, 3, (4,), 2, condition_at=v), "condition_at"),
    (lambda v: mv.AAE(6, (4,), 2, prior=v), "prior"),
    (lambda v: mv.AAE(6, (4,), 2, encoder_type=v), "encoder_type"),
    (lambda v: mv.AAE(6, (4,), 2).phase_loss(v, np.full((2, 6), 0.5)), "phase"),
    (lambda v: mv.EarlyStopping(mode=v), "mode"),
    (lambda v: mv.Backend(v), "backend"),
    (lambda v: mv.Backend("numpy", kernels=v), "kernels"),
    (lambda v: mv.VAE(6, (4,), 2).fit(np.full((4, 6), 0.5), epochs=1, optimizer=v, verbose=0), "optimizer"),
    (lambda v: mv.gradcheck(lambda: 0.0, {"a": np.zeros(2)}, {"a": np.zeros(2)}, mode=v), "mode"),
    (lambda v: mv.applications.add_noise(np.full((2, 3), 0.5), kind=v), "kind"),
    (lambda v: mv.applications.interpolate(*_vae_and_rows()[:1], _vae_and_rows()[1][0], _vae_and_rows()[1][1], 3, v), "method"),
    (lambda v: mv.metrics.reconstruction_error(*_vae_and_rows(), kind=v), "kind"),
    (lambda v: mv.metrics.anomaly_scores(*_vae_and_rows(), method=v), "method"),
])
@pytest.mark.parametrize("value", [["he"], np.array(["gru"]), np.array(["relu", "same"])], ids=["list", "array", "two"])
def test_a_choice_given_as_a_list_is_named(make, name, value):
    """An array of two names gave NumPy's "truth value of an array ... is ambiguous", naming no argument."""
    with pytest.raises(TypeError if name == "optimizer" else ValueError, match=f"{name} must be "):  # (an Optimizer, or a name)
        make(value)


def test_sprites_shapes_refuse_sets_and_lists_of_lists():
    with pytest.raises(TypeError, match="in label order"):
        make_sprites(n=4, shapes={"square", "ellipse"})
    with pytest.raises(TypeError, match="in label order"):
        make_sprites(n=4, shapes=5)
    with pytest.raises(ValueError, match=r"unknown shape \['square'\]"):
        make_sprites(n=4, shapes=[["square"]])


def test_sinusoid_ranges_refuse_sets():
    with pytest.raises(ValueError, match=r"freq_range must be a \(low, high\) pair"):
        make_sinusoids(n=4, freq_range={0.5, 2.0})


def test_plot_image_shape_refuses_a_set():
    plot = pytest.importorskip("microvae.plot")
    pytest.importorskip("matplotlib")
    with pytest.raises(ValueError, match=r"image_shape must be a tuple like \(H, W\)"):
        plot.plot_samples(np.zeros((2, 28 * 14)), image_shape={28, 14})


def test_fit_refuses_a_set_of_callbacks():
    model = mv.VAE(16, (8,), 2)
    x = np.random.default_rng(0).random((32, 16)).astype("f4")
    with pytest.raises(TypeError, match="callbacks must be a list of callbacks"):
        model.fit(x, epochs=1, batch_size=16, verbose=0, callbacks={mv.EarlyStopping(monitor="loss")})
    assert model.step == 0  # refused before any training step
