"""Stage II of INTERnet, the frame generator (INTERnet paper Sec. 3.3, Eq. 6).

A multiscale residual generator with deformable skip connections: the source image is encoded at
the output resolution R and down to the base resolution (512/256/128 in the paper); every encoder
feature phi_i^in is deformed by the motion pyramid, phi_i^out = M^i * F^i(phi_i^in) (Eq. 6), where
F^i(.) is the backward warp `geometry.warp` (zeros padding) and M^i the confidence pyramid.

Levels are indexed as in the paper: level 0 is the base resolution (F^0, M^0 from Stage I), level
i has 2^i times its size, and the last level is the output resolution R.
"""

from __future__ import annotations

import math
from typing import Any, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from internet_jax import geometry
from internet_jax.models import layers

Dtype = Any
SKIP_MODES = ("multiscale", "single")


def num_levels(resolution: int, base_resolution: int) -> int:
  """log2(R / base) + 1 pyramid levels; R / base must be a power of two >= 1."""
  ratio = resolution // base_resolution
  if resolution % base_resolution or ratio < 1 or ratio & (ratio - 1):
    raise ValueError(f"resolution {resolution} is not base_resolution {base_resolution} times a "
                     "power of two")
  return int(math.log2(ratio)) + 1


def motion_pyramid(field: jax.Array, levels: int) -> tuple[jax.Array, ...]:
  """(F^0, F^1, ...): each level the 2x bilinear (align-corners) upsampling of the previous one.

  Resampling absolute coordinates with `resize_align_corners` keeps an identity field exactly the
  identity at every level; the same function builds the confidence pyramid {M^i}.
  """
  pyramid = [field.astype(jnp.float32)]
  for _ in range(levels - 1):
    height, width = pyramid[-1].shape[1:3]
    pyramid.append(geometry.resize_align_corners(pyramid[-1], 2 * height, 2 * width))
  return tuple(pyramid)


def composite_with_source(decoded: jax.Array, warped_source: jax.Array,
                          confidence: jax.Array) -> jax.Array:
  """(1 - M) * decoded + M * F(S) at the output resolution.

  TPSMM (yoyo-nb/Thin-Plate-Spline-Motion-Model, modules/inpainting_network.py) and DAM
  (JialeTao/DAM, modules/generator.py) end their generators this way; the INTERnet paper's Eq. 6
  names only the feature skips. Where the motion is right and the confidence high, the source's
  own pixels (a static background above all) pass through instead of being re-synthesised.
  """
  confidence = confidence.astype(jnp.float32)
  return (1.0 - confidence) * decoded + confidence * warped_source.astype(jnp.float32)


def deform(feature: jax.Array, motion: jax.Array, confidence: jax.Array) -> jax.Array:
  """phi_out = M * F(phi_in) (Eq. 6): backward warp with zeros padding, then confidence gating."""
  warped = geometry.warp(feature, motion, padding_mode="zeros")
  return confidence.astype(warped.dtype) * warped


class Generator(nn.Module):
  """Encoder at R..base, `num_bottleneck_blocks` residual blocks at base, decoder back to R.

  skip_mode "multiscale" (the paper's MS): at every level above the base the deformed encoder
  feature is concatenated with the decoder feature. "single" (the SS4x ablation): only the base
  feature is deformed and the decoder has no skips.
  Widths: level with d halvings below R has min(max_features, block_expansion * 2^d) channels.
  With `remat` the down, bottleneck and up blocks are rematerialised (`layers.maybe_remat`).
  """
  resolution: int
  base_resolution: int
  block_expansion: int = 64
  max_features: int = 512
  num_bottleneck_blocks: int = 6
  skip_mode: str = "multiscale"
  # Instance norm after the stem convolution (FOMM's stem has BatchNorm). Per-example
  # normalisation removes each image's mean colour from the features that the top-level skip
  # carries, so the decoder cannot know the exact colours of the source; False keeps them.
  stem_norm: bool = True
  dtype: Dtype = jnp.float32
  remat: bool = False

  @property
  def levels(self) -> int:
    return num_levels(self.resolution, self.base_resolution)

  def level_features(self, level: int) -> int:
    depth = self.levels - 1 - level  # number of halvings below R
    return min(self.max_features, self.block_expansion * 2 ** depth)

  def setup(self):
    if self.skip_mode not in SKIP_MODES:
      raise ValueError(f"skip_mode {self.skip_mode!r} is not one of {SKIP_MODES}")
    top = self.levels - 1
    down_block = layers.maybe_remat(layers.DownBlock, self.remat)
    res_block = layers.maybe_remat(layers.ResBlock, self.remat)
    up_block = layers.maybe_remat(layers.UpBlock, self.remat)
    self.stem = layers.SameBlock(self.level_features(top), 7, self.dtype, self.stem_norm)
    # down_blocks[j] produces level top-1-j (from R/2 down to the base).
    self.down_blocks = [down_block(self.level_features(level), self.dtype)
                        for level in reversed(range(top))]
    self.bottleneck = [res_block(self.dtype) for _ in range(self.num_bottleneck_blocks)]
    # up_blocks[j] produces level j+1 (from 2x base up to R).
    self.up_blocks = [up_block(self.level_features(level), self.dtype)
                      for level in range(1, top + 1)]
    self.final = layers.conv(3, 7, self.dtype)

  def encode(self, source: jax.Array) -> tuple[jax.Array, ...]:
    """source (B, R, R, 3) in [0, 1] -> (phi_0 at base, ..., phi_top at R), the encoder features.

    Depends on the source only, so animation computes it once per source image.
    """
    if source.shape[1:3] != (self.resolution, self.resolution):
      raise ValueError(f"Generator.encode: source is {source.shape[1]}x{source.shape[2]}, "
                       f"expected {self.resolution}x{self.resolution}")
    features = [self.stem(source)]
    for block in self.down_blocks:
      features.append(block(features[-1]))
    return tuple(reversed(features))

  def decode(self, features: Sequence[jax.Array], motion: jax.Array,
             confidence: jax.Array) -> dict[str, Any]:
    """Decodes the deformed source features into the frame.

    Args:
      features: `encode`'s tuple, base level first.
      motion: F^0 (B, h, w, 2) at base resolution; confidence: M^0 (B, h, w, 1).
    Returns:
      dict(prediction (B, R, R, 3) float32 in [0, 1], motion_pyramid and confidence_pyramid:
      tuples of F^i (B, 2^i h, 2^i w, 2) and M^i (B, 2^i h, 2^i w, 1), float32, base first).
    """
    motions = motion_pyramid(motion, self.levels)
    confidences = motion_pyramid(confidence, self.levels)
    x = deform(features[0], motions[0], confidences[0])
    for block in self.bottleneck:
      x = block(x)
    for level, block in enumerate(self.up_blocks, start=1):
      x = block(x)
      if self.skip_mode == "multiscale":  # deformable skip connection (Eq. 6 at level i)
        skip = deform(features[level], motions[level], confidences[level])
        x = jnp.concatenate([x, skip.astype(x.dtype)], axis=-1)
    # Sigmoid in float32: the prediction feeds the losses (images are in [0, 1] everywhere).
    prediction = jax.nn.sigmoid(self.final(x).astype(jnp.float32))
    return {"prediction": prediction, "motion_pyramid": motions,
            "confidence_pyramid": confidences}

  def __call__(self, source: jax.Array, motion: jax.Array, confidence: jax.Array) -> dict:
    """encode + decode; creates every parameter at `init`."""
    return self.decode(self.encode(source), motion, confidence)
