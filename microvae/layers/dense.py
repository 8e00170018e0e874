"""Fully connected layer."""

from __future__ import annotations

from ..checks import check_bool, check_int
from .base import INITIALIZERS, Layer, zeros


class Dense(Layer):
    """Affine map ``Y = X·W + b`` for X of shape (batch, in_features).

    Backward, for upstream gradient dY of shape (batch, out_features):

        dX = dY·Wᵀ,   dW = Xᵀ·dY,   db = Σ_batch dY

    ``init`` is "he" (N(0, 2/fan_in), use before ReLU) or "glorot" (uniform); b starts at 0.
    """

    def __init__(self, in_features: int, out_features: int, init: str = "glorot", bias: bool = True):
        super().__init__()
        # checked, not int()-ed: int() truncates 2.5 and takes True and "4"
        self.in_features = check_int("in_features", in_features, 1)
        self.out_features = check_int("out_features", out_features, 1)
        if init not in INITIALIZERS:
            raise ValueError(f"init must be one of {sorted(INITIALIZERS)}, got {init!r}")
        self.init = init
        self.use_bias = check_bool("bias", bias)
        self._x = None

    def parameter_specs(self):
        specs = {"W": ((self.in_features, self.out_features), INITIALIZERS[self.init](self.in_features, self.out_features))}
        if self.use_bias:
            specs["b"] = ((self.out_features,), zeros)
        return specs

    def get_config(self):
        return {"in_features": self.in_features, "out_features": self.out_features, "init": self.init, "bias": self.use_bias}

    def forward(self, x):
        x = self._input(x)  # in the layer's dtype: a float64 X must not make a float32 layer's Y float64
        if x.ndim != 2 or x.shape[1] != self.in_features:
            raise ValueError(f"Dense({self.in_features}, {self.out_features}) expects input of shape (batch, {self.in_features}), got {tuple(x.shape)}")
        y = x @ self.params["W"]
        if self.use_bias:
            y += self.params["b"]
        self._x = x
        return self._output(y)

    def backward(self, dy, input_grad: bool = True):
        dy = self._upstream(dy)  # checked against Y's shape: NumPy's own errors would not name the layer
        xp = self.backend.xp
        xp.matmul(self._x.T, dy, out=self.grads["W"])
        if self.use_bias:
            dy.sum(axis=0, out=self.grads["b"])
        return dy @ self.params["W"].T if input_grad else None

    def __repr__(self):
        return f"Dense({self.in_features}, {self.out_features}, init={self.init!r})"
