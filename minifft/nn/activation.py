"""Pointwise activations, the softmax family and Identity."""
from .. import backend
from ..parallel import each_part
from .module import Module, check_array, check_dims, check_grad_output


class Identity(Module):
    def updateOutput(self, input):
        self.output = input
        return input

    def updateGradInput(self, input, gradOutput):
        self.gradInput = gradOutput
        return gradOutput


class ReLU(Module):
    def updateOutput(self, input):
        check_array(self, input)
        xp = backend.get_array_module(input)
        self.output = xp.empty_like(input)
        each_part(lambda x, y: xp.maximum(x, 0, out=y), input, self.output)
        return self.output

    def updateGradInput(self, input, gradOutput):
        check_grad_output(self, gradOutput)
        xp = backend.get_array_module(gradOutput)
        self.gradInput = xp.empty_like(gradOutput)
        each_part(lambda g, x, gi: xp.multiply(g, x > 0, out=gi), gradOutput, input,
                  self.gradInput)
        return self.gradInput


class Tanh(Module):
    def updateOutput(self, input):
        check_array(self, input)
        self.output = backend.get_array_module(input).tanh(input)
        return self.output

    def updateGradInput(self, input, gradOutput):
        check_grad_output(self, gradOutput)
        self.gradInput = gradOutput * (1 - self.output * self.output)
        return self.gradInput


class Sigmoid(Module):
    def updateOutput(self, input):
        check_array(self, input)
        xp = backend.get_array_module(input)
        # 0.5 * (1 + tanh(x / 2)) never overflows, unlike 1 / (1 + exp(-x))
        self.output = 0.5 * (1 + xp.tanh(0.5 * input))
        return self.output

    def updateGradInput(self, input, gradOutput):
        check_grad_output(self, gradOutput)
        self.gradInput = gradOutput * self.output * (1 - self.output)
        return self.gradInput


class _SoftMaxBase(Module):
    """Over the last dimension of a ``(B, C)`` batch or a ``(C,)`` vector, shifted by the max so
    that no exponential overflows."""

    def _log_softmax(self, input):
        check_dims(self, input, (1, 2), expected='(B, C) or (C,)')
        xp = backend.get_array_module(input)
        shifted = input - input.max(axis=-1, keepdims=True)
        return shifted - xp.log(xp.exp(shifted).sum(axis=-1, keepdims=True))


class LogSoftMax(_SoftMaxBase):
    def updateOutput(self, input):
        self.output = self._log_softmax(input)
        return self.output

    def updateGradInput(self, input, gradOutput):
        check_grad_output(self, gradOutput)
        xp = backend.get_array_module(input)
        self.gradInput = gradOutput - xp.exp(self.output) * gradOutput.sum(axis=-1,
                                                                           keepdims=True)
        return self.gradInput


class SoftMax(_SoftMaxBase):
    def updateOutput(self, input):
        self.output = backend.get_array_module(input).exp(self._log_softmax(input))
        return self.output

    def updateGradInput(self, input, gradOutput):
        check_grad_output(self, gradOutput)
        y = self.output
        self.gradInput = y * (gradOutput - (gradOutput * y).sum(axis=-1, keepdims=True))
        return self.gradInput
