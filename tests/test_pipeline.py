"""input_pipeline/pipeline.py (+ the benchmark CLI): batch contract, determinism, resumption,
per-process sharding, flips, flow direction and the moving-pattern fixtures. worker_count=0
everywhere except the one benchmark subprocess (grain workers need absl.app.run)."""
import json
import os
import subprocess
import sys

import grain
import numpy as np
import pytest

from configs import default
from input_pipeline import pipeline
from input_pipeline import sources

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
KEYS = ("driving", "flow", "flow_confidence", "previous", "source")


def _data_config(**overrides):
  data = default.get_config().data
  data.min_driving_offset = 4
  data.num_repeats = 2
  data.worker_count = 0
  for key, value in overrides.items():
    setattr(data, key, value)
  return data


@pytest.fixture(scope="module")
def source():
  return pipeline.make_moving_pattern_source(5, 12, 32, seed=0)


def _iterator(source, data=None, batch=4, seed=0, **kwargs):
  return pipeline.create_train_iterator(data or _data_config(), source,
                                        batch_size_per_process=batch, seed=seed, **kwargs)


def _take(iterator, n):
  return [next(iterator) for _ in range(n)]


def _assert_batches_equal(a, b):
  assert a.keys() == b.keys()
  for key in a:
    np.testing.assert_array_equal(a[key], b[key], err_msg=key)


def _examples(batches):
  """Flattens batches into a list of per-example dicts."""
  return [{k: batch[k][i] for k in batch} for batch in batches
          for i in range(batch["source"].shape[0])]


def test_batch_contract_shapes_dtypes_values(source):
  batch = next(_iterator(source, batch=3))
  assert tuple(sorted(batch)) == KEYS
  for key in ("source", "driving", "previous"):
    assert batch[key].shape == (3, 32, 32, 3) and batch[key].dtype == np.uint8, key
  assert batch["flow"].shape == (3, 32, 32, 2) and batch["flow"].dtype == np.float32
  assert batch["flow_confidence"].shape == (3, 32, 32, 1)
  assert batch["flow_confidence"].dtype == np.float32
  assert set(np.unique(batch["flow_confidence"])) <= {0.0, 1.0}
  assert batch["flow_confidence"].mean() > 0.5
  assert np.isfinite(batch["flow"]).all()
  # Normalised units: the test videos move by at most ~1 px per frame = 2/31 in [-1, 1] units.
  assert 0 < np.abs(batch["flow"]).max() < 0.3


def test_same_seed_same_stream_other_seed_differs(source):
  a, b = _take(_iterator(source, seed=7), 2), _take(_iterator(source, seed=7), 2)
  for x, y in zip(a, b):
    _assert_batches_equal(x, y)
  c = next(_iterator(source, seed=8))
  assert not np.array_equal(a[0]["driving"], c["driving"])


def test_restoring_the_state_yields_exactly_the_next_batches(source):
  iterator = _iterator(source)
  _take(iterator, 3)
  state = iterator.get_state()
  expected = _take(iterator, 2)
  fresh = _iterator(source)
  fresh.set_state(state)
  for got, want in zip(_take(fresh, 2), expected):
    _assert_batches_equal(got, want)


def test_iterator_round_trips_through_an_orbax_checkpoint(source, tmp_path):
  ocp = pytest.importorskip("orbax.checkpoint")
  iterator = _iterator(source)
  _take(iterator, 2)
  with ocp.CheckpointManager(tmp_path / "ckpt") as manager:
    manager.save(2, args=ocp.args.Composite(data=grain.checkpoint.CheckpointSave(iterator)))
    manager.wait_until_finished()
    expected = next(iterator)
    fresh = _iterator(source)
    manager.restore(2, args=ocp.args.Composite(data=grain.checkpoint.CheckpointRestore(fresh)))
  _assert_batches_equal(next(fresh), expected)


