"""Predicates for numbers given by the user in Python (layer sizes, a model file's settings, the
optimizer's rates, the data loader's counts), so that each caller can name what was wrong in
its own words. (Text from a command line goes through cli.py.)"""
import math
import numbers

import numpy as np


def whole_number(value, low):
    """``value`` as an int if it is a whole number (3 or 3.0; not 2.5, which int() would turn
    into 2 silently, nor True or '3') of at least ``low``, else None."""
    if (isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real)
            or not float(value).is_integer() or value < low):
        return None
    return int(value)


def finite_number(value):
    """``value`` as a float if it is a finite real number (not True, not '0.1'), else None."""
    if (isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real)
            or not math.isfinite(value)):
        return None
    return float(value)


def rate(value, positive=False):
    """``value`` as a float if it is a finite real number >= 0 (> 0 with ``positive``), else
    None: NaN passes a plain ``value < 0`` check, and '0.1' fails it with a TypeError."""
    v = finite_number(value)
    return None if v is None or v < 0 or (positive and v == 0) else v
