"""The one place where NumPy versus CuPy is decided.

Every other module asks this one for the array module of its arrays
(:func:`get_array_module`), for the FFT namespace that goes with it (:func:`fft_for`), and
for moves between host and device. CuPy is optional: the package imports and runs without it.
"""
import contextlib
import os
import threading

import numpy as np
import scipy.fft

try:  # CuPy imports fine on a machine with no GPU; usability is checked separately.
    import cupy
    import cupyx as _cupyx
    import cupyx.scipy.fft as _cupy_fft
except Exception:  # pragma: no cover - depends on the machine
    cupy = _cupyx = _cupy_fft = None

DEVICES = ('auto', 'cpu', 'gpu')
_gpu_usable = None


def gpu_available():
    """True when CuPy is importable *and* a CUDA device can really allocate memory."""
    global _gpu_usable
    if _gpu_usable is None:
        _gpu_usable = False
        if cupy is not None:
            try:
                _gpu_usable = cupy.cuda.runtime.getDeviceCount() > 0
                if _gpu_usable:
                    cupy.zeros(1).sum()  # the first allocation is where a missing driver shows
            except Exception:
                _gpu_usable = False
    return _gpu_usable


def gpu_unavailable_reason():
    if cupy is None:
        return "CuPy is not installed (pip install 'minifft[cuda12]' or 'minifft[cuda13]')"
    return 'CuPy is installed but no usable CUDA device was found'


def resolve_device(device):
    """Turn 'auto' | 'cpu' | 'gpu' into 'cpu' or 'gpu'; asking for a missing GPU is an error."""
    if device not in DEVICES:
        raise ValueError(f'device must be one of {DEVICES}, got {device!r}')
    if device == 'auto':
        return 'gpu' if gpu_available() else 'cpu'
    if device == 'gpu' and not gpu_available():
        raise RuntimeError(f'--device gpu was asked for, but {gpu_unavailable_reason()}')
    return device


def is_gpu_array(a):
    return cupy is not None and isinstance(a, cupy.ndarray)


def is_array(a):
    return isinstance(a, np.ndarray) or is_gpu_array(a)


def get_array_module(*arrays):
    """numpy or cupy, whichever the arrays live in (numpy when CuPy is absent)."""
    if cupy is not None:
        return cupy.get_array_module(*arrays)
    return np


def device_of(a):
    return 'gpu' if is_gpu_array(a) else 'cpu'


def xp_for(device):
    """The array module of a resolved device name."""
    if device == 'gpu':
        if not gpu_available():
            raise RuntimeError(f'a GPU array was asked for, but {gpu_unavailable_reason()}')
        return cupy
    return np


def asnumpy(a):
    if is_gpu_array(a):
        return cupy.asnumpy(a)
    return np.asarray(a)


def to_device(a, device, dtype=None):
    """Copy an array to 'cpu' or 'gpu' (a no-op when it is already there with that dtype)."""
    if device == 'cpu':
        out = asnumpy(a)
    else:
        out = xp_for('gpu').asarray(a)
    return out if dtype is None else out.astype(dtype, copy=False)


