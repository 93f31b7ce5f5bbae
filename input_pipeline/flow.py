"""On-the-fly optical flow and the Sundaram et al. [27] confidence mask (paper Sec. 3.1, Eqs. 2-3).

Direction: `compute_flow(a, b)` gives, for each pixel p of frame a, its displacement
into frame b, so that `a(p) ~ b(p + flow(p))`. In the pipeline, a = I_{t-1} and b = I_t, so
`f_t(O_t)(p) = O_t(p + f_t(p))` lies on frame t-1's grid and is compared with I_{t-1} (Eq. 2).

Everything here is numpy/OpenCV only (no jax): it runs inside grain worker processes, whose start-up
time an import of jax would add to.
"""

from __future__ import annotations

import threading

import cv2
import numpy as np

# The DIS presets by name (config.data.flow_preset, evaluate --flow_preset).
PRESETS = {
    "ultrafast": cv2.DISOPTICAL_FLOW_PRESET_ULTRAFAST,
    "fast": cv2.DISOPTICAL_FLOW_PRESET_FAST,
    "medium": cv2.DISOPTICAL_FLOW_PRESET_MEDIUM,
}

# DIS objects keep internal buffers and are not thread-safe; grain reads with a thread pool, so
# each thread keeps its own instance per preset.
_LOCAL = threading.local()


def _dis(preset: str):
  cache = getattr(_LOCAL, "dis", None)
  if cache is None:
    cache = _LOCAL.dis = {}
  if preset not in cache:
    if preset not in PRESETS:
      raise ValueError(f"unknown DIS preset {preset!r}; expected one of {sorted(PRESETS)}")
    cache[preset] = cv2.DISOpticalFlow_create(PRESETS[preset])
  return cache[preset]


def _to_gray_uint8(frame: np.ndarray) -> np.ndarray:
  if frame.dtype != np.uint8:
    raise ValueError(f"compute_flow expects uint8 frames, got {frame.dtype}")
  if frame.ndim == 2:
    return np.ascontiguousarray(frame)
  if frame.ndim == 3 and frame.shape[-1] == 3:
    return cv2.cvtColor(np.ascontiguousarray(frame), cv2.COLOR_RGB2GRAY)
  raise ValueError(f"compute_flow expects (H, W) or (H, W, 3) frames, got {frame.shape}")


def compute_flow(frame_a: np.ndarray, frame_b: np.ndarray, preset: str = "medium") -> np.ndarray:
  """Dense optical flow from frame_a to frame_b with OpenCV DIS on grayscale.

  Args:
    frame_a, frame_b: uint8 (H, W, 3) RGB (or (H, W) grayscale) frames of the same size.
    preset: DIS preset, "ultrafast" | "fast" | "medium".
  Returns:
    float32 (H, W, 2) pixel displacements (dx, dy) on frame_a's grid: pixel p of frame_a moves to
    p + flow(p) in frame_b.
  """
  gray_a = _to_gray_uint8(frame_a)
  gray_b = _to_gray_uint8(frame_b)
  if gray_a.shape != gray_b.shape:
    raise ValueError(f"frame shapes differ: {frame_a.shape} vs {frame_b.shape}")
  flow = _dis(preset).calc(gray_a, gray_b, None)
  return np.asarray(flow, np.float32)


def pixel_to_normalized_flow(flow_px: np.ndarray, height: int, width: int) -> np.ndarray:
  """numpy twin of `internet_jax.geometry.pixel_to_normalized_flow` (align-corners units).

  Kept here so that worker processes need not import jax; tests check both agree.
  """
  scale = np.array([2.0 / max(width - 1, 1), 2.0 / max(height - 1, 1)], np.float32)
  return (flow_px * scale).astype(np.float32)


