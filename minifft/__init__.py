"""minifft: a small Torch7-style training framework with FFT convolutions."""
from . import backend, nn, optim, random
from .random import manualSeed

__version__ = '0.1.0'
__all__ = ['backend', 'nn', 'optim', 'random', 'manualSeed']
