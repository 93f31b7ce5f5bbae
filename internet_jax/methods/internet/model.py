"""INTERnet: Stage I motion estimator + Stage II generator behind one Linen module (paper Sec. 3.3).

Usage (all through `model.apply(params, ..., method=...)`):

  outputs = model.apply(params, source, driving)                      # training
  enc = model.apply(params, source, method=INTERnet.encode_source)     # animation: once per source
  kp = model.apply(params, frame, method=INTERnet.detect_anchors)      # once per driving frame
  outputs = model.apply(params, enc, kp, method=INTERnet.generate)

Images are (B, R, R, 3) float in [0, 1]; the motion networks see them downsampled to the base
resolution with `geometry.downsample`.
"""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections

from internet_jax import geometry
from internet_jax.methods.internet import generator as generator_lib
from internet_jax.methods.internet import motion as motion_lib

DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16}


def parse_dtype(name: str):
  """config.model.dtype string -> jnp dtype."""
  if name not in DTYPES:
    raise ValueError(f"config.model.dtype: unknown dtype {name!r}; known: {sorted(DTYPES)}")
  return DTYPES[name]


class INTERnet(nn.Module):
  """The INTERnet generator G (everything trained by the generator optimiser).

  Attributes:
    resolution: output (and input) resolution R.
    config: `config.model` (configs/default.py); pass an `ml_collections.FrozenConfigDict` so the
      module stays hashable (`create_models` does).
    dtype: compute dtype; None takes `config.dtype`. Parameters are float32 either way.
  """
  resolution: int
  config: ml_collections.FrozenConfigDict
  dtype: Any = None

  @property
  def compute_dtype(self):
    return parse_dtype(self.config.dtype) if self.dtype is None else self.dtype

  def setup(self):
    cfg, dtype = self.config, self.compute_dtype
    m, g = cfg.motion, cfg.generator
    self.detector = motion_lib.AnchorDetector(
        num_anchors=cfg.num_anchors, block_expansion=m.detector_block_expansion,
        max_features=m.detector_max_features, num_blocks=m.detector_num_blocks,
        temperature=m.temperature, estimate_jacobian=m.estimate_jacobian, dtype=dtype,
        remat=cfg.remat)
    self.dense_motion = motion_lib.DenseMotion(
        num_anchors=cfg.num_anchors, block_expansion=m.block_expansion,
        max_features=m.max_features, num_blocks=m.num_blocks,
        anchor_variance=m.anchor_variance, dtype=dtype, remat=cfg.remat)
    self.generator = generator_lib.Generator(
        resolution=self.resolution, base_resolution=cfg.base_resolution,
        block_expansion=g.block_expansion, max_features=g.max_features,
        num_bottleneck_blocks=g.num_bottleneck_blocks, skip_mode=g.skip_mode,
        stem_norm=g.get("stem_norm", True), dtype=dtype,  # older checkpoints lack the field
        remat=cfg.remat)

  @property
  def detector_resolution(self) -> int:
    """Where the anchors are detected: model.motion.detector_resolution, 0 = the base resolution
    (the paper's Stage I runs at the base resolution throughout)."""
    return self.config.motion.get("detector_resolution", 0) or self.config.base_resolution

  @staticmethod
  def _resized(image: jax.Array, size: int) -> jax.Array:
    image = image.astype(jnp.float32)
    if image.shape[1:3] == (size, size):
      return image
    return geometry.downsample(image, size, size)

  def detect_anchors(self, image: jax.Array) -> dict[str, jax.Array]:
    """image (B, R, R, 3) -> dict(value (B, K, 2), jacobian (B, K, 2, 2), heatmap (B, h, w, K)
    at the detector resolution)."""
    return self.detector(self._resized(image, self.detector_resolution))

  def encode_source(self, source: jax.Array, anchors: dict | None = None) -> dict[str, Any]:
    """Everything that depends on the source only: dict(image (B, R, R, 3) float32, image_base
    (B, h, w, 3), anchors (anchor dict: `anchors` when given, else detected), features (generator
    encoder features, base first))."""
    return {"image": source.astype(jnp.float32),
            "image_base": self._resized(source, self.config.base_resolution),
            "anchors": self.detect_anchors(source) if anchors is None else anchors,
            "features": self.generator.encode(source)}

  def generate(self, source_encoding: dict[str, Any], driving_anchors: dict[str, jax.Array],
               return_sparse_deformed: bool = False) -> dict[str, Any]:
    """Dense motion (Eq. 5) from the two anchor sets, then the generator (Eq. 6).

    Returns the outputs contract with losses/training:
      prediction (B, R, R, 3) in [0, 1]; source_anchors, driving_anchors (anchor dicts);
      motion F^0 (B, h, w, 2); confidence M^0 (B, h, w, 1); composition (B, h, w, K+1);
      motion_full (B, R, R, 2), confidence_full (B, R, R, 1) (the pyramid tops);
      deformed_source (B, R, R, 3) = source warped by motion_full (visualisation, and the
      image blended into the prediction with generator.composite_source);
      sparse_deformed (B, h, w, K+1, 3) only if return_sparse_deformed. All float32.
    """
    dense = self.dense_motion(source_encoding["image_base"], source_encoding["anchors"],
                              driving_anchors, return_sparse_deformed=return_sparse_deformed)
    decoded = self.generator.decode(source_encoding["features"], dense["motion"],
                                    dense["confidence"])
    motion_full = decoded["motion_pyramid"][-1]
    confidence_full = decoded["confidence_pyramid"][-1]
    deformed_source = geometry.warp(source_encoding["image"], motion_full, padding_mode="zeros")
    prediction = decoded["prediction"]
    if self.config.generator.get("composite_source", False):  # older checkpoints lack the field
      prediction = generator_lib.composite_with_source(prediction, deformed_source,
                                                       confidence_full)
    outputs = {
        "prediction": prediction,
        "source_anchors": source_encoding["anchors"],
        "driving_anchors": driving_anchors,
        "motion": dense["motion"],
        "confidence": dense["confidence"],
        "composition": dense["composition"],
        "motion_full": motion_full,
        "confidence_full": confidence_full,
        "deformed_source": deformed_source,
    }
    if return_sparse_deformed:
      outputs["sparse_deformed"] = dense["sparse_deformed"]
    return outputs

  def __call__(self, source: jax.Array, driving: jax.Array,
               return_sparse_deformed: bool = False,
               anchors: tuple[dict, dict] | None = None) -> dict[str, Any]:
    """source, driving (B, R, R, 3) in [0, 1] -> `generate`'s outputs (D_t reconstructed from S).
    `anchors`: (source anchors, driving anchors) to use instead of detecting them
    (`motion.part_anchors`)."""
    source_anchors, driving_anchors = (None, None) if anchors is None else anchors
    if driving_anchors is None:
      driving_anchors = self.detect_anchors(driving)
    return self.generate(self.encode_source(source, source_anchors), driving_anchors,
                         return_sparse_deformed=return_sparse_deformed)
