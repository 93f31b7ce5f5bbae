r"""Annotates a real video for training: its frames at the dataset's resolution and the per-frame
annotation .npz (input_pipeline/annotations.py) made from pose tools' outputs and optical flow.

  python -m input_pipeline.annotate --video=PATH --output_dir=DIR --resolution=R \
      [--openpose_dir=D] [--densepose_dir=D] [--mask_dir=D] [--warp_dir=D] [--flows=true] \
      [--flow_preset=medium] [--pose_threshold=0.05] [--overwrite]

PATH is a video file (.mp4, .mov, ...) or a folder of frame images (input_pipeline/video_io.py).
The command writes

  DIR/<name>/000000.png, 000001.png, ...   the frames brought to R x R by video_io.resize_and_pad,
                                           the transform the dataset builder applies, so that
                                           preparing DIR/<name> again changes no pixel;
  DIR/<name>.npz                           the annotations below (annotations.write_npz),

where <name> is video_io.video_name(PATH). Put both in a split folder (train/, test/) of a
dataset. Everything is written under temporary names in DIR and renamed into place at the end:
bad input, an error or an interrupt leaves nothing half-written. An existing DIR/<name> or
DIR/<name>.npz is an error unless --overwrite.

Inputs (all frame-indexed inputs must come from the video's own frames, at their native size):

* --openpose_dir: OpenPose's --write_json output, one file per frame named
  `<anything>_<12-digit frame index>_keypoints.json`, holding
  {"people": [{"pose_keypoints_2d": [x0, y0, c0, x1, y1, c1, ...]}, ...]} with the 25 joints of
  the BODY_25 model (75 numbers; OpenPose writes a joint it did not find as 0, 0, 0). Frame t is
  the file whose name carries the index t (not the t-th file); other files are ignored. When a
  frame shows several people, the one with the largest summed confidence is taken (the
  single-person setting D2G-Net trains on); a frame with nobody has no valid joint.
* --densepose_dir: DensePose IUV images, one PNG per frame, frame t the t-th in natural sort
  order (frame2 before frame10); where some names end in `_IUV.png` only those count (DensePose's
  infer_simple also writes `_INDS.png` beside them). Each is what the original DensePose writes,
  cv2.imwrite of the uint8 array [I, U * 255, V * 255]: read back with cv2.imread, channel 0 is
  the part index I (0 background, 1..24 the parts), 1 is U * 255, 2 is V * 255.
* --mask_dir: person masks, one PNG per frame in natural sort order, person where the grey value
  is >= 128.
* --warp_dir: per-frame warps into one reference image, one file per frame in natural sort
  order: a Middlebury `.flo` file (float32 tag 202021.25, int32 width, int32 height, then the
  (u, v) pairs row by row) or a `.npy` array (H, W, 2) of floats. Either holds a displacement at
  the native frame size: pixel p of frame t shows the surface point that the reference shows at
  p + (u, v). Unknown displacements (no correspondence: background, occlusion) are non-finite or
  larger than 1e9 in magnitude (Middlebury's UNKNOWN_FLOW_THRESH). For training and `evaluate`
  the reference is the video's first frame (what `source_coords` means in the synthetic ground
  truth); for `animate` make the driving video's warps against the photo that is animated. Any
  tool that maps frames onto a body model (SMPL renderers, as BDMM's official code uses) or a
  long-range flow can write them.
* --flows (default on): OpenCV DIS optical flow (input_pipeline/flow.py, --flow_preset) between
  consecutive frames after resizing.

Keys written (T frames; pixel coordinates of the R x R frames, last axis (x, y), pixel (row i,
column j) centred at x = j, y = i, as in the synthetic ground truth):

  joints          (T, 25, 2) float32   OpenPose BODY_25 joints; (0, 0) where not valid
  joints_valid    (T, 25) bool         confidence > --pose_threshold (0.05, OpenPose's own render
                                       threshold)
  part_labels     (T, R, R) uint8      DensePose part 1..24, 0 on background and padding
  uv              (T, R, R, 2) float32 (U, V) / 255 in [0, 1] of the labelled part, 0 on background
  mask            (T, R, R) bool       the person mask (False on padding)
  source_coords   (T, R, R, 2) float32 where pixel p of frame t lies in the warps' reference, in
                                       the reference's resized pixels; p itself where unknown
  source_visible  (T, R, R) bool       the displacement is known (False on padding)
  flow_forward    (T-1, R, R, 2) float16  entry t on frame t's grid: pixel p of frame t moves to
                                       p + flow in frame t+1 (flow.compute_flow(frame t, t+1))
  flow_backward   (T-1, R, R, 2) float16  entry t on frame t+1's grid: pixel p of frame t+1 moves
                                       to p + flow in frame t (compute_flow(frame t+1, frame t))
  valid_forward   (T-1, R, R) bool     frame t's grid: flow_forward passes the forward-backward
                                       and motion-boundary checks (flow.sundaram_confidence)
  valid_backward  (T-1, R, R) bool     the same for flow_backward, on frame t+1's grid

Only the keys of the inputs given are written (joints and joints_valid with --openpose_dir, and
so on; no flow keys with --flows=false). Flows are float16: half the disk of float32, and a
half's relative precision (2^-11: 0.008 px at a 16 px displacement, 0.03 px at 64 px) is far
finer than DIS's own error; readers cast them to float32. Joint coordinates go through the
resize the frames do: with (new_h, new_w, top, left) of `video_io.fit_geometry`, x -> (x + 0.5) *
new_w / W - 0.5 + left and likewise y (OpenCV's resize maps pixel centres so, which puts a
joint on the same image point as before resizing).

These are the keys and conventions of the synthetic ground truth (input_pipeline/synthetic.py)
and of configs/d2g/person.py: joints in BODY_25 order (d2g.num_joints = 25); with DensePose's 24
parts set d2g.num_parts = 24; without --densepose_dir there are no part_labels or uv (set
d2g.densepose = False: the person mask then comes from --mask_dir).

Nothing of the frames or annotations is held for the whole video: each frame's arrays are
appended to raw files in a scratch folder beside the output, which is streamed into the .npz at
the end, so memory stays a few frames (a 3-minute video at 512^2 makes about 20 GB of arrays).
Bad input (a missing or unreadable video or file, the format checks above, an output where a
folder or file of the other kind stands, the file system's refusals) ends with one line
`annotate: ...` on stderr and exit status 1. This module imports no jax (it runs next to the data
pipeline).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
from pathlib import Path
import re
import sys
from typing import Iterator, Mapping, Sequence

import av
import cv2
import numpy as np
from tqdm import tqdm

from input_pipeline import annotations
from input_pipeline import flow
from input_pipeline import video_io
from input_pipeline.video_io import DataError
from internet_jax import errors
from internet_jax import temporaries
from internet_jax import visualize

NUM_JOINTS = 25  # OpenPose BODY_25
NUM_PARTS = 24  # DensePose's body parts
OPENPOSE_THRESHOLD = 0.05  # OpenPose's --render_threshold default
_KEYPOINTS_SUFFIX = "_keypoints.json"
FLO_TAG = 202021.25  # the Middlebury .flo magic number, "PIEH" as bytes
UNKNOWN_FLOW = 1e9  # Middlebury's UNKNOWN_FLOW_THRESH: larger displacements are unknown
_KEYPOINTS_NAME = re.compile(r"^(.*)_(\d{12})_keypoints\.json$")
FRAME_DIGITS = 6
MIN_FLOW_SIZE = 12  # DISOpticalFlow::calc refuses smaller images


# --- Geometry ---------------------------------------------------------------------------------


def to_resized_pixels(points: np.ndarray, frame_shape: Sequence[int],
                      resolution: int) -> np.ndarray:
  """Points (..., 2) (x, y) in a native H x W frame's pixels -> the resized R x R frame's pixels.

  OpenCV's resize maps the pixel centre x of the source to (x + 0.5) * new_w / W - 0.5 (and y
  alike), so a point stays on the same image point; the padding offset is then added."""
  height, width = frame_shape[:2]
  new_h, new_w, top, left = video_io.fit_geometry(height, width, resolution)
  scale = np.array([new_w / width, new_h / height], np.float64)
  offset = np.array([left, top], np.float64)
  return (np.asarray(points, np.float64) + 0.5) * scale - 0.5 + offset


def map_joints(joints: np.ndarray, valid: np.ndarray, frame_shape: Sequence[int],
               resolution: int) -> np.ndarray:
  """Joints (J, 2) in a native H x W frame's pixels -> the resized R x R frame's pixels
  (`to_resized_pixels`). Invalid joints become (0, 0), so that no coordinate of a joint OpenPose
  did not find looks real."""
  mapped = to_resized_pixels(joints, frame_shape, resolution)
  return np.where(np.asarray(valid, bool)[:, None], mapped, 0.0).astype(np.float32)


def resize_nearest_and_pad(image: np.ndarray, resolution: int) -> np.ndarray:
  """A label image (H, W) or (H, W, C) uint8 brought to R x R like resize_and_pad, but with
  nearest-neighbour sampling (labels must not be blended) and 0 padding (background)."""
  (height, width), channels = image.shape[:2], image.shape[2:]
  new_h, new_w, top, left = video_io.fit_geometry(height, width, resolution)
  if (new_h, new_w) != (height, width):
    # NEAREST_EXACT samples at pixel centres, as the frames' INTER_AREA/LINEAR do; plain
    # INTER_NEAREST is shifted by up to half a source pixel.
    image = cv2.resize(image, (new_w, new_h), interpolation=cv2.INTER_NEAREST_EXACT)
    image = image.reshape((new_h, new_w) + channels)  # cv2 drops a single channel's axis
  out = np.zeros((resolution, resolution) + channels, image.dtype)
  out[top:top + new_h, left:left + new_w] = image
  return out


# --- OpenPose -------------------------------------------------------------------------------------


def read_openpose_frame(path: str | os.PathLike,
                        threshold: float = OPENPOSE_THRESHOLD) -> tuple[np.ndarray, np.ndarray]:
  """One OpenPose JSON file -> (joints (25, 2) float32 in its frame's pixels, valid (25,) bool).

  The person with the largest summed confidence is taken; valid = confidence > threshold, and
  invalid joints are (0, 0) (no person: all invalid). A file that is not JSON of this form is a
  one-line DataError naming it."""
  path = Path(path)
  try:
    data = json.loads(path.read_text(encoding="utf-8"))
  except (UnicodeDecodeError, json.JSONDecodeError) as error:
    raise DataError(f"{path}: not a JSON file ({video_io.one_line(error)})") from None
  people = data.get("people") if isinstance(data, dict) else None
  if not isinstance(people, list):
    raise DataError(f"{path}: no \"people\" list (expected OpenPose --write_json output)")
  best, best_score = None, -np.inf
  for index, person in enumerate(people):
    keypoints = _person_keypoints(path, index, person)
    if keypoints[:, 2].sum() > best_score:
      best, best_score = keypoints, keypoints[:, 2].sum()
  if best is None:
    return np.zeros((NUM_JOINTS, 2), np.float32), np.zeros(NUM_JOINTS, bool)
  valid = best[:, 2] > threshold
  joints = np.where(valid[:, None], best[:, :2], 0.0).astype(np.float32)
  return joints, valid


def _person_keypoints(path: Path, index: int, person) -> np.ndarray:
  """(25, 3) float64 (x, y, confidence) of one entry of "people"; a DataError naming the file."""
  where = f"{path}: person {index}"
  values = person.get("pose_keypoints_2d") if isinstance(person, dict) else None
  if not isinstance(values, list):
    raise DataError(f"{where} has no \"pose_keypoints_2d\" list")
  try:
    keypoints = np.asarray(values, np.float64)
  except (TypeError, ValueError):
    raise DataError(f"{where}: \"pose_keypoints_2d\" holds something other than numbers"
                    ) from None
  if keypoints.ndim != 1 or len(keypoints) % 3:
    raise DataError(f"{where}: \"pose_keypoints_2d\" has {len(values)} entries, not a multiple "
                    "of 3 (x, y, confidence per joint)")
  if len(keypoints) != 3 * NUM_JOINTS:
    raise DataError(f"{where}: {len(keypoints) // 3} joints, expected BODY_25's {NUM_JOINTS} "
                    "(run OpenPose with --model_pose BODY_25)")
  if not np.isfinite(keypoints).all():
    raise DataError(f"{where}: \"pose_keypoints_2d\" holds a NaN or infinity")
  return keypoints.reshape(NUM_JOINTS, 3)


def openpose_files(directory: str | os.PathLike) -> dict[int, Path]:
  """{frame index: file} of the `*_<12 digits>_keypoints.json` files in `directory`; a DataError
  for a folder without any, a keypoints file named otherwise, or two files of one frame."""
  directory = _directory(directory, "--openpose_dir")
  files: dict[int, Path] = {}
  for path in sorted(directory.iterdir()):
    if not path.name.endswith(_KEYPOINTS_SUFFIX) or path.name.startswith("."):
      continue
    match = _KEYPOINTS_NAME.match(path.name)
    if match is None:
      raise DataError(f"{path}: not named <anything>_<12-digit frame index>{_KEYPOINTS_SUFFIX} "
                      "(OpenPose's --write_json names for a video)")
    index = int(match.group(2))
    if index in files:
      raise DataError(f"{path}: frame {index} again (also {files[index].name}); keep one video's "
                      "keypoints per folder")
    files[index] = path
  if not files:
    raise DataError(f"{directory}: no OpenPose *{_KEYPOINTS_SUFFIX} files")
  return files


def _missing_keypoints(files: Mapping[int, Path], index: int) -> DataError:
  """The error for frame `index` without its file, naming the file OpenPose would have written
  (with the prefix of the folder's other files)."""
  some = next(iter(files.values()))
  prefix = _KEYPOINTS_NAME.match(some.name).group(1)
  expected = some.parent / f"{prefix}_{index:012d}{_KEYPOINTS_SUFFIX}"
  return DataError(f"{expected}: missing (the keypoints of frame {index})")


def _check_no_frames_beyond(files: Mapping[int, Path], num_frames: int) -> None:
  beyond = [index for index in files if index >= num_frames]
  if beyond:
    raise DataError(f"{files[min(beyond)]}: keypoints of frame {min(beyond)}, the video has "
                    f"{num_frames} frames")


def read_openpose(directory: str | os.PathLike, threshold: float = OPENPOSE_THRESHOLD,
                  num_frames: int | None = None) -> tuple[np.ndarray, np.ndarray]:
  """All frames of an OpenPose --write_json folder: (joints (N, 25, 2) float32 in the native
  frames' pixels, valid (N, 25) bool), frame t from the file whose name carries the index t.

  N is num_frames when given, else one more than the largest index. A frame without its file is
  a DataError naming the file expected and the frame, as is a file beyond num_frames."""
  files = openpose_files(directory)
  count = max(files) + 1 if num_frames is None else num_frames
  _check_no_frames_beyond(files, count)
  joints = np.zeros((count, NUM_JOINTS, 2), np.float32)
  valid = np.zeros((count, NUM_JOINTS), bool)
  for index in range(count):
    if index not in files:
      raise _missing_keypoints(files, index)
    joints[index], valid[index] = read_openpose_frame(files[index], threshold)
  return joints, valid


# --- DensePose and masks --------------------------------------------------------------------------


def _natural_key(name: str) -> list:
  """frame2 before frame10: digit runs compare as numbers."""
  return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name)]


