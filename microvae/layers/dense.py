"""Fully connected layer."""

from __future__ import annotations

from ..checks import check_bool, check_int, is_choice
from .base import INITIALIZERS, Layer, zeros


ACTIVATIONS = (None, "relu")  # what a Dense or a convolution may fuse in


class Dense(Layer):
    """Affine map ``Y = X·W + b`` for X of shape (batch, in_features).

    Backward, for upstream gradient dY of shape (batch, out_features):

        dX = dY·Wᵀ,   dW = Xᵀ·dY,   db = Σ_batch dY

    ``init`` is "he" (N(0, 2/fan_in), use before ReLU) or "glorot" (uniform); b starts at 0.

    **A fused ReLU** (``activation="relu"``): Y = max(X·W + b, 0), the same function as
    ``Dense`` then ``ReLU``. The bias and the ReLU run as one pass over the product, and the
    backward pass first forms dZ = dY·[Y > 0] and db = Σ_batch dZ in one pass, then
    dX = dZ·Wᵀ and dW = Xᵀ·dZ. The parameters and gradients are the same as the two
    separate layers' (bit for bit on the CPU); the textbook MLP VAE's step saves the passes
    over memory that the separate bias add, ReLU and bias sum take.

    The three products go through the backend's kernels (``matmul``, ``matmul_tn``,
    ``matmul_nt``): on the CPU microvae's own Numba kernels (``kernels/matmul_cpu.py``), on
    the GPU cuBLAS.
    """

    def __init__(self, in_features: int, out_features: int, init: str = "glorot", bias: bool = True,
                 activation: str | None = None):
        super().__init__()
        # checked, not int()-ed: int() truncates 2.5 and takes True and "4"
        self.in_features = check_int("in_features", in_features, 1)
        self.out_features = check_int("out_features", out_features, 1)
        if not is_choice(init, INITIALIZERS):
            raise ValueError(f"init must be one of {sorted(INITIALIZERS)}, got {init!r}")
        self.init = init
        self.use_bias = check_bool("bias", bias)
        if not is_choice(activation, ACTIVATIONS):
            raise ValueError(f"activation must be one of {ACTIVATIONS} (a ReLU fused into the layer, or none), got {activation!r}")
        self.activation = activation
        self._x = self._y = None

    def parameter_specs(self):
        specs = {"W": ((self.in_features, self.out_features), INITIALIZERS[self.init](self.in_features, self.out_features))}
        if self.use_bias:
            specs["b"] = ((self.out_features,), zeros)
        return specs

    def get_config(self):
        return {"in_features": self.in_features, "out_features": self.out_features, "init": self.init, "bias": self.use_bias,
                "activation": self.activation}

    def forward(self, x):
        # in the layer's dtype (a float64 X must not make a float32 layer's Y float64), and
        # C-contiguous for the product kernels, here and again in the backward pass
        x = self._input(x, contiguous=True)
        if x.ndim != 2 or x.shape[1] != self.in_features:
            raise ValueError(f"Dense({self.in_features}, {self.out_features}) expects input of shape (batch, {self.in_features}), got {tuple(x.shape)}")
        kernels = self.backend.kernels
        # a new array each pass (the layer returns it): the kernels below work on it in place
        y = kernels.matmul(x, self.params["W"], self.backend.xp.empty((x.shape[0], self.out_features), x.dtype))
        if self.activation == "relu":
            if self.use_bias:
                kernels.bias_relu_forward(y, self.params["b"], y)
            else:
                kernels.relu_forward(y, y)
            self._y = y
        elif self.use_bias:
            y += self.params["b"]
        self._x = x
        return self._output(y)

    def backward(self, dy, input_grad: bool = True):
        input_grad = check_bool("input_grad", input_grad)
        # checked against Y's shape: NumPy's own errors would not name the layer
        dy = self._upstream(dy, contiguous=True)
        xp, kernels = self.backend.xp, self.backend.kernels
        if self.activation == "relu":  # dY becomes dZ = dY·[Y > 0], the gradient at X·W + b
            dz = self._scratch("dz", dy.shape)  # used only below: kept between steps, not allocated each one
            if self.use_bias:
                kernels.bias_relu_backward(dy, self._y, dz, self.grads["b"])
            else:
                kernels.relu_backward(dy, self._y, dz)
            dy = dz
        elif self.use_bias:
            dy.sum(axis=0, out=self.grads["b"])
        kernels.matmul_tn(self._x, dy, self.grads["W"])  # dW = Xᵀ·dY
        if not input_grad:
            return None
        return kernels.matmul_nt(dy, self.params["W"], xp.empty(self._x.shape, dy.dtype))  # dX = dY·Wᵀ

    def __repr__(self):
        no_bias = "" if self.use_bias else ", bias=False"
        fused = f", activation={self.activation!r}" if self.activation else ""
        return f"Dense({self.in_features}, {self.out_features}, init={self.init!r}{no_bias}{fused})"
