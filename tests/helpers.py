"""Independent float64 references for the tests: written from the definitions, sharing no
code with minifft's layers."""
import numpy as np

from minifft import backend


def rel_err(a, b):
    a, b = backend.asnumpy(a), backend.asnumpy(b)
    wide = np.result_type(a, b, np.float64)  # complex spectra keep their imaginary parts
    a, b = a.astype(wide), b.astype(wide)
    assert a.shape == b.shape, (a.shape, b.shape)
    scale = np.linalg.norm(b)
    # an exactly-zero reference (an output made only of padding) is compared absolutely
    return np.linalg.norm(a - b) / (scale if scale > 0 else 1.0)


def _zero_padded(x, pad):
    pH, pW = pad
    S, f, H, W = x.shape
    out = np.zeros((S, f, H + 2 * pH, W + 2 * pW))
    out[:, :, pH:pH + H, pW:pW + W] = x
    return out


def conv_reference(x, w, b, d=(1, 1), pad=(0, 0)):
    """Torch's cross-correlation, tap by tap, in float64: returns the output."""
    x, w = np.asarray(x, np.float64), np.asarray(w, np.float64)
    dH, dW = d
    pH, pW = pad
    S, f, H, W = x.shape
    fo, _, kH, kW = w.shape
    xp_ = _zero_padded(x, pad)
    oH = (H + 2 * pH - kH) // dH + 1
    oW = (W + 2 * pW - kW) // dW + 1
    out = np.zeros((S, fo, oH, oW))
    for y in range(oH):
        for z in range(oW):
            patch = xp_[:, :, y * dH:y * dH + kH, z * dW:z * dW + kW]
            out[:, :, y, z] = np.einsum('sfuv,ofuv->so', patch, w)
    if b is not None:
        out += np.asarray(b, np.float64).reshape(1, -1, 1, 1)
    return out


def conv_grads_reference(x, w, go, d=(1, 1), pad=(0, 0)):
    """gradInput, gradWeight, gradBias of the cross-correlation, by the same loops."""
    x, w, go = (np.asarray(a, np.float64) for a in (x, w, go))
    dH, dW = d
    pH, pW = pad
    S, f, H, W = x.shape
    fo, _, kH, kW = w.shape
    xp_ = _zero_padded(x, pad)
    gxp = np.zeros_like(xp_)
    gw = np.zeros_like(w)
    for y in range(go.shape[2]):
        for z in range(go.shape[3]):
            patch = xp_[:, :, y * dH:y * dH + kH, z * dW:z * dW + kW]
            g = go[:, :, y, z]
            gw += np.einsum('so,sfuv->ofuv', g, patch)
            gxp[:, :, y * dH:y * dH + kH, z * dW:z * dW + kW] += np.einsum('so,ofuv->sfuv', g, w)
    return gxp[:, :, pH:pH + H, pW:pW + W], gw, go.sum(axis=(0, 2, 3))


def pool_reference(x, k, d, pad, ceil_mode, op, count_include_pad=True):
    """Max or average pooling by explicit windows, with Torch's output-size rule."""
    x = np.asarray(x, np.float64)
    (kH, kW), (dH, dW), (pH, pW) = k, d, pad
    S, C, H, W = x.shape

    def size(n, kk, dd, pp):
        o = (np.ceil if ceil_mode else np.floor)((n + 2 * pp - kk) / dd) + 1
        if ceil_mode and (o - 1) * dd >= n + pp:
            o -= 1
        return int(o)

    oH, oW = size(H, kH, dH, pH), size(W, kW, dW, pW)
    out = np.zeros((S, C, oH, oW))
    for y in range(oH):
        for z in range(oW):
            h0, w0 = y * dH - pH, z * dW - pW
            h1, w1 = min(h0 + kH, H + pH), min(w0 + kW, W + pW)
            hs, ws = max(h0, 0), max(w0, 0)
            he, we = min(h1, H), min(w1, W)
            win = x[:, :, hs:he, ws:we]
            if op == 'max':
                out[:, :, y, z] = win.max(axis=(2, 3))
            else:
                div = (h1 - h0) * (w1 - w0) if count_include_pad else (he - hs) * (we - ws)
                out[:, :, y, z] = win.sum(axis=(2, 3)) / div
    return out