def _directory(directory: str | os.PathLike, flag: str) -> Path:
  directory = Path(directory)
  if not directory.is_dir():
    raise DataError(f"{flag}={directory}: not a directory")
  return directory


def frame_files(directory: str | os.PathLike, flag: str, suffix: str = ".png",
                extensions: Sequence[str] = (".png",)) -> list[Path]:
  """The per-frame files of a folder (extensions, case-insensitive) in natural sort order,
  hidden files left out; only those whose names end in `suffix` if any does. A DataError if
  none."""
  directory = _directory(directory, flag)
  files = [path for path in directory.iterdir() if path.is_file()
           and path.suffix.lower() in extensions and not path.name.startswith(".")]
  chosen = [path for path in files if path.name.lower().endswith(suffix.lower())]
  files = sorted(chosen or files, key=lambda path: _natural_key(path.name))
  if not files:
    raise DataError(f"{flag}={directory}: no {' or '.join(extensions)} files")
  return files


def _read_png(path: Path, mode: int) -> np.ndarray:
  image = cv2.imread(os.fspath(path), mode)
  if image is None:
    raise DataError(f"{path}: not a readable image")
  return image


def _check_size(path: Path, image: np.ndarray, frame_shape: Sequence[int], what: str,
                frame: int | None) -> None:
  height, width = frame_shape[:2]
  if image.shape[:2] != (height, width):
    which = "the video's frame" if frame is None else f"the video's frame {frame}"
    raise DataError(f"{path}: {what} is {image.shape[1]}x{image.shape[0]}, {which} is "
                    f"{width}x{height} (make it from the video's own frames)")


