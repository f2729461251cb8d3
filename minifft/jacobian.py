"""Finite-difference gradient checks, like Torch7's ``nn.Jacobian``, in float64.

For a random ``r`` shaped like the output, the loss ``L = sum(module(x) * r)`` has gradient
``J^T r``: the analytic one comes from one ``backward(x, r)``, the numeric one from central
differences of ``L`` along every element of the input (or of a parameter). Comparing the two
for a random ``r`` checks the whole Jacobian with probability one, at the cost of two forward
passes per element instead of one backward pass per output element.

The module is deep-copied and converted to float64, so the caller's module is left as it was.
"""
import copy

import numpy as np

from . import backend


def _double_copy(module):
    return copy.deepcopy(module).double()


def _loss(module, x, r):
    return float((backend.asnumpy(module.updateOutput(x)) * r).sum())


def _numeric(module, x, target, r, eps):
    """Central differences of the projected loss along every element of ``target``."""
    flat = target.reshape(-1)
    grad = np.zeros(flat.size)
    for i in range(flat.size):
        orig = float(flat[i])
        flat[i] = orig + eps
        plus = _loss(module, x, r)
        flat[i] = orig - eps
        minus = _loss(module, x, r)
        flat[i] = orig
        grad[i] = (plus - minus) / (2 * eps)
    return grad.reshape(target.shape)


def _setup(module, input, seed):
    m = _double_copy(module)
    xp = backend.get_array_module(input)
    x = xp.array(input, dtype=np.float64)
    out = m.forward(x)
    r = np.random.default_rng(seed).standard_normal(out.shape)
    return m, x, xp.asarray(r), r


def testJacobian(module, input, eps=1e-6, seed=0):
    """Max abs difference between analytic and numeric ``d sum(out * r) / d input``."""
    m, x, r_dev, r = _setup(module, input, seed)
    analytic = backend.asnumpy(m.updateGradInput(x, r_dev)).copy()
    numeric = _numeric(m, x, x, r, eps)
    return float(np.abs(analytic - numeric).max())


def testJacobianParameters(module, input, eps=1e-6, seed=0):
    """Per parameter name (``'weight'``, ``'0.bias'``, ...): max abs difference between the
    accumulated gradient and central differences, for the same projected loss."""
    m, x, r_dev, r = _setup(module, input, seed)
    m.zeroGradParameters()
    m.updateGradInput(x, r_dev)
    m.accGradParameters(x, r_dev, 1)
    errors = {}
    for name, p, g in m.named_parameters():
        analytic = backend.asnumpy(g).copy()
        numeric = _numeric(m, x, p, r, eps)
        errors[name] = float(np.abs(analytic - numeric).max())
    return errors


def check(module, input, eps=1e-6, seed=0):
    """Both checks in one dict: ``{'input': err, 'weight': err, ...}``."""
    return {'input': testJacobian(module, input, eps, seed),
            **testJacobianParameters(module, input, eps, seed)}
