"""DanceFashion/VideoFolder TFDS builders, TfdsVideoSource and the dataset factory on tiny data."""
import json
import os
import pickle
import subprocess
import sys
from pathlib import Path

import cv2
import ml_collections
import numpy as np
import pytest
import tensorflow_datasets as tfds

from input_pipeline import datasets
from input_pipeline import video_io
from input_pipeline.dance_fashion import dance_fashion
from input_pipeline.sources import VideoSource
from video_fixtures import smooth_frames as _smooth_frames, write_pngs as _write_pngs

ROOT = Path(__file__).resolve().parents[1]
RESOLUTION = 32
MIN_DRIVING_OFFSET = 3  # min_frames = 5


def _make_manual_dir(root):
  """train: a (9 RGB PNGs, 40x30), b (14 PNGs mixing sizes, gray, RGBA, 16 bit), c (12-frame mp4),
  short (3 PNGs, below min_frames); test: t (7 PNGs). Returns {split: {name: expected frames}}."""
  expected = {"train": {}, "test": {}}
  a = _smooth_frames(9, 40, 30, 0)
  _write_pngs(root / "train" / "a", a)
  expected["train"]["a"] = a
  b = []
  for t, frame in enumerate(_smooth_frames(14, 48, 48, 1)):
    if t % 4 == 1:
      b.append(frame[:36, :44])  # another size within the video
    elif t % 4 == 2:
      b.append(frame[..., 0])  # grayscale
    elif t % 4 == 3:
      b.append(np.concatenate([frame, np.full((48, 48, 1), 90, np.uint8)], -1))  # RGBA
    else:
      b.append(frame.astype(np.uint16) * 256 + t)  # 16 bit
  _write_pngs(root / "train" / "b", b)
  # Pillow reads 16-bit colour PNGs as their high bytes.
  expected["train"]["b"] = [video_io.to_rgb_uint8((f >> 8).astype(np.uint8) if f.dtype == np.uint16
                                                  else f) for f in b]
  c_path = video_io.write_video(root / "train" / "c.mp4", _smooth_frames(12, 32, 48, 2), fps=30)
  expected["train"]["c"] = list(video_io.read_video_frames(c_path))  # decoding is deterministic
  _write_pngs(root / "train" / "short", _smooth_frames(3, 40, 30, 3))
  t_frames = _smooth_frames(7, 30, 40, 4)
  _write_pngs(root / "test" / "t", t_frames)
  expected["test"]["t"] = t_frames
  return {split: {name: [video_io.resize_and_pad(f, RESOLUTION) for f in frames]
                  for name, frames in videos.items()} for split, videos in expected.items()}


def _data_config(manual_dir, data_dir, name="folder"):
  return ml_collections.ConfigDict(dict(
      name=name, manual_dir=str(manual_dir), data_dir=str(data_dir), resolution=RESOLUTION,
      min_driving_offset=MIN_DRIVING_OFFSET))


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
  root = tmp_path_factory.mktemp("folder_ds")
  expected = _make_manual_dir(root / "manual")
  config = _data_config(root / "manual", root / "tfds")
  return config, expected, datasets.get_video_source(config, "train")


def test_source_returns_exactly_the_resized_frames(prepared):
  config, expected, source = prepared
  assert isinstance(source, VideoSource)
  assert [source.video_name(v) for v in range(len(source))] == ["a", "b", "c"]
  assert [source.num_frames(v) for v in range(len(source))] == [9, 14, 12]
  for v in range(len(source)):
    want = expected["train"][source.video_name(v)]
    for t in range(source.num_frames(v)):
      got = source.read_frame(v, t)
      assert got.dtype == np.uint8 and got.shape == (RESOLUTION, RESOLUTION, 3)
      np.testing.assert_array_equal(got, want[t], err_msg=f"video {v} frame {t}")
  test = datasets.get_video_source(config, "test")
  assert len(test) == 1 and test.video_name(0) == "t"
  np.testing.assert_array_equal(test.read_frame(0, 6), expected["test"]["t"][6])
  with pytest.raises(IndexError):
    source.read_frame(0, 9)