def read_iuv(path: str | os.PathLike, frame_shape: Sequence[int], resolution: int,
             frame: int | None = None) -> tuple[np.ndarray, np.ndarray]:
  """A DensePose IUV PNG of an H x W frame -> (part_labels (R, R) uint8, uv (R, R, 2) float32).

  Channel 0 (as cv2.imread gives it) is the part 0..24, 1 and 2 are U and V times 255; uv is
  (U, V) / 255, 0 on background. Resized like the frame, by nearest neighbour, padded with
  background. A DataError naming the file for another size than the frame's, a label above 24,
  or an image that is not 8-bit with 3 channels (`frame` only names the frame in messages)."""
  path = Path(path)
  image = _read_png(path, cv2.IMREAD_UNCHANGED)
  if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] < 3:
    raise DataError(f"{path}: an IUV image is 8-bit with 3 channels (I, U*255, V*255), got "
                    f"{image.dtype} of shape {image.shape}")
  _check_size(path, image, frame_shape, "the IUV image", frame)
  largest = int(image[:, :, 0].max())
  if largest > NUM_PARTS:
    raise DataError(f"{path}: part label {largest}, DensePose's labels are 0..{NUM_PARTS}")
  image = resize_nearest_and_pad(np.ascontiguousarray(image[:, :, :3]), resolution)
  labels = image[:, :, 0]
  uv = image[:, :, 1:3].astype(np.float32) / 255.0
  uv[labels == 0] = 0.0
  return labels, uv


