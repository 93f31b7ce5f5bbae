"""BDMM's per-frame inputs and its training clips: skeleton heatmaps, part warps, the example.

BDMM ("Bidirectionally Deformable Motion Modulation for Video-based Human Pose Transfer") conditions
every generated frame t on (i) a skeleton of Gaussian heatmaps, one channel per joint, and (ii) the
reference image warped to frame t's pose, `grid_sample(I_ref, F_ref->t)` (Sec. 3.1-3.2). The
official code (rocketappslab/BDMM) renders F from fitted SMPL meshes; for the synthetic paper doll
(input_pipeline/synthetic.py) the same correspondence is exact and closed-form from its per-part
affine maps, which is what `part_warp` computes.

Coordinates. Joints and affine maps are in pixels, last axis (x, y), pixel (row i, column j)
centred at (x = j, y = i), as the synthetic renderer writes them. Warps are in the project's
normalised align-corners convention (internet_jax/geometry.py: normalised = px * 2 / (size - 1)
- 1, (x, y) last, backward: `geometry.warp(reference, warps[i])` is the reference seen in frame
i's pose).

Training example (`clip_example_fn`; no batch axis, F = num_chunks * chunk_frames, J joints):
  reference         uint8   (H, W, 3)     a frame drawn from the video's first `reference_frames`
  frames            uint8   (F, H, W, 3)  F consecutive frames from a uniform random start
  joints            float32 (F, J, 2)     pixel (x, y) of each frame's joints
  joints_valid      bool    (F, J)        the optional annotation "joints_valid", else all True
  warps             float32 (F, H, W, 2)  part_warp of each clip frame into the reference
  initial_warp      float32 (H, W, 2)     part_warp of the frame before the clip (its first frame
                                          when the clip starts at frame 0): the forward branch's
                                          initial state
  reference_joints  float32 (J, 2)        the reference's joints (panels, reference skeleton)
With `bdmm.warp_source = "source_coords"` the warps are read instead of computed: the annotation
"source_coords" (where each pixel of frame t lies in the video's first frame, pixels; written by
the synthetic renderer, and by `python -m input_pipeline.annotate --warp_dir=...` from per-frame
.flo/.npy warps of any tool) with "source_visible" (False: no correspondence, sent OUTSIDE), and
the reference is always the first frame, the one the warps go into.
With warps from a model (`bdmm.warp_source = "<method>:<workdir>"`) there are no "warps" and no
"initial_warp" (the step makes them from the pixels) and one more key:
  initial_frame     uint8   (H, W, 3)     the frame before the clip (its first frame at start 0)
and the only annotation read is "joints" (and "joints_valid" where present).
The backward branch of each chunk starts from the warp of the frame just after the chunk (the last
chunk: its own last frame; rocketappslab/BDMM: model/dance_model.py set_input). For every chunk
but the last that frame is the next chunk's first frame, so the model takes it from "warps" and
the example needs no extra key.

Against the official code:
* Heatmaps follow rocketappslab/BDMM: util/openpose_utils.py obtain_map exactly,
  exp(-((x - x_j)^2 + (y - y_j)^2) / (2 sigma^2)) on the integer pixel grid, sigma = 6 px at 256^2.
  The official code marks a joint missing when x == 0 or y == 0; we take an explicit mask instead
  (a joint on the first row or column is a real joint).
* Clips follow data/animation_dataset.py get_video_params and data/dance_dataset.py split_ref_gen:
  start uniform in [0, T - F], stride 1, reference uniform over the first 20 frames (it may lie
  inside the clip). Differences: a video shorter than F frames is an error here, while the
  official loader shortens the clip to a multiple of chunk_frames; and the forward branch starts
  from the frame before the clip, while the official training loader uses the clip's first frame
  (its loader reads no frame outside the clip; at inference it uses the frame before the chunk).
* Warps: BDMM samples with `grid_sample(..., align_corners=False)` and gives pixels the target
  mesh does not cover the coordinate -2, so they read 0. We keep the project's one sampler,
  geometry.warp, with its align-corners convention (and zeros outside), and send background
  pixels to -2 likewise. The correspondence is the paper doll's exact one, where BDMM
  interpolates projected SMPL vertices barycentrically.
* `visible_only` (config.bdmm.warp_visibility) is our addition: BDMM has no visibility test, so a
  surface point hidden in the reference samples whatever covers it there.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np

from input_pipeline import pipeline, sources
from input_pipeline.video_io import DataError

# Where pixels without a correspondence are sent (both coordinates), as BDMM's renderer does:
# outside [-1, 1], so a zero-padded sampler reads 0.
OUTSIDE = -2.0

ANNOTATION_KEYS = ("joints", "part_labels", "part_transforms")
POSE_KEYS = ("joints",)  # all a clip reads when a model makes the warps
SOURCE_COORDS = "source_coords"  # the warp_source value that reads the warps from annotations
COORDS_KEYS = ("joints", "source_coords", "source_visible")
OPTIONAL_VALID_KEY = "joints_valid"
DEFAULT_NUM_JOINTS = 15  # the synthetic skeleton (input_pipeline/synthetic.py JOINT_NAMES)


# --- Skeleton heatmaps (inside the jitted step) --------------------------------------------------


def heatmap_sigma(resolution: int, sigma_at_256: float = 6.0) -> float:
  """The heatmap sigma in pixels at `resolution`: BDMM's 6 px at 256^2, scaled linearly."""
  return float(sigma_at_256) * resolution / 256.0


