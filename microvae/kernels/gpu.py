"""CuPy kernels for the GPU backend: twins of ``reference.py`` (same names, same results).

Imported only when ``backend="cupy"`` is asked for, so CuPy stays an optional extra.
"""

from __future__ import annotations

import cupy as cp

from . import shapes


_relu_forward = cp.ElementwiseKernel("T x", "T y", "y = x <= 0 ? (T)0 : x", "microvae_relu_forward")
_relu_backward = cp.ElementwiseKernel("T dy, T y", "T dx", "dx = y > 0 ? dy : (T)0", "microvae_relu_backward")
_bias_relu_forward = cp.ElementwiseKernel("T x, T b", "T y", "T v = x + b; y = v <= 0 ? (T)0 : v", "microvae_bias_relu_forward")
_sigmoid = cp.ElementwiseKernel(
    "T x",
    "T y",
    "T e = exp(-fabs(x)); y = x >= 0 ? (T)1 / ((T)1 + e) : e / ((T)1 + e);",
    "microvae_sigmoid",
)
_bernoulli = cp.ElementwiseKernel(
    "T l, T t, float64 scale",
    "T d, float64 loss",
    """
    double e = exp(-fabs((double)l));
    double softplus = (l > 0 ? (double)l : 0.0) + log1p(e);
    double prob = l >= 0 ? 1.0 / (1.0 + e) : e / (1.0 + e);
    loss = softplus - (double)t * (double)l;
    d = (T)((prob - (double)t) * scale);
    """,
    "microvae_bernoulli_nll_logits",
)
# Adam and SGD compute in the buffers' dtype, in the reference's order, as the Numba twins do:
# float32 parameters get float32 arithmetic, and the same overflows.
_adam = cp.ElementwiseKernel(
    "T g, T b1, T c1, T b2, T c2, T lr_t, T eps_t",
    "T p, T m, T v",
    """
    T mi = b1 * m + c1 * g;
    T vi = b2 * v + c2 * g * g;
    m = mi; v = vi;
    p -= lr_t * mi / ((T)sqrt(vi) + eps_t);
    """,
    "microvae_adam_update",
)
_sgd = cp.ElementwiseKernel(
    "T g, T lr, T mu",
    "T p, T u",
    "T ui = mu * u + g; u = ui; p -= lr * ui;",
    "microvae_sgd_update",
)


# why an out that is x itself is right on the GPU (itself_or_apart's message gives it)
_IN_PLACE = "each thread reads its own element before writing it"


def relu_forward(x, out):
    shapes.elementwise("relu_forward", x=x.shape, out=out.shape)
    shapes.itself_or_apart("relu_forward", x, out, why=_IN_PLACE, xp=cp)
    _relu_forward(x, out)
    return out


def relu_backward(dy, y, out):
    shapes.elementwise("relu_backward", dy=dy.shape, y=y.shape, out=out.shape)
    shapes.apart("relu_backward", dict(out=out), dict(dy=dy, y=y), xp=cp)
    _relu_backward(dy, y, out)
    return out


def bias_relu_forward(x, b, out):
    shapes.rows("bias_relu_forward", "b", b.shape, x=x.shape, out=out.shape)
    shapes.itself_or_apart("bias_relu_forward", x, out, why=_IN_PLACE, xp=cp)
    shapes.apart("bias_relu_forward", dict(out=out), dict(b=b), xp=cp)
    _bias_relu_forward(x, b, out)  # b broadcasts over the rows
    return out


def bias_relu_backward(dy, y, out, db):
    shapes.rows("bias_relu_backward", "db", db.shape, dy=dy.shape, y=y.shape, out=out.shape)
    shapes.apart("bias_relu_backward", dict(out=out, db=db), dict(dy=dy, y=y), xp=cp)
    _relu_backward(dy, y, out)
    out.sum(axis=0, out=db)
    return out


def sigmoid(x, out):
    shapes.elementwise("sigmoid", x=x.shape, out=out.shape)
    shapes.itself_or_apart("sigmoid", x, out, why=_IN_PLACE, xp=cp)
    _sigmoid(x, out)
    return out


def bernoulli_nll_logits(logits, x, scale, dlogits, row_loss):
    shapes.bernoulli(logits.shape, x.shape, dlogits.shape, row_loss.shape)
    shapes.apart("bernoulli_nll_logits", dict(dlogits=dlogits, row_loss=row_loss), dict(logits=logits, x=x), xp=cp)
    elementwise_loss = cp.empty(logits.shape, dtype=cp.float64)
    _bernoulli(logits, x, float(scale), dlogits, elementwise_loss)
    row_loss[...] = elementwise_loss.sum(axis=1)
    return row_loss


def adam_update(param, grad, m, v, beta1, beta2, lr_t, eps_t):
    shapes.elementwise("adam_update", param=param.shape, grad=grad.shape, m=m.shape, v=v.shape)
    shapes.one_dtype("adam_update", param=param, grad=grad, m=m, v=v)
    shapes.apart("adam_update", dict(param=param, m=m, v=v), dict(grad=grad), xp=cp)
    t = param.dtype.type  # c1 = 1 − β₁ and c2 = 1 − β₂ rounded once, as on the CPU
    _adam(grad, t(beta1), t(1.0 - beta1), t(beta2), t(1.0 - beta2), t(lr_t), t(eps_t), param, m, v)


def sgd_update(param, grad, velocity, lr, momentum):
    shapes.elementwise("sgd_update", param=param.shape, grad=grad.shape, velocity=velocity.shape)
    shapes.one_dtype("sgd_update", param=param, grad=grad, velocity=velocity)
    shapes.apart("sgd_update", dict(param=param, velocity=velocity), dict(grad=grad), xp=cp)
    t = param.dtype.type
    _sgd(grad, t(lr), t(momentum), param, velocity)


# Dense layers' products: cuBLAS, through CuPy's matmul
def matmul(a, b, out):
    return cp.matmul(a, b, out=out)


def matmul_tn(a, b, out):
    return cp.matmul(a.T, b, out=out)


def matmul_nt(a, b, out):
    return cp.matmul(a, b.T, out=out)


from .rnn_gpu import *  # noqa: E402,F401,F403
from .conv_gpu import *  # noqa: E402,F401,F403
