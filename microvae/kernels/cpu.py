"""Numba kernels for the CPU backend: twins of ``reference.py`` (same names, same results).

Compiled with ``cache=True`` so a second process loads machine code from disk instead of
recompiling. Arguments must be C-contiguous and of the shapes a kernel names (the wrappers
check both: the loops index without bounds checks); elementwise kernels see them flattened.
"""

from __future__ import annotations

import math

import numba as nb
import numpy as np

from . import numba_threads, shapes


# error_model="numpy": no per-element ZeroDivision checks, so the loops vectorise (7× for Adam).
_jit = nb.njit(cache=True, nogil=True, error_model="numpy")


# float32 exp(−a) and log1p(e) for e in [0, 1], written so that Numba loops vectorise. Numba
# compiles math.exp and math.log1p to scalar libm calls, so a loop using them stays scalar;
# these are plain arithmetic (a polynomial, a division, an integer shift), inlined into the
# caller as vector code. They serve the float32 Bernoulli kernel (a = |logit|, e = e^{−a}).
#
# exp(−a), a ≥ 0:  n = round(a/ln 2), r = n·ln 2 − a ∈ [−ln2/2, ln2/2], e^{−a} = e^{r}·2^{−n},
#   e^{r} by its Taylor polynomial to r⁷ (the r⁸ term is below 1e-8 of the value), 2^{−n} from
#   its exponent bits. For a > 87 the result is 0 (e^{−87} ≈ 1.6e-38 is near the smallest
#   normal float32; below it 2^{−n} has no exponent field), off by less than 2e-38.
# log1p(e), e ∈ [0, 1]:  s = e/(2 + e) ∈ [0, 1/3], log1p(e) = log((1 + s)/(1 − s)) = 2·atanh(s)
#   = 2s·(1 + s²/3 + s⁴/5 + … + s¹⁴/15)  (the next term is below 2e-8 of the value).
#
# Against float64 over 10⁶ points of [0, 87] and of [0, 1] (tests/test_vector_math.py):
# within 1.5 ulp (exp) and 2 ulp (log1p), about what NumPy's own float32 ufuncs achieve.
# NaN in gives NaN out. float32 only: float64 would need more terms and a wider range. They
# live in this file because Numba's disk cache of a kernel is not invalidated when a
# function it inlines from another file changes.
_f32 = np.float32
_LOG2E = _f32(1.4426950408889634)
# ln 2 in two parts: the high part has 15 significant bits, so n·_LN2_HI is exact for n ≤ 126
_LN2_HI = _f32(0.693145751953125)
_LN2_LO = _f32(1.4286067653302226e-06)
_CLAMP = _f32(87.0)

_inline = nb.njit(inline="always", cache=True, nogil=True, error_model="numpy", fastmath={"contract"})


@_inline
def exp_neg_f32(a):
    """e^{−a} for float32 a ≥ 0 (0 for a > 87; NaN gives NaN)."""
    beyond = a > _CLAMP  # False for NaN, which then stays NaN through the arithmetic
    a = _CLAMP if beyond else a
    n = np.int32(a * _LOG2E + _f32(0.5))
    nf = _f32(n)
    r = (nf * _LN2_HI - a) + nf * _LN2_LO
    p = _f32(1 / 5040)
    p = p * r + _f32(1 / 720)
    p = p * r + _f32(1 / 120)
    p = p * r + _f32(1 / 24)
    p = p * r + _f32(1 / 6)
    p = p * r + _f32(0.5)
    p = p * r + _f32(1.0)
    p = p * r + _f32(1.0)
    value = p * np.int32((127 - n) << 23).view(np.float32)  # 2^{−n}: exponent field 127 − n
    return _f32(0.0) if beyond else value


@_inline
def log1p_unit_f32(e):
    """log(1 + e) for float32 e in [0, 1]."""
    s = e / (_f32(2.0) + e)
    w = s * s
    q = _f32(1 / 15)
    q = q * w + _f32(1 / 13)
    q = q * w + _f32(1 / 11)
    q = q * w + _f32(1 / 9)
    q = q * w + _f32(1 / 7)
    q = q * w + _f32(1 / 5)
    q = q * w + _f32(1 / 3)
    twice = s + s
    return twice + twice * (w * q)


@_jit
def _relu_forward(x, out):
    if x.ctypes.data == out.ctypes.data:
        # in place (out is x): a loop over one array, since LLVM keeps a loop over two
        # arrays that overlap scalar (about 5× slower)
        for i in range(out.size):
            v = out[i]
            out[i] = 0.0 if v <= 0 else v
    else:
        for i in range(x.size):
            v = x[i]
            out[i] = 0.0 if v <= 0 else v  # NaN stays NaN, as in the reference


