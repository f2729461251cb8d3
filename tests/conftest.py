import os

import numpy as np
import pytest

from minifft import backend


def pytest_report_header(config):
    return (f'minifft: GPU usable: {backend.gpu_available()}; random seed base: '
            f'{os.environ.get("MINIFFT_TEST_SEED", "random per test (printed on failure)")}')


@pytest.fixture(params=['cpu', pytest.param('gpu', marks=pytest.mark.gpu)])
def device(request):
    """Runs a test body once on NumPy and once on CuPy (skipped where no GPU is usable)."""
    if request.param == 'gpu' and not backend.gpu_available():
        pytest.skip(backend.gpu_unavailable_reason())
    return request.param


@pytest.fixture
def xp(device):
    return backend.xp_for(device)


@pytest.fixture
def rng(request):
    """A generator whose seed is printed, so a failing random case can be replayed with
    MINIFFT_TEST_SEED=<seed>."""
    seed = int(os.environ.get('MINIFFT_TEST_SEED', np.random.SeedSequence().entropy % 2**32))
    print(f'{request.node.name}: seed {seed}')
    return np.random.default_rng(seed)

