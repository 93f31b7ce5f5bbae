"""StyleGAN2 layers (Flax Linen, NHWC) as the BDMM generator builds them.

Follows "Analyzing and Improving the Image Quality of StyleGAN" (Karras et al., StyleGAN2) and the
public PyTorch code it is built from: rocketappslab/BDMM, model/networks/ModulatedDCN.py, which
takes its layers from rosinality/stylegan2-pytorch, model.py (and op/fused_act.py,
op/upfirdn2d.py for the fused activation and the FIR filter).

Equalised learning rate: every weight is stored as a unit normal and scaled at run time by
1/sqrt(fan_in) (times `lr_mul` for EqualLinear), so all layers learn at the same speed under
Adam whatever their width.

Parameter layout, compared with the PyTorch state dict (NCHW there, NHWC here):
  conv weights    (k, k, in, out) HWIO   <- torch (out, in, k, k), or (1, out, in, k, k) for
                                            ModulatedConv2d
  linear weights  (in, out)              <- torch (out, in)
  biases          (out,)                 <- torch (out,) or (1, out, 1, 1)
Module and parameter names match the PyTorch attribute names (`conv`, `modulation`, `activate`,
`weight`, `bias`), so a checkpoint converts by transposition alone.

Every module takes `dtype`, the compute dtype, and keeps parameters in `param_dtype` (float32).
The style affine and the demodulation coefficients are always computed in float32: they are tiny,
and a low-precision sum of squares would bias the per-channel normalisation.
"""

from __future__ import annotations

import math
from typing import Any, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

Dtype = Any
PrecisionLike = Any

BLUR_KERNEL: tuple[int, ...] = (1, 3, 3, 1)
DEMODULATION_EPS = 1e-8
_DIMENSIONS = ("NHWC", "HWIO", "NHWC")


def make_kernel(taps: Sequence[float] | np.ndarray) -> np.ndarray:
  """A 2-D FIR kernel normalised to sum 1; a 1-D `taps` becomes its outer product (separable)."""
  kernel = np.asarray(taps, np.float64)
  if kernel.ndim == 1:
    kernel = np.outer(kernel, kernel)
  return kernel / kernel.sum()


def upfirdn2d(x: jax.Array, kernel: np.ndarray, *, up: int = 1, down: int = 1,
              pad: tuple[int, int] = (0, 0), precision: PrecisionLike = None) -> jax.Array:
  """Upsample by zero insertion, pad, FIR-filter and downsample (B, H, W, C), per channel.

  Same as upfirdn2d of rosinality/stylegan2-pytorch (op/upfirdn2d.py): each sample is followed
  by up - 1 zeros, then pad[0] zeros go on the top/left and pad[1] on the bottom/right of both
  axes, the result is *convolved* (kernel flipped) with `kernel` and every `down`-th sample is
  kept. Output size per axis: (size * up + pad[0] + pad[1] - kernel_size) // down + 1.
  """
  pad0, pad1 = pad
  if pad0 < 0 or pad1 < 0:
    raise ValueError(f"upfirdn2d: negative pads {pad} (cropping) are not supported")
  kernel = np.asarray(kernel)
  if kernel.ndim != 2:
    raise ValueError(f"upfirdn2d: the kernel must be 2-D, got shape {kernel.shape}")
  channels = x.shape[-1]
  # lax correlates, upfirdn2d convolves: flip the taps. One depthwise filter per channel.
  taps = jnp.asarray(np.ascontiguousarray(kernel[::-1, ::-1]), x.dtype)
  weight = jnp.tile(taps[:, :, None, None], (1, 1, 1, channels))
  # lhs dilation puts up - 1 zeros between samples; upfirdn2d also puts them after the last one.
  padding = [(pad0, pad1 + up - 1)] * 2
  return jax.lax.conv_general_dilated(
      x, weight, (down, down), padding, lhs_dilation=(up, up), dimension_numbers=_DIMENSIONS,
      feature_group_count=channels, precision=precision)


