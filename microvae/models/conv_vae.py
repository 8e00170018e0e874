"""A convolutional VAE for images (NCHW): VAE's objective with convolutional encoder and decoder."""

from __future__ import annotations

from ..checks import check_bool, check_int, is_choice
from ..layers import Conv2D, Conv2DTranspose, Dense, Flatten, MaxPool2D, ReLU, Reshape, Sequential
from ..likelihoods import get_likelihood
from .settings import Fixed
from .vae import VAE

__all__ = ["ConvVAE"]

VARIANTS = ("pooling", "strided")


def _relu_placement(fuse_relu):
    """(the convolutions' ``activation``, a maker of the ReLU layers that follow each one): a
    ReLU inside each convolution, or a new ReLU layer after it (new each time: a ReLU keeps
    its own output for its backward pass)."""
    if fuse_relu:
        return "relu", lambda: []
    return None, lambda: [ReLU()]


def _halvings(size: int, variant: str):
    """(size after one halving, after two): a pooling halves exactly (sizes divisible by 4), a
    stride-2 "same" convolution rounds up (7 → 4 → 2)."""
    if variant == "pooling":
        return size // 2, size // 4
    half = -(-size // 2)
    return half, -(-half // 2)


def _mirror_padding(targets, sizes):
    """Conv2DTranspose's output_padding that takes (h, w) = ``sizes`` back to ``targets`` at
    stride 2: (target − 1) − 2·(size − 1) per axis; None where that is the default, 2·size."""
    padding = tuple(t - 2 * s + 1 for t, s in zip(targets, sizes))
    return None if padding == (1, 1) else padding


def conv_encoder(channels, height, width, latent_dim, variant, fuse_relu=True) -> Sequential:
    """The encoder of ``ConvVAE``: (N, C, H, W) → (N, 2·latent_dim) = μ ‖ logvar."""
    (_, h4), (_, w4) = _halvings(height, variant), _halvings(width, variant)
    act, relu = _relu_placement(fuse_relu)
    if variant == "pooling":
        return Sequential(
            Conv2D(channels, 16, 3, activation=act), *relu(), Conv2D(16, 16, 3, activation=act), *relu(), MaxPool2D(2),
            Conv2D(16, 32, 3, activation=act), *relu(), MaxPool2D(2),
            Flatten(), Dense(32 * h4 * w4, 32, init="he"), ReLU(), Dense(32, 2 * latent_dim),
        )
    return Sequential(
        Conv2D(channels, 32, 3, stride=2, activation=act), *relu(), Conv2D(32, 64, 3, stride=2, activation=act), *relu(),
        Flatten(), Dense(64 * h4 * w4, 32, init="he"), ReLU(), Dense(32, 2 * latent_dim),
    )


def conv_decoder(out_channels, height, width, latent_dim, variant, fuse_relu=True) -> Sequential:
    """The decoder of ``ConvVAE``: (N, latent_dim) → (N, out_channels, H, W) logits/means.
    Each stride-2 transposed convolution mirrors the encoder's halving, odd sizes included."""
    (h2, h4), (w2, w4) = _halvings(height, variant), _halvings(width, variant)
    up1 = _mirror_padding((h2, w2), (h4, w4))
    up2 = _mirror_padding((height, width), (h2, w2))
    c1, c2 = (32, 16) if variant == "pooling" else (64, 32)
    act, relu = _relu_placement(fuse_relu)
    return Sequential(
        Dense(latent_dim, c1 * h4 * w4, init="he"), ReLU(), Reshape((c1, h4, w4)),
        Conv2DTranspose(c1, c1, 3, stride=2, activation=act, output_padding=up1), *relu(),
        Conv2DTranspose(c1, c2, 3, stride=2, activation=act, output_padding=up2), *relu(),
        Conv2DTranspose(c2, out_channels, 3, stride=1, init="glorot"),
    )



class ConvVAE(VAE):
    """A VAE with convolutional encoder and decoder, for images of shape ``input_shape`` = (C, H, W).

    Objective: exactly ``VAE``'s (−log p(x|z) + β·KL(q(z|x) ‖ N(0, I))), which this class
    reuses unchanged: it only builds the two networks. Data may be given as (n, C, H, W)
    or flattened (n, C·H·W); decoded images come back as (n, C, H, W).

    ``variant="pooling"`` (the textbook architecture, default; all convolutions 3×3, "same"):

        encoder  Conv 16 → ReLU → Conv 16 → ReLU → MaxPool 2 → Conv 32 → ReLU → MaxPool 2
                 → Flatten → Dense 32 → ReLU → Dense 2·latent (μ ‖ logvar)
        decoder  Dense 32·(H/4)·(W/4) → ReLU → Reshape (32, H/4, W/4)
                 → ConvT 32, stride 2 → ReLU → ConvT 16, stride 2 → ReLU → ConvT C (logits)

    ``variant="strided"``: downsampling by stride-2 convolutions instead of pooling:

        encoder  Conv 32, stride 2 → ReLU → Conv 64, stride 2 → ReLU → Flatten → Dense 32 → ReLU → Dense 2·latent
        decoder  Dense 64·(H/4)·(W/4) → ReLU → Reshape → ConvT 64, s 2 → ReLU → ConvT 32, s 2 → ReLU → ConvT C

    With pooling, H and W must be divisible by 4 (two exact halvings). The strided variant
    takes any size: its convolutions round up (e.g. 30 → 15 → 8), and the decoder's
    transposed convolutions mirror them with ``output_padding`` (8 → 15 → 30). With ``likelihood="gaussian-learned"``
    the last layer outputs 2·C channels (means, then log-variances).

    ``fuse_relu`` (default True): each ReLU after a convolution runs inside it
    (``Conv2D(..., activation="relu")``), which spares a pass over the whole activation.
    The function, the parameters and their initial values are the same either way; only
    the layer list, and so the parameters' names, differ. Checkpoints written before this
    option existed have separate ReLU layers and load with ``fuse_relu=False``.

    Parameters
    ----------
    input_shape : (C, H, W), three ints >= 1 (default (1, 28, 28)); with ``variant="pooling"``
        H and W divisible by 4
    latent_dim : the dimension of z, an int >= 1 (default 2)
    beta : β, a finite number >= 0 (default 1.0)
    variant : "pooling" (default) or "strided", the two architectures above
    likelihood, beta_warmup, capacity, capacity_warmup, backend, dtype, seed : as in ``VAE``
        (likelihood "bernoulli", "gaussian", "gaussian-learned", a dict or an object, per pixel;
        seed an int >= 0, default 0, or None for fresh entropy)
    fuse_relu : True (default) or False, as above
    """

    variant = Fixed()  # the architecture (input_shape, latent_dim: VAE's)

    def __init__(
        self,
        input_shape=(1, 28, 28),
        latent_dim: int = 2,
        beta: float = 1.0,
        variant: str = "pooling",
        likelihood="bernoulli",
        beta_warmup: int = 0,
        capacity: float | None = None,
        capacity_warmup: int = 0,
        fuse_relu: bool = True,
        backend="numpy",
        dtype="float32",
        seed: int | None = 0,
    ):
        try:
            shape = tuple(check_int("input_shape", s) for s in input_shape)
        except (TypeError, ValueError):
            raise ValueError(f"input_shape must be (channels, height, width), got {input_shape!r}") from None
        if len(shape) != 3 or min(shape) < 1:
            raise ValueError(f"input_shape must be three positive ints (channels, height, width), got {input_shape!r}")
        channels, height, width = shape
        if width in (1, 3, 4) and channels >= 8 and height >= 8:  # (28, 28, 1), (32, 32, 3): no input has 28 channels of width 1
            raise ValueError(f"input_shape is (channels, height, width); {shape} would be {channels} channels of {height}×{width} "
                             f"images, which looks like (height, width, channels): use {(width, channels, height)} and pass "
                             "channels-last images as x.transpose(0, 3, 1, 2)")
        if not is_choice(variant, VARIANTS):
            raise ValueError(f"variant must be one of {VARIANTS}, got {variant!r}")
        if variant == "pooling" and (height % 4 or width % 4):
            raise ValueError(f"the pooling ConvVAE halves the image twice, so height and width must be divisible by 4; "
                             f"got input_shape={shape} (pad or crop the images, e.g. to {((height + 3) // 4) * 4}×"
                             f"{((width + 3) // 4) * 4}, or use variant='strided', which takes any size)")
        latent_dim = check_int("latent_dim", latent_dim, 1)
        lik = get_likelihood(likelihood)
        self.variant = variant
        self.input_shape = shape
        fuse_relu = check_bool("fuse_relu", fuse_relu)
        encoder = conv_encoder(channels, height, width, latent_dim, variant, fuse_relu)
        decoder = conv_decoder(lik.output_dim(channels), height, width, latent_dim, variant, fuse_relu)
        super().__init__(input_dim=channels * height * width, hidden=(), latent_dim=latent_dim, beta=beta,
                         likelihood=lik, encoder=encoder, decoder=decoder, beta_warmup=beta_warmup, capacity=capacity,
                         capacity_warmup=capacity_warmup, backend=backend, dtype=dtype, seed=seed)
        self.config = dict(
            input_shape=list(shape), latent_dim=latent_dim, beta=self.beta, variant=variant,
            likelihood=self.likelihood.config(), beta_warmup=self.beta_warmup, capacity=self.capacity,
            capacity_warmup=self.capacity_warmup, fuse_relu=fuse_relu, dtype=self.config["dtype"], seed=self.config["seed"],
        )  # dtype and seed as _setup recorded them (a Backend object's, if one was given)

    _builds_own_networks = True

    def __repr__(self):
        return self._repr_with_settings(
            f"ConvVAE(input_shape={self.input_shape}, latent_dim={self.latent_dim}, beta={self.beta}, "
            f"variant={self.variant!r}, likelihood={self.likelihood.config()!r}, parameters={self.num_parameters}, "
            f"backend={self.backend!r})")
