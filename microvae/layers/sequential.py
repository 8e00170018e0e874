"""A chain of layers."""

from __future__ import annotations

from .base import Layer, layer_from_spec, layer_to_spec


class Sequential(Layer):
    """y = f_n(…f_2(f_1(x))).  Backward runs the chain in reverse: dx = J_1ᵀ(…J_nᵀ(dy))."""

    def __init__(self, *layers: Layer):
        super().__init__()
        if len(layers) == 1 and isinstance(layers[0], (list, tuple)):
            layers = tuple(layers[0])
        for layer in layers:
            if not isinstance(layer, Layer):
                raise TypeError(f"Sequential takes Layer instances, got {type(layer).__name__}")
        # Each layer keeps what its backward pass needs from its last forward pass, and the
        # flat buffer would allocate its parameters twice: one object at two positions, at
        # any depth (a layer inside a nested Sequential too), gets wrong gradients.
        # Positions are dotted paths, "2.0" being layer 0 of the Sequential at position 2.
        first_position = {}
        for i, layer in enumerate(layers):
            for path, module in layer.named_modules(str(i)):
                if id(module) in first_position:
                    what = type(module).__name__ if module.children() else repr(module)
                    raise ValueError(f"the same {what} object is at positions {first_position[id(module)]} and {path} "
                                     "of the Sequential; pass a new layer for each position")
                first_position[id(module)] = path
        self.layers = list(layers)

    def children(self):
        return {str(i): layer for i, layer in enumerate(self.layers)}

    def get_config(self):
        return {"layers": [layer_to_spec(layer) for layer in self.layers]}

    @classmethod
    def from_config(cls, config):
        return cls(*[layer_from_spec(spec) for spec in config["layers"]])

    def forward(self, x):
        for layer in self.layers:
            x = layer.forward(x)
        return x

    def backward(self, dy, input_grad: bool = True):
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