def read_mask(path: str | os.PathLike, frame_shape: Sequence[int], resolution: int,
              frame: int | None = None) -> np.ndarray:
  """A person-mask PNG of an H x W frame -> (R, R) bool: grey value >= 128, resized like the
  frame by nearest neighbour, False on the padding. A DataError naming the file for another
  size than the frame's."""
  path = Path(path)
  grey = _read_png(path, cv2.IMREAD_GRAYSCALE)
  _check_size(path, grey, frame_shape, "the mask", frame)
  return resize_nearest_and_pad((grey >= 128).astype(np.uint8), resolution) > 0


def read_flo(path: str | os.PathLike) -> np.ndarray:
  """A Middlebury .flo file -> (H, W, 2) float32 (u, v); a DataError naming the file for a wrong
  tag, size or length."""
  path = Path(path)
  data = path.read_bytes()
  if len(data) < 12 or np.frombuffer(data[:4], "<f4")[0] != FLO_TAG:
    raise DataError(f"{path}: not a Middlebury .flo file (no {FLO_TAG} tag)")
  width, height = (int(v) for v in np.frombuffer(data[4:12], "<i4"))
  if width < 1 or height < 1:
    raise DataError(f"{path}: .flo size {width}x{height}")
  expected = 12 + 8 * width * height
  if len(data) != expected:
    raise DataError(f"{path}: {len(data)} bytes, a {width}x{height} .flo file has {expected}")
  return np.frombuffer(data[12:], "<f4").reshape(height, width, 2).astype(np.float32)


