"""Stage I of INTERnet, the motion estimator (INTERnet paper Sec. 3.3, Eq. 5).

Both networks run at the base resolution (128 for 512 input); the caller downsamples the images
with `geometry.downsample`. Coordinates are normalised (x, y) in [-1, 1],
align-corners, and motion fields are backward (driving-frame pixel -> source position).

* `AnchorDetector`: motion anchors K_k (expected coordinates of K spatial-softmax heatmaps) and
  their local 2x2 Jacobians J_k (FOMM keypoint detector).
* `part_anchors`: anchors from known part motions (a diagnostic: the synthetic ground truth in
  place of the detector).
* `DenseMotion`: local affine motions T_k(z) = K_k^s + J_k^s (J_k^d)^-1 (z - K_k^d) plus an identity
  background motion, composed with soft weights, F^0 = sum_k w_k T_k (Eq. 5), and the intrinsic
  confidence map M^0 from one more layer on the same last feature map (Sec. 3.2).
"""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from internet_jax import geometry
from internet_jax.models import layers

Dtype = Any


def spatial_softmax_anchors(logits: jax.Array, temperature: float) -> tuple[jax.Array, jax.Array]:
  """Heatmaps and their expected coordinates.

  Args:
    logits: (B, H, W, K) heatmap logits.
    temperature: softmax temperature (0.1 in FOMM); smaller values give peakier heatmaps.
  Returns:
    heatmap (B, H, W, K) summing to 1 over (H, W) for every k, and anchors (B, K, 2) = the
    expected (x, y) over `geometry.coordinate_grid`, both float32.
  """
  batch, height, width, num = logits.shape
  # float32 so that a bfloat16 model still localises anchors to a fraction of a pixel.
  flat = logits.astype(jnp.float32).reshape(batch, height * width, num) / temperature
  heatmap = jax.nn.softmax(flat, axis=1).reshape(batch, height, width, num)
  grid = geometry.coordinate_grid(height, width)
  anchors = jnp.einsum("bhwk,hwc->bkc", heatmap, grid)
  return heatmap, anchors


class AnchorDetector(nn.Module):
  """Motion anchors and local Jacobians from one image (FOMM's KPDetector, first-order-model modules/keypoint_detector.py).

  Differences from FOMM: instance norm instead of synchronised BatchNorm, and the 7x7 heatmap and
  Jacobian heads use SAME padding, so the heatmaps cover the full base grid (FOMM pads 0, which
  shrinks a 64x64 grid to 58x58 and biases anchors away from the border).
  """
  num_anchors: int = 10
  block_expansion: int = 32
  max_features: int = 1024
  num_blocks: int = 5
  temperature: float = 0.1
  estimate_jacobian: bool = True
  dtype: Dtype = jnp.float32
  remat: bool = False  # rematerialise the hourglass blocks (layers.maybe_remat)

  @nn.compact
  def __call__(self, image: jax.Array) -> dict[str, jax.Array]:
    """image (B, h, w, 3) in [0, 1] at base resolution -> dict(value (B, K, 2),
    jacobian (B, K, 2, 2), heatmap (B, h, w, K)), all float32."""
    features = layers.Hourglass(self.block_expansion, self.num_blocks, self.max_features,
                                self.dtype, self.remat, name="hourglass")(image)
    logits = layers.conv(self.num_anchors, 7, self.dtype, name="heatmap")(features)
    heatmap, value = spatial_softmax_anchors(logits, self.temperature)
    batch = image.shape[0]
    if self.estimate_jacobian:
      # Zero kernel + identity bias: every J_k is exactly I at init, so training starts from pure
      # translations of the anchors (FOMM's initialisation).
      identity = jnp.tile(jnp.array([1.0, 0.0, 0.0, 1.0], jnp.float32), self.num_anchors)
      jacmap = layers.conv(4 * self.num_anchors, 7, self.dtype, name="jacobian",
                           kernel_init=nn.initializers.zeros,
                           bias_init=lambda key, shape, dtype=jnp.float32: (
                               identity.reshape(shape).astype(dtype)))(features)
      jacmap = jacmap.astype(jnp.float32).reshape(heatmap.shape + (4,))
      jacobian = jnp.einsum("bhwk,bhwkc->bkc", heatmap, jacmap)
      jacobian = jacobian.reshape(batch, self.num_anchors, 2, 2)
    else:
      jacobian = jnp.broadcast_to(jnp.eye(2, dtype=jnp.float32), (batch, self.num_anchors, 2, 2))
    return {"value": value, "jacobian": jacobian, "heatmap": heatmap}


def sparse_motions(height: int, width: int, source: dict, driving: dict) -> jax.Array:
  """The K+1 candidate motions on an (height, width) grid, float32 (B, h, w, K+1, 2).

  Index 0 is the identity (background) motion; index k >= 1 is the first-order local motion of
  anchor k-1, T_k(z) = K^s + J^s (J^d)^-1 (z - K^d), which maps the driving anchor onto the
  source anchor (backward warping: the constraint of Eq. 5 read driving -> source).
  `source` and `driving` are anchor dicts with value (B, K, 2) and jacobian (B, K, 2, 2).
  """
  grid = geometry.coordinate_grid(height, width)  # (h, w, 2)
  kp_s = source["value"].astype(jnp.float32)
  kp_d = driving["value"].astype(jnp.float32)
  affine = jnp.einsum("bkij,bkjl->bkil", source["jacobian"].astype(jnp.float32),
                      geometry.inverse_2x2(driving["jacobian"].astype(jnp.float32)))
  offset = grid[None, :, :, None, :] - kp_d[:, None, None, :, :]  # (B, h, w, K, 2)
  local = kp_s[:, None, None] + jnp.einsum("bkij,bhwkj->bhwki", affine, offset)
  background = jnp.broadcast_to(grid[:, :, None, :], local.shape[:3] + (1, 2))
  return jnp.concatenate([background, local], axis=3)


