"""Flat parameter storage: every parameter of a model in one contiguous buffer.

A model's parameters live in ``FlatParameters.data`` and their gradients in
``FlatParameters.grad``, both 1-D arrays. Each layer's ``params[name]`` and
``grads[name]`` are *views* into those buffers, so an optimizer updates a whole model
in one pass over two arrays, zeroing the gradients is one ``fill(0)``, and a checkpoint
is one array.
"""

from __future__ import annotations

import gc
import math
import weakref

import numpy as np

from .layers.base import BoundViews, repeated_module

__all__ = ["FlatParameters", "ParameterSlice", "BoundViews"]


class FlatParameters:
    """Allocate one buffer for the parameters of ``root`` (a layer tree) and bind views.

    Parameters are initialised in place, in the deterministic order of the tree walk,
    from ``backend.rng`` (so the same seed gives the same initial model). A module built
    before, in a tree that is gone (the encoder of a loaded model that was then dropped),
    keeps its values, converted to this buffer's dtype and device; its draws are still made,
    so the other modules get the values the seed gives them. A module belongs
    to one tree: a module that another live tree built before still holds is refused
    (rebinding it would leave that tree's buffer driving nothing); rebuilding the same
    root is fine.

    Attributes
    ----------
    data, grad : 1-D arrays of ``size`` elements on the backend
    layout : list of (qualified_name, offset, shape), e.g. ("encoder.0.W", 0, (784, 512))
    replaced : True once ``root.build()`` ran again and moved the views to a new buffer (an
        optimizer made for this one then refuses to step, rather than update nothing)
    """

    replaced = False  # set when the tree is built again: its views then live in a new buffer

    def __reduce_ex__(self, protocol):
        """Refused, as for a built model (deepcopy and pickle failed on the backend's module):
        the layers' params and grads are views into this buffer, not into a copy."""
        raise TypeError(f"a {type(self).__name__} cannot be copied or pickled: the layers' params and grads are views "
                        f"into it, not into a copy; copy its values instead: flat.data.copy(), flat.grad.copy()")

    def __setattr__(self, name, value):
        # flat.data = other_array was taken: the layers went on computing with the views of the
        # old buffer while the optimizer updated, and checkpoints stored, the new one
        if name in ("backend", "size", "data", "grad", "layout") and name in self.__dict__ and value is not self.__dict__[name]:
            # (the same object comes back from flat.grad *= 2: NumPy scaled it in place)
            advice = f"write the values into it: flat.{name}[...] = values" if name in ("data", "grad") else "build a new model"
            raise AttributeError(f"{type(self).__name__}.{name} is fixed once allocated: the layers' params and grads are "
                                 f"views into data and grad, so anything put in its place would not be what the model "
                                 f"computes with; {advice}")
        super().__setattr__(name, value)

    def __init__(self, root, backend):
        self.backend = backend
        repeat = repeated_module(root.named_modules())
        if repeat is not None:
            first, second, module = repeat
            raise ValueError(f"the same {module!r} object is at {first or 'the root'} and at {second} of this model; "
                             "give each place a layer of its own")
        _check_not_in_another_tree(root)
        entries, kept = [], {}
        for path, module in root.named_modules():
            previous = module.__dict__.get("_buffer")  # the buffer that held this module's parameters before
            previous = previous() if previous is not None else None
            if previous is not None:  # an optimizer of it would update nothing: it now refuses to step
                previous.replaced = True
            tree = module.__dict__.get("_tree")
            if isinstance(module.params, BoundViews) and (tree is None or tree() is not root):
                # built in a tree that is gone (a loaded model's encoder, passed to a new one):
                # its trained values are kept, not replaced by a fresh initialisation
                kept[id(module)] = dict(module.params)
            module._buffer = weakref.ref(self)
            module.backend = backend
            # a new buffer: the last forward pass's caches belong to the old one
            for cache in ("_out_shape", "_cache"):
                if cache in vars(module):
                    setattr(module, cache, None)
            module._tree = weakref.ref(root)
            for name, (shape, init) in module.parameter_specs().items():
                qualified = f"{path}.{name}" if path else name
                entries.append((qualified, module, name, tuple(int(s) for s in shape), init))
        self.size = sum(math.prod(shape) for _, _, _, shape, _ in entries)
        self.data = backend.zeros(self.size)
        self.grad = backend.zeros(self.size)
        self.layout = []
        offset, views = 0, {}  # id(module) -> (module, {name: parameter view}, {name: gradient view})
        for qualified, module, name, shape, init in entries:
            n = math.prod(shape)
            view = self.data[offset : offset + n].reshape(shape)
            view[...] = init(backend, shape)  # drawn even where kept: the new layers get the values a seed gives them
            values = kept.get(id(module), {}).get(name)
            if values is not None and tuple(values.shape) == shape:
                view[...] = backend.to_device(values if isinstance(values, np.ndarray) else values.get())
            _, params, grads = views.setdefault(id(module), (module, {}, {}))
            params[name], grads[name] = view, self.grad[offset : offset + n].reshape(shape)
            self.layout.append((qualified, offset, shape))
            offset += n
        for module, params, grads in views.values():
            module.params, module.grads = BoundViews("params", params), BoundViews("grads", grads)

    def zero_grad(self) -> None:
        """Set every gradient entry, and so every layer's gradient view, to 0. (A layer's
        backward pass writes its entries rather than adding to them.)"""
        self.grad.fill(0)

    def named(self):
        """Yield (qualified_name, parameter_view, gradient_view)."""
        for qualified, offset, shape in self.layout:
            n = math.prod(shape)
            yield (
                qualified,
                self.data[offset : offset + n].reshape(shape),
                self.grad[offset : offset + n].reshape(shape),
            )

    def layout_signature(self) -> list:
        """JSON-friendly description of the layout, stored in checkpoints to catch mismatches."""
        return [[name, list(shape)] for name, _, shape in self.layout]

    def subset(self, *prefixes: str) -> "ParameterSlice":
        """The parameters of the named sub-networks (e.g. "encoder"), as views of this buffer."""
        return ParameterSlice(self, *prefixes)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({len(self.layout)} tensors, {self.size} values, {self.backend!r})"