def read_warp(path: str | os.PathLike, frame_shape: Sequence[int], resolution: int,
              frame: int | None = None) -> tuple[np.ndarray, np.ndarray]:
  """A per-frame warp file (.flo or .npy displacement into the reference, native size) ->
  (source_coords (R, R, 2) float32, source_visible (R, R) bool) on the resized frame.

  Each resized pixel q takes the displacement d of the native pixel nearest to its native
  position p (nearest, so that no displacement is blended across a body's edge or with an
  unknown one) and lands at `to_resized_pixels(p + d)`. Unknown displacements and the padding
  give source_visible False and source_coords q itself. A DataError naming the file for another
  size than the frame's, a shape other than (H, W, 2) or a file that is neither format."""
  path = Path(path)
  if path.suffix.lower() == ".flo":
    displacement = read_flo(path)
  else:
    try:
      displacement = np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError) as error:
      raise DataError(f"{path}: not a .npy array ({video_io.one_line(error)})") from None
    if (not isinstance(displacement, np.ndarray) or displacement.ndim != 3
        or displacement.shape[2] != 2 or displacement.dtype.kind not in "fiu"):
      shape = getattr(displacement, "shape", None)
      raise DataError(f"{path}: a warp is an (H, W, 2) array of numbers, got shape {shape}")
  _check_size(path, displacement, frame_shape, "the warp", frame)
  height, width = frame_shape[:2]
  new_h, new_w, top, left = video_io.fit_geometry(height, width, resolution)
  ys, xs = np.mgrid[0:resolution, 0:resolution].astype(np.float64)
  # The native position of every resized pixel centre (the inverse of to_resized_pixels).
  native_x = (xs - left + 0.5) * width / new_w - 0.5
  native_y = (ys - top + 0.5) * height / new_h - 0.5
  inside = (xs >= left) & (xs < left + new_w) & (ys >= top) & (ys < top + new_h)
  column = np.clip(np.floor(native_x + 0.5), 0, width - 1).astype(np.int64)
  row = np.clip(np.floor(native_y + 0.5), 0, height - 1).astype(np.int64)
  sampled = displacement[row, column].astype(np.float64)
  with np.errstate(invalid="ignore"):
    known = np.isfinite(sampled).all(-1) & (np.abs(sampled) <= UNKNOWN_FLOW).all(-1) & inside
  target = np.stack([native_x, native_y], -1) + np.where(known[..., None], sampled, 0.0)
  coords = np.where(known[..., None], to_resized_pixels(target, frame_shape, resolution),
                    np.stack([xs, ys], -1))
  return coords.astype(np.float32), known


# --- Flow -----------------------------------------------------------------------------------------


def consecutive_flows(frame_a: np.ndarray, frame_b: np.ndarray,
                      preset: str = "medium") -> dict[str, np.ndarray]:
  """The flow keys of the pair (a, b) = (frame t, frame t+1): flow_forward (a's grid, a -> b) and
  flow_backward (b's grid, b -> a) as float16, valid_forward / valid_backward on the same grids
  from the forward-backward check (computed on the float32 flows)."""
  forward = flow.compute_flow(frame_a, frame_b, preset)
  backward = flow.compute_flow(frame_b, frame_a, preset)
  return {
      "flow_forward": forward.astype(np.float16),
      "flow_backward": backward.astype(np.float16),
      "valid_forward": flow.sundaram_confidence(forward, backward) > 0,
      "valid_backward": flow.sundaram_confidence(backward, forward) > 0,
  }


# --- Output ---------------------------------------------------------------------------------------


def key_specs(resolution: int, openpose: bool, densepose: bool, mask: bool, flows: bool,
              warps: bool = False) -> dict[str, tuple[tuple[int, ...], np.dtype]]:
  """{key: (shape of one entry, dtype)} of what the inputs given produce, in writing order."""
  r = resolution
  specs = {}
  if openpose:
    specs.update(joints=((NUM_JOINTS, 2), np.float32), joints_valid=((NUM_JOINTS,), np.bool_))
  if densepose:
    specs.update(part_labels=((r, r), np.uint8), uv=((r, r, 2), np.float32))
  if mask:
    specs.update(mask=((r, r), np.bool_))
  if warps:
    specs.update(source_coords=((r, r, 2), np.float32), source_visible=((r, r), np.bool_))
  if flows:
    specs.update(flow_forward=((r, r, 2), np.float16), flow_backward=((r, r, 2), np.float16),
                 valid_forward=((r, r), np.bool_), valid_backward=((r, r), np.bool_))
  return {key: (shape, np.dtype(dtype)) for key, (shape, dtype) in specs.items()}


