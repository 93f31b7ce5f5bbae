"""Per-frame annotations: the .npz rules, the TFDS builder storing them, the sources serving them."""
import threading
import time

import ml_collections
import numpy as np
import pytest

from input_pipeline import annotations
from input_pipeline import datasets
from input_pipeline import sources
from input_pipeline import video_io
from video_fixtures import smooth_frames, write_pngs

RESOLUTION = 16


def _arrays(num_frames, seed=0):
  rng = np.random.default_rng(seed)
  return {
      "joints": rng.normal(size=(num_frames, 3, 2)).astype(np.float32),
      "part_labels": rng.integers(0, 4, (num_frames, RESOLUTION, RESOLUTION), dtype=np.uint8),
      "flow_forward": rng.normal(size=(num_frames - 1, RESOLUTION, RESOLUTION, 2)
                                 ).astype(np.float32),
      "valid_forward": rng.uniform(size=(num_frames - 1, RESOLUTION, RESOLUTION)) > 0.5,
      "joint_names": np.array(["a", "b", "c"]),  # per video: left out
      "seed": np.int64(7),  # 0-d: left out
  }


def test_split_per_frame_rules():
  arrays = _arrays(4)
  frames = annotations.split_per_frame(arrays, 4, "x.npz")
  assert len(frames) == 4
  assert all(set(f) == {"joints", "part_labels", "flow_forward", "valid_forward"} for f in frames)
  for t in range(4):
    np.testing.assert_array_equal(frames[t]["joints"], arrays["joints"][t])
    np.testing.assert_array_equal(frames[t]["part_labels"], arrays["part_labels"][t])
  # Pairs are stored with the later frame; frame 0 has zeros (False).
  assert not frames[0]["flow_forward"].any() and not frames[0]["valid_forward"].any()
  assert frames[0]["valid_forward"].dtype == np.bool_
  for t in range(1, 4):
    np.testing.assert_array_equal(frames[t]["flow_forward"], arrays["flow_forward"][t - 1])
  with pytest.raises(video_io.DataError) as info:
    annotations.split_per_frame({"joints": np.zeros((6, 3, 2))}, 4, "x.npz")
  message = str(info.value)
  assert message.startswith("x.npz: 'joints' has 6 entries") and "\n" not in message


def test_frame_bytes_round_trip_and_corrupt_file(tmp_path):
  frame = annotations.split_per_frame(_arrays(3), 3, "x")[2]
  decoded = annotations.decode_frame(annotations.encode_frame(frame), "x")
  assert set(decoded) == set(frame)
  for key in frame:
    np.testing.assert_array_equal(decoded[key], frame[key])
    assert decoded[key].dtype == frame[key].dtype
  assert annotations.encode_frame({}) == b"" and annotations.decode_frame(b"", "x") == {}
  bad = tmp_path / "v.npz"
  bad.write_bytes(b"not an npz")
  with pytest.raises(video_io.DataError, match=f"^{bad}: not a readable .npz"):
    annotations.load_video_annotations(tmp_path / "v.mp4", 3)
  assert annotations.load_video_annotations(tmp_path / "w.mp4", 3) is None


def test_npz_files_are_read_one_thread_at_a_time(monkeypatch):
  """NumPy parses .npy headers with ast.literal_eval, which CPython 3.11 cannot run in two
  threads at once (a spurious SystemError): the readers of the training pipeline must not
  overlap inside np.load."""
  data = annotations.encode_frame(annotations.split_per_frame(_arrays(3), 3, "x")[1])
  inside, most, lock = [0], [0], threading.Lock()
  real_load = np.load

  def slow_load(*args, **kwargs):
    with lock:
      inside[0] += 1
      most[0] = max(most[0], inside[0])
    time.sleep(0.02)  # long enough for the other threads to arrive
    with lock:
      inside[0] -= 1
    return real_load(*args, **kwargs)

  monkeypatch.setattr(np, "load", slow_load)
  threads = [threading.Thread(target=annotations.decode_frame, args=(data, "x"))
             for _ in range(4)]
  for thread in threads:
    thread.start()
  for thread in threads:
    thread.join()
  assert most[0] == 1


def test_in_memory_source_and_missing_key_message():
  video = np.zeros((4, RESOLUTION, RESOLUTION, 3), np.uint8)
  arrays = _arrays(4)
  source = sources.InMemoryVideoSource([video, video], names=["with", "without"],
                                       annotations=[arrays, {}])
  assert source.annotation_keys(0) == ("flow_forward", "joints", "part_labels", "valid_forward")
  assert source.annotation_keys(1) == ()
  got = sources.read_annotations(source, 0, 2, ["joints"])
  assert list(got) == ["joints"]
  np.testing.assert_array_equal(got["joints"], arrays["joints"][2])
  assert list(source.read_annotations(0, 2, ["part_labels", "uv"])) == ["part_labels"]
  assert len(source.read_annotations(0, 2)) == 4
  with pytest.raises(video_io.DataError) as info:
    sources.read_annotations(source, 1, 3, ["joints"])
  assert str(info.value).startswith("video without frame 3: no annotation 'joints' (has none)")
  with pytest.raises(video_io.DataError, match="'joints' has 6 entries"):
    sources.InMemoryVideoSource([video], annotations=[{"joints": np.zeros((6, 2))}])


