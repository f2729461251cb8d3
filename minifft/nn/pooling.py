"""Spatial max and average pooling with Torch's padding and ceil() options.

Max pooling loops over the kH*kW window offsets, each step a strided slice of the batch, part
of the batch by part on the CPU's threads (minifft/parallel.py); average pooling reduces a
strided view of all windows at once (``_all_windows``). The same code runs on NumPy and CuPy.
"""
import math

from .. import backend
from ..parallel import each_part
from .module import Module, as_image_batch, check_grad_output, whole


class _SpatialPooling(Module):
    def __init__(self, kW, kH, dW=None, dH=None, padW=0, padH=0):
        super().__init__()
        self.kW, self.kH = whole(self, 'kW', kW, 1), whole(self, 'kH', kH, 1)
        self.dW = whole(self, 'dW', dW, 1) if dW is not None else self.kW
        self.dH = whole(self, 'dH', dH, 1) if dH is not None else self.kH
        self.padW, self.padH = whole(self, 'padW', padW, 0), whole(self, 'padH', padH, 0)
        self.ceil_mode = False
        if self.padW * 2 > self.kW or self.padH * 2 > self.kH:
            raise ValueError(f'{self.name()}: padding ({self.padW}, {self.padH}) must be at most '
                             f'half the kernel ({self.kW}, {self.kH})')

    def ceil(self):
        self.ceil_mode = True
        return self

    def floor(self):
        self.ceil_mode = False
        return self

    def _out_size(self, n, k, d, pad):
        rnd = math.ceil if self.ceil_mode else math.floor
        out = rnd((n + 2 * pad - k) / d) + 1
        if self.ceil_mode and (out - 1) * d >= n + pad:  # the last window must start inside
            out -= 1
        return out

    def _geometry(self, input):
        x = as_image_batch(self, input)
        H, W = x.shape[2:]
        if H + 2 * self.padH < self.kH or W + 2 * self.padW < self.kW:
            raise ValueError(f'{self.name()}: input {H}x{W} (padded by {self.padH},{self.padW}) '
                             f'is smaller than the {self.kH}x{self.kW} window')
        oH = self._out_size(H, self.kH, self.dH, self.padH)
        oW = self._out_size(W, self.kW, self.dW, self.padW)
        # rows/cols the padded buffer needs so every window, ceil ones included, fits
        pH = max((oH - 1) * self.dH + self.kH, H + 2 * self.padH)
        pW = max((oW - 1) * self.dW + self.kW, W + 2 * self.padW)
        return x, oH, oW, pH, pW

    def _padded(self, x, pH, pW, fill):
        S, C, H, W = x.shape
        if (pH, pW) == (H, W):
            return x  # nothing to pad: read the input itself
        xp = backend.get_array_module(x)
        buf = xp.full((S, C, pH, pW), fill, dtype=x.dtype)
        buf[:, :, self.padH:self.padH + H, self.padW:self.padW + W] = x
        return buf

    def _window(self, buf, u, v, oH, oW):
        return buf[:, :, u:u + self.dH * (oH - 1) + 1:self.dH, v:v + self.dW * (oW - 1) + 1:self.dW]

    def _windows(self):
        return [(u, v) for u in range(self.kH) for v in range(self.kW)]

    def _all_windows(self, buf, oH, oW):
        """Every window of ``buf`` at once, a ``(S, C, oH, oW, kH, kW)`` view (windows may
        share pixels: read it, or write it only where they don't)."""
        xp = backend.get_array_module(buf)
        s = buf.strides
        return xp.lib.stride_tricks.as_strided(
            buf, buf.shape[:2] + (oH, oW, self.kH, self.kW),
            s[:2] + (s[2] * self.dH, s[3] * self.dW, s[2], s[3]))

    def _disjoint(self):
        return self.kH <= self.dH and self.kW <= self.dW

    def _unpad(self, buf, x, input):
        H, W = x.shape[2:]
        if buf.shape[2:] == (H, W):
            return buf.reshape(input.shape)  # nothing padded: the buffer is the gradient
        g = buf[:, :, self.padH:self.padH + H, self.padW:self.padW + W]
        return g.reshape(input.shape).copy()

    def extra_repr(self):
        return (f'{self.kW}x{self.kH}, {self.dW},{self.dH}, {self.padW},{self.padH}'
                + (', ceil' if self.ceil_mode else ''))