def test_records_are_one_per_frame_in_order_without_local_paths(prepared):
  config, _, source = prepared
  builder = datasets.get_builder(config)
  assert builder.info.file_format.value == "array_record"
  records = builder.as_data_source("train")
  assert len(records) == 9 + 14 + 12
  order = [(r["video_name"].decode(), int(r["frame_index"]), int(r["num_frames"])) for r in records]
  assert order == ([("a", t, 9) for t in range(9)] + [("b", t, 14) for t in range(14)]
                   + [("c", t, 12) for t in range(12)])
  local = os.fspath(Path(config.manual_dir).resolve()).encode()
  for path in Path(builder.data_dir).iterdir():
    assert local not in path.read_bytes(), path
  assert source.dataset_dir == builder.data_dir
  assert Path(builder.data_dir).relative_to(config.data_dir).parts[:2] == (
      "video_folder", datasets.folder_config_name(config.manual_dir, RESOLUTION))


def test_short_video_skipped_counted_and_warned(tmp_path, caplog):
  _make_manual_dir(tmp_path / "manual")
  with caplog.at_level("WARNING"):
    builder = datasets.prepare(_data_config(tmp_path / "manual", tmp_path / "tfds"))
  short = str(tmp_path / "manual" / "train" / "short")
  assert any(short in m and "min_frames=5" in m for m in caplog.messages), caplog.messages
  assert any("skipped 1 of 4 videos" in m for m in caplog.messages), caplog.messages
  assert any(str(tmp_path / "manual" / "train" / "b") in m and "frame size changes" in m
             for m in caplog.messages), caplog.messages
  metadata = tfds.builder_from_directory(builder.data_dir).info.metadata
  assert metadata["skipped"] == {"train": ["short"], "test": []}
  assert metadata["videos"] == {"train": ["a", "b", "c"], "test": ["t"]}
  assert metadata["min_frames"] == 5


def test_index_built_by_hopping_one_record_per_video(prepared):
  _, _, source = prepared
  reads = []

  class CountingRecords:
    def __init__(self, records):
      self.records = records

    def __len__(self):
      return len(self.records)

    def __getitem__(self, index):
      reads.append(index)
      return self.records[index]

  fresh = pickle.loads(pickle.dumps(source))
  fresh._reader = CountingRecords(fresh._records())
  starts, lengths, names = fresh._build_index()
  assert reads == [0, 9, 23] and starts == [0, 9, 23] and lengths == [9, 14, 12]
  assert names == ["a", "b", "c"]
  # The index reader does not decode images.
  assert isinstance(fresh._records()[0]["image"], bytes)


def test_min_frames_at_read_time_and_index_of_different_lengths(prepared):
  _, expected, source = prepared
  longer = datasets.TfdsVideoSource(source.dataset_dir, "train", min_frames=10)
  assert [longer.video_name(v) for v in range(len(longer))] == ["b", "c"]
  np.testing.assert_array_equal(longer.read_frame(1, 11), expected["train"]["c"][11])
  with pytest.raises(video_io.DataError, match="no split 'validation'"):
    datasets.TfdsVideoSource(source.dataset_dir, "validation")


def test_source_pickles_without_its_reader(prepared):
  _, expected, source = prepared
  source.read_frame(0, 0)  # opens the reader
  copy = pickle.loads(pickle.dumps(source))
  assert copy._reader is None
  assert len(copy) == len(source) and copy.video_name(2) == "c"
  np.testing.assert_array_equal(copy.read_frame(2, 5), expected["train"]["c"][5])


def test_prepared_dataset_is_reused_and_stale_manual_dir_warned(prepared, caplog, monkeypatch):
  config, _, source = prepared

  def fail(*args, **kwargs):
    raise AssertionError("must not prepare again")

  monkeypatch.setattr(tfds.core.DatasetBuilder, "download_and_prepare", fail)
  (Path(config.manual_dir) / "train" / "new.mp4").write_bytes(b"")
  try:
    with caplog.at_level("WARNING"):
      again = datasets.get_video_source(config, "train")
  finally:
    (Path(config.manual_dir) / "train" / "new.mp4").unlink()
  assert len(again) == 3
  assert any("different set of train videos" in m and "1 new" in m for m in caplog.messages)


