"""Elementwise activations. Each caches the one array its derivative needs.

Inputs and upstream gradients are taken in the layer's dtype (``Layer._input``,
``Layer._upstream``), and dy must have the shape of the output it belongs to: one that
merely broadcasts against the cache would give a gradient of the wrong shape.
"""

from __future__ import annotations

from ..checks import check_bool, check_number
from .base import Layer


class ReLU(Layer):
    """y = max(x, 0);  dx = dy · [y > 0]  (the subgradient at 0 is taken as 0).

    Runs the backend's fused kernels (Numba on CPU, CuPy on GPU).
    """

    def forward(self, x):
        x = self._input(x, contiguous=True)  # the kernels see their arguments flattened
        y = self.backend.xp.empty_like(x)
        self.backend.kernels.relu_forward(x, y)
        self._y = y
        return self._output(y)

    def backward(self, dy, input_grad: bool = True):
        input_grad = check_bool("input_grad", input_grad)
        # checked first: the kernel loops over dy.size reading y with no bounds check
        dy = self._upstream(dy, contiguous=True)
        if not input_grad:
            return None
        dx = self.backend.xp.empty_like(dy)
        self.backend.kernels.relu_backward(dy, self._y, dx)
        return dx


class LeakyReLU(Layer):
    """y = x for x > 0, else a·x;  dx = dy for x > 0, else a·dy."""

    def __init__(self, negative_slope: float = 0.01):
        super().__init__()
        # a string would fail the comparison with an error naming nothing, and False pass as 0
        slope = check_number("negative_slope", negative_slope, "a number in [0, 1)")
        if not 0 <= slope < 1:
            raise ValueError(f"negative_slope must be in [0, 1), got {negative_slope}")
        self.negative_slope = slope

    def get_config(self):
        return {"negative_slope": self.negative_slope}

    def forward(self, x):
        x = self._input(x)  # an integer x would make a·x integer too (a ReLU)
        xp = self.backend.xp
        self._positive = x > 0
        if self.negative_slope == 0:  # a ReLU: 0·(−∞) would be NaN where ReLU gives 0
            return self._output(xp.where(self._positive, x, x.dtype.type(0)))
        return self._output(xp.where(self._positive, x, x * x.dtype.type(self.negative_slope)))

    def backward(self, dy, input_grad: bool = True):
        input_grad = check_bool("input_grad", input_grad)
        dy = self._upstream(dy)
        if not input_grad:
            return None
        xp = self.backend.xp
        if self.negative_slope == 0:  # as ReLU's: an infinite dy at x ≤ 0 gives 0, not 0·Inf
            return xp.where(self._positive, dy, dy.dtype.type(0))
        return xp.where(self._positive, dy, dy * dy.dtype.type(self.negative_slope))

    def __repr__(self):
        return f"LeakyReLU({self.negative_slope})"


class Sigmoid(Layer):
    """y = σ(x) = 1/(1 + e^{−x});  dx = dy · y · (1 − y)."""

    def forward(self, x):
        x = self._input(x, contiguous=True)  # an integer y = empty_like(x) would hold zeros
        y = self.backend.xp.empty_like(x)
        self.backend.kernels.sigmoid(x, y)
        self._y = y
        return self._output(y)

    def backward(self, dy, input_grad: bool = True):
        input_grad = check_bool("input_grad", input_grad)
        dy = self._upstream(dy)
        if not input_grad:
            return None
        y = self._y
        return dy * y * (1 - y)


class Tanh(Layer):
    """y = tanh(x);  dx = dy · (1 − y²)."""

    def forward(self, x):
        x = self._input(x)  # tanh of an int8 or bool array would be float16
        self._y = self.backend.xp.tanh(x)
        return self._output(self._y)

    def backward(self, dy, input_grad: bool = True):
        input_grad = check_bool("input_grad", input_grad)
        dy = self._upstream(dy)
        if not input_grad:
            return None
        y = self._y
        return dy * (1 - y * y)
