"""Random access to the frames of a set of videos: the contract between datasets and the pipeline.

A `VideoSource` is what the grain pipeline reads: any number of videos, each a sequence of uint8
RGB frames of one fixed size (H, W, 3), readable one frame at a time so that a training example
(frames 0, t-1 and t) never decodes a whole video. Implementations must be picklable: grain worker
processes receive a copy.

A source may also serve per-frame annotations (joints, part labels, UV, flows, correspondences:
input_pipeline/annotations.py) through two optional methods, `annotation_keys(video)` and
`read_annotations(video, frame, keys=None) -> {key: array}` (all of the frame's annotations, or
those of `keys` it has). A method's example function reads them with
`read_annotations(source, video, frame, keys)`, which fails with one line naming the video, the
frame and the missing key, and works on any source (one without the methods has none).
"""

from __future__ import annotations

from typing import Mapping, Protocol, Sequence, runtime_checkable

import numpy as np

from input_pipeline import annotations


@runtime_checkable
class VideoSource(Protocol):

  def __len__(self) -> int:
    """Number of videos."""

  def num_frames(self, video: int) -> int:
    """Number of frames of video `video`."""

  def video_name(self, video: int) -> str:
    """A stable name of the video (its file or folder stem), unique within the source."""

  def read_frame(self, video: int, frame: int) -> np.ndarray:
    """Frame `frame` of video `video` as uint8 (H, W, 3)."""


def frame_annotations(source: VideoSource, video: int, frame: int,
                      keys: Sequence[str] | None = None) -> dict[str, np.ndarray]:
  """Every annotation of frame `frame` of video `video`, or those of `keys` it has ({} for a
  source that serves none)."""
  reader = getattr(source, "read_annotations", None)
  return reader(video, frame, keys) if reader is not None else {}


def read_annotations(source: VideoSource, video: int, frame: int,
                     keys: Sequence[str]) -> dict[str, np.ndarray]:
  """The annotations `keys` of frame `frame` of video `video`; a one-line DataError naming the
  video, the frame and the first missing key otherwise."""
  return annotations.require(frame_annotations(source, video, frame, keys), keys,
                             f"video {source.video_name(video)} frame {frame}")


class InMemoryVideoSource:
  """A VideoSource over arrays already in memory (tests, notebooks, small custom sets).

  `annotations`, optional: per video, {key: array} whose first axis counts frames (the rules of
  input_pipeline/annotations.py: T entries, or T - 1 for consecutive pairs).
  """

  def __init__(self, videos: Sequence[np.ndarray], names: Sequence[str] | None = None,
               annotations: Sequence[Mapping[str, np.ndarray]] | None = None):
    for index, video in enumerate(videos):
      if video.ndim != 4 or video.shape[-1] != 3 or video.dtype != np.uint8:
        raise ValueError(f"video {index}: expected uint8 (T, H, W, 3), got {video.dtype} {video.shape}")
    self._videos = list(videos)
    self._names = list(names) if names is not None else [f"video_{i:05d}" for i in range(len(videos))]
    if len(self._names) != len(self._videos):
      raise ValueError(f"{len(self._names)} names for {len(self._videos)} videos")
    if annotations is not None and len(annotations) != len(self._videos):
      raise ValueError(f"{len(annotations)} annotation sets for {len(self._videos)} videos")
    self._annotations = [
        _split(arrays, len(video), name) for arrays, video, name
        in zip(annotations or [{}] * len(self._videos), self._videos, self._names)]

  def annotation_keys(self, video: int) -> tuple[str, ...]:
    return tuple(self._annotations[video][0]) if self._annotations[video] else ()

  def read_annotations(self, video: int, frame: int,
                       keys: Sequence[str] | None = None) -> dict[str, np.ndarray]:
    found = self._annotations[video][frame] if self._annotations[video] else {}
    return {key: value for key, value in found.items() if keys is None or key in keys}

  def __len__(self) -> int:
    return len(self._videos)

  def num_frames(self, video: int) -> int:
    return int(self._videos[video].shape[0])

  def video_name(self, video: int) -> str:
    return self._names[video]

  def read_frame(self, video: int, frame: int) -> np.ndarray:
    return self._videos[video][frame]


def _split(arrays: Mapping[str, np.ndarray], num_frames: int, name: str) -> list[dict]:
  return annotations.split_per_frame(arrays, num_frames, f"video {name}") if arrays else []
