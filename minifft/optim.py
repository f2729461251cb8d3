"""SGD with Torch7 ``optim.sgd`` semantics, and learning-rate schedules.

One step, per parameter ``x`` with gradient ``g``: ``g' = g + weight_decay * x``; with momentum,
the buffer ``v`` starts as ``g'`` on the first step and is ``momentum * v + (1 - dampening) * g'``
afterwards; the update direction is ``g' + momentum * v`` (Nesterov) or ``v``; then
``x -= lr * direction``. The gradients themselves are left untouched.
"""
import math

import numpy as np

from . import backend
from .checks import rate, whole_number


class SGD:
    def __init__(self, params, grads, lr, momentum=0.0, dampening=0.0, nesterov=False,
                 weight_decay=0.0):
        if len(params) != len(grads):
            raise ValueError(f'SGD: {len(params)} parameters but {len(grads)} gradients')
        for i, (p, g) in enumerate(zip(params, grads)):
            if p.shape != g.shape:
                raise ValueError(f'SGD: parameter {i} has shape {p.shape} but its gradient '
                                 f'{g.shape}')
        for name, value in (('lr', lr), ('momentum', momentum), ('dampening', dampening),
                            ('weight_decay', weight_decay)):
            if rate(value) is None:
                raise ValueError(f'SGD: {name} must be a finite number >= 0, got {value!r}')
        if nesterov and (momentum <= 0 or dampening != 0):
            raise ValueError('SGD: Nesterov momentum needs momentum > 0 and dampening = 0')
        self.params, self.grads = list(params), list(grads)
        self.lr, self.momentum, self.dampening = lr, momentum, dampening
        self.nesterov, self.weight_decay = nesterov, weight_decay
        self.buffers = [None] * len(self.params)
        self.steps = 0

    def step(self):
        for i, (x, g) in enumerate(zip(self.params, self.grads)):
            d = g + self.weight_decay * x if self.weight_decay else g
            if self.momentum:
                v = self.buffers[i]
                if v is None:
                    v = self.buffers[i] = d.copy()
                else:
                    v *= self.momentum
                    v += (1 - self.dampening) * d
                d = d + self.momentum * v if self.nesterov else v
            x -= self.lr * d
        self.steps += 1

    def state_dict(self):
        return {'lr': self.lr, 'momentum': self.momentum, 'dampening': self.dampening,
                'nesterov': self.nesterov, 'weight_decay': self.weight_decay,
                'steps': self.steps,
                'buffers': [None if b is None else np.array(backend.asnumpy(b))
                            for b in self.buffers]}

    def load_state_dict(self, state):
        buffers = state['buffers']
        if len(buffers) != len(self.params):
            raise ValueError(f'SGD.load_state_dict: state has {len(buffers)} momentum buffers '
                             f'for {len(self.params)} parameters')
        for i, (b, p) in enumerate(zip(buffers, self.params)):
            if b is not None and tuple(b.shape) != tuple(p.shape):
                raise ValueError(f'SGD.load_state_dict: buffer {i} has shape {tuple(b.shape)}, '
                                 f'parameter has {tuple(p.shape)}')
        for key in ('lr', 'momentum', 'dampening', 'nesterov', 'weight_decay', 'steps'):
            setattr(self, key, state[key])
        # copies, so the state given in is not aliased by the running optimizer
        self.buffers = [None if b is None else
                        backend.to_device(b, backend.device_of(p), p.dtype).copy()
                        for b, p in zip(buffers, self.params)]


class Schedule:
    """Learning rate as a function of the epoch (0-based)."""

    def __init__(self, base_lr):
        self.base_lr = base_lr

    def __call__(self, epoch):
        return self.base_lr

    def at(self, epoch, step, steps):
        """The rate for step ``step`` of ``steps`` in ``epoch``: the epoch's, held through it."""
        return self(epoch)


