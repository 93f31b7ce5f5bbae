"""BDMM's TensorBoard panel: a training clip generated chunk by chunk."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from internet_jax import geometry, visualize
from internet_jax.methods.bdmm import objective, propagation


@functools.partial(jax.jit, static_argnums=(0,))
def _clip(networks, g_params, motion_params, batch):
  config = networks.config
  batch = objective.with_warps(networks, motion_params, batch)
  reference = objective.to_signed(batch["reference"])
  skeletons = jnp.swapaxes(objective.skeletons(config, batch["joints"], batch["joints_valid"]),
                           0, 1)
  warps = jnp.swapaxes(batch["warps"], 0, 1)
  frames = propagation.generate_clip(
      networks.generator, g_params, reference, skeletons, warps, batch["initial_warp"],
      config.bdmm.chunk_frames, **objective.propagation_switches(config))
  warped = jax.vmap(lambda w: geometry.warp(reference, w))(warps)
  return frames, warped, jnp.max(skeletons, axis=-1)


def _to_uint8(signed: np.ndarray) -> np.ndarray:
  return np.clip(np.round((np.asarray(signed) + 1.0) * 127.5), 0, 255).astype(np.uint8)


def summary_images(networks, params: dict, batch: dict[str, np.ndarray],
                   num_frames: int = 6) -> dict:
  """`Method.summary_images`: {"summary"}: for the first clip of the batch, one row per frame
  (evenly spaced, at most `num_frames`): reference | skeleton | warped reference | output |
  ground truth."""
  first = {name: jnp.asarray(value[:1]) for name, value in batch.items()}
  motion_params = networks.motion.params if networks.motion is not None else {}
  frames, warped, skeletons = jax.device_get(_clip(networks, params["g"], motion_params, first))
  count = frames.shape[0]
  rows = []
  for t in np.unique(np.linspace(0, count - 1, min(num_frames, count)).round().astype(int)):
    skeleton = np.repeat(np.clip(skeletons[t, 0, ..., None] * 255, 0, 255), 3, -1)
    rows.append([batch["reference"][0], skeleton.astype(np.uint8), _to_uint8(warped[t, 0]),
                 _to_uint8(frames[t, 0]), batch["frames"][0, t]])
  return {"summary": visualize.tile_images(rows, pad=2)}

