from .. import random
from .module import Module, check_array, check_grad_output


class Dropout(Module):
    """Inverted dropout: in training, zero each element with probability ``p`` and scale the
    survivors by ``1/(1-p)``, so that evaluate mode is the identity."""
    _scratch = Module._scratch + ('noise',)

    def __init__(self, p=0.5):
        super().__init__()
        if not 0 <= p < 1:
            raise ValueError(f'{self.name()}: p must be in [0, 1), got {p}')
        self.p = float(p)
        self.noise = None

    def updateOutput(self, input):
        check_array(self, input)
        if self.train and self.p > 0:
            self.noise = (random.uniform_like(input) >= self.p).astype(input.dtype)
            self.noise /= 1 - self.p
            self.output = input * self.noise
        else:
            self.noise = None
            self.output = input
        return self.output

    def updateGradInput(self, input, gradOutput):
        check_grad_output(self, gradOutput)
        self.gradInput = gradOutput * self.noise if self.noise is not None else gradOutput
        return self.gradInput

    def extra_repr(self):
        return f'{self.p}'
