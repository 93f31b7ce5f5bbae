"""TFDS builders for DanceFashion (UBC Fashion) and for any folder of videos, one record per frame.

Storage: each frame is one record {image: PNG (R, R, 3), video_name, frame_index, num_frames,
annotations}, with shuffling disabled, so the records of a video are contiguous and in frame order, and a training
example (frames 0, t-1, t) reads exactly three records. `TfdsVideoSource`
(input_pipeline/datasets.py) finds where each video starts by hopping over first records
(record 0 says how many frames video 0 has, so video 1 starts at that index, ...).

Frames are PNG-encoded with OpenCV and fed to `tfds.features.Image` as bytes (an ndarray would go
through `tf.image.encode_png`). Reading never needs TensorFlow, nor does writing a split below 1 GB;
a larger split (DanceFashion: about 230 KB per 512x512 frame) passes through TFDS's on-disk sort
buckets, which use `tf.io.gfile`, so preparing it needs tensorflow(-cpu) installed, and temporary
disk space about the size of the split.

`annotations` holds the frame's per-frame annotations from the .npz beside the video (joints, part
labels, flows, ...; input_pipeline/annotations.py) as npz bytes, b"" when the video has none; the
metadata lists each video's annotation keys with their shapes and dtypes.

Rules applied while preparing (see README.md):
* frames are converted to uint8 RGB and fitted into an R x R white square, each frame on its own
  (`video_io.resize_and_pad`), so a video whose frame size changes still yields R x R frames (a
  warning names it);
* videos with fewer than `min_frames` frames are skipped with a warning naming the file, and the
  count is logged at the end (training needs frames t-1 and t with t > min_driving_offset, hence
  num_frames >= min_driving_offset + 2);
* a corrupt or unreadable video stops the preparation with a one-line VideoReadError naming the
  file (delete or re-download it), and so does an unreadable or misaligned .npz of annotations, or
  annotations beside a video whose frames are not already R x R (pixel-unit annotations would no
  longer fit the resized frames); TFDS writes into a temporary `*.incomplete*` directory and only
  renames it when every split is complete, so a failure never leaves a dataset that loads.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import inspect
import multiprocessing
import os
from pathlib import Path
from typing import Sequence

import cv2
import numpy as np
import tensorflow_datasets as tfds
from absl import logging
from etils import epath

from input_pipeline import annotations
from input_pipeline import video_io

SPLITS = ("train", "test")
# cv2 PNG level 1: 512x512 frames encode in ~10 ms at ~4% more bytes than level 3 (17 ms).
_PNG_PARAMS = [cv2.IMWRITE_PNG_COMPRESSION, 1]
# Record keys are integers < 2**128: with shuffling disabled TFDS sorts by key and, past 1 GB,
# spills to 1000 buckets by key * 1000 / 2**128; spreading videos over that range keeps about one
# video per bucket in memory when a bucket is sorted (string keys fail past 1 GB).
_KEY_SPACE = 2**128

UBC_FASHION_PAGE = "https://vision.cs.ubc.ca/datasets/fashion/"
UBC_TRAIN_LIST = UBC_FASHION_PAGE + "resources/fashion_dataset/fashion_train.txt"
UBC_TEST_LIST = UBC_FASHION_PAGE + "resources/fashion_dataset/fashion_test.txt"


@dataclasses.dataclass(eq=False)
class VideoFramesConfig(tfds.core.BuilderConfig):
  """A builder config: frames are stored at `resolution` x `resolution`."""
  resolution: int = 256


def frames_config(name: str, resolution: int, description: str = "") -> VideoFramesConfig:
  """A config named `name` storing frames at `resolution` (prepared under <builder>/<name>/)."""
  return VideoFramesConfig(
      name=name, resolution=int(resolution),
      description=description or f"frames resized and padded to {resolution}x{resolution}")


@dataclasses.dataclass
class EncodedVideo:
  """A video ready to be written: PNG bytes per frame, the distinct source frame sizes (H, W) in
  order of appearance, and each frame's annotations as npz bytes (empty list: none)."""
  frames: list[bytes]
  sizes: list[tuple[int, int]]
  annotations: list[bytes]


def encode_video(path: str, resolution: int) -> EncodedVideo:
  """Decodes a video, fits each frame into resolution^2 and PNG-encodes it, and encodes the
  annotations of the .npz beside it per frame. Module-level so that worker processes can run it."""
  encoded = []
  sizes: list[tuple[int, int]] = []
  for frame in video_io.read_video_frames(path):
    if frame.shape[:2] not in sizes:
      sizes.append(frame.shape[:2])
    frame = video_io.resize_and_pad(frame, resolution)
    ok, png = cv2.imencode(".png", frame[..., ::-1], _PNG_PARAMS)  # OpenCV expects BGR
    if not ok:
      raise video_io.VideoReadError(f"{path}: PNG encoding of frame {len(encoded)} failed")
    encoded.append(png.tobytes())
  per_frame = annotations.load_video_annotations(path, len(encoded))
  if per_frame is None:
    return EncodedVideo(encoded, sizes, [])
  if sizes != [(resolution, resolution)]:
    raise video_io.DataError(
        f"{annotations.annotation_path(path)}: annotations need the video's frames at the "
        f"prepared resolution {resolution}x{resolution}, its frames are "
        f"{', '.join(f'{w}x{h}' for h, w in sizes)} (resize the video and its annotations "
        "together, or prepare at the video's size)")
  return EncodedVideo(encoded, sizes, [annotations.encode_frame(frame) for frame in per_frame])


