"""Weight-free per-frame metrics: SSIM, MS-SSIM, PSNR and L1 (INTERnet paper "Intrinsic Temporal Regularization for High-resolution Human Video Synthesis", Table 2,
BDMM Table 1, D2G-Net Table 1).

Every function takes two frame stacks of the same shape (..., H, W, C) (uint8 in [0, 255], or
float on the same scale with `data_range`) and returns one value per frame, shape (...,).
Arithmetic is float64, one frame at a time (OpenCV filtering, numpy arithmetic).

* `ssim`: Wang, Bovik, Sheikh & Simoncelli (2004), Eq. 13 with the 11x11 Gaussian window of
  sigma 1.5, K1 = 0.01, K2 = 0.03, L = data_range, population (co)variances. The window only visits
  positions where it lies wholly inside the image ("valid" filtering) and the SSIM map is averaged
  over those positions and over channels: numerically what
  `skimage.metrics.structural_similarity(a, b, channel_axis=-1, data_range=255,
  gaussian_weights=True, sigma=1.5, use_sample_covariance=False)` computes (it filters with
  reflect padding and then crops the 5-pixel border the padding touched). Frames must be at
  least 11x11.
* `ms_ssim`: Wang, Simoncelli & Bovik (2003), Eq. 7:
  MS-SSIM = [l_M]^a_M prod_{j=1..M} [c_j s_j]^b_j with M = 5 scales and exponents
  (0.0448, 0.2856, 0.3001, 0.2363, 0.1333) (a_M = b_M). At every scale the contrast-structure term
  c_j s_j = (2 s_xy + C2) / (s_x^2 + s_y^2 + C2) is the mean over the valid window positions of
  the same Gaussian-windowed statistics as `ssim`; at the coarsest scale the full SSIM is used.
  Between scales the image is halved by 2x2 average pooling; an odd height or width first drops
  its last row/column (edge handling). Negative per-scale means are clamped to 0 before the
  fractional powers (as TensorFlow's `ssim_multiscale` does), so a value is never NaN. Computed
  per channel, then averaged over channels. Every scale must hold the 11x11 window, so frames
  must be at least 11 * 2^4 = 176 pixels on each side (`MS_SSIM_MIN_SIZE`); smaller frames raise
  ValueError (callers report MS-SSIM as not computed rather than change the definition).
* `psnr`: 10 log10(L^2 / MSE) over all pixels and channels of a frame, as
  `skimage.metrics.peak_signal_noise_ratio(a, b, data_range=255)`; identical frames give +inf.
* `l1`: mean |a - b| over pixels and channels on [0, 1] images (FOMM's reconstruction L1).

Region-restricted versions take a (..., H, W) bool mask and give NaN for a frame whose mask is
empty (the callers average over the frames that have one):
* `masked_l1`: mean |a - b| / L over the masked pixels and all channels.
* `masked_psnr`: 10 log10(L^2 / MSE), the MSE over the masked pixels and all channels.
* `masked_ssim`: the mean of `ssim`'s local SSIM map (channels averaged) over the window
  positions whose centre pixel is masked; only "valid" positions exist (centres at least 5 px
  from the border), and a window centred near the mask's edge also sees the 5 px around it.
  An all-True mask gives `ssim` (to rounding).
"""

from __future__ import annotations

import cv2
import numpy as np

WINDOW_SIZE = 11
WINDOW_SIGMA = 1.5
K1 = 0.01
K2 = 0.03
MS_SSIM_WEIGHTS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)
MS_SSIM_MIN_SIZE = WINDOW_SIZE * 2 ** (len(MS_SSIM_WEIGHTS) - 1)


def _gaussian_window() -> np.ndarray:
  # scipy.ndimage's kernel for sigma 1.5, truncate 3.5 (radius 5): exp(-x^2 / 2 sigma^2) / sum.
  radius = WINDOW_SIZE // 2
  x = np.arange(-radius, radius + 1, dtype=np.float64)
  weights = np.exp(-0.5 * (x / WINDOW_SIGMA) ** 2)
  return weights / weights.sum()


_WINDOW = _gaussian_window()


def _check_pair(a, b, name: str) -> tuple[np.ndarray, np.ndarray]:
  a = np.asarray(a)
  b = np.asarray(b)
  if a.shape != b.shape:
    raise ValueError(f"{name}: frame shapes differ: {a.shape} vs {b.shape}")
  if a.ndim < 3:
    raise ValueError(f"{name}: expected (..., H, W, C) frames, got shape {a.shape}")
  return a, b


