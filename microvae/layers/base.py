"""The Layer contract every building block follows.

- ``forward(x)`` computes the output and caches only what ``backward`` needs;
- ``backward(dy)`` takes dL/dy, *writes* (overwrites) the gradients of its parameters into
  ``self.grads`` and returns dL/dx. With ``input_grad=False`` it may skip dL/dx and return
  None (the first layer of an encoder never needs it). dy must have the shape of the
  output of the last forward pass (ValueError otherwise, RuntimeError before any pass).
- Both take arrays of any real dtype (bool, integer, float) and memory order, and compute in
  the layer's dtype (``backend.dtype``): other inputs are converted (``_input``, ``_upstream``);
  complex and object arrays are refused rather than cast.

A layer instance is used once per forward pass; its cache holds one pass, until the next
pass or ``forget()`` (which a model's inference methods, ``evaluate`` and ``fit`` call on the
way out, as no backward pass follows them: no batch's activations stay held). The cache keeps
references, not copies: a layer's input (Dense, the convolutions) and the output it returned
(the activations, anything with a fused ReLU) are read again by ``backward``, so change
neither in place between the two (a data loader refilling its batch buffer, ``h -= 0.5``).
Flatten and Reshape return views of x and of dy, and an empty Sequential x and dy themselves
(in the layer's dtype). The recurrent layers copy their inputs and mask.

Parameters are declared, not allocated: ``parameter_specs()`` names each parameter's shape
and initialiser, and ``FlatParameters`` allocates them as views into one flat buffer. Once
built, ``params`` and ``grads`` take new values written into those views
(``params["W"][...] = values``) and refuse another array in a view's place (``BoundViews``).
"""

from __future__ import annotations

import inspect
import math

from ..backend import get_backend
from ..checks import check_array_like, check_real_array

__all__ = ["Layer", "Module", "he_normal", "glorot_uniform", "zeros", "INITIALIZERS", "layer_to_spec", "layer_from_spec"]

LAYER_TYPES: dict = {}


def repeated_module(named_modules):
    """The first module that appears twice among ``(path, module)`` pairs, as
    ``(first_path, second_path, module)``, or None. One object at two places of a tree keeps
    one cache for two passes and would get two slices of a flat parameter buffer."""
    first_path = {}
    for path, module in named_modules:
        if id(module) in first_path:
            return first_path[id(module)], path, module
        first_path[id(module)] = path
    return None


def layer_to_spec(layer) -> dict:
    """A JSON-friendly description {"type", "config"} from which the layer can be rebuilt."""
    return {"type": type(layer).__name__, "config": layer.get_config()}


def layer_from_spec(spec: dict):
    """Rebuild a (parameter-less, unbuilt) layer from ``layer_to_spec``'s output."""
    try:
        cls = LAYER_TYPES[spec["type"]]
    except (KeyError, TypeError) as exc:
        raise ValueError(f"unknown layer spec {spec!r}; known types: {sorted(LAYER_TYPES)}") from exc
    config = spec.get("config", {})
    if not isinstance(config, dict):
        raise TypeError(f"the config of layer spec {spec!r} must be a dict of {cls.__name__}'s arguments, got {config!r}")
    return cls.from_config(config)


def he_normal(fan_in, fan_out):
    """He et al. (2015): N(0, 2/fan_in), for layers followed by ReLU. ``fan_out`` is unused;
    it is taken so that every entry of ``INITIALIZERS`` is called the same way."""

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
    """An initializer: zeros of ``shape`` from ``backend`` (biases start here)."""
    return backend.zeros(shape)


INITIALIZERS = {"he": he_normal, "glorot": glorot_uniform}


