"""Random access to the frames of a set of videos: the contract between datasets and the pipeline.

A `VideoSource` is what the grain pipeline reads: any number of videos, each a sequence of uint8
RGB frames of one fixed size (H, W, 3), readable one frame at a time so that a training example
(frames 0, t-1 and t) never decodes a whole video. Implementations must be picklable: grain worker
processes receive a copy.
"""

from __future__ import annotations

from typing import Protocol, Sequence, runtime_checkable

import numpy as np


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


class InMemoryVideoSource:
  """A VideoSource over arrays already in memory (tests, notebooks, small custom sets)."""

  def __init__(self, videos: Sequence[np.ndarray], names: Sequence[str] | None = None):
    for index, video in enumerate(videos):
      if video.ndim != 4 or video.shape[-1] != 3 or video.dtype != np.uint8:
        raise ValueError(f"video {index}: expected uint8 (T, H, W, 3), got {video.dtype} {video.shape}")
    self._videos = list(videos)
    self._names = list(names) if names is not None else [f"video_{i:05d}" for i in range(len(videos))]
    if len(self._names) != len(self._videos):
      raise ValueError(f"{len(self._names)} names for {len(self._videos)} videos")

  def __len__(self) -> int:
    return len(self._videos)

  def num_frames(self, video: int) -> int:
    return int(self._videos[video].shape[0])

  def video_name(self, video: int) -> str:
    return self._names[video]

  def read_frame(self, video: int, frame: int) -> np.ndarray:
    return self._videos[video][frame]
