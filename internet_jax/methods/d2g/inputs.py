"""D2G-Net's inputs: training pairs, the pose label, and the initial texture and background (the
Robust-SSIM/PSNR test poses are the shared evaluation's, internet_jax/metrics/poses.py).

D2G-Net ("Robust Pose Transfer with Dynamic Details using Neural Video Rendering") is trained per
person on the frames of one video. Each step sees consecutive pairs (t - 1, t) (its temporal loss,
Eq. 5, warps the synthesised frame t - 1 to frame t with the backward flow of frame t), every
frame is generated from a colour render of its skeleton on white (the pose label), and the
DensePose part labels and UV coordinates supervise its TransG network (SunYangtian/
Neural-Human-Video-Rendering: models/pix2pixHD_Avatar.py forward, data/aligned_dataset.py). The
synthetic paper doll (input_pipeline/synthetic.py) gives all of these exactly: `joints` for the
skeleton, `part_labels` (11 parts, not DensePose's 24) and `uv` in [0, 1] per part, and the exact
flows `flow_forward` / `flow_backward` with `valid_backward` in place of FlowNet2's flows and the
forward-backward confidence (`cal_conf`).

Coordinates. Joints and flows are in pixels, last axis (x, y), pixel (row i, column j) centred at
(x = j, y = i), as the synthetic renderer writes them. Flows of the pair (t - 1, t) are stored with
frame t (input_pipeline/annotations.py): frame t's `flow_backward` moves the pixels of frame t to
frame t - 1 (D2G-Net's `flow_inv`, with which `backwarp(I^{t-1}, flow_inv)` is frame t) and its
`flow_forward` the pixels of frame t - 1 to frame t (D2G-Net's `flow`).

Training example (`pair_example_fn`; no batch axis, J joints, P parts):
  frames          uint8   (2, H, W, 3)  frames t - 1 and t, t uniform in [1, T - 1]
  joints          float32 (2, J, 2)     pixel (x, y) of their joints
  joints_valid    bool    (2, J)        the optional annotation "joints_valid", else all True
  person_mask     bool    (2, H, W)     the optional annotation "mask", else part_labels > 0
  part_labels     int32   (2, H, W)     0 background, 1..P the parts        [d2g.densepose only]
  uv              float32 (2, H, W, 2)  (u, v) in [0, 1] of the labelled part (0 on background)
                                                                            [d2g.densepose only]
  flow_backward   float32 (H, W, 2)     frame t's annotation: pixels of t -> t - 1
  flow_forward    float32 (H, W, 2)     frame t's annotation: pixels of t - 1 -> t
  valid_backward  bool    (H, W)        frame t's annotation: where flow_backward is valid

Real videos (input_pipeline/annotate.py makes the .npz from OpenPose JSON, DensePose IUV PNGs,
person-mask PNGs and OpenCV DIS flows): without DensePose, `d2g.densepose = False` drops the
part labels and UV, as the code's `use_densepose_loss = False` does (its `init_loss_filter`), and
the person mask then comes from the "mask" annotation (the code's Human-Segmentation masks).

Against the official code: it reads every frame of the one video (split 9:1 on contiguous
indices), a frame and its predecessor per example; here a pair is drawn uniformly from any video
of the source (a single-person synthetic dataset, --person_seed, is one person in many videos).
"""

from __future__ import annotations

import colorsys
import contextlib
import dataclasses
import functools
import sys
from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np
from tqdm import tqdm

from input_pipeline import pipeline, sources
from input_pipeline import synthetic
from input_pipeline.video_io import DataError

FLOW_KEYS = ("flow_forward", "flow_backward", "valid_backward")
DENSEPOSE_KEYS = ("part_labels", "uv")
OPTIONAL_VALID_KEY = "joints_valid"
MASK_KEY = "mask"  # the person mask of real video (else part_labels > 0)

