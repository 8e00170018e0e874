"""Making an installed package look absent for one test."""

import sys


def make_absent(monkeypatch, package: str) -> None:
    """``import package`` (and ``from package.sub import x``) raises ImportError for the rest of
    the test, as where it is not installed. Submodules an earlier test imported are hidden too:
    with only ``sys.modules[package]`` set to None, ``from torch.profiler import profile`` still
    returned the cached submodule (a failure seen only where PyTorch is installed)."""
    for name in list(sys.modules):
        if name == package or name.startswith(package + "."):
            monkeypatch.setitem(sys.modules, name, None)
    monkeypatch.setitem(sys.modules, package, None)
