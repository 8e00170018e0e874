"""Tests for microvae.plot (skipped as a whole when matplotlib is missing)."""

import importlib
import os
import re
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from _absent import make_absent

pytest.importorskip("matplotlib")

import matplotlib.image as mpimg  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

import microvae.plot as mplot  # noqa: E402

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
SIDE = 6
D = SIDE * SIDE


class FakeModel:
    """Linear-Gaussian stand-in with the microvae model API."""

    def __init__(self, latent_dim=2, d=D, seed=0):
        rng = np.random.default_rng(seed)
        self.latent_dim = latent_dim
        self.w = rng.normal(size=(d, latent_dim))
        self.calls = []

    def encode(self, x):
        x = np.asarray(x, dtype=np.float64).reshape(len(x), -1)
        mu = (x - 0.5) @ self.w / self.w.shape[0]
        return mu, np.zeros_like(mu)

    def decode(self, z):
        z = np.asarray(z, dtype=np.float64)
        self.calls.append(z.copy())
        return 1.0 / (1.0 + np.exp(-(z @ self.w.T)))

    def reconstruct(self, x):
        return self.decode(self.encode(x)[0])

    def sample(self, n, seed=0):
        return self.decode(np.random.default_rng(seed).normal(size=(n, self.latent_dim)))


@pytest.fixture
def rng():
    return np.random.default_rng(1234)


@pytest.fixture
def model():
    return FakeModel()


def assert_png(path):
    """The file exists, is a PNG, decodes, and no temp file is left over."""
    assert os.path.isfile(path)
    assert os.path.getsize(path) > 0
    with open(path, "rb") as fh:
        assert fh.read(8) == PNG_MAGIC
    img = mpimg.imread(path)
    assert img.ndim == 3 and img.shape[2] in (3, 4)
    assert img.shape[0] > 10 and img.shape[1] > 10
    leftovers = [f for f in os.listdir(os.path.dirname(path)) if f.endswith(".tmp")]
    assert leftovers == []
    return img


def shown_image(fig, ax_index=0):
    """The array drawn by the first imshow on an axes of ``fig``."""
    return np.asarray(fig.axes[ax_index].images[0].get_array())


# --------------------------------------------------------------------------
# image_grid
# --------------------------------------------------------------------------

def test_image_grid_places_tiles_with_padding():
    tiles = np.stack([np.full((2, 3), k + 1.0) for k in range(5)])  # (5, 2, 3)
    grid = mplot.image_grid(tiles, nrow=3, pad=1, pad_value=-1.0)
    # 2 rows x 3 cols of 2x3 tiles, 1 px pad around and between.
    assert grid.shape == (2 * 3 + 1, 3 * 4 + 1)
    for k in range(5):
        r, c = divmod(k, 3)
        top, left = 1 + r * 3, 1 + c * 4
        np.testing.assert_array_equal(grid[top:top + 2, left:left + 3], k + 1.0)
    # Padding rows/cols and the unused last cell hold pad_value.
    assert np.all(grid[0] == -1) and np.all(grid[-1] == -1) and np.all(grid[3] == -1)
    assert np.all(grid[:, 0] == -1) and np.all(grid[:, 4] == -1)
    np.testing.assert_array_equal(grid[4:6, 9:12], -1.0)
    # Every tile pixel plus every pad pixel is accounted for.
    assert np.count_nonzero(grid != -1) == 5 * 6


def test_image_grid_no_padding_is_plain_tiling():
    tiles = np.arange(4 * 4, dtype=float).reshape(4, 2, 2)
    grid = mplot.image_grid(tiles, nrow=2, pad=0)
    expected = np.block([[tiles[0], tiles[1]], [tiles[2], tiles[3]]])
    np.testing.assert_array_equal(grid, expected)


def test_image_grid_accepts_all_layouts():
    flat = np.arange(3 * 16, dtype=float).reshape(3, 16)
    ref = mplot.image_grid(flat, nrow=3)  # inferred 4x4
    np.testing.assert_array_equal(mplot.image_grid(flat.reshape(3, 4, 4), nrow=3), ref)
    np.testing.assert_array_equal(mplot.image_grid(flat.reshape(3, 1, 4, 4), nrow=3), ref)
    np.testing.assert_array_equal(mplot.image_grid(flat.reshape(3, 4, 4, 1), nrow=3), ref)
    # Explicit non-square shape.
    rect = mplot.image_grid(flat, nrow=1, image_shape=(2, 8), pad=0)
    assert rect.shape == (6, 8)
    np.testing.assert_array_equal(rect[:2], flat[0].reshape(2, 8))
    # nrow larger than n: one row of n tiles.
    assert mplot.image_grid(flat, nrow=10, pad=0).shape == (4, 12)


def test_image_grid_784_and_1024_are_inferred_square():
    assert mplot.image_grid(np.zeros((1, 784)), nrow=1, pad=0).shape == (28, 28)
    assert mplot.image_grid(np.zeros((1, 1024)), nrow=1, pad=0).shape == (32, 32)


def test_image_grid_errors():
    with pytest.raises(ValueError, match="image_shape"):
        mplot.image_grid(np.zeros((2, 10)), nrow=2)  # 10 is not square
    with pytest.raises(ValueError, match="does not match image_shape"):
        mplot.image_grid(np.zeros((2, 10)), nrow=2, image_shape=(3, 3))
    with pytest.raises(ValueError, match="nrow"):
        mplot.image_grid(np.zeros((2, 4)), nrow=0)
    with pytest.raises(ValueError, match="pad"):
        mplot.image_grid(np.zeros((2, 4)), nrow=1, pad=-1)
    with pytest.raises(ValueError, match=r"1 \(grey\) or 3 \(RGB\) channels"):
        mplot.image_grid(np.zeros((2, 2, 4, 4)), nrow=1)
    with pytest.raises(ValueError, match="empty"):
        mplot.image_grid(np.zeros((0, 4)), nrow=1)


# --------------------------------------------------------------------------
# image figures
# --------------------------------------------------------------------------

def test_plot_reconstructions(tmp_path, rng, model):
    x = rng.random((12, D))
    out = tmp_path / "nested" / "dir" / "rec.png"  # parent dirs get created
    fig = mplot.plot_reconstructions(x, model.reconstruct(x), n=5, path=out,
                                     title="recon")
    assert isinstance(fig, Figure)
    assert_png(str(out))
    grid = shown_image(fig)
    # Two rows of five 6x6 tiles with 1 px padding; first tile is x[0].
    assert grid.shape == (2 * 7 + 1, 5 * 7 + 1)
    np.testing.assert_allclose(grid[1:7, 1:7], x[0].reshape(SIDE, SIDE))
    labels = [t.get_text() for t in fig.axes[0].get_yticklabels()]
    assert labels == ["input", "reconstruction"]


def test_plot_reconstructions_without_path_writes_nothing(tmp_path, rng):
    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:
        fig = mplot.plot_reconstructions(rng.random((3, D)), rng.random((3, D)))
    finally:
        os.chdir(cwd)
    assert isinstance(fig, Figure)
    assert list(tmp_path.iterdir()) == []


def test_plot_reconstructions_errors(rng):
    with pytest.raises(ValueError, match="same number of items"):
        mplot.plot_reconstructions(rng.random((4, D)), rng.random((3, D)))
    with pytest.raises(ValueError, match="image_shape"):
        mplot.plot_reconstructions(rng.random((4, 10)), rng.random((4, 10)))
    with pytest.raises(ValueError, match="differ in shape"):
        mplot.plot_reconstructions(rng.random((2, 16)), rng.random((2, 25)))
    # Non-square works once a shape is given.
    fig = mplot.plot_reconstructions(rng.random((4, 10)), rng.random((4, 10)),
                                     image_shape=(2, 5))
    assert isinstance(fig, Figure)


def test_plot_reconstructions_nchw(tmp_path, rng):
    x = rng.random((3, 1, 5, 7))
    fig = mplot.plot_reconstructions(x, x, path=tmp_path / "r.png")
    assert shown_image(fig).shape == (2 * 6 + 1, 3 * 8 + 1)
    assert_png(str(tmp_path / "r.png"))


def test_plot_samples(tmp_path, model):
    fig = mplot.plot_samples(model.sample(10), nrow=4, path=tmp_path / "s.png",
                             title="prior samples")
    assert isinstance(fig, Figure)
    assert_png(str(tmp_path / "s.png"))
    assert shown_image(fig).shape == (3 * 7 + 1, 4 * 7 + 1)
    with pytest.raises(ValueError, match="image_shape"):
        mplot.plot_samples(np.zeros((4, 12)))
    with pytest.raises(ValueError, match="nrow"):
        mplot.plot_samples(model.sample(4), nrow=0)


def test_plot_samples_overwrites_existing_file(tmp_path, model):
    out = tmp_path / "s.png"
    out.write_bytes(b"old")
    mplot.plot_samples(model.sample(4), path=str(out))
    assert_png(str(out))


@pytest.mark.parametrize("name,magic", [("s.png", b"\x89PNG"), ("s.PDF", b"%PDF-"), ("s.svg", b"<?xml"), ("s", b"\x89PNG")])
def test_pictures_are_written_in_the_format_their_suffix_names(tmp_path, model, name, magic):
    mplot.plot_samples(model.sample(4), path=tmp_path / name)
    assert (tmp_path / name).read_bytes().startswith(magic)


def test_picture_paths_that_cannot_be_written_are_refused_and_nothing_is_written(tmp_path, model):
    (tmp_path / "folder").mkdir()
    with pytest.raises(ValueError, match=r"matplotlib cannot write \.xyz files; use one of .*\.png.*, or no suffix for PNG"):
        mplot.plot_samples(model.sample(4), path=tmp_path / "s.xyz")
    with pytest.raises(ValueError, match=r"names a folder, not a file; give a file name, such as '.*folder/picture\.png'"):
        mplot.plot_samples(model.sample(4), path=tmp_path / "folder")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["folder"] and not any((tmp_path / "folder").iterdir())


# --------------------------------------------------------------------------
# latent grid
# --------------------------------------------------------------------------

def test_latent_axis_linear_and_quantile():
    lin = mplot._latent_axis(7, 3.0, "linear")
    np.testing.assert_allclose(lin, np.linspace(-3, 3, 7))
    q = mplot._latent_axis(7, 3.0, "quantile")
    assert q[0] == -3.0 and q[-1] == 3.0
    np.testing.assert_allclose(q, -q[::-1], atol=1e-12)  # symmetric
    assert abs(q[3]) < 1e-12
    gaps = np.diff(q)
    assert np.all(gaps > 0)
    assert gaps[3] < gaps[0]  # denser in the middle than linear spacing
    # Equal probability mass between neighbours under N(0, 1).
    from statistics import NormalDist
    cdf = np.array([NormalDist().cdf(v) for v in q])
    np.testing.assert_allclose(np.diff(cdf), np.diff(cdf)[0], rtol=1e-9)
    with pytest.raises(ValueError, match="spacing"):
        mplot._latent_axis(5, 3.0, "log")


