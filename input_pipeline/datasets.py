"""The dataset factory: `get_video_source(config.data, split)` is how training, evaluation and the
benchmarks get their videos.

`data_config.name` picks the data:
* "dancefashion": UBC Fashion videos in `data_config.manual_dir` (see dance_fashion/README.md),
  prepared by the DanceFashion TFDS builder into `<data_dir>/dance_fashion/r<R>/1.1.0/`;
* "folder": any `manual_dir` with train/ and test/ folders of videos, prepared by the VideoFolder
  builder into `<data_dir>/video_folder/<folder>_<hash>_r<R>/1.1.0/` (the folder name and a hash of
  its absolute path, so that different folders never share a prepared dataset);
* "synthetic": rendered by `input_pipeline.synthetic.write_dataset` on first use. Like TFDS's
  data_dir, `manual_dir` is a parent folder: each set of settings gets its own subfolder named by
  `synthetic_key`, `<manual_dir>/r<R>_f<T>_train<N>_test<M>_<background>_seed<S>_v<V>/` (resolution
  data.resolution, data.synthetic.{num_frames, num_videos, num_test_videos, background, seed}, and
  V = input_pipeline.synthetic.RENDERER_VERSION; with data.synthetic.person_seed = P >= 0, the
  single-person mode, `_person<P>` follows `seed<S>`), prepared like "folder" into
  `<data_dir>/video_folder/synthetic_<key>_<hash>/1.1.0/`. So configs/synthetic.py and
  configs/synthetic.py:tiny share ./data/synthetic without ever reading each other's videos. A
  `manual_dir` that is itself a rendered dataset (it holds the renderer's dataset_info.json, e.g.
  written by `python -m input_pipeline.synthetic --output_dir=DIR`), or that is named by the key,
  is used as it is (`synthetic_dir`), and only if the settings recorded in its dataset_info.json
  are the config's: otherwise a one-line DataError names each difference
  (`data.resolution: rendered 32 vs asked 64`); nothing is rendered over it.

A dataset is prepared on first use (logged) and reused afterwards; `python -m
input_pipeline.prepare` does the same explicitly. Once prepared, the raw videos are not needed.
`get_video_source(..., create=False)` (evaluation) never renders or prepares: missing data is a
`MissingDataError` naming the folder and the command that recreates it (`prepare_command`).
`resolve_paths` gives the absolute folders a config names; training saves those with its
checkpoints (`internet_jax.checkpointing.absolute_paths`).
Training draws frames t-1 and t with t > min_driving_offset, so videos with fewer than
min_driving_offset + 2 frames are left out (`min_frames_for`).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shlex
import threading
from pathlib import Path
from typing import Any, Sequence

import cv2
import ml_collections
import numpy as np
import tensorflow_datasets as tfds
from absl import logging

from input_pipeline import annotations
from input_pipeline import video_io
from input_pipeline.dance_fashion import DanceFashion
from input_pipeline.dance_fashion import VideoFolder
from input_pipeline.dance_fashion import find_split_videos
from input_pipeline.dance_fashion import frames_config
from input_pipeline.video_io import DataError
from internet_jax import temporaries

# TFDS's own bars (generating, shuffling) repeat what the INFO lines below say.
tfds.display_progress_bar(False)

NAMES = ("dancefashion", "folder", "synthetic")
# OpenCV >= 4.10 decodes straight to RGB (about 15% faster than BGR + cvtColor at 512x512).
_IMREAD_FLAG = getattr(cv2, "IMREAD_COLOR_RGB", cv2.IMREAD_COLOR)


class TfdsVideoSource:
  """A `VideoSource` over a split prepared by the DanceFashion/VideoFolder builders.

  The prepared split holds one record per frame, the records of a video contiguous and in order.
  The index (first record, length and name of every video) is built by reading one record per
  video: record 0 says video 0 has n0 frames, so video 1 starts at record n0, and so on; images
  are not decoded for it. `read_frame(v, t)` reads and PNG-decodes record start[v] + t only;
  `read_annotations(v, t)` decodes the same record's annotations, and `annotation_keys(v)` says
  from the metadata which ones a video has, without reading a record.

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
    described = (info.metadata or {}).get("annotations", {}).get(split, {})
    self._annotation_keys = {name: tuple(described.get(name, {})) for name in self._names}

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

  def _record(self, video: int, frame: int):
    length = int(self._lengths[video])
    if not 0 <= frame < length:
      raise IndexError(f"frame {frame} of video {video} ({self._names[video]}, {length} frames)")
    record = self._records()[int(self._starts[video]) + frame]
    if int(record["frame_index"]) != frame:  # cheap guard against a wrong index
      raise DataError(f"{self._dataset_dir}: expected frame {frame} of {self._names[video]}, "
                      f"read frame {int(record['frame_index'])}")
    return record

  def annotation_keys(self, video: int) -> tuple[str, ...]:
    """The per-frame annotations video `video` has (none in datasets prepared before 1.1.0)."""
    return self._annotation_keys[self._names[video]]

  def read_annotations(self, video: int, frame: int,
                       keys: Sequence[str] | None = None) -> dict[str, np.ndarray]:
    """Frame `frame`'s annotations of video `video`, all or those of `keys` it has ({} when it
    has none); only those are decoded."""
    data = self._record(video, frame).get("annotations", b"")
    if isinstance(data, np.ndarray):  # a 0-d object array from the TFDS decoder
      data = data.item()
    return annotations.decode_frame(
        data, f"{self._dataset_dir}: {self._names[video]} frame {frame}", keys)

  def read_frame(self, video: int, frame: int) -> np.ndarray:
    """Frame `frame` of video `video` as uint8 (R, R, 3)."""
    record = self._record(video, frame)
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


