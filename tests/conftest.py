"""Shared test setup: hypothesis profiles and small real data.

Profiles: "ci" is derandomized (the same examples on every run, so CI is reproducible);
"dev" explores new examples each run. CI=true selects "ci"; HYPOTHESIS_PROFILE overrides.
"""

import os

import pytest
from hypothesis import HealthCheck, settings

settings.register_profile("ci", derandomize=True, deadline=None, max_examples=30, print_blob=True,
                          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
settings.register_profile("dev", deadline=None, max_examples=30,
                          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE") or ("ci" if os.environ.get("CI") else "dev"))

# Tests never use the network: with this set, microvae.datasets refuses to download, here and in
# the subprocesses and notebook kernels the tests start (they inherit the environment).
os.environ["MICROVAE_OFFLINE"] = "1"

FASHION_DIR = "/usr/share/datasets/fashion-mnist"


@pytest.fixture(scope="session")
def fashion_data():
    """((x_train, y_train), (x_test, y_test)) of Fashion-MNIST from Debian's dataset-fashion-mnist."""
    from microvae.datasets import load_fashion_mnist

    if not os.path.isdir(FASHION_DIR):
        pytest.fail(f"Fashion-MNIST is missing at {FASHION_DIR}: apt-get install dataset-fashion-mnist")
    return load_fashion_mnist(FASHION_DIR, download=False)


@pytest.fixture(scope="session")
def fashion_subset(fashion_data):
    """(x, y): the first 6000 Fashion-MNIST training images, float32 in [0, 1], shape (6000, 784)."""
    (x, y), _ = fashion_data
    return x[:6000], y[:6000]
