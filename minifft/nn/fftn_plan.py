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

    def _map_chunks(self, B, rows, whole=1):
        # on a GPU one launch over the whole batch beats cache-sized pieces
        return DFTPlan._map_chunks(self, B, rows, whole) if self.xp is np else [slice(0, B)]

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
