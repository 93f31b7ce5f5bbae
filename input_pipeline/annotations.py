"""Per-frame annotations of a video: what a method reads besides the RGB frames.

A video may have a `<name>.npz` beside it (`annotation_path`: next to `<name>.mp4` or the folder
`<name>/` of frames), in np.savez format, read with np.load(allow_pickle=False). Every numeric or
boolean array in it whose first axis counts frames is a per-frame annotation:

* first axis T (the number of frames): frame t's annotation is `array[t]` (joints (T, J, 2), part
  labels (T, H, W), UV, correspondences to frame 0, ...);
* first axis T - 1: the array describes consecutive pairs, entry t the pair (t, t + 1) (the
  synthetic renderer's flow_forward / flow_backward / valid_*); it is stored with the later frame,
  so frame t >= 1 holds `array[t - 1]` (the pair (t - 1, t)) and frame 0 holds zeros (False).

Strings and 0-d arrays (names, seeds) are per-video facts, not per-frame annotations, and are left
out. Any other first axis is a misaligned annotation: a one-line DataError naming the file and the
key. Pixel-unit annotations are only right at the frame size they were made for, so the TFDS
builders store them only for videos already at the prepared resolution (a DataError otherwise).

`input_pipeline/synthetic.py` writes such files with its ground truth; for real videos any pose or
flow tool's output can be converted into one.
"""

from __future__ import annotations

import io
import os
import threading
import zipfile
import zlib
from pathlib import Path
from typing import Iterable, Mapping

import numpy as np

from input_pipeline import video_io
from input_pipeline.video_io import DataError

SUFFIX = ".npz"


def annotation_path(video_path: str | os.PathLike) -> Path:
  """The annotation file of a video: `<parent>/<name>.npz` for `<parent>/<name>.mp4` or the frame
  folder `<parent>/<name>/`."""
  video_path = Path(video_path)
  return video_path.parent / f"{video_io.video_name(video_path)}{SUFFIX}"


def write_npz(file, arrays: Mapping[str, np.ndarray]) -> None:
  """Writes arrays in np.savez_compressed's format (a deflated zip of .npy files, no pickles) at
  zlib level 1: the default level takes about 6x longer on noisy float32 coordinates for files
  only about 12% smaller. `file` is a path or a binary file object."""
  with zipfile.ZipFile(file, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=1) as archive:
    for key, value in arrays.items():
      with archive.open(f"{key}.npy", "w", force_zip64=True) as member:
        np.lib.format.write_array(member, np.asanyarray(value), allow_pickle=False)


# What np.load and reading its members raise for a damaged file: not a zip, truncated, a member
# whose compressed bytes or CRC are wrong, pickled objects.
NPZ_ERRORS = (OSError, ValueError, zipfile.BadZipFile, EOFError, zlib.error)


# NumPy parses every .npy header with ast.literal_eval, and CPython 3.11's AST constructor keeps
# its recursion depth in per-interpreter state (python/cpython: Python/Python-ast.c), not per
# thread: two threads parsing at once can fail with "SystemError: AST constructor recursion depth
# mismatch" (seen here with Python 3.11.7 after ~2000 steps of a training run reading annotations
# with 2 read threads). One reader at a time.
_NPZ_LOCK = threading.Lock()


def read_npz(file, where: str, keys: Iterable[str] | None = None) -> dict[str, np.ndarray]:
  """The arrays of an .npz (path or bytes-like file object), all of them or those of `keys` that
  it holds (an npz decodes each member on access only: one of a synthetic frame's 11 arrays
  reads in about a third of the time of all); a DataError naming `where` if it is not a readable npz of plain arrays.
  Thread-safe: one thread reads at a time (`_NPZ_LOCK`)."""
  try:
    with _NPZ_LOCK, np.load(file, allow_pickle=False) as archive:
      wanted = archive.files if keys is None else [key for key in keys if key in archive.files]
      return {key: archive[key] for key in wanted}
  except NPZ_ERRORS as error:
    raise DataError(f"{where}: not a readable .npz of arrays ({video_io.one_line(error)})"
                    ) from None


def _is_per_frame(value: np.ndarray) -> bool:
  return value.ndim >= 1 and (np.issubdtype(value.dtype, np.number) or value.dtype == np.bool_)


