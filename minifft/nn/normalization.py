"""Batch normalisation (Ioffe & Szegedy), with Torch's running statistics and affine option."""
import numpy as np

from .. import backend
from .module import (Module, as_image_batch, check_dims, check_float_array, check_grad_output,
                     check_size)


class BatchNormalization(Module):
    """Normalises each feature of a ``(B, N)`` batch. In training it uses the batch's mean and
    biased variance and updates ``running_mean``/``running_var`` (unbiased) with ``momentum``;
    in evaluate mode it uses the running statistics."""
    _buffer_names = ('running_mean', 'running_var')
    _scratch = Module._scratch + ('save_mean', 'save_std', '_xhat')

    def __init__(self, nOutput, eps=1e-5, momentum=0.1, affine=True):
        super().__init__()
        self.nOutput, self.eps, self.momentum, self.affine = int(nOutput), eps, momentum, affine
        self.running_mean = np.zeros(self.nOutput, np.float32)
        self.running_var = np.ones(self.nOutput, np.float32)
        self.weight = np.ones(self.nOutput, np.float32) if affine else None
        self.bias = np.zeros(self.nOutput, np.float32) if affine else None
        self.gradWeight = np.zeros(self.nOutput, np.float32) if affine else None
        self.gradBias = np.zeros(self.nOutput, np.float32) if affine else None
        self.save_mean = self.save_std = self._xhat = None

    def reset(self, stdv=None):
        if self.affine:
            self.weight[...] = 1
            self.bias[...] = 0
        self.running_mean[...] = 0
        self.running_var[...] = 1
        return self

    def dtype(self):
        return self.running_mean.dtype

    def _as_batch(self, input):
        """The input checked, as ``(rows, nOutput, positions)`` with statistics over 0 and 2."""
        check_dims(self, input, (2,), expected=f'(B, {self.nOutput})')
        check_size(self, input, 1, self.nOutput, meaning='feature count')
        return input.reshape(input.shape[0], self.nOutput, 1)

    @staticmethod
    def _sum(a):
        return a.sum(axis=2).sum(axis=0)

    @staticmethod
    def _dot(a, b):
        """Per-feature sum of a * b without a temporary of the input's size."""
        return backend.get_array_module(a).einsum('scl,scl->c', a, b)

    def updateOutput(self, input):
        x = self._as_batch(input)
        xp = backend.get_array_module(x)
        count = x.size // self.nOutput
        if self.train:
            if count < 2:
                raise ValueError(f'{self.name()}: training needs more than one value per '
                                 f'feature, got input shape {tuple(input.shape)}')
            mean = self._sum(x) / count
            xc = x - mean.reshape(1, -1, 1)
            var = self._dot(xc, xc) / count
            m = self.momentum
            self.running_mean *= 1 - m
            self.running_mean += m * mean.astype(self.running_mean.dtype)
            self.running_var *= 1 - m
            self.running_var += m * (var * count / (count - 1)).astype(self.running_var.dtype)
        else:
            mean, var = self.running_mean.astype(x.dtype), self.running_var
            xc = x - mean.reshape(1, -1, 1)
        self.save_mean = mean.astype(x.dtype)
        self.save_std = (1 / xp.sqrt(var + self.eps)).astype(x.dtype)
        xc *= self.save_std.reshape(1, -1, 1)
        self._xhat = xc
        if self.affine:
            y = xc * self.weight.reshape(1, -1, 1)
            y += self.bias.reshape(1, -1, 1)
        else:
            y = xc.copy()
        self.output = y.reshape(input.shape)
        return self.output

    def _grad_sums(self, g):
        """Per feature: the sum of gradOutput and its dot product with the normalised input,
        what both the input's and the parameters' gradients are made of."""
        return self._sum(g), self._dot(g, self._xhat)

    def _grad_input(self, g, sums):
        scale = self.save_std if not self.affine else self.save_std * self.weight
        if not self.train:
            return g * scale.reshape(1, -1, 1)
        # d/dx of normalising by the batch's own statistics
        count = g.size // self.nOutput
        gm, gx = (s.reshape(1, -1, 1) / count for s in sums)
        gi = self._xhat * gx
        backend.get_array_module(g).subtract(g, gi, out=gi)
        gi -= gm
        gi *= scale.reshape(1, -1, 1)
        return gi

    def _acc(self, sums, scale):
        self.gradWeight += scale * sums[1]
        self.gradBias += scale * sums[0]

    def updateGradInput(self, input, gradOutput):
        check_grad_output(self, gradOutput)
        g = self._as_batch(gradOutput)
        self.gradInput = self._grad_input(g, self._grad_sums(g) if self.train else None
                                          ).reshape(input.shape)
        return self.gradInput

    def accGradParameters(self, input, gradOutput, scale=1):
        if self.affine:
            self._acc(self._grad_sums(self._as_batch(gradOutput)), scale)

    def backward(self, input, gradOutput, scale=1):
        """Both gradients from one set of sums over gradOutput, as Torch7's
        BatchNormalization.backward does (the two operations alone take a pass each)."""
        check_float_array(self, gradOutput, 'gradOutput', finite=False)
        check_grad_output(self, gradOutput)
        g = self._as_batch(gradOutput)
        sums = self._grad_sums(g) if self.train or self.affine else None
        self.gradInput = (self._grad_input(g, sums).reshape(input.shape)
                          if self.gradInputNeeded else None)
        if self.affine:
            self._acc(sums, scale)
        return self.gradInput

    def extra_repr(self):
        return f'{self.nOutput}' + ('' if self.affine else ', affine=False')


class SpatialBatchNormalization(BatchNormalization):
    """Normalises each channel of a ``(S, C, H, W)`` batch (or a ``(C, H, W)`` sample) over
    the batch and both spatial dimensions."""

    def _as_batch(self, input):
        x = as_image_batch(self, input, self.nOutput)
        return x.reshape(x.shape[0], self.nOutput, -1)
