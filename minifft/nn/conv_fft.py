"""SpatialConvolutionFFT: the three training operations as products in the Fourier domain
(Mathieu, Henaff & LeCun, "Fast Training of Convolutional Networks through FFTs", 2014).

Every map is transformed once and its spectrum is reused for every pairing and across the
three operations through the layer's ``fft_cache``. Spectra are frequency-major,
``(F, batch, planes)``, so the product at every frequency is one slice of a single batched
complex GEMM:

* ``updateOutput``:      ``Y[F,S,f'] = X[F,S,f] @ K[F,f',f]^T``
* ``updateGradInput``:   ``G[F,S,f]  = D[F,S,f'] @ K[F,f',f]``
* ``accGradParameters``: ``V[F,f',f] = D[F,S,f']^T @ X[F,S,f]``

where X is the input's spectrum, K the spectrum of the flipped kernel and D that of the flipped
gradOutput. How maps get into and out of the Fourier domain (DFT matrices or FFTs, the
transform size, the placement of each map) is a *plan*, see fft_plans.py.

Stride ``d > 1`` is computed as the stride-1 convolution, subsampled: the products cost as much
as at stride 1 (about ``d^2`` times the useful work), while the transforms only compute the
rows and columns that are kept (DFT plan) or all of them (FFT plan).

Memory: the cache holds X, K and D whole, ``8 * NH * (NW//2 + 1) * (S*f + f*f' + S*f')``
bytes in float32. The paper's formula ``4 n (n+1) (S f + S f' + f f')`` counts the same spectra
at ``NH = NW = n``: the two agree to within ``(n+2)/(n+1)``, times ``(N/n)^2`` when the FFT
plan rounds the transform size N up from the padded input size n (the DFT plan uses N = n).
The output's spectrum, which has D's shape, is written into the memory of the stale D
(``FFTCache.take``): a gradOutput spectrum is only reused by the backward operations of its
own step (the FFT plan with few input planes never makes it whole: FFTPlan.output). The
plans' workspace, kept across steps so that a step allocates nothing large, holds the input
gradient's products, ``8 n (n/2+1) S f``, and the weight gradient's kH rows of taps. After a
step, ``fft_nbytes()``, the whole, is 0.92-1.68x the paper's figure on convnet L1-L5 at
batch 16 and 64, whatever the plan (1.2-2.3x with the output's spectrum in the
workspace of its own: convnet L1 at batch 64, 862 against 455 MB). A tiled plan
(``Axis.tile``) holds each map's spectrum once per tile, ``8 * NH * (NW//2 + 1) * (T*S*f +
f*f' + T*S*f')`` with T tiles of NH x NW per map: larger map spectra and a smaller kernel
spectrum than one window's (convnet L5 at batch 16, two tiles of 8 x 13 a map: 5.5 MB for
each of X and D and 66 for K, against 4.5 and 107).
"""
from .. import backend
from .conv import _SpatialConvolutionBase
from .fft_cache import FFTCache
from .fft_plans import own_threads
from .plan_choice import STRATEGIES, make_plan
from .module import as_image_batch, check_float_array


def spectra(plan, cache, *requests):
    """The spectra for ``requests``, ``(kind, source, fresh)`` each, from ``cache``, the
    transforms needed made together by ``plan`` (FFTCache.get_all). ``fresh`` where the data
    may be new (see fft_cache.py's identity policy)."""
    return cache.get_all(requests, plan.meta, plan.spectrum, plan.run)


def forward_pass(plan, cache, x, weight, bias=None):
    """The output maps of the ``(S, f, H, W)`` batch ``x`` by ``plan``, the spectra through
    ``cache`` (FFTCache): SpatialConvolutionFFT's ``updateOutput``, and the steps autotuning
    times, which so time what a layer runs."""
    X, K = spectra(plan, cache, ('input', x, True), ('weight', weight, True))
    # the bias added chunk by chunk, in cache; the output's spectrum in gradOutput's memory
    out, Y = plan.output(X, K, bias, work=cache.take('gradOutput'))
    cache.give('gradOutput', Y)
    return out


def backward_pass(plan, cache, x, weight, gradOutput, acc=None, scale=1):
    """``(input gradient maps, weight gradient, gradOutput's spectrum)`` by ``plan``, the
    spectra through ``cache``, made together (the plan's ``backward``); the weight gradient
    is ``acc`` plus ``scale`` times it where ``acc`` is given: SpatialConvolutionFFT's
    ``backward`` and autotuning's timed steps."""
    D, K, X = spectra(plan, cache, ('gradOutput', gradOutput, True), ('weight', weight, False),
                      ('input', x, False))
    gi, gw = plan.backward(D, K, X, acc=acc, scale=scale)
    return gi, gw, D


def weight_pass(plan, cache, x, gradOutput, acc=None, scale=1):
    """``(weight gradient, gradOutput's spectrum)``, as ``backward_pass`` gives them, without
    the input gradient: SpatialConvolutionFFT's ``accGradParameters``, all that the backward
    of a layer whose input gradient nobody reads runs (``gradInputNeeded`` off: a network's
    first layer), and autotuning's timed steps of such a layer."""
    X, D = spectra(plan, cache, ('input', x, False), ('gradOutput', gradOutput, False))
    return plan.grad_weight(D, X, acc=acc, scale=scale), D