class Uploader:
    """Host batches to the current GPU without making the host wait for the copy.

    Each array is staged in page-locked (pinned) host memory, from which a copy is truly
    asynchronous, and copied on a stream of its own, so that a batch's transfer runs while the
    GPU still computes on the previous one; the compute stream waits for the copy on the
    device, never the host. The copy of a batch also waits (on the device) for the compute
    work queued before the previous batch was handed out: the memory pool may give it the
    blocks of a batch freed since, and those must no longer be read. A pinned buffer is
    refilled only once its last copy has finished (it has, unless the host runs far ahead)."""

    def __init__(self, ring=2):
        self.stream = cupy.cuda.Stream(non_blocking=True)
        self.ring, self.staging, self.turn = ring, {}, 0
        self.handed_out = None

    def _staged(self, a):
        key = (a.shape, a.dtype.str)
        if key not in self.staging:
            self.staging[key] = [[None, None] for _ in range(self.ring)]
        slot = self.staging[key][self.turn % self.ring]
        if slot[0] is None:
            slot[0] = _cupyx.empty_pinned(a.shape, a.dtype)
        elif slot[1] is not None:
            slot[1].synchronize()
        slot[0][...] = a
        return slot

    def __call__(self, arrays):
        compute = cupy.cuda.get_current_stream()
        if self.handed_out is not None:
            self.stream.wait_event(self.handed_out)
        out, slots = [], []
        with self.stream:
            for a in arrays:
                slot = self._staged(np.ascontiguousarray(a))
                d = cupy.empty(a.shape, a.dtype)
                d.set(slot[0], stream=self.stream)
                out.append(d)
                slots.append(slot)
            copied = self.stream.record()
        for slot in slots:
            slot[1] = copied
        self.turn += 1
        compute.wait_event(copied)
        self.handed_out = compute.record()
        return tuple(out)


def use_gpu(index):
    """Make GPU ``index`` (modulo the number present) this process's current device."""
    xp_for('gpu').cuda.Device(index % cupy.cuda.runtime.getDeviceCount()).use()


def nccl_unique_id():
    from cupy.cuda import nccl
    return nccl.get_unique_id()


def nccl_communicator(world, unique_id, rank):
    from cupy.cuda import nccl
    return nccl.NcclCommunicator(world, unique_id, rank)


def nccl_allreduce_sum(comm, buf):
    """In-place sum of a float32/float64 GPU array over the NCCL communicator."""
    from cupy.cuda import nccl
    dtype = nccl.NCCL_FLOAT32 if buf.dtype == np.float32 else nccl.NCCL_FLOAT64
    comm.allReduce(buf.data.ptr, buf.data.ptr, buf.size, dtype, nccl.NCCL_SUM,
                   cupy.cuda.get_current_stream().ptr)


def memory_stats():
    """The GPU memory pool's bytes in use and held ({} without a usable GPU)."""
    if not gpu_available():
        return {}
    pool = cupy.get_default_memory_pool()
    return {'pool_used_bytes': int(pool.used_bytes()), 'pool_total_bytes': int(pool.total_bytes())}


def available_host_memory():
    """Bytes of host memory this process can still take before the kernel's out-of-memory
    killer ends it: the system's available memory (``MemAvailable``), or less where a
    control group (a container) limits the process. None where neither can be read (not
    Linux)."""
    found = []
    try:
        with open('/proc/meminfo') as f:
            found += [int(line.split()[1]) * 1024 for line in f
                      if line.startswith('MemAvailable:')]
    except (OSError, ValueError, IndexError):
        pass
    for limit, usage in (('/sys/fs/cgroup/memory.max', '/sys/fs/cgroup/memory.current'),
                         ('/sys/fs/cgroup/memory/memory.limit_in_bytes',
                          '/sys/fs/cgroup/memory/memory.usage_in_bytes')):
        try:
            with open(limit) as a, open(usage) as b:
                found.append(int(a.read()) - int(b.read()))
        except (OSError, ValueError):  # absent, or 'max': no limit
            pass
    return min(found) if found else None


def keep_host_memory():
    """Have glibc's malloc serve every host array from its heap and keep freed memory there,
    for a process that allocates arrays of the same sizes step after step (training, the
    benchmark). By default arrays of 32 MiB and more are mapped afresh and unmapped when
    freed, so every step pays the kernel to fault in and zero their pages again: 2,700
    faults and 41-45 ms of system time per training step of imagenet_small at batch 64 here
    (a step 753/678 -> 657/623 ms with this; peak memory 787 -> 820 MB). Process-wide, so the
    scripts call it, not the library. Returns False where the C library has no ``mallopt``
    (not glibc)."""
    import ctypes
    import ctypes.util
    try:
        libc = ctypes.CDLL(ctypes.util.find_library('c') or 'libc.so.6')
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    M_TRIM_THRESHOLD, M_MMAP_MAX = -1, -4
    return bool(mallopt(M_MMAP_MAX, 0)) and bool(mallopt(M_TRIM_THRESHOLD, 2 ** 31 - 1))