def split_per_frame(arrays: Mapping[str, np.ndarray], num_frames: int,
                    where: str) -> list[dict[str, np.ndarray]]:
  """The per-frame annotations of a video of `num_frames` frames (see the module docstring)."""
  frames: list[dict[str, np.ndarray]] = [{} for _ in range(num_frames)]
  for key, value in sorted(arrays.items()):
    if not _is_per_frame(value):
      continue
    if value.shape[0] == num_frames:
      entries = list(value)
    elif value.shape[0] == num_frames - 1:
      entries = [np.zeros_like(value[0]) if len(value) else np.zeros(value.shape[1:], value.dtype)
                 ] + list(value)
    else:
      raise DataError(f"{where}: {key!r} has {value.shape[0]} entries along its first axis; a "
                      f"per-frame annotation of this {num_frames}-frame video has {num_frames} "
                      f"(one per frame) or {num_frames - 1} (one per consecutive pair)")
    for frame, entry in zip(frames, entries):
      frame[key] = np.ascontiguousarray(entry)
  return frames


def load_video_annotations(video_path: str | os.PathLike,
                           num_frames: int) -> list[dict[str, np.ndarray]] | None:
  """The per-frame annotations in the .npz beside a video, or None when it has none."""
  path = annotation_path(video_path)
  if not path.is_file():
    return None
  return split_per_frame(read_npz(path, str(path)), num_frames, str(path))


def encode_frame(annotations: Mapping[str, np.ndarray]) -> bytes:
  """One frame's annotations as npz bytes (b"" when there are none: nothing to decode)."""
  if not annotations:
    return b""
  buffer = io.BytesIO()
  write_npz(buffer, annotations)
  return buffer.getvalue()


def decode_frame(data: bytes, where: str, keys: Iterable[str] | None = None
                 ) -> dict[str, np.ndarray]:
  """The inverse of `encode_frame`: every annotation, or those of `keys` the frame has."""
  return read_npz(io.BytesIO(data), where, keys) if data else {}


def describe(frame: Mapping[str, np.ndarray]) -> dict[str, list]:
  """{key: [shape, dtype name]} of one frame's annotations (kept in a prepared dataset's metadata
  so that a method can check its inputs before training)."""
  return {key: [list(value.shape), value.dtype.name] for key, value in sorted(frame.items())}


def require(annotations: Mapping[str, np.ndarray], keys: Iterable[str],
            where: str) -> dict[str, np.ndarray]:
  """The annotations named by `keys`; a one-line DataError naming `where` (the video and frame)
  and the first missing key otherwise."""
  for key in keys:
    if key not in annotations:
      have = ", ".join(sorted(annotations)) or "none"
      raise DataError(f"{where}: no annotation {key!r} (has {have}); put it in the .npz beside "
                      "the video and prepare the dataset again")
  return {key: annotations[key] for key in keys}


# Per-frame annotations in pixel coordinates that a left-right mirror of the frame (column j ->
# W - 1 - j, i.e. x -> W - 1 - x) changes, and how.
def _mirror_points(points: np.ndarray, width: int) -> np.ndarray:
  mirrored = np.array(points, np.float32)
  mirrored[..., 0] = (width - 1) - mirrored[..., 0]
  return mirrored


def _mirror_affine(affine: np.ndarray, width: int) -> np.ndarray:
  # p = A u + b; the mirrored p' = diag(-1, 1) p + (W - 1, 0): negate A's x row, mirror b's x.
  mirrored = np.array(affine, np.float32)
  mirrored[..., 0, :2] *= -1.0
  mirrored[..., 0, 2] = (width - 1) - mirrored[..., 0, 2]
  return mirrored


MIRRORS = {"joints": _mirror_points, "part_transforms": _mirror_affine}


def mirror(key: str, value: np.ndarray, width: int) -> np.ndarray:
  """Annotation `key` of a frame of width `width`, as it is in the frame mirrored left-right (the
  training pipeline's horizontal flip). The part or joint order is kept: what was the left arm is
  the right arm of the mirrored figure. A key without a known rule is a one-line ValueError."""
  if key not in MIRRORS:
    raise ValueError(f"config.data.horizontal_flip: the annotation {key!r} cannot be mirrored "
                     f"(known: {', '.join(sorted(MIRRORS))}); set it to False")
  return MIRRORS[key](value, width)