class SpatialConvolutionFFT(_SpatialConvolutionBase):
    """Same constructor, parameters and results as ``SpatialConvolution``; computed in the
    Fourier domain. ``strategy`` ('auto', 'dft', 'tiled' or 'fft', see plan_choice.make_plan)
    picks how maps are transformed; every strategy gives the same results. 'auto' follows a
    rule, or with ``autotune.enable(True)`` (train.py's default) times the candidates
    once per input geometry and keeps the fastest."""

    def __init__(self, *args, strategy='auto', **kwargs):
        super().__init__(*args, **kwargs)
        if strategy not in STRATEGIES:
            raise ValueError(f'{self.name()}: strategy must be one of {STRATEGIES}, '
                             f'got {strategy!r}')
        self.strategy = strategy
        self.fft_cache = FFTCache()
        self._plans = {}

    def plan(self, x):
        """The transform plan for an ``(S, f, H, W)`` input (made once per geometry; autotuned
        on the operations the layer then runs: without the input gradient where
        ``gradInputNeeded`` is off)."""
        xp = backend.get_array_module(x)
        key = (x.shape, x.dtype.str, xp.__name__, self.strategy)
        if key not in self._plans:
            self._plans[key] = make_plan(self.strategy, xp, x.dtype, x.shape[0],
                                         self.nInputPlane, self.nOutputPlane, x.shape[2],
                                         x.shape[3], self.kH, self.kW, self.dH, self.dW,
                                         self.padH, self.padW,
                                         grad_input=self.gradInputNeeded)
        return self._plans[key]

    def fft_sizes(self, input):
        """The transform size (NH, NW) this layer uses for an input of this shape."""
        p = self.plan(as_image_batch(self, input, self.nInputPlane))
        return p.NH, p.NW

    def fft_nbytes(self):
        """Bytes this layer holds for the Fourier domain: the cached spectra and the plans'
        workspaces."""
        return self.fft_cache.nbytes() + sum(p.scratch_nbytes() for p in self._plans.values())

    # -- the three operations -------------------------------------------------------------
    def updateOutput(self, input):
        with own_threads(backend.get_array_module(input)):
            return self._update_output(input)

    def updateGradInput(self, input, gradOutput):
        with own_threads(backend.get_array_module(input)):
            return self._update_grad_input(input, gradOutput)

    def accGradParameters(self, input, gradOutput, scale=1):
        with own_threads(backend.get_array_module(input)):
            self._acc_grad_parameters(input, gradOutput, scale)

    def _update_output(self, input):
        x, oH, oW = self._geometry(input)
        out = forward_pass(self.plan(x), self.fft_cache, x, self.weight, self.bias)
        self.fft_cache.count_inverse('output')
        self.output = self._finish_output(out, input, add_bias=False)
        return self.output

    def _update_grad_input(self, input, gradOutput):
        x, g = self._grad_batch(input, gradOutput)
        plan = self.plan(x)
        D, K = spectra(plan, self.fft_cache, ('gradOutput', g, True),
                       ('weight', self.weight, False))
        self._set_grad_input(plan.grad_input(D, K), input)
        return self.gradInput

    def _acc_grad_parameters(self, input, gradOutput, scale):
        x, g = self._grad_batch(input, gradOutput)
        _, D = weight_pass(self.plan(x), self.fft_cache, x, g, acc=self.gradWeight, scale=scale)
        self._acc_spectral_grads(D, scale)

    def backward(self, input, gradOutput, scale=1):
        """``updateGradInput`` then ``accGradParameters``, as ``Module.backward``, made
        together by the plan (``backward`` there: two hand-overs of work to the helper
        threads fewer, gradOutput's spectrum looked up once)."""
        if not self.gradInputNeeded:
            return super().backward(input, gradOutput, scale)
        check_float_array(self, gradOutput, 'gradOutput', finite=False)
        with own_threads(backend.get_array_module(input)):
            x, g = self._grad_batch(input, gradOutput)
            gi, _, D = backward_pass(self.plan(x), self.fft_cache, x, self.weight, g,
                                     acc=self.gradWeight, scale=scale)
            self._set_grad_input(gi, input)
            self._acc_spectral_grads(D, scale)
        return self.gradInput

    def _set_grad_input(self, gi, input):
        self.fft_cache.count_inverse('gradInput')
        self.gradInput = gi.reshape(input.shape)

    def _acc_spectral_grads(self, D, scale):
        """Counts the weight gradient made, and adds the bias gradient: gradOutput's sum over
        samples and pixels is its spectrum's DC term, at hand (no pass over gradOutput)."""
        self.fft_cache.count_inverse('gradWeight')
        if self.bias is not None:
            self.gradBias += scale * D[0].real.sum(axis=0)

    def clearState(self):
        self.fft_cache.clear()
        self._plans = {}
        return super().clearState()

    def __getstate__(self):
        state = super().__getstate__()
        state['_plans'] = {}  # DFT matrices are rebuilt on demand, never saved
        return state