_blas = {'threads': None,   # (get, set) of each OpenBLAS loaded, once searched (_openblas)
         'users': 0, 'before': None, 'lock': threading.Lock()}   # single_threaded_blas


def _openblas():
    """The thread-count functions of every OpenBLAS loaded in this process (NumPy's wheels
    bundle one whose symbols carry a ``scipy_`` prefix and a ``64_`` suffix), found through
    the libraries mapped into the process, as threadpoolctl does; empty elsewhere (another
    BLAS, or not Linux). NumPy's is loaded with NumPy, before the first search."""
    if _blas['threads'] is None:
        import ctypes
        try:
            with open('/proc/self/maps') as maps:
                paths = sorted({line.split()[-1] for line in maps
                                if 'openblas' in line.split()[-1].rsplit('/', 1)[-1]})
        except OSError:
            paths = []
        found = []
        for path in paths:
            try:
                lib = ctypes.CDLL(path)
            except OSError:
                continue
            for prefix, suffix in (('scipy_', '64_'), ('scipy_', ''), ('', '64_'), ('', '')):
                get = getattr(lib, f'{prefix}openblas_get_num_threads{suffix}', None)
                put = getattr(lib, f'{prefix}openblas_set_num_threads{suffix}', None)
                if get is not None and put is not None:
                    get.restype, put.argtypes, put.restype = ctypes.c_int, [ctypes.c_int], None
                    found.append((get, put))
                    break
        _blas['threads'] = found
    return _blas['threads']


def can_limit_blas_threads():
    """Whether :func:`single_threaded_blas` can make the host BLAS single-threaded here."""
    return bool(_openblas())


def share_host_cores(n):
    """Use ``n`` threads for host BLAS calls (where OpenBLAS is found) and for scipy.fft's
    transforms from now on: for several processes on one machine (MPI ranks), each taking its
    share of the cores instead of all of them. ``parallel.set_threads`` sets minifft's own
    pool."""
    if int(n) < 1:
        raise ValueError(f'threads must be at least 1, got {n!r}')
    for _, put in _openblas():
        put(int(n))
    _CPU_FFT.workers = int(n)


@contextlib.contextmanager
def single_threaded_blas():
    """Every host BLAS call runs on the calling thread while this is in force, process-wide:
    for several threads that each run their own GEMMs (each OpenBLAS call otherwise shares
    its work among all cores, and two such calls at once fight over them, 2x slower here).
    OpenBLAS's per-thread setting changes the global one in its pthreads builds, so the
    global one is set and restored, by the last of several threads in it at once. Without a
    BLAS it can control this does nothing; see :func:`can_limit_blas_threads`."""
    found = _openblas()
    with _blas['lock']:
        if _blas['users'] == 0:
            _blas['before'] = [get() for get, _ in found]
            for _, put in found:
                put(1)
        _blas['users'] += 1
    try:
        yield
    finally:
        with _blas['lock']:
            _blas['users'] -= 1
            if _blas['users'] == 0:
                for (_, put), n in zip(found, _blas['before']):
                    put(n)


def synchronize():
    """Wait for the GPU's queued work (a no-op on the CPU); timers need it."""
    if cupy is not None and gpu_available():
        cupy.cuda.get_current_stream().synchronize()


