"""Module: the Torch7 ``nn.Module`` contract in Python.

State lives in plain fields: ``output``, ``gradInput`` and, for layers with parameters,
``weight``/``bias`` with ``gradWeight``/``gradBias``. ``accGradParameters`` *accumulates*
``scale * gradient``; ``zeroGradParameters`` clears the accumulators.
"""
import numpy as np

from .. import backend, random
from ..checks import finite_number, rate, whole_number

FLOAT_DTYPES = (np.float32, np.float64)


class Module:
    # (parameter, gradient) field names, in the order parameters() reports them
    _param_pairs = (('weight', 'gradWeight'), ('bias', 'gradBias'))
    # non-trainable state that checkpoints keep (BatchNorm's running statistics)
    _buffer_names = ()
    # fields that only carry results from one call to the next: dropped by clearState(),
    # never pickled, never moved between devices
    _scratch = ('output', 'gradInput')

    def __init__(self):
        self.output = None
        self.gradInput = None
        self.train = True
        # False on a network's first layer, whose input gradient nobody reads: backward() then
        # skips updateGradInput (imagenet-multiGPU.torch made the same saving by hand)
        self.gradInputNeeded = True

    # -- the three operations -------------------------------------------------------------
    def updateOutput(self, input):
        raise NotImplementedError(f'{type(self).__name__}.updateOutput')

    def updateGradInput(self, input, gradOutput):
        raise NotImplementedError(f'{type(self).__name__}.updateGradInput')

    def accGradParameters(self, input, gradOutput, scale=1):
        """Accumulate ``scale`` times the parameter gradients (no parameters: nothing to do)."""

    def forward(self, input):
        check_float_array(self, input, 'input')
        return self.updateOutput(input)

    def backward(self, input, gradOutput, scale=1):
        check_float_array(self, gradOutput, 'gradOutput', finite=False)
        if self.gradInputNeeded:
            self.updateGradInput(input, gradOutput)
        else:
            self.gradInput = None
        self.accGradParameters(input, gradOutput, scale)
        return self.gradInput

    # -- parameters -----------------------------------------------------------------------
    def parameters(self):
        """``(params, grads)``: two lists in a stable order; empty for parameter-free layers."""
        params, grads = [], []
        for p, g in self._param_pairs:
            if getattr(self, p, None) is not None:
                params.append(getattr(self, p))
                grads.append(getattr(self, g))
        return params, grads

    def named_parameters(self, prefix=''):
        """``[(path, param, grad)]``; paths such as ``'3.weight'`` name a checkpoint's entries."""
        return [(prefix + p, getattr(self, p), getattr(self, g))
                for p, g in self._param_pairs if getattr(self, p, None) is not None]

    def named_buffers(self, prefix=''):
        return [(prefix + b, getattr(self, b)) for b in self._buffer_names
                if getattr(self, b, None) is not None]

    def zeroGradParameters(self):
        for g in self.parameters()[1]:
            g[...] = 0

    def updateParameters(self, learningRate):
        if finite_number(learningRate) is None:
            raise ValueError(f'{self.name()}.updateParameters: learningRate must be a finite '
                             f'number, got {learningRate!r}')
        for p, g in zip(*self.parameters()):
            p -= learningRate * g

    def reset(self, stdv=None):
        """Re-draw the parameters with the layer's default initialisation."""

    # -- modes and state ------------------------------------------------------------------
    def training(self):
        self.train = True
        return self

    def evaluate(self):
        self.train = False
        return self

    def clearState(self):
        """Drop ``output``, ``gradInput`` and scratch buffers (kept out of pickles and moves)."""
        for name in self._scratch:
            setattr(self, name, None)
        return self

    def listModules(self):
        return [self]

    def __getstate__(self):
        state = dict(self.__dict__)
        state.update(dict.fromkeys(self._scratch))
        return state

    # -- dtype and device -----------------------------------------------------------------
    def type(self, dtype_or_device):
        """Convert every array of this module tree to a dtype ('float32', 'float64') or a device
        ('cpu', 'gpu'/'cuda'). Arrays that shared memory share it afterwards."""
        dtype, device = _parse_type(dtype_or_device)
        memo = {}
        for m in self.listModules():
            m.clearState()
            names = [k for k, v in vars(m).items() if backend.is_array(v)]
            new = backend.convert_arrays([getattr(m, k) for k in names], dtype, device, memo)
            for k, v in zip(names, new):
                setattr(m, k, v)
        return self

    def float(self):
        return self.type('float32')

    def double(self):
        return self.type('float64')

    def cuda(self):
        return self.type('gpu')

    def cpu(self):
        return self.type('cpu')

    def dtype(self):
        """The floating dtype of the parameters (None for parameter-free modules)."""
        params = self.parameters()[0]
        return params[0].dtype if params else None

    # -- printing -------------------------------------------------------------------------
    def extra_repr(self):
        return ''

    def __repr__(self):
        extra = self.extra_repr()
        return f'nn.{type(self).__name__}' + (f'({extra})' if extra else '')

    def name(self):
        return f'nn.{type(self).__name__}'