def test_processes_split_the_single_process_stream(source):
  """Two processes with half the batch each see every other example of the 1-process stream."""
  single = _examples(_take(_iterator(source, batch=4), 3))
  for process in range(2):
    shard = _examples(_take(_iterator(source, batch=2, process_index=process, process_count=2), 3))
    assert len(shard) == 6
    for got, want in zip(shard, single[process::2]):
      _assert_batches_equal(got, want)
  # Process p holds global examples p, p + 2, ...: disjoint, and together the whole stream.
  with pytest.raises(ValueError):
    _iterator(source, process_index=2, process_count=2)


def test_forced_flip_mirrors_frames_mask_and_flow(source):
  plain = next(_iterator(source, force_flip=False))
  flipped = next(_iterator(source, force_flip=True))
  for key in ("source", "driving", "previous", "flow_confidence"):
    np.testing.assert_array_equal(flipped[key], plain[key][:, :, ::-1], err_msg=key)
  np.testing.assert_array_equal(flipped["flow"][..., 0], -plain["flow"][:, :, ::-1, 0])
  np.testing.assert_array_equal(flipped["flow"][..., 1], plain["flow"][:, :, ::-1, 1])


def test_random_flips_happen_and_can_be_disabled(source):
  data = _data_config(num_repeats=4)
  batches = _take(_iterator(source, data=data, batch=5), 4)
  forced = _take(_iterator(source, data=data, batch=5, force_flip=False), 4)
  flips = [not np.array_equal(a["source"][i], b["source"][i])
           for a, b in zip(batches, forced) for i in range(5)]
  assert 0 < sum(flips) < len(flips)
  data.horizontal_flip = False
  for a, b in zip(_take(_iterator(source, data=data, batch=5), 4), forced):
    _assert_batches_equal(a, b)


@pytest.mark.parametrize("flip", [False, True])
def test_flow_warps_the_driving_frame_onto_the_previous_grid(flip):
  """warp(D_t, grid + flow) ~ D_{t-1} where the mask is 1 (flow D_{t-1} -> D_t), flipped or not."""
  import jax.numpy as jnp  # pylint: disable=g-import-not-at-top
  from internet_jax import geometry  # pylint: disable=g-import-not-at-top
  moving = pipeline.make_moving_pattern_source(4, 12, 64, seed=1, speed=4.0)
  batch = next(_iterator(moving, force_flip=flip))
  grid = geometry.coordinate_grid(64, 64)
  driving = jnp.asarray(batch["driving"], jnp.float32)
  previous = batch["previous"].astype(np.float32)
  mask = batch["flow_confidence"]

  def masked_error(coords):
    warped = np.asarray(geometry.warp(driving, coords))
    return float((np.abs(warped - previous) * mask).sum() / (3 * mask.sum()))

  forward = masked_error(grid + batch["flow"])
  assert forward < 0.3 * masked_error(jnp.broadcast_to(grid, batch["flow"].shape))
  assert forward < 0.3 * masked_error(grid - batch["flow"])


def test_joint_colour_jitter_keeps_identical_frames_identical():
  """A static video: all three frames are equal before jitter, so they must stay equal after."""
  frame = pipeline.make_moving_pattern_videos(1, 1, 32, seed=3)[0][0]
  static = sources.InMemoryVideoSource([np.stack([frame] * 6)] * 2)
  jitter = dict(brightness=0.3, contrast=0.3, saturation=0.3, hue=0.2)
  data = _data_config(min_driving_offset=1)
  data.color_jitter.update(jitter)
  batch = next(_iterator(static, data=data, force_flip=False))
  np.testing.assert_array_equal(batch["driving"], batch["source"])
  np.testing.assert_array_equal(batch["previous"], batch["source"])
  assert not np.array_equal(batch["source"][0], frame)  # the jitter did something
  assert np.abs(batch["flow"]).max() < 1e-3 and batch["flow_confidence"].min() == 1.0