def _slug(text: str) -> str:
  return re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_")


def _path_digest(path: str | os.PathLike) -> str:
  """8 hex digits of sha1 of the absolute path."""
  return hashlib.sha1(os.path.abspath(os.fspath(path)).encode("utf-8")).hexdigest()[:8]


def folder_config_name(manual_dir: str | os.PathLike, resolution: int, prefix: str = "") -> str:
  """`<prefix><folder name>_<8 hex of sha1(absolute path)>_r<R>`: unique per folder and size."""
  path = os.path.abspath(os.fspath(manual_dir))
  slug = _slug(os.path.basename(path.rstrip(os.sep)))
  return f"{prefix}{slug or 'videos'}_{_path_digest(path)}_r{int(resolution)}"


class MissingDataError(DataError):
  """Data a config names is missing and was not to be created (`create=False`); the message names
  the folder and the command that recreates it."""


# The settings that define a rendered synthetic dataset: (key in its dataset_info.json, the
# config field named in messages).
SYNTHETIC_SETTINGS = (
    ("resolution", "data.resolution"),
    ("num_frames", "data.synthetic.num_frames"),
    ("num_videos", "data.synthetic.num_videos"),
    ("num_test_videos", "data.synthetic.num_test_videos"),
    ("background", "data.synthetic.background"),
    ("seed", "data.synthetic.seed"),
    # None when off: what dataset_info.json holds then (null, or absent before the field existed).
    ("person_seed", "data.synthetic.person_seed"),
    ("renderer_version", "renderer_version"),  # input_pipeline.synthetic.RENDERER_VERSION
)


def _person_seed(params) -> int | None:
  """data.synthetic.person_seed as write_dataset takes it: None when off (-1, or a config from
  before the field existed)."""
  value = params.get("person_seed", -1)
  if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < -1:
    raise ValueError(f"data.synthetic.person_seed: must be an integer >= -1 (-1: off), "
                     f"got {value!r}")
  return None if value == -1 else int(value)