def _config(manual_dir, data_dir):
  return ml_collections.ConfigDict(dict(
      name="folder", manual_dir=str(manual_dir), data_dir=str(data_dir), resolution=RESOLUTION,
      min_driving_offset=0))


def test_builder_stores_the_annotations_beside_each_video(tmp_path):
  manual = tmp_path / "manual"
  write_pngs(manual / "train" / "d", smooth_frames(5, RESOLUTION, RESOLUTION, 0))
  arrays = _arrays(5)
  annotations.write_npz(manual / "train" / "d.npz", arrays)
  write_pngs(manual / "train" / "e", smooth_frames(3, RESOLUTION, RESOLUTION, 1))  # none
  source = datasets.get_video_source(_config(manual, tmp_path / "tfds"), "train")
  assert [source.video_name(v) for v in range(len(source))] == ["d", "e"]
  assert source.annotation_keys(0) == ("flow_forward", "joints", "part_labels", "valid_forward")
  assert source.annotation_keys(1) == ()
  for t in range(5):
    got = source.read_annotations(0, t)
    np.testing.assert_array_equal(got["joints"], arrays["joints"][t])
    np.testing.assert_array_equal(got["part_labels"], arrays["part_labels"][t])
    want_flow = arrays["flow_forward"][t - 1] if t else np.zeros_like(arrays["flow_forward"][0])
    np.testing.assert_array_equal(got["flow_forward"], want_flow)
    # Asked for some keys: those the frame has, alone (the others are not decoded).
    some = source.read_annotations(0, t, ["joints", "uv"])
    assert list(some) == ["joints"]
    np.testing.assert_array_equal(some["joints"], arrays["joints"][t])
  assert source.read_annotations(1, 0) == {}
  assert source.read_annotations(1, 0, ["joints"]) == {}
  with pytest.raises(video_io.DataError, match="^video e frame 2: no annotation 'joints'"):
    sources.read_annotations(source, 1, 2, ["joints"])
  # The annotations survive the pickle grain workers receive (a fresh reader in the copy).
  import pickle  # pylint: disable=g-import-not-at-top
  copy = pickle.loads(pickle.dumps(source))
  np.testing.assert_array_equal(copy.read_annotations(0, 4)["joints"], arrays["joints"][4])


@pytest.mark.parametrize("problem", ["misaligned", "other_size"])
def test_bad_annotations_stop_the_preparation_with_one_line(tmp_path, problem):
  manual = tmp_path / "manual"
  size = RESOLUTION if problem == "misaligned" else 2 * RESOLUTION
  write_pngs(manual / "train" / "d", smooth_frames(5, size, size, 0))
  arrays = _arrays(5) if problem == "other_size" else {"joints": np.zeros((7, 3, 2))}
  annotations.write_npz(manual / "train" / "d.npz", arrays)
  config = _config(manual, tmp_path / "tfds")
  with pytest.raises(video_io.DataError) as info:
    datasets.get_video_source(config, "train")
  message = str(info.value)
  assert message.startswith(str(manual / "train" / "d.npz")) and "\n" not in message, message
  want = "'joints' has 7 entries" if problem == "misaligned" else "prepared resolution 16x16"
  assert want in message, message
  assert not datasets.get_builder(config).is_prepared()


def test_synthetic_ground_truth_reaches_the_source(tmp_path):
  from input_pipeline import synthetic  # pylint: disable=g-import-not-at-top
  folder = tmp_path / "synthetic"
  synthetic.write_dataset(folder, num_videos=1, num_test_videos=1, num_frames=4,
                          resolution=RESOLUTION, seed=2)
  config = _config(folder, tmp_path / "tfds")
  config.name = "synthetic"
  config.synthetic = ml_collections.ConfigDict(dict(
      num_videos=1, num_test_videos=1, num_frames=4, seed=2, background="studio"))
  source = datasets.get_video_source(config, "train")
  truth = np.load(folder / "train" / "synth_00000.npz", allow_pickle=False)
  got = source.read_annotations(0, 3)
  np.testing.assert_array_equal(got["source_coords"], truth["source_coords"][3])
  np.testing.assert_array_equal(got["joints"], truth["joints"][3])
  np.testing.assert_array_equal(got["flow_backward"], truth["flow_backward"][2])
  assert "joint_names" not in got and "background" not in got