_JOINT = {name: index for index, name in enumerate(synthetic.JOINT_NAMES)}
# The synthetic skeleton (input_pipeline/synthetic.py JOINT_NAMES) as (joint, joint) bones, drawn
# in this order: head-neck, neck-pelvis, then each side's shoulder, arm, hip and leg.
SYNTHETIC_BONES = tuple((_JOINT[a], _JOINT[b]) for a, b in (
    ("head", "neck"), ("neck", "pelvis"),
    ("neck", "shoulder_left"), ("shoulder_left", "elbow_left"), ("elbow_left", "wrist_left"),
    ("neck", "shoulder_right"), ("shoulder_right", "elbow_right"), ("elbow_right", "wrist_right"),
    ("pelvis", "hip_left"), ("hip_left", "knee_left"), ("knee_left", "ankle_left"),
    ("pelvis", "hip_right"), ("hip_right", "knee_right"), ("knee_right", "ankle_right")))

# OpenPose BODY_25 (CMU-Perceptual-Computing-Lab/openpose: include/openpose/pose/poseParameters.hpp
# POSE_BODY_25_PAIRS_RENDER_GPU): 0 nose, 1 neck, 2-4 right arm, 5-7 left arm, 8 mid hip, 9-11
# right leg, 12-14 left leg, 15-18 eyes and ears, 19-24 feet.
BODY_25_BONES = ((1, 8), (1, 2), (1, 5), (2, 3), (3, 4), (5, 6), (6, 7), (8, 9), (9, 10), (10, 11),
                 (8, 12), (12, 13), (13, 14), (1, 0), (0, 15), (15, 17), (0, 16), (16, 18),
                 (14, 19), (19, 20), (14, 21), (11, 22), (22, 23), (11, 24))
# The skeletons by their number of joints. Both put the head (the synthetic head's centre,
# BODY_25's nose) at index 0 and the ankles at 11 and 14.
SKELETON_BONES = {len(synthetic.JOINT_NAMES): SYNTHETIC_BONES, 25: BODY_25_BONES}
HEAD, ANKLES = 0, (11, 14)


def bones_for(num_joints: int) -> tuple[tuple[int, int], ...]:
  """The bones of the skeleton with `num_joints` joints; a one-line ValueError for another."""
  if num_joints not in SKELETON_BONES:
    raise ValueError(f"config.d2g.num_joints: {num_joints} joints is no known skeleton; known: "
                     "15 (the synthetic figure), 25 (OpenPose BODY_25)")
  return SKELETON_BONES[num_joints]


# --- The pose label (inside the jitted step and at inference) ------------------------------------


def bone_colours(num_bones: int) -> np.ndarray:
  """(num_bones, 3) float32 RGB in [0, 1]: bone i has the fully saturated hue i / num_bones, a
  rainbow like OpenPose's limb colours (CMU-Perceptual-Computing-Lab/openpose:
  include/openpose/pose/poseParametersRender.hpp), distinct for every bone."""
  return np.array([colorsys.hsv_to_rgb(i / max(num_bones, 1), 1.0, 1.0)
                   for i in range(num_bones)], np.float32).reshape(num_bones, 3)


# The colours of SYNTHETIC_BONES, in its order.
BONE_COLOURS = bone_colours(len(SYNTHETIC_BONES))


def default_thickness(height: int) -> float:
  """Bone thickness in pixels at frame height `height`: max(1.5, height / 64), i.e. 1.5 px at 64^2,
  4 px at 256^2, 8 px at 512^2. D2G-Net draws OpenPose's skeleton (4 px sticks, the
  openpose/pytorch-openpose demo's stickwidth) at 1024^2 and resizes it to 512^2, so 2 px there;
  we draw thicker lines, and at least 1.5 px, so that a bone stays a continuous, anti-aliased
  line at the small resolutions of the synthetic data and after the networks' downsampling."""
  return max(1.5, float(height) / 64.0)


