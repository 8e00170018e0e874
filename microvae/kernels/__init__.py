"""Hot-loop kernels, one implementation per device behind the same names.

- ``reference``: plain NumPy, the readable definition of each kernel;
- ``cpu``: Numba (``@njit(cache=True)``) twins of the reference kernels;
- ``gpu``: CuPy twins (ElementwiseKernel / RawKernel).

Every kernel writes into caller-provided output arrays so training steps can reuse
preallocated workspaces. Tests hold each compiled kernel equal to its reference twin.
"""

KERNEL_NAMES = (
    "relu_forward",
    "relu_backward",
    "sigmoid",
    "bernoulli_nll_logits",
    "adam_update",
    "sgd_update",
)