class Spool:
  """Per-key raw files that entries are appended to, read back as memory maps at the end: a
  long video's annotations never have to fit in memory (write_npz streams memory maps)."""

  def __init__(self, folder: Path, specs: Mapping[str, tuple[tuple[int, ...], np.dtype]]):
    self._folder, self._specs = folder, dict(specs)
    self._counts = {key: 0 for key in self._specs}
    self._files = {}
    folder.mkdir()
    for key in self._specs:
      self._files[key] = open(folder / f"{key}.raw", "wb")  # pylint: disable=consider-using-with

  def add(self, key: str, value: np.ndarray) -> None:
    shape, dtype = self._specs[key]
    value = np.ascontiguousarray(value, dtype)
    if value.shape != shape:
      raise ValueError(f"{key}: entry of shape {value.shape}, expected {shape}")
    self._files[key].write(value.tobytes())
    self._counts[key] += 1

  def close(self) -> None:
    for file in self._files.values():
      file.close()

  def __enter__(self) -> "Spool":
    return self

  def __exit__(self, *exc_info) -> None:
    self.close()

  def arrays(self) -> dict[str, np.ndarray]:
    """Every key's entries, stacked (read-only memory maps; empty arrays for no entries)."""
    self.close()
    out = {}
    for key, (shape, dtype) in self._specs.items():
      count = self._counts[key]
      if count == 0:
        out[key] = np.zeros((0,) + shape, dtype)
      else:
        out[key] = np.memmap(self._folder / f"{key}.raw", dtype, "r", shape=(count,) + shape)
    return out


def check_outputs(frames_dir: Path, npz_path: Path, overwrite: bool) -> None:
  """A ValueError naming the output unless both can be (re)written: DIR is a folder or absent,
  DIR/<name> a folder or absent, DIR/<name>.npz a file or absent; present ones need overwrite."""
  directory = frames_dir.parent
  if directory.exists() and not directory.is_dir():
    raise ValueError(f"--output_dir={directory}: exists and is not a directory")
  for path, is_right_kind, kind in ((frames_dir, frames_dir.is_dir, "directory"),
                                    (npz_path, npz_path.is_file, "file")):
    if not path.exists() and not path.is_symlink():
      continue
    if not is_right_kind():
      raise ValueError(f"{path}: exists and is not a {kind}")
    if not overwrite:
      raise ValueError(f"{path}: exists already (pass --overwrite to replace it)")
  errors.check_writable(directory, f"--output_dir={directory}")


def check_inputs_kept(video: Path, frames_dir: Path, npz_path: Path,
                      inputs: Mapping[str, str | os.PathLike | None]) -> None:
  """A ValueError when an output would overwrite an input or lie inside an input folder, or
  when DIR is the video's own folder (DIR/<name> would stand beside <name>.mp4: two videos of
  one name)."""
  for output in (frames_dir, npz_path):
    errors.refuse_inputs(output, inputs, folders=True)
  if os.path.realpath(frames_dir.parent) == os.path.realpath(video.parent):
    raise ValueError(f"--output_dir={frames_dir.parent}: is the folder of the video {video}; "
                     "choose another")


def _frame_count(video: Path) -> int | None:
  """The number of frames if known without decoding (for the progress bar), else None."""
  if video.is_dir():
    return sum(1 for path in video.iterdir() if path.suffix.lower() in video_io.FRAME_SUFFIXES
               and not path.name.startswith("."))
  try:
    with av.open(os.fspath(video)) as container:
      return int(container.streams.video[0].frames) or None
  except (av.FFmpegError, OSError, IndexError, UnicodeDecodeError):
    return None  # the reader reports it


