"""SpatialConvolutionFFT: the three training operations as products in the Fourier domain
(Mathieu, Henaff & LeCun, "Fast Training of Convolutional Networks through FFTs", 2014).

Every map is transformed once, at an FFT size ``N >= H + 2*padH`` (and likewise for W) that
makes each circular convolution below equal the linear one it stands for, and its spectrum is
reused for every pairing and across the three operations through the layer's ``fft_cache``.

Spectra are kept frequency-major, ``(F, batch, planes)`` with ``F = NH * (NW//2 + 1)``, so the
product at every frequency is one slice of a single batched complex GEMM:

* ``updateOutput``:      ``Y[F,S,f'] = X[F,S,f] @ K[F,f,f']``
* ``updateGradInput``:   ``G[F,S,f]  = D[F,S,f'] @ K[F,f,f']^T``
* ``accGradParameters``: ``V[F,f,f'] = X[F,S,f]^T @ D[F,S,f']``

where X is the input's spectrum, K the spectrum of the *flipped* kernel and D that of the
*flipped* gradOutput. Flipping in space is what turns Torch's cross-correlations into
convolutions, so no spectrum is ever conjugated; the flips are done by the copies that pad and
transpose each map into the transform buffer, and undone by the crops that read results back.

Stride ``d > 1`` is computed as the stride-1 convolution subsampled: the forward product and
inverse transform cost as much as at stride 1 (about ``d^2`` times the useful work), and the
gradOutput is spread onto the stride-1 grid with zeros before its transform.

Memory: the cache holds X, K and D, ``8 * NH * (NW//2 + 1) * (S*f + f*f' + S*f')`` bytes in
float32. The paper's formula ``4 n (n+1) (S f + S f' + f f')`` counts the same spectra at
``NH = NW = n``; the two agree to within ``(n+2)/(n+1)``, times ``(N/n)^2`` when the FFT size N
is rounded up from the padded input size n.
"""
from .. import backend
from .conv import _SpatialConvolutionBase
from .fft_cache import FFTCache
from .module import as_image_batch


