"""The CUDA emulation that runs the GPU kernels on the CPU keeps the CuPy rules they rely on,
and raises where a GPU's result would be undefined (an index out of range, threads racing).

(If it did not, tests/test_gpu_kernels.py's "emulated" cases could pass kernels that fail on a GPU.)
"""

import numpy as np
import pytest

from _cuda_emulation import DeviceArray, OutOfBoundsError, ThreadRaceError, emulated_cupy, gpu_kernels, needs_compiler
from _cuda_emulation import to_device
from _cuda_emulation import EmulatedElementwiseKernel as Kernel

pytestmark = needs_compiler


def test_elementwise_arguments_broadcast_and_outputs_are_references():
    axpy = Kernel("T x, T y, float64 a", "T z", "z = (T)(a * x) + y", "test_axpy")
    x, y = to_device(np.arange(3.0).reshape(1, 3)), to_device(np.full((2, 1), 10.0))
    z = to_device(np.zeros((2, 3)))
    assert axpy(x, y, 2.0, z) is z
    np.testing.assert_array_equal(z.get(), (2.0 * x + y).get())
    np.testing.assert_array_equal(axpy(x, y, 2.0).get(), (2.0 * x + y).get())  # an output not given is allocated
    with pytest.raises(ValueError, match="output 'z' must have the broadcast shape"):
        axpy(x, y, 2.0, to_device(np.zeros((1, 3))))  # an output broadcast to the others is not enough


def test_an_output_read_before_it_is_written_keeps_its_value_in_place():
    accumulate = Kernel("T g", "T m", "m = (T)0.5 * m + g", "test_accumulate")
    m = to_device(np.array([2.0, 4.0], np.float32))
    accumulate(to_device(np.array([1.0, 1.0], np.float32)), m)
    np.testing.assert_array_equal(m.get(), [2.0, 3.0])
    strided = to_device(np.zeros((2, 4), np.float32))[:, ::2]  # a strided output is written where it lies
    accumulate(to_device(np.ones((2, 2), np.float32)), strided)
    whole = strided.base.get()
    np.testing.assert_array_equal(whole[:, ::2], 1.0)
    assert not whole[:, 1::2].any()


def test_raw_arrays_are_indexed_by_flat_c_order_position_and_i_is_the_element():
    shift = Kernel("raw T x, int64 n", "T y", "y = x[(i + 1) % n] + (T)(10 * i)", "test_shift")
    x = to_device(np.arange(6.0, dtype=np.float32).reshape(2, 3)).T  # a transposed view: C order is taken as it reads
    y = shift(x, 6, to_device(np.empty(6, np.float32)))
    np.testing.assert_array_equal(y.get(), np.roll(x.get().ravel(), -1) + 10 * np.arange(6))


def test_a_raw_index_out_of_range_raises_naming_the_kernel_the_parameter_the_index_and_the_size():
    past_the_end = Kernel("raw T x", "T y", "y = x[i + 1]", "test_past_the_end")
    with pytest.raises(OutOfBoundsError, match=r"^test_past_the_end: thread 3 indexed raw parameter 'x' at 4, "
                                               r"out of range: it has 4 elements$"):
        past_the_end(to_device(np.arange(4.0)), to_device(np.zeros(4)))
    before_the_start = Kernel("T x", "raw T y", "y[i - 1] = x", "test_before_the_start")  # a raw output too
    with pytest.raises(OutOfBoundsError, match="thread 0 indexed raw parameter 'y' at -1, out of range: it has 4 elem"):
        before_the_start(to_device(np.arange(4.0)), to_device(np.zeros(4)))


def test_threads_that_write_one_element_of_a_raw_output_raise():
    all_to_one = Kernel("T x", "raw T y", "y[0] = x", "test_all_to_one")
    with pytest.raises(ThreadRaceError, match=r"^test_all_to_one: element 0 of raw parameter 'y' was written by "
                                              r"thread 3 and written again by thread 2$"):
        all_to_one(to_device(np.arange(4.0)), to_device(np.zeros(4)))


@pytest.mark.parametrize("neighbour, message", [
    ("i + 1 < n ? y[i + 1] : (T)0", "element 3 of raw parameter 'y' was written by thread 3 and read by thread 2"),
    ("i > 0 ? y[i - 1] : (T)0", "element 2 of raw parameter 'y' was read by thread 3 and written by thread 2"),
])
def test_a_thread_that_reads_what_another_thread_writes_raises_whichever_runs_first(neighbour, message):
    """On a GPU the threads run at once, so whether thread i sees its neighbour's write is luck."""
    scan = Kernel("T x, int64 n", "raw T y", f"y[i] = x + ({neighbour})", "test_scan")
    with pytest.raises(ThreadRaceError, match=f"^test_scan: {message}$"):
        scan(to_device(np.arange(4.0)), 4, to_device(np.zeros(4)))