def part_anchors(part_transforms: jax.Array, centres: jax.Array, size: int) -> dict[str, jax.Array]:
  """Anchors from known per-part affine maps: the diagnostic upper bound of the detector.

  part_transforms: (..., K, 2, 3) float, part-local -> pixel maps [A | b] of a size x size frame
  (p = A u + b, the synthetic renderer's "part_transforms"); centres: (..., K, 2) pixel (x, y) of
  one point of each part that is fixed in its local coordinates (`synthetic.part_centres`).
  Anchor k is part k's centre and J_k its linear map A, both in normalised coordinates
  (x_n = s x - 1, s = 2 / (size - 1)). Then `sparse_motions`' T_k(z) = K^s + J^s (J^d)^-1 (z - K^d)
  is exactly M_s M_d^-1 z, part k's true motion from the driving into the source frame (the
  scale s cancels in J^s (J^d)^-1). Returns dict(value (..., K, 2), jacobian (..., K, 2, 2)),
  float32.
  """
  scale = 2.0 / (size - 1)
  return {"value": jnp.asarray(centres, jnp.float32) * scale - 1.0,
          "jacobian": jnp.asarray(part_transforms, jnp.float32)[..., :2] * scale}


def anchor_gaussians(anchors: jax.Array, height: int, width: int, variance: float) -> jax.Array:
  """exp(-|z - K_k|^2 / (2 variance)) on the grid, (B, K, 2) -> (B, h, w, K) (FOMM kp2gaussian)."""
  grid = geometry.coordinate_grid(height, width)
  diff = grid[None, :, :, None, :] - anchors[:, None, None, :, :].astype(jnp.float32)
  return jnp.exp(-0.5 * jnp.sum(diff * diff, axis=-1) / variance)


class DenseMotion(nn.Module):
  """Dense motion F^0 (Eq. 5), composition weights and confidence map M^0 at base resolution.

  The hourglass sees, for each of the K+1 motions, the heatmap difference G(K^d) - G(K^s) (zero for
  the background) and the source warped by that motion (FOMM's DenseMotionNetwork, first-order-model modules/dense_motion.py); from its
  last feature map one 7x7 conv predicts the composition logits (softmax over K+1) and another the
  confidence M^0 (sigmoid) — the paper's "additional layer attached to the last feature map".
  """
  num_anchors: int = 10
  block_expansion: int = 64
  max_features: int = 1024
  num_blocks: int = 5
  anchor_variance: float = 0.01
  dtype: Dtype = jnp.float32
  remat: bool = False  # rematerialise the hourglass blocks (layers.maybe_remat)

  @nn.compact
  def __call__(self, source: jax.Array, source_anchors: dict, driving_anchors: dict,
               return_sparse_deformed: bool = False) -> dict[str, jax.Array]:
    """source (B, h, w, C) in [0, 1] at base resolution; anchor dicts of the source and driving
    frames. Returns dict(motion (B, h, w, 2), confidence (B, h, w, 1), composition
    (B, h, w, K+1), and sparse_deformed (B, h, w, K+1, C) if asked), float32."""
    batch, height, width, channels = source.shape
    num_motions = self.num_anchors + 1
    motions = sparse_motions(height, width, source_anchors, driving_anchors)

    heat = (anchor_gaussians(driving_anchors["value"], height, width, self.anchor_variance)
            - anchor_gaussians(source_anchors["value"], height, width, self.anchor_variance))
    heat = jnp.concatenate([jnp.zeros_like(heat[..., :1]), heat], axis=-1)  # background first

    # Warp the source once per motion: fold the motion axis into the batch for geometry.warp.
    coords = jnp.moveaxis(motions, 3, 1).reshape(batch * num_motions, height, width, 2)
    repeated = jnp.repeat(source.astype(jnp.float32), num_motions, axis=0)
    deformed = geometry.warp(repeated, coords, padding_mode="zeros")
    deformed = jnp.moveaxis(deformed.reshape(batch, num_motions, height, width, channels), 1, 3)

    inputs = jnp.concatenate([heat[..., None], deformed], axis=-1)  # (B, h, w, K+1, C+1)
    inputs = inputs.reshape(batch, height, width, num_motions * (channels + 1))
    features = layers.Hourglass(self.block_expansion, self.num_blocks, self.max_features,
                                self.dtype, self.remat, name="hourglass")(inputs)

    logits = layers.conv(num_motions, 7, self.dtype, name="composition")(features)
    composition = jax.nn.softmax(logits.astype(jnp.float32), axis=-1)
    motion = jnp.einsum("bhwk,bhwkc->bhwc", composition, motions)  # Eq. 5
    confidence_logits = layers.conv(1, 7, self.dtype, name="confidence")(features)
    confidence = jax.nn.sigmoid(confidence_logits.astype(jnp.float32))

    out = {"motion": motion, "confidence": confidence, "composition": composition}
    if return_sparse_deformed:
      out["sparse_deformed"] = deformed
    return out