def pose_label(joints: jax.Array, valid: jax.Array, height: int, width: int,
               bones: Sequence[tuple[int, int]] = SYNTHETIC_BONES,
               thickness: float | None = None) -> jax.Array:
  """D2G-Net's pose label: the skeleton drawn in colour on white, in [-1, 1] (its `getOpenpose`
  renders OpenPose BODY_25 on white and normalises it like the images).

  Bone i is the segment between its two joints, of width `thickness`, in colour
  `bone_colours(len(bones))[i]`, anti-aliased: a pixel centre at distance d from the segment is
  covered by clip(thickness / 2 + 1/2 - d, 0, 1) (a one-pixel ramp centred on the line's edge), and
  the bone is composited over what is drawn so far, image += coverage * (colour - image), so later
  bones lie over earlier ones. A bone with an invalid end joint is not drawn.

  Args:
    joints: (..., J, 2) pixel (x, y); pixel centres at integer coordinates, x = column.
    valid: (..., J) bool; the coordinates of invalid joints are ignored (NaN included).
    height, width: the label's size.
    bones: (joint index, joint index) pairs; SYNTHETIC_BONES for the synthetic skeleton.
    thickness: line width in pixels; None: `default_thickness(height)`.
  Returns:
    (..., H, W, 3) float32 in [-1, 1], white (1) where no bone is drawn.
  """
  if thickness is None:
    thickness = default_thickness(height)
  valid = jnp.asarray(valid, bool)
  joints = jnp.where(valid[..., None], jnp.asarray(joints, jnp.float32), 0.0)
  colours = bone_colours(len(bones))
  xs = jnp.arange(width, dtype=jnp.float32)[None, :]
  ys = jnp.arange(height, dtype=jnp.float32)[:, None]
  lead = joints.shape[:-2]
  image = jnp.ones(lead + (height, width, 3), jnp.float32)
  half = 0.5 * float(thickness) + 0.5
  for index, (a, b) in enumerate(bones):
    start = joints[..., a, :][..., None, None, :]  # (..., 1, 1, 2)
    delta = joints[..., b, :][..., None, None, :] - start
    px = xs - start[..., 0]
    py = ys - start[..., 1]
    dx, dy = delta[..., 0], delta[..., 1]
    length2 = dx * dx + dy * dy
    # The nearest point of the segment; a zero-length bone is a dot.
    t = jnp.clip((px * dx + py * dy) / jnp.maximum(length2, 1e-12), 0.0, 1.0)
    distance = jnp.sqrt((px - t * dx) ** 2 + (py - t * dy) ** 2)
    coverage = jnp.clip(half - distance, 0.0, 1.0)
    drawn = (valid[..., a] & valid[..., b])[..., None, None]
    coverage = jnp.where(drawn, coverage, 0.0)[..., None]
    image = image + coverage * (jnp.asarray(colours[index]) - image)
  return image * 2.0 - 1.0


# --- Training pairs -------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class PairParams:
  """The plain-Python subset of the config a training pair needs (cheap to pickle)."""
  resolution: int = 256
  num_joints: int = len(synthetic.JOINT_NAMES)
  num_parts: int = len(synthetic.PART_NAMES)
  densepose: bool = True

  @classmethod
  def from_config(cls, config) -> "PairParams":
    return cls(resolution=int(config.data.resolution), num_joints=int(config.d2g.num_joints),
               num_parts=int(config.d2g.num_parts),
               densepose=bool(config.d2g.get("densepose", True)))


def _listed_keys(source: sources.VideoSource, video: int) -> tuple[str, ...]:
  listed = getattr(source, "annotation_keys", None)
  return tuple(listed(video)) if listed is not None else ()


def _frame_keys(source: sources.VideoSource, video: int, densepose: bool,
                flows: bool) -> list[str]:
  """The keys a frame of a pair reads: joints, the DensePose keys if `densepose`, the flow keys
  if `flows` (frame t; frame t - 1's flows are those of the pair (t - 2, t - 1), unused), and
  "joints_valid" and "mask" where the video has them (the person mask is required when there
  are no part labels to make it from)."""
  listed = _listed_keys(source, video)
  keys = ["joints"] + (list(DENSEPOSE_KEYS) if densepose else []) + (
      list(FLOW_KEYS) if flows else [])
  keys += [key for key in (OPTIONAL_VALID_KEY,) if key in listed]
  if MASK_KEY in listed or not densepose:
    keys.append(MASK_KEY)
  return keys


