"""How far a forward pass stays from the points where a model's objective has no derivative,
and whether any of its ReLU layers was off for the whole batch.

A finite difference across a ReLU's kink or between a max-pool window's two largest values is
meaningless, so the whole-objective gradient checks ``assume`` (or assert) a margin first. A
ReLU layer with no unit on for any example zeroes every gradient before it, and the check then
compares zero with zero: those draws are skipped too (``margins.dead``).
"""

import contextlib

import numpy as np

from microvae.layers import Dense, MaxPool2D, ReLU


class Margins(list):
    """The margins, in call order; ``dead`` counts the ReLU passes with no positive input."""

    dead = 0


@contextlib.contextmanager
def kink_margins():
    """Record, while the block runs, min |input| of every ReLU (a layer of its own, or fused
    into a Dense layer: there its input is X·W + b), and for each max-pool window with a
    positive maximum, the gap between its largest and second-largest value. ReLUs fused into
    a convolution are not seen: check a twin with separate ReLU layers (ConvVAE's
    ``fuse_relu=False``) instead."""
    seen = Margins()
    relu_forward, dense_forward, pool_forward = ReLU.forward, Dense.forward, MaxPool2D.forward

    def relu(self, x):
        seen.append(float(np.abs(x).min()))
        seen.dead += not (np.asarray(x) > 0).any()
        return relu_forward(self, x)

    def dense(self, x):
        y = dense_forward(self, x)
        if self.activation == "relu":
            pre = np.asarray(x, dtype=np.float64) @ self.params["W"] + (self.params["b"] if self.use_bias else 0.0)
            seen.append(float(np.abs(pre).min()))
            seen.dead += not (pre > 0).any()
        return y

    def pool(self, x):
        k, s = self.pool_size, self.stride
        windows = np.lib.stride_tricks.sliding_window_view(x, (k, k), axis=(2, 3))[:, :, ::s, ::s]
        windows = np.sort(windows.reshape(*windows.shape[:4], -1), axis=-1)
        if k > 1:
            top, second = windows[..., -1], windows[..., -2]
            gaps = (top - second)[top > 0]
            if gaps.size:
                seen.append(float(gaps.min()))
        return pool_forward(self, x)

    ReLU.forward, Dense.forward, MaxPool2D.forward = relu, dense, pool
    try:
        yield seen
    finally:
        ReLU.forward, Dense.forward, MaxPool2D.forward = relu_forward, dense_forward, pool_forward
