"""BDMM inference over whole videos (`Method.renderer`): non-overlapping chunks of `batch_size`
frames with the recurrent state carried from chunk to chunk, as the official code tests
(rocketappslab/BDMM, test.py with model/dance_model.py: chunks of max_frames_per_gpu = 6).

BDMM does not look at the driving frames: it reads their poses and the warp of every frame into
the source (reference) frame. Both come from per-frame annotations (input_pipeline/annotations.py)
of the source frame and of the driving frames: joints -> skeleton heatmaps; part labels and part
transforms -> `inputs.part_warp` (the layered figure's exact correspondence). The shared code
passes them as `annotations=` (`inference.annotation_options`).
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

  annotation_keys = inputs.ANNOTATION_KEYS
  optional_annotation_keys = (inputs.OPTIONAL_VALID_KEY,)

  def __init__(self, networks, params, batch_size: int):
    super().__init__(networks.config.data.resolution, batch_size)
    self.networks = networks
    self.params = jax.device_put(params)

  def _inputs(self, annotations: dict) -> dict[str, np.ndarray]:
    """Joints, validity and warps (into the source frame) of every driving frame."""
    config = self.networks.config
    source, driving = annotations["source"], annotations["driving"]
    if not driving:
      raise DataError("BDMM: no driving annotations")
    num_joints = int(config.bdmm.num_joints)
    joints, valid, warps = [], [], []
    for t, frame in enumerate(driving):
      frame_joints = np.asarray(frame["joints"], np.float32)
      if frame_joints.shape != (num_joints, 2):
        raise DataError(f"driving frame {t}: 'joints' is {frame_joints.shape}, the model's "
                        f"bdmm.num_joints is {num_joints} (expected ({num_joints}, 2))")
      joints.append(frame_joints)
      valid.append(np.asarray(frame.get(inputs.OPTIONAL_VALID_KEY,
                                        np.ones(num_joints, bool)), bool))
      warps.append(inputs.part_warp(frame["part_labels"], frame["part_transforms"],
                                    source["part_transforms"],
                                    visible_only=bool(config.bdmm.warp_visibility),
                                    labels_r=source["part_labels"]))
    return {"joints": np.stack(joints), "valid": np.stack(valid), "warps": np.stack(warps)}

  def start(self, source, first_driving, *, annotations):
    del first_driving  # BDMM reads the driving video's poses and warps, not its pixels
    frames = self._inputs(annotations)
    reference = objective.to_signed(jnp.asarray(source)[None])
    # The frame before the first is the first itself, as in a training clip starting at 0.
    state = _start(self.networks, self.params, reference, frames["joints"][:1],
                   frames["valid"][:1], frames["warps"][:1])
    return {"frames": frames, "next": 0, "reference": reference, "state": state}

  def step(self, carry, chunk):
    del chunk
    frames, start = carry["frames"], carry["next"]
    count = len(frames["warps"])
    if start >= count:
      raise DataError(f"BDMM: the driving video has more frames than its {count} annotated ones")
    # Pad the last chunk by its last frame, as `render_chunk` pads the driving frames.
    index = np.minimum(np.arange(start, start + self.batch_size), count - 1)
    post = frames["warps"][min(start + self.batch_size, count - 1)]
    prediction, state = _chunk(self.networks, self.params, carry["reference"],
                               frames["joints"][index], frames["valid"][index],
                               frames["warps"][index], post, carry["state"])
    return dict(carry, next=start + self.batch_size, state=state), {"prediction": prediction}


def create_renderer(networks, params: dict, config, batch_size: int) -> BDMMRenderer:
  """`Method.renderer`: params holds {"g": G's parameters}."""
  del config  # the networks hold the training config
  return BDMMRenderer(networks, params["g"], batch_size)
