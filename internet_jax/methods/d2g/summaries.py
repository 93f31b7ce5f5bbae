"""D2G-Net's TensorBoard panel: pose | predicted parts | predicted UV | sampled texture | output |
ground truth, one row per frame."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from internet_jax import visualize
from internet_jax.methods.d2g import objective, renderer

# A fixed colour per part label (0 = background, black), for the parts panel.
_PART_COLOURS = np.concatenate([[[0, 0, 0]], np.random.default_rng(7).integers(
    64, 256, size=(255, 3))]).astype(np.uint8)


def _signed_to_uint8(images) -> np.ndarray:
  return np.clip(np.round((np.asarray(images, np.float32) + 1.0) * 127.5), 0, 255).astype(
      np.uint8)


def uv_image(uv: np.ndarray, probs: np.ndarray) -> np.ndarray:
  """The UV of the most probable part at each pixel as colour (R = U, G = V, B = 0), black on
  the background: uv (H, W, P, 2) in [-1, 1], probs (H, W, P + 1)."""
  label = np.argmax(probs, axis=-1)
  part = np.clip(label - 1, 0, uv.shape[-2] - 1)
  chosen = np.take_along_axis(uv, part[..., None, None], axis=-2)[..., 0, :]
  rgb = np.concatenate([(chosen + 1.0) / 2.0, np.zeros(chosen.shape[:-1] + (1,))], -1)
  return np.where((label > 0)[..., None], np.clip(rgb * 255, 0, 255), 0).astype(np.uint8)


def summary_images(networks, params: dict, batch: dict[str, np.ndarray],
                   num_rows: int = 4) -> dict:
  """`Method.summary_images`: {"summary"}: for the first pairs of the batch (both frames of each,
  at most `num_rows` frames)."""
  joints = np.asarray(batch["joints"]).reshape((-1,) + batch["joints"].shape[2:])[:num_rows]
  valid = np.asarray(batch["joints_valid"]).reshape((-1,) + batch["joints_valid"].shape[2:])[
      :num_rows]
  frames = np.asarray(batch["frames"]).reshape((-1,) + batch["frames"].shape[2:])[:num_rows]
  out = jax.device_get(renderer.render_frames(networks, params["g"], jnp.asarray(joints),
                                              jnp.asarray(valid)))
  pose = jax.device_get(objective.pose_labels(networks.config, jnp.asarray(joints),
                                              jnp.asarray(valid)))
  rows = []
  for t in range(len(frames)):
    parts = _PART_COLOURS[np.argmax(out["probs"][t], axis=-1)]
    rows.append([_signed_to_uint8(pose[t]), parts, uv_image(out["uv"][t], out["probs"][t]),
                 _signed_to_uint8(out["static_foreground"][t]),
                 _signed_to_uint8(out["output"][t]), frames[t]])
  return {"summary": visualize.tile_images(rows, pad=2)}