@pytest.mark.parametrize("n", [2, 3, 6, 15])
@pytest.mark.parametrize("span", [8.3, 9.0, 40.0])
def test_quantile_axis_works_for_a_wide_span(n, span):
    """Past span ≈ 8.3, 1 − Φ(−span) rounds to exactly 1.0, and inv_cdf(1.0) raised
    StatisticsError from plot_latent_grid(spacing="quantile"). The axis is the lower half mirrored."""
    q = mplot._latent_axis(n, span, "quantile")
    assert q[0] == -span and q[-1] == span
    assert np.array_equal(q, -q[::-1]) and np.all(np.diff(q) > 0)
    if n % 2:
        assert q[n // 2] == 0.0 and not np.signbit(q[n // 2])


def test_plot_latent_grid_quantile_with_a_wide_span():
    fig = mplot.plot_latent_grid(lambda z: np.full((len(z), 16), 0.5), n=5, span=9.0, spacing="quantile")
    assert len(fig.axes) == 1


@pytest.mark.parametrize("spacing", ["linear", "quantile"])
def test_plot_latent_grid_model(tmp_path, model, spacing):
    fig = mplot.plot_latent_grid(model, n=5, span=2.0, spacing=spacing,
                                 path=tmp_path / "grid.png")
    assert isinstance(fig, Figure)
    assert_png(str(tmp_path / "grid.png"))
    (z,) = model.calls
    assert z.shape == (25, 2)
    assert z.min() == -2.0 and z.max() == 2.0
    assert shown_image(fig).shape == (5 * SIDE, 5 * SIDE)


def test_plot_latent_grid_orientation_with_callable():
    # Each decoded image is constant: z[0] + 10 * z[1].
    def decode(z):
        return np.repeat((z[:, 0] + 10 * z[:, 1])[:, None], 4, axis=1)

    fig = mplot.plot_latent_grid(decode, n=3, span=1.0)
    grid = shown_image(fig)  # 3x3 tiles of 2x2 pixels, no padding
    tile_values = grid[::2, ::2]
    expected = np.array([[-1 + 10, 0 + 10, 1 + 10],
                         [-1, 0, 1],
                         [-1 - 10, 0 - 10, 1 - 10]], dtype=float)
    np.testing.assert_allclose(tile_values, expected)


@pytest.mark.parametrize("spacing", ["linear", "quantile"])
def test_a_one_point_grid_or_traversal_is_the_centre(spacing, rng):
    """n=1 (linear) decoded z = (−span, −span) and steps=1 the code moved by −span: a corner,
    where the quantile grid gave the centre."""
    seen = []

    def decode(z):
        seen.append(np.array(z))
        return np.zeros((len(z), 4))

    mplot.plot_latent_grid(decode, n=1, span=3.0, spacing=spacing)
    np.testing.assert_array_equal(seen[0], [[0.0, 0.0]])
    model = FakeModel(latent_dim=2)
    x = rng.random(D)
    mplot.plot_traversal(model, x, dims=[0], steps=1, span=3.0)
    np.testing.assert_allclose(model.calls[0], model.encode(x[None])[0])  # the code itself


def test_pictures_refuse_items_without_pixels():
    with pytest.raises(ValueError, match=r"the items have no pixels \(shape \(2, 0\)\)"):
        mplot.plot_samples(np.zeros((2, 0)))
    with pytest.raises(ValueError, match="no pixels"):  # (a ZeroDivisionError in the figure size)
        mplot.plot_latent_grid(lambda z: np.zeros((len(z), 0)), n=2)


def test_plot_latent_grid_errors(model):
    with pytest.raises(ValueError, match="latent_dim=3"):
        mplot.plot_latent_grid(FakeModel(latent_dim=3))
    with pytest.raises(TypeError, match="decode"):
        mplot.plot_latent_grid(42)
    with pytest.raises(ValueError, match="spacing"):
        mplot.plot_latent_grid(model, n=3, spacing="cubic")
    with pytest.raises(ValueError, match="span"):
        mplot.plot_latent_grid(model, n=3, span=0)
    with pytest.raises(ValueError, match="expected a batch of 9"):
        mplot.plot_latent_grid(lambda z: np.zeros((2, 4)), n=3)
    with pytest.raises(ValueError, match="image_shape"):
        mplot.plot_latent_grid(lambda z: np.zeros((len(z), 12)), n=3)


# --------------------------------------------------------------------------
# interpolation and traversal
# --------------------------------------------------------------------------

def test_plot_interpolation(tmp_path, rng, model):
    x = rng.random((2, D))
    fig = mplot.plot_interpolation(model, x[0], x[1], steps=6,
                                   path=tmp_path / "interp.png")
    assert isinstance(fig, Figure)
    assert_png(str(tmp_path / "interp.png"))
    (z,) = model.calls
    mu, _ = model.encode(x)
    np.testing.assert_allclose(z[0], mu[0])
    np.testing.assert_allclose(z[-1], mu[1])
    np.testing.assert_allclose(np.diff(z, axis=0),
                               np.tile((mu[1] - mu[0]) / 5, (5, 1)))
    grid = shown_image(fig)
    assert grid.shape == (SIDE + 2, 8 * (SIDE + 1) + 1)  # x_a, 6 steps, x_b
    np.testing.assert_allclose(grid[1:1 + SIDE, 1:1 + SIDE], x[0].reshape(SIDE, SIDE))
    labels = [t.get_text() for t in fig.axes[0].get_xticklabels()]
    assert labels[0] == "x_a" and labels[-1] == "x_b" and labels[1] == "0.00"


def test_plot_interpolation_batch_of_one_and_errors(rng, model):
    x = rng.random((2, 1, D))
    assert isinstance(mplot.plot_interpolation(model, x[0], x[1], steps=3), Figure)
    with pytest.raises(ValueError, match="same shape"):
        mplot.plot_interpolation(model, rng.random(D), rng.random(D + 1))
    with pytest.raises(ValueError, match="steps"):
        mplot.plot_interpolation(model, x[0], x[1], steps=1)


def test_plot_traversal(tmp_path, rng):
    model = FakeModel(latent_dim=4)
    x = rng.random(D)
    fig = mplot.plot_traversal(model, x, dims=[0, 2], steps=5, span=1.5,
                               path=tmp_path / "trav.png")
    assert isinstance(fig, Figure)
    assert_png(str(tmp_path / "trav.png"))
    (z,) = model.calls
    mu = model.encode(x[None])[0][0]
    assert z.shape == (10, 4)
    # Row 0 moves only z[0], row 1 only z[2], around the code of x.
    np.testing.assert_allclose(z[:5, 0] - mu[0], np.linspace(-1.5, 1.5, 5))
    np.testing.assert_allclose(z[:5, 1:], np.tile(mu[1:], (5, 1)))
    np.testing.assert_allclose(z[5:, 2] - mu[2], np.linspace(-1.5, 1.5, 5))
    np.testing.assert_allclose(z[5:, [0, 1, 3]], np.tile(mu[[0, 1, 3]], (5, 1)))
    labels = [t.get_text() for t in fig.axes[0].get_yticklabels()]
    assert labels == ["z[0]", "z[2]"]


def test_plot_traversal_defaults_and_errors(rng):
    model = FakeModel(latent_dim=12)
    fig = mplot.plot_traversal(model, rng.random(D), steps=3)
    assert isinstance(fig, Figure)
    assert model.calls[0].shape == (10 * 3, 12)  # capped at the first 10 dims
    with pytest.raises(ValueError, match="out of range"):
        mplot.plot_traversal(model, rng.random(D), dims=[12])
    with pytest.raises(ValueError, match="steps"):
        mplot.plot_traversal(model, rng.random(D), steps=0)


class FakeAAE(FakeModel):
    """An adversarial autoencoder's API: ``encode`` gives the codes alone."""

    def encode(self, x):
        return super().encode(x)[0]


class FakeCVAE(FakeModel):
    """A conditional model's API: the label shifts the code."""

    needs_labels = True

    def encode(self, x, y):
        mu, logvar = super().encode(x)
        return mu + np.asarray(y, dtype=np.float64).reshape(-1, 1), logvar

    def decode(self, z, y):
        assert np.ndim(y) == 0  # one label for every row
        return super().decode(np.asarray(z) - float(y))


def test_plot_interpolation_and_traversal_of_an_aae(rng):
    model = FakeAAE(latent_dim=3)
    x = rng.random((2, D))
    mplot.plot_interpolation(model, x[0], x[1], steps=4)
    codes = model.encode(x)
    np.testing.assert_allclose(model.calls[0][[0, -1]], codes)
    mplot.plot_traversal(model, x[0], dims=[1], steps=3, span=1.0)
    np.testing.assert_allclose(model.calls[1][:, 1] - codes[0, 1], [-1, 0, 1], atol=1e-12)


def test_plot_interpolation_and_traversal_of_a_conditional_model(rng):
    model = FakeCVAE(latent_dim=2)
    x = rng.random((2, D))
    mplot.plot_interpolation(model, x[0], x[1], steps=3, y=2)
    mu = FakeModel.encode(model, x)[0]
    np.testing.assert_allclose(model.calls[0][[0, -1]], mu)  # encoded with +2, decoded with −2
    mplot.plot_traversal(model, x[0], dims=[0], steps=3, span=1.0, y=np.int64(2))
    np.testing.assert_allclose(model.calls[1][:, 1], mu[0, 1])
    with pytest.raises(TypeError, match="FakeCVAE is conditional: pass y"):
        mplot.plot_interpolation(model, x[0], x[1])
    with pytest.raises(TypeError, match="FakeCVAE is conditional: pass y"):
        mplot.plot_traversal(model, x[0])
    with pytest.raises(ValueError, match="one integer class label"):
        mplot.plot_traversal(model, x[0], y=1.5)
    with pytest.raises(TypeError, match="FakeModel is unconditional"):
        mplot.plot_traversal(FakeModel(), x[0], y=1)


def test_plot_latent_grid_of_a_conditional_model_decodes_with_the_given_class():
    model = FakeCVAE(latent_dim=2)
    mplot.plot_latent_grid(model, n=3, span=1.0, y=2)
    (z,) = model.calls  # the grid, shifted by −2 by FakeCVAE.decode's label
    assert z.shape == (9, 2) and z.min() == -3.0 and z.max() == -1.0
    with pytest.raises(TypeError, match="FakeCVAE is conditional: pass y"):
        mplot.plot_latent_grid(model, n=3)
    with pytest.raises(TypeError, match="FakeModel is unconditional"):
        mplot.plot_latent_grid(FakeModel(latent_dim=2), n=3, y=1)
    with pytest.raises(TypeError, match="a decode callable takes none"):
        mplot.plot_latent_grid(lambda z: np.zeros((len(z), D)), n=3, y=1)


def test_plot_latent_grid_of_a_real_cvae(tmp_path):
    import microvae as mv

    model = mv.CVAE(16, 3, (8,), 2, seed=0)
    fig = mplot.plot_latent_grid(model, n=4, y=1, path=tmp_path / "grid.png")
    assert isinstance(fig, Figure) and shown_image(fig).shape == (16, 16)
    assert_png(str(tmp_path / "grid.png"))


# --------------------------------------------------------------------------
# per-class samples
# --------------------------------------------------------------------------

def test_plot_samples_by_class(tmp_path, rng):
    imgs = rng.random((3, 4, D))
    fig = mplot.plot_samples_by_class(imgs, class_names=["a", "b", "c"],
                                      path=tmp_path / "cls.png")
    assert isinstance(fig, Figure)
    assert_png(str(tmp_path / "cls.png"))
    assert shown_image(fig).shape == (3 * 7 + 1, 4 * 7 + 1)
    labels = [t.get_text() for t in fig.axes[0].get_yticklabels()]
    assert labels == ["a", "b", "c"]
    # Ragged list input and default names.
    fig = mplot.plot_samples_by_class([rng.random((2, D)), rng.random((3, D))])
    labels = [t.get_text() for t in fig.axes[0].get_yticklabels()]
    assert labels == ["class 0", "class 1"]


def test_plot_samples_by_class_errors(rng):
    with pytest.raises(ValueError, match="class_names"):
        mplot.plot_samples_by_class(rng.random((2, 3, D)), class_names=["only one"])
    with pytest.raises(ValueError, match="image_shape"):
        mplot.plot_samples_by_class(rng.random((2, 3, 10)))
    with pytest.raises(ValueError, match="share one image shape"):
        mplot.plot_samples_by_class([rng.random((2, 16)), rng.random((2, 25))])
    with pytest.raises(ValueError, match="empty"):
        mplot.plot_samples_by_class([])


# --------------------------------------------------------------------------
# colour (3-channel) images
# --------------------------------------------------------------------------

CH, CW = 2, 4  # tile size; neither is 1 or 3, so no layout is ambiguous


def rgb_tiles(n=5, h=CH, w=CW):
    """(n, H, W, 3) tiles whose every value is distinct and names its place:
    1000 * image + 100 * channel + 10 * row + column."""
    k, y, x, c = np.meshgrid(np.arange(n), np.arange(h), np.arange(w), np.arange(3),
                             indexing="ij")
    return (1000 * k + 100 * c + 10 * y + x).astype(np.float64)


COLOUR_LAYOUTS = {
    "nchw": lambda t: (t.transpose(0, 3, 1, 2), None),
    "nhwc": lambda t: (t, None),
    "flat (3, H, W)": lambda t: (t.transpose(0, 3, 1, 2).reshape(len(t), -1), (3, CH, CW)),
    "flat (H, W, 3)": lambda t: (t.reshape(len(t), -1), (CH, CW, 3)),
    "nchw with image_shape": lambda t: (t.transpose(0, 3, 1, 2), (3, CH, CW)),
}


@pytest.mark.parametrize("layout", sorted(COLOUR_LAYOUTS))
def test_image_grid_colour_layouts_place_every_channel(layout):
    tiles = rgb_tiles()
    images, image_shape = COLOUR_LAYOUTS[layout](tiles)
    grid = mplot.image_grid(images, nrow=3, image_shape=image_shape, pad=1, pad_value=-1.0)
    assert grid.shape == (2 * (CH + 1) + 1, 3 * (CW + 1) + 1, 3)
    for k in range(5):
        r, c = divmod(k, 3)
        top, left = 1 + r * (CH + 1), 1 + c * (CW + 1)
        np.testing.assert_array_equal(grid[top:top + CH, left:left + CW], tiles[k])
    # The rest (padding and the unused last cell) is pad_value.
    assert np.count_nonzero(grid != -1) == tiles.size


def test_image_grid_colour_pad_value_fills_every_channel():
    grid = mplot.image_grid(np.zeros((3, 3, CH, CW)), nrow=2, pad=2, pad_value=0.25)
    assert grid.shape == (2 * (CH + 2) + 2, 2 * (CW + 2) + 2, 3)
    pad_mask = np.ones(grid.shape[:2], dtype=bool)
    for top, left in [(2, 2), (2, 2 + CW + 2), (2 + CH + 2, 2)]:  # the three tiles
        pad_mask[top:top + CH, left:left + CW] = False
    for ch in range(3):
        assert np.all(grid[..., ch][pad_mask] == 0.25)
        assert np.all(grid[..., ch][~pad_mask] == 0.0)
    # Also the unused last cell, in every channel.
    np.testing.assert_array_equal(grid[2 + CH + 2:2 + 2 * CH + 2, 2 + CW + 2:2 + 2 * CW + 2], 0.25)


def test_image_grid_ambiguous_layouts_follow_the_documented_rule():
    # (n, 3, H, 3): channel-first wins, so 3-channel H x 3 images, not 3 x H ones.
    nchw = np.arange(2 * 3 * 2 * 3, dtype=float).reshape(2, 3, 2, 3)
    grid = mplot.image_grid(nchw, nrow=2, pad=0)
    np.testing.assert_array_equal(
        grid, np.concatenate([nchw[0].transpose(1, 2, 0), nchw[1].transpose(1, 2, 0)], axis=1))
    # The same for flattened rows with image_shape (3, H, 3).
    flat = mplot.image_grid(nchw.reshape(2, -1), nrow=2, pad=0, image_shape=(3, 2, 3))
    np.testing.assert_array_equal(flat, grid)
    # A size-1 axis is the channel axis before a size-3 one, as before colour
    # support: (n, 3, H, 1) is grey NHWC 3 x H, (n, 1, H, 3) grey NCHW H x 3.
    nhwc_grey = np.arange(2 * 3 * 5, dtype=float).reshape(2, 3, 5, 1)
    np.testing.assert_array_equal(mplot.image_grid(nhwc_grey, nrow=2, pad=0),
                                  np.concatenate([nhwc_grey[0, ..., 0], nhwc_grey[1, ..., 0]], axis=1))
    nchw_grey = np.arange(2 * 5 * 3, dtype=float).reshape(2, 1, 5, 3)
    np.testing.assert_array_equal(mplot.image_grid(nchw_grey, nrow=2, pad=0),
                                  np.concatenate([nchw_grey[0, 0], nchw_grey[1, 0]], axis=1))
    # image_shape follows the same rule: (1, H, 3) is grey, (H, W, 1) grey too.
    assert mplot.image_grid(np.zeros((2, 15)), nrow=2, pad=0, image_shape=(1, 5, 3)).shape == (5, 6)
    assert mplot.image_grid(np.zeros((2, 15)), nrow=2, pad=0, image_shape=(5, 3, 1)).shape == (5, 6)


@pytest.mark.parametrize("shape", [(2, 2, 4, 4), (2, 4, 5, 5), (2, 5, 5, 2), (2, 5, 5, 4)])
def test_image_grid_refuses_other_channel_counts(shape):
    with pytest.raises(ValueError, match=r"1 \(grey\) or 3 \(RGB\) channels.*" + re.escape(str(shape))):
        mplot.image_grid(np.zeros(shape), nrow=1)


@pytest.mark.parametrize("image_shape", [(2, 4, 4), (4, 5, 5), (5, 5, 2), (5, 5, 4), (3, 4, 4, 1)])
def test_image_shape_refuses_other_channel_counts(image_shape):
    d = int(np.prod(image_shape))
    with pytest.raises(ValueError, match=r"\(C, H, W\) or \(H, W, C\).*C = 1 or 3"):
        mplot.image_grid(np.zeros((2, d)), nrow=1, image_shape=image_shape)


def test_colour_image_shape_errors():
    with pytest.raises(ValueError, match=r"image_shape \(3, 4, 4\) \(48 values\)"):
        mplot.image_grid(np.zeros((2, 47)), nrow=1, image_shape=(3, 4, 4))
    # NHWC images with a channel-first image_shape would be scrambled by a reshape.
    with pytest.raises(ValueError, match=r"items shaped \(4, 5, 3\) do not match image_shape \(3, 4, 5\)"):
        mplot.image_grid(np.zeros((2, 4, 5, 3)), nrow=1, image_shape=(3, 4, 5))
    with pytest.raises(ValueError, match=r"or \(3, H, W\) for colour"):
        mplot.image_grid(np.zeros((2, 3 * 4 * 4)), nrow=1)  # 48 is not a square


def drawn_rgb(fig):
    """The RGB array drawn by a figure's image, checked to be in [0, 1]."""
    shown = shown_image(fig)
    assert shown.ndim == 3 and shown.shape[2] == 3
    assert np.all(np.isfinite(shown)) and shown.min() >= 0.0 and shown.max() <= 1.0
    return shown


@pytest.fixture
def conv3():
    import microvae as mv

    return mv.ConvVAE((3, 8, 8), latent_dim=2, seed=0)


@pytest.fixture
def x3(rng):
    return rng.random((4, 3, 8, 8))


def hwc(a):
    return np.asarray(a, dtype=np.float64).transpose(1, 2, 0)


def test_plot_reconstructions_colour(tmp_path, conv3, x3):
    rec = conv3.reconstruct(x3)
    fig = mplot.plot_reconstructions(x3, rec, path=tmp_path / "r.png")
    assert_png(str(tmp_path / "r.png"))
    shown = drawn_rgb(fig)
    assert shown.shape == (2 * 9 + 1, 4 * 9 + 1, 3)
    np.testing.assert_allclose(shown[1:9, 1:9], hwc(x3[0]))  # values in [0, 1] drawn as they are
    np.testing.assert_allclose(shown[10:18, 10:18], hwc(rec[1]), rtol=1e-6)
    assert np.all(shown[0] == 1.0)  # padding (vmax) is white in every channel
    # Flattened rows with a channel-first image_shape give the same picture.
    flat = mplot.plot_reconstructions(x3.reshape(4, -1), rec, image_shape=(3, 8, 8))
    np.testing.assert_array_equal(shown_image(flat), shown)


def test_plot_samples_colour_scales_into_the_display_range(tmp_path):
    images = np.zeros((2, 3, 4, 4))
    images[0, 0] = -2.0  # red channel of the first image at the bottom of the range
    images[1, 2] = 3.0   # blue channel of the second at the top
    images[1, 1, 0, 0] = 0.5
    fig = mplot.plot_samples(images, nrow=2, path=tmp_path / "s.png")
    assert_png(str(tmp_path / "s.png"))
    shown = drawn_rgb(fig)
    # One range for all channels, [-2, 3]: v -> (v + 2) / 5.
    np.testing.assert_allclose(shown[1:5, 1:5, 0], 0.0)
    np.testing.assert_allclose(shown[1:5, 1:5, 1:], 0.4)
    np.testing.assert_allclose(shown[1:5, 6:10, 2], 1.0)
    np.testing.assert_allclose(shown[1, 6, 1], 0.5)
    np.testing.assert_allclose(shown[1, 7, 1], 0.4)


def test_plot_samples_colour_clips_infinite_values():
    images = np.full((1, 3, 4, 4), 0.5)
    images[0, 0, 0, 0] = np.inf
    images[0, 1, 0, 0] = -np.inf
    shown = drawn_rgb(mplot.plot_samples(images))
    np.testing.assert_array_equal(shown[1, 1], [1.0, 0.0, 0.5])


@pytest.mark.parametrize("height", [1, 3])
def test_plot_samples_colour_images_one_or_three_pixels_high(height):
    # Tiled as (n, H, W, 3) already: H of 1 or 3 must not be re-read as channels.
    images = np.arange(2 * 3 * height * 5, dtype=float).reshape(2, 3, height, 5)
    shown = drawn_rgb(mplot.plot_samples(images, nrow=2))
    assert shown.shape == (height + 2, 2 * 6 + 1, 3)
    lo, hi = images.min(), images.max()
    np.testing.assert_allclose(shown[1:1 + height, 7:12], (hwc(images[1]) - lo) / (hi - lo))


def test_plot_samples_of_a_colour_model(tmp_path, conv3):
    fig = mplot.plot_samples(conv3.sample(5, seed=3), nrow=3, path=tmp_path / "s.png")
    assert_png(str(tmp_path / "s.png"))
    shown = drawn_rgb(fig)
    assert shown.shape == (2 * 9 + 1, 3 * 9 + 1, 3)
    np.testing.assert_allclose(shown[10:18, 1:9], hwc(conv3.sample(5, seed=3)[3]), rtol=1e-6)


def test_plot_latent_grid_of_a_colour_model(tmp_path, conv3):
    fig = mplot.plot_latent_grid(conv3, n=3, span=1.0, path=tmp_path / "g.png")
    assert_png(str(tmp_path / "g.png"))
    shown = drawn_rgb(fig)
    assert shown.shape == (3 * 8, 3 * 8, 3)
    # Top left is z = (-span, +span); bottom right z = (+span, -span).
    np.testing.assert_allclose(shown[:8, :8], hwc(conv3.decode(np.array([[-1.0, 1.0]]))[0]), rtol=1e-6)
    np.testing.assert_allclose(shown[16:, 16:], hwc(conv3.decode(np.array([[1.0, -1.0]]))[0]), rtol=1e-6)


def test_plot_interpolation_of_a_colour_model(tmp_path, conv3, x3):
    fig = mplot.plot_interpolation(conv3, x3[0], x3[1], steps=3, path=tmp_path / "i.png")
    assert_png(str(tmp_path / "i.png"))
    shown = drawn_rgb(fig)
    assert shown.shape == (8 + 2, 5 * 9 + 1, 3)
    np.testing.assert_allclose(shown[1:9, 1:9], hwc(x3[0]))
    np.testing.assert_allclose(shown[1:9, 37:45], hwc(x3[1]))


def test_plot_traversal_of_a_colour_model(tmp_path, conv3, x3):
    fig = mplot.plot_traversal(conv3, x3[0], dims=[1], steps=3, span=1.0, path=tmp_path / "t.png")
    assert_png(str(tmp_path / "t.png"))
    shown = drawn_rgb(fig)
    assert shown.shape == (8 + 2, 3 * 9 + 1, 3)
    mu = conv3.encode(x3[:1])[0][0].astype(np.float64)
    np.testing.assert_allclose(shown[1:9, 1:9], hwc(conv3.decode((mu - [0.0, 1.0])[None])[0]),
                               rtol=1e-5, atol=1e-6)


def test_plot_samples_by_class_colour(tmp_path, conv3, x3):
    fig = mplot.plot_samples_by_class([x3[:3], conv3.sample(2, seed=0)], class_names=["a", "b"],
                                      path=tmp_path / "c.png")
    assert_png(str(tmp_path / "c.png"))
    shown = drawn_rgb(fig)
    assert shown.shape == (2 * 9 + 1, 3 * 9 + 1, 3)
    np.testing.assert_allclose(shown[1:9, 19:27], hwc(x3[2]))
    np.testing.assert_array_equal(shown[10:18, 19:27], 1.0)  # the short row's blank cell, all channels


def test_grey_and_colour_images_are_not_mixed_in_one_figure(rng, x3):
    with pytest.raises(ValueError, match="cannot mix grey and colour.*colour in x, grey in x_rec"):
        mplot.plot_reconstructions(x3, x3[:, 0])
    with pytest.raises(ValueError, match=r"colour in images_per_class\[1\], grey in images_per_class\[0\]"):
        mplot.plot_samples_by_class([x3[:, 0], x3])
    # The inputs are colour 2 x 6 images (36 values); FakeModel decodes grey 6 x 6 ones.
    x = rng.random((2, 3, 2, 6))
    with pytest.raises(ValueError, match="colour in x_a/x_b, grey in the decoded images"):
        mplot.plot_interpolation(FakeModel(), x[0], x[1], steps=2)


# --------------------------------------------------------------------------
# scatters
# --------------------------------------------------------------------------

def test_plot_latent_scatter_discrete_labels(tmp_path, rng):
    z = rng.normal(size=(60, 2))
    labels = rng.integers(0, 3, size=60)
    fig = mplot.plot_latent_scatter(z, labels, class_names=["zero", "one", "two"],
                                    path=tmp_path / "sc.png", title="codes")
    assert isinstance(fig, Figure)
    assert_png(str(tmp_path / "sc.png"))
    ax = fig.axes[0]
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert legend == ["zero", "one", "two"]
    assert ax.get_xlabel() == "z[0]" and ax.get_ylabel() == "z[1]"
    assert ax.get_title() == "codes"


def test_plot_latent_scatter_high_dim_continuous_and_onehot(tmp_path, rng):
    z = rng.normal(size=(40, 6))
    fig = mplot.plot_latent_scatter(z, rng.random(40), path=tmp_path / "c.png")
    assert_png(str(tmp_path / "c.png"))
    assert len(fig.axes) == 2  # scatter + colorbar
    assert "first 2 of 6 dims" in fig.axes[0].get_xlabel()
    assert "first 2 of 6 dims" in fig.axes[0].get_ylabel()
    onehot = np.eye(4)[rng.integers(0, 4, size=40)]
    fig = mplot.plot_latent_scatter(z, onehot)
    assert fig.axes[0].get_legend() is not None
    assert isinstance(mplot.plot_latent_scatter(z), Figure)  # no labels


def test_plot_latent_scatter_errors(rng):
    with pytest.raises(ValueError, match="at least 2 latent dimensions"):
        mplot.plot_latent_scatter(rng.normal(size=(10, 1)))
    with pytest.raises(ValueError, match="one label per code"):
        mplot.plot_latent_scatter(rng.normal(size=(10, 2)), np.zeros(9))
    with pytest.raises(ValueError, match=r"\(n, d\)"):
        mplot.plot_latent_scatter(rng.normal(size=10))
    # matplotlib drops NaN points without a word, and the float cast drops an imaginary part
    broken = rng.normal(size=(10, 2))
    broken[4, 0] = np.nan
    with pytest.raises(ValueError, match="z contains NaN or Inf"):
        mplot.plot_latent_scatter(broken)
    with pytest.raises(ValueError, match="prior_samples contains NaN or Inf"):
        mplot.plot_latent_vs_prior(rng.normal(size=(10, 2)), np.where(broken == broken, broken, np.inf))
    with pytest.raises(TypeError, match="expects real numbers .* for codes"):
        mplot.plot_latent_vs_prior(rng.normal(size=(10, 2)) + 0j, rng.normal(size=(10, 2)))
    # NumPy's own error ("'<' not supported between instances of 'NoneType' and 'str'") named no argument
    with pytest.raises(TypeError, match=r"labels must all be numbers or all strings .*got a mix of NoneType, str"):
        mplot.plot_latent_scatter(rng.normal(size=(3, 2)), np.array(["a", None, "b"], dtype=object))


def test_plot_latent_vs_prior(tmp_path, rng):
    codes = rng.normal(size=(50, 3)) * 0.5 + 1
    prior = rng.normal(size=(200, 3))
    fig = mplot.plot_latent_vs_prior(codes, prior, path=tmp_path / "aae.png")
    assert isinstance(fig, Figure)
    assert_png(str(tmp_path / "aae.png"))
    ax = fig.axes[0]
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert legend == ["prior samples", "encoded codes"]
    assert "first 2 of 3 dims" in ax.get_xlabel()
    fig = mplot.plot_latent_vs_prior(codes, prior, labels=rng.integers(0, 2, 50))
    assert isinstance(fig, Figure)
    with pytest.raises(ValueError, match="prior_samples"):
        mplot.plot_latent_vs_prior(codes, rng.normal(size=(5, 1)))


@pytest.mark.parametrize("d_codes, d_prior", [(2, 3), (3, 2)])
def test_plot_latent_vs_prior_refuses_codes_and_prior_samples_of_other_dimensions(rng, d_codes, d_prior):
    # their first two dimensions were drawn over each other without a word
    with pytest.raises(ValueError, match=rf"codes and prior_samples must have the same number of latent dimensions, "
                                         rf"got {d_codes} and {d_prior}"):
        mplot.plot_latent_vs_prior(rng.normal(size=(10, d_codes)), rng.normal(size=(20, d_prior)))


# --------------------------------------------------------------------------
# loss curves
# --------------------------------------------------------------------------

def _lines(ax):
    return {line.get_label(): line for line in ax.get_lines()}


def test_plot_loss_curves_dict(tmp_path):
    history = {"loss": [5, 4, 3], "val_loss": [6, 5, 4], "recon": [4, 3, 2.5],
               "kl": [1, 1, 0.5], "val_recon": [5, 4, 3.5], "val_kl": [1, 1, 0.5],
               "lr": [1e-3] * 3}
    fig = mplot.plot_loss_curves(history, path=tmp_path / "loss.png")
    assert isinstance(fig, Figure)
    assert_png(str(tmp_path / "loss.png"))
    total, parts = fig.axes
    assert set(_lines(total)) == {"loss", "val_loss"}
    assert set(_lines(parts)) == {"recon", "val_recon", "kl", "val_kl"}
    np.testing.assert_allclose(_lines(total)["loss"].get_xdata(), [1, 2, 3])
    np.testing.assert_allclose(_lines(parts)["kl"].get_ydata(), [1, 1, 0.5])
    assert _lines(total)["val_loss"].get_linestyle() == "--"


def test_plot_loss_curves_subset_and_list_of_dicts(tmp_path):
    fig = mplot.plot_loss_curves({"loss": [3.0, 2.0]})
    assert len(fig.axes) == 1
    rows = [{"epoch": 1, "loss": 3.0, "val_loss": 3.5},
            {"epoch": 2, "loss": 2.0},  # no validation this epoch
            {"epoch": 3, "loss": 1.5, "val_loss": 2.5, "kl": 0.3}]
    fig = mplot.plot_loss_curves(rows, path=tmp_path / "l.png")
    assert_png(str(tmp_path / "l.png"))
    total, parts = fig.axes
    val = _lines(total)["val_loss"]
    np.testing.assert_allclose(val.get_xdata(), [1, 3])
    np.testing.assert_allclose(val.get_ydata(), [3.5, 2.5])
    assert set(_lines(parts)) == {"kl"}


def test_plot_loss_curves_takes_the_history_that_fit_returns(tmp_path):
    import microvae as mv
    from microvae.training import History

    history = History([{"epoch": 1, "loss": 3.0, "recon": 2.5, "kl": 0.5, "val_loss": 3.2},
                       {"epoch": 2, "loss": 2.0, "recon": 1.7, "kl": 0.3}])
    fig = mplot.plot_loss_curves(history, path=tmp_path / "h.png")
    assert_png(str(tmp_path / "h.png"))
    total, parts = fig.axes
    np.testing.assert_allclose(_lines(total)["loss"].get_ydata(), [3.0, 2.0])
    np.testing.assert_allclose(_lines(total)["val_loss"].get_xdata(), [1])  # the epoch without one is skipped
    assert set(_lines(parts)) == {"recon", "kl"}
    model = mv.VAE(D, (4,), 2, seed=0)
    fitted = model.fit(np.random.default_rng(0).random((20, D)), epochs=2, batch_size=10, verbose=0)
    for h in {id(fitted): fitted, id(model.history): model.history}.values():
        assert len(_lines(mplot.plot_loss_curves(h).axes[0])["loss"].get_xdata()) == 2


def test_plot_loss_curves_titles_its_panels_by_what_they_show_and_draws_an_aaes_adversarial_losses():
    only_recon = mplot.plot_loss_curves({"loss": [3.0, 2.0], "recon": [3.0, 2.0]})
    assert [ax.get_title() for ax in only_recon.axes] == ["total loss", "reconstruction"]
    only_kl = mplot.plot_loss_curves({"kl": [1.0, 0.5]})
    assert [ax.get_title() for ax in only_kl.axes] == ["KL"]
    aae = {"loss": [5.0, 4.0], "recon": [5.0, 4.0], "disc": [1.4, 1.3], "gen": [0.7, 0.8], "val_disc": [1.5, 1.2]}
    fig = mplot.plot_loss_curves(aae)
    assert [ax.get_title() for ax in fig.axes] == ["reconstruction", "discriminator and generator"]  # its loss is recon
    assert set(_lines(fig.axes[1])) == {"disc", "val_disc", "gen"}
    np.testing.assert_allclose(_lines(fig.axes[1])["gen"].get_ydata(), [0.7, 0.8])


def test_plot_loss_curves_of_an_aae_that_fit_trained():
    import microvae as mv

    model = mv.AAE(D, hidden=(4,), latent_dim=2, disc_hidden=(3,), seed=0)
    history = model.fit(np.random.default_rng(0).random((20, D)), epochs=2, batch_size=10, verbose=0)
    fig = mplot.plot_loss_curves(history)
    assert [ax.get_title() for ax in fig.axes] == ["reconstruction", "discriminator and generator"]
    assert set(_lines(fig.axes[1])) == {"disc", "gen"}


def test_plot_loss_curves_errors():
    with pytest.raises(ValueError, match="none of the keys"):
        mplot.plot_loss_curves({"accuracy": [0.5, 0.6]})
    with pytest.raises(TypeError, match="history"):
        mplot.plot_loss_curves(3.0)
    with pytest.raises(TypeError, match="history"):
        mplot.plot_loss_curves([1.0, 2.0])


# --------------------------------------------------------------------------
# sequences and piano rolls
# --------------------------------------------------------------------------

def test_plot_sequences_lines(tmp_path, rng):
    x = rng.normal(size=(5, 20, 2))
    fig = mplot.plot_sequences(x, x + 0.1, n=3, path=tmp_path / "seq.png",
                               title="seqs")
    assert isinstance(fig, Figure)
    assert_png(str(tmp_path / "seq.png"))
    assert len(fig.axes) == 3
    styles = sorted(line.get_linestyle() for line in fig.axes[0].get_lines())
    assert styles == ["-", "-", "--", "--"]
    # (n, T) input is a single feature; no reconstruction is fine.
    fig = mplot.plot_sequences(rng.normal(size=(2, 15)))
    assert len(fig.axes) == 2 and len(fig.axes[0].get_lines()) == 1


def test_plot_sequences_without_reconstructions_labels_nothing_original(rng):
    """Samples drawn alone were labelled "original" in the legend (or the heatmap's title)."""
    one = mplot.plot_sequences(rng.normal(size=(2, 15)))
    assert one.axes[0].get_legend() is None
    two = mplot.plot_sequences(rng.normal(size=(2, 15, 2)))
    assert [t.get_text() for t in two.axes[0].get_legend().get_texts()] == ["f0", "f1"]
    many = mplot.plot_sequences(rng.random((2, 12, 9)))
    assert all(ax.get_title() != "original" for ax in many.axes)
    both = mplot.plot_sequences(rng.random((2, 12, 9)), rng.random((2, 12, 9)))
    assert [ax.get_title() for ax in both.axes if ax.images][:2] == ["original", "reconstruction"]


def test_plot_sequences_many_features_as_heatmaps(tmp_path, rng):
    x = rng.random((3, 12, 9))
    fig = mplot.plot_sequences(x, x[::-1], n=2, path=tmp_path / "h.png")
    assert_png(str(tmp_path / "h.png"))
    image_axes = [ax for ax in fig.axes if ax.images]
    assert len(image_axes) == 4  # 2 sequences x (original, reconstruction)
    assert shown_image(fig).shape == (9, 12)  # features x time


def test_plot_sequences_errors(rng):
    with pytest.raises(ValueError, match="same shape"):
        mplot.plot_sequences(rng.random((2, 10, 1)), rng.random((2, 11, 1)))
    with pytest.raises(ValueError, match=r"\(n, T, F\)"):
        mplot.plot_sequences(rng.random(10))


def test_plot_piano_roll(tmp_path, rng):
    rolls = (rng.random((3, 32, 12)) > 0.9).astype(np.float32)
    fig = mplot.plot_piano_roll(rolls, n=2, path=tmp_path / "roll.png")
    assert isinstance(fig, Figure)
    assert_png(str(tmp_path / "roll.png"))
    assert len(fig.axes) == 2
    shown = shown_image(fig)
    assert shown.shape == (12, 32)  # pitch on y, time on x
    np.testing.assert_array_equal(shown, rolls[0].T)
    assert fig.axes[0].images[0].origin == "lower"
    assert isinstance(mplot.plot_piano_roll(rolls[0]), Figure)  # single roll
    with pytest.raises(ValueError, match=r"\(n, T, P\)"):
        mplot.plot_piano_roll(rng.random(5))


# --------------------------------------------------------------------------
# optional dependency handling and global state
# --------------------------------------------------------------------------

def test_missing_matplotlib_gives_clear_import_error(monkeypatch):
    make_absent(monkeypatch, "matplotlib")
    with pytest.raises(ImportError, match=r"needs matplotlib: pip install matplotlib \(in a microvae checkout, pip install -e '\.\[plot\]'"):
        mplot._pyplot()
    with pytest.raises(ImportError, match="needs matplotlib"):
        mplot.plot_samples(np.zeros((1, 4)))


def test_module_imports_without_matplotlib(monkeypatch):
    import microvae

    # Re-importing rebinds microvae.plot; have monkeypatch put it back.
    monkeypatch.setattr(microvae, "plot", mplot, raising=False)
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    monkeypatch.delitem(sys.modules, "microvae.plot")
    fresh = importlib.import_module("microvae.plot")
    assert fresh is not mplot
    assert callable(fresh.image_grid)
    # Pure-NumPy helper still works.
    assert fresh.image_grid(np.ones((2, 4)), nrow=2, pad=0).shape == (2, 4)
    with pytest.raises(ImportError, match="needs matplotlib"):
        fresh._pyplot()


def test_no_pyplot_state_used(tmp_path):
    """Drawing must not import pyplot (no global figure registry, no GUI)."""
    script = textwrap.dedent(f"""
        import sys
        import numpy as np
        import microvae.plot as p
        assert "matplotlib" not in sys.modules
        p.plot_samples(np.zeros((4, 16)), path={str(tmp_path / "x.png")!r})
        assert "matplotlib" in sys.modules
        assert "matplotlib.pyplot" not in sys.modules
    """)
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = dict(os.environ, PYTHONPATH=root + os.pathsep + os.environ.get("PYTHONPATH", ""))
    env.pop("MPLBACKEND", None)
    result = subprocess.run([sys.executable, "-c", script], env=env,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert_png(str(tmp_path / "x.png"))


# --------------------------------------------------------------------------
# what the figures draw (found by a mutation review)
# --------------------------------------------------------------------------

def test_plot_reconstructions_draws_the_reconstructions_below_on_one_scale(rng, model):
    x = rng.random((3, D))
    rec = model.reconstruct(x) * 3.0  # beyond [0, 1]: the display range covers both rows
    fig = mplot.plot_reconstructions(x, rec)
    grid = shown_image(fig)
    np.testing.assert_allclose(grid[8:14, 8:14], rec[1].reshape(SIDE, SIDE))
    assert fig.axes[0].images[0].get_clim() == (min(x.min(), rec.min()), max(x.max(), rec.max()))


def test_plot_latent_grid_tick_labels_name_each_row_and_column():
    fig = mplot.plot_latent_grid(lambda z: np.zeros((len(z), 4)), n=3, span=1.0)
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["-1", "0", "1"]  # z[0], left to right
    assert [t.get_text() for t in ax.get_yticklabels()] == ["1", "0", "-1"]  # z[1], top to bottom


def test_scatters_draw_z0_against_z1(rng):
    z = rng.normal(size=(30, 3))
    labels = np.arange(30) % 2
    (points,) = mplot.plot_latent_scatter(z).axes[0].collections
    np.testing.assert_array_equal(points.get_offsets(), z[:, :2])
    for k, points in enumerate(mplot.plot_latent_scatter(z, labels).axes[0].collections):
        np.testing.assert_array_equal(points.get_offsets(), z[labels == k, :2])
    prior = rng.normal(size=(50, 3))
    cloud, codes = mplot.plot_latent_vs_prior(z, prior).axes[0].collections
    np.testing.assert_array_equal(cloud.get_offsets(), prior[:, :2])
    np.testing.assert_array_equal(codes.get_offsets(), z[:, :2])


def test_plot_loss_curves_takes_train_prefixed_keys():
    total, parts = mplot.plot_loss_curves({"train_loss": [3.0, 2.0], "val_loss": [3.5, 2.5],
                                           "train_recon": [2.0, 1.5], "train_kl": [1.0, 0.5]}).axes
    np.testing.assert_allclose(_lines(total)["loss"].get_ydata(), [3.0, 2.0])
    np.testing.assert_allclose(_lines(total)["val_loss"].get_ydata(), [3.5, 2.5])
    assert set(_lines(parts)) == {"recon", "kl"}


def test_plot_loss_curves_puts_the_epoch_column_on_the_x_axis():
    """A history's own epoch numbers (a run resumed at epoch 3, say) are the x values."""
    (total,) = mplot.plot_loss_curves({"epoch": [3, 4, 5], "loss": [3.0, 2.0, 1.5]}).axes
    np.testing.assert_allclose(_lines(total)["loss"].get_xdata(), [3, 4, 5])


# --------------------------------------------------------------------------
# what the figures draw (a second mutation review)
# --------------------------------------------------------------------------

def test_grey_images_are_drawn_light_on_dark_with_light_separators(rng):
    """Module docstring: grey images use the ``gray`` colormap (1 is white), and the tiles of a
    sample grid are separated by lines of the display range's top (white), as in the
    reconstructions; a reversed colormap or dark separators drew unnoticed."""
    x = rng.random((4, D)) * 3.0  # a display range of the data's own: (min, max)
    fig = mplot.plot_samples(x, nrow=2)
    image = fig.axes[0].images[0]
    assert image.get_cmap().name == "gray"
    vmin, vmax = image.get_clim()
    grid = shown_image(fig)
    assert vmax == x.max() and vmin == x.min()
    assert np.all(grid[0] == vmax) and np.all(grid[:, 0] == vmax) and np.all(grid[SIDE + 1] == vmax)


def test_constant_images_get_a_display_range_around_their_value():
    """A constant picture outside [0, 1] (e.g. an untrained Gaussian decoder's output) gets the
    range value ± 0.5: with vmin == vmax a colour picture divided by zero into NaNs."""
    grey = mplot.plot_samples(np.full((2, 16), 5.0))
    assert grey.axes[0].images[0].get_clim() == (4.5, 5.5)
    colour = mplot.plot_samples(np.full((2, 3, 2, 2), -2.0))
    rgb = shown_image(colour)
    assert np.all(np.isfinite(rgb))
    np.testing.assert_allclose(rgb[1:3, 1:3], 0.5)  # a tile sits mid-range


def test_plot_latent_grid_labels_every_tile_up_to_15_then_9_and_names_its_spacing():
    """The CLI's 15×15 grid has a coordinate under every column; a larger grid gets 9 evenly
    placed labels. The title names the spacing, which changes what the coordinates mean."""
    decode = lambda z: np.zeros((len(z), 4))  # noqa: E731
    ax = mplot.plot_latent_grid(decode, n=15, span=3.0).axes[0]
    assert len(ax.get_xticklabels()) == 15 and len(ax.get_yticklabels()) == 15
    assert ax.get_title() == "decoded latent grid (linear spacing)"
    ax = mplot.plot_latent_grid(decode, n=16, span=3.0, spacing="quantile").axes[0]
    assert len(ax.get_xticklabels()) == 9 and len(ax.get_yticklabels()) == 9
    assert [t.get_text() for t in ax.get_xticklabels()][::8] == ["-3", "3"]
    assert ax.get_title() == "decoded latent grid (quantile spacing)"
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("z[0]", "z[1]")


def test_plot_traversal_and_interpolation_name_their_x_axes(rng):
    """A traversal's columns are labelled with their offsets, left to right from −span; the
    axes say what the columns are."""
    model = FakeModel(latent_dim=2)
    ax = mplot.plot_traversal(model, rng.random(D), dims=[1], steps=3, span=2.0).axes[0]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["-2.0", "+0.0", "+2.0"]
    assert ax.get_xlabel() == "offset from the code of x"
    x = rng.random((2, D))
    assert mplot.plot_interpolation(model, x[0], x[1], steps=3).axes[0].get_xlabel() == "interpolation weight t"


def test_discrete_labels_up_to_20_get_a_legend_of_distinct_colours(rng):
    """Up to 20 integer classes get a legend (MNIST-style 10 and more), one distinct colour each
    (tab20 past 10: tab10's colours would repeat); 21 get a colorbar."""
    z = rng.normal(size=(60, 2))
    labels = np.arange(60) % 15
    fig = mplot.plot_latent_scatter(z, labels)
    ax = fig.axes[0]
    assert len(fig.axes) == 1 and len(ax.get_legend().get_texts()) == 15
    colours = {tuple(np.round(c.get_facecolor()[0][:3], 6)) for c in ax.collections}
    assert len(colours) == 15
    fig = mplot.plot_latent_scatter(z, np.arange(60) % 21)
    assert len(fig.axes) == 2 and fig.axes[0].get_legend() is None  # a colorbar instead
    assert fig.axes[1].get_ylabel() == "label"
    assert mplot.plot_latent_scatter(z).axes[0].get_title() == "latent codes"


def test_plot_latent_vs_prior_keeps_the_aspect_equal(rng):
    """The codes are judged against the prior's shape: one unit is as long on both axes."""
    ax = mplot.plot_latent_vs_prior(rng.normal(size=(20, 2)) * [1, 5], rng.normal(size=(50, 2))).axes[0]
    assert ax.get_aspect() == 1.0


def test_plot_loss_curves_colours_each_term_and_its_validation_alike():
    """In the second panel recon and KL differ in colour; val_X is drawn in X's colour (dashed).
    Short histories get a marker per epoch, long ones a plain line."""
    (parts,) = mplot.plot_loss_curves({"recon": [3, 2], "val_recon": [4, 3], "kl": [1, 2], "val_kl": [2, 2]}).axes
    lines = _lines(parts)
    assert lines["recon"].get_color() != lines["kl"].get_color()
    assert lines["val_recon"].get_color() == lines["recon"].get_color()
    assert lines["val_kl"].get_color() == lines["kl"].get_color()
    assert lines["recon"].get_marker() == "o"
    (long,) = mplot.plot_loss_curves({"loss": list(range(31))}).axes[0].get_lines()
    assert long.get_marker() in (None, "None", "")


def test_plot_sequences_heatmaps_share_one_scale_with_feature_0_at_the_bottom(rng):
    """An original and its reconstruction are compared on one colour scale (the data range of
    both), feature 0 drawn at the bottom; the title goes above the figure and each row says
    which sequence it is."""
    x = rng.random((2, 12, 9))
    rec = x * 0.5 + 2.0
    fig = mplot.plot_sequences(x, rec, title="data and reconstructions")
    images = [ax.images[0] for ax in fig.axes if ax.images]
    assert len(images) == 4
    for image in images:
        assert image.get_clim() == (x.min(), rec.max()) and image.origin == "lower"
    assert fig._suptitle is not None and fig._suptitle.get_text() == "data and reconstructions"
    lines = mplot.plot_sequences(rng.normal(size=(2, 10)), title="samples")
    assert lines._suptitle.get_text() == "samples"
    assert [ax.get_ylabel() for ax in lines.axes] == ["seq 0", "seq 1"]


def test_plot_piano_roll_draws_notes_dark_on_a_fixed_0_to_1_scale(rng):
    """Docstring: active notes are dark and values are drawn on a 0..1 scale, so a roll of
    probabilities between 0.2 and 0.6 is not stretched to look certain."""
    probs = 0.2 + 0.4 * rng.random((2, 16, 8))
    fig = mplot.plot_piano_roll(probs, n=2)
    for i, ax in enumerate(fig.axes):
        image = ax.images[0]
        assert image.get_cmap().name == "gray_r" and image.get_clim() == (0.0, 1.0)
        assert ax.get_ylabel() == f"roll {i}\npitch"


def test_titles_reach_the_figures_and_each_loss_panel_is_named(rng, model):
    """The CLI titles its samples ("samples from the prior"); a title given to the image figures
    is drawn, and the loss panels say which is the total and which its terms (those it shows)."""
    x = rng.random((3, D))
    assert mplot.plot_samples(x, title="samples from the prior").axes[0].get_title() == "samples from the prior"
    assert mplot.plot_reconstructions(x, model.reconstruct(x), title="recon").axes[0].get_title() == "recon"
    total, parts = mplot.plot_loss_curves({"loss": [3.0, 2.0], "kl": [1.0, 0.5]}).axes
    assert (total.get_title(), parts.get_title()) == ("total loss", "KL")
    total, parts = mplot.plot_loss_curves({"loss": [3.0, 2.0], "recon": [2.0, 1.5], "kl": [1.0, 0.5]}).axes
    assert (total.get_title(), parts.get_title()) == ("total loss", "reconstruction and KL")


def test_a_reconstructed_curve_is_dashed_in_its_originals_colour(rng):
    """Each feature's original and reconstruction share a colour (solid and dashed)."""
    x = rng.normal(size=(1, 10, 2))
    lines = {line.get_label(): line for line in mplot.plot_sequences(x, x + 1).axes[0].get_lines()}
    for f in (0, 1):
        assert lines[f"original f{f}"].get_color() == lines[f"reconstruction f{f}"].get_color()
    assert lines["original f0"].get_color() != lines["original f1"].get_color()


def test_an_epoch_column_of_another_length_is_not_the_x_axis():
    """Docstring: the epoch entry is the x axis only when its length matches; otherwise the
    epochs are counted 1, 2, ... (it broadcast-failed)."""
    (total,) = mplot.plot_loss_curves({"epoch": [1, 2], "loss": [3.0, 2.0, 1.0]}).axes
    np.testing.assert_allclose(_lines(total)["loss"].get_xdata(), [1, 2, 3])


# found by an audit of the uses layer ---------------------------------------------------------------
def test_interpolation_and_traversal_pictures_name_the_shape_the_caller_passed(rng):
    """Two examples gave "x must have shape (batch, 16), got (1, 2, 16)": a batch axis the caller never passed."""
    import microvae as mv

    model = mv.VAE(16, (4,), 2, seed=0)
    x = rng.random((4, 16))
    with pytest.raises(ValueError, match=r"x must be one example, shaped \(16,\) \(or with a batch axis of one\), "
                                         r"got shape \(2, 16\)"):
        mplot.plot_traversal(model, x[:2], image_shape=(4, 4))
    with pytest.raises(ValueError, match=r"x_a must be one example, shaped \(16,\).*got shape \(2, 16\)"):
        mplot.plot_interpolation(model, x[:2], x[2:4], steps=3, image_shape=(4, 4))
    assert isinstance(mplot.plot_traversal(model, x[:1], image_shape=(4, 4)), Figure)


@pytest.mark.parametrize("dims", [[0.7], 0.7, True, [True], [[0, 1]], ["0"]])
def test_plot_traversal_refuses_dims_that_are_not_integers(rng, dims):
    """int() made dims=[0.7] draw dimension 0 and dims=True dimension 1."""
    with pytest.raises(ValueError, match="dims must be latent dimensions: integers, or a list of them"):
        mplot.plot_traversal(FakeModel(latent_dim=3), rng.random(D), dims=dims)
    fig = mplot.plot_traversal(FakeModel(latent_dim=3), rng.random(D), dims=np.array([2, 0]), steps=2)
    assert [t.get_text() for t in fig.axes[0].get_yticklabels()] == ["z[2]", "z[0]"]


def test_plot_loss_curves_takes_the_model_itself():
    """The model was read for its history after the History check: "must be a History ..., got History"."""
    import microvae as mv

    model = mv.VAE(D, (4,), 2, seed=0)
    model.fit(np.random.default_rng(0).random((20, D)), epochs=2, batch_size=10, verbose=0)
    np.testing.assert_allclose(_lines(mplot.plot_loss_curves(model).axes[0])["loss"].get_ydata(), model.history["loss"])


# --------------------------------------------------------------------------- an audit of the pictures (b7872e6 and after)


def _scatter_colours(fig):
    """The distinct face colours of the scatter's points, and the legend's texts."""
    ax = fig.axes[0]
    colours = {tuple(np.round(c, 3)) for coll in ax.collections for c in coll.get_facecolors()}
    legend = ax.get_legend()
    return colours, [t.get_text() for t in legend.get_texts()] if legend else []


def test_a_column_of_labels_is_labels_not_one_hot_rows():
    z = np.random.default_rng(0).standard_normal((30, 2))
    labels = np.arange(30) % 3
    colours, legend = _scatter_colours(mplot.plot_latent_scatter(z, labels[:, None]))
    assert len(colours) == 3 and legend == ["0", "1", "2"]  # argmax of one column made every label 0
    assert (colours, legend) == _scatter_colours(mplot.plot_latent_scatter(z, labels))


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_labels_that_are_not_finite_are_refused(bad):
    z = np.random.default_rng(0).standard_normal((10, 2))
    labels = np.arange(10, dtype=np.float64)
    labels[3] = bad  # a NaN point was drawn transparent, without a word
    with pytest.raises(ValueError, match="labels contain NaN or Inf"):
        mplot.plot_latent_scatter(z, labels)


def test_more_named_classes_than_a_legend_takes_are_refused_by_name():
    z = np.random.default_rng(0).standard_normal((30, 2))
    names = np.array([f"c{i}" for i in range(30)])
    with pytest.raises(ValueError, match="labels hold 30 distinct names; a legend takes at most 20 classes"):
        mplot.plot_latent_scatter(z, names)  # NumPy's "could not convert string to float"
    assert len(mplot.plot_latent_scatter(z, np.arange(30)).axes) == 2  # numbers: the scatter and its colour bar


def test_images_holding_nan_are_refused():
    images = np.full((4, 16), 0.5)
    images[1, 3] = np.nan  # drawn as a full pixel: a diverged decoder's NaNs looked like ink
    with pytest.raises(ValueError, match=r"images contain NaN \(1 values\)"):
        mplot.plot_samples(images)


@pytest.mark.parametrize("images", [np.array([["a"] * 16] * 2), np.ones((2, 16)) * 1j])
def test_images_that_are_no_real_numbers_are_named(images):
    with pytest.raises(TypeError, match="plot expects real numbers .* for images"):
        mplot.plot_samples(images)


@pytest.mark.parametrize("image_shape, error", [("28", ValueError), ((4.9, 4), ValueError), ((True, 16), TypeError)])
def test_image_shape_takes_whole_sizes_only(image_shape, error):
    # "28" was the shape (2, 8), 4.9 was cut to 4, and True was 1
    with pytest.raises(error, match="image_shape"):
        mplot.plot_samples(np.zeros((2, 16)), image_shape=image_shape)


def test_plot_samples_by_class_takes_class_names_as_a_mapping():
    images = np.random.default_rng(0).random((2, 3, 16))
    fig = mplot.plot_samples_by_class(images, class_names={1: "dog", 0: "cat"})
    assert [t.get_text() for t in fig.axes[0].get_yticklabels()] == ["cat", "dog"]  # was "1", "0": the keys


@pytest.mark.parametrize("shape", [(3, 0, 2), (2, 5, 0)])
def test_sequences_and_rolls_with_no_steps_are_refused(shape):
    with pytest.raises(ValueError, match="none of them 0"):
        mplot.plot_sequences(np.zeros(shape))
    with pytest.raises(ValueError, match="none of them 0"):
        mplot.plot_piano_roll(np.zeros(shape))


def test_sequences_and_rolls_that_are_no_numbers_are_named():
    words = np.array([[["a"]] * 3] * 2)
    with pytest.raises(TypeError, match="plot_sequences expects real numbers"):
        mplot.plot_sequences(words)
    with pytest.raises(TypeError, match="plot_piano_roll expects real numbers"):
        mplot.plot_piano_roll(words)


def test_loss_curves_name_a_value_that_is_no_number():
    with pytest.raises(TypeError, match=r"history\['loss'\] must hold numbers .*found 'abc'"):
        mplot.plot_loss_curves({"loss": [1.0, "abc"]})
    mplot.plot_loss_curves({"loss": [1.0, None, 0.5]})  # None is a missing value


def test_sequences_and_rolls_holding_nan_are_refused(rng):
    """Only images were checked: a NaN roll drew blank, exactly as silence, and a NaN sequence
    as an empty panel, so a diverged VRAE's outputs looked like data."""
    rolls = np.zeros((2, 8, 6))
    rolls[0] = np.nan
    with pytest.raises(ValueError, match=r"rolls contain NaN \(48 values\): a picture would show them as blank cells, as if no note"):
        mplot.plot_piano_roll(rolls, n=2)
    with pytest.raises(ValueError, match=r"rolls_rec contain NaN"):
        mplot.plot_piano_roll(np.zeros((2, 8, 6)), rolls_rec=rolls)
    for feats in (1, 9):  # curves and heatmaps
        seqs = rng.random((2, 8, feats))
        seqs[0, 3] = np.nan
        with pytest.raises(ValueError, match=rf"x contain NaN \({feats} values\)"):
            mplot.plot_sequences(seqs)
        with pytest.raises(ValueError, match=r"x_rec contain NaN"):
            mplot.plot_sequences(rng.random((2, 8, feats)), seqs)


def test_plot_piano_roll_draws_each_roll_beside_its_reconstruction_and_says_which_is_which(rng):
    """Rolls and reconstructions could only be concatenated into one column of "roll 0" ..
    "roll 7", with nothing to tell which were the reconstructions (the CLI's reconstructions.png)."""
    rolls, rec = (rng.random((3, 16, 8)) > 0.8).astype(float), rng.random((3, 16, 8))
    fig = mplot.plot_piano_roll(rolls, n=2, rolls_rec=rec, title="test rolls and their reconstructions")
    assert len(fig.axes) == 4 and [ax.get_title() for ax in fig.axes[:2]] == ["original", "reconstruction"]
    np.testing.assert_array_equal(shown_image(fig, 0), rolls[0].T)
    np.testing.assert_array_equal(shown_image(fig, 3), rec[1].T)
    assert [ax.get_ylabel() for ax in fig.axes] == ["roll 0\npitch", "", "roll 1\npitch", ""]
    assert {ax.images[0].get_clim() for ax in fig.axes} == {(0.0, 1.0)}
    assert fig._suptitle.get_text() == "test rolls and their reconstructions"
    # one scale over both columns: reconstructions above the rolls' range are not clipped
    low = mplot.plot_piano_roll(rolls * 0.25, n=2, rolls_rec=rec * 2.0)
    assert len({ax.images[0].get_clim() for ax in low.axes}) == 1 and low.axes[1].images[0].get_clim()[1] >= 2.0 * rec[:2].max()
    alone = mplot.plot_piano_roll(rolls, n=2)  # samples, say: nothing is called "original"
    assert [ax.get_title() for ax in alone.axes] == ["", ""] and alone._suptitle is None
    with pytest.raises(ValueError, match="rolls and rolls_rec must have the same shape"):
        mplot.plot_piano_roll(rolls, rolls_rec=rec[:2])


def test_a_one_epoch_history_gets_integer_epoch_ticks():
    """One epoch's point left a view with a single integer in it, and the epoch axis was ticked
    0.945, 0.960, ..., 1.065 (the CLI's loss_curves.png after --epochs 1)."""
    for history in ({"loss": [3.0], "val_loss": [2.5]}, {"loss": [3.0, 2.0]}, {"loss": list(np.linspace(5, 1, 40))}):
        fig = mplot.plot_loss_curves(history)
        fig.canvas.draw()
        ax = fig.axes[0]
        low, high = ax.get_xlim()
        shown = [t for t in ax.get_xticks() if low <= t <= high]
        assert shown and all(float(t).is_integer() for t in shown), shown
        assert all(float(t.get_text().replace("\N{MINUS SIGN}", "-")).is_integer() for t in ax.get_xticklabels() if t.get_text())


@pytest.mark.parametrize("class_names", [5, "cd", {1, 0}, iter(["c", "d"])], ids=["int", "str", "set", "iterator"])
def test_class_names_that_are_no_names_by_label_are_refused_by_name(class_names):
    """An int failed with "object of type 'int' has no len()", and a string was split into its
    characters: the legend said 'c', 'd'."""
    z = np.random.default_rng(0).standard_normal((6, 2))
    with pytest.raises(TypeError, match="class_names must be a sequence of names indexed by label .* or a dict"):
        mplot.plot_latent_scatter(z, [0, 1, 0, 1, 0, 1], class_names=class_names)
    with pytest.raises(TypeError, match="class_names must be"):
        mplot.plot_latent_vs_prior(z, z, labels=[0, 1, 0, 1, 0, 1], class_names=class_names)
    with pytest.raises(TypeError, match="class_names must be"):
        mplot.plot_samples_by_class(np.zeros((2, 3, 16)), class_names=class_names)
    _, legend = _scatter_colours(mplot.plot_latent_scatter(z, [0, 1, 0, 1, 0, 1], class_names=np.array(["c", "d"])))
    assert legend == ["c", "d"]


def test_class_names_without_labels_are_refused_not_ignored():
    """plot_latent_scatter(z, class_names=[...]) drew one colour and no legend, without a word."""
    z = np.random.default_rng(0).standard_normal((6, 2))
    message = r"^class_names names the classes of labels, and no labels were given: pass labels= as well$"
    with pytest.raises(ValueError, match=message):
        mplot.plot_latent_scatter(z, class_names=["a", "b"])
    with pytest.raises(ValueError, match=message):
        mplot.plot_latent_vs_prior(z, z, class_names=["a", "b"])
    _, legend = _scatter_colours(mplot.plot_latent_scatter(z, [0, 1, 0, 1, 0, 1], class_names=["a", "b"]))
    assert legend == ["a", "b"]


def test_complex_labels_are_refused_not_cast_to_their_real_part():
    """The scatter's colours dropped the imaginary part, with only NumPy's ComplexWarning."""
    z = np.random.default_rng(0).standard_normal((6, 2))
    labels = np.arange(6) + 1j * np.arange(6)
    with pytest.raises(TypeError, match="labels must be real numbers or names .*, got dtype complex128"):
        mplot.plot_latent_scatter(z, labels)
    with pytest.raises(TypeError, match="labels must be real numbers"):
        mplot.plot_latent_vs_prior(z, z, labels=labels)


def test_a_loss_value_that_is_not_one_number_per_epoch_is_refused_by_name():
    """A 2-D value per key was flattened: [[1, 2], [3, 4]] was drawn as 4 epochs."""
    with pytest.raises(ValueError, match=r"history\['loss'\] must hold one number per epoch, found \[1.0, 2.0\]"):
        mplot.plot_loss_curves({"loss": [[1.0, 2.0], [3.0, 4.0]]})
    with pytest.raises(ValueError, match=r"history\['val_kl'\] must hold one number per epoch"):
        mplot.plot_loss_curves([{"kl": 1.0, "val_kl": [1.0]}])
    from microvae.training import History  # a list per epoch in a column that is not drawn is fine
    fig = mplot.plot_loss_curves(History([{"epoch": 1, "loss": 2.0, "kl_per_dim": [0.1, 0.2]},
                                          {"epoch": 2, "loss": 1.5, "kl_per_dim": [0.1, 0.3]}]))
    assert list(fig.axes[0].get_lines()[0].get_xdata()) == [1.0, 2.0]


@pytest.mark.parametrize("features, lines", [(4, True), (5, False)])
def test_plot_sequences_draws_up_to_four_features_as_lines(features, lines):
    """MAX_CURVE_FEATURES is the boundary: 4 features are curves, 5 a feature-by-time heatmap."""
    x = np.random.default_rng(0).standard_normal((2, 6, features))
    fig = mplot.plot_sequences(x, n=1)
    ax = fig.axes[0]
    assert (len(ax.lines) == features and not ax.images) if lines else (ax.images and not ax.lines)


def test_a_model_given_where_arrays_are_expected_is_named_as_one():
    """plot_samples(model) said "got dtype object", plot_reconstructions(model, x) "got a scalar":
    some plot functions take the model and others arrays, so the mix-up is easy."""
    import microvae as mv
    from microvae import applications

    model = mv.VAE(784, (8,), 2, seed=0)
    x, y = np.random.default_rng(0).random((12, 784)), np.arange(12) % 3
    advice = r"got a VAE object; pass arrays, e.g. model.sample\(64\) or model.encode\(x\)\[0\]"
    for call in (lambda: mplot.plot_samples(model), lambda: mplot.plot_latent_scatter(model, y),
                 lambda: mplot.plot_reconstructions(model, x), lambda: mplot.plot_reconstructions(x, model),
                 lambda: applications.plot_denoising(model, x, x)):
        with pytest.raises(TypeError, match=advice):
            call()
    import types

    with pytest.raises(TypeError, match=r"got a SimpleNamespace object$"):  # no model advice for what is no model
        mplot.plot_samples(types.SimpleNamespace(images=x))
    with pytest.raises(ValueError, match=r"got shape \(2, 12, 2\); model.encode returns the pair \(μ, logvar\): pass its first "
                                         r"element, model.encode\(x\)\[0\]"):
        mplot.plot_latent_scatter(model.encode(x), y)
    mplot.plot_latent_scatter(model.encode(x)[0], y)  # as advised


def test_a_denoising_report_prints_its_figures_not_its_pixels():
    import microvae as mv
    from microvae import applications

    model = mv.VAE(6, (4,), 2, seed=0)
    report = applications.denoising_report(model, np.random.default_rng(0).random((5, 6)))
    text = repr(report)
    assert text.startswith(f"DenoisingReport(gain={report.gain:.3f}, psnr_noisy={report.psnr_noisy:.3f}, ")
    assert "noisy=<array (5, 6)>" in text and "denoised=<array (5, 6)>" in text and len(text) < 300
    assert report[4] == report.gain and report._fields[:2] == ("noisy", "denoised")  # still the same tuple


def _count_calls(rng, model):
    """Each plot function that takes a count, called with the count given as ``value``."""
    x = rng.random((4, D))
    sequences, rolls = rng.random((3, 5, 2)), (rng.random((3, 8, 6)) > 0.5).astype(np.float64)
    return {
        "image_grid nrow": lambda v: mplot.image_grid(x, nrow=v),
        "image_grid pad": lambda v: mplot.image_grid(x, nrow=2, pad=v),
        "plot_reconstructions n": lambda v: mplot.plot_reconstructions(x, x[::-1], n=v),
        "plot_samples nrow": lambda v: mplot.plot_samples(x, nrow=v),
        "plot_latent_grid n": lambda v: mplot.plot_latent_grid(model, n=v),
        "plot_interpolation steps": lambda v: mplot.plot_interpolation(model, x[0], x[1], steps=v),
        "plot_traversal steps": lambda v: mplot.plot_traversal(model, x[0], dims=[0], steps=v),
        "plot_sequences n": lambda v: mplot.plot_sequences(sequences, n=v),
        "plot_piano_roll n": lambda v: mplot.plot_piano_roll(rolls, n=v),
    }


@pytest.mark.parametrize("which", list(_count_calls(np.random.default_rng(0), FakeModel())))
def test_every_count_takes_a_float_without_a_fraction_and_refuses_other_types(rng, model, which):
    """plot_interpolation(steps=3.0) and image_grid(nrow=2.0) were refused, with a ValueError
    for a type, while interpolate, sample and fit take 3.0 (check_int, microvae's one rule for
    counts): a float without a fraction draws what its integer draws; True and "3" are
    TypeErrors, 2.5 a ValueError."""
    call = _count_calls(rng, model)[which]
    name = which.split()[1]
    as_int = call(3)
    as_float = call(3.0)
    as_numpy = call(np.float64(3.0))
    if isinstance(as_int, np.ndarray):  # image_grid returns the grid itself
        np.testing.assert_array_equal(as_float, as_int)
        np.testing.assert_array_equal(as_numpy, as_int)
    else:
        for fig in (as_float, as_numpy):
            assert len(fig.axes) == len(as_int.axes)
            for drawn, expected in zip(fig.axes, as_int.axes):
                assert len(drawn.images) == len(expected.images)
                for a, b in zip(drawn.images, expected.images):
                    np.testing.assert_array_equal(a.get_array(), b.get_array())
    for bad, error in ((True, TypeError), ("3", TypeError), (2.5, ValueError)):
        with pytest.raises(error, match=rf"^{name} must be (a positive integer|an integer >= 0), got {re.escape(repr(bad))}$"):
            call(bad)


@pytest.mark.parametrize("classes", [10, 20])
def test_no_class_is_drawn_in_the_prior_clouds_grey(rng, classes):
    """With ten classes, tab10 drew class 7 (Fashion-MNIST's Sneaker) in #7f7f7f, the prior
    cloud's grey: its codes could not be told from prior draws. Over the prior no class is
    grey; the latent scatter, with no prior drawn, keeps tab10's colours."""
    from matplotlib.colors import to_rgb

    codes, labels = rng.normal(size=(40 * classes, 2)), np.repeat(np.arange(classes), 40)
    fig = mplot.plot_latent_vs_prior(codes, rng.normal(size=(100, 2)), labels=labels)
    collections = fig.axes[0].collections
    prior, classes_drawn = to_rgb(collections[0].get_facecolor()[0][:3]), collections[1:]
    assert len(classes_drawn) == classes and prior == pytest.approx((0.5, 0.5, 0.5), abs=0.01)
    colours = [to_rgb(c.get_facecolor()[0][:3]) for c in classes_drawn]
    assert all(max(rgb) - min(rgb) > 0.05 or max(rgb) < 0.2 for rgb in colours)  # none a mid or light grey
    assert len(set(colours)) == classes
    plain = mplot.plot_latent_scatter(codes[:400], labels[:400])
    assert to_rgb(plain.axes[0].collections[7].get_facecolor()[0][:3]) == pytest.approx(to_rgb("tab:gray"))