def make_pair_example(source: sources.VideoSource, video: int, rng: np.random.Generator,
                      params: PairParams,
                      stats: pipeline.StageTimes | None = pipeline.STAGE_TIMES
                      ) -> dict[str, np.ndarray]:
  """One training pair (t - 1, t) of video `video` (unbatched; the keys of the module docstring).

  t is uniform in [1, T - 1], the only random choice (from `rng`). Raises a one-line DataError (a
  ValueError) for a video of fewer than 2 frames, frames that are not resolution x resolution,
  joints that are not (num_joints, 2) or a part label above num_parts, and the
  `sources.read_annotations` error (naming video, frame and key) when an annotation is missing.
  """
  timer = stats.time if stats is not None else (lambda stage: contextlib.nullcontext())
  name = source.video_name(video)
  num_frames = source.num_frames(video)
  if num_frames < 2:
    raise DataError(f"video {name} has {num_frames} frame(s); a D2G-Net training pair needs 2 "
                    "(frames t - 1 and t)")
  t = int(rng.integers(1, num_frames))
  with timer("decode"):
    frames = np.stack([np.asarray(source.read_frame(video, s), np.uint8) for s in (t - 1, t)])
    previous = sources.read_annotations(
        source, video, t - 1, _frame_keys(source, video, params.densepose, flows=False))
    current = sources.read_annotations(
        source, video, t, _frame_keys(source, video, params.densepose, flows=True))
  r = params.resolution
  if frames.shape[1:] != (r, r, 3):
    raise DataError(f"video {name}: frames are {frames.shape[1:]}, the config's data.resolution "
                    f"is {r} (D2G-Net's pixel annotations need ({r}, {r}, 3))")

  def joints_of(s, annotations):
    joints = np.asarray(annotations["joints"], np.float32)
    if joints.shape != (params.num_joints, 2):
      raise DataError(f"video {name} frame {s}: 'joints' is {joints.shape}, the config's "
                      f"d2g.num_joints is {params.num_joints} (expected ({params.num_joints}, 2))")
    valid = annotations.get(OPTIONAL_VALID_KEY)
    valid = np.ones(joints.shape[:1], bool) if valid is None else np.asarray(valid, bool)
    return joints, valid

  def labels_of(s, annotations):
    labels = np.asarray(annotations["part_labels"]).astype(np.int32)
    if labels.size and int(labels.max()) > params.num_parts:
      raise DataError(f"video {name} frame {s}: 'part_labels' has label {int(labels.max())}, "
                      f"the config's d2g.num_parts is {params.num_parts}")
    return labels

  def person_of(s, annotations):
    mask = annotations.get(MASK_KEY)
    mask = labels_of(s, annotations) > 0 if mask is None else np.asarray(mask, bool)
    if mask.shape != (r, r):
      raise DataError(f"video {name} frame {s}: 'mask' is {mask.shape}, expected ({r}, {r})")
    return mask

  pair = ((t - 1, previous), (t, current))
  joints = [joints_of(s, a) for s, a in pair]
  example = {
      "frames": frames,
      "joints": np.stack([j for j, _ in joints]),
      "joints_valid": np.stack([v for _, v in joints]),
      "person_mask": np.stack([person_of(s, a) for s, a in pair]),
  }
  if params.densepose:
    example["part_labels"] = np.stack([labels_of(s, a) for s, a in pair])
    example["uv"] = np.stack([np.asarray(a["uv"], np.float32) for _, a in pair])
  example.update({
      "flow_backward": np.asarray(current["flow_backward"], np.float32),
      "flow_forward": np.asarray(current["flow_forward"], np.float32),
      "valid_backward": np.asarray(current["valid_backward"], bool),
  })
  if stats is not None:
    stats.count_example()
  return example


def pair_example_fn(config):
  """`Method.example_fn`: the (source, video, rng) -> pair function with the config's settings
  (a functools.partial of a module-level function: it pickles into grain workers)."""
  return functools.partial(make_pair_example, params=PairParams.from_config(config))


