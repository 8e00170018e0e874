"""The Layer contract every building block follows.

- ``forward(x)`` computes the output and caches only what ``backward`` needs;
- ``backward(dy)`` takes dL/dy, *writes* (overwrites) the gradients of its parameters into
  ``self.grads`` and returns dL/dx. With ``input_grad=False`` it may skip dL/dx and return
  None (the first layer of an encoder never needs it).

A layer instance is used once per forward pass; its cache holds one pass.

Parameters are declared, not allocated: ``parameter_specs()`` names each parameter's shape
and initialiser, and ``FlatParameters`` allocates them as views into one flat buffer.
"""

from __future__ import annotations

import math

from ..backend import get_backend

__all__ = ["Layer", "Module", "he_normal", "glorot_uniform", "zeros", "INITIALIZERS", "layer_to_spec", "layer_from_spec"]

LAYER_TYPES: dict = {}


def layer_to_spec(layer) -> dict:
    """A JSON-friendly description {"type", "config"} from which the layer can be rebuilt."""
    return {"type": type(layer).__name__, "config": layer.get_config()}


def layer_from_spec(spec: dict):
    """Rebuild a (parameter-less, unbuilt) layer from ``layer_to_spec``'s output."""
    try:
        cls = LAYER_TYPES[spec["type"]]
    except (KeyError, TypeError) as exc:
        raise ValueError(f"unknown layer spec {spec!r}; known types: {sorted(LAYER_TYPES)}") from exc
    return cls.from_config(spec.get("config", {}))


def he_normal(fan_in, fan_out):
    """He et al. (2015): N(0, 2/fan_in), for layers followed by ReLU."""

    def init(backend, shape):
        return backend.normal(shape, scale=math.sqrt(2.0 / fan_in))

    return init


def glorot_uniform(fan_in, fan_out):
    """Glorot & Bengio (2010): U(−a, a) with a = √(6/(fan_in + fan_out))."""

    def init(backend, shape):
        limit = math.sqrt(6.0 / (fan_in + fan_out))
        return backend.uniform(shape, -limit, limit)

    return init


def zeros(backend, shape):
    return backend.zeros(shape)


INITIALIZERS = {"he": he_normal, "glorot": glorot_uniform}


class Module:
    """A node in a tree of parameterised parts (layers, and the models built from them)."""

    def __init__(self):
        self.params: dict = {}
        self.grads: dict = {}
        self.backend = None
        self.flat = None

    def parameter_specs(self) -> dict:
        """{name: (shape, initializer(backend, shape) -> array)}; empty for parameter-free layers."""
        return {}

    def children(self) -> dict:
        """{name: Layer} of sub-layers, in a fixed order."""
        return {}

    def named_modules(self, prefix: str = ""):
        """Yield (dotted_path, layer) for this layer and all its descendants, depth first."""
        yield prefix, self
        for name, child in self.children().items():
            yield from child.named_modules(f"{prefix}.{name}" if prefix else name)

    def build(self, backend=None, dtype="float32", seed: int | None = 0):
        """Allocate this layer tree's parameters in its own flat buffer; returns self.

        Models call this for you; call it yourself to use a layer on its own.
        """
        backend = get_backend(backend, dtype=dtype, seed=seed)
        from ..params import FlatParameters

        self.flat = FlatParameters(self, backend)
        return self


class Layer(Module):
    """Base class of layers: ``forward``/``backward`` plus a rebuildable config."""

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        LAYER_TYPES[cls.__name__] = cls

    def _require_built(self):
        if self.backend is None:
            raise RuntimeError(f"{type(self).__name__} has no parameters yet: call .build() or put it in a model")

    def _scratch(self, name: str, shape, dtype=None):
        """A scratch array of ``shape``, kept and handed out again on every step.

        For intermediates that live from a forward pass to its backward pass (im2col
        columns, transposed copies), never for arrays a layer returns. Large buffers
        allocated afresh each step cost page faults and zeroing in the kernel; reusing
        them removes that. The storage grows when a larger shape is asked for.
        """
        xp, dtype = self.backend.xp, dtype or self.backend.dtype
        size = 1
        for s in shape:
            size *= int(s)
        store = self.__dict__.setdefault("_scratch_store", {})
        buf = store.get(name)
        if buf is None or buf.size < size or buf.dtype != dtype:
            buf = store[name] = xp.empty(size, dtype=dtype)
        return buf[:size].reshape(shape)

    def get_config(self) -> dict:
        """Constructor arguments (JSON-friendly) that rebuild this layer's architecture."""
        return {}

    @classmethod
    def from_config(cls, config: dict):
        return cls(**config)

    # math -----------------------------------------------------------------------
    def forward(self, x):
        raise NotImplementedError

    def backward(self, dy, input_grad: bool = True):
        raise NotImplementedError

    def __call__(self, x):
        return self.forward(x)

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"