def test_corrupt_video_is_a_one_line_error_naming_it_and_leaves_nothing(tmp_path):
  _make_manual_dir(tmp_path / "manual")
  bad = tmp_path / "manual" / "train" / "b2.mp4"  # sorts after a and b: fails mid-split
  bad.write_text("not a video\n")
  config = _data_config(tmp_path / "manual", tmp_path / "tfds")
  with pytest.raises(video_io.VideoReadError) as info:
    datasets.get_video_source(config, "train")
  message = str(info.value)
  assert message.startswith(str(bad)) and "\n" not in message and "not a readable video" in message
  _assert_nothing_prepared(config)


def _assert_nothing_prepared(config):
  builder = datasets.get_builder(config)
  assert not builder.is_prepared()
  config_dir = Path(builder.data_dir).parent
  assert not config_dir.exists() or not any(config_dir.iterdir()), list(config_dir.iterdir())
  with pytest.raises(video_io.DataError, match="not a prepared dataset"):
    datasets.TfdsVideoSource(builder.data_dir, "train")


def test_failure_in_the_last_split_leaves_no_dataset_that_loads(tmp_path, monkeypatch):
  _make_manual_dir(tmp_path / "manual")
  config = _data_config(tmp_path / "manual", tmp_path / "tfds")
  real = dance_fashion.encode_video

  def encode_or_fail(path, resolution):
    if "/test/" in path:  # train is fully written by then
      raise RuntimeError("injected failure")
    return real(path, resolution)

  monkeypatch.setattr(dance_fashion, "encode_video", encode_or_fail)
  with pytest.raises(RuntimeError, match="injected failure"):
    datasets.prepare(config)
  _assert_nothing_prepared(config)
  monkeypatch.setattr(dance_fashion, "encode_video", real)
  assert len(datasets.get_video_source(config, "test")) == 1  # the next run starts afresh


def test_missing_or_empty_manual_dir_messages(tmp_path):
  config = _data_config(tmp_path / "nowhere", tmp_path / "tfds", name="dancefashion")
  with pytest.raises(video_io.DataError) as info:
    datasets.get_video_source(config, "train")
  message = str(info.value)
  assert "\n" not in message and message.startswith(str(tmp_path / "nowhere"))
  assert "fashion_train.txt" in message and str(tmp_path / "nowhere" / "train") in message
  (tmp_path / "empty" / "train").mkdir(parents=True)
  (tmp_path / "empty" / "train" / "readme.txt").write_text("x")
  with pytest.raises(video_io.DataError, match=r"empty/train: no videos"):
    datasets.get_video_source(_data_config(tmp_path / "empty", tmp_path / "tfds"), "train")
  with pytest.raises(video_io.DataError, match="data.name='kinetics'"):
    datasets.get_builder(_data_config(tmp_path, tmp_path / "tfds", name="kinetics"))


def test_all_videos_too_short_is_an_error(tmp_path):
  _write_pngs(tmp_path / "manual" / "train" / "x", _smooth_frames(3, 8, 8, 0))
  with pytest.raises(video_io.DataError, match="all 1 videos have fewer than min_frames=5"):
    datasets.prepare(_data_config(tmp_path / "manual", tmp_path / "tfds"))


def _synthetic_config(manual_dir, data_dir, resolution=16, **synthetic_settings):
  config = _data_config(manual_dir, data_dir, name="synthetic")
  config.resolution = resolution
  config.synthetic = ml_collections.ConfigDict(dict(
      num_videos=1, num_test_videos=1, num_frames=6, background="studio", seed=3))
  config.synthetic.update(synthetic_settings)
  return config


def _rendered_frames(config, split, index):
  """What the renderer draws for video `index` of `split` under `config` (PNG is lossless and
  the frames are already R x R, so preparing keeps them exactly)."""
  from input_pipeline import synthetic  # pylint: disable=g-import-not-at-top
  params = config.synthetic
  return synthetic.render_video(synthetic.video_seed(params.seed, split, index),
                                params.num_frames, config.resolution, params.background)["frames"]


