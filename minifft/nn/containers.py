"""Container, Sequential and Concat.

Children live in ``self.modules``; indices are 0-based (Python's), where Torch7 counts from 1.
"""
from .. import backend
from ..checks import whole_number
from .module import Module, check_dims


class Container(Module):
    def __init__(self, *modules):
        super().__init__()
        self.modules = []
        for m in modules:
            self.add(m)

    def add(self, module):
        if not isinstance(module, Module):
            raise TypeError(f'{self.name()}.add: expected an nn.Module, got {type(module).__name__}')
        self.modules.append(module)
        return self

    def get(self, index):
        if whole_number(index, -len(self.modules)) is None or index >= len(self.modules):
            raise IndexError(f'{self.name()}.get: no module {index!r}; it holds '
                             f'{len(self.modules)}, numbered from 0')
        return self.modules[int(index)]

    def size(self):
        return len(self.modules)

    def __len__(self):
        return len(self.modules)

    def __getitem__(self, index):
        return self.modules[index]

    def _call_child(self, index, method, *args):
        """Run ``modules[index].method(*args)``; an error is re-raised naming the child."""
        child = self.modules[index]
        try:
            return getattr(child, method)(*args)
        except (ValueError, TypeError, IndexError, RuntimeError, ArithmeticError) as e:
            message = f'in {self.name()} module ({index}) {child.name()}.{method}: {e}'
            raise type(e)(message) from e

    def parameters(self):
        params, grads = [], []
        for m in self.modules:
            p, g = m.parameters()
            params += p
            grads += g
        return params, grads

    def named_parameters(self, prefix=''):
        return [item for i, m in enumerate(self.modules)
                for item in m.named_parameters(f'{prefix}{i}.')]

    def named_buffers(self, prefix=''):
        return [item for i, m in enumerate(self.modules)
                for item in m.named_buffers(f'{prefix}{i}.')]

    def zeroGradParameters(self):
        for m in self.modules:
            m.zeroGradParameters()

    def updateParameters(self, learningRate):
        for m in self.modules:
            m.updateParameters(learningRate)

    def reset(self, stdv=None):
        for m in self.modules:
            m.reset(stdv)

    def training(self):
        super().training()
        for m in self.modules:
            m.training()
        return self

    def evaluate(self):
        super().evaluate()
        for m in self.modules:
            m.evaluate()
        return self

    def clearState(self):
        super().clearState()
        for m in self.modules:
            m.clearState()
        return self

    def listModules(self):
        return [self] + [x for m in self.modules for x in m.listModules()]

    def _child_lines(self):
        lines = []
        for i, m in enumerate(self.modules):
            body = repr(m).replace('\n', '\n  ')
            lines.append(f'  ({i}): {body}')
        return lines


class Sequential(Container):
    """Feeds each child's output to the next."""

    def updateOutput(self, input):
        current = input
        for i in range(len(self.modules)):
            current = self._call_child(i, 'updateOutput', current)
        self.output = current
        return current

    def _inputs(self, input):
        return [input] + [m.output for m in self.modules[:-1]]

    def updateGradInput(self, input, gradOutput):
        inputs = self._inputs(input)
        current = gradOutput
        for i in reversed(range(len(self.modules))):
            current = self._call_child(i, 'updateGradInput', inputs[i], current)
        self.gradInput = current
        return current

    def accGradParameters(self, input, gradOutput, scale=1):
        inputs = self._inputs(input)
        current = gradOutput
        for i in reversed(range(len(self.modules))):
            self._call_child(i, 'accGradParameters', inputs[i], current, scale)
            current = self.modules[i].gradInput
        return None

    def backward(self, input, gradOutput, scale=1):
        """One pass, child by child: each child's updateGradInput then accGradParameters, so the
        FFT layers can reuse the gradOutput spectrum while it is fresh."""
        inputs = self._inputs(input)
        current = gradOutput
        for i in reversed(range(len(self.modules))):
            current = self._call_child(i, 'backward', inputs[i], current, scale)
        self.gradInput = current
        return current

    def __repr__(self):
        n = len(self.modules)
        flow = ' -> '.join(['input'] + [f'({i})' for i in range(n)] + ['output'])
        return '\n'.join([f'{self.name()} {{', f'  [{flow}]'] + self._child_lines() + ['}'])


class Concat(Container):
    """Runs every child on the same input and concatenates their outputs along ``dimension``
    (1, the channel dimension of a batch, by default)."""

    def __init__(self, *modules, dimension=1):
        super().__init__(*modules)
        self.dimension = dimension

    def updateOutput(self, input):
        outs = [self._call_child(i, 'updateOutput', input) for i in range(len(self.modules))]
        xp = backend.get_array_module(input)
        for o in outs:
            check_dims(self, o, (outs[0].ndim,), 'every child output', f'{outs[0].ndim}-D')
        nd, shapes = outs[0].ndim, [tuple(o.shape) for o in outs]
        if not -nd <= self.dimension < nd:
            raise ValueError(f'{self.name()}: dimension {self.dimension} is out of range for '
                             f'the children\'s {nd}-D outputs')
        if len({s[:self.dimension % nd] + s[self.dimension % nd + 1:] for s in shapes}) > 1:
            raise ValueError(f'{self.name()}: the children\'s outputs {shapes} differ outside '
                             f'dimension {self.dimension}, along which they are joined')
        self.output = xp.concatenate(outs, axis=self.dimension)
        return self.output

    def _slices(self, gradOutput):
        offset = 0
        for m in self.modules:
            n = m.output.shape[self.dimension]
            index = [slice(None)] * gradOutput.ndim
            index[self.dimension] = slice(offset, offset + n)
            offset += n
            yield gradOutput[tuple(index)]

    def _sum_into_grad_input(self, grads):
        total = grads[0].copy()
        for g in grads[1:]:
            total += g
        self.gradInput = total
        return total

    def updateGradInput(self, input, gradOutput):
        return self._sum_into_grad_input([self._call_child(i, 'updateGradInput', input, g)
                                          for i, g in enumerate(self._slices(gradOutput))])

    def accGradParameters(self, input, gradOutput, scale=1):
        for i, g in enumerate(self._slices(gradOutput)):
            self._call_child(i, 'accGradParameters', input, g, scale)

    def backward(self, input, gradOutput, scale=1):
        return self._sum_into_grad_input([self._call_child(i, 'backward', input, g, scale)
                                          for i, g in enumerate(self._slices(gradOutput))])

    def extra_repr(self):
        return f'dimension={self.dimension}'

    def __repr__(self):
        head = f'{self.name()}(dimension={self.dimension}) {{'
        return '\n'.join([head, '  input'] + self._child_lines() + ['  ... -> output', '}'])