@dataclasses.dataclass
class FrameInputs:
  """The pose tools' outputs for a video, checked and listed before the pass over its frames."""
  openpose_dir: str | os.PathLike | None = None
  densepose_dir: str | os.PathLike | None = None
  mask_dir: str | os.PathLike | None = None
  warp_dir: str | os.PathLike | None = None
  keypoint_files: dict[int, Path] | None = None
  joints: np.ndarray | None = None  # (N, 25, 2) in the native frames' pixels
  joints_valid: np.ndarray | None = None
  iuv_files: list[Path] = dataclasses.field(default_factory=list)
  mask_files: list[Path] = dataclasses.field(default_factory=list)
  warp_files: list[Path] = dataclasses.field(default_factory=list)

  @classmethod
  def read(cls, openpose_dir=None, densepose_dir=None, mask_dir=None, warp_dir=None,
           pose_threshold: float = OPENPOSE_THRESHOLD) -> "FrameInputs":
    """Reads the OpenPose files (small) and lists the IUV, mask and warp files (read per
    frame)."""
    inputs = cls(openpose_dir, densepose_dir, mask_dir, warp_dir)
    if openpose_dir:
      inputs.keypoint_files = openpose_files(openpose_dir)
      inputs.joints, inputs.joints_valid = read_openpose(openpose_dir, pose_threshold)
    if densepose_dir:
      inputs.iuv_files = frame_files(densepose_dir, "--densepose_dir", "_IUV.png")
    if mask_dir:
      inputs.mask_files = frame_files(mask_dir, "--mask_dir")
    if warp_dir:
      inputs.warp_files = frame_files(warp_dir, "--warp_dir", extensions=(".flo", ".npy"))
    return inputs

  def frame(self, t: int, frame_shape: Sequence[int], resolution: int) -> dict[str, np.ndarray]:
    """The per-frame keys of frame t (native size `frame_shape`) at the output resolution."""
    out = {}
    if self.keypoint_files is not None:
      if t >= len(self.joints):
        raise _missing_keypoints(self.keypoint_files, t)
      out["joints"] = map_joints(self.joints[t], self.joints_valid[t], frame_shape, resolution)
      out["joints_valid"] = self.joints_valid[t]
    if self.densepose_dir:
      path = _per_frame_file(self.iuv_files, self.densepose_dir, "--densepose_dir", t)
      out["part_labels"], out["uv"] = read_iuv(path, frame_shape, resolution, frame=t)
    if self.mask_dir:
      path = _per_frame_file(self.mask_files, self.mask_dir, "--mask_dir", t)
      out["mask"] = read_mask(path, frame_shape, resolution, frame=t)
    if self.warp_dir:
      path = _per_frame_file(self.warp_files, self.warp_dir, "--warp_dir", t)
      out["source_coords"], out["source_visible"] = read_warp(path, frame_shape, resolution,
                                                              frame=t)
    return out

  def check_count(self, num_frames: int) -> None:
    """A DataError when an input has files for more frames than the video has."""
    if self.keypoint_files is not None:
      _check_no_frames_beyond(self.keypoint_files, num_frames)
    for flag, directory, files, what in (
        ("--densepose_dir", self.densepose_dir, self.iuv_files, "IUV images"),
        ("--mask_dir", self.mask_dir, self.mask_files, "masks"),
        ("--warp_dir", self.warp_dir, self.warp_files, "warps")):
      if directory and len(files) != num_frames:
        raise DataError(f"{flag}={directory}: {len(files)} {what}, the video has {num_frames} "
                        "frames")


def _per_frame_file(files: Sequence[Path], directory, flag: str, frame: int) -> Path:
  if frame >= len(files):
    raise DataError(f"{flag}={directory}: {len(files)} files, the video has more frames "
                    f"(frame {frame} has none)")
  return files[frame]


def check_arguments(resolution, openpose_dir, densepose_dir, mask_dir, flows: bool,
                    flow_preset: str, pose_threshold: float, warp_dir=None) -> None:
  """A ValueError naming the flag of the first bad argument."""
  if resolution is None or resolution < 1:
    raise ValueError(f"--resolution: must be at least 1, got {resolution}")
  if flows and resolution < MIN_FLOW_SIZE:
    raise ValueError(f"--resolution: OpenCV's DIS flow needs frames of at least {MIN_FLOW_SIZE} "
                     f"px, got {resolution} (or pass --flows=false)")
  if flow_preset not in flow.PRESETS:
    raise ValueError(f"--flow_preset: {flow_preset!r} is none of {', '.join(flow.PRESETS)}")
  if not 0.0 <= pose_threshold < 1.0:
    raise ValueError(f"--pose_threshold: must be in [0, 1), got {pose_threshold}")
  if not (openpose_dir or densepose_dir or mask_dir or warp_dir or flows):
    raise ValueError("nothing to annotate: give --openpose_dir, --densepose_dir, --mask_dir or "
                     "--warp_dir, or keep --flows")


@contextlib.contextmanager
def _moved_aside(path: Path) -> Iterator[None]:
  """Moves an existing `path` to a temporary name for the block and removes it afterwards (the
  block renames the new output into place)."""
  with temporaries.partial_output(path, ".old") as old:
    if path.exists():
      os.replace(path, old)
    yield


def _annotate_frames(video: Path, resolution: int, inputs: FrameInputs, flows: bool,
                     flow_preset: str, frames_folder: Path, spool: Spool,
                     progress: bool) -> int:
  """The pass over the frames: each resized frame to a PNG in `frames_folder`, its annotations
  (and the flows of the pair it ends) to `spool`. Returns the number of frames."""
  num_frames, previous = 0, None
  with tqdm(video_io.read_video_frames(video), total=_frame_count(video),
            desc=video_io.video_name(video), unit="frame", file=sys.stderr,
            disable=None if progress else True) as frames:  # None: no bar in non-TTY logs
    for t, frame in enumerate(frames):
      resized = video_io.resize_and_pad(frame, resolution)
      visualize.save_png(frames_folder / f"{t:0{FRAME_DIGITS}d}.png", resized)
      for key, value in inputs.frame(t, frame.shape, resolution).items():
        spool.add(key, value)
      if flows and previous is not None:
        for key, value in consecutive_flows(previous, resized, flow_preset).items():
          spool.add(key, value)
      previous, num_frames = resized, t + 1
  return num_frames