class BoundViews(dict):
    """A built layer's ``params`` (or ``grads``): {name: view into its model's flat buffer}.

    Putting another array under a name would cut that parameter loose from the buffer that
    the optimizer updates and checkpoints store: the layer would compute with values nothing
    trains or saves. So the mapping refuses it, and says to write into the view instead
    (``layer.params["W"][...] = values``). Copies of it (``dict(...)``, ``copy.copy``) are
    plain dicts."""

    def __init__(self, kind: str, views: dict):
        super().__init__(views)
        self.kind = kind  # "params" or "grads"

    def __setitem__(self, name, value):
        if name in self and value is dict.__getitem__(self, name):
            return  # params["W"] += step: NumPy updated the view in place, and Python stores it back
        raise TypeError(f"{self.kind}[{name!r}] of a built layer is a view into its flat buffer (model.flat, or layer.flat "
                        f"for a layer built on its own), which the optimizer updates and checkpoints store; write the "
                        f"values into it: {self.kind}[{name!r}][...] = values (another array put in its place would be "
                        f"neither trained nor saved)")

    def _refuse(self, *args, **kwargs):
        """Refused: the names of a built layer's views are fixed (see the class docstring)."""
        raise TypeError(f"a built layer's {self.kind} are views into its flat buffer: their names are fixed, and "
                        f"values are written into them ({self.kind}['W'][...] = values)")

    __delitem__ = update = setdefault = pop = popitem = clear = __ior__ = _refuse

    def __reduce__(self):  # copy.copy, copy.deepcopy and pickle make a plain dict
        return dict, (dict(self),)


class _Views:
    """``Module.params`` / ``Module.grads``: a plain dict until the module is built, then the
    ``BoundViews`` that ``FlatParameters`` puts there; replacing that whole mapping
    (``layer.params = {...}``) is refused as replacing one of its views is."""

    def __set_name__(self, owner, name):
        self.name = name

    def __get__(self, module, owner=None):
        if module is None:
            return self
        try:
            return module.__dict__[self.name]
        except KeyError:
            raise AttributeError(f"{type(module).__name__} has no {self.name!r} yet (Module.__init__ was not called)") from None

    def __set__(self, module, value):
        if isinstance(module.__dict__.get(self.name), BoundViews) and not isinstance(value, BoundViews):
            raise AttributeError(f"a built {type(module).__name__}'s {self.name} are views into its flat buffer, which the "
                                 f"optimizer updates and checkpoints store; a new dict in their place would be neither "
                                 f"trained nor saved; write the values into the views: {self.name}['W'][...] = values")
        module.__dict__[self.name] = value


