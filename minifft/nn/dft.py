"""DFTs as dense products (GEMMs), for the DFT plan of fft_plans.py.

Where each kind of map sits in a transform window and where results are read back
(``positions``), the DFT matrices for those positions, complex and real-to-half-spectrum
(``forward_matrix`` ... ``real_inverse_matrix``), transforms of long lines in two GEMM stages
(``LineDFT``) and a cache-friendly transpose: the building blocks, free of any layer logic.
"""
import numpy as np

from .. import backend


class LineDFT:
    """The DFT along the first axis of ``(rows, columns)`` arrays, complex to complex: samples
    at ``positions`` of a window of N to the N frequencies (forward), or N frequencies to the
    values at ``positions`` (inverse, with the 1/N).

    As one dense GEMM this costs N per sample. For long lines it is split Cooley-Tukey style,
    ``N = N1 * N2`` ("four-step"): N2 GEMMs of length N1 over the samples whose position is
    ``n2`` modulo N2 (their twiddle factors folded into the matrices), then one GEMM of length
    N2, so about ``N1 + N2`` per sample; both are still plain GEMMs and the spectrum comes out
    in natural order (convnet L1, N = 128 = 16 * 8: 83-96 ms -> 50-66 ms a transform)."""

    def __init__(self, xp, dtype, maps, N, inverse):
        """``maps``: ``(count, blocks)``, the samples (forward) or results (inverse) of each
        tile, as ``tile_positions`` gives them; lines of several tiles are one dense
        product."""
        size, blocks = maps
        positions = np.asarray(blocks[0][1])
        self.xp, self.N, self.inverse, self.L = xp, N, inverse, size
        N2 = _four_step_split(N)
        if N2 is None or len(blocks) > 1:
            dense = (tile_matrix(maps, inverse_matrix, N, 0) if inverse else
                     tile_matrix(maps, forward_matrix, N, 1))
            self.dense = xp.asarray(dense, dtype)
            return
        self.dense, self.N1, self.N2 = None, N // N2, N2
        sign = 1 if inverse else -1
        k1, n2 = np.arange(self.N1), np.arange(N2)
        self.across = xp.asarray(np.exp(sign * 2j * np.pi * np.outer(n2, n2) / N2), dtype)
        self.groups = []  # (rows of the samples in this residue class, their N1-point matrix)
        for r in range(N2):
            sel = np.flatnonzero(positions % N2 == r)
            m = np.exp(sign * 2j * np.pi * (np.outer(k1, positions[sel] // N2) / self.N1
                                           + np.outer(k1, np.full(len(sel), r)) / N))
            m = m.T / N if inverse else m
            self.groups.append((span(sel), xp.asarray(m, dtype)))

    def __call__(self, a):
        """The transform of ``a`` ``(rows, C)``."""
        if self.dense is not None:
            return self.xp.matmul(self.dense, a)
        xp, N1, N2, C = self.xp, self.N1, self.N2, a.shape[1]
        if self.inverse:
            b = (self.across @ a.reshape(N2, -1)).reshape(N2, N1, C)
            res = xp.empty((self.L, C), a.dtype)
            for (rows, m), part in zip(self.groups, b):
                xp.matmul(m, part, out=res[rows])
            return res
        parts = xp.empty((N2, N1, C), a.dtype)
        for (rows, m), part in zip(self.groups, parts):
            if m.shape[1]:
                xp.matmul(m, a[rows], out=part)
            else:
                part[...] = 0
        return self.xp.matmul(self.across, parts.reshape(N2, -1)).reshape(self.N, C)


def _four_step_split(N):
    """N2 of the two-stage split ``N = N1 * N2`` that ``LineDFT`` takes, or None for one GEMM."""
    N2 = max(d for d in range(1, int(N ** 0.5) + 1) if N % d == 0)
    return N2 if N >= _FOUR_STEP_MIN and N2 >= 4 else None


def line_cost(N):
    """Multiply-adds per sample of ``LineDFT`` on lines of N (its output's length): N for one
    GEMM, N1 + N2 for two stages."""
    N2 = _four_step_split(N)
    return N if N2 is None else N // N2 + N2


def twin_rows(NH):
    """In a column of a real map's spectrum that is its own conjugate (see
    ``conjugate_twins``), the rows past NH/2 and, in the same order, the rows NH - u they
    are the conjugates of: two slices."""
    return slice(NH // 2 + 1, NH), slice((NH + 1) // 2 - 1, 0, -1)


def conjugate_twins(NH, NW):
    """The frequencies of a real map's NH x NW spectrum, as the plans keep it (the half
    ``(NH, NW//2 + 1)``, frequency-major: ``u * Q + q``), that are the complex conjugates of
    others kept too: in the columns whose own twin is themselves (q = 0, and q = NW/2 for
    even NW) row u and row NH - u are twins. Returns ``(twins, originals)``, index arrays,
    the twins the rows past NH/2 (``twin_rows``)."""
    Q = NW // 2 + 1
    columns = [0] + ([Q - 1] if NW % 2 == 0 and Q > 1 else [])
    rows, originals = (np.arange(NH)[r] for r in twin_rows(NH))
    twins = np.array([u * Q + q for q in columns for u in rows], dtype=np.intp)
    originals = np.array([u * Q + q for q in columns for u in originals], dtype=np.intp)
    return twins, originals


def runs(indices):
    """Sorted indices as the slices of their runs of consecutive values."""
    cuts = np.flatnonzero(np.diff(indices) != 1) + 1
    return [slice(int(r[0]), int(r[-1]) + 1) for r in np.split(np.asarray(indices), cuts)
            if len(r)]


def span(positions):
    """Evenly spaced indices (rising or falling) as a slice, so that selecting them is a view:
    every placement and read-back of the plans is linear in the index, and so are the rows of
    one residue class of it."""
    p = [int(v) for v in positions]
    if not p:
        return slice(0, 0)
    step = p[1] - p[0] if len(p) > 1 else 1
    if step == 0 or p != list(range(p[0], p[-1] + step, step)):
        raise AssertionError(f'indices {p} are not evenly spaced')
    stop = p[-1] + step
    return slice(p[0], None if stop < 0 else stop, step)


_FOUR_STEP_MIN = 96   # shorter lines: one GEMM was as fast (N = 64) or faster (N = 32)
_TILE = 128


def transpose(a, out=None):
    """The 2-D array ``a`` transposed, as a contiguous copy or written into ``out``. NumPy's
    own copy walks one side with a large stride and ran 2-2.5x slower on these spectra than
    copying 128x128 tiles, each of which stays in cache (117 -> 47 ms for convnet L1's 94 MB)."""
    if not isinstance(a, np.ndarray):  # CuPy: one kernel does it well
        xp = backend.get_array_module(a)
        if out is None:
            return xp.ascontiguousarray(a.T)
        out[...] = a.T
        return out
    if out is None:
        out = np.empty(a.shape[::-1], a.dtype)
    for i in range(0, a.shape[0], _TILE):
        for j in range(0, a.shape[1], _TILE):
            out[j:j + _TILE, i:i + _TILE] = a[i:i + _TILE, j:j + _TILE].T
    return out


def positions(a):
    """Where each kind of map sits in the transform window along axis ``a`` (forward) and
    where each result is read back (inverse). The kernel is flipped and shifted by the padding,
    so that the input can sit at 0 without a padded copy; gradOutput is flipped and spread by
    the stride."""
    idx = np.arange
    place = {'input': idx(a.L), 'kernel': a.p + a.k - 1 - idx(a.k),
             'gradOutput': a.o1 - 1 - a.d * idx(a.o)}
    read = {'output': a.k - 1 + a.d * idx(a.o), 'gradInput': a.Lp - 1 - idx(a.L),
            'gradWeight': (a.o1 - 1 - a.p + idx(a.k)) % a.N}
    return place, read


def tile_positions(a):
    """Where each map's samples sit in the transform window along axis ``a``, for the maps
    (``'input'``, ``'gradOutput'``) and the results read back (``'output'``, ``'gradInput'``):
    per kind ``(count, blocks)``: the samples or results along the axis, and for each tile an
    ``(indices, positions)`` pair, the ones at ``indices`` sitting at ``positions`` of that
    tile's window. An axis without tiles has one tile, ``positions(a)``. With overlap-save
    tiles of T outputs (``a.tile``), tile t's window holds the padded input's pixels ``[t*T,
    t*T + N)`` and its outputs ``[t*T, t*T + T)``: the positions of the window's own
    convolution (``a.inner()``), cut to the pixels and outputs that exist. Input pixels in two
    windows are read back from both (their input gradient is the sum, the overlap-add)."""
    if a.tile is None:
        place, read = positions(a)
        return {kind: (len(p), [(np.arange(len(p)), p)]) for kind, p in
                (('input', place['input']), ('gradOutput', place['gradOutput']),
                 ('output', read['output']), ('gradInput', read['gradInput']))}
    place, read = positions(a.inner())
    pixels, outputs = (-a.p, a.L), (0, a.o)   # (offset from the window's start, count)
    kinds = (('input', place['input'], pixels), ('gradOutput', place['gradOutput'], outputs),
             ('output', read['output'], outputs), ('gradInput', read['gradInput'], pixels))
    result = {}
    for kind, inner, (offset, count) in kinds:
        blocks = []
        for t in range(a.tiles):
            index = t * a.tile + offset + np.arange(len(inner))
            kept = (index >= 0) & (index < count)
            blocks.append((index[kept], np.asarray(inner)[kept]))
        result[kind] = (count, blocks)
    return result


def tile_matrix(maps, build, N, axis):
    """``build(positions, N)`` of each tile of ``maps`` (``(count, blocks)``, see
    ``tile_positions``), the tiles' matrices side by side and their samples at their indices
    along ``axis`` of the result (``count`` long there); samples in two tiles sum their rows
    (the overlap-add). For one tile holding all samples in order, ``build`` itself."""
    size, blocks = maps
    parts = [build(p, N) for _, p in blocks]
    parts = parts if axis == 0 else [m.T for m in parts]
    width = parts[0].shape[1]
    full = np.zeros((size, len(parts) * width), parts[0].dtype)
    for t, ((index, _), m) in enumerate(zip(blocks, parts)):
        full[index, t * width:(t + 1) * width] += m   # indices are distinct within a tile
    return full if axis == 0 else full.T


def forward_matrix(positions, N):
    """Complex DFT of samples at ``positions``: ``(N, len(positions))``."""
    return np.exp(-2j * np.pi * np.outer(np.arange(N), positions) / N)


def inverse_matrix(positions, N):
    """Inverse DFT read at ``positions``: ``(len(positions), N)``, with the 1/N."""
    return np.exp(2j * np.pi * np.outer(positions, np.arange(N)) / N) / N


def half_inverse_matrix(positions, N):
    """Inverse real DFT from the N//2+1 half spectrum, read at ``positions``: the real part of
    ``(len(positions), Q)`` @ half spectrum. Bins other than 0 and N/2 stand for their
    conjugate twins too, hence the weight 2."""
    Q = N // 2 + 1
    weight = np.full(Q, 2.0)
    weight[0] = 1
    if N % 2 == 0:
        weight[-1] = 1
    return inverse_matrix(positions, N)[:, :Q] * weight


def _interleave(a):
    """A complex ``(m, n)`` matrix as a real ``(m, 2n)`` one, columns (re, im) in turn."""
    return np.stack([a.real, a.imag], axis=-1).reshape(a.shape[0], -1)


def real_forward_matrix(positions, N):
    """Real samples at ``positions`` to the half spectrum, as a real matrix whose output
    columns interleave (re, im): ``(len(positions), 2*Q)``."""
    return _interleave(forward_matrix(positions, N)[:N // 2 + 1].T)


def real_inverse_matrix(positions, N):
    """Half spectrum, interleaved (re, im), to real values at ``positions``: ``(2*Q, len)``,
    since Re(c u) = Re(c) Re(u) - Im(c) Im(u)."""
    return _interleave(half_inverse_matrix(positions, N).conj()).T