def annotate_video(video: str | os.PathLike, output_dir: str | os.PathLike, resolution: int, *,
                   openpose_dir: str | os.PathLike | None = None,
                   densepose_dir: str | os.PathLike | None = None,
                   mask_dir: str | os.PathLike | None = None,
                   warp_dir: str | os.PathLike | None = None, flows: bool = True,
                   flow_preset: str = "medium", pose_threshold: float = OPENPOSE_THRESHOLD,
                   overwrite: bool = False, progress: bool = True) -> tuple[Path, Path]:
  """Writes DIR/<name>/ (frames) and DIR/<name>.npz (see the module docstring); returns both.

  The arguments, the outputs and the OpenPose files are checked before anything is written; the
  per-frame checks fail during the pass over the frames, which writes only temporaries."""
  check_arguments(resolution, openpose_dir, densepose_dir, mask_dir, flows, flow_preset,
                  pose_threshold, warp_dir)
  video = Path(video)
  if not video.exists():
    raise DataError(f"--video={video}: no such file or directory")
  name = video_io.video_name(video)
  frames_dir = Path(output_dir) / name
  npz_path = Path(output_dir) / f"{name}{annotations.SUFFIX}"
  check_inputs_kept(video, frames_dir, npz_path, {
      "video": video, "--openpose_dir": openpose_dir, "--densepose_dir": densepose_dir,
      "--mask_dir": mask_dir, "--warp_dir": warp_dir})
  check_outputs(frames_dir, npz_path, overwrite)
  inputs = FrameInputs.read(openpose_dir, densepose_dir, mask_dir, warp_dir, pose_threshold)
  specs = key_specs(resolution, bool(openpose_dir), bool(densepose_dir), bool(mask_dir), flows,
                    bool(warp_dir))

  Path(output_dir).mkdir(parents=True, exist_ok=True)
  with temporaries.partial_output(frames_dir) as frames_temporary, \
      temporaries.partial_output(npz_path, ".npz") as npz_temporary, \
      temporaries.partial_output(npz_path, ".spool") as spool_folder:
    frames_temporary.mkdir()
    with Spool(spool_folder, specs) as spool:
      num_frames = _annotate_frames(video, resolution, inputs, flows, flow_preset,
                                    frames_temporary, spool, progress)
      inputs.check_count(num_frames)
      annotations.write_npz(npz_temporary, spool.arrays())
    with _moved_aside(npz_path), _moved_aside(frames_dir):
      os.replace(npz_temporary, npz_path)
      os.replace(frames_temporary, frames_dir)
  return frames_dir, npz_path


# --- Command line ---------------------------------------------------------------------------------


def _define_flags() -> None:
  from absl import flags  # pylint: disable=g-import-not-at-top
  flags.DEFINE_string("video", None, "The video: a file (.mp4, ...) or a folder of frames.")
  flags.DEFINE_string("output_dir", None, "Where DIR/<name>/ (frames) and DIR/<name>.npz go.")
  flags.DEFINE_integer("resolution", None, "Frame size R of the dataset (R x R).")
  flags.DEFINE_string("openpose_dir", None, "OpenPose --write_json output (BODY_25) of the video.")
  flags.DEFINE_string("densepose_dir", None, "DensePose IUV PNGs, one per frame.")
  flags.DEFINE_string("mask_dir", None, "Person-mask PNGs, one per frame (person: grey >= 128).")
  flags.DEFINE_string("warp_dir", None, "Per-frame warps into the first frame (.flo or .npy "
                      "displacements, native size), one per frame.")
  flags.DEFINE_bool("flows", True, "Write DIS flows between consecutive frames, both directions.")
  flags.DEFINE_string("flow_preset", "medium", f"The DIS preset: {' | '.join(flow.PRESETS)}.")
  flags.DEFINE_float("pose_threshold", OPENPOSE_THRESHOLD,
                     "A joint is valid where OpenPose's confidence exceeds this.")
  flags.DEFINE_bool("overwrite", False, "Replace an existing DIR/<name>/ and DIR/<name>.npz.")
  flags.DEFINE_bool("verbose", False, "Show full tracebacks for errors.")


def main(argv):
  from absl import flags  # pylint: disable=g-import-not-at-top
  from internet_jax import cli  # pylint: disable=g-import-not-at-top
  del argv  # stray words are refused by errors.flags_parser
  f = flags.FLAGS
  cli.console_policy(f.verbose)
  with errors.user_errors(verbose=f.verbose, prefix="annotate"), \
      errors.writing_to(f.output_dir or ""), \
      temporaries.stop_on_signals(f"the annotation of {f.video}"):
    for flag in ("video", "output_dir", "resolution"):
      if getattr(f, flag) is None:
        raise ValueError(f"--{flag}: required")
    frames_dir, npz_path = annotate_video(
        f.video, f.output_dir, f.resolution, openpose_dir=f.openpose_dir,
        densepose_dir=f.densepose_dir, mask_dir=f.mask_dir, warp_dir=f.warp_dir, flows=f.flows,
        flow_preset=f.flow_preset, pose_threshold=f.pose_threshold, overwrite=f.overwrite)
  print(f"wrote {frames_dir} and {npz_path}", file=sys.stderr)


def run() -> None:
  """`python -m input_pipeline.annotate`."""
  from absl import app  # pylint: disable=g-import-not-at-top
  _define_flags()
  app.run(main, flags_parser=errors.flags_parser())


if __name__ == "__main__":
  run()