def test_a_thread_may_read_and_write_its_own_elements_of_a_raw_output():
    own = Kernel("T x", "raw T y", "y[2 * i] = x; y[2 * i + 1] = y[2 * i] + (T)1; y[2 * i] *= (T)2", "test_own")
    y = own(to_device(np.arange(3.0)), to_device(np.zeros(6)))
    np.testing.assert_array_equal(y.get(), [0.0, 1.0, 2.0, 2.0, 4.0, 3.0])


def test_threads_run_last_first_so_a_result_that_depends_on_their_order_differs_from_the_twins():
    """A twin's loop runs the elements in index order; a kernel whose result depends on which
    thread runs first (here through a global, which no log sees) gives another result here, so
    the comparison with its twin fails. The order is fixed, so such a failure reproduces."""
    clock = Kernel("T x", "T y", "y = (T)microvae_test_clock++", "test_clock",
                   preamble="__device__ long long microvae_test_clock = 0;")
    y = clock(to_device(np.zeros(5))).get()
    np.testing.assert_array_equal(y - y.min(), [4.0, 3.0, 2.0, 1.0, 0.0])


def test_an_in_place_kernel_runs_and_an_input_given_as_the_output_is_read_where_it_lies():
    """CuPy binds an elementwise input as ``const T& x`` to the caller's memory and copies no
    input that is also an output, so a thread that writes the output first reads what it wrote."""
    relu = Kernel("T x", "T y", "y = x <= 0 ? (T)0 : x", "test_relu")
    x = to_device(np.array([-1.0, 2.0, -3.0, 4.0]))
    assert relu(x, x) is x
    np.testing.assert_array_equal(x.get(), [0.0, 2.0, 0.0, 4.0])
    whole = to_device(np.array([[-1.0, -2.0, 3.0, -4.0]] * 2))
    strided = whole[:, ::2]  # a copy in the emulation, one for input and output, written back
    relu(strided, strided)
    np.testing.assert_array_equal(whole.get(), [[0.0, -2.0, 3.0, -4.0]] * 2)
    written_first = Kernel("T x", "T y, T z", "y = (T)0; z = x", "test_written_first")
    a = to_device(np.arange(1.0, 4.0))
    _, z = written_first(a, a, to_device(np.empty(3)))
    np.testing.assert_array_equal(z.get(), [0.0, 0.0, 0.0])
    gpu = gpu_kernels()  # the library's own in-place calls (layers/conv.py)
    y = to_device(np.array([[-1.0, 1.0], [2.0, -2.0]]))
    gpu.relu_forward(y, y)
    gpu.bias_relu_forward(y, to_device(np.array([0.5, -0.5])), y)
    np.testing.assert_array_equal(y.get(), [[0.5, 0.5], [2.5, 0.0]])


def test_an_output_that_shares_memory_with_another_argument_other_than_element_for_element_raises():
    copy = Kernel("T x", "T y", "y = x", "test_copy_shifted")
    a = to_device(np.arange(5.0))
    with pytest.raises(ThreadRaceError, match="output 'y' and input 'x' share memory, not element for element: "
                                              "one thread would write an element that another thread reads"):
        copy(a[:-1], a[1:])
    gather = Kernel("raw T x", "T y", "y = x[i]", "test_gather_in_place")
    with pytest.raises(ThreadRaceError, match="output 'y' and raw input 'x' share memory.*could not tell whether"):
        gather(a, a)  # harmless here, but a raw index may reach any element
    np.testing.assert_array_equal(a.get(), np.arange(5.0))  # refused before any thread ran


def test_a_raw_input_is_read_only_as_cupys_const_carray_is():
    writes_its_input = Kernel("raw T x", "T y", "x[i] = (T)1; y = (T)0", "test_writes_its_input")
    with pytest.raises(RuntimeError, match="did not compile"):
        writes_its_input(to_device(np.zeros(2)), to_device(np.zeros(2)))


def test_a_placeholder_type_takes_one_dtype_and_scalars_their_declared_type():
    add = Kernel("T x, T y", "T z", "z = x + y", "test_add")
    with pytest.raises(TypeError, match="Type is mismatched. test_add y float32 float64 T"):
        add(to_device(np.ones(2, np.float32)), to_device(np.ones(2, np.float64)))
    scaled = Kernel("T x, int32 k", "T y", "y = x * k", "test_scaled")
    np.testing.assert_array_equal(scaled(to_device(np.ones(2, np.float32)), 3).get(), [3.0, 3.0])
    with pytest.raises(TypeError, match="'k' is declared int32, got 2.5"):
        scaled(to_device(np.ones(2, np.float32)), 2.5)
    int_typed = Kernel("T x", "T y", "y = x / 2", "test_int_division")  # C++ semantics, not Python's
    np.testing.assert_array_equal(int_typed(to_device(np.array([-3, 3], np.int64))).get(), [-1, 1])