class SpatialConvolutionFFT(_SpatialConvolutionBase):
    """Same constructor, parameters and results as ``SpatialConvolution``; computed by FFT."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fft_cache = FFTCache()

    # -- geometry -------------------------------------------------------------------------
    def _plan(self, x):
        """Sizes for an ``(S, f, H, W)`` input: padded, stride-1 output, and FFT sizes."""
        H, W = x.shape[2:]
        Hp, Wp = H + 2 * self.padH, W + 2 * self.padW
        fft = backend.fft_for(backend.get_array_module(x))
        NH, NW = fft.next_fast_len(Hp), fft.next_fast_len(Wp)
        return Hp, Wp, Hp - self.kH + 1, Wp - self.kW + 1, NH, NW

    def fft_sizes(self, input):
        """The transform size (NH, NW) this layer uses for an input of this shape."""
        return self._plan(as_image_batch(self, input, self.nInputPlane))[4:]

    # -- transforms into and out of frequency-major spectra -------------------------------
    @staticmethod
    def _forward(buf, NH, NW):
        """rfft of a ``(NH, NW, a, b)`` buffer over its first two axes, as ``(F, a, b)``."""
        fft = backend.fft_for(backend.get_array_module(buf))
        spec = fft.rfftn(buf, s=(NH, NW), axes=(0, 1))
        return spec.reshape(-1, buf.shape[2], buf.shape[3])

    @staticmethod
    def _inverse(spec, NH, NW):
        fft = backend.fft_for(backend.get_array_module(spec))
        spec = spec.reshape(NH, NW // 2 + 1, spec.shape[1], spec.shape[2])
        return fft.irfftn(spec, s=(NH, NW), axes=(0, 1))

    def _input_spectrum(self, x, plan):
        Hp, Wp, oH1, oW1, NH, NW = plan

        def transform(a):
            xp = backend.get_array_module(a)
            S, f, H, W = a.shape
            buf = xp.zeros((NH, NW, S, f), a.dtype)
            buf[self.padH:self.padH + H, self.padW:self.padW + W] = a.transpose(2, 3, 0, 1)
            return self._forward(buf, NH, NW)

        return self.fft_cache.get('input', x, plan, transform)

    def _weight_spectrum(self, plan):
        NH, NW = plan[4:]

        def transform(w):
            xp = backend.get_array_module(w)
            buf = xp.zeros((NH, NW, self.nInputPlane, self.nOutputPlane), w.dtype)
            buf[:self.kH, :self.kW] = w[:, :, ::-1, ::-1].transpose(2, 3, 1, 0)
            return self._forward(buf, NH, NW)

        return self.fft_cache.get('weight', self.weight, plan, transform)

    def _grad_output_spectrum(self, g, plan):
        Hp, Wp, oH1, oW1, NH, NW = plan

        def transform(a):
            xp = backend.get_array_module(a)
            S, fo, oH, oW = a.shape
            buf = xp.zeros((NH, NW, S, fo), a.dtype)
            # flipped and spread onto the stride-1 grid: go[y] goes to oH1 - 1 - y*dH
            h0, w0 = oH1 - 1 - self.dH * (oH - 1), oW1 - 1 - self.dW * (oW - 1)
            buf[h0:oH1:self.dH, w0:oW1:self.dW] = a[:, :, ::-1, ::-1].transpose(2, 3, 0, 1)
            return self._forward(buf, NH, NW)

        return self.fft_cache.get('gradOutput', g, plan, transform)

    # -- the three operations -------------------------------------------------------------
    def updateOutput(self, input):
        x, oH, oW = self._geometry(input)
        xp = backend.get_array_module(x)
        plan = self._plan(x)
        Hp, Wp, oH1, oW1, NH, NW = plan
        X = self._input_spectrum(x, plan)
        K = self._weight_spectrum(plan)
        full = self._inverse(xp.matmul(X, K), NH, NW)
        self.fft_cache.count_inverse('output')
        # the valid part of the convolution with the flipped kernel starts at k - 1
        y = full[self.kH - 1:Hp:self.dH, self.kW - 1:Wp:self.dW][:oH, :oW]
        out = xp.ascontiguousarray(y.transpose(2, 3, 0, 1))
        self.output = self._finish_output(out, input)
        return self.output

    def updateGradInput(self, input, gradOutput):
        x, g = self._grad_batch(input, gradOutput)
        xp = backend.get_array_module(x)
        plan = self._plan(x)
        NH, NW = plan[4:]
        D = self._grad_output_spectrum(g, plan)
        K = self._weight_spectrum(plan)
        full = self._inverse(xp.matmul(D, K.transpose(0, 2, 1)), NH, NW)
        self.fft_cache.count_inverse('gradInput')
        H, W = x.shape[2:]
        # result of the flipped gradOutput: flip back while cropping the padding away
        gi = full[self.padH:self.padH + H, self.padW:self.padW + W][::-1, ::-1]
        self.gradInput = xp.ascontiguousarray(gi.transpose(2, 3, 0, 1)).reshape(input.shape)
        return self.gradInput

    def accGradParameters(self, input, gradOutput, scale=1):
        x, g = self._grad_batch(input, gradOutput)
        xp = backend.get_array_module(x)
        plan = self._plan(x)
        Hp, Wp, oH1, oW1, NH, NW = plan
        X = self._input_spectrum(x, plan)
        D = self._grad_output_spectrum(g, plan)
        full = self._inverse(xp.matmul(X.transpose(0, 2, 1), D), NH, NW)
        self.fft_cache.count_inverse('gradWeight')
        gw = full[oH1 - 1:Hp, oW1 - 1:Wp]  # (kH, kW, f, f')
        self.gradWeight += scale * gw.transpose(3, 2, 0, 1)
        self._acc_grad_bias(g, scale)

    def clearState(self):
        self.fft_cache.clear()
        return super().clearState()
