"""The dataset factory: `get_video_source(config.data, split)` is how training, evaluation and the
benchmarks get their videos.

`data_config.name` picks the data:
* "dancefashion": UBC Fashion videos in `data_config.manual_dir` (see dance_fashion/README.md),
  prepared by the DanceFashion TFDS builder into `<data_dir>/dance_fashion/r<R>/1.0.0/`;
* "folder": any `manual_dir` with train/ and test/ folders of videos, prepared by the VideoFolder
  builder into `<data_dir>/video_folder/<folder>_<hash>_r<R>/1.0.0/` (the folder name and a hash of
  its absolute path, so that different folders never share a prepared dataset);
* "synthetic": like "folder", after rendering the synthetic dataset into `manual_dir` with
  `input_pipeline.synthetic.write_dataset` if it has no videos yet.

A dataset is prepared on first use (logged) and reused afterwards; `python -m
input_pipeline.prepare` does the same explicitly. Once prepared, the raw videos are not needed.
Training draws frames t-1 and t with t > min_driving_offset, so videos with fewer than
min_driving_offset + 2 frames are left out (`min_frames_for`).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import threading
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import tensorflow_datasets as tfds
from absl import logging

from input_pipeline import video_io
from input_pipeline.dance_fashion import DanceFashion
from input_pipeline.dance_fashion import VideoFolder
from input_pipeline.dance_fashion import find_split_videos
from input_pipeline.dance_fashion import frames_config
from input_pipeline.video_io import DataError

NAMES = ("dancefashion", "folder", "synthetic")
# OpenCV >= 4.10 decodes straight to RGB (about 15% faster than BGR + cvtColor at 512x512).
_IMREAD_FLAG = getattr(cv2, "IMREAD_COLOR_RGB", cv2.IMREAD_COLOR)


class TfdsVideoSource:
  """A `VideoSource` over a split prepared by the DanceFashion/VideoFolder builders.

  The prepared split holds one record per frame, the records of a video contiguous and in order.
  The index (first record, length and name of every video) is built by reading one record per
  video: record 0 says video 0 has n0 frames, so video 1 starts at record n0, and so on; images
  are not decoded for it. `read_frame(v, t)` reads and PNG-decodes record start[v] + t only.

  Picklable for grain workers: the pickle holds the dataset directory, the split and the index;
  each process opens its own reader on first use. No TensorFlow is imported on this path.
  """

  def __init__(self, dataset_dir: str | os.PathLike, split: str, min_frames: int | None = None):
    """Args: dataset_dir: a prepared dataset (`builder.data_dir`, .../<config>/<version>);
    split: "train" or "test"; min_frames: videos with fewer frames are left out (logged); None:
    keep what was prepared (the builder already left out videos shorter than its min_frames)."""
    self._dataset_dir = os.fspath(dataset_dir)
    self._split = split
    self._reader = None
    self._lock = threading.Lock()
    info = self._builder().info
    if split not in info.splits:
      raise DataError(f"{self._dataset_dir}: no split {split!r} (has {', '.join(info.splits)})")
    self.resolution = int(info.features["image"].shape[0])
    prepared_min = int((info.metadata or {}).get("min_frames", 1))
    if min_frames is None:
      min_frames = prepared_min
    elif min_frames < prepared_min:
      logging.warning("%s was prepared with min_frames=%d > %d: videos with %d..%d frames are "
                      "missing; delete the directory to prepare it again", self._dataset_dir,
                      prepared_min, min_frames, min_frames, prepared_min - 1)
    starts, lengths, names = self._build_index()
    keep = [i for i, n in enumerate(lengths) if n >= min_frames]
    if len(keep) < len(lengths):
      logging.warning("%s %s: leaving out %d of %d videos with fewer than min_frames=%d frames",
                      self._dataset_dir, split, len(lengths) - len(keep), len(lengths), min_frames)
    if not keep:
      raise DataError(f"{self._dataset_dir}: no video of split {split!r} has min_frames="
                      f"{min_frames} frames")
    self._starts = np.asarray([starts[i] for i in keep], np.int64)
    self._lengths = np.asarray([lengths[i] for i in keep], np.int64)
    self._names = [names[i] for i in keep]

  @classmethod
  def from_builder(cls, builder: tfds.core.DatasetBuilder, split: str,
                   min_frames: int | None = None) -> "TfdsVideoSource":
    """The source of a split of a prepared builder."""
    return cls(builder.data_dir, split, min_frames=min_frames)

  def _builder(self) -> tfds.core.DatasetBuilder:
    if not (Path(self._dataset_dir) / "dataset_info.json").exists():
      raise DataError(f"{self._dataset_dir}: not a prepared dataset (no dataset_info.json)")
    return tfds.builder_from_directory(self._dataset_dir)

  def _records(self):
    # Lazily opened, once per process (grain workers get a pickle without the reader).
    if self._reader is None:
      with self._lock:
        if self._reader is None:
          self._reader = self._builder().as_data_source(
              self._split, decoders={"image": tfds.decode.SkipDecoding()})
    return self._reader

  def _build_index(self) -> tuple[list[int], list[int], list[str]]:
    records = self._records()
    total = len(records)
    starts, lengths, names = [], [], []
    start = 0
    while start < total:
      record = records[start]
      count = int(record["num_frames"])
      name = _text(record["video_name"])
      if int(record["frame_index"]) != 0 or count < 1 or start + count > total:
        raise DataError(f"{self._dataset_dir}: record {start} of {self._split} is frame "
                        f"{int(record['frame_index'])} of {count} of {name!r}, expected the first "
                        "frame of a video; the dataset is damaged, delete it and prepare it again")
      starts.append(start)
      lengths.append(count)
      names.append(name)
      start += count
    return starts, lengths, names

  def __len__(self) -> int:
    return len(self._names)

  def num_frames(self, video: int) -> int:
    return int(self._lengths[video])

  def video_name(self, video: int) -> str:
    return self._names[video]

  def read_frame(self, video: int, frame: int) -> np.ndarray:
    """Frame `frame` of video `video` as uint8 (R, R, 3)."""
    length = int(self._lengths[video])
    if not 0 <= frame < length:
      raise IndexError(f"frame {frame} of video {video} ({self._names[video]}, {length} frames)")
    record = self._records()[int(self._starts[video]) + frame]
    if int(record["frame_index"]) != frame:  # cheap guard against a wrong index
      raise DataError(f"{self._dataset_dir}: expected frame {frame} of {self._names[video]}, "
                      f"read frame {int(record['frame_index'])}")
    image = cv2.imdecode(np.frombuffer(record["image"], np.uint8), _IMREAD_FLAG)
    if image is None:
      raise DataError(f"{self._dataset_dir}: frame {frame} of {self._names[video]} is not a "
                      "readable PNG")
    return image if _IMREAD_FLAG != cv2.IMREAD_COLOR else cv2.cvtColor(image, cv2.COLOR_BGR2RGB)

  @property
  def dataset_dir(self) -> str:
    return self._dataset_dir

  @property
  def split(self) -> str:
    return self._split

  def __getstate__(self) -> dict[str, Any]:
    state = self.__dict__.copy()
    state["_reader"] = None  # reopened in the receiving process
    del state["_lock"]
    return state

  def __setstate__(self, state: dict[str, Any]) -> None:
    self.__dict__.update(state)
    self._lock = threading.Lock()

  def __repr__(self) -> str:
    return (f"TfdsVideoSource({self._dataset_dir!r}, {self._split!r}: {len(self)} videos, "
            f"{int(self._lengths.sum())} frames at {self.resolution}x{self.resolution})")


def _text(value) -> str:
  return value.decode("utf-8") if isinstance(value, bytes) else str(value)


def min_frames_for(data_config) -> int:
  """Fewest frames a training video needs: frames t-1 and t with t > min_driving_offset exist only
  if num_frames >= min_driving_offset + 2."""
  return int(data_config.min_driving_offset) + 2


def folder_config_name(manual_dir: str | os.PathLike, resolution: int, prefix: str = "") -> str:
  """`<prefix><folder name>_<8 hex of sha1(absolute path)>_r<R>`: unique per folder and size."""
  path = os.path.abspath(os.fspath(manual_dir))
  slug = re.sub(r"[^a-z0-9]+", "_", os.path.basename(path.rstrip(os.sep)).lower()).strip("_")
  digest = hashlib.sha1(path.encode("utf-8")).hexdigest()[:8]
  return f"{prefix}{slug or 'videos'}_{digest}_r{int(resolution)}"


def get_builder(data_config, num_workers: int = 0) -> tfds.core.DatasetBuilder:
  """The TFDS builder for `data_config` (name, data_dir, manual_dir, resolution,
  min_driving_offset); `num_workers` processes encode videos when it prepares."""
  name = data_config.name
  resolution = int(data_config.resolution)
  kwargs = dict(data_dir=os.fspath(data_config.data_dir), min_frames=min_frames_for(data_config),
                num_workers=num_workers)
  if name == "dancefashion":
    config_name = f"r{resolution}"
    if config_name not in DanceFashion.builder_configs:
      config_name = frames_config(config_name, resolution)
    return DanceFashion(config=config_name, **kwargs)
  if name in ("folder", "synthetic"):
    prefix = "synthetic_" if name == "synthetic" else ""
    # No local path in the description: it is stored in dataset_info.json.
    folder = os.path.basename(os.path.abspath(data_config.manual_dir))
    config = frames_config(folder_config_name(data_config.manual_dir, resolution, prefix),
                           resolution, f"videos of a folder named {folder!r} at {resolution}px")
    return VideoFolder(config=config, **kwargs)
  raise DataError(f"data.name={name!r}: expected one of {', '.join(NAMES)}")


def _synthetic_args(data_config) -> dict[str, Any]:
  params = data_config.synthetic
  return dict(num_videos=int(params.num_videos), num_frames=int(params.num_frames),
              resolution=int(data_config.resolution), seed=int(params.seed),
              num_test_videos=int(params.num_test_videos), background=str(params.background))


def _warn_if_rendered_differently(data_config) -> None:
  # The renderer records its arguments; videos rendered with others are used as they are.
  info_path = Path(data_config.manual_dir) / "dataset_info.json"
  if not info_path.is_file():
    return
  rendered = json.loads(info_path.read_text())
  differ = {k: (rendered[k], v) for k, v in _synthetic_args(data_config).items()
            if k in rendered and rendered[k] != v}
  if differ:
    logging.warning("%s was rendered with other arguments than data.synthetic asks for "
                    "({name: (rendered, asked)}: %s); using it as it is: delete it and the "
                    "prepared dataset to render again", data_config.manual_dir, differ)


def _render_synthetic_if_missing(data_config) -> None:
  manual_dir = Path(data_config.manual_dir)
  train_dir = manual_dir / "train"
  if train_dir.is_dir() and video_io.list_videos(train_dir):
    return
  from input_pipeline import synthetic  # pylint: disable=g-import-not-at-top
  params = data_config.synthetic
  logging.info("rendering the synthetic dataset into %s (first use): %d train + %d test videos of "
               "%d frames at %d px", manual_dir, params.num_videos, params.num_test_videos,
               params.num_frames, data_config.resolution)
  synthetic.write_dataset(manual_dir, **_synthetic_args(data_config))


def _warn_if_stale(builder: tfds.core.DatasetBuilder, manual_dir: Path) -> None:
  # The prepared dataset remembers which videos it was made from; a changed manual_dir is not
  # picked up silently.
  metadata = builder.info.metadata or {}
  if not manual_dir.is_dir() or "videos" not in metadata:
    return
  for split in metadata["videos"]:
    split_dir = manual_dir / split
    if not split_dir.is_dir():
      continue
    try:
      present = {video_io.video_name(p) for p in video_io.list_videos(split_dir)}
    except DataError:
      continue
    prepared = set(metadata["videos"][split]) | set(metadata.get("skipped", {}).get(split, []))
    if present != prepared:
      logging.warning("%s was prepared from a different set of %s videos than %s now holds (%d "
                      "new, %d gone); delete it to prepare it again", builder.data_dir, split,
                      split_dir, len(present - prepared), len(prepared - present))


def prepare(data_config, num_workers: int = 0) -> tfds.core.DatasetBuilder:
  """Prepares the dataset of `data_config` unless it is already prepared; returns its builder.

  Raises DataError (one line) for a missing/empty manual_dir or an unreadable video.
  """
  builder = get_builder(data_config, num_workers=num_workers)
  manual_dir = Path(data_config.manual_dir)
  if data_config.name == "synthetic":
    _warn_if_rendered_differently(data_config)
  if builder.is_prepared():
    _warn_if_stale(builder, manual_dir)
    return builder
  if data_config.name == "synthetic":
    _render_synthetic_if_missing(data_config)
  find_split_videos(manual_dir, builder.MANUAL_DOWNLOAD_INSTRUCTIONS)  # fail early, one line
  logging.info("preparing %s/%s from %s into %s (first use)", builder.name,
               builder.builder_config.name, manual_dir, builder.data_dir)
  builder.download_and_prepare(download_config=tfds.download.DownloadConfig(
      manual_dir=os.fspath(manual_dir), try_download_gcs=False))
  return builder


def get_video_source(data_config, split: str) -> TfdsVideoSource:
  """The `VideoSource` of split "train" or "test" of `data_config` (prepared on first use).

  Reads data_config.{name, data_dir, manual_dir, resolution, min_driving_offset} and, for
  "synthetic", data_config.synthetic.{num_videos, num_test_videos, num_frames, background, seed};
  data_config.prepare_workers (optional, default 0) processes encode videos when preparing.
  """
  builder = prepare(data_config, num_workers=int(data_config.get("prepare_workers", 0)))
  source = TfdsVideoSource.from_builder(builder, split, min_frames=min_frames_for(data_config))
  logging.info("%r", source)
  return source