def _filter_valid(image: np.ndarray) -> np.ndarray:
  """Separable Gaussian filtering of one (H, W, C) image, keeping only the positions where the
  window lies inside the image: (H - 10, W - 10, C)."""
  # OpenCV's separable filter is ~20x faster than numpy shifts; the reflect padding it reads is
  # cropped away, so the result is exactly the "valid" filtering.
  pad = WINDOW_SIZE // 2
  filtered = cv2.sepFilter2D(image, -1, _WINDOW, _WINDOW, borderType=cv2.BORDER_REFLECT)
  return filtered.reshape(image.shape)[pad:-pad, pad:-pad]


def _ssim_maps(x: np.ndarray, y: np.ndarray, data_range: float) -> tuple[np.ndarray, np.ndarray]:
  """The SSIM map and the contrast-structure map at the valid positions.

  x, y: float64 (H, W, C). Returns two (H - 10, W - 10, C) arrays.
  """
  # One frame at a time: a 512^2 frame's temporaries stay in cache, ~2x faster than whole stacks.
  c1 = (K1 * data_range) ** 2
  c2 = (K2 * data_range) ** 2
  mu_x = _filter_valid(x)
  mu_y = _filter_valid(y)
  mu_xx = mu_x * mu_x
  mu_yy = mu_y * mu_y
  mu_xy = mu_x * mu_y
  var_sum = _filter_valid(x * x) + _filter_valid(y * y) - mu_xx - mu_yy
  cov2 = 2.0 * (_filter_valid(x * y) - mu_xy)
  cs = (cov2 + c2) / (var_sum + c2)
  luminance = (2.0 * mu_xy + c1) / (mu_xx + mu_yy + c1)
  return luminance * cs, cs


def _ssim_terms(x: np.ndarray, y: np.ndarray, data_range: float) -> tuple[np.ndarray, np.ndarray]:
  """Per-channel means over valid positions of the SSIM map and the contrast-structure map.

  x, y: float64 (H, W, C). Returns two (C,) arrays.
  """
  full, cs = _ssim_maps(x, y, data_range)
  return full.mean(axis=(0, 1)), cs.mean(axis=(0, 1))


def _flatten(a: np.ndarray) -> tuple[np.ndarray, tuple[int, ...]]:
  # Frames stay in their dtype; each is cast to float64 when it is processed.
  return a.reshape((-1,) + a.shape[-3:]), a.shape[:-3]


def ssim(a, b, data_range: float = 255.0) -> np.ndarray:
  """Per-frame SSIM (Wang et al. 2004, Gaussian 11x11 window, sigma 1.5); see the module docstring.

  Args:
    a, b: (..., H, W, C) frames, H and W >= 11.
    data_range: L, the dynamic range of the values (255 for uint8).
  Returns:
    float64 (...,) in [-1, 1]; 1 for identical frames.
  """
  a, b = _check_pair(a, b, "ssim")
  if min(a.shape[-3:-1]) < WINDOW_SIZE:
    raise ValueError(f"ssim: frames {a.shape[-2]}x{a.shape[-3]} are smaller than the "
                     f"{WINDOW_SIZE}x{WINDOW_SIZE} window")
  x, lead = _flatten(a)
  y, _ = _flatten(b)
  values = [_ssim_terms(xi.astype(np.float64), yi.astype(np.float64), data_range)[0].mean()
            for xi, yi in zip(x, y)]
  return np.asarray(values, np.float64).reshape(lead)


def _halve(x: np.ndarray) -> np.ndarray:
  """2x2 average pooling of (H, W, C); an odd last row/column is dropped first."""
  height, width = x.shape[0] // 2 * 2, x.shape[1] // 2 * 2
  x = x[:height, :width]
  return 0.25 * (x[0::2, 0::2] + x[1::2, 0::2] + x[0::2, 1::2] + x[1::2, 1::2])


def ms_ssim(a, b, data_range: float = 255.0) -> np.ndarray:
  """Per-frame MS-SSIM (Wang et al. 2003, 5 scales); see the module docstring.

  Args:
    a, b: (..., H, W, C) frames, H and W >= MS_SSIM_MIN_SIZE (176).
    data_range: L, the dynamic range of the values (255 for uint8).
  Returns:
    float64 (...,) in [0, 1]; 1 for identical frames.
  """
  a, b = _check_pair(a, b, "ms_ssim")
  if min(a.shape[-3:-1]) < MS_SSIM_MIN_SIZE:
    raise ValueError(f"frames {a.shape[-2]}x{a.shape[-3]} are smaller than the "
                     f"{MS_SSIM_MIN_SIZE}x{MS_SSIM_MIN_SIZE} MS-SSIM needs (5 scales of an "
                     f"{WINDOW_SIZE}x{WINDOW_SIZE} window)")
  frames_a, lead = _flatten(a)
  frames_b, _ = _flatten(b)
  weights = np.asarray(MS_SSIM_WEIGHTS)
  out = np.empty(len(frames_a), np.float64)
  for i, (x, y) in enumerate(zip(frames_a, frames_b)):
    x = x.astype(np.float64)
    y = y.astype(np.float64)
    values = []
    for scale in range(len(weights)):
      full, cs = _ssim_terms(x, y, data_range)
      last = scale == len(weights) - 1
      values.append(full if last else cs)
      if not last:
        x, y = _halve(x), _halve(y)
    stacked = np.maximum(np.stack(values), 0.0)  # (scales, C)
    out[i] = np.prod(stacked ** weights[:, None], axis=0).mean()
  return out.reshape(lead)


