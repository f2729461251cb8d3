"""The FFT plan: the DFT plan (fft_plans.py) with the maps transformed by FFTs."""
import numpy as np

from .. import backend, parallel
from . import dft
from .fft_plans import DFTPlan


class FFTPlan(DFTPlan):
    """The DFT plan with the maps transformed by FFTs (scipy.fft's pocketfft, multithreaded;
    cuFFT on a GPU) at the next fast length per axis: O(N log N) per line instead of the
    GEMMs' O(N), which pays for large maps, or where memory bandwidth is scarce (on the
    development VM, 128x128 maps measured 206 vs 375 ms for convnet L1's gradOutput in one
    period and the other way round in another: autotuning decides). Chunk of maps by chunk,
    each map is placed in a zeroed window, transformed whole (batch first, contiguous lines)
    and transposed into the frequency-major spectrum. Kernels and the weight gradient's taps
    stay dense products, as in the DFT plan: k x k kernels padded to N x N would cost more
    to transform than the products themselves."""
    kind = 'fft'

    def _map_transforms(self):
        self.fft = backend.fft_for(self.xp)
        place_h, read_h = dft.positions(self.ah)
        place_w, read_w = dft.positions(self.aw)
        self.place = {k: (dft.span(place_h[k]), dft.span(place_w[k]))
                      for k in ('input', 'gradOutput')}
        self.read = {k: (dft.span(read_h[k]), dft.span(read_w[k]))
                     for k in ('output', 'gradInput')}

    def _map_chunks(self, B, rows, whole=1, budget=None):
        # on a GPU one launch over the whole batch beats cache-sized pieces
        return (DFTPlan._map_chunks(self, B, rows, whole, budget) if self.xp is np
                else [slice(0, B)])

    def _forward(self, a, kind, spare):
        xp, NH, NW = self.xp, self.NH, self.NW
        B1, B2, Lh, Lw = a.shape
        maps = xp.ascontiguousarray(a).reshape(B1 * B2, Lh, Lw)
        spec = self._into(spare, (NH * self.aw.Q, B1 * B2))
        rows, cols = self.place[kind]

        def chunk(c):
            window = xp.zeros((c.stop - c.start, NH, NW), self.real)
            window[:, rows, cols] = maps[c]
            z = self.fft.rfftn(window, s=(NH, NW), axes=(1, 2), workers=self._workers())
            dft.transpose(z.reshape(len(z), -1), out=spec[:, c])
        return spec.reshape(len(spec), B1, B2), [(chunk, self._map_chunks(B1 * B2, NH))]

    def output(self, X, K, bias=None, work=None):
        """``DFTPlan.output``; on a CPU, with up to ``_ELEMENTWISE_PLANES`` input planes, the
        output's spectrum is never made whole: chunk of maps by chunk, each map's products
        are taken elementwise, ``Y[s, o] = sum_c X[s, c] * K[o, c]`` over all frequencies,
        and read back while in cache. Frequency-major, the products are thousands of GEMMs
        with an inner dimension of f, and the spectrum they make, as large as the output
        (43.6 MB for imagenet_small's conv1), has to be transposed back to map-major order
        from memory before the inverse transforms: the forward took 0.71-0.75x the time this
        way (imagenet_small's conv1 at batch 64, convnet L1 at 16; 0.69 with one input
        plane; a whole step of those 0.84-0.88x), the step with 4 planes 0.91x, 6 0.99x, 8
        1.16x. ``work`` is returned unused."""
        F, S, f = X.shape
        if self.xp is not np or f > _ELEMENTWISE_PLANES:
            return DFTPlan.output(self, X, K, bias, work)
        g = K.shape[1]
        Xm = dft.transpose(X.reshape(F, S * f)).reshape(S, f, F)
        Km = dft.transpose(K.reshape(F, g * f)).reshape(g, f, F)
        rows, cols = self.read['output']
        out = np.empty((S, g) + self._read_shape('output'), self.real)
        flat = out.reshape(S * g, *out.shape[2:])
        per_map = None if bias is None else np.tile(bias, S).reshape(-1, 1, 1)

        def chunk(c):   # maps c = s * g + o, a few planes of one sample or whole samples
            Y = np.empty((c.stop - c.start, F), self.cplx)
            term = np.empty_like(Y)
            for s in range(c.start // g, (c.stop - 1) // g + 1):
                o = slice(max(c.start - s * g, 0), min(c.stop - s * g, g))
                first = s * g + o.start - c.start
                y, t = Y[first:first + o.stop - o.start], term[:o.stop - o.start]
                np.multiply(Xm[s, 0], Km[o, 0], out=y)
                for i in range(1, f):
                    np.multiply(Xm[s, i], Km[o, i], out=t)
                    y += t
            maps = self.fft.irfftn(Y.reshape(-1, self.NH, self.aw.Q), s=(self.NH, self.NW),
                                   axes=(1, 2), workers=self._workers())
            flat[c] = maps[:, rows, cols]
            if per_map is not None:
                flat[c] += per_map[c]

        self._each(chunk, self._map_chunks(S * g, self.NH, budget=_ELEMENTWISE_CHUNK_BYTES))
        return out, work

    def _workers(self):
        """FFT threads per call: one where the chunks themselves run on all cores (``_each``
        runs them in turn where it cannot make the BLAS single-threaded)."""
        return 1 if (self.xp is np and parallel.threads() > 1
                     and backend.can_limit_blas_threads()) else None

    def _read_shape(self, kind):
        rows, cols = self.read[kind]
        return len(range(self.NH)[rows]), len(range(self.NW)[cols])

    def _read_back(self, z, c, kind, transposed, out):
        rows, cols = self.read[kind]
        if transposed:  # planes c, each with its S maps (no tiles here)
            c = slice(c.start * z.shape[2], c.stop * z.shape[2])
        part = dft.transpose(z.reshape(len(z), -1)[:, c]).reshape(-1, self.NH, self.aw.Q)
        maps = self.fft.irfftn(part, s=(self.NH, self.NW), axes=(1, 2),
                               workers=self._workers())[:, rows, cols]
        out[...] = maps.transpose(1, 0, 2).reshape(out.shape)


# input planes up to which the forward's products are elementwise, fused with the read-back
# (see FFTPlan.output), and the bytes of a chunk's spectrum there (1 MB: a step 0.88x the
# GEMMs', 2 MB 0.84-0.86x, 4 MB 0.87-0.94x on imagenet_small's conv1 and convnet L1)
_ELEMENTWISE_PLANES = 4
_ELEMENTWISE_CHUNK_BYTES = 2 << 20