def _parse_type(t):
    if isinstance(t, str) and t.lower() in ('cpu', 'gpu', 'cuda'):
        return None, 'cpu' if t.lower() == 'cpu' else 'gpu'
    try:
        dtype = np.dtype(t)
    except TypeError:
        dtype = None
    if dtype is None or dtype.type not in FLOAT_DTYPES:
        raise ValueError(f"type() takes 'float32', 'float64', 'cpu' or 'gpu', got {t!r}")
    return dtype, None


# -- checks shared by the layers: errors name the module and what was expected --------------
def init_uniform(module, stdv):
    """Torch's default initialisation: ``weight`` then ``bias`` (where there is one) drawn
    uniformly from ``[-stdv, stdv]``."""
    if rate(stdv) is None:
        raise ValueError(f'{module.name()}.reset: stdv must be a finite number >= 0, '
                         f'got {stdv!r}')
    xp = backend.get_array_module(module.weight)
    for a in (module.weight, module.bias):
        if a is not None:
            a[...] = xp.asarray(random.uniform(-stdv, stdv, a.shape, a.dtype))
    return module


def whole(module, what, value, low):
    """A constructor's size ``value`` as an int, checked by ``whole_number``."""
    n = whole_number(value, low)
    if n is None:
        raise ValueError(f'{module.name()}: {what} must be a whole number >= {low}, '
                         f'got {value!r}')
    return n


def check_float_array(module, a, what, finite=True):
    check_array(module, a, what)
    if a.dtype.type not in FLOAT_DTYPES:
        raise TypeError(f'{module.name()}: {what} must be float32 or float64, got {a.dtype} '
                        f'(convert it with .astype(np.float32))')
    # not on the GPU: reading the answer back would stop the host at every call (a
    # non-finite input there shows up as a non-finite loss, which the trainer names by step)
    if finite and not backend.is_gpu_array(a) and not bool(np.isfinite(a).all()):
        raise ValueError(f'{module.name()}: {what} contains NaN or Inf')


def check_array(module, a, what='input'):
    if not backend.is_array(a):   # a list or None failed on its missing .ndim otherwise
        raise TypeError(f'{module.name()}: {what} must be a NumPy or CuPy array, got '
                        f'{type(a).__name__}')


def check_dims(module, a, ndims, what='input', expected=None):
    check_array(module, a, what)
    if a.ndim not in ndims:
        exp = expected or ' or '.join(f'{n}-D' for n in ndims)
        raise ValueError(f'{module.name()}: {what} must be {exp}, got shape {tuple(a.shape)}')


def check_size(module, a, dim, size, what='input', meaning='size'):
    if a.shape[dim] != size:
        raise ValueError(f'{module.name()}: {what} {meaning} must be {size} (dimension {dim}), '
                         f'got shape {tuple(a.shape)}')


def check_same_dtype(module, a, what='input'):
    dt = module.dtype()
    if dt is not None and a.dtype != dt:
        raise TypeError(f'{module.name()}: {what} is {a.dtype} but the parameters are {dt}; '
                        f'convert the {what}, or the model with .float()/.double()')


def check_grad_output(module, gradOutput):
    """gradOutput must match the output this module last produced, in shape and dtype (a
    float64 gradOutput for a float32 output would otherwise make float64 gradients, or fail
    deep inside the FFT layer's transforms), and the parameters' dtype."""
    check_array(module, gradOutput, 'gradOutput')
    out = module.output
    if out is not None and tuple(gradOutput.shape) != tuple(out.shape):
        raise ValueError(f'{module.name()}: gradOutput shape {tuple(gradOutput.shape)} does not '
                         f'match the output shape {tuple(out.shape)}')
    if out is not None and gradOutput.dtype != out.dtype:
        raise TypeError(f'{module.name()}: gradOutput is {gradOutput.dtype} but the output is '
                        f'{out.dtype}; convert the gradOutput')
    check_same_dtype(module, gradOutput, 'gradOutput')


def as_image_batch(module, input, channels=None, what='input'):
    """A ``(S, C, H, W)`` view of a batch or of a single ``(C, H, W)`` sample, checked."""
    c = 'C' if channels is None else channels
    check_dims(module, input, (3, 4), what, f'(S, {c}, H, W) or ({c}, H, W)')
    batch = input[None] if input.ndim == 3 else input
    if channels is not None:
        check_size(module, batch, 1, channels, what, 'channel count')
    return batch