def test_an_array_for_a_parameter_of_fixed_dtype_must_have_that_dtype_as_cupy_demands():
    gather = Kernel("T x, int64 k", "T y, float64 s", "y = x * (T)k; s = (double)y", "test_fixed")
    x, k = to_device(np.ones(2, np.float32)), to_device(np.array([2, 3], np.int64))
    y, s = gather(x, k)
    np.testing.assert_array_equal(s.get(), [2.0, 3.0])
    with pytest.raises(TypeError, match="Type is mismatched. test_fixed k int32 int64"):
        gather(x, to_device(np.array([2, 3], np.int32)))  # an input: CuPy does not convert it
    with pytest.raises(TypeError, match="Type is mismatched. test_fixed s float32 float64"):
        gather(x, k, to_device(np.empty(2, np.float32)), to_device(np.empty(2, np.float32)))  # nor an output


def test_calls_are_counted_and_a_kernel_that_does_not_compile_shows_the_compilers_message():
    Kernel.calls.clear()
    broken = Kernel("T x", "T y", "y = undefined_name(x)", "test_broken")
    with pytest.raises(RuntimeError, match="undefined_name"):
        broken(to_device(np.ones(2)))
    assert Kernel.calls["test_broken"] == 1
    with pytest.raises(TypeError, match="takes 1 or 2 arguments, got 3"):
        broken(to_device(np.ones(2)), to_device(np.ones(2)), to_device(np.ones(2)))


def test_a_function_given_out_returns_that_very_array_as_cupys_do():
    """microvae's kernels return CuPy's result of ``out=`` calls, and tests hold them to return
    their output argument: the emulation must not hand back a new wrapper of the same memory."""
    cp = emulated_cupy()
    a, b = to_device(np.arange(6.0).reshape(2, 3)), to_device(np.ones((3, 2)))
    out = to_device(np.zeros((2, 2)))
    assert cp.matmul(a, b, out=out) is out  # a CuPy function
    np.testing.assert_array_equal(out.get(), np.arange(6.0).reshape(2, 3) @ np.ones((3, 2)))
    total = to_device(np.zeros(3))
    assert np.sum(a, axis=0, out=total) is total  # a NumPy function on device arrays
    np.testing.assert_array_equal(total.get(), [3.0, 5.0, 7.0])
    assert np.add(total, 1.0, out=total) is total and cp.multiply(total, 2.0, out=total) is total  # ufuncs
    np.testing.assert_array_equal(total.get(), [8.0, 12.0, 16.0])
    assert type(cp.matmul(a, b)) is DeviceArray  # without out=, a new device array


def test_host_arrays_are_refused_beside_device_ones_as_cupy_refuses_them():
    cp = emulated_cupy()
    host = np.ones(3)
    device = cp.asarray(host)  # the way onto the device
    assert type(device) is DeviceArray and type(device).__module__ == "cupy"
    for mixed in (lambda: device + host, lambda: host * device, lambda: cp.exp(host), lambda: cp.concatenate([device, host]),
                  lambda: cp.ascontiguousarray(host), lambda: np.where(device > 0, host, device),
                  lambda: Kernel("T x", "T y", "y = x", "test_copy")(host)):
        with pytest.raises(TypeError, match="Unsupported type .*numpy.ndarray"):
            mixed()
    # device in, device out (reductions give 0-d arrays), scalars welcome, asnumpy the way back
    for result in (device + 1.0, np.exp(device), device.sum(), cp.zeros(2),
                   device[0], cp.add.reduce(device), cp.linalg.norm(device)):
        assert type(result) is DeviceArray
    assert type(cp.asnumpy(device)) is np.ndarray and type(device.get()) is np.ndarray
    assert float(device.sum()) == 3.0


def test_cupys_generators_are_refused():
    """CuPy's streams differ from NumPy's and the emulation cannot give them, so microvae's
    draws are made on the host; code that reaches for cupy.random fails here at once."""
    cp = emulated_cupy()
    for make in (cp.random.default_rng, cp.random.Generator):
        with pytest.raises(AssertionError, match="microvae draws with NumPy's generator on the host"):
            make(0)


@pytest.mark.parametrize("onto_device", ["asarray", "asanyarray", "array"])
def test_data_moved_onto_the_device_shares_no_memory_with_the_host(onto_device):
    """A GPU copies host data into device memory: writing through either side leaves the other
    as it was (a NumPy view here would let library code that relies on aliasing pass)."""
    cp = emulated_cupy()
    host = np.arange(4.0)
    device = getattr(cp, onto_device)(host)
    device[0] = 9.0
    host[1] = 7.0
    np.testing.assert_array_equal(host, [0.0, 7.0, 2.0, 3.0])
    np.testing.assert_array_equal(device.get(), [9.0, 1.0, 2.0, 3.0])
    # device to device is CuPy's asarray: the same array when nothing changes, a cast otherwise
    assert cp.asarray(device) is device
    cast = cp.asarray(device, dtype=np.float32)
    assert type(cast) is DeviceArray and cast.dtype == np.float32
