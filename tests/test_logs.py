"""TensorBoard event files written without TensorFlow read back with TensorBoard's own reader,
and the console progress line's rate, ETA and metrics."""
import numpy as np
import pytest

from internet_jax import logs, notebook


def test_event_writer_round_trip_through_tensorboards_reader(tmp_path):
  image = np.zeros((4, 6, 3), np.uint8)
  image[1, 2] = (255, 0, 0)
  with logs.EventWriter(str(tmp_path)) as writer:
    writer.write_hparams({"optimizer": {"g_lr": 2e-4, "name": "adam"}, "batch_size": 4})
    for step, value in ((10, 0.5), (20, 0.25)):
      writer.write_scalars(step, {"train/g/total": value, "eval/l1": 2 * value})
    writer.write_images(20, {"train/summary": image})
  scalars = notebook.read_scalars(str(tmp_path))
  np.testing.assert_array_equal(scalars["train/g/total"][0], [10, 20])
  np.testing.assert_allclose(scalars["train/g/total"][1], [0.5, 0.25])
  np.testing.assert_allclose(scalars["eval/l1"][1], [1.0, 0.5])
  ((step, decoded),) = notebook.read_images(str(tmp_path), "train/summary")
  assert step == 20
  np.testing.assert_array_equal(decoded, image)  # PNG: lossless


def test_disabled_writer_writes_nothing(tmp_path):
  with logs.EventWriter(str(tmp_path), enabled=False) as writer:
    writer.write_scalars(1, {"a": 1.0})
    writer.write_hparams({"a": 1})
  assert not list(tmp_path.iterdir())


def test_event_writer_rejects_non_uint8_images(tmp_path):
  with logs.EventWriter(str(tmp_path)) as writer:
    with pytest.raises(ValueError, match="train/x: expected uint8"):
      writer.write_images(1, {"train/x": np.zeros((4, 4, 3), np.float32)})


def test_hparams_flatten_nested_configs():
  flat = logs._flat_hparams({"a": {"b": 1, "c": {"d": "x"}}, "e": (1, 2), "f": True})
  assert flat == {"a.b": 1, "a.c.d": "x", "e": "(1, 2)", "f": True}


def test_progress_line_rate_eta_and_metrics(monkeypatch):
  clock = iter([100.0, 110.0, 130.0])
  monkeypatch.setattr(logs.time, "perf_counter", lambda: next(clock))
  progress = logs.ProgressLine(1000, initial_step=0, metric_names=("g/total", "missing"))
  # 100 steps in 10 s: 10 steps/s, 900 steps left -> 90 s.
  assert progress.line(100, {"g/total": 0.41234, "d/total": 1.0}) == (
      "step 100/1000 (10%) | 10 steps/s | ETA 0:01:30 | g/total 0.4123")
  assert progress.rate == pytest.approx(10.0)
  # The rate is over the steps since the previous line: 900 steps in 20 s, and no ETA at the end.
  assert progress.line(1000, {"g/total": 1.5e-5}) == (
      "step 1000/1000 (100%) | 45 steps/s | g/total 1.50e-05")
  assert progress.rate == pytest.approx(45.0)


def test_step_profiler_traces_the_chosen_steps(tmp_path):
  import jax  # pylint: disable=g-import-not-at-top
  import jax.numpy as jnp  # pylint: disable=g-import-not-at-top
  step_fn = jax.jit(lambda x: jnp.sin(x) * 2)
  x = jnp.ones((8,))
  profiler = logs.StepProfiler(str(tmp_path), first_step=10, num_steps=2)
  traced = []
  for step in range(11, 17):
    profiler.before_step(step)
    traced.append(profiler._tracing)
    x = step_fn(x)
    profiler.after_step(step, x)
  profiler.close()
  # Steps 11, 12 are warm-up; 13 and 14 are traced.
  assert traced == [False, False, True, True, False, False]
  assert list(tmp_path.rglob("*.xplane.pb")), "no trace written"

  off = logs.StepProfiler(str(tmp_path / "off"), first_step=0, num_steps=0)
  for step in range(1, 6):
    off.before_step(step)
    off.after_step(step, x)
  off.close()
  assert not (tmp_path / "off").exists()