class SpatialMaxPooling(_SpatialPooling):
    _scratch = Module._scratch + ('_argmax',)

    def updateOutput(self, input):
        x, oH, oW, pH, pW = self._geometry(input)
        xp = backend.get_array_module(x)
        buf = self._padded(x, pH, pW, -xp.inf)
        out = xp.empty(x.shape[:2] + (oH, oW), x.dtype)
        self._argmax = xp.empty(out.shape, dtype=xp.uint8 if self.kH * self.kW < 256
                                else xp.int32)

        def part(b, o, arg):
            o[...] = self._window(b, 0, 0, oH, oW)
            arg[...] = 0
            for i, (u, v) in enumerate(self._windows()[1:], 1):
                win = self._window(b, u, v, oH, oW)
                better = (win > o).astype(arg.dtype)  # strict: first maximum wins
                # arg = i where better: arithmetic on small ints is far cheaper than a masked copy
                arg += better * (i - arg)
                xp.maximum(o, win, out=o)
        each_part(part, buf, out, self._argmax)
        self.output = out.reshape(out.shape[1:]) if input.ndim == 3 else out
        return self.output

    def updateGradInput(self, input, gradOutput):
        check_grad_output(self, gradOutput)
        x, oH, oW, pH, pW = self._geometry(input)
        xp = backend.get_array_module(x)
        g = gradOutput.reshape(self._argmax.shape)
        buf = xp.empty((x.shape[0], x.shape[1], pH, pW), dtype=x.dtype)
        disjoint = self._disjoint()

        def part(b, gp, arg):
            b[...] = 0
            for i, (u, v) in enumerate(self._windows()):
                win = self._window(b, u, v, oH, oW)
                if disjoint:  # each input pixel is in one window: write, don't accumulate
                    xp.multiply(gp, arg == i, out=win)
                else:
                    win += gp * (arg == i)
        each_part(part, buf, g, self._argmax)
        self.gradInput = self._unpad(buf, x, input)
        return self.gradInput


class SpatialAveragePooling(_SpatialPooling):
    """Average over each window; ``count_include_pad`` (Torch's default, True) divides by the
    window's size within the padded input, False by the number of real input pixels."""

    def __init__(self, kW, kH, dW=None, dH=None, padW=0, padH=0, count_include_pad=True):
        super().__init__(kW, kH, dW, dH, padW, padH)
        self.count_include_pad = count_include_pad

    def _divisor(self, x, oH, oW, pH, pW):
        xp = backend.get_array_module(x)
        H, W = x.shape[2:]
        counted = xp.zeros((1, 1, pH, pW), dtype=x.dtype)
        if self.count_include_pad:
            counted[:, :, :H + 2 * self.padH, :W + 2 * self.padW] = 1
        else:
            counted[:, :, self.padH:self.padH + H, self.padW:self.padW + W] = 1
        return self._all_windows(counted, oH, oW).sum(axis=(4, 5))

    def updateOutput(self, input):
        x, oH, oW, pH, pW = self._geometry(input)
        buf = self._padded(x, pH, pW, 0)
        # one reduction over all windows: a sum of kH*kW window slices took 2.8 ms for the
        # 8x8 global pooling of imagenet_small at batch 64, each slice a pass of its own
        out = self._all_windows(buf, oH, oW).sum(axis=(4, 5)) / self._divisor(x, oH, oW, pH, pW)
        self.output = out.reshape(out.shape[1:]) if input.ndim == 3 else out
        return self.output

    def updateGradInput(self, input, gradOutput):
        check_grad_output(self, gradOutput)
        x, oH, oW, pH, pW = self._geometry(input)
        xp = backend.get_array_module(x)
        g = gradOutput.reshape((x.shape[0], x.shape[1], oH, oW)) / self._divisor(x, oH, oW, pH, pW)
        buf = xp.zeros((x.shape[0], x.shape[1], pH, pW), dtype=x.dtype)
        if self._disjoint():
            self._all_windows(buf, oH, oW)[...] = g[..., None, None]
        else:
            for u, v in self._windows():
                self._window(buf, u, v, oH, oW)[...] += g
        self.gradInput = self._unpad(buf, x, input)
        return self.gradInput
