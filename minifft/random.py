"""The framework's random state: parameter initialisation, Dropout masks, data shuffling.

One NumPy generator, seeded by :func:`manualSeed` (Torch's ``torch.manualSeed``), so a run is
reproducible from its seed and a checkpoint can save and restore the state exactly.
"""
import numpy as np

from . import backend

_rng = np.random.default_rng(0)


def manualSeed(seed):
    global _rng
    _rng = np.random.default_rng(seed)
    if backend.gpu_available():
        backend.cupy.random.seed(seed)


def generator():
    return _rng


def get_state():
    return _rng.bit_generator.state


def set_state(state):
    _rng.bit_generator.state = state


def uniform(low, high, shape, dtype=np.float32):
    return _rng.uniform(low, high, size=shape).astype(dtype)


def uniform_like(a):
    """Uniform [0, 1) numbers shaped and placed like ``a``; drawn on the GPU for GPU arrays."""
    if backend.is_gpu_array(a):
        return backend.cupy.random.random_sample(a.shape, dtype=a.dtype)
    return _rng.random(a.shape, dtype=a.dtype)
