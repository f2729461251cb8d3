"""How SpatialConvolutionFFT moves maps into and out of the Fourier domain.

A plan is made per layer and input geometry. Every plan produces spectra in the same
frequency-major layout, ``(F, a, b)`` with ``F = NH * (NW // 2 + 1)``, and the layer does the
same three products whatever the plan (see conv_fft.py):

    Y = X @ K^T    (output)       GI = D @ K    (gradInput)       V = D^T @ X    (gradWeight)

with X the input's spectrum ``(F, S, f)``, K the flipped kernel's ``(F, f', f)`` and D the
flipped, stride-spread gradOutput's ``(F, S, f')``. Flipping turns Torch's cross-correlations into
convolutions, so no spectrum is ever conjugated. Each plan places the maps in its transform
window and reads the results back at the positions that make every circular convolution equal
the linear one it stands for; ``N >= H + 2*padH`` is enough for all three (likewise W).

Three plans:

* ``DFTPlan`` computes each 2-D transform as dense products with precomputed DFT matrices, one
  axis at a time: a real GEMM along W whose output is already interleaved complex, and complex
  GEMMs along H over the whole batch at once (lines of 96 points and more in two stages,
  Cooley-Tukey's "four-step", see ``dft.LineDFT``). Zero padding, flips, stride spreading,
  cropping and the 1/N normalisation are all folded into the matrices, so no padded buffer is
  ever written and only the rows and columns that are used are computed. Any ``N`` works, so
  it uses the smallest, ``N = H + 2*padH``. On a CPU GEMMs run an order of magnitude faster
  than FFT butterflies. Maps go through both axes in chunks that stay in cache; the products'
  results live in a workspace kept across steps (the output's in the memory the layer lends
  it, its stale gradOutput spectrum's), and a stale spectrum's memory is reused for its
  replacement, so a step allocates nothing large.
* ``FFTPlan`` (fftn_plan.py): the DFT plan with the maps transformed by scipy.fft
  (cupyx.scipy.fft on a GPU) at the next fast length, batch first, then transposed: O(N log
  N) per line, for large maps.
* The DFT plan on overlap-save tiles (``Axis.tile``): each axis cut into windows of ``N =
  T + k - 1`` pixels that overlap by ``k - 1``, for T outputs each. The tiles of a map are
  more maps to the products (the GEMMs' batch side grows, the frequencies shrink), and the
  tiling is folded into the transforms' matrices, like the padding: no tile is ever copied.

The DFT plan's transforms follow one pattern per chunk of maps: along W with the rows of
all maps taken row index first, along H, and each frequency's maps copied to their place in
the frequency-major spectrum; the read-back is the same in reverse (the FFT plan
transposes each chunk of maps after its 2-D FFT). ``plan_choice.make_plan`` picks a plan by
rule, or, with autotuning on, by timing the candidates once per geometry (autotune.py).
"""
import contextlib
import itertools
import math

import numpy as np

from .. import backend, parallel
from . import dft


def own_threads(xp):
    """The scope the plans' work runs in (the layer's operations, autotuning's timings): on a
    CPU, every BLAS call on the thread that makes it, the plans sharing their work among the
    cores through ``parallel.each``, whose helpers keep off the caller's CPU. OpenBLAS's own
    workers do not: after the process had slept, Linux woke them on the caller's CPU on the
    development VM, where they spun after every call. Convnet L4's step at batch 16 after
    0.25 s asleep measured 32-34 ms with them, 22-27 without (22 when the process had not
    slept)."""
    return backend.single_threaded_blas() if xp is np else contextlib.nullcontext()