def pair_batch_shapes(config, batch_size: int) -> dict[str, jax.ShapeDtypeStruct]:
  """`Method.batch_shapes`: the pair keys with a leading batch axis."""
  params = PairParams.from_config(config)
  b, r, j = batch_size, params.resolution, params.num_joints
  shape = jax.ShapeDtypeStruct
  shapes = {
      "frames": shape((b, 2, r, r, 3), jnp.uint8),
      "joints": shape((b, 2, j, 2), jnp.float32),
      "joints_valid": shape((b, 2, j), jnp.bool_),
      "person_mask": shape((b, 2, r, r), jnp.bool_),
      "flow_backward": shape((b, r, r, 2), jnp.float32),
      "flow_forward": shape((b, r, r, 2), jnp.float32),
      "valid_backward": shape((b, r, r), jnp.bool_),
  }
  if params.densepose:
    shapes["part_labels"] = shape((b, 2, r, r), jnp.int32)
    shapes["uv"] = shape((b, 2, r, r, 2), jnp.float32)
  return shapes


# --- The initial texture and background (host, numpy) ---------------------------------------------


def _frames_to_read(source: sources.VideoSource, max_frames: int | None,
                    videos: Sequence[int] | None) -> list[tuple[int, int]]:
  """(video, frame) in order: every frame of `videos` (default all), the first max_frames."""
  if max_frames is not None and (isinstance(max_frames, bool) or int(max_frames) < 1):
    raise ValueError(f"max_frames: must be an integer >= 1 or None, got {max_frames!r}")
  chosen = range(len(source)) if videos is None else [int(v) for v in videos]
  todo = [(v, t) for v in chosen for t in range(source.num_frames(v))]
  return todo if max_frames is None else todo[:int(max_frames)]


def unfold_texture(source: sources.VideoSource, num_parts: int, texture_size: int,
                   max_frames: int | None = None,
                   videos: Sequence[int] | None = None) -> np.ndarray:
  """The initial RGB texture: every labelled pixel's colour unfolded into its part's texture.

  D2G-Net's `texture.jpg` (SunYangtian/Neural-Human-Video-Rendering: unfold_texture.py, the first
  5000 frames, texel [v * 199, u * 199] of a 200^2 texture per part). For every pixel with part
  label k >= 1 of the frames read, its colour goes to texel [row = round(v (S - 1)),
  col = round(u (S - 1))] (np.rint) of part k, with (u, v) the pixel's `uv`; each texel is the
  average of all its writes. Two differences from that code: it keeps the last write of a frame
  and averages over frames (here every write counts), and it leaves texels never written as they
  are (zero); here they get the mean colour of their part's written texels (0.5 grey for a part
  never seen), because the soft, per-part-probability composition samples the texture near part
  seams and edges too, where black texels would bleed dark fringes into the first renders.

  Args:
    source: a VideoSource serving "part_labels" and "uv" (input_pipeline/synthetic.py writes them).
    num_parts: P; labels above it are an error.
    texture_size: S, the texture's height and width per part.
    max_frames: read at most this many frames in total (in video order), None: all.
    videos: the video indices to read, None: all videos of the source.
  Returns:
    (P, S, S, 3) float32 RGB in [0, 1]; part k's texture at index k - 1.
  """
  size = int(texture_size)
  if size < 1:
    raise ValueError(f"texture_size: must be an integer >= 1, got {texture_size!r}")
  todo = _frames_to_read(source, max_frames, videos)
  texels = num_parts * size * size
  sums = np.zeros((texels, 3), np.float64)
  counts = np.zeros(texels, np.int64)
  for video, frame in tqdm(todo, desc="unfolding the texture", unit="frame", file=sys.stderr,
                           disable=None):  # None: no bar in non-TTY logs
    annotations = sources.read_annotations(source, video, frame, ("part_labels", "uv"))
    labels = np.asarray(annotations["part_labels"]).astype(np.int64)
    if labels.size and int(labels.max()) > num_parts:
      raise DataError(f"video {source.video_name(video)} frame {frame}: 'part_labels' has label "
                      f"{int(labels.max())}, but the texture has {num_parts} parts")
    owned = labels > 0
    uv = np.asarray(annotations["uv"], np.float64)[owned]
    rows = np.rint(np.clip(uv[:, 1], 0.0, 1.0) * (size - 1)).astype(np.int64)
    cols = np.rint(np.clip(uv[:, 0], 0.0, 1.0) * (size - 1)).astype(np.int64)
    index = ((labels[owned] - 1) * size + rows) * size + cols
    colours = np.asarray(source.read_frame(video, frame), np.float64)[owned] / 255.0
    counts += np.bincount(index, minlength=texels)
    for channel in range(3):
      sums[:, channel] += np.bincount(index, colours[:, channel], minlength=texels)
  written = counts > 0
  texture = np.where(written[:, None], sums / np.maximum(counts, 1)[:, None], 0.0)
  texture = texture.reshape(num_parts, size * size, 3)
  written = written.reshape(num_parts, size * size)
  for part in range(num_parts):
    seen = written[part]
    fill = texture[part][seen].mean(0) if seen.any() else np.full(3, 0.5)
    texture[part][~seen] = fill
  return texture.reshape(num_parts, size, size, 3).astype(np.float32)


