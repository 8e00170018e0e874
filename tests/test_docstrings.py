"""Every public function, class and method of the library says what it does.

A reader finds a layer's math, a loss's convention or a helper's contract in its docstring.
The compiled kernels are twins of the NumPy reference kernels (same names, same results):
their documentation is the twin's, so each must have a documented twin of the same name.
"""

import importlib
import inspect
import pkgutil
import re

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


# Each argument of what users call is named in the docstring that help() shows for it ------------------
# A reader finds a function's arguments in help(); one not named there is undocumented, however clear
# its name seems, and a renamed or added argument whose docstring was not brought along goes unnoticed.
ARGUMENT_CLASSES = [microvae.VAE, microvae.CVAE, microvae.ConvVAE, microvae.AAE, microvae.VRAE, microvae.HierarchicalVRAE,
                    microvae.Adam, microvae.SGD, microvae.ModelCheckpoint, microvae.EarlyStopping]
ARGUMENT_MODULES = ["microvae.metrics", "microvae.applications"]

# (where the function is defined, argument): arguments left unnamed on purpose. Keep it short; an
# entry that no longer misses is reported, so that the set does not outlive its reasons.
UNNAMED_ARGUMENTS: set = set()


def mentions(name: str, doc: str) -> bool:
    """Whether ``doc`` names ``name`` as a word of its own: ``seed`` or seed= or "(x, y)", not "seeded"."""
    return re.search(rf"(?<!\w){re.escape(name)}(?!\w)", doc) is not None


def argument_callables():
    """(label, function, its arguments to document, the docstring help() shows for it)."""
    for cls in ARGUMENT_CLASSES:
        for name, function in inspect.getmembers(cls, inspect.isfunction):
            if name.startswith("_") and name != "__init__":
                continue
            arguments = list(inspect.signature(function).parameters)
            if not isinstance(inspect.getattr_static(cls, name), staticmethod):
                arguments = arguments[1:]  # self
            doc = inspect.getdoc(getattr(cls, name)) or ""  # a method's own, or the one it overrides (as help shows it)
            if name == "__init__":  # its arguments are in the class docstring, which help() shows above it
                doc = (function.__doc__ or "") + "\n" + (inspect.getdoc(cls) or "")
            yield f"{cls.__name__}.{name}", function, arguments, doc
    for module_name in ARGUMENT_MODULES:
        module = importlib.import_module(module_name)
        for name, function in inspect.getmembers(module, inspect.isfunction):
            if not name.startswith("_") and function.__module__ == module_name:
                yield f"{module_name}.{name}", function, list(inspect.signature(function).parameters), inspect.getdoc(function) or ""


def unnamed_arguments():
    """{(label, where defined, argument)} of the arguments that the docstring does not name."""
    unnamed = set()
    for label, function, arguments, doc in argument_callables():
        for argument in arguments:
            if argument in ("self", "args", "kwargs"):  # a pass-through; a named **options is documented
                continue
            if not mentions(argument, doc):
                unnamed.add((label, f"{function.__module__}.{function.__qualname__}", argument))
    return unnamed


def test_mentions_matches_whole_words():
    assert mentions("seed", "``seed`` fixes it") and mentions("seed", "fit(seed=3)") and mentions("x", "p(x|z)")
    assert not mentions("seed", "seeded by the model") and not mentions("x", "the max") and not mentions("n_bins", "bins")


def test_the_argument_walk_finds_the_api():
    labels = {label for label, *_ in argument_callables()}
    assert {"VAE.fit", "VAE.__init__", "VRAE.fit", "Adam.__init__", "EarlyStopping.on_epoch_end",
            "microvae.metrics.iwae_bound", "microvae.applications.add_noise"} <= labels


def test_every_argument_is_named_in_its_docstring():
    found = unnamed_arguments()
    unexpected = sorted(f"{label}: {argument}" for label, where, argument in found if (where, argument) not in UNNAMED_ARGUMENTS)
    assert not unexpected, "these docstrings do not name the argument: " + "; ".join(unexpected)
    stale = UNNAMED_ARGUMENTS - {(where, argument) for _, where, argument in found}
    assert not stale, f"UNNAMED_ARGUMENTS lists arguments that are now documented (or gone): {sorted(stale)}"