def _synthetic_args(data_config) -> dict[str, Any]:
  params = data_config.synthetic
  return dict(num_videos=int(params.num_videos), num_frames=int(params.num_frames),
              resolution=int(data_config.resolution), seed=int(params.seed),
              num_test_videos=int(params.num_test_videos), background=str(params.background),
              person_seed=_person_seed(params))


def _synthetic_settings(data_config) -> dict[str, Any]:
  """What `SYNTHETIC_SETTINGS` asks for under `data_config`."""
  from input_pipeline import synthetic  # pylint: disable=g-import-not-at-top
  return dict(_synthetic_args(data_config), renderer_version=synthetic.RENDERER_VERSION)


def synthetic_key(data_config) -> str:
  """`r<R>_f<T>_train<N>_test<M>_<background>_seed<S>[_person<P>]_v<RENDERER_VERSION>`: the name
  of the folder the synthetic dataset of these settings is rendered into (configs/synthetic.py:
  r64_f48_train40_test4_studio_seed0_v<V>; `_person<P>` only in the single-person mode,
  data.synthetic.person_seed = P >= 0, so folders rendered without it keep their names); any two
  settings that render differently differ in it."""
  a = _synthetic_settings(data_config)
  person = "" if a["person_seed"] is None else f"_person{a['person_seed']}"
  return (f"r{a['resolution']}_f{a['num_frames']}_train{a['num_videos']}_"
          f"test{a['num_test_videos']}_{_slug(a['background']) or 'background'}_"
          f"seed{a['seed']}{person}_v{a['renderer_version']}")


def _given_dir(data_config) -> Path:
  return Path(os.path.abspath(os.path.expanduser(os.fspath(data_config.manual_dir))))


def synthetic_dir(data_config) -> Path:
  """The folder (absolute) that holds, or will hold, the synthetic dataset of `data_config`.

  `data_config.manual_dir` itself when it is a rendered dataset (holds dataset_info.json) or is
  named by `synthetic_key` (a path that `resolve_paths` gave, e.g. from a checkpoint's config);
  else its subfolder `<manual_dir>/<synthetic_key>`. Whether the settings match is checked where
  the data is used (`prepare`).
  """
  manual_dir = _given_dir(data_config)
  key = synthetic_key(data_config)
  if (manual_dir / "dataset_info.json").is_file() or manual_dir.name == key:
    return manual_dir
  return manual_dir / key


def _describe(value) -> str:
  return "(absent)" if value is None else repr(value)


def _check_rendered(folder: Path, data_config) -> None:
  """Raises DataError (one line) if `folder` holds a dataset that other settings rendered, or
  videos that the renderer did not write; a missing or empty folder passes."""
  info_path = folder / "dataset_info.json"
  if not info_path.is_file():
    if any((folder / split).exists() for split in ("train", "test")):
      raise DataError(f"{folder}: holds videos but no dataset_info.json, so "
                      "input_pipeline.synthetic did not render them; train on your own videos "
                      "with data.name=folder, or point data.manual_dir at another folder")
    return
  try:
    rendered = json.loads(info_path.read_text())
  except (OSError, ValueError) as error:
    raise DataError(f"{info_path}: unreadable ({error}); delete {folder} to render it "
                    "again") from None
  if not isinstance(rendered, dict) or rendered.get("generator") != "input_pipeline.synthetic":
    raise DataError(f"{info_path}: not written by input_pipeline.synthetic; point "
                    "data.manual_dir at another folder")
  asked = _synthetic_settings(data_config)
  differ = [f"{field}: rendered {_describe(rendered.get(name))} vs asked {_describe(asked[name])}"
            for name, field in SYNTHETIC_SETTINGS if rendered.get(name) != asked[name]]
  if differ:
    raise DataError(f"{folder}: rendered with other settings than the config asks for "
                    f"({'; '.join(differ)}); delete it, or set data.manual_dir to a parent "
                    "folder (each set of settings is rendered into its own subfolder, here "
                    f"<parent>/{synthetic_key(data_config)}/)")