@_jit
def _relu_backward(dy, y, out):
    for i in range(dy.size):
        out[i] = dy[i] if y[i] > 0 else 0.0


@_jit
def _bias_relu_forward(x, b, out):
    rows, cols = x.shape
    if x.ctypes.data == out.ctypes.data:  # in place: one array in the loop, as in _relu_forward
        for i in range(rows):
            for j in range(cols):
                v = out[i, j] + b[j]
                out[i, j] = 0.0 if v <= 0 else v
    else:
        for i in range(rows):
            for j in range(cols):
                v = x[i, j] + b[j]
                out[i, j] = 0.0 if v <= 0 else v


@_jit
def _bias_relu_backward(dy, y, out, db):
    # db is summed row after row, as NumPy's out.sum(axis=0) does for two or more columns, so
    # the two agree bit for bit (one column: see bias_relu_backward). Each row is masked, then
    # added, in two loops: one loop doing both stays scalar (LLVM cannot rule out that out and
    # db overlap) and took twice as long.
    rows, cols = dy.shape
    for j in range(cols):
        db[j] = 0.0
    for i in range(rows):
        for j in range(cols):
            out[i, j] = dy[i, j] if y[i, j] > 0 else 0.0
        for j in range(cols):
            db[j] += out[i, j]


@_jit
def _sigmoid(x, out):
    for i in range(x.size):
        v = x[i]
        if v >= 0:
            out[i] = 1.0 / (1.0 + math.exp(-v))
        else:
            e = math.exp(v)
            out[i] = e / (1.0 + e)


# "reassoc" lets the row sums be added in vector lanes (they vectorise; strict left-to-right
# order would keep the whole loop scalar). Nothing else in the loop changes.
@nb.njit(cache=True, nogil=True, error_model="numpy", fastmath={"reassoc"})
def _bernoulli_nll_fuse(logits, x, e, log1p_e, scale, dlogits, row_loss):
    # e = exp(−|l|) and log1p(e) arrive precomputed, in arrays of their own: an output that
    # may alias an input makes LLVM keep the loop scalar
    rows, cols = logits.shape
    for b in range(rows):
        total = 0.0
        for d in range(cols):
            l = logits[b, d]
            t = x[b, d]
            ed = e[b, d]
            inv = 1 / (1 + ed)
            prob = inv if l >= 0 else ed * inv
            total += (l if l > 0 else 0) + log1p_e[b, d] - t * l
            dlogits[b, d] = (prob - t) * scale
        row_loss[b] = total


@nb.njit(cache=True, nogil=True, error_model="numpy", fastmath={"reassoc"})
def _sum_as_float64(values):
    total = 0.0
    for i in range(values.size):  # indexed: "for v in values" compiled to gathers (kernel 1.8× slower)
        total += values[i]
    return total


# float32 (training): one pass, e^{−|l|} and log1p from the helpers above, so the loop vectorises
# (NumPy's exp and log1p passes plus the loop above took about twice as long, with two
# temporaries a call). Each row's float64 sum is taken after the row from a scratch row:
# inside the loop it would halve the vector width. No "reassoc" here: it would let LLVM
# regroup the polynomials and the split ln 2 that the helpers' accuracy depends on.
@nb.njit(cache=True, nogil=True, error_model="numpy", fastmath={"contract"})
def _bernoulli_nll_f32(logits, x, scale, dlogits, row_loss, first, last):
    """Rows first..last."""
    cols = logits.shape[1]
    terms = np.empty(cols, dtype=np.float32)
    zero, one = np.float32(0.0), np.float32(1.0)
    for b in range(first, last):
        for d in range(cols):
            l = logits[b, d]
            t = x[b, d]
            e = exp_neg_f32(abs(l))
            inv = one / (one + e)
            prob = inv if l >= 0 else e * inv
            terms[d] = (l if l > 0 else zero) + log1p_unit_f32(e) - t * l
            dlogits[b, d] = (prob - t) * scale
        row_loss[b] = _sum_as_float64(terms)


@_jit
def _adam_update(param, grad, m, v, beta1, c1, beta2, c2, lr_t, eps_t):
    # scalars arrive in the buffers' dtype, so float32 buffers get float32 vector code;
    # c1 = 1 − β₁ and c2 = 1 − β₂ are rounded once, and every operation runs in the
    # reference's order ((c2·g)·g: scaled before squaring, so g² cannot overflow first),
    # which makes the two agree bit for bit
    for i in range(param.size):
        g = grad[i]
        mi = beta1 * m[i] + c1 * g
        vi = beta2 * v[i] + c2 * g * g
        m[i] = mi
        v[i] = vi
        param[i] -= lr_t * mi / (math.sqrt(vi) + eps_t)


