"""Batch normalisation (Ioffe & Szegedy), with Torch's running statistics and affine option."""
import numpy as np

from .. import backend
from ..checks import rate
from ..parallel import each_part
from .module import (Module, as_image_batch, check_dims, check_float_array, check_grad_output,
                     check_size, whole)


class BatchNormalization(Module):
    """Normalises each feature of a ``(B, N)`` batch. In training it uses the batch's mean and
    biased variance and updates ``running_mean``/``running_var`` (unbiased) with ``momentum``;
    in evaluate mode it uses the running statistics."""
    _buffer_names = ('running_mean', 'running_var')
    _scratch = Module._scratch + ('save_mean', 'save_std', '_xhat')

    def __init__(self, nOutput, eps=1e-5, momentum=0.1, affine=True):
        super().__init__()
        self.nOutput = whole(self, 'nOutput', nOutput, 1)
        if rate(eps) is None or rate(momentum) is None or momentum > 1:
            raise ValueError(f'{self.name()}: eps must be a finite number >= 0 and momentum '
                             f'one in [0, 1], got eps={eps!r}, momentum={momentum!r}')
        self.eps, self.momentum, self.affine = eps, momentum, affine
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
    def _per_feature(v):
        return v.reshape(1, -1, 1)

    @staticmethod
    def _sum(a):
        return sum(each_part(lambda p: p.sum(axis=2).sum(axis=0), a))

    @staticmethod
    def _dot(a, b):
        """Per-feature sum of a * b without a temporary of the input's size."""
        return backend.get_array_module(a).einsum('scl,scl->c', a, b)

    def updateOutput(self, input):
        x = self._as_batch(input)
        xp = backend.get_array_module(x)
        count = x.size // self.nOutput
        xc = xp.empty(x.shape, x.dtype)  # x centred, then normalised: kept for the gradients
        # an empty batch has no statistics of its own: it goes through as in evaluation, the
        # running statistics left alone (PyTorch's way), and comes out empty
        if self.train and count:
            if count < 2:
                raise ValueError(f'{self.name()}: training needs more than one value per '
                                 f'feature, got input shape {tuple(input.shape)}')
            mean = self._sum(x) / count
            centre = self._per_feature(mean)
            # centred part by part, each part's squares summed while it is in cache
            var = sum(each_part(lambda p, q: self._dot(xp.subtract(p, centre, out=q), q),
                                x, xc)) / count
            m = self.momentum
            self.running_mean *= 1 - m
            self.running_mean += m * mean.astype(self.running_mean.dtype)
            self.running_var *= 1 - m
            self.running_var += m * (var * count / (count - 1)).astype(self.running_var.dtype)
        else:
            mean, var = self.running_mean.astype(x.dtype), self.running_var
            centre = self._per_feature(mean)
            each_part(lambda p, q: xp.subtract(p, centre, out=q), x, xc)
        self.save_mean = mean.astype(x.dtype)
        self.save_std = (1 / xp.sqrt(var + self.eps)).astype(x.dtype)
        std = self._per_feature(self.save_std)
        w, b = ((self._per_feature(self.weight), self._per_feature(self.bias)) if self.affine
                else (None, None))
        y = xp.empty_like(xc)

        def normalise(q, r):
            q *= std
            if w is None:
                r[...] = q
            else:
                xp.multiply(q, w, out=r)
                r += b
        each_part(normalise, xc, y)
        self._xhat = xc
        self.output = y.reshape(input.shape)
        return self.output

    def _grad_sums(self, g):
        """Per feature: the sum of gradOutput and its dot product with the normalised input,
        what both the input's and the parameters' gradients are made of (one pass)."""
        parts = each_part(lambda p, h: (p.sum(axis=2).sum(axis=0), self._dot(p, h)),
                          g, self._xhat)
        return sum(p[0] for p in parts), sum(p[1] for p in parts)

    def _grad_input(self, g, sums):
        xp = backend.get_array_module(g)
        scale = self._per_feature(self.save_std if not self.affine
                                  else self.save_std * self.weight)
        gi = xp.empty(g.shape, g.dtype)
        if not self.train or not g.size:
            each_part(lambda p, r: xp.multiply(p, scale, out=r), g, gi)
            return gi
        # d/dx of normalising by the batch's own statistics
        count = g.size // self.nOutput
        gm, gx = (self._per_feature(s) / count for s in sums)

        def part(p, h, r):
            xp.multiply(h, gx, out=r)
            xp.subtract(p, r, out=r)
            r -= gm
            r *= scale
        each_part(part, g, self._xhat, gi)
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
        return x.reshape(x.shape[0], self.nOutput, x.shape[2] * x.shape[3])