def _all_frames(source, video):
  return np.stack([source.read_frame(video, t) for t in range(source.num_frames(video))])


def test_synthetic_settings_never_share_a_folder(tmp_path, monkeypatch):
  """A small run, then a bigger one with the same data.manual_dir and data.data_dir (as
  configs/synthetic.py:tiny and configs/synthetic.py): each reads the videos of its own settings,
  rendered into its own subfolder, and running the first settings again renders nothing."""
  from input_pipeline import synthetic  # pylint: disable=g-import-not-at-top
  renders = []
  real = synthetic.write_dataset

  def write_dataset(output_dir, **kwargs):
    renders.append(Path(output_dir))
    real(output_dir, **kwargs)

  monkeypatch.setattr(synthetic, "write_dataset", write_dataset)
  parent, tfds_dir = tmp_path / "synthetic", tmp_path / "tfds"
  small = _synthetic_config(parent, tfds_dir, resolution=16, num_frames=6)
  big = _synthetic_config(parent, tfds_dir, resolution=32, num_frames=8, num_videos=2)
  for config in (small, big, small):
    for split, count in (("train", config.synthetic.num_videos), ("test", 1)):
      source = datasets.get_video_source(config, split)
      assert len(source) == count, (config, split)
      for video in range(count):
        np.testing.assert_array_equal(_all_frames(source, video),
                                      _rendered_frames(config, split, video))
  version = synthetic.RENDERER_VERSION
  small_dir = parent / f"r16_f6_train1_test1_studio_seed3_v{version}"
  big_dir = parent / f"r32_f8_train2_test1_studio_seed3_v{version}"
  assert renders == [small_dir, big_dir]  # once per settings
  assert sorted(parent.iterdir()) == [small_dir, big_dir]
  assert datasets.synthetic_dir(small) == small_dir
  # The prepared datasets are keyed the same way (and on the rendered folder's path).
  prepared = sorted(p.name for p in (tfds_dir / "video_folder").iterdir())
  assert [name.rsplit("_", 1)[0] for name in prepared] == [
      f"synthetic_{small_dir.name}", f"synthetic_{big_dir.name}"], prepared


def test_a_synthetic_folder_rendered_with_other_settings_is_refused(tmp_path):
  from input_pipeline import synthetic  # pylint: disable=g-import-not-at-top
  mine = tmp_path / "mine"  # rendered explicitly (python -m input_pipeline.synthetic does this)
  synthetic.write_dataset(mine, num_videos=1, num_test_videos=1, num_frames=6, resolution=16,
                          seed=3)
  config = _synthetic_config(mine, tmp_path / "tfds")
  source = datasets.get_video_source(config, "test")  # its own settings: used as it is
  np.testing.assert_array_equal(_all_frames(source, 0), _rendered_frames(config, "test", 0))
  assert sorted(p.name for p in mine.iterdir()) == ["dataset_info.json", "test", "test_cross",
                                                    "train"]
  prepared = sorted((tmp_path / "tfds" / "video_folder").iterdir())

  config.resolution, config.synthetic.num_frames = 32, 8
  with pytest.raises(video_io.DataError) as info:
    datasets.get_video_source(config, "train")
  message = str(info.value)
  assert "\n" not in message and message.startswith(str(mine)), message
  assert "resolution: rendered 16 vs asked 32" in message, message
  assert "num_frames: rendered 6 vs asked 8" in message, message
  assert "num_videos" not in message and "seed:" not in message, message  # only what differs
  assert sorted((tmp_path / "tfds" / "video_folder").iterdir()) == prepared  # nothing new
  assert sorted(p.name for p in mine.iterdir()) == ["dataset_info.json", "test", "test_cross",
                                                    "train"]

  # A render from before the renderer had a version (no renderer_version recorded).
  info_path = mine / "dataset_info.json"
  recorded = json.loads(info_path.read_text())
  recorded.pop("renderer_version", None)
  info_path.write_text(json.dumps(recorded))
  with pytest.raises(video_io.DataError,
                     match=r"renderer_version: rendered \(absent\) vs asked \d+"):
    datasets.get_video_source(_synthetic_config(mine, tmp_path / "tfds"), "train")

  # Videos that no renderer wrote (no dataset_info.json) are not taken for synthetic ones.
  _write_pngs(tmp_path / "own" / "train" / "a", _smooth_frames(6, 16, 16, 0))
  with pytest.raises(video_io.DataError, match="no dataset_info.json"):
    datasets.get_video_source(_synthetic_config(tmp_path / "own", tmp_path / "tfds"), "train")