@_jit
def _sgd_update(param, grad, velocity, lr, momentum):
    for i in range(param.size):
        u = momentum * velocity[i] + grad[i]
        velocity[i] = u
        param[i] -= lr * u


# The optimizer updates of large models, and the Bernoulli loss of large batches, are shared
# out among Numba's threads in chunks (of _UPDATE_CHUNK elements, of _LOSS_ROWS rows) that each
# run the serial loop above: the same arithmetic, so the same bits, as the elements (rows) are
# independent of one another. Of a 652,824-parameter model's Adam step this took 0.6× the
# serial time, of a 128 × 784 batch's loss 0.6×. Smaller arrays stay on the calling thread:
# starting a parallel region costs more than their loop.
THREADED_ELEMENTS = 65536
_UPDATE_CHUNK = 16384
_LOSS_ROWS = 16
_threaded = nb.njit(parallel=True, cache=True, nogil=True, error_model="numpy")


@_threaded
def _bernoulli_nll_f32_threads(logits, x, scale, dlogits, row_loss, first, last):
    for block in nb.prange((last - first + _LOSS_ROWS - 1) // _LOSS_ROWS):
        start = first + block * _LOSS_ROWS
        _bernoulli_nll_f32(logits, x, scale, dlogits, row_loss, start, min(last, start + _LOSS_ROWS))


@_threaded
def _adam_update_threads(param, grad, m, v, beta1, c1, beta2, c2, lr_t, eps_t):
    n = param.size
    for chunk in nb.prange((n + _UPDATE_CHUNK - 1) // _UPDATE_CHUNK):
        lo = chunk * _UPDATE_CHUNK
        hi = min(n, lo + _UPDATE_CHUNK)
        _adam_update(param[lo:hi], grad[lo:hi], m[lo:hi], v[lo:hi], beta1, c1, beta2, c2, lr_t, eps_t)


@_threaded
def _sgd_update_threads(param, grad, velocity, lr, momentum):
    n = param.size
    for chunk in nb.prange((n + _UPDATE_CHUNK - 1) // _UPDATE_CHUNK):
        lo = chunk * _UPDATE_CHUNK
        hi = min(n, lo + _UPDATE_CHUNK)
        _sgd_update(param[lo:hi], grad[lo:hi], velocity[lo:hi], lr, momentum)


def _by_size(threaded, serial, array, *args):
    """``threaded`` or ``serial`` applied to (array, *args): threads for large arrays, where allowed."""
    if array.size >= THREADED_ELEMENTS:
        numba_threads.run(threaded, serial, array, *args)
    else:
        serial(array, *args)


# The loops index without bounds checks (Numba's default), so the wrappers below check every
# argument's shape against the first's: a short output would otherwise be written past its end.
def _checked(a, shape=None, written: str | None = None):
    """``a``, which must be C-contiguous and, if given, of ``shape``; if the kernel writes it
    (``written`` names it), float32 or float64 and writeable (``shapes.output``)."""
    if not a.flags.c_contiguous:
        raise ValueError("kernel arguments must be C-contiguous arrays")
    if shape is not None and a.shape != shape:
        raise ValueError(f"kernel arguments must all have shape {shape}, got one of shape {a.shape}")
    if written is not None:
        shapes.output("the kernel", **{written: a})
    elif a.dtype.kind not in "biuf" or a.dtype == np.float16:  # Numba compiles no float16 arithmetic
        raise TypeError(f"kernel arguments must hold float32, float64, integers or booleans, got dtype {a.dtype}")
    return a


def _flat(a, shape=None, written: str | None = None):
    return _checked(a, shape, written).reshape(-1)


def _in_place_or_apart(kernel: str, x, out):
    """x and out flattened, checked, for a kernel whose ``out`` may be ``x`` itself."""
    flat_x, flat_out = _flat(x), _flat(out, x.shape, "out")
    shapes.itself_or_apart(kernel, x, out)
    return flat_x, flat_out


def relu_forward(x, out):
    """out = max(x, 0); ``out`` may be ``x`` itself (in place), or must not overlap it."""
    _relu_forward(*_in_place_or_apart("relu_forward", x, out))
    return out


def relu_backward(dy, y, out):
    arrays = _flat(dy), _flat(y, dy.shape), _flat(out, dy.shape, "out")
    shapes.apart("relu_backward", dict(out=out), dict(dy=dy, y=y))
    _relu_backward(*arrays)
    return out


def _rows(a, b, shape=None, written: str | None = None):
    """``a`` as a C-contiguous (batch, n) array (of ``shape``, if given) with ``b`` a contiguous (n,) one."""
    _checked(a, shape, written)
    _checked(b)
    if a.ndim != 2 or b.shape != a.shape[1:]:
        raise ValueError(f"expected a (batch, n) array and an (n,) one, got shapes {a.shape} and {b.shape}")
    return a


def bias_relu_forward(x, b, out):
    """out = max(x + b, 0) row by row; ``out`` may be ``x`` itself (in place), or must not overlap it."""
    _rows(x, b)
    _rows(out, b, x.shape, "out")
    shapes.itself_or_apart("bias_relu_forward", x, out)
    shapes.apart("bias_relu_forward", dict(out=out), dict(b=b))
    _bias_relu_forward(x, b, out)
    return out


def bias_relu_backward(dy, y, out, db):
    shapes.output("bias_relu_backward", db=db)
    arrays = _rows(dy, db), _rows(y, db, dy.shape), _rows(out, db, dy.shape, "out")
    shapes.apart("bias_relu_backward", dict(out=out, db=db), dict(dy=dy, y=y))
    if dy.shape[1] == 1:
        # a single column is contiguous, and NumPy sums it pairwise, not in row order: NumPy
        # sums it here too, so that db still equals the unfused layer's dY.sum(axis=0) exactly
        relu_backward(*arrays)
        out.sum(axis=0, out=db)
        return out
    _bias_relu_backward(*arrays, db)
    return out


def sigmoid(x, out):
    """out = 1 / (1 + e^{−x}); ``out`` may be ``x`` itself (in place), or must not overlap it."""
    _sigmoid(*_in_place_or_apart("sigmoid", x, out))
    return out


def bernoulli_nll_logits(logits, x, scale, dlogits, row_loss):
    """row_loss[b] = Σ_d softplus(l) − x·l, dlogits = (σ(l) − x)·scale, for (batch, d) arrays."""
    if logits.ndim != 2:
        raise ValueError(f"expected (batch, d) logits, got shape {logits.shape}")
    _checked(logits, logits.shape)
    _checked(x, logits.shape)
    _checked(dlogits, logits.shape, "dlogits")
    _checked(row_loss, logits.shape[:1], "row_loss")
    shapes.apart("bernoulli_nll_logits", dict(dlogits=dlogits, row_loss=row_loss), dict(logits=logits, x=x))
    if logits.dtype == np.float32 and x.dtype == np.float32 and dlogits.dtype == np.float32:
        _by_size(_bernoulli_nll_f32_threads, _bernoulli_nll_f32, logits, x, np.float32(scale), dlogits, row_loss, 0, len(logits))
        return row_loss
    # float64 (gradient checks): Numba's exp/log1p calls stay scalar (~16 ns an element) and
    # the helpers above are float32 only, so the two transcendental passes go through NumPy's
    # SIMD ufuncs and everything else is fused into one Numba loop.
    e = np.abs(logits)
    np.negative(e, out=e)
    np.exp(e, out=e)
    log1p_e = np.log1p(e)
    _bernoulli_nll_fuse(logits, x, e, log1p_e, logits.dtype.type(scale), dlogits, row_loss)
    return row_loss


def adam_update(param, grad, m, v, beta1, beta2, lr_t, eps_t):
    """One Adam step in place, ``param``, ``m`` and ``v`` updated; arrays of one shape and one dtype, any shape."""
    shape = param.shape
    arrays = _flat(param, None, "param"), _flat(grad, shape), _flat(m, shape, "m"), _flat(v, shape, "v")
    shapes.one_dtype("adam_update", param=param, grad=grad, m=m, v=v)
    shapes.apart("adam_update", dict(param=param, m=m, v=v), dict(grad=grad))
    t = param.dtype.type
    _by_size(_adam_update_threads, _adam_update, *arrays, t(beta1), t(1.0 - beta1), t(beta2), t(1.0 - beta2), t(lr_t), t(eps_t))


def sgd_update(param, grad, velocity, lr, momentum):
    """One SGD (momentum) step in place, ``param`` and ``velocity`` updated; arrays of one shape and one dtype."""
    shape = param.shape
    arrays = _flat(param, None, "param"), _flat(grad, shape), _flat(velocity, shape, "velocity")
    shapes.one_dtype("sgd_update", param=param, grad=grad, velocity=velocity)
    shapes.apart("sgd_update", dict(param=param, velocity=velocity), dict(grad=grad))
    t = param.dtype.type
    _by_size(_sgd_update_threads, _sgd_update, *arrays, t(lr), t(momentum))


from .matmul_cpu import *  # noqa: E402,F401,F403
from .rnn_cpu import *  # noqa: E402,F401,F403
from .conv_cpu import *  # noqa: E402,F401,F403