def skeleton_heatmaps(joints: jax.Array, valid: jax.Array, height: int, width: int,
                      sigma: float) -> jax.Array:
  """One Gaussian per joint, exp(-((x - x_j)^2 + (y - y_j)^2) / (2 sigma^2)) (obtain_map).

  Args:
    joints: (..., J, 2) pixel (x, y); pixel centres at integer coordinates, x = column.
    valid: (..., J) bool; invalid joints give an all-zero map (their coordinates are ignored,
      NaN included). Leading axes broadcast against those of `joints`.
    height, width: the map size.
    sigma: in pixels (`heatmap_sigma`).
  Returns:
    (..., H, W, J) float32.
  """
  joints = jnp.asarray(joints, jnp.float32)
  xs = jnp.arange(width, dtype=jnp.float32)
  ys = jnp.arange(height, dtype=jnp.float32)
  scale = -1.0 / (2.0 * float(sigma) ** 2)
  # The Gaussian is separable: (..., 1, W, J) * (..., H, 1, J) costs H + W exponentials per joint.
  gx = jnp.exp(scale * (xs[:, None] - joints[..., None, :, 0]) ** 2)[..., None, :, :]
  gy = jnp.exp(scale * (ys[:, None] - joints[..., None, :, 1]) ** 2)[..., :, None, :]
  valid = jnp.asarray(valid, bool)[..., None, None, :]
  return jnp.where(valid, gx * gy, 0.0).astype(jnp.float32)


# --- Part warps (host, numpy) --------------------------------------------------------------------


def _to_normalized(pixels: np.ndarray, height: int, width: int) -> np.ndarray:
  # geometry's align-corners rule, normalised = px * 2 / (size - 1) - 1.
  scale = np.array([2.0 / max(width - 1, 1), 2.0 / max(height - 1, 1)])
  return pixels * scale - 1.0


def part_warp(labels_t: np.ndarray, transforms_t: np.ndarray, transforms_r: np.ndarray, *,
              visible_only: bool = False, labels_r: np.ndarray | None = None) -> np.ndarray:
  """Where each pixel of frame t is in the reference frame r, for the layered paper doll.

  A pixel p of frame t with label k >= 1 is the surface point u = A_t,k^-1 (p - b_t,k) of part k
  (p = A u + b, input_pipeline/synthetic.py part_transforms), so in frame r it is at
  p_r = A_r,k A_t,k^-1 (p - b_t,k) + b_r,k. Background pixels (label 0) have no correspondence and
  go to OUTSIDE (-2, -2), as BDMM's renderer sends pixels its mesh does not cover.

  Args:
    labels_t: (H, W) integer part labels of frame t (0 background, k = part k - 1).
    transforms_t, transforms_r: (P, 2, 3) affine part-local -> pixel maps [A | b] of frames t, r.
    visible_only: also send OUTSIDE the pixels whose reference position is not owned by their
      part in the reference (the nearest pixel of p_r has another label in `labels_r`) or falls
      outside the frame. Not in BDMM, which samples hidden points from whatever covers them.
    labels_r: (H, W) part labels of frame r; required with visible_only.
  Returns:
    (H, W, 2) float32 normalised align-corners (x, y) positions in the reference frame.
  """
  labels_t = np.asarray(labels_t)
  height, width = labels_t.shape
  a_t = np.asarray(transforms_t, np.float64)[:, :, :2]
  b_t = np.asarray(transforms_t, np.float64)[:, :, 2]
  a_r = np.asarray(transforms_r, np.float64)[:, :, :2]
  b_r = np.asarray(transforms_r, np.float64)[:, :, 2]
  num_parts = a_t.shape[0]
  if labels_t.size and int(labels_t.max()) > num_parts:
    raise ValueError(f"part label {int(labels_t.max())} but only {num_parts} part transforms")
  # Per part, p_r = M p + c with M = A_r A_t^-1, c = b_r - M b_t. Only parts present in frame t
  # are inverted (a part squashed to nothing elsewhere must not fail the frame).
  present = np.unique(labels_t[labels_t > 0]).astype(np.int64) - 1
  matrix = np.zeros((num_parts + 1, 2, 2))
  offset = np.full((num_parts + 1, 2), np.nan)
  if present.size:
    m = a_r[present] @ np.linalg.inv(a_t[present])
    matrix[present + 1] = m
    offset[present + 1] = b_r[present] - np.einsum("kij,kj->ki", m, b_t[present])
  ys, xs = np.mgrid[0:height, 0:width]
  pixels = np.stack([xs, ys], -1).astype(np.float64)
  index = labels_t.astype(np.int64)
  reference = np.einsum("hwij,hwj->hwi", matrix[index], pixels) + offset[index]  # NaN on bg
  keep = index > 0
  if visible_only:
    if labels_r is None:
      raise ValueError("part_warp(visible_only=True) needs labels_r, the reference's part labels")
    labels_r = np.asarray(labels_r)
    # Background has no p_r; -1 is outside, so it stays dropped.
    nearest = np.floor(np.where(keep[..., None], reference, -1.0) + 0.5).astype(np.int64)
    inside = ((nearest[..., 0] >= 0) & (nearest[..., 0] < width)
              & (nearest[..., 1] >= 0) & (nearest[..., 1] < height))
    owner = labels_r[np.clip(nearest[..., 1], 0, height - 1),
                     np.clip(nearest[..., 0], 0, width - 1)]
    keep &= inside & (owner == index)
  out = np.where(keep[..., None], _to_normalized(reference, height, width), OUTSIDE)
  return out.astype(np.float32)


