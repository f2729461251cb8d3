"""Criterions: a loss ``output`` from ``(input, target)`` and its ``gradInput``.

Class targets are integer arrays of 0-based class indices. ``output`` is a 0-d array (on the
GPU it stays there, so a training step need not wait for it); ``float(loss)`` reads it.
"""
import numpy as np

from .. import backend
from .activation import LogSoftMax
from .module import check_dims, check_float_array


class Criterion:
    sizeAverage = True  # the loss is a mean over the batch, not a sum (where a criterion has both)

    def __init__(self):
        self.output = None
        self.gradInput = None

    def forward(self, input, target):
        check_float_array(self, input, 'input')
        return self.updateOutput(input, target)

    def backward(self, input, target):
        return self.updateGradInput(input, target)

    def updateOutput(self, input, target):
        raise NotImplementedError

    def updateGradInput(self, input, target):
        raise NotImplementedError

    def name(self):
        return f'nn.{type(self).__name__}'

    def __repr__(self):
        return self.name()

    def _check_not_empty(self, input):
        """An average over no samples is undefined (``sizeAverage``): say so, rather than
        NumPy's warning and NaN or its error about reducing an empty array."""
        if self.sizeAverage and input.size == 0:
            raise ValueError(f'{self.name()}: the input is empty (shape {tuple(input.shape)}); '
                             'an average loss needs at least one sample (or sizeAverage=False)')

    def _check_classes(self, input, target):
        check_dims(self, input, (1, 2), expected='(B, nClasses) or (nClasses,)')
        self._check_not_empty(input)
        batch = input.reshape(1, -1) if input.ndim == 1 else input
        xp = backend.get_array_module(batch)
        target = xp.asarray(target).reshape(-1)
        if target.dtype.kind not in 'iu':
            raise TypeError(f'{self.name()}: target must hold integer class indices, got '
                            f'{target.dtype}')
        if target.shape[0] != batch.shape[0]:
            raise ValueError(f'{self.name()}: {target.shape[0]} targets for a batch of '
                             f'{batch.shape[0]} (input shape {tuple(input.shape)})')
        n = batch.shape[1]
        if backend.is_gpu_array(target):
            # reading the range back would stop the host at every step: out-of-range targets
            # turn the loss and the gradient into NaN instead (the trainer reports a NaN loss
            # by step; datasets check their labels when opened)
            bad = (target < 0) | (target >= n)
            return batch, xp.where(bad, 0, target), xp.where(bad.any(), xp.nan, 0).astype(
                batch.dtype)
        lo, hi = (int(target.min()), int(target.max())) if target.size else (0, 0)
        if lo < 0 or hi >= n:
            raise ValueError(f'{self.name()}: targets must be in [0, {n}), got '
                             f'values in [{lo}, {hi}]')
        return batch, target, None


class ClassNLLCriterion(Criterion):
    """Negative log-likelihood of log-probabilities: ``-sum_i w[t_i] x[i, t_i]``, divided by
    ``sum_i w[t_i]`` when ``sizeAverage`` (Torch's definition)."""

    def __init__(self, weights=None, sizeAverage=True):
        super().__init__()
        self.weights = None if weights is None else np.asarray(weights, np.float64)
        self.sizeAverage = sizeAverage

    def _sample_weights(self, xp, x, target):
        if self.weights is None:
            return xp.ones(target.shape[0], dtype=x.dtype)
        if self.weights.shape[0] != x.shape[1]:
            raise ValueError(f'{self.name()}: {self.weights.shape[0]} class weights for '
                             f'{x.shape[1]} classes')
        return xp.asarray(self.weights, dtype=x.dtype)[target]

    def updateOutput(self, input, target):
        x, t, poison = self._check_classes(input, target)
        xp = backend.get_array_module(x)
        w = self._sample_weights(xp, x, t)
        picked = x[xp.arange(x.shape[0]), t]
        total = -(w * picked).sum()
        self.output = total / w.sum() if self.sizeAverage else total
        if poison is not None:
            self.output = self.output + poison
        return self.output

    def updateGradInput(self, input, target):
        x, t, poison = self._check_classes(input, target)
        xp = backend.get_array_module(x)
        w = self._sample_weights(xp, x, t)
        if self.sizeAverage:
            w = w / w.sum()
        grad = xp.zeros_like(x)
        grad[xp.arange(x.shape[0]), t] = -w
        if poison is not None:
            grad += poison
        self.gradInput = grad.reshape(input.shape)
        return self.gradInput


class CrossEntropyCriterion(Criterion):
    """LogSoftMax followed by ClassNLLCriterion, on raw scores."""

    def __init__(self, weights=None, sizeAverage=True):
        super().__init__()
        self.lsm = LogSoftMax()
        self.nll = ClassNLLCriterion(weights, sizeAverage)
        # bad input is reported under the name the user wrote, not a part's
        self.lsm.name = self.nll.name = self.name

    def updateOutput(self, input, target):
        self.output = self.nll.updateOutput(self.lsm.updateOutput(input), target)
        return self.output

    def updateGradInput(self, input, target):
        self.lsm.updateOutput(input)
        g = self.nll.updateGradInput(self.lsm.output, target)
        self.gradInput = self.lsm.updateGradInput(input, g)
        return self.gradInput


class MSECriterion(Criterion):
    """``sum((input - target)^2)``, divided by the number of elements when ``sizeAverage``."""

    def __init__(self, sizeAverage=True):
        super().__init__()
        self.sizeAverage = sizeAverage

    def _diff(self, input, target):
        if tuple(target.shape) != tuple(input.shape):
            raise ValueError(f'{self.name()}: target shape {tuple(target.shape)} differs from '
                             f'input shape {tuple(input.shape)}')
        self._check_not_empty(input)
        return input - target

    def updateOutput(self, input, target):
        d = self._diff(input, target)
        total = (d * d).sum()
        self.output = total / d.size if self.sizeAverage else total
        return self.output

    def updateGradInput(self, input, target):
        d = self._diff(input, target)
        self.gradInput = (2 / d.size if self.sizeAverage else 2) * d
        return self.gradInput