def release(root) -> None:
    """Let another tree take ``root``'s modules: for a model whose construction failed after
    its buffer was made (it may stay alive, e.g. in a REPL's last traceback)."""
    for _, module in root.named_modules():
        module._tree = None


def _held_elsewhere(root):
    """(path, module, other_root, path_there) for the first module of ``root``'s tree that
    another live tree, built before, still holds; else None."""
    trees = {}  # id(other root) -> {id(module): path} of that tree
    for path, module in root.named_modules():
        other = module.__dict__.get("_tree")
        other = other() if other is not None else None
        if other is None or other is root:
            continue
        if id(other) not in trees:
            trees[id(other)] = {id(m): p for p, m in other.named_modules()}
        if id(module) in trees[id(other)]:
            return path, module, other, trees[id(other)][id(module)]
    return None


def _check_not_in_another_tree(root) -> None:
    """Refuse a module that another live tree, built before, still holds.

    Binding it here would point its parameters into this buffer (and its backend at this
    one), leaving the other tree's buffer, optimizers and checkpoint loads driving
    nothing, without a word. Rebuilding the same root (a model's constructor, a second
    ``build()``) is fine: every module moves to the new buffer together. A tree that is
    gone, or that no longer holds the module, loses nothing: the module's values come along.
    """
    clash = _held_elsewhere(root)
    if clash is not None:
        del clash  # it holds the other tree: kept, that tree could not be collected below
        gc.collect()  # a tree dropped in a reference cycle answers its weak reference until collected
        clash = _held_elsewhere(root)
    if clash is None:
        return
    path, module, other, path_there = clash
    what = type(module).__name__ if module.children() else repr(module)  # (a Sequential's repr spans lines)
    here = f" at {path} of the {type(root).__name__} being built" if path else ""
    there = (f"a {type(other).__name__} built before holds it at {path_there}, and that model's buffer" if path_there
             else "it was built on its own before, and that buffer")
    raise ValueError(f"this {what}{here} already belongs to another model: {there} (with any optimizer or checkpoint "
                     f"load on it) would no longer drive it. Give each model layers of its own, e.g. "
                     f"{type(module).__name__}.from_config(layer.get_config()) for a new, unbuilt copy (copy its params "
                     f"after building to keep their values), or rebuild that {type(other).__name__} itself")


class ParameterSlice(FlatParameters):
    """The parameters of one or more sub-networks, as a contiguous slice of a model's flat buffer.

    ``data``/``grad`` are views into the parent's buffers, so a group optimizer, a
    checkpoint and the whole-model gradient checks all see the same numbers. The slice
    covers the layout entries named ``<prefix>.…`` for the given prefixes; they must be
    adjacent in the buffer (children of the model are laid out in ``children()`` order).
    """

    def __init__(self, parent: FlatParameters, *prefixes: str):  # no buffer of its own to allocate
        picked = [(name, offset, shape) for name, offset, shape in parent.layout
                  if any(name.startswith(prefix + ".") for prefix in prefixes)]
        if not picked:
            raise ValueError(f"no parameters named {'/'.join(prefixes)}.* in {parent!r}")
        start = picked[0][1]
        end = picked[-1][1] + math.prod(picked[-1][2])
        if end - start != sum(math.prod(shape) for _, _, shape in picked):
            raise ValueError(f"the parameters of {'/'.join(prefixes)} are not adjacent in the flat buffer")
        self._parent = parent
        self.backend = parent.backend
        self.size = end - start
        self.data = parent.data[start:end]
        self.grad = parent.grad[start:end]
        self.layout = [(name, offset - start, shape) for name, offset, shape in picked]

    @property
    def replaced(self) -> bool:
        """Whether the buffer this slice is a view of was replaced (see ``FlatParameters``)."""
        return self._parent.replaced