def blur(x: jax.Array, taps: Sequence[float] = BLUR_KERNEL, *, pad: tuple[int, int],
         upsample_factor: int = 1, precision: PrecisionLike = None) -> jax.Array:
  """StyleGAN2's Blur: FIR filter with `make_kernel(taps)`, times upsample_factor**2 when it
  follows a zero-inserting upsampling (which leaves only 1 / factor**2 of the samples non-zero)."""
  kernel = make_kernel(taps) * upsample_factor ** 2
  return upfirdn2d(x, kernel, pad=pad, precision=precision)


def upsample(x: jax.Array, taps: Sequence[float] = BLUR_KERNEL, factor: int = 2,
             precision: PrecisionLike = None) -> jax.Array:
  """StyleGAN2's Upsample: zero insertion + blur, (B, H, W, C) -> (B, factor H, factor W, C)."""
  kernel = make_kernel(taps) * factor ** 2
  p = kernel.shape[0] - factor
  return upfirdn2d(x, kernel, up=factor, pad=((p + 1) // 2 + factor - 1, p // 2),
                   precision=precision)


def conv_transpose_stride2(x: jax.Array, weight: jax.Array,
                           precision: PrecisionLike = None) -> jax.Array:
  """PyTorch's conv_transpose2d(x, w, stride=2, padding=0) with w stored HWIO (k, k, in, out).

  Every input pixel scatters its kernel-weighted copy into the output, out[n, 2i + a, 2j + b, o]
  += x[n, i, j, c] * w[a, b, c, o], so H -> 2 (H - 1) + k. Written as the equivalent
  correlation of the 2x-dilated input, fully padded, with the spatially flipped kernel.
  """
  kh, kw = weight.shape[:2]
  return jax.lax.conv_general_dilated(
      x, weight[::-1, ::-1], (1, 1), [(kh - 1, kh - 1), (kw - 1, kw - 1)], lhs_dilation=(2, 2),
      dimension_numbers=_DIMENSIONS, precision=precision)


def demodulation_coefficients(weight: jax.Array, style: jax.Array) -> jax.Array:
  """StyleGAN2 Eq. 3: d[n, o] = rsqrt(sum_{a, b, c} (weight[a, b, c, o] * style[n, c])^2 + eps).

  `weight` is the run-time-scaled HWIO weight (k, k, in, out), `style` the (N, in) modulation.
  The sum factorises as style^2 @ sum_ab weight^2, so per-sample weights are never built; it is
  done in float32 at full matmul precision.
  """
  energy = jnp.sum(jnp.square(weight.astype(jnp.float32)), axis=(0, 1))  # (in, out)
  total = jnp.matmul(jnp.square(style.astype(jnp.float32)), energy,
                     precision=jax.lax.Precision.HIGHEST)
  return jax.lax.rsqrt(total + DEMODULATION_EPS)


def fused_leaky_relu(x: jax.Array, bias: jax.Array, negative_slope: float = 0.2,
                     scale: float = math.sqrt(2.0)) -> jax.Array:
  """leaky_relu(x + bias, negative_slope) * scale; sqrt(2) keeps the activations' second moment
  (rosinality/stylegan2-pytorch, op/fused_act.py)."""
  return nn.leaky_relu(x + bias.astype(x.dtype), negative_slope) * scale


class FusedLeakyReLU(nn.Module):
  """Bias + leaky ReLU(0.2) + gain sqrt(2), with its own per-channel bias `bias` (C,), init 0."""
  negative_slope: float = 0.2
  scale: float = math.sqrt(2.0)
  dtype: Dtype = jnp.float32
  param_dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    bias = self.param("bias", nn.initializers.zeros, (x.shape[-1],), self.param_dtype)
    return fused_leaky_relu(x.astype(self.dtype), bias, self.negative_slope, self.scale)


class EqualLinear(nn.Module):
  """Equalised-learning-rate dense layer: y = x @ (weight * lr_mul / sqrt(in)) + bias * lr_mul.

  `weight` (in, features) is initialised N(0, 1 / lr_mul^2), so the effective weight starts
  N(0, 1 / in) for any `lr_mul`; `bias` (features,) starts at `bias_init` (the effective bias at
  bias_init * lr_mul, as in the official code). `activation` applies the fused leaky ReLU with
  that bias instead of adding it.
  """
  features: int
  use_bias: bool = True
  bias_init: float = 0.0
  lr_mul: float = 1.0
  activation: bool = False
  dtype: Dtype = jnp.float32
  param_dtype: Dtype = jnp.float32
  precision: PrecisionLike = None

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    in_dim = x.shape[-1]
    weight = self.param("weight", nn.initializers.normal(1.0 / self.lr_mul),
                        (in_dim, self.features), self.param_dtype)
    scale = self.lr_mul / math.sqrt(in_dim)
    y = jnp.matmul(x.astype(self.dtype), (weight * scale).astype(self.dtype),
                   precision=self.precision)
    if not self.use_bias:
      return nn.leaky_relu(y, 0.2) * math.sqrt(2.0) if self.activation else y
    bias = self.param("bias", nn.initializers.constant(self.bias_init), (self.features,),
                      self.param_dtype) * self.lr_mul
    return fused_leaky_relu(y, bias) if self.activation else y + bias.astype(self.dtype)


class EqualConv2d(nn.Module):
  """Equalised-learning-rate convolution: conv(x, weight / sqrt(in k^2), stride, padding) + bias.

  `weight` (k, k, in, features) ~ N(0, 1); `bias` (features,) init 0. `padding` is PyTorch's:
  that many zeros on every side (0 by default, as in the official code).
  """
  features: int
  kernel_size: int
  stride: int = 1
  padding: int = 0
  use_bias: bool = True
  dtype: Dtype = jnp.float32
  param_dtype: Dtype = jnp.float32
  precision: PrecisionLike = None

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    k, in_channels = self.kernel_size, x.shape[-1]
    weight = self.param("weight", nn.initializers.normal(1.0), (k, k, in_channels, self.features),
                        self.param_dtype)
    scale = 1.0 / math.sqrt(in_channels * k * k)
    y = jax.lax.conv_general_dilated(
        x.astype(self.dtype), (weight * scale).astype(self.dtype), (self.stride, self.stride),
        [(self.padding, self.padding)] * 2, dimension_numbers=_DIMENSIONS,
        precision=self.precision)
    if self.use_bias:
      y = y + self.param("bias", nn.initializers.zeros, (self.features,),
                         self.param_dtype).astype(self.dtype)
    return y


class ModulatedConv2d(nn.Module):
  """StyleGAN2's weight-modulated convolution (StyleGAN2 Eqs. 1-3), `__call__(x, style)`.

  x (N, H, W, in), style (N, style_dim) -> (N, H, W, features), or (N, 2H, 2W, features) with
  `upsample`. Parameters: `weight` (k, k, in, features) ~ N(0, 1), scaled by 1/sqrt(in k^2) at
  run time, and the style affine `modulation` (EqualLinear(in, bias_init=1): s = 1 + ... at
  init, so the layer starts close to an unmodulated one).

  The per-sample weight w'' = d[n, o] * scale * w[., c, o] * s[n, c] (Eq. 1, and Eq. 3 with
  `demodulate`) is never materialised: the input is scaled by s, convolved with the shared
  weight, and the output scaled by d, the non-fused path of the official code, which is the
  same linear map and keeps one ordinary convolution for the whole batch.

  Without `upsample` the convolution has stride 1 and k // 2 zeros of padding. With `upsample`
  it is a stride-2 transposed convolution without padding, (H - 1) * 2 + k, followed by the
  [1, 3, 3, 1] blur (x4) with the pads StyleGAN2 derives for that k, which lands on exactly 2H.
  """
  features: int
  kernel_size: int
  demodulate: bool = True
  upsample: bool = False
  blur_kernel: Sequence[float] = BLUR_KERNEL
  dtype: Dtype = jnp.float32
  param_dtype: Dtype = jnp.float32
  precision: PrecisionLike = None

  def blur_pad(self) -> tuple[int, int]:
    """(top/left, bottom/right) pads of the blur after the transposed convolution."""
    factor = 2
    p = (len(self.blur_kernel) - factor) - (self.kernel_size - 1)
    return (p + 1) // 2 + factor - 1, p // 2 + 1

  @nn.compact
  def __call__(self, x: jax.Array, style: jax.Array) -> jax.Array:
    k, in_channels = self.kernel_size, x.shape[-1]
    weight = self.param("weight", nn.initializers.normal(1.0), (k, k, in_channels, self.features),
                        self.param_dtype)
    weight = weight * (1.0 / math.sqrt(in_channels * k * k))
    # s (N, in). The style affine is a few hundred MACs per sample: keep it in float32.
    s = EqualLinear(in_channels, bias_init=1.0, dtype=jnp.float32, param_dtype=self.param_dtype,
                    precision=self.precision, name="modulation")(style.astype(jnp.float32))
    x = x.astype(self.dtype) * s.astype(self.dtype)[:, None, None, :]
    w = weight.astype(self.dtype)
    if self.upsample:
      y = conv_transpose_stride2(x, w, self.precision)
      y = blur(y, self.blur_kernel, pad=self.blur_pad(), upsample_factor=2,
               precision=self.precision)
    else:
      pad = k // 2
      y = jax.lax.conv_general_dilated(x, w, (1, 1), [(pad, pad)] * 2,
                                       dimension_numbers=_DIMENSIONS, precision=self.precision)
    if self.demodulate:
      d = demodulation_coefficients(weight, s)  # (N, features)
      y = y * d.astype(self.dtype)[:, None, None, :]
    return y


class StyledConv(nn.Module):
  """ModulatedConv2d + bias + FusedLeakyReLU, `__call__(x, style)` (StyleGAN2's StyledConv).

  Two biases, as the official code has: the layer's own `bias` (features,) and the activation's
  `activate/bias` (features,), both init 0. They add up to one effective bias; both are kept so
  that a PyTorch checkpoint maps one to one. BDMM comments out the noise injection, so there is
  none here.
  """
  features: int
  kernel_size: int
  upsample: bool = False
  demodulate: bool = True
  blur_kernel: Sequence[float] = BLUR_KERNEL
  dtype: Dtype = jnp.float32
  param_dtype: Dtype = jnp.float32
  precision: PrecisionLike = None

  @nn.compact
  def __call__(self, x: jax.Array, style: jax.Array) -> jax.Array:
    y = ModulatedConv2d(self.features, self.kernel_size, demodulate=self.demodulate,
                        upsample=self.upsample, blur_kernel=self.blur_kernel, dtype=self.dtype,
                        param_dtype=self.param_dtype, precision=self.precision, name="conv")(
                            x, style)
    bias = self.param("bias", nn.initializers.zeros, (self.features,), self.param_dtype)
    y = y + bias.astype(self.dtype)
    return FusedLeakyReLU(dtype=self.dtype, param_dtype=self.param_dtype, name="activate")(y)


class ToRGB(nn.Module):
  """Modulated 1x1 convolution to RGB without demodulation, + bias (3,), `__call__(x, style)`.

  As BDMM uses it (upsample=False, no skip input), so there is no skip branch.
  """
  features: int = 3
  dtype: Dtype = jnp.float32
  param_dtype: Dtype = jnp.float32
  precision: PrecisionLike = None

  @nn.compact
  def __call__(self, x: jax.Array, style: jax.Array) -> jax.Array:
    y = ModulatedConv2d(self.features, 1, demodulate=False, dtype=self.dtype,
                        param_dtype=self.param_dtype, precision=self.precision, name="conv")(
                            x, style)
    bias = self.param("bias", nn.initializers.zeros, (self.features,), self.param_dtype)
    return y + bias.astype(self.dtype)