def convert_arrays(arrays, dtype=None, device=None, memo=None):
    """Convert a list of arrays, keeping arrays that shared memory sharing it afterwards.

    An array that is a view of another (its ``base``) is rebuilt as the same view of the
    converted base, so a weight that is a slice of a flat buffer stays one after ``type()``.
    ``memo`` maps ``id(old)`` to the new array across calls of one conversion.
    """
    memo = {} if memo is None else memo

    def convert(a):
        key = id(a)
        if key in memo:
            return memo[key][1]
        base = a.base if isinstance(a.base, type(a)) else None
        if base is None:
            new = a
            if device is not None and device != device_of(a):
                new = to_device(new, device)
            if dtype is not None and new.dtype != dtype:
                new = new.astype(dtype)
        else:
            new_base = convert(base)
            new = _same_view(a, base, new_base)
        memo[key] = (a, new)  # keep `a` alive so its id is not reused during the conversion
        return new

    return [convert(a) for a in arrays]


def address(a):
    """Where an array's first element lives (device or host address)."""
    return a.data.ptr if is_gpu_array(a) else a.__array_interface__['data'][0]


def _same_view(view, base, new_base):
    ratio = new_base.dtype.itemsize / base.dtype.itemsize
    offset = int((address(view) - address(base)) * ratio)
    strides = tuple(int(s * ratio) for s in view.strides)
    if is_gpu_array(new_base):
        return cupy.ndarray(view.shape, new_base.dtype, memptr=new_base.data + offset,
                            strides=strides)
    return np.ndarray(view.shape, new_base.dtype, buffer=new_base, offset=offset, strides=strides)


class _CPUFFT:
    """scipy.fft, multithreaded and float32-native, with the names the layers use;
    ``workers`` overrides the default (all cores, or ``MINIFFT_FFT_WORKERS``) for callers
    that run on several threads themselves."""

    def __init__(self):
        self.workers = int(os.environ.get('MINIFFT_FFT_WORKERS', 0)) or os.cpu_count() or 1

    def rfftn(self, a, s, axes, workers=None):
        return scipy.fft.rfftn(a, s=s, axes=axes, workers=workers or self.workers,
                               overwrite_x=True)

    def irfftn(self, a, s, axes, workers=None):
        # complex-to-complex along the leading axes in place, then complex-to-real along the
        # last: scipy's irfftn copies its input first even when told it may overwrite it
        # (convnet L1's chunks of 64 maps of 128x128: 0.82x the time)
        workers = workers or self.workers
        z = scipy.fft.ifftn(a, s=s[:-1], axes=axes[:-1], workers=workers, overwrite_x=True)
        return scipy.fft.irfft(z, n=s[-1], axis=axes[-1], workers=workers, overwrite_x=True)

    next_fast_len = staticmethod(lambda n: scipy.fft.next_fast_len(n, real=True))


class _GPUFFT:
    """cupyx.scipy.fft (cuFFT) with the same names. Plans are kept by CuPy's plan cache, whose
    default of 16 plans is too few for a network (each layer needs a forward and an inverse
    plan per map kind): it is raised to PLAN_CACHE_SIZE on first use."""
    PLAN_CACHE_SIZE = 128

    def __init__(self):
        self._sized = False

    def _size_cache(self):
        if not self._sized:
            cupy.fft.config.get_plan_cache().set_size(self.PLAN_CACHE_SIZE)
            self._sized = True

    def rfftn(self, a, s, axes, workers=None):   # workers: host threads, none here
        self._size_cache()
        return _cupy_fft.rfftn(a, s=s, axes=axes, overwrite_x=True)

    def irfftn(self, a, s, axes, workers=None):
        self._size_cache()
        return _cupy_fft.irfftn(a, s=s, axes=axes, overwrite_x=True)

    next_fast_len = staticmethod(lambda n: scipy.fft.next_fast_len(n, real=True))


_CPU_FFT = _CPUFFT()
_GPU_FFT = _GPUFFT() if _cupy_fft is not None else None


def fft_for(xp):
    """The FFT namespace matching an array module."""
    return _GPU_FFT if (cupy is not None and xp is cupy) else _CPU_FFT
