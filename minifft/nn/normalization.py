"""Batch normalisation (Ioffe & Szegedy), with Torch's running statistics and affine option."""
import numpy as np

from .. import backend
from .module import Module, as_image_batch, check_dims, check_grad_output, check_size


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
        """The input checked, in the layout the statistics are taken over."""
        check_dims(self, input, (2,), expected=f'(B, {self.nOutput})')
        check_size(self, input, 1, self.nOutput, meaning='feature count')
        return input

    def _from_batch(self, y, input):
        return y

    def _bshape(self, input):
        return (1, self.nOutput)

    def _axes(self, input):
        return (0,)

    def updateOutput(self, input):
        x = self._as_batch(input)
        xp = backend.get_array_module(x)
        axes, shape = self._axes(x), self._bshape(x)
        if self.train:
            count = x.size // self.nOutput
            if count < 2:
                raise ValueError(f'{self.name()}: training needs more than one value per '
                                 f'feature, got input shape {tuple(input.shape)}')
            mean = x.mean(axis=axes)
            var = x.var(axis=axes)
            m = self.momentum
            self.running_mean *= 1 - m
            self.running_mean += m * mean.astype(self.running_mean.dtype)
            self.running_var *= 1 - m
            self.running_var += m * (var * count / (count - 1)).astype(self.running_var.dtype)
        else:
            mean, var = self.running_mean, self.running_var
        self.save_mean = mean.astype(x.dtype)
        self.save_std = (1 / xp.sqrt(var + self.eps)).astype(x.dtype)
        self._xhat = (x - self.save_mean.reshape(shape)) * self.save_std.reshape(shape)
        y = self._xhat
        if self.affine:
            y = y * self.weight.reshape(shape) + self.bias.reshape(shape)
        self.output = self._from_batch(y, input)
        return self.output

    def updateGradInput(self, input, gradOutput):
        check_grad_output(self, gradOutput)
        g = self._as_batch(gradOutput)
        axes, shape = self._axes(g), self._bshape(g)
        scale = self.save_std if not self.affine else self.save_std * self.weight
        if self.train:
            # d/dx of normalising by the batch's own statistics
            gm = g.mean(axis=axes, keepdims=True)
            gx = (g * self._xhat).mean(axis=axes, keepdims=True)
            gi = (g - gm - self._xhat * gx) * scale.reshape(shape)
        else:
            gi = g * scale.reshape(shape)
        self.gradInput = self._from_batch(gi, input)
        return self.gradInput

    def accGradParameters(self, input, gradOutput, scale=1):
        if not self.affine:
            return
        g = self._as_batch(gradOutput)
        axes = self._axes(g)
        self.gradWeight += scale * (g * self._xhat).sum(axis=axes)
        self.gradBias += scale * g.sum(axis=axes)

    def extra_repr(self):
        return f'{self.nOutput}' + ('' if self.affine else ', affine=False')


class SpatialBatchNormalization(BatchNormalization):
    """Normalises each channel of a ``(S, C, H, W)`` batch (or a ``(C, H, W)`` sample) over
    the batch and both spatial dimensions."""

    def _as_batch(self, input):
        return as_image_batch(self, input, self.nOutput)

    def _from_batch(self, y, input):
        return y.reshape(input.shape)

    def _bshape(self, input):
        return (1, self.nOutput, 1, 1)

    def _axes(self, input):
        return (0, 2, 3)