def test_parallel_encoding_gives_the_same_records(tmp_path):
  _make_manual_dir(tmp_path / "manual")
  config = _data_config(tmp_path / "manual", tmp_path / "tfds")
  builder = datasets.prepare(config, num_workers=2)
  serial = list(dance_fashion._encoded_videos(
      video_io.list_videos(tmp_path / "manual" / "train"), RESOLUTION, 0))
  source = datasets.TfdsVideoSource.from_builder(builder, "train")
  kept = [(path, video.frames) for path, video in serial if len(video.frames) >= 5]
  assert [video_io.video_name(p) for p, _ in kept] == ["a", "b", "c"]
  for v, (_, frames) in enumerate(kept):
    for t, png in enumerate(frames):
      want = cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_COLOR)[..., ::-1]
      np.testing.assert_array_equal(source.read_frame(v, t), want)


def test_prepare_cli_summary_and_one_line_error(prepared, tmp_path):
  config, _, _ = prepared
  env = dict(os.environ, PYTHONPATH=str(ROOT))
  common = [sys.executable, "-m", "input_pipeline.prepare", f"--resolution={RESOLUTION}",
            f"--min_driving_offset={MIN_DRIVING_OFFSET}", f"--data_dir={config.data_dir}"]
  done = subprocess.run(common + ["--name=folder", f"--manual_dir={config.manual_dir}"],
                        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
  assert done.returncode == 0, done.stderr
  assert "train: 3 videos, 35 frames, 1 skipped" in done.stdout, done.stdout
  assert "test: 1 videos, 7 frames, 0 skipped" in done.stdout, done.stdout
  failed = subprocess.run(common + ["--name=dancefashion", f"--manual_dir={tmp_path / 'none'}"],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
  assert failed.returncode == 1
  last = failed.stderr.strip().splitlines()[-1]
  assert last.startswith(f"prepare: {tmp_path / 'none'}: manual_dir does not exist"), last


def test_large_split_sorts_in_buckets_or_names_the_tf_extra(tmp_path, monkeypatch):
  """Past TFDS's in-memory limit (1 GB; lowered here to 1 byte) a split is sorted in 1000 on-disk
  buckets by key, written through tf.io.gfile. With TensorFlow installed (the `tf` extra) the
  integer keys keep the videos in order there; without it (the default install) preparing stops
  with one DataError naming the extra, and leaves no records behind."""
  import importlib.util  # pylint: disable=g-import-not-at-top
  from tensorflow_datasets.core import shuffle  # pylint: disable=g-import-not-at-top
  monkeypatch.setattr(shuffle, "MAX_MEM_BUFFER_SIZE", 1)
  for index in range(4):
    _write_pngs(tmp_path / "manual" / "train" / f"v{index}", _smooth_frames(5 + index, 8, 8, index))
  config = _data_config(tmp_path / "manual", tmp_path / "tfds")
  if importlib.util.find_spec("tensorflow") is not None:
    source = datasets.get_video_source(config, "train")
    assert [source.num_frames(v) for v in range(4)] == [5, 6, 7, 8]
    assert source.read_frame(3, 7).shape == (RESOLUTION, RESOLUTION, 3)
  else:
    with pytest.raises(video_io.DataError, match=r"needs TensorFlow.*internet_jax\[tf\]"):
      datasets.get_video_source(config, "train")
    assert not list((tmp_path / "tfds").rglob("*.array_record*"))
