"""Hot-loop kernels, one implementation per device behind the same names.

- ``reference``: plain NumPy, the readable definition of each kernel;
- ``cpu``: Numba (``@njit(cache=True)``) twins of the reference kernels;
- ``gpu``: CuPy twins (ElementwiseKernels).

Every kernel writes into caller-provided output arrays so training steps can reuse
preallocated workspaces. Tests hold each compiled kernel equal to its reference twin.

An output shares no memory with any other argument, except that ``relu_forward``,
``bias_relu_forward``, ``sigmoid`` (and the CPU's ``conv3x3_same``) may write x itself, in
place. The compiled twins refuse any other overlap by name before writing anything (their
loops and threads would read values already overwritten); the reference, NumPy buffering
overlaps, takes it.
"""

CORE_KERNELS = ("relu_forward", "relu_backward", "bias_relu_forward", "bias_relu_backward", "sigmoid", "bernoulli_nll_logits", "adam_update", "sgd_update")
CONV_KERNELS = ("im2col", "col2im", "maxpool_forward", "maxpool_backward")
RNN_KERNELS = ("rnn_tanh_forward_step", "rnn_tanh_backward_step", "gru_forward_step", "gru_backward_step")

# Every device module (reference, cpu, gpu) provides each of these names; tests hold them to it.
KERNEL_NAMES = CORE_KERNELS + CONV_KERNELS + RNN_KERNELS
