"""Loading a bench/ script in a test, the way it runs: its neighbours (``_common``) importable."""

import importlib.util
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BENCH = os.path.join(ROOT, "bench")


def load_bench(name: str):
    """bench/<name>.py as a fresh module object (a new one on every call, so a test's
    monkeypatching stays its own); bench/ is put on sys.path once, as running the script does."""
    if BENCH not in sys.path:
        sys.path.insert(0, BENCH)
    spec = importlib.util.spec_from_file_location(f"{name}_under_test", os.path.join(BENCH, f"{name}.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