class StepSchedule(Schedule):
    """Multiply by ``gamma`` every ``step`` epochs."""

    def __init__(self, base_lr, step, gamma=0.1):
        super().__init__(base_lr)
        self.step, self.gamma = _epochs(self, 'step', step), _gamma(self, gamma)

    def __call__(self, epoch):
        return self.base_lr * self.gamma ** (epoch // self.step)


class MultiStepSchedule(Schedule):
    """Multiply by ``gamma`` at each epoch of ``milestones``."""

    def __init__(self, base_lr, milestones, gamma=0.1):
        super().__init__(base_lr)
        self.milestones = sorted(_epochs(self, 'each milestone', m) for m in milestones)
        self.gamma = _gamma(self, gamma)

    def __call__(self, epoch):
        return self.base_lr * self.gamma ** sum(epoch >= m for m in self.milestones)


def _epochs(schedule, what, value):
    """An epoch count of a schedule: a whole number >= 1 (a step of 0 divided by zero at the
    first epoch, a negative one raised the learning rate)."""
    n = whole_number(value, 1)
    if n is None:
        raise ValueError(f'{type(schedule).__name__}: {what} must be a whole number of epochs '
                         f'>= 1, got {value!r}')
    return n


def _gamma(schedule, value):
    """A schedule's factor: finite and > 0 (NaN made every later learning rate NaN)."""
    gamma = rate(value, positive=True)
    if gamma is None:
        raise ValueError(f'{type(schedule).__name__}: gamma must be a finite number > 0, '
                         f'got {value!r}')
    return gamma


class CosineSchedule(Schedule):
    """Half a cosine from ``base_lr`` at epoch 0 down to ``min_lr`` at ``epochs``."""

    def __init__(self, base_lr, epochs, min_lr=0.0):
        super().__init__(base_lr)
        self.epochs, self.min_lr = max(1, epochs), min_lr

    def __call__(self, epoch):
        t = min(epoch, self.epochs) / self.epochs
        return self.min_lr + 0.5 * (self.base_lr - self.min_lr) * (1 + math.cos(math.pi * t))


class Warmup(Schedule):
    """``schedule`` ramped up linearly over the first ``epochs`` epochs, step by step: the
    gradual warm-up of Goyal et al. (2017) for a learning rate scaled up with the global batch.
    At step s of the e-th epoch's ``steps`` the rate is ``schedule(e)`` times
    ``min(1, (e * steps + s + 1) / (epochs * steps))``; ``epochs = 0`` is ``schedule`` itself."""

    def __init__(self, schedule, epochs):
        super().__init__(schedule.base_lr)
        self.schedule = schedule
        self.epochs = whole_number(epochs, 0)
        if self.epochs is None:
            raise ValueError(f'Warmup: epochs must be a whole number >= 0, got {epochs!r}')

    def __call__(self, epoch):
        """The rate at the epoch's last step."""
        return self.at(epoch, 0, 1)

    def at(self, epoch, step, steps):
        done = epoch * steps + step + 1
        return self.schedule(epoch) * (min(1, done / (self.epochs * steps)) if self.epochs
                                       else 1)


def make_schedule(spec, base_lr, epochs, warmup=0):
    """From a command-line spec: ``constant``, ``step:STEP[:GAMMA]``,
    ``multistep:M1,M2,...[:GAMMA]`` or ``cosine``; with ``warmup`` epochs of linear warm-up
    (``Warmup``) before it."""
    schedule = _schedule(spec, base_lr, epochs)
    return Warmup(schedule, warmup) if warmup else schedule


def _schedule(spec, base_lr, epochs):
    name, *args = spec.split(':')
    if name == 'constant' and not args:
        return Schedule(base_lr)
    if name == 'cosine' and not args:
        return CosineSchedule(base_lr, epochs)
    counts, gamma = _counts_and_gamma(args) if name in ('step', 'multistep') else (None, None)
    if counts is not None and (name == 'multistep' or len(counts) == 1):
        try:
            if name == 'step':
                return StepSchedule(base_lr, counts[0], *gamma)
            return MultiStepSchedule(base_lr, counts, *gamma)
        except ValueError as e:  # numbers out of range, named by the schedule
            raise ValueError(f'schedule {spec!r}: {e}') from None
    raise ValueError(f'unknown schedule {spec!r}: expected constant, step:STEP[:GAMMA], '
                     'multistep:M1,M2,...[:GAMMA] or cosine')


def _counts_and_gamma(args):
    """``['M1,M2', 'GAMMA']`` as ``([M1, M2], [GAMMA])`` (no GAMMA: ``[]``), or ``(None, None)``
    where they are not numbers."""
    if not 1 <= len(args) <= 2:
        return None, None
    try:
        return [int(m) for m in args[0].split(',')], [float(g) for g in args[1:]]
    except ValueError:
        return None, None
