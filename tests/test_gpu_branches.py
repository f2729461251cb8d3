"""The FFT plans' GPU branches on the CPU: every plan takes its own road where its array module
is not NumPy (all frequencies multiplied, the products in one operand order, no matrix-vector
form, whole batches and single blocks, no threads, the FFT plan under 'auto'). Handed NumPy
under another name, the plans run those branches here, so that their layouts are checked
against the float64 loops on every machine, not only where a GPU is lent. (CuPy's own
behaviour is the GPU tests' part.)"""
import types

import numpy as np
import pytest

from minifft.nn import plan_choice

from .helpers import conv_grads_reference, conv_reference, rel_err
from .test_conv import CASES


class _NumPyUnderAnotherName(types.ModuleType):
    def __getattr__(self, name):
        return getattr(np, name)


GPU_LIKE = _NumPyUnderAnotherName('gpu_like')


@pytest.mark.parametrize('case', CASES)
@pytest.mark.parametrize('strategy', ['auto', 'dft', 'fft', 'tiled'])
def test_gpu_branches_match_the_naive_loop(strategy, case, rng):
    S, f, fo, H, W, kH, kW, dH, dW, pH, pW = case
    plan = plan_choice.make_plan(strategy, GPU_LIKE, np.float64, *case)
    assert plan.xp is GPU_LIKE and len(plan.twins) == 0
    # tiles need stride 1 and an axis with more than one output to cut
    tiles = (dH, dW) == (1, 1) and max(H + 2 * pH - kH, W + 2 * pW - kW) > 0
    assert plan.kind == {'auto': 'fft', 'tiled': 'tiled' if tiles else 'dft'
                         }.get(strategy, strategy)
    x = rng.standard_normal((S, f, H, W))
    w, b = rng.standard_normal((fo, f, kH, kW)), rng.standard_normal(fo)
    oH, oW = (H + 2 * pH - kH) // dH + 1, (W + 2 * pW - kW) // dW + 1
    g = rng.standard_normal((S, fo, oH, oW))
    X, K, D = plan.input_spectrum(x), plan.kernel_spectrum(w), plan.grad_output_spectrum(g)
    d, pad = (dH, dW), (pH, pW)
    assert rel_err(plan.output(X, K, b)[0], conv_reference(x, w, b, d, pad)) < 1e-10
    gi_ref, gw_ref, _ = conv_grads_reference(x, w, g, d, pad)
    assert rel_err(plan.grad_input(D, K), gi_ref) < 1e-10
    assert rel_err(plan.grad_weight(D, X), gw_ref) < 1e-10