def resolve_paths(data_config) -> ml_collections.ConfigDict:
  """A copy of `data_config` with data_dir and manual_dir absolute, and for "synthetic"
  manual_dir = `synthetic_dir` (the rendered dataset's own folder): the same data from any working
  directory. Idempotent."""
  resolved = ml_collections.ConfigDict(data_config.to_dict())
  for field in ("data_dir", "manual_dir"):
    if resolved.get(field):
      resolved[field] = os.path.abspath(os.path.expanduser(os.fspath(resolved[field])))
  if resolved.get("name") == "synthetic":
    resolved.manual_dir = os.fspath(synthetic_dir(resolved))
  return resolved


def get_builder(data_config, num_workers: int = 0) -> tfds.core.DatasetBuilder:
  """The TFDS builder for `data_config` (name, data_dir, manual_dir, resolution,
  min_driving_offset; for "synthetic" also the settings of `synthetic_key`); `num_workers`
  processes encode videos when it prepares."""
  name = data_config.name
  resolution = int(data_config.resolution)
  kwargs = dict(data_dir=os.path.abspath(os.fspath(data_config.data_dir)),
                min_frames=min_frames_for(data_config), num_workers=num_workers)
  if name == "dancefashion":
    config_name = f"r{resolution}"
    if config_name not in DanceFashion.builder_configs:
      config_name = frames_config(config_name, resolution)
    return DanceFashion(config=config_name, **kwargs)
  if name == "folder":
    # No local path in the description: it is stored in dataset_info.json.
    folder = os.path.basename(os.path.abspath(data_config.manual_dir))
    config = frames_config(folder_config_name(data_config.manual_dir, resolution),
                           resolution, f"videos of a folder named {folder!r} at {resolution}px")
    return VideoFolder(config=config, **kwargs)
  if name == "synthetic":
    # Keyed on the settings and on the rendered folder's path: another folder or other settings
    # never share a prepared dataset.
    rendered = synthetic_dir(data_config)
    key = synthetic_key(data_config)
    where = "" if rendered.name == key else f" in a folder named {rendered.name!r}"
    config = frames_config(f"synthetic_{key}_{_path_digest(rendered)}", resolution,
                           f"synthetic videos {key}{where}")
    return VideoFolder(config=config, **kwargs)
  raise DataError(f"data.name={name!r}: expected one of {', '.join(NAMES)}")


def prepare_command(data_config) -> str:
  """The command that creates the dataset of `data_config` (renders it first for "synthetic"),
  runnable from any directory: every path absolute, every setting explicit."""
  data = resolve_paths(data_config)
  args = ["python", "-m", "input_pipeline.prepare", f"--name={data.name}",
          f"--manual_dir={data.manual_dir}", f"--data_dir={data.data_dir}",
          f"--resolution={int(data.resolution)}",
          f"--min_driving_offset={int(data.min_driving_offset)}"]
  if data.name == "synthetic":
    params = data.synthetic
    args += [f"--{name}={params[name]}" for name in ("num_videos", "num_test_videos",
                                                       "num_frames", "background", "seed")]
    if _person_seed(params) is not None:
      args.append(f"--person_seed={_person_seed(params)}")
  return " ".join(shlex.quote(arg) for arg in args)


def _render_synthetic_if_missing(data_config, folder: Path) -> None:
  train_dir = folder / "train"
  if train_dir.is_dir() and video_io.list_videos(train_dir):
    return
  from input_pipeline import synthetic  # pylint: disable=g-import-not-at-top
  params = data_config.synthetic
  logging.info("rendering the synthetic dataset into %s (first use): %d train + %d test videos of "
               "%d frames at %d px", folder, params.num_videos, params.num_test_videos,
               params.num_frames, data_config.resolution)
  synthetic.write_dataset(folder, **_synthetic_args(data_config), field="config.data.manual_dir")


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


