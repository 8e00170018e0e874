"""Shape changes between convolutional (N, C, H, W) and dense (N, D) parts; no arithmetic."""

from __future__ import annotations

import math
import numbers

from ..checks import check_bool, check_int, is_unordered
from .base import Layer

__all__ = ["Flatten", "Reshape"]


class Flatten(Layer):
    """Y = X reshaped to (batch, C·H·W) (row-major, so NCHW order);  dX = dY reshaped back."""

    def forward(self, x):
        x = self._input(x)
        if x.ndim < 1:
            raise ValueError(f"Flatten expects a batch (batch, ...), got a scalar of shape {tuple(x.shape)}")
        self._x_shape = tuple(x.shape)
        return self._output(x.reshape(x.shape[0], math.prod(x.shape[1:])))  # (-1 cannot be inferred for a batch of 0)

    def backward(self, dy, input_grad: bool = True):
        input_grad = check_bool("input_grad", input_grad)
        # the shape checked, not just the size: a dY of another layout would be reshaped silently
        dy = self._upstream(dy)
        return dy.reshape(self._x_shape) if input_grad else None


class Reshape(Layer):
    """Y = X reshaped to (batch, *shape), e.g. (N, 32·7·7) → (N, 32, 7, 7);  dX = dY reshaped back."""

    def __init__(self, shape):
        super().__init__()
        # one number (a NumPy integer too, which is no int) is a 1-D target; each size as check_int takes it
        one = isinstance(shape, (numbers.Number, str, bytes)) or not hasattr(shape, "__iter__")
        form = f"Reshape needs a non-empty shape of positive ints (batch excluded), or one positive int, got {shape!r}"
        if is_unordered(shape):  # {7, 32} iterates in hash order
            raise TypeError(form)
        try:
            sizes = tuple(check_int("shape", s, 1) for s in ((shape,) if one else shape))
        except (TypeError, ValueError) as exc:  # (iterating a 0-d array is a TypeError too)
            raise type(exc)(form) from None
        if not sizes:
            raise ValueError(form)
        self.shape = sizes

    def get_config(self):
        return {"shape": list(self.shape)}

    def forward(self, x):
        x = self._input(x)
        if x.ndim < 1 or math.prod(x.shape[1:]) != math.prod(self.shape):
            raise ValueError(f"{self!r} needs inputs of shape (batch, ...) with {math.prod(self.shape)} values per example, "
                             f"got {tuple(x.shape)}")
        self._x_shape = tuple(x.shape)
        return self._output(x.reshape((x.shape[0],) + self.shape))

    def backward(self, dy, input_grad: bool = True):
        input_grad = check_bool("input_grad", input_grad)
        dy = self._upstream(dy)  # as in Flatten
        return dy.reshape(self._x_shape) if input_grad else None

    def __repr__(self):
        return f"Reshape({self.shape})"