def coords_warp(source_coords: np.ndarray, source_visible: np.ndarray) -> np.ndarray:
  """Stored correspondences -> a warp: (H, W, 2) pixel positions in the reference and (H, W)
  validity -> (H, W, 2) float32 normalised align-corners positions, OUTSIDE where not valid."""
  coords = np.asarray(source_coords, np.float64)
  height, width = coords.shape[:2]
  keep = np.asarray(source_visible, bool) & np.isfinite(coords).all(-1)
  return np.where(keep[..., None], _to_normalized(np.nan_to_num(coords), height, width),
                  OUTSIDE).astype(np.float32)


def annotation_keys_for(warp_source: str) -> tuple[str, ...]:
  """The per-frame annotations BDMM reads with this `bdmm.warp_source`."""
  if warp_source == SOURCE_COORDS:
    return COORDS_KEYS
  return ANNOTATION_KEYS if warp_source == "annotation" else POSE_KEYS


# --- Training clips ------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class ClipParams:
  """The plain-Python subset of the config a training clip needs (cheap to pickle)."""
  chunk_frames: int = 6
  num_chunks: int = 5
  reference_frames: int = 20
  warp_visibility: bool = False
  resolution: int = 256
  num_joints: int = DEFAULT_NUM_JOINTS
  warp_source: str = "annotation"  # bdmm.warp_source

  @property
  def model_warps(self) -> bool:
    """Warps from a motion source (made in the step), not from the annotations."""
    return self.warp_source not in ("annotation", SOURCE_COORDS)

  @property
  def num_frames(self) -> int:
    return self.chunk_frames * self.num_chunks

  @classmethod
  def from_config(cls, config) -> "ClipParams":
    bdmm = config.bdmm
    return cls(chunk_frames=int(bdmm.chunk_frames), num_chunks=int(bdmm.num_chunks),
               reference_frames=int(bdmm.reference_frames),
               warp_visibility=bool(bdmm.warp_visibility),
               resolution=int(config.data.resolution),
               num_joints=int(bdmm.get("num_joints", DEFAULT_NUM_JOINTS)),
               warp_source=str(bdmm.get("warp_source", "annotation")))


def _annotation_keys(source: sources.VideoSource, video: int, warp_source: str) -> list[str]:
  """The keys to read per frame: the required ones (`annotation_keys_for`), plus "joints_valid"
  where the video has it (real pose data marks missing joints; the synthetic figure has none
  missing)."""
  keys = list(annotation_keys_for(warp_source))
  listed = getattr(source, "annotation_keys", None)
  if listed is not None and OPTIONAL_VALID_KEY in listed(video):
    keys.append(OPTIONAL_VALID_KEY)
  return keys


