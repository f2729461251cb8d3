"""Torch7-style modules: ``from minifft import nn; nn.Sequential(nn.Linear(4, 2), nn.ReLU())``."""
from .activation import Identity, LogSoftMax, ReLU, Sigmoid, SoftMax, Tanh
from .containers import Concat, Container, Sequential
from .conv import SpatialConvolution
from .conv_fft import SpatialConvolutionFFT
from .criterion import (ClassNLLCriterion, Criterion, CrossEntropyCriterion, MSECriterion)
from .dropout import Dropout
from .fft_cache import FFTCache
from .linear import Linear
from .module import Module
from .normalization import BatchNormalization, SpatialBatchNormalization
from .pooling import SpatialAveragePooling, SpatialMaxPooling
from .reshape import Reshape, View

__all__ = ['Module', 'Container', 'Sequential', 'Concat', 'Identity', 'ReLU', 'Tanh',
           'Sigmoid', 'SoftMax', 'LogSoftMax', 'Linear', 'SpatialConvolution',
           'SpatialConvolutionFFT', 'FFTCache', 'SpatialMaxPooling', 'SpatialAveragePooling',
           'View', 'Reshape', 'Dropout', 'BatchNormalization', 'SpatialBatchNormalization',
           'Criterion', 'ClassNLLCriterion', 'CrossEntropyCriterion', 'MSECriterion']
