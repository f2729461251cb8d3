"""Spatial convolution: the shared parameters and checks, and the direct (im2col + GEMM) layer.

Both convolution layers compute Torch's cross-correlation
``out[s, o, y, x] = b[o] + sum_{i,u,v} in_padded[s, i, y*dH + u, x*dW + v] * w[o, i, u, v]``.
"""
import math

import numpy as np

from .. import backend
from .fft_cache import FFTCache
from .module import (Module, as_image_batch, check_array, check_grad_output, check_same_dtype,
                     init_uniform, whole)


class _SpatialConvolutionBase(Module):
    """Torch7's constructor, argument order and parameters; subclasses give the algorithm."""

    def __init__(self, nInputPlane, nOutputPlane, kW, kH=None, dW=1, dH=None, padW=0,
                 padH=None):
        super().__init__()
        self.nInputPlane = whole(self, 'nInputPlane', nInputPlane, 1)
        self.nOutputPlane = whole(self, 'nOutputPlane', nOutputPlane, 1)
        self.kW = whole(self, 'kW', kW, 1)
        self.kH = whole(self, 'kH', kH, 1) if kH is not None else self.kW
        self.dW = whole(self, 'dW', dW, 1)
        self.dH = whole(self, 'dH', dH, 1) if dH is not None else self.dW
        self.padW = whole(self, 'padW', padW, 0)
        self.padH = whole(self, 'padH', padH, 0) if padH is not None else self.padW
        shape = (self.nOutputPlane, self.nInputPlane, self.kH, self.kW)
        self.weight = np.zeros(shape, np.float32)
        self.gradWeight = np.zeros(shape, np.float32)
        self.bias = np.zeros(self.nOutputPlane, np.float32)
        self.gradBias = np.zeros(self.nOutputPlane, np.float32)
        self.reset()

    def noBias(self):
        self.bias = self.gradBias = None
        return self

    def reset(self, stdv=None):
        """Torch's default: uniform in +-1/sqrt(nInputPlane * kH * kW)."""
        if stdv is None:
            stdv = 1.0 / math.sqrt(self.kW * self.kH * self.nInputPlane)
        return init_uniform(self, stdv)

    def _geometry(self, input):
        """The checked ``(S, f, H, W)`` batch and the output size."""
        x = as_image_batch(self, input, self.nInputPlane)
        check_same_dtype(self, x)
        # a weight assigned by hand failed deep in the products otherwise
        for name, a, shape in (('weight', self.weight, (self.nOutputPlane, self.nInputPlane,
                                                          self.kH, self.kW)),
                               ('bias', self.bias, (self.nOutputPlane,))):
            if a is not None and tuple(a.shape) != shape:
                raise ValueError(f'{self.name()}: {name} has shape {tuple(a.shape)}, the layer '
                                 f'({self.extra_repr()}) needs {shape}')
        H, W = x.shape[2:]
        Hp, Wp = H + 2 * self.padH, W + 2 * self.padW
        if Hp < self.kH or Wp < self.kW:
            raise ValueError(f'{self.name()}: input {H}x{W} padded by ({self.padH}, {self.padW}) '
                             f'is {Hp}x{Wp}, smaller than the {self.kH}x{self.kW} kernel')
        oH = (Hp - self.kH) // self.dH + 1
        oW = (Wp - self.kW) // self.dW + 1
        return x, oH, oW

    def _grad_batch(self, input, gradOutput):
        """gradOutput as an ``(S, f', oH, oW)`` batch, checked against this input's output."""
        x, oH, oW = self._geometry(input)
        expected = (x.shape[0], self.nOutputPlane, oH, oW)
        check_array(self, gradOutput, 'gradOutput')
        g = gradOutput[None] if gradOutput.ndim == 3 else gradOutput
        if tuple(g.shape) != expected:
            raise ValueError(f'{self.name()}: gradOutput must have shape {expected[4 - input.ndim:]}'
                             f' for input {tuple(input.shape)}, got {tuple(gradOutput.shape)}')
        check_grad_output(self, gradOutput)
        return x, g

    def _finish_output(self, out, input, add_bias=True):
        if add_bias and self.bias is not None:
            out += self.bias.reshape(1, -1, 1, 1)
        return out[0] if input.ndim == 3 else out

    def _acc_grad_bias(self, g, scale):
        if self.bias is not None:
            self.gradBias += scale * g.sum(axis=(0, 2, 3))

    def extra_repr(self):
        s = f'{self.nInputPlane} -> {self.nOutputPlane}, {self.kW}x{self.kH}'
        if self.dW != 1 or self.dH != 1 or self.padW or self.padH:
            s += f', {self.dW},{self.dH}'
        if self.padW or self.padH:
            s += f', {self.padW},{self.padH}'
        return s + ('' if self.bias is not None else ', without bias')