def make_clip_example(source: sources.VideoSource, video: int, rng: np.random.Generator,
                      params: ClipParams,
                      stats: pipeline.StageTimes | None = pipeline.STAGE_TIMES
                      ) -> dict[str, np.ndarray]:
  """One training clip (unbatched; the keys of the module docstring).

  Every random choice comes from `rng`, in a fixed order (start, then reference), so a given rng
  state always gives the same example. Raises a one-line DataError (a ValueError) when the video
  is shorter than the clip or its frames are not resolution x resolution, and the
  `sources.read_annotations` error (naming video, frame and key) when an annotation is missing.
  """
  timer = stats.time if stats is not None else (lambda stage: contextlib.nullcontext())
  name = source.video_name(video)
  num_frames = source.num_frames(video)
  length = params.num_frames
  if num_frames < length:
    raise DataError(f"video {name} has {num_frames} frames; a BDMM training clip needs "
                    f"{length} (num_chunks {params.num_chunks} x chunk_frames "
                    f"{params.chunk_frames})")
  start = int(rng.integers(0, num_frames - length + 1))
  reference_index = int(rng.integers(0, min(params.reference_frames, num_frames)))
  if params.warp_source == SOURCE_COORDS:
    reference_index = 0  # the frame the stored warps go into (the draw keeps the rng order)
  before = max(start - 1, 0)

  keys = _annotation_keys(source, video, params.warp_source)
  with timer("decode"):
    frames = np.stack([np.asarray(source.read_frame(video, t), np.uint8)
                       for t in range(start, start + length)])
    initial_frame = (np.asarray(source.read_frame(video, before), np.uint8)
                     if params.model_warps else None)
    reference = np.asarray(source.read_frame(video, reference_index), np.uint8)
    annotations = {t: sources.read_annotations(source, video, t, keys)
                   for t in sorted({before, reference_index, *range(start, start + length)})}
  r = params.resolution
  if frames.shape[1:] != (r, r, 3):
    raise DataError(f"video {name}: frames are {frames.shape[1:]}, the config's "
                    f"data.resolution is {r} (BDMM's pixel annotations need ({r}, {r}, 3))")

  def joints_of(t):
    joints = np.asarray(annotations[t]["joints"], np.float32)
    if joints.shape != (params.num_joints, 2):
      raise DataError(f"video {name} frame {t}: 'joints' is {joints.shape}, the config's "
                      f"bdmm.num_joints is {params.num_joints} (expected "
                      f"({params.num_joints}, 2))")
    valid = annotations[t].get(OPTIONAL_VALID_KEY)
    valid = np.ones(joints.shape[:1], bool) if valid is None else np.asarray(valid, bool)
    return joints, valid

  clip_joints = [joints_of(t) for t in range(start, start + length)]
  example = {
      "reference": reference,
      "frames": frames,
      "joints": np.stack([joints for joints, _ in clip_joints]),
      "joints_valid": np.stack([valid for _, valid in clip_joints]),
      "reference_joints": joints_of(reference_index)[0],
  }
  if params.model_warps:
    example["initial_frame"] = initial_frame
  else:
    warp_of = _warp_fn(annotations, reference_index, params)
    with timer("flow"):
      warps = np.stack([warp_of(t) for t in range(start, start + length)])
      example["initial_warp"] = warps[0] if before == start else warp_of(before)
      example["warps"] = warps
  if stats is not None:
    stats.count_example()
  return example


def _warp_fn(annotations: dict, reference_index: int, params: ClipParams):
  """t -> the warp of frame t into the reference, from the clip's annotations: the stored
  correspondences (`coords_warp`) or the part maps (`part_warp`)."""
  if params.warp_source == SOURCE_COORDS:
    return lambda t: coords_warp(annotations[t]["source_coords"], annotations[t]["source_visible"])
  reference = annotations[reference_index]
  return lambda t: part_warp(annotations[t]["part_labels"], annotations[t]["part_transforms"],
                             reference["part_transforms"], visible_only=params.warp_visibility,
                             labels_r=reference["part_labels"])


def clip_example_fn(config):
  """`Method.example_fn`: the (source, video, rng) -> clip function with the config's settings
  (a functools.partial of a module-level function: it pickles into grain workers)."""
  return functools.partial(make_clip_example, params=ClipParams.from_config(config))


def clip_batch_shapes(config, batch_size: int) -> dict[str, jax.ShapeDtypeStruct]:
  """`Method.batch_shapes`: the clip keys with a leading batch axis."""
  params = ClipParams.from_config(config)
  b, f, r, j = batch_size, params.num_frames, params.resolution, params.num_joints
  shape = jax.ShapeDtypeStruct
  shapes = {
      "reference": shape((b, r, r, 3), jnp.uint8),
      "frames": shape((b, f, r, r, 3), jnp.uint8),
      "joints": shape((b, f, j, 2), jnp.float32),
      "joints_valid": shape((b, f, j), jnp.bool_),
      "reference_joints": shape((b, j, 2), jnp.float32),
  }
  if params.model_warps:
    shapes["initial_frame"] = shape((b, r, r, 3), jnp.uint8)
  else:
    shapes["warps"] = shape((b, f, r, r, 2), jnp.float32)
    shapes["initial_warp"] = shape((b, r, r, 2), jnp.float32)
  return shapes