def prepare(data_config, num_workers: int = 0, create: bool = True) -> tfds.core.DatasetBuilder:
  """Prepares the dataset of `data_config` unless it is already prepared; returns its builder.

  "synthetic" is rendered first when its folder (`synthetic_dir`) has no videos yet. With
  `create=False` nothing is rendered or prepared: missing data is a MissingDataError naming the
  folder and `prepare_command`.

  Raises DataError (one line) for a missing/empty manual_dir, an unreadable video, or a synthetic
  folder rendered with other settings.
  """
  builder = get_builder(data_config, num_workers=num_workers)
  if data_config.name == "synthetic":
    manual_dir = synthetic_dir(data_config)
    # The given folder, when it is the parent, must not hold videos of its own either.
    for folder in {manual_dir, _given_dir(data_config)}:
      _check_rendered(folder, data_config)
  else:
    manual_dir = Path(data_config.manual_dir)
  if not create:
    # Evaluation: the synthetic test split is scored against its ground truth in manual_dir.
    if data_config.name == "synthetic" and not (manual_dir / "dataset_info.json").is_file():
      raise MissingDataError(
          f"{manual_dir}: the synthetic dataset (data.manual_dir) is missing and is not rendered "
          f"here; recreate it with: {prepare_command(data_config)}")
    if not builder.is_prepared():
      raise MissingDataError(
          f"{builder.data_dir}: the prepared dataset (under data.data_dir) is missing and is not "
          f"prepared here; recreate it with: {prepare_command(data_config)}")
  if builder.is_prepared():
    _warn_if_stale(builder, manual_dir)
    return builder
  if data_config.name == "synthetic":
    _render_synthetic_if_missing(data_config, manual_dir)
  find_split_videos(manual_dir, builder.MANUAL_DOWNLOAD_INSTRUCTIONS)  # fail early, one line
  logging.info("preparing %s/%s from %s into %s (first use)", builder.name,
               builder.builder_config.name, manual_dir, builder.data_dir)
  # TFDS writes into incomplete.<random>_<version> folders, named by no process: a marker named
  # by this process says that they are in use, so that a run after a SIGKILL removes them.
  version_dir = Path(builder.data_dir)
  incomplete = version_dir.parent.glob(f"incomplete.*_{version_dir.name}")
  try:
    with temporaries.partial_output(version_dir, orphans=incomplete) as marker:
      marker.parent.mkdir(parents=True, exist_ok=True)
      marker.touch()
      builder.download_and_prepare(download_config=tfds.download.DownloadConfig(
          manual_dir=os.fspath(manual_dir), try_download_gcs=False))
  except ModuleNotFoundError as error:
    if not (error.name or "").startswith("tensorflow"):
      raise
    # TFDS sorts a split of 1 GB or more in on-disk buckets written through tf.io.gfile.
    raise DataError(f"{manual_dir}: preparing a split of 1 GB or more needs TensorFlow, which the "
                    "default install leaves out: pip install \"internet_jax[tf]\" (or "
                    "tensorflow-cpu), then run again") from None
  return builder


def get_video_source(data_config, split: str, create: bool = True) -> TfdsVideoSource:
  """The `VideoSource` of split "train" or "test" of `data_config` (prepared on first use; with
  `create=False` a MissingDataError instead, see `prepare`).

  Reads data_config.{name, data_dir, manual_dir, resolution, min_driving_offset} and, for
  "synthetic", data_config.synthetic.{num_videos, num_test_videos, num_frames, background, seed};
  data_config.prepare_workers (optional, default 0) processes encode videos when preparing.
  """
  builder = prepare(data_config, num_workers=int(data_config.get("prepare_workers", 0)),
                    create=create)
  source = TfdsVideoSource.from_builder(builder, split, min_frames=min_frames_for(data_config))
  logging.info("%r", source)
  return source