def psnr(a, b, data_range: float = 255.0) -> np.ndarray:
  """Per-frame PSNR in dB, 10 log10(L^2 / MSE); +inf where the frames are identical."""
  a, b = _check_pair(a, b, "psnr")
  diff = a.astype(np.float64) - b.astype(np.float64)
  mse = np.mean(diff * diff, axis=(-3, -2, -1))
  with np.errstate(divide="ignore"):
    return 10.0 * np.log10(data_range ** 2 / mse)


def l1(a, b, data_range: float = 255.0) -> np.ndarray:
  """Per-frame mean absolute difference on [0, 1] images (FOMM's reconstruction L1)."""
  a, b = _check_pair(a, b, "l1")
  diff = np.abs(a.astype(np.float64) - b.astype(np.float64))
  return np.mean(diff, axis=(-3, -2, -1)) / data_range


def _check_mask(a: np.ndarray, mask, name: str) -> np.ndarray:
  mask = np.asarray(mask)
  if mask.dtype != bool or mask.shape != a.shape[:-1]:
    raise ValueError(f"{name}: expected a bool mask of shape {a.shape[:-1]}, got {mask.dtype} "
                     f"{mask.shape}")
  return mask


def masked_l1(a, b, mask, data_range: float = 255.0) -> np.ndarray:
  """Per-frame mean |a - b| / data_range over the masked pixels (all channels); NaN if none."""
  a, b = _check_pair(a, b, "masked_l1")
  mask = _check_mask(a, mask, "masked_l1")
  diff = np.abs(a.astype(np.float64) - b.astype(np.float64)).sum(axis=-1)
  count = mask.sum(axis=(-2, -1)) * a.shape[-1]
  with np.errstate(invalid="ignore", divide="ignore"):
    return np.where(mask, diff, 0.0).sum(axis=(-2, -1)) / count / data_range


def masked_psnr(a, b, mask, data_range: float = 255.0) -> np.ndarray:
  """Per-frame PSNR in dB over the masked pixels (all channels); +inf where they are identical,
  NaN for an empty mask."""
  a, b = _check_pair(a, b, "masked_psnr")
  mask = _check_mask(a, mask, "masked_psnr")
  diff = a.astype(np.float64) - b.astype(np.float64)
  count = mask.sum(axis=(-2, -1)) * a.shape[-1]
  with np.errstate(invalid="ignore", divide="ignore"):
    mse = np.where(mask, (diff * diff).sum(axis=-1), 0.0).sum(axis=(-2, -1)) / count
    return np.where(count > 0, 10.0 * np.log10(data_range ** 2 / mse), np.nan)


def masked_ssim(a, b, mask, data_range: float = 255.0) -> np.ndarray:
  """Per-frame mean of the SSIM map over the valid window positions whose centre is masked (the
  module docstring); NaN where no such position exists."""
  a, b = _check_pair(a, b, "masked_ssim")
  mask = _check_mask(a, mask, "masked_ssim")
  if min(a.shape[-3:-1]) < WINDOW_SIZE:
    raise ValueError(f"masked_ssim: frames {a.shape[-2]}x{a.shape[-3]} are smaller than the "
                     f"{WINDOW_SIZE}x{WINDOW_SIZE} window")
  x, lead = _flatten(a)
  y, _ = _flatten(b)
  masks = mask.reshape((-1,) + mask.shape[-2:])
  pad = WINDOW_SIZE // 2
  values = []
  for xi, yi, mi in zip(x, y, masks):
    centres = mi[pad:-pad, pad:-pad]
    if not centres.any():
      values.append(np.nan)
      continue
    full, _ = _ssim_maps(xi.astype(np.float64), yi.astype(np.float64), data_range)
    values.append(full.mean(axis=-1)[centres].mean())
  return np.asarray(values, np.float64).reshape(lead)
