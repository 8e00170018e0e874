"""A chain of layers."""

from __future__ import annotations

from ..checks import check_bool
from .base import Layer, layer_from_spec, layer_to_spec, repeated_module


class Sequential(Layer):
    """y = f_n(…f_2(f_1(x))).  Backward runs the chain in reverse: dx = J_1ᵀ(…J_nᵀ(dy))."""

    def __init__(self, *layers: Layer):
        super().__init__()
        if len(layers) == 1 and isinstance(layers[0], (list, tuple)):
            layers = tuple(layers[0])
        for layer in layers:
            if not isinstance(layer, Layer):
                raise TypeError(f"Sequential takes Layer instances, got {type(layer).__name__}")
        # checked here, at any depth, so the mistake shows where it is made; positions are
        # dotted paths, "2.0" being layer 0 of the Sequential at position 2
        repeat = repeated_module(pair for i, layer in enumerate(layers) for pair in layer.named_modules(str(i)))
        if repeat is not None:
            first, second, module = repeat
            what = type(module).__name__ if module.children() else repr(module)
            raise ValueError(f"the same {what} object is at positions {first} and {second} of the Sequential; "
                             "pass a new layer for each position")
        self.layers = list(layers)

    def children(self):
        return {str(i): layer for i, layer in enumerate(self.layers)}

    def get_config(self):
        return {"layers": [layer_to_spec(layer) for layer in self.layers]}

    @classmethod
    def from_config(cls, config):
        # named here: config["layers"] would be a bare KeyError, and another key would pass unread
        if not isinstance(config, dict) or set(config) != {"layers"} or not isinstance(config["layers"], (list, tuple)):
            raise ValueError(f"a Sequential config must be {{'layers': [layer specs]}}, got {config!r}")
        return cls(*[layer_from_spec(spec) for spec in config["layers"]])

    def forward(self, x):
        if not self.layers:  # the identity, which checks and converts its input as any layer does
            return self._output(self._input(x))
        for layer in self.layers:
            x = layer.forward(x)
        return x

    def backward(self, dy, input_grad: bool = True):
        input_grad = check_bool("input_grad", input_grad)
        if not self.layers:
            dy = self._upstream(dy)
            return dy if input_grad else None
        for i in range(len(self.layers) - 1, -1, -1):
            dy = self.layers[i].backward(dy, input_grad=input_grad or i > 0)
        return dy

    def __len__(self):
        return len(self.layers)

    def __getitem__(self, i):
        return self.layers[i]

    def __repr__(self):
        inner = ",\n  ".join(repr(layer) for layer in self.layers)
        return f"Sequential(\n  {inner}\n)"
