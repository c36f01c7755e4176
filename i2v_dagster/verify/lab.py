"""sRGB <-> CIE L*a*b* (D65 white, 2 degree observer) in numpy.

sRGB is linearised with the IEC 61966-2-1 curve, taken to XYZ with the sRGB/D65 matrix, then to Lab
relative to the D65 white (0.95047, 1.0, 1.08883). White is L=100, black L=0, pure red about
(53.24, 80.09, 67.20).
"""

from __future__ import annotations

import numpy as np

RGB_TO_XYZ = np.array(
    [
        [0.4124564, 0.3575761, 0.1804375],
        [0.2126729, 0.7151522, 0.0721750],
        [0.0193339, 0.1191920, 0.9503041],
    ],
    dtype=np.float64,
)
XYZ_TO_RGB = np.linalg.inv(RGB_TO_XYZ)
WHITE_D65 = np.array([0.95047, 1.0, 1.08883], dtype=np.float64)

_DELTA = 6.0 / 29.0
_LINEAR_SLOPE = 1.0 / (3.0 * _DELTA**2)

# Matrices acting on planar (3, N) data, with the white point folded in.
_FWD = np.ascontiguousarray(RGB_TO_XYZ / WHITE_D65[:, None], dtype=np.float32)
_INV = np.ascontiguousarray(XYZ_TO_RGB * WHITE_D65[None, :], dtype=np.float32)


def srgb_to_linear(values: np.ndarray) -> np.ndarray:
    """sRGB in [0, 1] to linear light (float32)."""
    v = np.asarray(values, dtype=np.float32)
    return np.where(v <= 0.04045, v / 12.92, ((v + 0.055) / 1.055) ** 2.4).astype(np.float32)


def linear_to_srgb(values: np.ndarray) -> np.ndarray:
    """Linear light to sRGB in [0, 1] (float32; input clipped to [0, 1])."""
    v = np.clip(np.asarray(values, dtype=np.float32), 0.0, 1.0)
    return np.where(v <= 0.0031308, v * 12.92, 1.055 * v ** (1 / 2.4) - 0.055).astype(np.float32)


# Lookup tables for uint8 input and output.
_U8_TO_LINEAR = srgb_to_linear(np.arange(256, dtype=np.float32) / 255.0)
_LINEAR_LUT_SIZE = 1 << 16
_LINEAR_TO_U8 = np.rint(
    linear_to_srgb(np.arange(_LINEAR_LUT_SIZE, dtype=np.float32) / (_LINEAR_LUT_SIZE - 1)) * 255.0
).astype(np.uint8)


def _f(t: np.ndarray) -> np.ndarray:
    out = np.cbrt(t)
    low = t <= _DELTA**3
    if low.any():
        out[low] = t[low] * _LINEAR_SLOPE + 4.0 / 29.0
    return out


def _f_inv(t: np.ndarray) -> np.ndarray:
    out = t * t * t
    low = t <= _DELTA
    if low.any():
        out[low] = (t[low] - 4.0 / 29.0) / _LINEAR_SLOPE
    return out


def lab_planes(rgb_planes: np.ndarray) -> np.ndarray:
    """Lab of planar sRGB (3, N): uint8 levels or floats in [0, 1]; returns float32 (3, N).

    Planar layout keeps the 3x3 product fast (an (N, 3) @ (3, 3) matmul is many times slower here).
    """
    linear = _U8_TO_LINEAR[rgb_planes] if rgb_planes.dtype == np.uint8 else srgb_to_linear(rgb_planes)
    f = _f(np.einsum("ij,jn->in", _FWD, linear))
    lab = np.empty_like(f)
    np.multiply(f[1], 116.0, out=lab[0])
    lab[0] -= 16.0
    np.subtract(f[0], f[1], out=lab[1])
    lab[1] *= 500.0
    np.subtract(f[1], f[2], out=lab[2])
    lab[2] *= 200.0
    return lab


def linear_planes(lab: np.ndarray) -> np.ndarray:
    """Linear-light RGB planes (3, N), float32 and not clipped, of Lab planes (3, N)."""
    lab = np.asarray(lab, dtype=np.float32)
    f = np.empty_like(lab)
    np.add(lab[0], 16.0, out=f[1])
    f[1] /= 116.0
    np.add(f[1], lab[1] / 500.0, out=f[0])
    np.subtract(f[1], lab[2] / 200.0, out=f[2])
    return np.einsum("ij,jn->in", _INV, _f_inv(f))


def srgb_u8_planes(lab: np.ndarray) -> np.ndarray:
    """uint8 sRGB planes (3, N) of Lab planes (3, N); out-of-gamut colours are clipped."""
    linear = linear_planes(lab)
    np.clip(linear, 0.0, 1.0, out=linear)
    linear *= _LINEAR_LUT_SIZE - 1
    linear += 0.5
    return _LINEAR_TO_U8[linear.astype(np.int32)]


def _to_planes(values: np.ndarray) -> tuple[np.ndarray, tuple[int, ...]]:
    arr = np.asarray(values)
    if arr.shape[-1] != 3:
        raise ValueError(f"colour data must end in 3 channels but has shape {arr.shape}.")
    return np.ascontiguousarray(arr.reshape(-1, 3).T), arr.shape


def srgb_to_lab(rgb: np.ndarray) -> np.ndarray:
    """Lab (float32, shape (..., 3)) of sRGB ``rgb``: uint8 levels 0..255, or floats in [0, 1]."""
    planes, shape = _to_planes(rgb)
    return lab_planes(planes).T.reshape(shape)


def lab_to_linear(lab: np.ndarray) -> np.ndarray:
    """Linear-light RGB (float32, (..., 3), not clipped) of Lab ``lab``."""
    planes, shape = _to_planes(lab)
    return linear_planes(planes.astype(np.float32)).T.reshape(shape)


def lab_to_srgb_u8(lab: np.ndarray) -> np.ndarray:
    """uint8 sRGB (..., 3) of Lab ``lab`` (out-of-gamut colours clipped)."""
    planes, shape = _to_planes(lab)
    return srgb_u8_planes(planes.astype(np.float32)).T.reshape(shape)