class SpatialConvolution(_SpatialConvolutionBase):
    """Direct convolution as Torch7's SpatialConvolutionMM: unfold the padded input into
    columns (im2col, ``f*kH*kW`` rows by ``S*oH*oW`` columns) and do one GEMM per operation.
    Cost: ``S f' f oH oW kH kW`` multiply-adds per operation. The columns made by
    ``updateOutput`` are kept (like Torch's ``finput``) and reused by ``accGradParameters``
    while the input is unchanged."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.columns_cache = FFTCache()

    def _columns(self, x, oH, oW, fresh=False):
        return self.columns_cache.get('columns', x, (oH, oW),
                                      lambda a, spare: self._im2col(a, oH, oW), fresh)

    def _im2col(self, x, oH, oW):
        xp = backend.get_array_module(x)
        S, f, H, W = x.shape
        padded = xp.zeros((f, S, H + 2 * self.padH, W + 2 * self.padW), x.dtype)
        padded[:, :, self.padH:self.padH + H, self.padW:self.padW + W] = x.transpose(1, 0, 2, 3)
        cols = xp.empty((f, self.kH, self.kW, S, oH, oW), x.dtype)
        for u in range(self.kH):
            for v in range(self.kW):
                cols[:, u, v] = padded[:, :, u:u + self.dH * (oH - 1) + 1:self.dH,
                                       v:v + self.dW * (oW - 1) + 1:self.dW]
        return cols.reshape(f * self.kH * self.kW, S * oH * oW)

    def _weight_matrix(self):
        return self.weight.reshape(self.nOutputPlane, -1)

    def updateOutput(self, input):
        x, oH, oW = self._geometry(input)
        out = self._weight_matrix() @ self._columns(x, oH, oW, fresh=True)  # (f', S*oH*oW)
        out = out.reshape(self.nOutputPlane, x.shape[0], oH, oW).transpose(1, 0, 2, 3)
        self.output = self._finish_output(backend.get_array_module(x).ascontiguousarray(out),
                                          input)
        return self.output

    def updateGradInput(self, input, gradOutput):
        x, g = self._grad_batch(input, gradOutput)
        xp = backend.get_array_module(x)
        S, f, H, W = x.shape
        oH, oW = g.shape[2:]
        g2 = g.transpose(1, 0, 2, 3).reshape(self.nOutputPlane, -1)
        cols = (self._weight_matrix().T @ g2).reshape(f, self.kH, self.kW, S, oH, oW)
        padded = xp.zeros((f, S, H + 2 * self.padH, W + 2 * self.padW), x.dtype)
        for u in range(self.kH):  # col2im: every tap adds back where it was read from
            for v in range(self.kW):
                padded[:, :, u:u + self.dH * (oH - 1) + 1:self.dH,
                       v:v + self.dW * (oW - 1) + 1:self.dW] += cols[:, u, v]
        gi = padded[:, :, self.padH:self.padH + H, self.padW:self.padW + W].transpose(1, 0, 2, 3)
        self.gradInput = xp.ascontiguousarray(gi).reshape(input.shape)
        return self.gradInput

    def accGradParameters(self, input, gradOutput, scale=1):
        x, g = self._grad_batch(input, gradOutput)
        oH, oW = g.shape[2:]
        g2 = g.transpose(1, 0, 2, 3).reshape(self.nOutputPlane, -1)
        gw = g2 @ self._columns(x, oH, oW).T
        self.gradWeight += scale * gw.reshape(self.gradWeight.shape)
        self._acc_grad_bias(g, scale)

    def clearState(self):
        self.columns_cache.clear()
        return super().clearState()
