"""Max pooling over spatial windows, layout NCHW."""

from __future__ import annotations

from ..checks import check_bool, check_int
from .base import Layer

__all__ = ["MaxPool2D"]


class MaxPool2D(Layer):
    """Y[n, c, r, q] = max over the pool×pool window at (r·s, q·s) of X[n, c]  (no padding:
    OH = ⌊(H − pool)/s⌋ + 1; rows/columns past the last full window are dropped).

    Backward routes each window's gradient to the position of its maximum:

        dX[n, c, h, w] = Σ_{windows (r, q) whose argmax is (h, w)} dY[n, c, r, q]

    (ties go to the first maximum in row-major order; a NaN counts as its window's maximum,
    as in np.max, so a diverging network shows NaN rather than hiding it). ``stride``
    defaults to ``pool_size``.
    Both passes run the backend's kernels (Numba on CPU, CuPy on GPU).
    """

    def __init__(self, pool_size: int = 2, stride: int | None = None):
        super().__init__()
        # one size for both axes (the kernels pool square windows): a pair is refused by name, as 2.5 is
        self.pool_size = check_int("pool_size", pool_size, 1)
        stride = check_int("stride", stride, 1, none_ok=True)
        self.stride = stride if stride is not None else self.pool_size

    def get_config(self):
        return {"pool_size": self.pool_size, "stride": self.stride}

    def output_shape(self, height: int, width: int):
        """(OH, OW) = (⌊(H − pool)/stride⌋ + 1, likewise for W); ValueError below pool × pool."""
        p = self.pool_size
        if height < p or width < p:
            raise ValueError(f"{self!r} needs inputs of at least {p}×{p}, got {height}×{width}")
        return (height - p) // self.stride + 1, (width - p) // self.stride + 1

    def forward(self, x):
        x = self._input(x, contiguous=True)  # Y in the layer's dtype; the kernel needs C order
        if x.ndim != 4:
            raise ValueError(f"{self!r} expects input of shape (batch, channels, height, width) (NCHW), got {tuple(x.shape)}")
        xp = self.backend.xp
        n, c, h, w = x.shape
        oh, ow = self.output_shape(h, w)
        y = xp.empty((n, c, oh, ow), dtype=x.dtype)
        argmax = xp.empty((n, c, oh, ow), dtype=xp.int64)
        self.backend.kernels.maxpool_forward(x, self.pool_size, self.stride, y, argmax)
        self._argmax, self._x_shape = argmax, tuple(x.shape)
        return self._output(y)

    def backward(self, dy, input_grad: bool = True):
        input_grad = check_bool("input_grad", input_grad)
        # checked first: the kernel runs over dY's positions reading the cached argmax at
        # each, with no bounds checks, so a dY of another shape reads out of bounds
        dy = self._upstream(dy, contiguous=True)
        if not input_grad:
            return None
        dx = self.backend.xp.empty(self._x_shape, dtype=dy.dtype)
        self.backend.kernels.maxpool_backward(dy, self._argmax, self.pool_size, self.stride, dx)
        return dx

    def __repr__(self):
        return f"MaxPool2D({self.pool_size}, stride={self.stride})"
