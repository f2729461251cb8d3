"""SGD (Torch7's optim.sgd, worked by hand), its state for exact resumes, the learning-rate
schedules and warm-up, and their bad arguments."""
import re

import numpy as np
import pytest

from minifft import optim


def _sgd_run(**kw):
    x = np.array([1.0, -2.0])
    g = np.zeros(2)
    opt = optim.SGD([x], [g], lr=0.1, **kw)
    for grad in ([1.0, 2.0], [0.5, -1.0], [-1.0, 0.0]):
        g[...] = grad
        opt.step()
    return x, g


def test_sgd_plain():
    x, g = _sgd_run()
    assert np.allclose(x, [1 - 0.1 * 0.5, -2 - 0.1 * 1.0])
    assert np.array_equal(g, [-1.0, 0.0])  # gradients are not modified


def test_sgd_momentum_weight_decay_worked_by_hand():
    # first coordinate, momentum 0.9, wd 0.01, lr 0.1, x0 = 1:
    # step 1: d = 1 + 0.01*1 = 1.01; v = 1.01; x = 1 - 0.101 = 0.899
    # step 2: d = 0.5 + 0.00899 = 0.50899; v = 0.9*1.01 + 0.50899 = 1.41799; x = 0.757201
    # step 3: d = -1 + 0.00757201 = -0.99242799; v = 0.9*1.41799 - 0.99242799 = 0.28376301;
    #         x = 0.757201 - 0.028376301 = 0.728824699
    x, _ = _sgd_run(momentum=0.9, weight_decay=0.01)
    assert abs(x[0] - 0.728824699) < 1e-12


def test_sgd_dampening_and_nesterov_by_hand():
    # dampening 0.5, momentum 0.9, first coordinate: v1 = 1; x = 0.9
    # v2 = 0.9 + 0.5*0.5 = 1.15; x = 0.785; v3 = 1.035 - 0.5 = 0.535; x = 0.7315
    x, _ = _sgd_run(momentum=0.9, dampening=0.5)
    assert abs(x[0] - 0.7315) < 1e-12
    # Nesterov, momentum 0.9: v1 = 1, dir = 1 + 0.9 = 1.9, x = 0.81
    # v2 = 0.9 + 0.5 = 1.4, dir = 0.5 + 1.26 = 1.76, x = 0.634
    # v3 = 1.26 - 1 = 0.26, dir = -1 + 0.234 = -0.766, x = 0.7106
    x, _ = _sgd_run(momentum=0.9, nesterov=True)
    assert abs(x[0] - 0.7106) < 1e-12


def test_sgd_state_dict_resumes_exactly():
    x = np.array([1.0, 2.0])
    g = np.array([0.3, -0.2])
    a = optim.SGD([x], [g], lr=0.1, momentum=0.9)
    a.step()
    y = x.copy()
    b = optim.SGD([y], [g], lr=0.1, momentum=0.9)
    b.load_state_dict(a.state_dict())
    a.step()
    b.step()
    assert np.array_equal(x, y)
    with pytest.raises(ValueError, match='Nesterov'):
        optim.SGD([x], [g], lr=0.1, nesterov=True)


def test_schedules():
    assert optim.make_schedule('step:2:0.5', 1.0, 10)(5) == 0.25
    assert optim.make_schedule('multistep:2,4', 1.0, 10)(4) == pytest.approx(0.01)
    cos = optim.make_schedule('cosine', 1.0, 10)
    assert cos(0) == 1.0 and cos(10) == pytest.approx(0) and cos(5) == pytest.approx(0.5)
    assert optim.make_schedule('constant', 0.3, 10)(7) == 0.3
    with pytest.raises(ValueError, match='unknown schedule'):
        optim.make_schedule('linear', 1.0, 10)


def test_warmup_schedule():
    cosine = optim.make_schedule('cosine', 1.0, 10)
    warm = optim.make_schedule('cosine', 1.0, 10, warmup=2)
    assert isinstance(warm, optim.Warmup)
    assert not isinstance(optim.make_schedule('cosine', 1.0, 10, warmup=0), optim.Warmup)
    assert warm.at(0, 0, 5) == pytest.approx(cosine(0) / 10)
    assert warm.at(1, 4, 5) == pytest.approx(cosine(1))  # the ramp's last step
    assert warm.at(3, 0, 5) == cosine(3) and warm(0) == pytest.approx(cosine(0) / 2)
    assert optim.Warmup(cosine, 0).at(0, 0, 5) == cosine(0)
    for bad in (-1, 1.5, 'two'):
        with pytest.raises(ValueError, match='Warmup: epochs must be a whole number >= 0'):
            optim.make_schedule('constant', 1.0, 10, warmup=bad)


@pytest.mark.parametrize('spec, message', [
    ('step:0', 'StepSchedule: step must be a whole number of epochs >= 1, got 0'),
    ('step:-2', 'step must be a whole number of epochs >= 1, got -2'),
    ('step:2:nan', 'StepSchedule: gamma must be a finite number > 0, got nan'),
    ('step:2:-1', 'gamma must be a finite number > 0, got -1.0'),
    ('multistep:3,0', 'MultiStepSchedule: each milestone must be a whole number of epochs >= 1'),
    ('step:1,2', 'unknown schedule'), ('multistep:2,x', 'unknown schedule')])
def test_schedule_numbers_out_of_range(spec, message):
    """``step:0`` divided by zero when the first epoch began, a negative step raised the
    learning rate tenfold, a NaN gamma made every later learning rate NaN."""
    with pytest.raises(ValueError, match=re.escape(message)):
        optim.make_schedule(spec, 1.0, 10)


@pytest.mark.parametrize('name', ['lr', 'momentum', 'dampening', 'weight_decay'])
@pytest.mark.parametrize('value', [-1, float('nan'), float('inf'), '0.1'])
def test_sgd_rates_are_finite_non_negative_numbers(name, value):
    """NaN passed the ``< 0`` check (and trained to NaN); '0.1' failed it with a TypeError
    about comparing str and int."""
    x = np.zeros(2)
    with pytest.raises(ValueError, match=re.escape(f'SGD: {name} must be a finite number >= 0,'
                                                   f' got {value!r}')):
        optim.SGD([x], [x.copy()], **{'lr': 0.1, name: value})
