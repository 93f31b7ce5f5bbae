"""D2G-Net inference (`Method.renderer`): frame by frame, each output from its own pose label
alone (SunYangtian/Neural-Human-Video-Rendering, pix2pixHD_Avatar.py `inference`: TransG, texture
sampling, translation net, compositing; no recurrent state and no flow).

A D2G-Net model is one person: the source frame only says who is driven in the shared commands;
the renderer reads the joints of every driving frame from its per-frame annotations
(input_pipeline/annotations.py), which the shared code passes as `annotations=`.
`background=` (an image of the model's size, uint8) swaps the learnt background (paper Sec. 4.4);
`normalize_pose=` and `smooth_poses=` prepare another person's poses (`poses.py`).
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from input_pipeline.video_io import DataError
from internet_jax import inference
from internet_jax.methods.d2g import inputs, networks as d2g_networks, objective, poses


@functools.partial(jax.jit, static_argnums=0)
def render_frames(networks, g_params, joints, valid, background=None):
  """(F, J, 2) joints, (F, J) valid -> the generator's outputs, with "prediction" the composite
  in [0, 1] (F, R, R, 3); `background` (R, R, 3) in [-1, 1] replaces the learnt one."""
  out = networks.generator.apply(g_params, objective.pose_labels(networks.config, joints, valid))
  if background is not None:
    out["output"] = d2g_networks.composite(out["foreground"], background, out["probs"][..., 0])
  out["prediction"] = jnp.clip((out["output"] + 1.0) / 2.0, 0.0, 1.0)
  return out


class D2GRenderer(inference.Renderer):
  """The carry: the joints of every driving frame (host), the next frame index and the
  background override (None: the learnt one)."""

  annotation_keys = ("joints",)
  optional_annotation_keys = (inputs.OPTIONAL_VALID_KEY,)

  def __init__(self, networks, params, batch_size: int):
    super().__init__(networks.config.data.resolution, batch_size)
    self.networks = networks
    self.params = jax.device_put(params)

  def _joints(self, frames: list, label: str) -> tuple[np.ndarray, np.ndarray]:
    """(T, J, 2) joints and (T, J) validity of annotated frames."""
    num_joints = int(self.networks.config.d2g.num_joints)
    joints, valid = [], []
    for t, frame in enumerate(frames):
      frame_joints = np.asarray(frame["joints"], np.float32)
      if frame_joints.shape != (num_joints, 2):
        raise DataError(f"{label} frame {t}: 'joints' is {frame_joints.shape}, the model's "
                        f"d2g.num_joints is {num_joints} (expected ({num_joints}, 2))")
      joints.append(frame_joints)
      valid.append(np.asarray(frame.get(inputs.OPTIONAL_VALID_KEY, np.ones(num_joints, bool)),
                              bool))
    return np.stack(joints), np.stack(valid)

  def start(self, source, first_driving, *, annotations, background=None,
            normalize_pose: bool = False, smooth_poses: float = 0.0):
    """`normalize_pose`: the driving poses are scaled and moved onto the person of the source
    frame's pose (another person driving, `poses.normalize_poses`); `smooth_poses`: the Gaussian
    sigma in frames of `poses.smooth_poses` (0: off; the code uses 2)."""
    del source, first_driving  # the model is one person; it reads the driving poses only
    joints, valid = self._joints(annotations["driving"], "driving")
    if smooth_poses:
      joints, valid = poses.smooth_poses(joints, valid, float(smooth_poses))
    if normalize_pose:
      target, target_valid = self._joints([annotations["source"]], "source")
      joints = poses.normalize_poses(joints, valid, target, target_valid)
    if background is not None:
      background = np.asarray(background)
      r = self.resolution
      if background.shape != (r, r, 3):
        raise ValueError(f"background: must be an ({r}, {r}, 3) image, got {background.shape}")
      background = jnp.asarray(background, jnp.float32) / 127.5 - 1.0
    return {"joints": joints, "valid": valid, "next": 0, "background": background}

  def step(self, carry, chunk):
    del chunk
    start, count = carry["next"], len(carry["joints"])
    if start >= count:
      raise DataError(f"D2G-Net: the driving video has more frames than its {count} annotated "
                      "ones")
    index = np.minimum(np.arange(start, start + self.batch_size), count - 1)
    out = render_frames(self.networks, self.params, carry["joints"][index],
                        carry["valid"][index], carry["background"])
    return dict(carry, next=start + self.batch_size), {"prediction": out["prediction"]}


def create_renderer(networks, params: dict, config, batch_size: int) -> D2GRenderer:
  """`Method.renderer`: params holds {"g": G's parameters}."""
  del config  # the networks hold the training config
  return D2GRenderer(networks, params["g"], batch_size)
