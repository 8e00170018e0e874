"""Every public function, class and method of the library says what it does.

A reader finds a layer's math, a loss's convention or a helper's contract in its docstring.
The compiled kernels are twins of the NumPy reference kernels (same names, same results):
their documentation is the twin's, so each must have a documented twin of the same name.
"""

import importlib
import inspect
import pkgutil

import pytest

import microvae

GPU_MODULES = {"microvae.kernels.gpu", "microvae.kernels.conv_gpu", "microvae.kernels.rnn_gpu"}  # import CuPy
TWINS = {"microvae.kernels.cpu": "microvae.kernels.reference", "microvae.kernels.conv_cpu": "microvae.kernels.conv_reference",
         "microvae.kernels.rnn_cpu": "microvae.kernels.rnn_reference"}
MODULES = sorted(m.name for m in pkgutil.walk_packages(microvae.__path__, "microvae.")
                 if m.name not in GPU_MODULES and not m.name.endswith("__main__"))


def public_names(module):
    """(qualified name, object) of each public function, class and method defined in ``module``."""
    for name, obj in vars(module).items():
        if name.startswith("_") or getattr(obj, "__module__", None) != module.__name__:
            continue
        if inspect.isfunction(obj) or inspect.isclass(obj):
            yield name, obj
        if inspect.isclass(obj):
            for attr, member in vars(obj).items():
                if not attr.startswith("_") and inspect.isfunction(member):
                    yield f"{name}.{attr}", getattr(obj, attr)


def test_the_walk_finds_the_library():
    assert {"microvae.layers.dense", "microvae.losses.bernoulli", "microvae.models.vae", "microvae.kernels.cpu"} <= set(MODULES)
    names = dict(public_names(importlib.import_module("microvae.layers.dense")))
    assert {"Dense", "Dense.forward", "Dense.backward"} <= names.keys()


@pytest.mark.parametrize("module_name", MODULES)
def test_public_names_have_docstrings(module_name):
    module = importlib.import_module(module_name)
    assert inspect.getdoc(module), f"{module_name} has no module docstring"
    twin = importlib.import_module(TWINS[module_name]) if module_name in TWINS else None
    undocumented = []
    for name, obj in public_names(module):
        if inspect.getdoc(obj):  # (a method may take its base class's)
            continue
        if twin is not None and inspect.getdoc(getattr(twin, name, None)):
            continue
        undocumented.append(name)
    assert not undocumented, f"{module_name}: no docstring on {', '.join(undocumented)}"