class Module:
    """A node in a tree of parameterised parts (layers, and the models built from them)."""

    params, grads = _Views(), _Views()

    def __init__(self):
        self.params: dict = {}
        self.grads: dict = {}
        self.backend = None
        self.flat = None
        self._tree = None  # weak reference to the root whose FlatParameters bound this module (see params.py)
        self._buffer = None  # weak reference to that FlatParameters

    def __reduce_ex__(self, protocol):
        """Unbuilt, a module copies and pickles as any object. Built, it refuses: its parameters
        are views into one flat buffer, which a copy would cut loose from its optimizer (and a
        pickle would be an executable file, which microvae never writes)."""
        if self.backend is None:
            return super().__reduce_ex__(protocol)
        raise TypeError(f"a built {type(self).__name__} cannot be copied or pickled (its parameters are views into one "
                        f"flat buffer): {self._how_to_copy()}")

    def _how_to_copy(self) -> str:
        name = type(self).__name__
        return (f"make a new one from its config and copy the values: new = {name}.from_config(layer.get_config())"
                ".build(...); new.flat.data[...] = layer.flat.data")

    def parameter_specs(self) -> dict:
        """{name: (shape, initializer(backend, shape) -> array)}; empty for parameter-free layers."""
        return {}

    def children(self) -> dict:
        """{name: Layer} of sub-layers, in a fixed order."""
        return {}

    def named_modules(self, prefix: str = ""):
        """Yield (dotted_path, layer) for this layer and all its descendants, depth first; the
        paths start with ``prefix`` (default "": this layer's own path is "")."""
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
        if cls.forward is not Layer.forward:  # not the shared bases (_ConvBase, _Recurrent): they compute nothing
            LAYER_TYPES[cls.__name__] = cls

    # The shape of the last forward pass's output, which is what backward's dy must have
    # (None: no forward pass yet). Set by ``_output`` once the pass has finished, so a pass
    # that raised leaves the previous one's shape and caches together.
    _out_shape = None

    # what forward keeps for backward, by the names the layers use; ``forget`` drops it
    _FORWARD_CACHE = ("_x", "_y", "_positive", "_argmax", "_cache")

    def forget(self):
        """Drop what the last forward pass kept for backward (its input, output, masks, argmax),
        here and in any sublayer. Models call it after inference and at the end of ``fit``:
        the caches of a ConvVAE's last 512-row ``evaluate`` block held 113 MiB. backward then
        raises as before any forward pass; parameters and scratch buffers stay. The names
        cleared are ``_FORWARD_CACHE``'s: a layer of one's own keeps its cache under them (or
        extends the tuple), and nothing it needs after inference."""
        for _, module in self.named_modules():
            for name in getattr(module, "_FORWARD_CACHE", ()):
                if module.__dict__.get(name) is not None:
                    setattr(module, name, None)
            if "_out_shape" in module.__dict__:
                del module._out_shape  # back to the class's None: no pass to go back through

    def _require_built(self):
        if self.backend is None:
            missing = "parameters" if self.parameter_specs() else "backend"  # (ReLU has no parameters to wait for)
            raise RuntimeError(f"{type(self).__name__} has no {missing} yet: call .build() or put it in a model")

    def _input(self, x, contiguous: bool = False, method: str = "forward", name: str | None = None):
        """``x`` as an array of this layer's dtype (C-contiguous if ``contiguous``, for kernels).

        Integer or bool inputs become floats, and a float64 array reaching a float32 layer
        (or the reverse) is converted rather than changing the precision of the pass and
        of its output. A no-op, with no copy, when ``x`` is already right. Complex and object
        arrays are refused (TypeError). ``method`` and ``name`` (the argument, where a method
        takes several) are what an error names.
        """
        self._require_built()
        check_array_like(x, f"{type(self).__name__}.{method}", name)
        check_real_array(x, type(self).__name__, method, name or "its input")
        xp, dtype = self.backend.xp, self.backend.dtype
        return xp.asarray(x, dtype=dtype, order="C" if contiguous else None)

    def _output(self, y):
        """Record ``y``'s shape for ``_upstream``'s check; return ``y``."""
        self._out_shape = tuple(y.shape)
        return y

    def _upstream(self, dy, contiguous: bool = False):
        """``dy`` checked against the last forward pass's output and converted as ``_input`` does.

        The kernels index dy by the caches of that pass (ReLU's output, MaxPool2D's argmax)
        with no bounds checks, and the convolutions read their route and geometry from
        dy's shape: a dy of any other shape would read out of bounds or give wrong
        gradients without a word, and one that merely broadcasts would pass silently.
        """
        if self._out_shape is None:
            raise RuntimeError(f"{type(self).__name__}.backward called before forward (since it was last built, or forget())")
        check_array_like(dy, f"{type(self).__name__}.backward", "dy")
        if not hasattr(dy, "shape"):  # a nested list, as forward takes one
            dy = self.backend.xp.asarray(dy)
        if dy.shape != self._out_shape:
            raise ValueError(f"{self!r}.backward expects dy of shape {self._out_shape} (the output of its last forward "
                             f"pass), got {tuple(dy.shape)}")
        check_real_array(dy, type(self).__name__, "backward", "dy")
        xp, dtype = self.backend.xp, self.backend.dtype
        return xp.asarray(dy, dtype=dtype, order="C" if contiguous else None)

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
        """A new, unbuilt layer from ``get_config()``'s arguments."""
        try:
            signature = inspect.signature(cls)
        except (TypeError, ValueError):  # no signature to check against: let the constructor judge
            signature = None
        if signature is not None:
            try:  # a missing or unknown key is named here, not by a TypeError from __init__ naming no spec
                signature.bind(**config)
            except TypeError as exc:
                raise TypeError(f"a {cls.__name__} config takes the arguments {signature}; {config!r} does not fit: {exc}") from None
        return cls(**config)

    # math -----------------------------------------------------------------------
    def forward(self, x):
        """Return y = f(x), computed in the layer's dtype, and keep what ``backward`` needs.
        Raises RuntimeError before ``build`` and ValueError for an input of the wrong shape."""
        raise NotImplementedError

    def backward(self, dy, input_grad: bool = True):
        """Given dy = dL/dy for the last forward pass (same shape as its output), overwrite
        ``self.grads`` with dL/dθ and return dL/dx (None with ``input_grad=False``).
        Raises RuntimeError before any forward pass and ValueError for a dy of another shape."""
        raise NotImplementedError

    def __call__(self, x):
        return self.forward(x)

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"
