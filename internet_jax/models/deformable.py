"""Modulated deformable convolution (DCNv2) and its style-modulated form, as pure JAX functions.

`deform_conv2d` follows the semantics of torchvision.ops.deform_conv2d (pytorch/vision:
torchvision/csrc/ops/cpu/deform_conv2d_kernel.cpp) with one offset group, in this project's NHWC
layout:

* x (N, H, W, C); offsets (N, Ho, Wo, 2 K) with K = kh kw; mask (N, Ho, Wo, K); weight
  (kh, kw, C, O) (HWIO, as flax and lax); optional bias (O,).
* Tap k = i kw + j (kernel row i, column j) reads offset channels 2k (dy) and 2k + 1 (dx). At
  output (y, x) it samples the input at the *pixel* position
  (y stride - pad + i dil + dy, x stride - pad + j dil + dx).
* Bilinear sampling with zeros outside: each of the 4 corners contributes only if it lies inside
  the image, and the whole sample is 0 when y <= -1, y >= H, x <= -1 or x >= W.
* out[n, y, x, o] = sum_{k, c} weight[k, c, o] mask[n, y, x, k] sample_k(x[n, ..., c]) + bias[o].

`modulated_deform_conv` is the Deformable Motion Modulation (DMM) of "Bidirectionally Deformable
Motion Modulation for Video-based Human Pose Transfer" (Eq. 2-4): a deformable convolution whose
weight is modulated by a per-sample style vector and demodulated as in StyleGAN2. The per-sample
weight is never built: sampling is linear per channel, so the style scales the input channels and
the demodulation scales the output channels around one shared deformable convolution.

Implementation: the 4 bilinear corners are gathered from the flattened (N, H W, C) image, the
columns (N, Ho, Wo, K, C) are weighted by the mask and contracted with the weight in one matmul
(im2col). Sampling coordinates are computed in at least float32 whatever the input dtype.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

Dtype = Any
Precision = Any


def _output_size(size: int, kernel: int, stride: int, padding: int, dilation: int) -> int:
  """Spatial output size of a convolution (the formula torch and lax share)."""
  return (size + 2 * padding - dilation * (kernel - 1) - 1) // stride + 1


def _check_shapes(x: jax.Array, offsets: jax.Array, mask: jax.Array | None, weight: jax.Array,
                  bias: jax.Array | None, stride: int, padding: int,
                  dilation: int) -> tuple[int, int]:
  """(Ho, Wo), after one-line ValueErrors that name the offending argument."""
  if x.ndim != 4:
    raise ValueError(f"x must be (N, H, W, C), got shape {x.shape}")
  if weight.ndim != 4:
    raise ValueError(f"weight must be (kh, kw, C, O), got shape {weight.shape}")
  n, height, width, c = x.shape
  kh, kw, c_in, o = weight.shape
  taps = kh * kw
  out_size = (_output_size(height, kh, stride, padding, dilation),
              _output_size(width, kw, stride, padding, dilation))
  if min(out_size) < 1:
    raise ValueError(f"x spatial size {(height, width)} gives an empty output {out_size}")
  if c_in != c:
    raise ValueError(f"weight input channels {c_in} != x channels {c}")
  expected = (n, *out_size, 2 * taps)
  if offsets.ndim != 4 or offsets.shape[3] != 2 * taps:
    raise ValueError(f"offsets must have 2*kh*kw = {2 * taps} channels, got shape {offsets.shape}")
  if offsets.shape != expected:
    raise ValueError(f"offsets shape {offsets.shape} != expected (N, Ho, Wo, 2K) {expected}")
  if mask is not None:
    if mask.ndim != 4 or mask.shape[3] != taps:
      raise ValueError(f"mask must have kh*kw = {taps} channels, got shape {mask.shape}")
    if mask.shape != expected[:3] + (taps,):
      raise ValueError(f"mask shape {mask.shape} != expected (N, Ho, Wo, K) "
                       f"{expected[:3] + (taps,)}")
  if bias is not None and bias.shape != (o,):
    raise ValueError(f"bias shape {bias.shape} != ({o},)")
  return out_size


def _deformable_columns(x: jax.Array, offsets: jax.Array, kernel: tuple[int, int], stride: int,
                        padding: int, dilation: int, out_size: tuple[int, int]) -> jax.Array:
  """(N, Ho, Wo, K, C) bilinear samples of x at the deformed tap positions (no mask)."""
  n, height, width, channels = x.shape
  kh, kw = kernel
  ho, wo = out_size
  taps = kh * kw
  # Coordinates in at least float32: bfloat16 cannot even represent pixel indices above 256.
  coord_dtype = jnp.promote_types(offsets.dtype, jnp.float32)
  offsets = offsets.astype(coord_dtype).reshape(n, ho, wo, taps, 2)
  tap_i, tap_j = jnp.divmod(jnp.arange(taps), kw)  # tap k = i * kw + j
  base_y = (jnp.arange(ho)[:, None] * stride - padding + tap_i * dilation).astype(coord_dtype)
  base_x = (jnp.arange(wo)[:, None] * stride - padding + tap_j * dilation).astype(coord_dtype)
  py = base_y[None, :, None, :] + offsets[..., 0]  # (N, Ho, Wo, K)
  px = base_x[None, None, :, :] + offsets[..., 1]
  # torchvision zeroes the whole sample (value and coordinate gradient) outside (-1, H) x (-1, W).
  in_range = (py > -1) & (py < height) & (px > -1) & (px < width)
  y0 = jnp.floor(py)
  x0 = jnp.floor(px)
  ly = py - y0
  lx = px - x0
  y0 = y0.astype(jnp.int32)
  x0 = x0.astype(jnp.int32)

  indices, weights = [], []
  for dy, wy in ((0, 1 - ly), (1, ly)):
    for dx, wx in ((0, 1 - lx), (1, lx)):
      yc, xc = y0 + dy, x0 + dx
      inside = in_range & (yc >= 0) & (yc < height) & (xc >= 0) & (xc < width)
      # Corners outside keep a clipped (valid) index and get weight 0.
      indices.append(jnp.clip(yc, 0, height - 1) * width + jnp.clip(xc, 0, width - 1))
      weights.append(jnp.where(inside, wy * wx, 0))
  # One gather of all 4 corners: rows of C channels from the flattened image.
  index = jnp.stack(indices, axis=1).reshape(n, -1)  # (N, 4 Ho Wo K)
  flat = x.reshape(n, height * width, channels)
  corners = jax.vmap(lambda image, idx: image.at[idx].get(mode="promise_in_bounds"))(flat, index)
  corners = corners.reshape(n, 4, ho, wo, taps, channels)
  weight = jnp.stack(weights, axis=1)[..., None]  # (N, 4, Ho, Wo, K, 1)
  return jnp.sum(corners * weight.astype(jnp.promote_types(x.dtype, jnp.float32)), axis=1)


def deform_conv2d(x: jax.Array, offsets: jax.Array, mask: jax.Array | None, weight: jax.Array,
                  bias: jax.Array | None = None, *, stride: int = 1, padding: int = 0,
                  dilation: int = 1, dtype: Dtype | None = None,
                  precision: Precision = None) -> jax.Array:
  """Modulated deformable convolution v2 with torchvision.ops.deform_conv2d semantics (NHWC).

  Args:
    x: (N, H, W, C) input.
    offsets: (N, Ho, Wo, 2 kh kw) pixel offsets, channel 2k = dy and 2k + 1 = dx of tap
      k = i kw + j.
    mask: (N, Ho, Wo, kh kw) modulation scalars multiplying each sample, or None for all ones
      (DCNv1).
    weight: (kh, kw, C, O) kernel.
    bias: optional (O,) bias.
    stride, padding, dilation: ints applied to both spatial axes. `padding` defaults to 0 like
      torchvision (pass (k - 1) // 2 * dilation for a SAME-sized output at stride 1).
    dtype: dtype of the final matmul and the result; defaults to the promoted type of x and weight.
    precision: lax precision of the final matmul.

  Returns:
    (N, Ho, Wo, O) with Ho = (H + 2 padding - dilation (kh - 1) - 1) // stride + 1 (same for Wo).
  """
  out_size = _check_shapes(x, offsets, mask, weight, bias, stride, padding, dilation)
  kh, kw = weight.shape[:2]
  if dtype is None:
    dtype = jnp.result_type(x.dtype, weight.dtype)
  columns = _deformable_columns(x, offsets, (kh, kw), stride, padding, dilation, out_size)
  if mask is not None:
    columns = columns * mask.astype(columns.dtype)[..., None]
  kernel = weight.reshape(kh * kw, weight.shape[2], weight.shape[3]).astype(dtype)
  out = jnp.einsum("nhwkc,kco->nhwo", columns.astype(dtype), kernel, precision=precision)
  if bias is not None:
    out = out + bias.astype(dtype)
  return out


def modulated_deform_conv(x: jax.Array, offsets: jax.Array, mask: jax.Array | None,
                          weight: jax.Array, style: jax.Array, *, demodulate: bool = True,
                          stride: int = 1, padding: int = 1, dilation: int = 1, eps: float = 1e-8,
                          dtype: Dtype | None = None, precision: Precision = None) -> jax.Array:
  """Deformable Motion Modulation: `deform_conv2d` with a style-modulated, demodulated weight.

  The per-sample weight is W''[n, k, c, o] = d[n, o] s[n, c] W[k, c, o] with
  d[n, o] = 1 / sqrt(sum_{k, c} (s[n, c] W[k, c, o])^2 + eps) (d = 1 without demodulation), and
  the result equals d * deform_conv2d(s * x, W), which is how it is computed. No bias: add it
  after (StyleGAN2 adds bias and noise outside the modulated convolution).

  Args:
    x: (N, H, W, C) input; offsets, mask: as in `deform_conv2d`.
    weight: (kh, kw, C, O) shared kernel.
    style: (N, C) per-sample style scales (the A_j of the paper's Eq. 3).
    demodulate: divide each output channel by the norm of its modulated weight (Eq. 4).
    padding: defaults to 1, SAME-sized output for the 3x3, stride 1 kernels DMM uses.
  """
  if style.shape != (x.shape[0], x.shape[-1]):
    raise ValueError(f"style shape {style.shape} != (N, C) {(x.shape[0], x.shape[-1])}")
  out = deform_conv2d(x * style[:, None, None, :].astype(x.dtype), offsets, mask, weight,
                      stride=stride, padding=padding, dilation=dilation, dtype=dtype,
                      precision=precision)
  if not demodulate:
    return out
  # Demodulation statistics in at least float32: a sum of K C squares.
  stat_dtype = jnp.promote_types(jnp.result_type(style.dtype, weight.dtype), jnp.float32)
  weight_sq = jnp.sum(jnp.square(weight.astype(stat_dtype)), axis=(0, 1))  # (C, O)
  norm_sq = jnp.einsum("nc,co->no", jnp.square(style.astype(stat_dtype)), weight_sq,
                       precision=jax.lax.Precision.HIGHEST)
  return out * jax.lax.rsqrt(norm_sq + eps).astype(out.dtype)[:, None, None, :]
