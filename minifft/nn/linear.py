import math

import numpy as np

from .module import (Module, check_dims, check_grad_output, check_same_dtype, check_size,
                     init_uniform, whole)


class Linear(Module):
    """``y = x W^T + b``; ``weight`` is ``(outputSize, inputSize)``, input ``(B, inputSize)`` or
    a single ``(inputSize,)`` sample."""

    def __init__(self, inputSize, outputSize, bias=True):
        super().__init__()
        self.inputSize = whole(self, 'inputSize', inputSize, 1)
        self.outputSize = whole(self, 'outputSize', outputSize, 1)
        self.weight = np.zeros((self.outputSize, self.inputSize), np.float32)
        self.gradWeight = np.zeros_like(self.weight)
        self.bias = np.zeros(self.outputSize, np.float32) if bias else None
        self.gradBias = np.zeros(self.outputSize, np.float32) if bias else None
        self.reset()

    def reset(self, stdv=None):
        return init_uniform(self, stdv if stdv is not None else 1.0 / math.sqrt(self.inputSize))

    def _as_batch(self, input):
        check_dims(self, input, (1, 2), expected=f'(B, {self.inputSize}) or ({self.inputSize},)')
        check_size(self, input, input.ndim - 1, self.inputSize, meaning='feature count')
        check_same_dtype(self, input)
        return input.reshape(1, -1) if input.ndim == 1 else input

    def updateOutput(self, input):
        x = self._as_batch(input)
        out = x @ self.weight.T
        if self.bias is not None:
            out += self.bias
        self.output = out.reshape(-1) if input.ndim == 1 else out
        return self.output

    def updateGradInput(self, input, gradOutput):
        check_grad_output(self, gradOutput)
        g = gradOutput.reshape(-1, self.outputSize)
        self.gradInput = (g @ self.weight).reshape(input.shape)
        return self.gradInput

    def accGradParameters(self, input, gradOutput, scale=1):
        x = self._as_batch(input)
        g = gradOutput.reshape(-1, self.outputSize)
        self.gradWeight += scale * (g.T @ x)
        if self.bias is not None:
            self.gradBias += scale * g.sum(axis=0)

    def extra_repr(self):
        return f'{self.inputSize} -> {self.outputSize}' + ('' if self.bias is not None else
                                                         ' without bias')
