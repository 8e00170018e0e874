"""Shared test setup: hypothesis profiles and small real data.

Profiles: "ci" is derandomized (the same examples on every run, so CI is reproducible);
"dev" explores new examples each run. CI=true selects "ci"; HYPOTHESIS_PROFILE overrides.
"""

import gzip
import os

import numpy as np
import pytest
from hypothesis import HealthCheck, settings

settings.register_profile("ci", derandomize=True, deadline=None, max_examples=30, print_blob=True,
                          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
settings.register_profile("dev", deadline=None, max_examples=30,
                          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE") or ("ci" if os.environ.get("CI") else "dev"))

FASHION_DIR = "/usr/share/datasets/fashion-mnist"


def _read_idx_gz(path):
    with gzip.open(path, "rb") as f:
        raw = f.read()
    ndim = raw[3]
    dims = np.frombuffer(raw, ">u4", count=ndim, offset=4)
    return np.frombuffer(raw, np.uint8, offset=4 + 4 * ndim).reshape(dims)


@pytest.fixture(scope="session")
def fashion_subset():
    """(x, y): the first 6000 Fashion-MNIST training images, float32 in [0, 1], shape (6000, 784)."""
    images = os.path.join(FASHION_DIR, "train-images-idx3-ubyte.gz")
    if not os.path.exists(images):
        pytest.fail(f"Fashion-MNIST is missing at {FASHION_DIR}: apt-get install dataset-fashion-mnist")
    x = _read_idx_gz(images)[:6000].reshape(6000, 784).astype(np.float32) / 255.0
    y = _read_idx_gz(os.path.join(FASHION_DIR, "train-labels-idx1-ubyte.gz"))[:6000].astype(np.int64)
    return x, y
