import math

from ..checks import whole_number
from .module import Module, check_array, check_grad_output


class View(Module):
    """Reshape each sample to ``sizes`` (one of them may be -1), keeping the batch dimension:
    ``View(-1)`` flattens a ``(S, C, H, W)`` batch to ``(S, C*H*W)``. An input with exactly
    ``prod(sizes)`` elements and no batch dimension is a single sample."""

    def __init__(self, *sizes):
        super().__init__()
        if len(sizes) == 1 and isinstance(sizes[0], (tuple, list)):
            sizes = tuple(sizes[0])
        if (any(whole_number(s, -1) in (None, 0) for s in sizes)
                or sum(s == -1 for s in sizes) > 1):
            raise ValueError(f'{self.name()}: sizes {sizes} may hold one -1 and otherwise '
                             'positive whole numbers')
        self.sizes = tuple(int(s) for s in sizes)

    def _target(self, input):
        check_array(self, input)
        known = math.prod(s for s in self.sizes if s != -1)
        if -1 not in self.sizes and input.size == known and input.ndim == len(self.sizes):
            return self.sizes  # a single sample
        batch = input.shape[0] if input.ndim > 0 else 1
        per_sample = math.prod(input.shape[1:])
        if per_sample % known or (-1 not in self.sizes and per_sample != known):
            raise ValueError(f'{self.name()}: cannot view input of shape {tuple(input.shape)} '
                             f'as (batch, {", ".join(map(str, self.sizes))})')
        # the -1 resolved here: NumPy cannot infer it for an empty batch
        return (batch,) + tuple(per_sample // known if s == -1 else s for s in self.sizes)

    def updateOutput(self, input):
        shape = self._target(input)
        self.output = input.reshape(shape)
        return self.output

    def updateGradInput(self, input, gradOutput):
        check_grad_output(self, gradOutput)
        self.gradInput = gradOutput.reshape(input.shape)
        return self.gradInput

    def extra_repr(self):
        return ', '.join(map(str, self.sizes))


class Reshape(View):
    """Like View, but the output is always a fresh contiguous copy (Torch's nn.Reshape)."""

    def updateOutput(self, input):
        shape = self._target(input)
        self.output = input.reshape(shape).copy()
        return self.output
