"""The PyTorch network that computes what a minifft network computes, its parameters and
running statistics copied: the peer of ``benchmark.py --whole-step``. PyTorch is imported
by ``build`` only, so the benchmark runs without it."""
import numpy as np

from minifft import backend, nn


def build(net, device='cpu'):
    """``torch.nn.Module`` twin of ``net`` on ``device`` ('cpu' or 'gpu'), in training mode
    as ``net`` is. A module without a PyTorch counterpart here is a ValueError naming it."""
    import torch
    twin = _twin(net, torch)
    twin.to('cuda' if device == 'gpu' else 'cpu')
    return twin.train(net.train)


def _twin(m, torch):
    tnn = torch.nn
    if type(m) is nn.Sequential:
        return tnn.Sequential(*[_twin(c, torch) for c in m.modules])
    if isinstance(m, (nn.SpatialConvolution, nn.SpatialConvolutionFFT)):
        t = tnn.Conv2d(m.nInputPlane, m.nOutputPlane, (m.kH, m.kW), (m.dH, m.dW),
                       (m.padH, m.padW), bias=m.bias is not None)
    elif isinstance(m, nn.BatchNormalization):  # SpatialBatchNormalization too
        kind = tnn.BatchNorm2d if isinstance(m, nn.SpatialBatchNormalization) else tnn.BatchNorm1d
        t = kind(m.nOutput, eps=m.eps, momentum=m.momentum, affine=m.affine)
        _copy(t.running_mean, m.running_mean, torch)
        _copy(t.running_var, m.running_var, torch)
    elif isinstance(m, nn.Linear):
        t = tnn.Linear(m.inputSize, m.outputSize, bias=m.bias is not None)
    elif isinstance(m, nn.SpatialMaxPooling):
        t = tnn.MaxPool2d((m.kH, m.kW), (m.dH, m.dW), (m.padH, m.padW), ceil_mode=m.ceil_mode)
    elif isinstance(m, nn.SpatialAveragePooling):
        t = tnn.AvgPool2d((m.kH, m.kW), (m.dH, m.dW), (m.padH, m.padW), ceil_mode=m.ceil_mode,
                          count_include_pad=m.count_include_pad)
    elif type(m) is nn.View and m.sizes == (-1,):
        t = tnn.Flatten()
    elif type(m) in (nn.ReLU, nn.Tanh, nn.Sigmoid):
        t = getattr(tnn, type(m).__name__)()
    elif type(m) is nn.Dropout:
        t = tnn.Dropout(m.p)
    else:
        raise ValueError(f'{m.name()} has no PyTorch twin here (Sequential of convolutions, '
                         'batch normalisation, Linear, pooling, View(-1), ReLU/Tanh/Sigmoid, '
                         'Dropout)')
    for name in ('weight', 'bias'):
        if getattr(m, name, None) is not None:
            _copy(getattr(t, name), getattr(m, name), torch)
    return t


def _copy(dst, src, torch):
    with torch.no_grad():
        dst.copy_(torch.from_numpy(np.ascontiguousarray(backend.asnumpy(src))).reshape(dst.shape))