class Axis:
    """One spatial axis of a convolution: input length L, kernel k, stride d, padding p and the
    transform size N, with the positions of every map along it. With ``tile`` (stride 1), the
    axis is cut into overlap-save tiles of ``tile`` outputs, each a window of ``N = tile + k -
    1`` padded input pixels."""

    def __init__(self, L, k, d, p, N, tile=None):
        self.L, self.k, self.d, self.p, self.N, self.tile = L, k, d, p, N, tile
        self.Lp = L + 2 * p                       # padded input
        self.o1 = self.Lp - k + 1                 # stride-1 output
        self.o = (self.Lp - k) // d + 1           # output
        self.Q = N // 2 + 1                       # frequencies kept by a real transform
        self.tiles = 1 if tile is None else -(-self.o1 // tile)
        if tile is not None and (d != 1 or N != tile + k - 1):
            raise ValueError(f'tiles of {tile} outputs need stride 1 and N = {tile + k - 1}, '
                             f'got stride {d}, N {N}')

    def inner(self):
        """The convolution within one window: a tile's, or the whole axis without tiles."""
        return self if self.tile is None else Axis(self.N, self.k, 1, 0, self.N)

    def key(self, other, kind, dtype):
        """What a spectrum made by a plan of ``kind`` over this axis and ``other`` depends on
        (the cache's validity key)."""
        return (kind, np.dtype(dtype).str) + tuple((a.N, a.L, a.k, a.d, a.p, a.tile)
                                                   for a in (self, other))


class DFTPlan:
    kind = 'dft'

    def __init__(self, xp, dtype, ah, aw):
        self.xp, self.ah, self.aw = xp, ah, aw
        self.NH, self.NW = ah.N, aw.N
        if ah.tile is not None or aw.tile is not None:
            self.kind = 'tiled'
        self.meta = ah.key(aw, self.kind, dtype)
        real = np.dtype(dtype)
        self.cplx = np.result_type(real, np.complex64)
        self.real = real
        # kernels and the weight gradient's taps are those of one window (a tile's)
        place_h, read_h = dft.positions(ah.inner())
        place_w, read_w = dft.positions(aw.inner())
        kernel_h = dft.forward_matrix(place_h['kernel'], ah.N)
        kernel_w = dft.forward_matrix(place_w['kernel'], aw.N)[:aw.Q]
        self.taps_h = xp.asarray(dft.inverse_matrix(read_h['gradWeight'], ah.N), self.cplx)
        # kernels and the weight gradient's taps go along W (k values a line: a GEMM with k
        # columns runs at a fraction of the machine's speed) with all the lines as columns.
        # Kernels in real GEMMs (see kernel_spectrum): along W the real taps by the DFT
        # matrix's columns, real and imaginary parts interleaved, along H by [Re | Im] of it
        self.kernel_w = xp.asarray(np.ascontiguousarray(kernel_w.T, self.cplx).view(self.real))
        self.kernel_h = xp.asarray(np.concatenate([kernel_h.real, kernel_h.imag], 1), self.real)
        # the weight gradient's last inverse, along W, keeps only the real part (see
        # grad_weight): the real and imaginary parts by [Re | -Im] of the matrix, then the two
        # products that make the real part picked and added
        taps_w = dft.half_inverse_matrix(read_w['gradWeight'], aw.N)        # (kW, Q)
        kW = len(taps_w)
        self.taps_w = xp.asarray(np.concatenate([taps_w.real.T, -taps_w.imag.T], 1), self.real)
        pick = np.zeros((4 * kW, kW))
        pick[:kW] = pick[3 * kW:] = np.eye(kW)
        self.taps_pick = xp.asarray(pick, self.real)
        self._map_transforms()
        self._work = {}
        # on a CPU the products skip the frequencies that are their twins' conjugates
        none = np.zeros(0, np.intp)
        self.twins, self._originals = (dft.conjugate_twins(self.NH, self.NW) if xp is np
                                       else (none, none))
        self.kept = np.setdiff1d(np.arange(self.NH * self.aw.Q), self.twins)  # multiplied
        self._twin_columns = sorted({int(t) % self.aw.Q for t in self.twins})
        self._product_blocks = {}

    def _map_transforms(self):
        """The matrices that move maps in and out: along W real GEMMs whose output is
        interleaved complex, along H complex ones (``dft.LineDFT``). With tiles, each maps a
        line to all its tiles' spectra at once (and back, summing overlaps), so that tiling
        costs no copies: the tiles' frequencies are columns (rows along H) of the same
        GEMMs."""
        xp, ah, aw = self.xp, self.ah, self.aw
        maps_h, maps_w = dft.tile_positions(ah), dft.tile_positions(aw)
        self.fwd_h = {k: dft.LineDFT(xp, self.cplx, maps_h[k], ah.N, inverse=False)
                      for k in ('input', 'gradOutput')}
        self.inv_h = {k: dft.LineDFT(xp, self.cplx, maps_h[k], ah.N, inverse=True)
                      for k in ('output', 'gradInput')}
        self.fwd_w = {k: xp.asarray(dft.tile_matrix(maps_w[k], dft.real_forward_matrix,
                                                    aw.N, 0), self.real)
                      for k in ('input', 'gradOutput')}
        self.inv_w = {k: xp.asarray(dft.tile_matrix(maps_w[k], dft.real_inverse_matrix,
                                                    aw.N, 1), self.real)
                      for k in ('output', 'gradInput')}

    def _scratch(self, shape, slot=0):
        """A complex buffer of ``shape`` from a workspace that the plan keeps across steps
        and operations (each product's result is consumed by its own inverse before the next
        operation runs; ``backward`` runs two at once, the second in ``slot`` 1). Fresh arrays
        of this size (~100 MB on convnet L1) cost more than the GEMMs that fill them: their
        pages are faulted in and zeroed on every step."""
        n = math.prod(shape)
        if slot not in self._work or self._work[slot].size < n:
            self._work[slot] = self.xp.empty(n, self.cplx)
        return self._work[slot][:n].reshape(shape)

    def scratch_nbytes(self):
        return sum(int(w.nbytes) for w in self._work.values())

    def _into(self, spare, shape):
        """``spare`` (a stale spectrum from the cache) as a complex array of ``shape`` if it
        has that many elements on this plan's device, else a new one."""
        n = math.prod(shape)
        if (spare is None or spare.size != n or spare.dtype != self.cplx
                or backend.get_array_module(spare) is not self.xp):
            return self.xp.empty(shape, self.cplx)
        return spare.reshape(shape)

    def _map_chunks(self, B, rows, whole=1, budget=None):
        """Slices of a batch of B maps, each chunk's half-transformed maps ``rows x Q``
        complex about ``budget`` bytes (``_CHUNK_BYTES`` by default): a chunk goes through
        both axes while its data is still in cache, instead of each step streaming the whole
        batch through memory.
        Chunks hold a multiple of ``whole`` maps. Their number is a multiple of the threads
        and their sizes equal, so that every core gets the same work: a batch that fits one
        chunk used to run on one core's copies (convnet L4 at batch 16), and L5's 6,144 maps
        went 5,760 to one thread and 384 to the other."""
        step = max(1, (budget or _CHUNK_BYTES) // (rows * self.aw.Q * self.cplx.itemsize))
        cores = parallel.threads() if self.xp is np else 1
        return parallel.split(B, -(-B // step // cores) * cores, whole)

    def _forward(self, a, kind, spare):
        """Spectrum ``(F, T*B1, B2)`` of real maps ``a`` ``(B1, B2, Lh, Lw)`` (T: the tiles
        of each map, 1 without tiles), chunk of maps by chunk: along W, row index first (one
        real GEMM per row index over that row of every map, in place, whose output is
        interleaved complex and already has the maps between the rows and the frequencies),
        along H, and each frequency's maps copied to their place in the spectrum. (Copying the
        rows row-index first, then one GEMM, took 2-10x as long on convnet L4 and L5: L5's
        input on one core 2.2 -> 0.2 ms; transposing the complex half-transformed maps
        instead, element by element, made L1's gradOutput spectrum 1.6x slower.) Written
        into ``spare`` (a stale spectrum) where it fits; returned still to be written, with
        the steps that write it (see ``run``)."""
        xp, NH, Q, th, tw = self.xp, self.NH, self.aw.Q, self.ah.tiles, self.aw.tiles
        B1, B2, Lh, Lw = a.shape
        maps = a.reshape(B1 * B2, Lh, Lw)
        spec = self._into(spare, (NH * Q, th * tw * B1 * B2))
        grid = spec.reshape(NH, Q, th, tw, -1)

        def chunk(c):
            t = xp.matmul(maps[c].transpose(1, 0, 2), self.fwd_w[kind])     # (Lh, m, tw 2Q)
            z = self.fwd_h[kind](t.view(self.cplx).reshape(Lh, -1))          # (th NH, m tw Q)
            grid[..., c] = z.reshape(th, NH, -1, tw, Q).transpose(1, 4, 0, 3, 2)
        return (spec.reshape(len(spec), th * tw * B1, B2),
                [(chunk, self._map_chunks(B1 * B2, Lh * tw))])

    def _inverse(self, z, kind, bias=None, transposed=False):
        """Real maps ``(S, P, Rh, Rw)`` read back from a spectrum ``(F, T*S, P)``, or with
        ``transposed`` from ``(F, P, T*S)`` (T: the tiles of each map), chunk of maps by
        chunk, plus ``bias`` per plane P if given, as the maps (still to be written) and the
        step that writes them (see ``run``). Transposed, a chunk is whole planes, their maps
        written to their place while in cache, rather than in one more pass."""
        F, B1, B2 = z.shape
        tiles = self.ah.tiles * self.aw.tiles
        S, P = (B2 // tiles, B1) if transposed else (B1 // tiles, B2)
        Rh, Rw = self._read_shape(kind)
        out = self.xp.empty((S, P, Rh, Rw), self.real)
        flat = out.reshape(S * P, Rh, Rw)
        if transposed:
            chunks = [slice(c.start // S, c.stop // S)
                      for c in self._map_chunks(S * P, Rh * self.aw.tiles, S)]
        else:
            chunks = self._map_chunks(S * P, Rh * self.aw.tiles)
        per_map = None if bias is None or transposed else self.xp.tile(bias, S).reshape(-1, 1, 1)

        def chunk(c):
            if transposed:   # maps (planes c, S) row-index first
                dst = out[:, c]
                self._read_back(z, c, kind, True, dst.transpose(2, 1, 0, 3))
                if bias is not None:
                    dst += bias[c].reshape(1, -1, 1, 1)
            else:
                self._read_back(z, c, kind, False, flat[c].transpose(1, 0, 2))
                if per_map is not None:
                    flat[c] += per_map[c]
        return out, (chunk, chunks)

    def run(self, *operations):
        """Runs operations given as lists of steps, each step a function and the items it
        runs on (chunks of maps, blocks of frequencies), the i-th steps of all operations in
        one parallel call: ``backward``'s two operations hand work to the helper threads
        three times instead of five, and the items of two steps even out the threads' shares
        better than those of one. An operation's items come before the next one's."""
        for steps in itertools.zip_longest(*operations):
            work = [(fn, item) for fn, items in filter(None, steps) for item in items]
            self._each(lambda w: w[0](w[1]), work)

    def _each(self, fn, items):
        """``fn`` over ``items`` (chunks of maps, blocks of frequencies: each writes its own
        part of the result), on all cores of a host, each thread with its own single-threaded
        GEMMs: convnet L1's gradOutput spectrum measured 117-145 -> 81-89 ms at batch 16
        against one chunk at a time with every GEMM on both cores (the copies between the
        GEMMs ran on one core, and the GEMMs of a chunk are too small to split well)."""
        if self.xp is np:
            parallel.each(fn, items, blas=True)
        else:
            for item in items:
                fn(item)

    def _read_shape(self, kind):
        return self.inv_h[kind].L, self.inv_w[kind].shape[1]

    def _read_back(self, z, c, kind, transposed, out):
        """Maps of a spectrum ``z`` (see ``_inverse``) read back into ``out``, a view of the
        result, row index first: ``(Rh, m, Rw)``, the maps ``c``, or when ``transposed``
        ``(Rh, planes, S, Rw)``, the planes ``c`` with all their S maps. Each frequency's maps
        gathered with all their tiles, along H, then along W (a real GEMM from interleaved
        complex), the reverse of ``_forward``. Rows up to ``_SHORT_ROW_BYTES`` long are
        written by that GEMM straight to their places, a GEMM per row index (into a buffer
        first, then moved, took 2.5-3x as long on one core for convnet L4's and L5's maps);
        longer ones so measured slower in a training step (L3's input gradient, rows of 32,
        1.1x; L1's output 1.05x), and the GEMM per row index would have only S rows where
        ``transposed``."""
        xp, NH, Q, th, tw = self.xp, self.NH, self.aw.Q, self.ah.tiles, self.aw.tiles
        Rh = self._read_shape(kind)[0]
        if transposed:   # (NH, Q, P, th, tw, S) -> (th, NH, planes c, S, tw, Q)
            part = z.reshape(NH, Q, z.shape[1], th, tw, -1)[:, :, c].transpose(3, 0, 2, 5, 4, 1)
        else:            # (NH, Q, th, tw, S*P) -> (th, NH, maps c, tw, Q)
            part = z.reshape(NH, Q, th, tw, -1)[..., c].transpose(2, 0, 4, 3, 1)
        part = xp.ascontiguousarray(part)
        u = self.inv_h[kind](part.reshape(th * NH, -1)).view(self.real)     # (Rh, m tw 2Q)
        if transposed or out.shape[-1] * out.itemsize > _SHORT_ROW_BYTES:
            out[...] = (u.reshape(-1, tw * 2 * Q) @ self.inv_w[kind]).reshape(out.shape)
        else:
            xp.matmul(u.reshape(Rh, -1, tw * 2 * Q), self.inv_w[kind], out=out)

    def _grid(self, a):
        """A frequency-major ``(F, a, b)`` array as ``(NH, Q, a, b)``."""
        return a.reshape((self.NH, self.aw.Q) + a.shape[1:])

    def spectrum(self, kind, a, spare=None):
        """The spectrum of ``a`` as ``kind`` ('input', 'weight' or 'gradOutput', the FFT
        cache's kinds), still to be written (into ``spare``, a stale spectrum, where it fits),
        and the steps that write it (see ``run``): the cache runs those of several spectra
        together."""
        return self._kernel_spectrum(a, spare) if kind == 'weight' else self._forward(a, kind,
                                                                                      spare)

    def _spectrum_now(self, kind, a, spare):
        value, steps = self.spectrum(kind, a, spare)
        self.run(steps)
        return value

    def input_spectrum(self, x, spare=None):
        return self._spectrum_now('input', x, spare)

    def kernel_spectrum(self, w, spare=None):
        return self._spectrum_now('weight', w, spare)

    def grad_output_spectrum(self, g, spare=None):
        return self._spectrum_now('gradOutput', g, spare)

    def _kernel_spectrum(self, w, spare):
        """The flipped kernel's spectrum ``(F, f', f)``, made once per weight and shared by
        ``output`` and ``grad_input``. (Each of them used to make it anew in cache-sized
        blocks; making it once measured 0.73-1.0x the time of the two operations on every
        convnet layer, L1 most.) Along W all k taps at once, then along H. On a CPU the kernel
        pairs go in blocks shared among the cores, each block's taps read while in cache,
        rather than all taps copied first and read back by GEMMs on both cores (the spectrum,
        L5's 66 MB, is written at about memory speed on two cores; one core alone takes about
        twice as long).

        Both axes are real GEMMs. The taps are real: along W one real GEMM reads them where
        they lie and gives each line's spectrum t, interleaved complex, pairs first; t is
        copied frequencies first and i*t made from it, so that along H ``H t`` is the real
        GEMM ``[Re H | Im H] @ [t; i t]``, whose output is the interleaved complex spectrum.
        (The taps copied frequencies first, t from the GEMM in real and imaginary rows and
        written interleaved with i*t by four strided copies: the spectrum 1.08-1.14x the time
        in a step on convnet L2-L5, L4's 4.1 ms against 3.6.) As complex GEMMs (the taps made
        complex, a k-long inner dimension) the spectrum took 1.1-1.8x as long on convnet
        L1-L4 on its own, in blocks of about 1 MB of t and i*t (512 KB: 1.0-1.3x the time of
        1 MB). For 3x3 kernels the two axes now beat one product with the 2-D DFT matrix,
        which the complex GEMMs did not: convnet L5 18.2 -> 10.1 ms (tiled 15.5 -> 7.7), 3x3
        on 32x32 3.2x faster. A training step: L5 0.92-0.96x the time, L3 0.97x, L4 0.97-1.0x."""
        xp = self.xp
        g, f, kH, kW = w.shape
        NH, Q = self.NH, self.aw.Q
        K = self._into(spare, (NH * Q, g, f))
        pairs = w.reshape(g * f, kH, kW)
        grid = K.reshape(NH, Q, -1)
        blocks = parallel.split(g * f, self._blocks(g * f * 2 * kH * Q * self.cplx.itemsize,
                                                    _KERNEL_BLOCK_BYTES))

        def block(s):
            t = xp.matmul(pairs[s].transpose(1, 0, 2), self.kernel_w).view(self.cplx)
            both = xp.empty((2, kH, Q, t.shape[1]), self.cplx)    # t, i*t: (kH, Q, P) each
            both[0] = t.transpose(0, 2, 1)
            xp.multiply(both[0], self.cplx.type(1j), out=both[1])
            both = both.view(self.real).reshape(2 * kH, Q, -1)
            if len(blocks) == 1:  # one GEMM with long rows (a GPU, or few kernels)
                xp.matmul(self.kernel_h, both.reshape(2 * kH, -1),
                          out=grid.reshape(NH, -1).view(self.real))
            else:
                xp.matmul(self.kernel_h, both.transpose(1, 0, 2),
                          out=grid[:, :, s].transpose(1, 0, 2).view(self.real))
        return K, [(block, blocks)]

    def output(self, X, K, bias=None, work=None):
        """The output maps, plus ``bias`` per output plane if given (every plan's
        ``output`` takes it), and the memory that held the output's spectrum: ``work`` where
        it fits, else new. The output's spectrum has gradOutput's shape, so
        SpatialConvolutionFFT lends it the stale gradOutput spectrum's memory and gets it
        back for the next one (see ``FFTCache.take``)."""
        Y, transposed, products = self._output_products(X, K, lambda shape: self._into(work,
                                                                                      shape))
        out, read = self._inverse(Y, 'output', bias, transposed=transposed)
        self.run([products, read])
        return out, Y

    def output_products(self, X, K):
        """The output's spectrum, ``X @ K^T`` ``(F, S, f')``, or ``(F, f', S)`` with
        ``True``: on a CPU, with at least as many input planes as samples, the products are
        taken planes first, ``K @ X^T``: OpenBLAS ran them 1.3-1.7x faster on convnet L2-L5 at
        batch 16 (L5 27.7 -> 19.5 ms), and slower with few planes (L1). In the plan's
        workspace: valid until its next product."""
        Y, transposed, products = self._output_products(X, K, self._scratch)
        self.run([products])
        return Y, transposed

    def _output_products(self, X, K, memory):
        """``output_products``' result (still to be written, in ``memory(shape)``), its
        layout and the step that writes it."""
        xp = self.xp
        S, f, g = X.shape[1], X.shape[2], K.shape[1]
        if xp is np and f >= S:
            Yt = memory((X.shape[0], g, S))
            return Yt, True, self._products(
                lambda s: xp.matmul(K[s], X[s].transpose(0, 2, 1), out=Yt[s]), Yt)
        Y = memory((X.shape[0], S, g))
        return Y, False, self._products(
            lambda s: xp.matmul(X[s], K[s].transpose(0, 2, 1), out=Y[s]), Y)

    def grad_input(self, D, K):
        """The input gradient's maps."""
        out, steps = self._grad_input(D, K)
        self.run(steps)
        return out

    def _grad_input(self, D, K, slot=0):
        """The input gradient's maps (still to be written) and the steps that write them, its
        products in the workspace ``slot``."""
        G, transposed, products = self._grad_input_products(D, K, slot)
        out, read = self._inverse(G, 'gradInput', transposed=transposed)
        return out, [products, read]

    def grad_input_products(self, D, K):
        """The input gradient's spectrum, ``D @ K`` ``(F, S, f)``, or ``(F, f, S)`` with
        ``True``: on a CPU, with up to ``_MATVEC_PLANES`` input planes, the products are
        NumPy's matrix-vector products, each plane's dot products of gradOutput's rows with
        its kernel column, rather than one GEMM per frequency: convnet L1's (16 x 96 by 96 x
        3, 8,320 of them) are bound by the BLAS's cost per call, and measured 17-23 -> 10-15
        ms at batch 16, 62-71 -> 37 at 64. In the plan's workspace, like ``output_products``."""
        G, transposed, products = self._grad_input_products(D, K)
        self.run([products])
        return G, transposed

    def _grad_input_products(self, D, K, slot=0):
        xp = self.xp
        S, f = D.shape[1], K.shape[2]
        if xp is np and f <= _MATVEC_PLANES and _matvec is not None:
            Gt = self._scratch((D.shape[0], f, S), slot)
            return Gt, True, self._products(
                lambda s: _matvec(D[s, None], K[s].transpose(0, 2, 1), out=Gt[s]), Gt)
        G = self._scratch(D.shape[:2] + (f,), slot)
        return G, False, self._products(lambda s: xp.matmul(D[s], K[s], out=G[s]), G)

    def backward(self, D, K, X, acc=None, scale=1):
        """``(grad_input(D, K), grad_weight(D, X, acc, scale))``, made together, the two
        operations' products in one parallel call and their read-backs in another (see
        ``run``); the input gradient's products in a second workspace. Convnet L4's step
        at batch 16: 0.976x the time (in-process A/B against the two operations apart)."""
        gi, input_steps = self._grad_input(D, K, slot=1)
        gw, weight_steps = self._grad_weight(D, X, acc, scale)
        # the input gradient's first, gradOutput's spectrum just made (the weight gradient's
        # larger items first: L4's and L5's steps 1.007-1.009x the time, in-process)
        self.run(input_steps, weight_steps)
        return gi, gw

    def _blocks(self, nbytes, size=None):
        """How many blocks to cut work on ``nbytes`` of data into: one below ``size``
        (``_BLOCK_BYTES``) or on a GPU, else about that much each, as many as a multiple of
        the threads. (Convnet L1's 288 kernel pairs in two blocks measured 1.9-2.1 -> 3.6-4.4
        ms: each block's rows of the spectrum too short.)"""
        n = -(-nbytes // (size or _BLOCK_BYTES)) if self.xp is np else 1
        return n if n == 1 else -(-n // parallel.threads()) * parallel.threads()

    def _products(self, fn, result):
        """The step (see ``run``) running ``fn(frequencies)`` (a slice of them) over all
        frequencies of ``result``, in blocks shared among the threads: one small product per
        frequency, too small to split among cores well (convnet L1's, 16 x 3 by 3 x 96, ran at
        8 GFLOP/s: 31 -> 16 ms in two blocks on two cores). A small ``result`` is made in one
        block, on the calling thread. The frequencies that are conjugate twins of others
        (``dft.conjugate_twins``; on a CPU) are copied from them, conjugated, rather than
        multiplied: 7 of convnet L4's 96 at batch 16, 2 of L5's 42."""
        n = 4 * parallel.threads() if self.xp is np and result.nbytes > _BLOCK_BYTES else 1
        if n not in self._product_blocks:   # 70 us to make: once
            self._product_blocks[n] = self._frequency_blocks(n)

        def block(item):
            runs, twins, originals = item
            for s in runs:
                fn(s)
            if len(twins):
                result[twins] = result[originals].conj()
        return block, self._product_blocks[n]

    def _frequency_blocks(self, n):
        """The multiplied frequencies in ``n`` blocks, each as the runs of consecutive
        indices it multiplies and the twins of those, which the block copies itself (one copy
        of all twins after the products, on one thread, took 0.2 ms of imagenet_small's
        conv4)."""
        blocks = []
        for c in parallel.split(len(self.kept), n):
            mine = np.isin(self._originals, self.kept[c])
            blocks.append((dft.runs(self.kept[c]), self.twins[mine], self._originals[mine]))
        return blocks

    def grad_weight(self, D, X, acc=None, scale=1):
        """The weight gradient ``(f', f, kH, kW)``, or with ``acc`` that array plus ``scale``
        times it (Torch's accumulation), returned. Its spectrum is made and inverse-
        transformed along H block of columns by block: only its kH rows of taps are ever held
        whole. Then along W block of planes by block, on all cores, each block's taps put in
        the weight's layout (and accumulated) while in cache. (Along W in one GEMM on one
        core, then moved in one strided copy, the two took as long as the products on convnet
        L4: the weight gradient 0.74-0.80x the time without them on L3 and L4, 0.91x on L2,
        0.96-0.98x on L5.) Along W only the real part is kept: each pair's taps, read as their
        real and imaginary parts (rows of the interleaved array), are multiplied by ``[Re |
        -Im]`` of the inverse matrix in one real GEMM, and a second picks and adds the two
        products that make the real part, writing the weight's layout. (One complex GEMM whose
        real part was then copied out: L4's step 1.01-1.04x the time, the other convnet layers
        alike; 335-344 against 277 us a block of 2,048 pairs on one core.)"""
        out, steps = self._grad_weight(D, X, acc, scale)
        self.run(steps)
        return out

    def _grad_weight(self, D, X, acc, scale):
        """``grad_weight``'s result (still to be written, or ``acc``) and the steps that write
        it."""
        xp = self.xp
        a, b = self._weight_operands(D, X)
        kH, Q, kW = self.taps_h.shape[0], self.aw.Q, self.taps_pick.shape[1]
        A, B = a.shape[2], b.shape[2]
        U = self._scratch((kH, Q, A, B))

        def block(part):
            cols, planes = part
            V = self._weight_products(a, b, cols, planes)
            xp.matmul(self.taps_h, V.reshape(self.NH, -1),
                      out=U[:, cols, planes].reshape(kH, -1))
        parts = U.reshape(kH, Q, A * B).view(self.real)      # (kH, Q, pairs (re, im))
        out = xp.empty((b.shape[2], A, kH, kW) if a is X else (A, B, kH, kW),
                       self.real) if acc is None else acc
        by_a = out.transpose(1, 0, 2, 3) if a is X else out     # (A, B, kH, kW)
        pick = (self.taps_pick if acc is None or scale == 1
                else (scale * self.taps_pick).astype(self.real, copy=False))

        def finish(planes):   # a's planes, with all of b's
            n = (planes.stop - planes.start) * B
            rows = parts[:, :, 2 * planes.start * B:2 * planes.stop * B].transpose(0, 2, 1)
            products = xp.matmul(rows, self.taps_w)      # (kH, pairs (re, im), (Re, -Im) kW)
            taps = xp.empty((n, kH, kW), self.real)
            xp.matmul(products.reshape(kH, n, 4 * kW), pick, out=taps.transpose(1, 0, 2))
            taps = taps.reshape(-1, B, kH, kW)
            if acc is None:
                by_a[planes] = taps
            else:
                by_a[planes] += taps
        # blocks sized by the rows each reads (sized by the taps it writes, imagenet_small's
        # conv4, 3x3, made one block: 0.7 ms of its step on one thread)
        rows = parallel.split(A, self._blocks(kH * Q * A * B * self.cplx.itemsize))
        return out, [(block, self._weight_blocks(a, b)), (finish, rows)]

    def grad_weight_products(self, D, X):
        """The weight gradient's whole spectrum, ``D^T @ X`` ``(F, f', f)``, or its transpose
        ``(F, f, f')`` with ``True``, made by the same products in the same blocks as
        ``grad_weight`` (which never holds it whole): for measuring them on their own."""
        a, b = self._weight_operands(D, X)
        V = self.xp.empty((self.NH, self.aw.Q, a.shape[2], b.shape[2]), X.dtype)

        def block(part):
            cols, planes = part
            V[:, cols, planes] = self._weight_products(a, b, cols, planes)
        self._each(block, self._weight_blocks(a, b))
        return V.reshape(-1, a.shape[2], b.shape[2]), a is X

    @staticmethod
    def _weight_operands(D, X):
        """``(D, X)``, or ``(X, D)`` with few input planes: the products are then taken as
        ``X^T @ D``, so that the GEMMs' results have f' columns rather than f (convnet L1,
        f = 3: 63 -> 22 ms at batch 16)."""
        return (X, D) if X.shape[2] <= _FEW_PLANES else (D, X)

    def _weight_blocks(self, a, b):
        """``(columns, rows)`` of each block: slices of the Q frequency columns, each block's
        products ``a^T @ b`` small enough to stay in cache between the GEMM that makes them and
        the one that uses them (or one column), as many blocks as a multiple of the threads so
        that they get the same work; where the columns are too few for that, and the products
        have rows to spare (``_SPLIT_ROWS``, a's planes), each column is cut into slices of
        rows: convnet L5's 7 columns at batch 16 went 4 to one thread and 3 to the other
        (the weight gradient 0.91-0.97x the time cut in two, 0.91x at batch 64; L2's and
        L3's 128 rows cut measured 1.02-1.07x, and every column cut to blocks of cache size
        1.07-1.10x on L2 and L4)."""
        A, Q = a.shape[2], self.aw.Q
        step = max(1, _BLOCK_BYTES // (self.NH * A * b.shape[2] * a.itemsize))
        cores = parallel.threads() if self.xp is np else 1
        n = -(-Q // step // cores) * cores
        if n > Q and A >= cores * _SPLIT_ROWS:
            return [(slice(q, q + 1), rows) for q in range(Q)
                    for rows in parallel.split(A, cores)]
        return [(cols, slice(0, A)) for cols in parallel.split(Q, min(n, Q))]

    def _weight_products(self, a, b, cols, rows):
        """``a^T @ b`` at the frequency columns ``cols``, its rows ``rows``: ``(NH, Q',
        rows, columns)``. A block of one column whose rows are conjugate twins (see
        ``_products``) is multiplied in its first NH/2 + 1 rows, the others copied from
        them, conjugated."""
        xp = self.xp
        left = self._grid(a)[:, cols, :, rows].transpose(0, 1, 3, 2)
        right = self._grid(b)[:, cols]
        if cols.stop - cols.start != 1 or cols.start not in self._twin_columns:
            return xp.matmul(left, right)
        twins, originals = dft.twin_rows(self.NH)
        V = xp.empty(left.shape[:3] + right.shape[3:], left.dtype)
        xp.matmul(left[:twins.start], right[:twins.start], out=V[:twins.start])
        V[twins] = V[originals].conj()
        return V


_BLOCK_BYTES = 1 << 20
# the kernel spectrum's blocks, by the t and i*t they hold (see kernel_spectrum)
_KERNEL_BLOCK_BYTES = 1 << 20
_SPLIT_ROWS = 128   # rows of the weight gradient's products a thread's share keeps at least
_FEW_PLANES = 8   # input planes up to which the weight gradient's products are taken as X^T D
# input planes up to which the input gradient's products are matrix-vector products (f = 6
# measured 0.87x the GEMMs' time, f = 8 1.2x)
_MATVEC_PLANES = 4
_matvec = getattr(np, 'matvec', None)  # NumPy 2.2 and later
_SHORT_ROW_BYTES = 64   # rows read back by the GEMM along W in place (see _read_back)
_CHUNK_BYTES = 4 << 20  # measured on convnet L1's gradOutput: 1 MiB 169 ms, 4 MiB 136, whole 179

