"""Hypothesis strategies shared by the test files that hold the optimizer kernels to their twins."""

from hypothesis import strategies as st

# (lr, β₁, β₂, ε) over the ranges users set them in, not only the defaults: β₁, β₂ and ε reach
# the kernels as the scalars c1 = 1 − β₁, c2 = 1 − β₂ and eps_t, each rounded once
ADAM_SETTINGS = st.tuples(st.floats(1e-5, 1.0), st.floats(0.0, 0.99), st.floats(0.0, 0.9999), st.floats(1e-12, 1e-2))
# (lr, momentum)
SGD_SETTINGS = st.tuples(st.floats(1e-5, 10.0), st.floats(0.0, 0.99))