def test_color_jitter_ops():
  rng = np.random.default_rng(0)
  frame = rng.integers(0, 256, (8, 9, 3), dtype=np.uint8)
  assert pipeline.apply_color_jitter(frame, []) is frame
  identity = [("brightness", 1.0), ("contrast", 1.0), ("saturation", 1.0), ("hue", 0.0)]
  assert np.abs(pipeline.apply_color_jitter(frame, identity).astype(int) - frame).max() <= 1
  red = np.zeros((2, 2, 3), np.uint8)
  red[..., 0] = 255
  green = pipeline.apply_color_jitter(red, [("hue", 1 / 3)])
  np.testing.assert_array_equal(green[0, 0], [0, 255, 0])
  blue = pipeline.apply_color_jitter(red, [("hue", -1 / 3)])
  np.testing.assert_array_equal(blue[0, 0], [0, 0, 255])
  grey = pipeline.apply_color_jitter(frame, [("saturation", 0.0)])
  assert np.abs(grey.astype(int) - grey[..., :1]).max() <= 1
  params = pipeline.ExampleParams(hue=0.1)
  ops = pipeline.sample_color_jitter(np.random.default_rng(1), params)
  assert [name for name, _ in ops] == ["hue"] and abs(ops[0][1]) <= 0.1


def test_sample_driving_index_respects_offset_and_short_videos():
  rng = np.random.default_rng(0)
  draws = {pipeline.sample_driving_index(12, 4, rng) for _ in range(300)}
  assert draws == set(range(5, 12))
  # Too short for the offset: t in [1, num_frames - 1].
  draws = {pipeline.sample_driving_index(6, 60, rng) for _ in range(200)}
  assert draws == set(range(1, 6))
  assert pipeline.sample_driving_index(2, 60, rng) == 1
  with pytest.raises(ValueError):
    pipeline.sample_driving_index(1, 0, rng)


def test_epochs_cover_every_video_num_repeats_times(source):
  """With 5 videos x 2 repeats, each epoch of 10 examples holds every video twice."""
  data = _data_config(horizontal_flip=False)
  data.color_jitter.hue = 0.0
  firsts = {bytes(source.read_frame(v, 0)): v for v in range(len(source))}
  examples = _examples(_take(_iterator(source, data=data, batch=5), 4))
  for epoch in range(2):
    videos = [firsts[bytes(e["source"])] for e in examples[10 * epoch:10 * (epoch + 1)]]
    assert sorted(videos) == sorted(list(range(5)) * 2)


def test_steps_per_epoch():
  assert pipeline.steps_per_epoch(500, 50, 16) == 1562
  assert pipeline.steps_per_epoch(3, 1, 16) == 1
  with pytest.raises(ValueError):
    pipeline.steps_per_epoch(0, 1, 16)


def test_iterate_eval_videos(source):
  videos = list(pipeline.iterate_eval_videos(source))
  assert [v["name"] for v in videos] == [source.video_name(i) for i in range(len(source))]
  assert videos[0]["frames"].shape == (12, 32, 32, 3) and videos[0]["frames"].dtype == np.uint8
  np.testing.assert_array_equal(videos[2]["frames"][5], source.read_frame(2, 5))
  assert len(list(pipeline.iterate_eval_videos(source, max_videos=2))) == 2


def test_stage_times_are_recorded_in_process(source):
  pipeline.STAGE_TIMES.reset()
  _take(_iterator(source), 2)
  snapshot = pipeline.STAGE_TIMES.snapshot()
  assert snapshot["examples"] >= 8
  assert all(snapshot["seconds"][stage] > 0 for stage in pipeline.STAGES)
  assert abs(sum(snapshot["shares"].values()) - 1) < 1e-6