def _histogram_median(histogram: np.ndarray, block: int = 1 << 16) -> np.ndarray:
  """np.median of the values each row of a histogram (N, 256) counts (the mean of the two middle
  values for an even count); NaN where it counts nothing. Rows are done `block` at a time, which
  bounds the cumulative counts' memory."""
  medians = np.empty(len(histogram))
  for start in range(0, len(histogram), block):
    rows = histogram[start:start + block].astype(np.int64)
    count = rows.sum(-1)
    cumulative = np.cumsum(rows, -1)
    low_rank = np.maximum((count + 1) // 2, 1)  # 1-based ranks of the two middle values
    high_rank = count // 2 + 1
    low = np.argmax(cumulative >= low_rank[:, None], -1)
    high = np.argmax(cumulative >= high_rank[:, None], -1)
    medians[start:start + block] = np.where(count > 0, 0.5 * (low + high), np.nan)
  return medians


def static_background(source: sources.VideoSource, max_frames: int | None = None,
                      videos: Sequence[int] | None = None) -> np.ndarray:
  """The static background: per pixel and channel, the median over the frames read of its colour
  outside the person (the "mask" annotation where a video has it, else part_labels == 0; the
  synthetic backdrop is static; D2G-Net's `bg.jpg` is DeepFill
  inpainting averaged over frames, which real video needs and the synthetic data does not).

  A pixel that is never background (the figure covers it in every frame read) gets the median over
  all background pixels of all frames read, per channel. The medians come from per-pixel 256-bin
  histograms of the uint8 colours, so memory does not grow with the number of frames; they equal
  np.median (the mean of the two middle values for an even count).

  Args:
    source: a VideoSource serving "mask" or "part_labels".
    max_frames: read at most this many frames in total (in video order), None: all.
    videos: the video indices to read, None: all videos of the source.
  Returns:
    (H, W, 3) float32 RGB in [0, 1].
  """
  todo = _frames_to_read(source, max_frames, videos)
  if not todo:
    raise DataError("static_background: no frames to read")
  histogram = None
  for video, frame in tqdm(todo, desc="median background", unit="frame", file=sys.stderr,
                           disable=None):  # None: no bar in non-TTY logs
    image = np.asarray(source.read_frame(video, frame), np.uint8)
    key = MASK_KEY if MASK_KEY in _listed_keys(source, video) else "part_labels"
    person = np.asarray(sources.read_annotations(source, video, frame, (key,))[key])
    person = person.astype(bool) if key == MASK_KEY else person > 0
    if histogram is None:
      shape = image.shape
      # One count per frame at most: 16 bits hold up to 65535 frames.
      histogram = np.zeros((image.size, 256), np.uint16 if len(todo) < 1 << 16 else np.uint32)
      cells = np.arange(image.size).reshape(shape)
    if image.shape != shape:
      raise DataError(f"video {source.video_name(video)} frame {frame}: {image.shape}, the "
                      f"frames before are {shape}")
    background = ~person
    # Each (pixel, channel) cell is counted at most once per frame, so += on fancy indices is exact.
    histogram[cells[background].ravel(), image[background].ravel()] += 1
  median = _histogram_median(histogram).reshape(shape)
  overall = _histogram_median(histogram.reshape(-1, 3, 256).sum(0, dtype=np.int64))
  median = np.where(np.isnan(median), overall, median)
  if np.isnan(median).any():  # no background pixel in any frame read
    median = np.where(np.isnan(median), 127.5, median)
  return (median / 255.0).astype(np.float32)