def sample_bilinear(field: np.ndarray, coords: np.ndarray) -> np.ndarray:
  """Bilinear sample of an (H, W, C) field at float32 pixel coordinates (Ho, Wo, 2) (x, y).

  Samples outside the image are edge-clamped (cv2.remap, BORDER_REPLICATE).
  """
  return cv2.remap(np.asarray(field, np.float32), np.asarray(coords, np.float32), None,
                   interpolation=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def _pixel_grid(height: int, width: int) -> np.ndarray:
  cache = getattr(_LOCAL, "grids", None)
  if cache is None:
    cache = _LOCAL.grids = {}
  if (height, width) not in cache:
    xs, ys = np.meshgrid(np.arange(width, dtype=np.float32), np.arange(height, dtype=np.float32))
    grid = np.stack([xs, ys], axis=-1)
    grid.flags.writeable = False
    cache[(height, width)] = grid
  return cache[(height, width)]


def _sum_of_squares(a: np.ndarray, b: np.ndarray) -> np.ndarray:
  """a*a + b*b with one allocation (fresh large arrays cost page faults; see below)."""
  out = a * a
  out += b * b
  return out


def sundaram_confidence(forward: np.ndarray, backward: np.ndarray, *, fb_alpha: float = 0.01,
                        fb_beta: float = 0.5, mb_alpha: float = 0.01,
                        mb_beta: float = 0.002) -> np.ndarray:
  """Sundaram, Brox & Keutzer (ECCV 2010) reliability mask, the extrinsic M_t of Eq. 3.

  Both tests use pixel units and the published constants. With w = forward(p) and
  w_hat = backward(p + w) (bilinear), a pixel p is unreliable if
    * the forward-backward check fails (occlusion):
        |w + w_hat|^2 > fb_alpha (|w|^2 + |w_hat|^2) + fb_beta
    * it lies on a motion boundary:  |grad u|^2 + |grad v|^2 > mb_alpha |w|^2 + mb_beta,
      where (u, v) = `forward`, the flow that lives on the mask's grid (central differences,
      replicated border);
    * or p + w leaves frame_b (outside the first/last pixel centres: no correspondence to check,
      and the zero-padded warp of Eq. 2 reads 0 there).

  Args:
    forward: float32 (H, W, 2) pixel flow frame_a -> frame_b, on frame_a's grid.
    backward: float32 (H, W, 2) pixel flow frame_b -> frame_a, on frame_b's grid.
    fb_alpha, fb_beta: forward-backward constants (Sundaram et al.: 0.01, 0.5 px^2).
    mb_alpha, mb_beta: motion-boundary constants (Sundaram et al.: 0.01, 0.002).
  Returns:
    float32 (H, W) in {0, 1}, on frame_a's grid (1 = reliable).
  """
  # Written with OpenCV calls and in-place numpy: at 512^2 every fresh temporary costs about as
  # much in page faults as the arithmetic it holds.
  forward = np.ascontiguousarray(forward, np.float32)
  height, width = forward.shape[:2]
  target = forward + _pixel_grid(height, width)  # p + w
  inside = cv2.inRange(target, (0.0, 0.0), (width - 1.0, height - 1.0)) > 0
  backward_at_target = sample_bilinear(backward, target)  # w_hat(p + w)

  u, v = cv2.split(forward)
  bu, bv = cv2.split(backward_at_target)
  forward_sq = _sum_of_squares(u, v)
  threshold = _sum_of_squares(bu, bv)
  threshold += forward_sq
  threshold *= fb_alpha
  threshold += fb_beta
  bu += u  # bu, bv now hold the round trip w + w_hat
  bv += v
  fb_ok = _sum_of_squares(bu, bv) <= threshold

  d_dx = cv2.Sobel(forward, cv2.CV_32F, 1, 0, ksize=1, scale=0.5, borderType=cv2.BORDER_REPLICATE)
  d_dy = cv2.Sobel(forward, cv2.CV_32F, 0, 1, ksize=1, scale=0.5, borderType=cv2.BORDER_REPLICATE)
  d_dx *= d_dx
  d_dy *= d_dy
  d_dx += d_dy
  grad_u, grad_v = cv2.split(d_dx)
  grad_u += grad_v  # |grad u|^2 + |grad v|^2
  forward_sq *= mb_alpha
  forward_sq += mb_beta
  mb_ok = grad_u <= forward_sq

  inside &= fb_ok
  inside &= mb_ok
  return inside.astype(np.float32)