def test_benchmark_cli_with_two_workers(tmp_path):
  """The CLI end to end: grain workers under absl.app.run, JSON report and contact sheet."""
  output = tmp_path / "sheet.png"
  command = [sys.executable, "-m", "input_pipeline.benchmark", "--fake", "--num_batches=2",
             "--warmup_batches=1", "--worker_count=2", "--batch_size=3", "--fake_videos=3",
             "--fake_frames=6", f"--config={os.path.join(ROOT, 'configs', 'default.py')}",
             "--config.data.resolution=32", f"--output={output}"]
  result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=120,
                          check=False)
  assert result.returncode == 0, result.stderr[-3000:]
  report = json.loads((tmp_path / "sheet.json").read_text())
  assert report["resolution"] == [32, 32] and report["multi_worker_matches_in_process"]
  assert report["in_process"]["examples_per_s"] > 0 and report["multi_worker"]["examples_per_s"] > 0
  assert abs(sum(report["in_process"]["stage_shares"].values()) - 1) < 1e-6
  import cv2  # pylint: disable=g-import-not-at-top
  sheet = cv2.imread(str(output))
  assert sheet.shape[0] >= 3 * 32 and sheet.shape[1] >= 5 * 32  # 3 examples x 5 columns


def test_benchmark_writes_its_default_output_in_an_empty_directory(tiny_config, tmp_path):
  """A fresh clone has no ./workdirs/: the default output's folder is created."""
  command = [sys.executable, "-m", "input_pipeline.benchmark",
             f"--config={os.path.join(ROOT, 'configs', 'synthetic.py')}:tiny",
             f"--config.data.manual_dir={tiny_config.data.manual_dir}",
             f"--config.data.data_dir={tiny_config.data.data_dir}",
             "--num_batches=1", "--warmup_batches=1", "--worker_count=0"]
  result = subprocess.run(command, cwd=tmp_path, env=dict(os.environ, PYTHONPATH=ROOT),
                          capture_output=True, text=True, timeout=300, check=False)
  assert result.returncode == 0, result.stderr[-3000:]
  folder = tmp_path / "workdirs" / "pipeline_benchmark"
  assert sorted(p.name for p in tmp_path.rglob("*")) == [
      "contact_sheet.json", "contact_sheet.png", "pipeline_benchmark", "workdirs"]
  report = json.loads((folder / "contact_sheet.json").read_text())
  assert report["source"] == "synthetic" and report["batch_size"] == 4
  import cv2  # pylint: disable=g-import-not-at-top
  # 4 examples x 5 columns of 32 px frames, 2 px between and around them.
  assert cv2.imread(str(folder / "contact_sheet.png")).shape == (4 * 32 + 5 * 2, 5 * 32 + 6 * 2, 3)


_WORKER_RESUME_SCRIPT = """
import numpy as np
from absl import app

def main(_):
  from configs import default
  from input_pipeline import pipeline
  data = default.get_config().data
  data.min_driving_offset, data.num_repeats = 4, 2
  source = pipeline.make_moving_pattern_source(5, 12, 32)
  make = lambda workers: pipeline.create_train_iterator(
      data, source, batch_size_per_process=4, seed=0, worker_count=workers)
  iterator = make(2)
  first = [next(iterator) for _ in range(3)]
  state = iterator.get_state()
  expected = [next(iterator) for _ in range(2)]
  resumed = make(2)
  resumed.set_state(state)
  same = lambda xs, ys: all(np.array_equal(x[k], y[k]) for x, y in zip(xs, ys) for k in x)
  in_process = make(0)
  print("RESUMED", same([next(resumed) for _ in range(2)], expected))
  print("IN_PROCESS", same([next(in_process) for _ in range(5)], first + expected))

if __name__ == "__main__":
  app.run(main)
"""


def test_worker_processes_resume_and_match_the_in_process_stream():
  """With 2 grain workers (under absl.app.run): state restore is exact, and the stream equals the
  worker_count=0 one."""
  result = subprocess.run([sys.executable, "-c", _WORKER_RESUME_SCRIPT], cwd=ROOT,
                          capture_output=True, text=True, timeout=120, check=False)
  assert result.returncode == 0, result.stderr[-3000:]
  assert "RESUMED True" in result.stdout and "IN_PROCESS True" in result.stdout, result.stdout
