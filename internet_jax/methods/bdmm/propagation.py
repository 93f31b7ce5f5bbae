"""BDMM over a chunk of frames: the bidirectional propagation and the sequential decoder as
`lax.scan`s of the generator's one-step methods (rocketappslab/BDMM, model/networks/generator.py
`DanceGenerator.forward`; the paper's Sec. 3.2, Eqs. 6-7).

Per chunk of F frames:
* the reference warped to every frame (geometry.warp; background coordinates lie outside, so it
  reads 0, mid-grey in [-1, 1], as the code's grid_sample of its -2 coordinates) goes through the
  warp encoder;
* forward branch: a scan over t = 0..F-1 from the carried forward state (at the first chunk of a
  video: the warp features of the frame before the clip);
* backward branch: a reversed scan from the warp features of the frame just after the chunk (the
  last chunk: its own last frame), re-initialised every chunk: one frame of look-ahead;
* decoder: a scan over t = 0..F-1 carrying the previous output (at the first chunk: the
  reference) and the recurrent structural state.

The carry between chunks is {previous, structure, forward}; training stops its gradient at chunk
boundaries (truncated backpropagation through time, as the code's `detach`), inference carries it
over the whole video. Ablations (the paper's Table 2): without forward / backward propagation the
branch's states are zeros (its DMM then sees no warped appearance); without the recurrent
structural flow each frame's structure merges with itself instead of the previous state.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from internet_jax import geometry
from internet_jax.methods.bdmm.generator import Generator


def _warp_features(generator, params, reference, warps):
  """Warp features of the reference warped by each of `warps` (..., B, R, R, 2): leading axes
  folded into the batch for one encoder pass."""
  lead = warps.shape[:-4]
  batch = warps.shape[-4]
  flat = warps.reshape((-1,) + warps.shape[-3:])
  references = jnp.broadcast_to(reference, lead + reference.shape).reshape(
      (-1,) + reference.shape[1:])
  features = generator.apply(params, geometry.warp(references, flat),
                             method=Generator.warp_features)
  return jax.tree.map(lambda f: f.reshape(lead + (batch,) + f.shape[1:]), features)


def initial_carry(generator, params, reference, first_skeleton, initial_warp) -> dict:
  """The carry entering a video's first chunk: previous output = the reference, the structural
  state of the first frame (the code's uv_state = u_0), forward state = the warp features of
  the frame before the clip."""
  structure = generator.apply(params, first_skeleton, reference, method=Generator.structure)
  forward = _warp_features(generator, params, reference, initial_warp)
  return {"previous": reference.astype(jnp.float32), "structure": structure, "forward": forward}


def generate_chunk(generator, params, reference, skeletons, warps, post_warp, carry: dict, *,
                   forward_propagation: bool = True, backward_propagation: bool = True,
                   recurrent_structure: bool = True) -> tuple[jax.Array, dict]:
  """One chunk: reference (B, R, R, 3) in [-1, 1], skeletons (F, B, R, R, J), warps
  (F, B, R, R, 2) and post_warp (B, R, R, 2) in normalised coordinates -> (frames
  (F, B, R, R, 3) in [-1, 1], the carry after the chunk)."""
  style = generator.apply(params, reference, method=Generator.style)
  features = _warp_features(generator, params, reference, warps)

  def step(method):
    def body(state, frame_features):
      state = generator.apply(params, frame_features, state, method=method)
      return state, state
    return body

  if forward_propagation:
    last_forward, forward = jax.lax.scan(step(Generator.propagate_forward), carry["forward"],
                                         features)
  else:
    forward = jax.tree.map(jnp.zeros_like, features)
    last_forward = jax.tree.map(lambda f: f[-1], forward)
  if backward_propagation:
    post = _warp_features(generator, params, reference, post_warp)
    _, backward = jax.lax.scan(step(Generator.propagate_backward), post, features, reverse=True)
  else:
    backward = jax.tree.map(jnp.zeros_like, features)

  def decode(state, inputs):
    previous, structural_state = state
    skeleton, forward_state, backward_state = inputs
    structure = generator.apply(params, skeleton, previous, method=Generator.structure)
    x = generator.apply(params, structural_state if recurrent_structure else structure,
                        structure, method=Generator.structural_flow)
    frame = generator.apply(params, x, style, forward_state, backward_state,
                            method=Generator.decode)
    return (frame, x), frame

  (last_frame, last_structure), frames = jax.lax.scan(
      decode, (carry["previous"], carry["structure"]), (skeletons, forward, backward))
  return frames, {"previous": last_frame, "structure": last_structure, "forward": last_forward}


def generate_clip(generator, params, reference, skeletons, warps, initial_warp, chunk_frames,
                  **switches: Any) -> jax.Array:
  """A whole clip (F = chunks x chunk_frames frames, leading axis F) chunk by chunk with the
  carry passed on, as inference runs a video: frames (F, B, R, R, 3). The post warp of a chunk is
  the next chunk's first warp, the last chunk's its own last."""
  num_frames = skeletons.shape[0]
  carry = initial_carry(generator, params, reference, skeletons[0], initial_warp)
  outputs = []
  for start in range(0, num_frames, chunk_frames):
    stop = start + chunk_frames
    post = warps[min(stop, num_frames - 1)]
    frames, carry = generate_chunk(generator, params, reference, skeletons[start:stop],
                                   warps[start:stop], post, carry, **switches)
    outputs.append(frames)
  return jnp.concatenate(outputs, axis=0)
