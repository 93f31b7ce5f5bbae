"""BDMM inference over whole videos (`Method.renderer`): non-overlapping chunks of `batch_size`
frames with the recurrent state carried from chunk to chunk, as the official code tests
(rocketappslab/BDMM, test.py with model/dance_model.py: chunks of max_frames_per_gpu = 6).

BDMM does not look at the driving frames: it reads their poses and the warp of every frame into
the source (reference) frame. Both come from per-frame annotations (input_pipeline/annotations.py)
of the source frame and of the driving frames: joints -> skeleton heatmaps; part labels and part
transforms -> `inputs.part_warp` (the layered figure's exact correspondence), or with
`bdmm.warp_source = "source_coords"` the driving frames' stored correspondences into the source
(`inputs.coords_warp`: for `animate`, warps made against the animated photo; for `evaluate`, into
the test video's first frame, which is the source). The shared code passes them as
`annotations=` (`inference.annotation_options`).

With warps from a model (`bdmm.warp_source = "<method>:<workdir>"`) only the joints are read and
the warps come from the source image and the driving frames' pixels (the motion source, on the
device). A chunk's backward branch then starts from the warp of the chunk's own last frame: the
frame after the chunk, which the code uses, has not arrived yet when a video is streamed.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from input_pipeline.video_io import DataError
from internet_jax import inference
from internet_jax.methods.bdmm import inputs, objective, propagation


@functools.partial(jax.jit, static_argnums=0)
def _start(networks, g_params, reference, joints, valid, warp):
  skeleton = objective.skeletons(networks.config, joints, valid)
  return propagation.initial_carry(networks.generator, g_params, reference, skeleton, warp)


@functools.partial(jax.jit, static_argnums=0)
def _pixel_warps(networks, motion_params, source, frames):
  """uint8 source (R, R, 3) and driving frames (F, R, R, 3) -> the warps (F, R, R, 2)."""
  return objective.model_warps(networks, motion_params, source[None], frames[None])[0]


@functools.partial(jax.jit, static_argnums=0)
def _chunk(networks, g_params, reference, joints, valid, warps, post_warp, state):
  """(F, J, 2) joints, (F, J) valid, (F, R, R, 2) warps -> frames (F, R, R, 3) in [0, 1]."""
  skeletons = objective.skeletons(networks.config, joints, valid)[:, None]
  frames, state = propagation.generate_chunk(
      networks.generator, g_params, reference, skeletons, warps[:, None], post_warp[None], state,
      **objective.propagation_switches(networks.config))
  return jnp.clip((frames[:, 0] + 1.0) / 2.0, 0.0, 1.0), state


class BDMMRenderer(inference.Renderer):
  """The carry: the inputs of every driving frame (on the host), the next frame index and the
  recurrent state {previous, structure, forward} (on the device)."""

  optional_annotation_keys = (inputs.OPTIONAL_VALID_KEY,)

  def __init__(self, networks, params, batch_size: int):
    super().__init__(networks.config.data.resolution, batch_size)
    self.networks = networks
    self.params = jax.device_put(params)
    self.motion = networks.motion
    self.warp_source = str(networks.config.bdmm.get("warp_source", "annotation"))
    self.annotation_keys = inputs.annotation_keys_for(self.warp_source)
    if self.warp_source == inputs.SOURCE_COORDS:  # the driving frames hold the warps
      self.source_annotation_keys = inputs.POSE_KEYS
    self.motion_params = jax.device_put(self.motion.params) if self.motion is not None else None

  def _inputs(self, annotations: dict) -> dict[str, np.ndarray]:
    """Joints, validity and warps (into the source frame) of every driving frame."""
    config = self.networks.config
    source, driving = annotations["source"], annotations["driving"]
    if not driving:
      raise DataError("BDMM: no driving annotations")
    num_joints = int(config.bdmm.num_joints)
    joints, valid, warps = [], [], []
    model_warps = self.motion is not None
    for t, frame in enumerate(driving):
      frame_joints = np.asarray(frame["joints"], np.float32)
      if frame_joints.shape != (num_joints, 2):
        raise DataError(f"driving frame {t}: 'joints' is {frame_joints.shape}, the model's "
                        f"bdmm.num_joints is {num_joints} (expected ({num_joints}, 2))")
      joints.append(frame_joints)
      valid.append(np.asarray(frame.get(inputs.OPTIONAL_VALID_KEY,
                                        np.ones(num_joints, bool)), bool))
      if self.warp_source == inputs.SOURCE_COORDS:
        warps.append(inputs.coords_warp(frame["source_coords"], frame["source_visible"]))
      elif not model_warps:
        warps.append(inputs.part_warp(frame["part_labels"], frame["part_transforms"],
                                      source["part_transforms"],
                                      visible_only=bool(config.bdmm.warp_visibility),
                                      labels_r=source["part_labels"]))
    per_frame = {"joints": np.stack(joints), "valid": np.stack(valid)}
    if not model_warps:
      per_frame["warps"] = np.stack(warps)
    return per_frame

  def _warps(self, source, frames) -> jax.Array:
    return _pixel_warps(self.networks, self.motion_params, jnp.asarray(source),
                        jnp.asarray(frames))

  def start(self, source, first_driving, *, annotations):
    frames = self._inputs(annotations)
    reference = objective.to_signed(jnp.asarray(source)[None])
    # The frame before the first is the first itself, as in a training clip starting at 0.
    first_warp = (frames["warps"][:1] if self.motion is None
                  else self._warps(source, first_driving[None]))
    state = _start(self.networks, self.params, reference, frames["joints"][:1],
                   frames["valid"][:1], first_warp)
    return {"frames": frames, "next": 0, "reference": reference, "source": source,
            "state": state}

  def step(self, carry, chunk):
    frames, start = carry["frames"], carry["next"]
    count = len(frames["joints"])
    if start >= count:
      raise DataError(f"BDMM: the driving video has more frames than its {count} annotated ones")
    # Pad the last chunk by its last frame, as `render_chunk` pads the driving frames.
    index = np.minimum(np.arange(start, start + self.batch_size), count - 1)
    if self.motion is None:  # BDMM reads the driving video's poses and warps, not its pixels
      warps = frames["warps"][index]
      post = frames["warps"][min(start + self.batch_size, count - 1)]
    else:
      warps = self._warps(carry["source"], chunk)
      post = warps[-1]
    prediction, state = _chunk(self.networks, self.params, carry["reference"],
                               frames["joints"][index], frames["valid"][index],
                               warps, post, carry["state"])
    return dict(carry, next=start + self.batch_size, state=state), {"prediction": prediction}


def create_renderer(networks, params: dict, config, batch_size: int) -> BDMMRenderer:
  """`Method.renderer`: params holds {"g": G's parameters}."""
  del config  # the networks hold the training config
  return BDMMRenderer(networks, params["g"], batch_size)