def _encoded_videos(paths: Sequence[Path], resolution: int, num_workers: int):
  """Yields (path, encode_video(path)) in order, decoding up to `num_workers` videos in parallel."""
  if num_workers <= 0:
    for path in paths:
      yield path, encode_video(str(path), resolution)
    return
  # Spawned workers (no fork of a process that may hold JAX/threads); at most 2 videos per worker
  # in flight so that finished videos never pile up in memory.
  context = multiprocessing.get_context("spawn")
  pool = concurrent.futures.ProcessPoolExecutor(num_workers, mp_context=context)
  try:
    pending = []
    paths = list(paths)
    next_index = 0
    while next_index < len(paths) or pending:
      while next_index < len(paths) and len(pending) < 2 * num_workers:
        pending.append((paths[next_index],
                        pool.submit(encode_video, str(paths[next_index]), resolution)))
        next_index += 1
      path, future = pending.pop(0)
      yield path, future.result()
  finally:
    pool.shutdown(wait=True, cancel_futures=True)  # on an error, do not encode the rest


class _VideoFramesBuilder(tfds.core.GeneratorBasedBuilder, skip_registration=True):
  """Shared logic: manual_dir/{train,test}/ of videos -> one PNG record per frame."""

  VERSION = tfds.core.Version("1.1.0")
  RELEASE_NOTES = {"1.0.0": "One record per frame (PNG), records of a video contiguous.",
                   "1.1.0": "Per-frame annotations from the .npz beside each video."}

  def __init__(self, *, min_frames: int = 2, num_workers: int = 0,
               file_format: str = "array_record", **kwargs):
    """Args: min_frames: shorter videos are skipped (>= 1); num_workers: processes decoding and
    encoding videos while preparing (0: in this process); the rest goes to DatasetBuilder."""
    if min_frames < 1:
      raise ValueError(f"min_frames must be >= 1, got {min_frames}")
    if kwargs.get("config") is None and not self.BUILDER_CONFIGS:
      raise ValueError(f"{type(self).__name__} needs config=frames_config(name, resolution)")
    self._min_frames = int(min_frames)
    self._num_workers = int(num_workers)
    super().__init__(file_format=file_format, **kwargs)

  @tfds.core.utils.classproperty
  @classmethod
  def code_path(cls) -> epath.Path:
    """This module's file. TFDS 4.9.10's own lookup evaluates `importlib_resources.abc`, a package
    it declares only for Python < 3.9, and fails with ModuleNotFoundError without it."""
    return epath.Path(inspect.getfile(cls))

  @property
  def resolution(self) -> int:
    return self.builder_config.resolution

  def _info(self) -> tfds.core.DatasetInfo:
    size = self.builder_config.resolution
    return self.dataset_info_from_configs(
        features=tfds.features.FeaturesDict({
            "image": tfds.features.Image(shape=(size, size, 3), encoding_format="png"),
            "video_name": tfds.features.Text(),
            "frame_index": np.int32,
            "num_frames": np.int32,
            "annotations": tfds.features.Tensor(shape=(), dtype=np.object_),
        }),
        disable_shuffling=True,  # records of a video stay contiguous and in order
        metadata=tfds.core.MetadataDict(),
        homepage=self._homepage(),
    )

  def _homepage(self) -> str:
    return ""

  def _split_generators(self, dl_manager):
    try:
      manual_dir = Path(dl_manager.manual_dir)
    except AssertionError:  # missing or empty: TFDS's multi-line message -> our one-line DataError
      manual_dir = Path(getattr(dl_manager, "_manual_dir", None) or "<manual_dir>")
    split_videos = find_split_videos(manual_dir, self.MANUAL_DOWNLOAD_INSTRUCTIONS)
    metadata = self.info.metadata
    metadata["min_frames"] = self._min_frames
    metadata["resolution"] = self.resolution
    metadata["videos"] = {split: [] for split in split_videos}
    metadata["skipped"] = {split: [] for split in split_videos}
    metadata["annotations"] = {split: {} for split in split_videos}
    return {split: self._generate_examples(split, videos)
            for split, videos in split_videos.items()}

  def _generate_examples(self, split: str, videos: Sequence[Path]):
    # Integer keys spread over the key space; see _KEY_SPACE.
    stride = _KEY_SPACE // max(1, len(videos))
    kept = self.info.metadata["videos"][split]
    skipped = self.info.metadata["skipped"][split]
    encoded = _encoded_videos(videos, self.resolution, self._num_workers)
    described = self.info.metadata["annotations"][split]
    for index, (path, video) in enumerate(encoded):
      name, frames, sizes = video_io.video_name(path), video.frames, video.sizes
      if len(frames) < self._min_frames:
        logging.warning("%s: skipped, %d frames < min_frames=%d", path, len(frames),
                        self._min_frames)
        skipped.append(name)
        continue
      if len(sizes) > 1:
        logging.warning("%s: frame size changes within the video (%s); each frame is resized and "
                        "padded to %d on its own", path, ", ".join(f"{w}x{h}" for h, w in sizes),
                        self.resolution)
      kept.append(name)
      if video.annotations:
        described[name] = annotations.describe(
            annotations.decode_frame(video.annotations[0], str(path)))
      for frame_index, png in enumerate(frames):
        yield index * stride + frame_index, {
            "image": png,
            "video_name": name,
            "frame_index": frame_index,
            "num_frames": len(frames),
            "annotations": video.annotations[frame_index] if video.annotations else b"",
        }
    if skipped:
      logging.warning("%s: skipped %d of %d videos shorter than min_frames=%d",
                      split, len(skipped), len(videos), self._min_frames)
    if not kept:
      raise video_io.DataError(f"{videos[0].parent}: all {len(videos)} videos have fewer than "
                               f"min_frames={self._min_frames} frames")
    logging.info("%s: %d videos prepared", split, len(kept))


def find_split_videos(manual_dir: str | os.PathLike,
                      instructions: str = "") -> dict[str, list[Path]]:
  """The videos of each split found under manual_dir/{train,test}/ (test is optional).

  Raises DataError (one line) if manual_dir or its train/ has no videos, or a split folder is empty.
  """
  manual_dir = Path(manual_dir)
  hint = " ".join(instructions.replace("<manual_dir>", str(manual_dir)).split())
  hint = f" ({hint})" if hint else ""
  if not manual_dir.is_dir():
    raise video_io.DataError(f"{manual_dir}: manual_dir does not exist; put videos in "
                             f"{manual_dir}/train/ and {manual_dir}/test/{hint}")
  split_videos = {}
  for split in SPLITS:
    split_dir = manual_dir / split
    if not split_dir.is_dir():
      continue
    videos = video_io.list_videos(split_dir)
    if not videos:
      raise video_io.DataError(f"{split_dir}: no videos (.mp4/.mov/.avi/.gif/.webm or folders "
                               f"of .png/.jpg frames){hint}")
    split_videos[split] = videos
  if "train" not in split_videos:
    raise video_io.DataError(f"{manual_dir}: no train/ folder of videos; put videos in "
                             f"{manual_dir}/train/ and {manual_dir}/test/{hint}")
  if "test" not in split_videos:
    logging.warning("%s: no test/ folder, preparing the train split only", manual_dir)
  return split_videos


class DanceFashion(_VideoFramesBuilder):
  """DanceFashion (UBC Fashion, DwNet BMVC 2019): 500 train / 100 test catwalk videos, 720x940."""

  BUILDER_CONFIGS = [
      frames_config("r256", 256, "frames fitted into 256x256 (FOMM fashion-256)"),
      frames_config("r512", 512, "frames fitted into 512x512 (INTERnet paper)"),
  ]
  DEFAULT_CONFIG_NAME = "r512"
  MANUAL_DOWNLOAD_INSTRUCTIONS = (
      f"Download UBC Fashion (DanceFashion) from {UBC_FASHION_PAGE}: {UBC_TRAIN_LIST} and "
      f"{UBC_TEST_LIST} list one video URL per line; download every URL of fashion_train.txt "
      "into <manual_dir>/train/ and every URL of fashion_test.txt into <manual_dir>/test/, "
      "keeping the .mp4 files (e.g. `wget -i fashion_train.txt -P <manual_dir>/train/`). "
      "Folders of PNG frames (FOMM's fashion-png layout "
      "<manual_dir>/train/<video>.mp4/0000000.png) are accepted too. "
      "See input_pipeline/dance_fashion/README.md.")

  def _homepage(self) -> str:
    return UBC_FASHION_PAGE


class VideoFolder(_VideoFramesBuilder):
  """Any folder of videos laid out as <manual_dir>/train/ and <manual_dir>/test/.

  It has no predefined configs: pass `config=frames_config(name, resolution)` with a name that
  identifies the folder (datasets.get_video_source derives one), so that two folders prepared into
  one data_dir do not collide.
  """

  MANUAL_DOWNLOAD_INSTRUCTIONS = (
      "Put the videos (.mp4/.mov/.avi/.gif/.webm files or folders of .png/.jpg frames) into "
      "<manual_dir>/train/ and <manual_dir>/test/.")

