"""Reliability: preemption and kill -9 resume bit-exactly, damaged checkpoints are set
aside, non-finite steps are skipped, nothing is unpickled, and a catalogue of bad inputs to every
entry point ends in one line, a non-zero exit and no partial output.

Everything runs on the tiny synthetic config and one dataset prepared for the module. The
catalogue runs its subprocesses concurrently in a module fixture; a new row is one `Case(...)`.
The file-system catalogue (FILE_CASES: the OS's refusals, outputs that are inputs, images as
people have them, evaluate's inputs and sizes) needs no trained model and runs case by case.
"""

from __future__ import annotations

import concurrent.futures
import copy
import dataclasses
import errno
import glob
import hashlib
import os
import pickle
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable

import grain
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import orbax.checkpoint as ocp
from PIL import Image
import pytest

from input_pipeline import datasets, pipeline, video_io
from internet_jax import animate, checkpointing, errors, evaluate, monitor, sharding, train
from internet_jax import temporaries, workdir_lock
from internet_jax.models import vgg
from video_fixtures import save_cmyk_jpeg, save_with_orientation, smooth_frames, write_pngs

REPO = Path(__file__).resolve().parents[1]
ENV = dict(os.environ, PYTHONPATH=str(REPO), TF_CPP_MIN_LOG_LEVEL="2",
           # Subprocesses share the persistent compilation cache set up in conftest.py.
           JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0.5")
STEPS = 8  # training steps of the resume runs


def _data_flags(config) -> list[str]:
  """Flags pointing main at the module's prepared dataset."""
  return [f"--config.data.manual_dir={config.data.manual_dir}",
          f"--config.data.data_dir={config.data.data_dir}"]


def _final_state(workdir: Path, step: int) -> dict[str, np.ndarray]:
  """{leaf path: array} of the state saved at `step`, read by Orbax without a target."""
  with ocp.StandardCheckpointer() as checkpointer:
    state = checkpointer.restore(workdir / "checkpoints" / str(step) / "state")
  leaves = jax.tree_util.tree_flatten_with_path(jax.device_get(state))[0]
  return {".".join(str(getattr(k, "key", getattr(k, "idx", k))) for k in path): np.asarray(leaf)
          for path, leaf in leaves}


@pytest.fixture(scope="module")
def reference(tiny_config, tmp_path_factory):
  """An uninterrupted STEPS-step run, with evaluation at start and end and summary images on."""
  workdir = tmp_path_factory.mktemp("reference") / "run"
  config = copy.deepcopy(tiny_config)
  config.num_train_steps = STEPS
  config.checkpoint_every_steps = STEPS
  config.sample_animation = False
  train.train_and_evaluate(config, str(workdir))
  return workdir


# ---------------------------------------------------------------------------------------------
# 1. Preemption and kill -9


def _launch(workdir: Path, config, log: Path) -> subprocess.Popen:
  """Starts `python -m internet_jax.main` on the tiny config, output into `log`."""
  # Evaluation, summaries and the sample video off: the reference has them on, so equal final
  # states also show that they do not touch the training.
  command = [sys.executable, "-m", "internet_jax.main", "--config=configs/synthetic.py:tiny",
             f"--workdir={workdir}", f"--config.num_train_steps={STEPS}",
             "--config.checkpoint_every_steps=1", "--config.num_eval_videos=0",
             "--config.image_every_steps=0", "--config.sample_animation=False",
             *_data_flags(config)]
  with open(log, "w") as out:
    return subprocess.Popen(command, cwd=REPO, env=ENV, stdout=out, stderr=subprocess.STDOUT)


def _wait_for_step(process: subprocess.Popen, workdir: Path, step: int, timeout: float = 420):
  """Polls until checkpoints/<step> (committed: Orbax renames it into place) exists."""
  path = workdir / "checkpoints" / str(step)
  deadline = time.monotonic() + timeout
  while time.monotonic() < deadline:
    if path.is_dir():
      return
    if process.poll() is not None:
      break
    time.sleep(0.02)
  process.kill()
  pytest.fail(f"{path} did not appear (exit status {process.poll()})")


def _newest_step(workdir: Path) -> int:
  """The newest committed step directory (0 if none)."""
  directory = workdir / "checkpoints"
  if not directory.is_dir():
    return 0
  return max((int(p.name) for p in directory.iterdir() if p.name.isdigit()), default=0)


def _tail(log: Path) -> str:
  """The last lines of a log, for assertion messages."""
  return "\n".join(log.read_text().splitlines()[-15:])


def test_kill_9_twice_and_sigterm_then_resume_is_bitwise_identical(tiny_config, reference,
                                                                   tmp_path):
  rng = random.Random(6)
  first, second = sorted(rng.sample(range(1, 5), 2))  # kill after these checkpoints appear
  delays = [rng.uniform(0.0, 0.3) for _ in range(2)]  # and a random moment after (mid-save)
  workdir = tmp_path / "run"
  for index, (step, delay) in enumerate(zip((first, second), delays)):
    log = tmp_path / f"kill{index}.log"
    process = _launch(workdir, tiny_config, log)
    # At least one step past where this run resumes, so that every run is killed mid-training.
    _wait_for_step(process, workdir, max(step, _newest_step(workdir) + 1))
    time.sleep(delay)
    process.send_signal(signal.SIGKILL)
    assert process.wait(timeout=60) == -signal.SIGKILL, _tail(log)  # killed, not finished

  # SIGTERM: a checkpoint at the current step, one line, status 128 + 15, no traceback.
  resumed_at = _newest_step(workdir)
  assert resumed_at < STEPS - 1
  log = tmp_path / "sigterm.log"
  process = _launch(workdir, tiny_config, log)
  _wait_for_step(process, workdir, resumed_at + 1)
  process.send_signal(signal.SIGTERM)
  assert process.wait(timeout=300) == 128 + signal.SIGTERM, _tail(log)
  output = log.read_text()
  assert "Traceback" not in output
  assert f"Resumed from {workdir / 'checkpoints'} at step {resumed_at}" in output
  last = output.strip().splitlines()[-1]
  match = re.fullmatch(r"interrupted: SIGTERM at step (\d+): saved the checkpoint (\S+); run the "
                       r"same command again to resume", last)
  assert match, last
  stopped_at = int(match.group(1))
  assert Path(match.group(2)) == workdir / "checkpoints" / str(stopped_at)
  assert (workdir / "checkpoints" / str(stopped_at) / "state").is_dir()
  assert not checkpointing.incomplete_checkpoints(str(workdir / "checkpoints"))

  log = tmp_path / "final.log"
  process = _launch(workdir, tiny_config, log)
  assert process.wait(timeout=420) == 0, _tail(log)
  assert f"at step {stopped_at}" in log.read_text()

  expected, resumed = _final_state(reference, STEPS), _final_state(workdir, STEPS)
  assert expected.keys() == resumed.keys()
  for name in expected:
    assert expected[name].dtype == resumed[name].dtype, name
    assert expected[name].tobytes() == resumed[name].tobytes(), (name, first, second, delays)
  assert int(resumed["step"]) == STEPS and int(resumed["skipped_steps"]) == 0


def test_stop_signals_set_a_flag_and_restore_the_handlers():
  # Python's own SIGINT handler as the previous one (a pytest-xdist worker ignores SIGINT).
  previous = signal.signal(signal.SIGINT, signal.default_int_handler)
  try:
    _check_stop_signals()
  finally:
    signal.signal(signal.SIGINT, previous)


def _check_stop_signals():
  before = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
  with monitor.StopSignals() as stop:
    assert not stop.requested(1)
    os.kill(os.getpid(), signal.SIGINT)  # handled at once, in this (the main) thread
    assert stop.requested(2) and stop.signum == signal.SIGINT
    # A second SIGINT means "now": the previous handler raises KeyboardInterrupt.
    with pytest.raises(KeyboardInterrupt):
      os.kill(os.getpid(), signal.SIGINT)
  assert {s: signal.getsignal(s) for s in before} == before


# ---------------------------------------------------------------------------------------------
# 2. Incomplete and damaged checkpoints


def _small_run(workdir: Path, steps=(1, 2, 3)):
  """Checkpoints of a small state and a grain iterator advanced by `step` elements."""
  config = ml_collections.ConfigDict({"model": {"width": 4}})
  iterator = iter(grain.MapDataset.range(100).to_iter_dataset())
  manager = checkpointing.create_manager(str(workdir))
  for step in range(1, max(steps) + 1):
    next(iterator)
    if step in steps:
      state = {"w": jnp.full((4,), float(step)), "step": jnp.int32(step)}
      checkpointing.save(manager, step, state, iterator, config)
  manager.wait_until_finished()
  manager.close()
  return config


def _restore_small(workdir: Path, width: int = 4):
  """restore_latest of a `_small_run` into a fresh target and iterator."""
  abstract = {"w": jax.ShapeDtypeStruct((width,), jnp.float32),
              "step": jax.ShapeDtypeStruct((), jnp.int32)}
  iterator = iter(grain.MapDataset.range(100).to_iter_dataset())
  manager = checkpointing.create_manager(str(workdir))
  config = ml_collections.ConfigDict({"model": {"width": width}})
  try:
    state, step = checkpointing.restore_latest(manager, str(workdir), abstract, iterator, config)
  finally:
    manager.close()
  return state, step, iterator


def _damage(workdir: Path, how: str):
  """Damages step 3 of a `_small_run` the way a crash or a bad disk would."""
  step_dir = workdir / "checkpoints" / "3"
  if how == "state_missing":
    shutil.rmtree(step_dir / "state")
  elif how == "state_corrupt":
    for path in (step_dir / "state").rglob("*"):
      if path.is_file():
        path.write_bytes(b"\0garbage")
  elif how == "state_truncated":
    for path in (step_dir / "state").rglob("*"):
      if path.is_file() and path.stat().st_size > 8:
        with open(path, "r+b") as f:
          f.truncate(path.stat().st_size // 2)
  elif how == "data_missing":
    for path in (step_dir / "data").glob("*.json"):
      path.unlink()
  elif how == "uncommitted_tmp":
    # A save killed before its rename: the step exists only as a temporary directory.
    shutil.move(step_dir, workdir / "checkpoints" / "3.orbax-checkpoint-tmp-1234")
  else:
    raise ValueError(how)


@pytest.mark.parametrize("how", ["state_missing", "state_corrupt", "state_truncated",
                                 "data_missing", "uncommitted_tmp"])
def test_damaged_or_incomplete_newest_checkpoint_falls_back_to_the_previous(tmp_path, how, caplog):
  workdir = tmp_path / "w"
  _small_run(workdir)
  _damage(workdir, how)
  state, step, iterator = _restore_small(workdir)
  assert step == 2
  np.testing.assert_array_equal(state["w"], np.full((4,), 2.0))
  assert next(iterator) == 2  # the iterator is where step 2 left it, not step 3 or half-way
  assert not checkpointing.incomplete_checkpoints(str(workdir / "checkpoints"))
  if how == "uncommitted_tmp":
    assert "Removing the incomplete checkpoint" in caplog.text
  else:
    assert "cannot be restored" in caplog.text
    (aside,) = (workdir / "damaged_checkpoints").iterdir()  # set aside, never deleted
    assert aside.name.startswith("3-")
  assert sorted(p.name for p in (workdir / "checkpoints").iterdir()) == ["1", "2"]
  _small_run(workdir, steps=(3,))  # the step can be written again
  assert _restore_small(workdir)[1] == 3


def test_every_checkpoint_damaged_is_a_one_line_error(tmp_path):
  workdir = tmp_path / "w"
  _small_run(workdir, steps=(1, 2))
  for step in ("1", "2"):
    shutil.rmtree(workdir / "checkpoints" / step / "state")
  with pytest.raises(ValueError, match=r"none of the checkpoints \(steps 2, 1\)") as info:
    _restore_small(workdir)
  assert "\n" not in str(info.value)


def test_checkpoint_of_another_model_width_is_named(tmp_path):
  workdir = tmp_path / "w"
  _small_run(workdir)
  with pytest.raises(checkpointing.IncompatibleCheckpointError) as info:
    _restore_small(workdir, width=8)
  message = str(info.value)
  assert message.startswith(str(workdir / "checkpoints" / "3") + ": ")
  assert "config.model.width: checkpoint 4, this config 8" in message and "\n" not in message
  assert (workdir / "checkpoints" / "3").is_dir()  # not mistaken for damage


def test_non_finite_state_is_never_saved(tmp_path):
  manager = checkpointing.create_manager(str(tmp_path / "w"))
  state = {"w": jnp.array([1.0, jnp.nan])}
  with pytest.raises(FloatingPointError, match="non-finite"):
    checkpointing.save(manager, 1, state, None, ml_collections.ConfigDict())
  manager.wait_until_finished()
  manager.close()
  assert list((tmp_path / "w" / "checkpoints").iterdir()) == []


@pytest.mark.parametrize("bad_leaf", [None, 0, 2, 3])
def test_finite_check_sees_every_leaf_across_runs(monkeypatch, bad_leaf):
  # Runs of at most 5 elements here: leaves of 4, 2, 7 and 3 elements fall into three runs (the
  # 7 alone), and an integer leaf is skipped. Shapes unique to this test, so the jit retraces.
  monkeypatch.setattr(checkpointing, "_FINITE_RUN_ELEMENTS", 5)
  leaves = [np.ones((2, 2), np.float32), np.ones(2, np.float32), np.ones(7, np.float32),
            np.ones((1, 3), jnp.bfloat16)]
  if bad_leaf is not None:
    leaves[bad_leaf].reshape(-1)[-1] = np.inf if bad_leaf % 2 else np.nan
  tree = {"leaves": leaves, "count": np.array([5, 6, 7], np.int32)}
  assert bool(checkpointing._all_finite(tree)) == (bad_leaf is None)


# ---------------------------------------------------------------------------------------------
# 3. The non-finite guard


@pytest.fixture(scope="module")
def step_setup(tiny_config):
  """The jitted train step of the tiny config, a fresh state and one real batch."""
  config = tiny_config
  mesh = sharding.create_mesh()
  training = train.create_training(config, mesh, 10)
  source = datasets.get_video_source(config.data, "train")
  batch = next(pipeline.create_train_iterator(config.data, source,
                                              batch_size_per_process=config.batch_size, seed=0,
                                              worker_count=0))
  return dict(init=training.init, step=training.step, batch=batch, mesh=mesh,
              vgg_params=training.constants)


def _host(tree):
  """numpy copies of a device pytree."""
  return jax.tree.map(np.asarray, jax.device_get(tree))


def _counters(metrics) -> tuple[int, int, int]:
  """(nonfinite, skipped_steps, consecutive_skipped_steps) of a step's metrics."""
  return tuple(int(metrics[k]) for k in ("nonfinite", "skipped_steps", "consecutive_skipped_steps"))


def test_non_finite_step_is_skipped_inside_the_jitted_step(step_setup, tiny_config):
  s = step_setup
  run = lambda state, batch: s["step"](state, sharding.put_batch(batch, s["mesh"]),
                                       s["vgg_params"])
  nan_flow = dict(s["batch"], flow=np.full_like(s["batch"]["flow"], np.nan))

  state = s["init"]()
  before = _host(state)  # the step donates its input state
  state, metrics = run(state, nan_flow)
  metrics = _host(metrics)
  after = _host(state)
  assert np.isnan(metrics["g/temporal"]) and np.isfinite(metrics["g/reconstruction_l1"])
  assert _counters(metrics) == (1, 1, 1)
  assert int(after.step) == 1 and int(after.skipped_steps) == 1
  for name in ("params", "opt_state", "ema_params"):
    jax.tree.map(lambda a, b: np.testing.assert_array_equal(a, b, err_msg=name),
                 getattr(after, name), getattr(before, name))
  with pytest.raises(FloatingPointError, match="g/temporal"):
    monitor.NonFiniteMonitor(max_consecutive=1).check(1, metrics)

  state, metrics = run(state, s["batch"])  # a finite batch updates again and resets the run
  metrics, updated = _host(metrics), _host(state)
  assert _counters(metrics) == (0, 1, 0)
  assert np.isfinite(metrics["g/total"])
  changed = jax.tree.leaves(jax.tree.map(lambda a, b: not np.array_equal(a, b),
                                         updated.params, after.params))
  assert any(changed)
  # Two loop steps, one skipped: optax has counted one update (the skipped step kept the
  # optimiser state), so the schedule, and the logged learning rate, stand at one update.
  counts = [int(leaf) for path, leaf in jax.tree_util.tree_flatten_with_path(updated.opt_state)[0]
            if "count" in jax.tree_util.keystr(path)]
  assert counts and set(counts) == {1}
  rate = train.learning_rates(state)
  assert rate["learning_rate/g"] == pytest.approx(tiny_config.optimizer.g_lr)


def test_consecutive_non_finite_steps_stop_the_loop_naming_the_term(tiny_config, tmp_path,
                                                                    monkeypatch, caplog):
  real_put_batch = sharding.put_batch

  def nan_flow(batch, mesh):  # every batch the loop feeds has a NaN optical flow
    return real_put_batch(dict(batch, flow=np.full_like(batch["flow"], np.nan)), mesh)

  monkeypatch.setattr(sharding, "put_batch", nan_flow)
  config = copy.deepcopy(tiny_config)
  config.num_train_steps, config.checkpoint_every_steps = 6, 1
  config.max_consecutive_nonfinite = 3
  config.log_every_steps = 100  # the guard is then read one step late, as in long runs
  config.num_eval_videos, config.sample_animation, config.image_every_steps = 0, False, 0
  workdir = tmp_path / "nan"
  with pytest.raises(FloatingPointError) as info:
    train.train_and_evaluate(config, str(workdir))
  message = str(info.value)
  assert message.startswith("step 3: 3 consecutive steps with non-finite values "
                            "(config.max_consecutive_nonfinite=3), non-finite: g/temporal"), message
  assert "step 1: non-finite g/temporal" in caplog.text
  # Checkpoints hold the initial parameters, finite; the skip counters say what happened.
  saved = sorted(int(p.name) for p in (workdir / "checkpoints").iterdir())
  assert saved and max(saved) <= 4
  state = _final_state(workdir, max(saved))
  assert all(np.all(np.isfinite(v)) for v in state.values() if v.dtype.kind == "f")
  assert int(state["skipped_steps"]) == max(saved) == int(state["consecutive_skipped_steps"])


# ---------------------------------------------------------------------------------------------
# 6. Nothing through pickle


class _Marker:
  """Unpickling this creates the file `path` (a stand-in for arbitrary code execution)."""

  def __init__(self, path):
    self.path = str(path)

  def __reduce__(self):
    return (open, (self.path, "w"))


def test_malicious_pth_and_object_npz_are_refused_before_unpickling(tmp_path):
  marker = tmp_path / "pwned"
  pth = tmp_path / "vgg19.pth"
  pth.write_bytes(pickle.dumps(_Marker(marker)))  # written here, never loaded
  # Without torch the loader refuses the file outright; with torch, weights_only=True refuses it.
  with pytest.raises((ImportError, ValueError)) as info:
    vgg.load_vgg19_params(pth)
  assert str(pth) in str(info.value)
  npz = tmp_path / "vgg19.npz"
  np.savez(npz, **{"features.0.weight": np.array([_Marker(marker)], dtype=object)})
  with pytest.raises(ValueError, match="cannot read"):
    vgg.load_vgg19_params(npz)
  assert not marker.exists()


def _call_arguments(text: str, start: int) -> str:
  """The text between the parenthesis at `start` and its match."""
  depth = 0
  for index in range(start, len(text)):
    depth += {"(": 1, ")": -1}.get(text[index], 0)
    if depth == 0:
      return text[start + 1:index]
  return text[start + 1:]


def test_no_module_unpickles_files():
  patterns = [re.compile(p) for p in (r"\bpickle\.loads?\(", r"\bcloudpickle\b", r"\bdill\b",
                                      r"allow_pickle\s*=\s*True", r"\bjoblib\.load\(",
                                      r"\bshelve\b", r"\bmarshal\.loads?\(")]
  offenders = []
  for folder in ("internet_jax", "input_pipeline", "configs"):
    for path in (REPO / folder).rglob("*.py"):
      text = path.read_text()
      offenders += [f"{path}: {p.pattern}" for p in patterns if p.search(text)]
      for match in re.finditer(r"torch\.load\(", text):  # only ever with weights_only=True
        arguments = _call_arguments(text, match.end() - 1)
        if not re.search(r"weights_only\s*=\s*True", arguments):
          offenders.append(f"{path}: torch.load({arguments})")
  assert not offenders


# ---------------------------------------------------------------------------------------------
# 4 + 5. The catalogue of bad inputs to the entry points


@dataclasses.dataclass(frozen=True)
class Case:
  """One bad (or odd) input: `args` and the strings may use {tmp}, {data}, {tfds}, {workdir}.

  setup(tmp, env) prepares files; a failing case must exit non-zero with its last stderr line
  starting `prefix` and containing every `expect` string, no traceback, none of the `absent`
  paths (glob patterns) left behind (a directory holding only empty directories counts as
  absent) and the `unchanged` files as they were. `succeeds` cases must exit 0 with every
  `expect` string in stdout. `file_size_limit`: the process may write no file larger (bytes),
  as on a full disk.
  """
  id: str
  module: str
  args: tuple[str, ...]
  expect: tuple[str, ...] = ()
  setup: Callable[[Path, dict], None] | None = None
  absent: tuple[str, ...] = ()
  succeeds: bool = False
  prefix: str = "error: "
  env: tuple[tuple[str, str], ...] = ()
  unchanged: tuple[str, ...] = ()
  file_size_limit: int = 0


MAIN, PREP, BENCH = "internet_jax.main", "input_pipeline.prepare", "input_pipeline.benchmark"
TINY = "--config=configs/synthetic.py:tiny"
DATA = ("--config.data.manual_dir={data}", "--config.data.data_dir={tfds}")
PREPARE = ("--name=folder", "--manual_dir={tmp}/videos", "--data_dir={tmp}/tfds",
           "--resolution=32", "--min_driving_offset=0")
SUMMARY_3 = ("resolution 32", "train: 1 videos, 3 frames, 0 skipped")  # prepare's summary


def _write(relative: str, data: bytes = b"") -> Callable[[Path, dict], None]:
  """A setup writing one file under {tmp}."""
  def setup(tmp: Path, env: dict) -> None:
    path = tmp / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
  return setup


def _videos(*videos: Callable[[Path], None]) -> Callable[[Path, dict], None]:
  """train/ and test/ under {tmp}/videos: the given train videos and one good test video."""
  def setup(tmp: Path, env: dict) -> None:
    write_pngs(tmp / "videos" / "test" / "t", smooth_frames(4, 24, 24, 9))
    (tmp / "videos" / "train").mkdir(parents=True, exist_ok=True)
    for make in videos:
      make(tmp / "videos" / "train")
  return setup


def _pngs(name: str, frames: Callable[[], list]) -> Callable[[Path], None]:
  """A PNG-frame video `name` of the given frames."""
  return lambda folder: write_pngs(folder / name, frames())


def _truncated_mp4(folder: Path) -> None:
  """A real h264 mp4 cut to its first third (as by an interrupted copy)."""
  path = video_io.write_video(folder / "cut.mp4", smooth_frames(12, 32, 32, 1))
  data = path.read_bytes()
  path.write_bytes(data[:len(data) // 3])


def _huge(count: int = 2) -> list:
  # 8000 x 8000: PNG of a flat image is small on disk, 192 MB decoded.
  return [np.full((8000, 8000, 3), 40 * (t + 1), np.uint8) for t in range(count)]


def _other_width_checkpoint(tmp: Path, env: dict) -> None:
  """{tmp}/w: a copy of the reference workdir (tiny config, generator width 8)."""
  shutil.copytree(env["reference"], tmp / "w")


def _evil_pth(tmp: Path, env: dict) -> None:
  """{tmp}/vgg19.pth: a pickle that would create {tmp}/pwned when unpickled."""
  (tmp / "vgg19.pth").write_bytes(pickle.dumps(_Marker(tmp / "pwned")))


def _live_lock(tmp: Path, env: dict) -> None:
  """{tmp}/w/run.lock held by the test process itself (alive while the case runs)."""
  (tmp / "w").mkdir()
  (tmp / "w" / "run.lock").write_text(f"{os.getpid()} {socket.gethostname()}\n")


W = "--workdir={tmp}/w"
NO_W = ("{tmp}/w",)  # a run that fails on its input creates no workdir

CASES = [
    # main: config files, fields and values (checked before anything is prepared or compiled)
    Case("main_missing_config_file", MAIN, ("--config=configs/nope.py", W),
         ("--config=configs/nope.py", "No such file"), absent=NO_W),
    Case("main_bad_config_argument", MAIN, ("--config=configs/synthetic.py:huge", W),
         ("--config", "unknown argument 'huge'"), absent=NO_W),
    Case("main_unknown_config_field", MAIN, (TINY, W, "--config.unknown_field=1"),
         ("--config.unknown_field", "no field 'unknown_field'"), absent=NO_W),
    Case("main_misspelt_config_field", MAIN, (TINY, W, "--config.batchsize=4"),
         ("--config.batchsize", "did you mean 'batch_size'"), absent=NO_W),
    Case("main_unknown_flag", MAIN, (TINY, W, "--epochs=3"),
         ("Unknown command line flag 'epochs'",), absent=NO_W),
    Case("main_stray_argument", MAIN, (TINY, W, "train"), ("unexpected arguments: train",),
         absent=NO_W),
    Case("main_config_value_of_wrong_type", MAIN, (TINY, W, "--config.batch_size=abc"),
         ("--config.batch_size=abc",), absent=NO_W),
    Case("main_unknown_temporal_scheme", MAIN,
         (TINY, W, "--config.temporal.scheme=sometimes", *DATA),
         ("config.temporal.scheme", "sometimes"), absent=NO_W),
    Case("main_unknown_dataset_name", MAIN, (TINY, W, "--config.data.name=kinetics"),
         ("config.data.name", "kinetics"), absent=NO_W),
    Case("main_negative_loss_weight", MAIN, (TINY, W, "--config.loss.perceptual=-1"),
         ("config.loss.perceptual", ">= 0"), absent=NO_W),
    Case("main_resolution_not_divisible", MAIN, (TINY, W, "--config.data.resolution=40"),
         ("config.data.resolution", "40"), absent=NO_W),
    Case("main_batch_not_divisible_by_devices", MAIN, (TINY, W, "--config.batch_size=3"),
         ("config.batch_size=3", "device count (2)"), absent=NO_W,
         env=(("XLA_FLAGS", os.environ.get("XLA_FLAGS", "")
               + " --xla_force_host_platform_device_count=2"),)),
    Case("main_missing_vgg_weights", MAIN,
         (TINY + ",paper_losses", W, "--config.loss.allow_random_vgg=False"),
         ("config.loss.vgg_weights", "not found"), absent=NO_W),
    Case("main_pickled_pth_weights_not_read", MAIN,
         (TINY + ",paper_losses", W, "--config.loss.vgg_weights={tmp}/vgg19.pth", *DATA),
         ("config.loss.vgg_weights", "{tmp}/vgg19.pth"), setup=_evil_pth,
         absent=(*NO_W, "{tmp}/pwned")),
    # main: data, workdir and checkpoints
    Case("main_missing_dataset", MAIN,
         (TINY, W, "--config.data.name=folder", "--config.data.manual_dir={tmp}/nowhere",
          "--config.data.data_dir={tmp}/tfds"),
         ("{tmp}/nowhere", "does not exist"), absent=(*NO_W, "{tmp}/tfds")),
    Case("main_synthetic_data_folder_under_a_file", MAIN,
         (TINY, W, "--config.data.manual_dir={tmp}/file/data", "--config.data.data_dir={tmp}/tfds"),
         ("config.data.manual_dir: cannot create {tmp}/file/data/", "{tmp}/file is not a "
          "directory"), setup=_write("file", b"not a directory"), absent=(*NO_W, "{tmp}/tfds")),
    Case("main_unwritable_workdir", MAIN, (TINY, "--workdir={tmp}/file/w", *DATA),
         ("--workdir", "{tmp}/file/w"), setup=_write("file", b"not a directory")),
    Case("main_workdir_held_by_a_live_run", MAIN, (TINY, W, *DATA),
         ("--workdir: {tmp}/w is in use by another run", "{tmp}/w/run.lock"),
         setup=_live_lock, absent=("{tmp}/w/checkpoints",)),
    Case("main_checkpoint_of_another_model_width", MAIN,
         (TINY, W, "--config.model.generator.block_expansion=4", *DATA),
         ("{tmp}/w/checkpoints/", "does not fit this config",
          "config.model.generator.block_expansion: checkpoint 8, this config 4"),
         setup=_other_width_checkpoint),
    # prepare (the dataset builder): unreadable and odd videos
    Case("prepare_missing_manual_dir", PREP, PREPARE, ("{tmp}/videos", "does not exist"),
         absent=("{tmp}/tfds",), prefix="prepare: "),
    Case("prepare_empty_mp4", PREP, PREPARE, ("{tmp}/videos/train/empty.mp4",),
         setup=_videos(lambda d: (d / "empty.mp4").write_bytes(b"")), absent=("{tmp}/tfds",),
         prefix="prepare: "),
    Case("prepare_text_file_named_mp4", PREP, PREPARE,
         ("{tmp}/videos/train/notes.mp4", "not a readable video"),
         setup=_videos(lambda d: (d / "notes.mp4").write_text("these are my notes\n")),
         absent=("{tmp}/tfds",), prefix="prepare: "),
    Case("prepare_truncated_mp4", PREP, PREPARE, ("{tmp}/videos/train/cut.mp4",),
         setup=_videos(_truncated_mp4), absent=("{tmp}/tfds",), prefix="prepare: "),
    Case("prepare_one_frame_video", PREP, PREPARE,
         ("{tmp}/videos/train", "fewer than min_frames=2"),
         setup=_videos(_pngs("single", lambda: smooth_frames(1, 24, 24))),
         absent=("{tmp}/tfds",), prefix="prepare: "),
    Case("prepare_grayscale_png_frames", PREP, PREPARE, SUMMARY_3, succeeds=True,
         setup=_videos(_pngs("gray", lambda: [f[..., 0] for f in smooth_frames(3, 24, 24)]))),
    Case("prepare_rgba_png_frames", PREP, PREPARE, SUMMARY_3, succeeds=True,
         setup=_videos(_pngs("rgba", lambda: [np.dstack([f, np.full(f.shape[:2], 128, np.uint8)])
                                              for f in smooth_frames(3, 24, 24)]))),
    Case("prepare_16_bit_png_frames", PREP, PREPARE, SUMMARY_3, succeeds=True,
         setup=_videos(_pngs("deep", lambda: [f.astype(np.uint16) * 257
                                              for f in smooth_frames(3, 24, 24)]))),
    Case("prepare_huge_8000px_png_frames_are_resized", PREP, PREPARE,
         ("resolution 32", "train: 1 videos, 2 frames"), succeeds=True,
         setup=_videos(_pngs("huge", _huge))),
    # synthetic renderer
    Case("synthetic_unwritable_output_dir", "input_pipeline.synthetic",
         ("--output_dir={tmp}/file/out", "--num_videos=1", "--num_frames=2", "--resolution=32"),
         ("--output_dir", "{tmp}/file"), setup=_write("file", b"x")),
    Case("synthetic_bad_value", "input_pipeline.synthetic",
         ("--output_dir={tmp}/out", "--num_frames=1", "--resolution=32"), ("--num_frames",),
         absent=("{tmp}/out",)),
    # input-pipeline benchmark
    Case("benchmark_missing_config_file", BENCH, ("--config=configs/nope.py",),
         ("configs/nope.py",)),
    Case("benchmark_missing_dataset", BENCH,
         (TINY, "--config.data.name=folder", "--config.data.manual_dir={tmp}/nowhere",
          "--config.data.data_dir={tmp}/tfds", "--output={tmp}/sheet.png"),
         ("{tmp}/nowhere",), absent=("{tmp}/sheet.png", "{tmp}/tfds")),
    Case("benchmark_unwritable_output", BENCH,
         (TINY, "--fake", "--num_batches=1", "--warmup_batches=1", "--worker_count=0",
          "--output={tmp}/file/sheet.png"), ("{tmp}/file/sheet.png",),
         setup=_write("file", b"x")),
    # internet_jax.animate and internet_jax.evaluate: their bad-input cases live in
    # tests/test_animate.py and tests/test_evaluate.py (same contract: one line, exit 1, no output).
]


def _digest(path: Path) -> str:
  return hashlib.sha256(path.read_bytes()).hexdigest()


# `python -c THIS LIMIT MODULE ARGS...` runs `python -m MODULE ARGS...` in a process that may
# write no file past LIMIT bytes: such a write fails with EFBIG, as a full disk fails it with
# ENOSPC (SIGXFSZ, sent first, is ignored, as daemons do). Set in the child itself: a preexec_fn
# would fork this multithreaded (JAX) process.
_WITH_FILE_SIZE_LIMIT = (
    "import resource, runpy, signal, sys; signal.signal(signal.SIGXFSZ, signal.SIG_IGN); "
    "limit = int(sys.argv.pop(1)); resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit)); "
    "runpy.run_module(sys.argv.pop(1), run_name='__main__', alter_sys=True)")


def _command(case: Case) -> list[str]:
  """The interpreter's arguments that run `case.module`."""
  if case.file_size_limit:
    return ["-c", _WITH_FILE_SIZE_LIMIT, str(case.file_size_limit), case.module]
  return ["-m", case.module]


def _run_case(case: Case, tmp: Path, env: dict) -> dict:
  """Sets up and runs one case in its own directory `tmp`."""
  fill = lambda text: text.format(tmp=tmp, **env)
  if case.setup is not None:
    case.setup(tmp, env)
  before = sorted(str(p.relative_to(tmp)) for p in tmp.rglob("*"))
  digests = {path: _digest(Path(path)) for path in map(fill, case.unchanged)}
  started = time.monotonic()
  result = subprocess.run([sys.executable, *_command(case), *map(fill, case.args)], cwd=REPO,
                          env=dict(ENV, **dict(case.env)), capture_output=True, text=True,
                          timeout=600)
  return dict(result=result, seconds=time.monotonic() - started, before=before, digests=digests,
              expect=[fill(s) for s in case.expect], absent=[fill(s) for s in case.absent])


@pytest.fixture(scope="module")
def catalogue(tiny_config, reference, tmp_path_factory):
  """Runs every case's subprocess, several at a time (they mostly wait on imports)."""
  env = {"data": tiny_config.data.manual_dir, "tfds": tiny_config.data.data_dir,
         "reference": str(reference)}
  roots = {case.id: tmp_path_factory.mktemp(case.id) for case in CASES}
  with concurrent.futures.ThreadPoolExecutor(max_workers=max(2, os.cpu_count() or 2)) as pool:
    futures = {case.id: pool.submit(_run_case, case, roots[case.id], env) for case in CASES}
    return {name: dict(future.result(), tmp=roots[name]) for name, future in futures.items()}


# One xdist worker runs the whole catalogue: its module fixture then runs its subprocesses once.
@pytest.mark.xdist_group("catalogue")
@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_catalogue(case, catalogue):
  outcome = catalogue[case.id]
  _check_outcome(case, outcome)
  if case.id == "main_checkpoint_of_another_model_width":
    # A refused resume writes nothing into the workdir (no event file, no new step).
    tmp = outcome["tmp"]
    after = sorted(str(p.relative_to(tmp)) for p in tmp.rglob("*"))
    assert after == outcome["before"]


def _check_outcome(case: Case, outcome: dict) -> None:
  """The contract of `Case` for the run `_run_case` returned."""
  result = outcome["result"]
  stderr = result.stderr.strip()
  last = stderr.splitlines()[-1] if stderr else ""
  print(f"{case.id}: exit {result.returncode} after {outcome['seconds']:.1f} s: {last}")
  if case.succeeds:
    assert result.returncode == 0, stderr[-3000:]
    for expected in outcome["expect"]:
      assert expected in result.stdout, (expected, result.stdout)
    return
  assert result.returncode != 0, stderr[-3000:]
  assert "Traceback" not in stderr, stderr[-3000:]
  assert last.startswith(case.prefix), stderr[-3000:]
  for expected in outcome["expect"]:
    assert expected in last, (expected, last)
  for path in map(Path, (match for pattern in outcome["absent"] for match in glob.glob(pattern))):
    # Empty directories may stay (TFDS makes its skeleton first); no file may.
    assert not path.exists() or not [p for p in path.rglob("*") if not p.is_dir()], path
  for path, digest in outcome["digests"].items():
    assert _digest(Path(path)) == digest, f"{path} was changed"


def test_verbose_shows_the_traceback(tmp_path):
  result = subprocess.run(
      [sys.executable, "-m", MAIN, TINY, f"--workdir={tmp_path / 'w'}", "--verbose",
       "--config.temporal.scheme=sometimes"],
      cwd=REPO, env=ENV, capture_output=True, text=True, timeout=300)
  assert result.returncode != 0
  assert "Traceback" in result.stderr and "config.temporal.scheme" in result.stderr


# ---------------------------------------------------------------------------------------------
# One run per workdir


def _dead_pid() -> int:
  child = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                         capture_output=True, text=True, check=True)
  return int(child.stdout)


def test_workdir_lock_refuses_a_live_holder_and_takes_over_a_stale_one(tmp_path, caplog):
  path = tmp_path / workdir_lock.LOCK_NAME
  host = socket.gethostname()
  sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
  try:
    for holder in (f"{sleeper.pid} {host}", f"{_dead_pid()} another-host"):  # live; unknowable
      path.write_text(holder + "\n")
      with pytest.raises(ValueError) as info:
        workdir_lock.acquire(str(tmp_path))
      pid, where = holder.split()
      assert str(info.value).startswith(f"--workdir: {tmp_path} is in use by another run "
                                        f"(pid {pid} on {where}, {path})")
      assert path.read_text() == holder + "\n"  # untouched
  finally:
    sleeper.kill()
    sleeper.wait()
  for stale in (f"{_dead_pid()} {host}", "garbage"):
    path.write_text(stale)
    with caplog.at_level("WARNING"):
      assert workdir_lock.acquire(str(tmp_path)) == str(path)
    assert "Taking over the stale lock" in caplog.text
    assert path.read_text() == f"{os.getpid()} {host}\n"
    workdir_lock.release(str(path))
    assert not path.exists()
  with workdir_lock.held(str(tmp_path)):
    with pytest.raises(ValueError, match="in use by another run"):  # ourselves, a second time
      workdir_lock.acquire(str(tmp_path))
  assert not path.exists()


# ---------------------------------------------------------------------------------------------
# 6. The file system, outputs that are inputs, images as people have them, evaluate's inputs.
# Animate checks its inputs and output before it loads a model, so these cases name a workdir
# that does not exist: a check that let the input through would fail on that instead.

ANIMATE, EVALUATE, SYNTHETIC = "internet_jax.animate", "internet_jax.evaluate", \
    "input_pipeline.synthetic"
LONG = "n" * 300  # one path component longer than the 255 bytes file systems allow
ANIMATE_ARGS = ("--workdir={tmp}/no_model", "--source={tmp}/person.png",
                "--driving={tmp}/dance.mp4")
FOLDERS = ("--generated={tmp}/gen", "--reference={tmp}/ref", "--flow_preset=ultrafast")
LIMIT = "INTERNET_JAX_MAX_IMAGE_PIXELS"


def _media(tmp: Path, env: dict) -> None:
  """{tmp}/person.png (40x30), {tmp}/dance.mp4, {tmp}/file, and gen/ and ref/ of one video `a`
  (three 24x24 PNG frames) for evaluate."""
  Image.fromarray(smooth_frames(1, 30, 40, 1)[0]).save(tmp / "person.png")
  video_io.write_video(tmp / "dance.mp4", smooth_frames(4, 32, 32, 2))
  (tmp / "file").write_text("not a folder")
  write_pngs(tmp / "gen" / "a", smooth_frames(3, 24, 24, 3))
  write_pngs(tmp / "ref" / "a", smooth_frames(3, 24, 24, 4))


def _and(*setups: Callable[[Path, dict], None]) -> Callable[[Path, dict], None]:
  """`_media`, then each of `setups`."""
  def setup(tmp: Path, env: dict) -> None:
    for step in (_media, *setups):
      step(tmp, env)
  return setup


def _symlink(link: str, target: str) -> Callable[[Path, dict], None]:
  return lambda tmp, env: (tmp / link).symlink_to(tmp / target)


def _pairs_reading_an_output(tmp: Path, env: dict) -> None:
  """A pairs CSV whose second row drives with out/person__dance.mp4, the first row's output (a
  previous run's video)."""
  (tmp / "out").mkdir()
  shutil.copy(tmp / "dance.mp4", tmp / "out" / "person__dance.mp4")
  (tmp / "pairs.csv").write_text("source,driving\nperson.png,dance.mp4\n"
                                 "person.png,out/person__dance.mp4\n")


def _damaged_npz(tmp: Path, env: dict) -> None:
  """ref/a.npz: a real compressed npz cut in half (an interrupted copy)."""
  np.savez_compressed(tmp / "ref" / "a.npz", source_coords=np.zeros((3, 24, 24, 2), np.float32))
  data = (tmp / "ref" / "a.npz").read_bytes()
  (tmp / "ref" / "a.npz").write_bytes(data[:len(data) // 2])


def _frames_as_people_have_them(tmp: Path, env: dict) -> None:
  """A training video of three JPEG frames: CMYK, EXIF-rotated (stored landscape), plain."""
  frames = smooth_frames(3, 24, 32, 5)
  folder = tmp / "videos" / "train" / "photos"
  folder.mkdir(parents=True)
  save_cmyk_jpeg(folder / "0000000.jpg", frames[0])
  save_with_orientation(folder / "0000001.jpg", frames[1], 6)
  Image.fromarray(frames[2]).save(folder / "0000002.jpg")
  write_pngs(tmp / "videos" / "test" / "t", smooth_frames(3, 24, 24, 9))


FILE_CASES = [
    # The OS's refusals: one line naming the path, whatever the member of the OSError family.
    Case("animate_output_name_too_long", ANIMATE, (*ANIMATE_ARGS, f"--output={{tmp}}/{LONG}.mp4"),
         (f"{{tmp}}/{LONG}.mp4: File name too long",), setup=_media),
    Case("animate_source_name_too_long", ANIMATE,
         ("--workdir={tmp}/no_model", f"--source={{tmp}}/{LONG}.png", "--driving={tmp}/dance.mp4",
          "--output={tmp}/o.mp4"), (f"{{tmp}}/{LONG}.png: File name too long",), setup=_media),
    Case("animate_source_is_a_folder", ANIMATE,
         ("--workdir={tmp}/no_model", "--source={tmp}/gen", "--driving={tmp}/dance.mp4",
          "--output={tmp}/o.mp4"), ("{tmp}/gen: not an image file",), setup=_media),
    Case("animate_driving_under_a_file", ANIMATE,
         ("--workdir={tmp}/no_model", "--source={tmp}/person.png", "--driving={tmp}/file/d.mp4",
          "--output={tmp}/o.mp4"), ("{tmp}/file/d.mp4",), setup=_media),
    Case("evaluate_output_dir_is_a_file", EVALUATE, (*FOLDERS, "--output_dir={tmp}/file"),
         ("--output_dir: {tmp}/file: cannot write here ({tmp}/file is not a directory)",),
         setup=_media),
    Case("evaluate_output_dir_name_too_long", EVALUATE, (*FOLDERS, f"--output_dir={{tmp}}/{LONG}"),
         (f"{{tmp}}/{LONG}: File name too long",), setup=_media),
    Case("evaluate_disk_full", EVALUATE, (*FOLDERS, "--output_dir={tmp}/out"),
         ("--output_dir: cannot write {tmp}/out: File too large",), setup=_media,
         absent=("{tmp}/out",), file_size_limit=2000),
    Case("synthetic_output_dir_name_too_long", SYNTHETIC,
         (f"--output_dir={{tmp}}/{LONG}", "--num_videos=1", "--num_frames=2", "--resolution=32"),
         (f"{{tmp}}/{LONG}: File name too long",)),
    Case("synthetic_disk_full", SYNTHETIC,
         ("--output_dir={tmp}/out", "--num_videos=1", "--num_frames=2", "--resolution=32"),
         ("{tmp}/out: File too large",), absent=("{tmp}/out", "{tmp}/.out.partial-*"),
         file_size_limit=1000),
    Case("prepare_data_dir_is_a_file", PREP,
         ("--name=folder", "--manual_dir={tmp}/videos", "--data_dir={tmp}/file",
          "--resolution=32", "--min_driving_offset=0"), ("{tmp}/file", "Not a directory"),
         setup=_and(_frames_as_people_have_them), prefix="prepare: "),
    Case("prepare_manual_dir_name_too_long", PREP,
         ("--name=folder", f"--manual_dir={{tmp}}/{LONG}", "--data_dir={tmp}/tfds",
          "--resolution=32", "--min_driving_offset=0"), (f"{{tmp}}/{LONG}: File name too long",),
         absent=("{tmp}/tfds",), prefix="prepare: "),
    # Outputs that are inputs, however spelt: refused before anything is written.
    Case("animate_output_is_the_driving_video", ANIMATE,
         (*ANIMATE_ARGS, "--output={tmp}/./gen/../dance.mp4"),
         ("{tmp}/gen/../dance.mp4: is the driving video {tmp}/dance.mp4",), setup=_media,
         unchanged=("{tmp}/dance.mp4",)),
    Case("animate_output_is_a_link_to_the_source", ANIMATE,
         ("--workdir={tmp}/no_model", "--source={tmp}/dance.mp4", "--driving={tmp}/gen/a",
          "--output={tmp}/link.mp4"), ("{tmp}/link.mp4: is the source {tmp}/dance.mp4",),
         setup=_and(_symlink("link.mp4", "dance.mp4")), unchanged=("{tmp}/dance.mp4",)),
    Case("animate_pairs_output_is_another_rows_input", ANIMATE,
         ("--workdir={tmp}/no_model", "--pairs={tmp}/pairs.csv", "--output_dir={tmp}/out"),
         ("{tmp}/pairs.csv:2: {tmp}/out/person__dance.mp4: is the driving video on line 3",),
         setup=_and(_pairs_reading_an_output), unchanged=("{tmp}/out/person__dance.mp4",)),
    Case("evaluate_output_dir_is_the_reference", EVALUATE, (*FOLDERS, "--output_dir={tmp}/ref"),
         ("{tmp}/ref: is the reference videos folder",), setup=_media,
         absent=("{tmp}/ref/metrics.*", "{tmp}/ref/.metrics.*")),
    Case("evaluate_output_dir_inside_generated_by_a_link", EVALUATE,
         (*FOLDERS, "--output_dir={tmp}/link/scores"),
         ("{tmp}/link/scores: is inside the generated videos folder {tmp}/gen",),
         setup=_and(_symlink("link", "gen/a")), absent=("{tmp}/gen/a/scores",)),
    Case("evaluate_report_over_a_weights_file", EVALUATE,
         (*FOLDERS, "--output_dir={tmp}/out", "--lpips_weights={tmp}/out/metrics.json"),
         ("{tmp}/out/metrics.json: is the --lpips_weights file",),
         setup=_and(_write("out/metrics.json", b"weights")), unchanged=("{tmp}/out/metrics.json",)),
    # Images as people have them: CMYK and EXIF-rotated frames are read; the pixel limit is
    # configurable and named.
    Case("prepare_cmyk_and_rotated_jpeg_frames", PREP, PREPARE, SUMMARY_3, succeeds=True,
         setup=_frames_as_people_have_them),
    Case("animate_source_over_the_pixel_limit", ANIMATE, (*ANIMATE_ARGS, "--output={tmp}/o.mp4"),
         ("{tmp}/person.png: image 40x30 = 1200 pixels, larger than the limit of 1000 pixels",
          f"${LIMIT}"), setup=_media, env=((LIMIT, "1000"),), absent=("{tmp}/o.mp4",)),
    Case("prepare_frames_over_the_pixel_limit", PREP, PREPARE,
         ("{tmp}/videos/train/photos/0000000.jpg", "larger than the limit of 300 pixels"),
         setup=_frames_as_people_have_them, env=((LIMIT, "300"),), absent=("{tmp}/tfds",),
         prefix="prepare: "),
    Case("animate_pixel_limit_not_a_number", ANIMATE, (*ANIMATE_ARGS, "--output={tmp}/o.mp4"),
         (f"${LIMIT}: must be a positive number of pixels, got 'lots'",), setup=_media,
         env=((LIMIT, "lots"),)),
    # evaluate's inputs, and sizes and counts below 1 (evaluate and animate).
    Case("evaluate_missing_ground_truth_folder", EVALUATE,
         (*FOLDERS, "--ground_truth={tmp}/nowhere", "--output_dir={tmp}/out"),
         ("--ground_truth: {tmp}/nowhere is not a folder",), setup=_media, absent=("{tmp}/out",)),
    Case("evaluate_ground_truth_folder_without_npz", EVALUATE,
         (*FOLDERS, "--ground_truth={tmp}/gen", "--output_dir={tmp}/out"),
         ("--ground_truth: {tmp}/gen holds none of the <name>.npz files of the 1 videos (a)",),
         setup=_media, absent=("{tmp}/out",)),
    Case("evaluate_truncated_ground_truth", EVALUATE, (*FOLDERS, "--output_dir={tmp}/out"),
         ("{tmp}/ref/a.npz: unreadable ground truth",), setup=_and(_damaged_npz),
         absent=("{tmp}/out",)),
    Case("evaluate_ground_truth_not_an_npz", EVALUATE, (*FOLDERS, "--output_dir={tmp}/out"),
         ("{tmp}/ref/a.npz: unreadable ground truth",),
         setup=_and(_write("ref/a.npz", b"PK\x03\x04 not really")), absent=("{tmp}/out",)),
    Case("evaluate_zero_resolution", EVALUATE, (*FOLDERS, "--resolution=0"),
         ("--resolution: must be at least 1, got 0",), setup=_media, absent=("{tmp}/gen_metrics",)),
    Case("evaluate_negative_max_videos", EVALUATE, (*FOLDERS, "--max_videos=-2"),
         ("--max_videos: must be at least 1, got -2",), setup=_media),
    Case("evaluate_zero_batch_size", EVALUATE, ("--workdir={tmp}/w", "--batch_size=0"),
         ("--batch_size: must be at least 1, got 0",)),
    Case("animate_negative_batch_size", ANIMATE,
         (*ANIMATE_ARGS, "--output={tmp}/o.mp4", "--batch_size=-3"),
         ("--batch_size: must be at least 1, got -3",), setup=_media, absent=("{tmp}/o.mp4",)),
]


@pytest.mark.parametrize("case", FILE_CASES, ids=[c.id for c in FILE_CASES])
def test_file_system_catalogue(case, tmp_path):
  _check_outcome(case, dict(_run_case(case, tmp_path, {}), tmp=tmp_path))


# ---------------------------------------------------------------------------------------------
# 7. Config values and files, and flags: every CLI parses the same way. The config files are
# the user's code: the line names the file and line of the failure.

CONVERT = "internet_jax.convert_weights"
BROKEN_CONFIGS = {
    "syntax.py": "import ml_collections\n\ndef get_config():\n  return ml_collections.ConfigDict(\n",
    "imports.py": "import ml_collections\nimport no_such_module_anywhere\n",
    "divides.py": "from configs import default\n\ndef get_config():\n  config = default.get_config()\n"
                  "  config.batch_size = 16 // 0\n  return config\n",
}


def _broken_configs(tmp: Path, env: dict) -> None:
  for name, text in BROKEN_CONFIGS.items():
    (tmp / name).write_text(text)


CONFIG_AND_FLAG_CASES = [
    # Numeric config values: refused before data, workdir or compilation.
    Case("main_nan_config_value", MAIN, (TINY, W, "--config.loss.tps_sigma_tps=nan"),
         ("config.loss.tps_sigma_tps: must be a number >= 0, got nan",), absent=NO_W),
    Case("main_infinite_learning_rate", MAIN, (TINY, W, "--config.optimizer.g_lr=inf"),
         ("config.optimizer.g_lr: must be a number > 0, got inf",), absent=NO_W),
    Case("main_decay_of_one", MAIN, (TINY, W, "--config.optimizer.b2=1.0"),
         ("config.optimizer.b2: must be a number in [0, 1), got 1.0",), absent=NO_W),
    Case("main_one_frame_synthetic_videos", MAIN,
         (TINY, W, "--config.data.synthetic.num_frames=1", "--config.data.manual_dir={tmp}/syn",
          "--config.data.data_dir={tmp}/tfds"),
         ("config.data.synthetic.num_frames: must be an integer >= 2",),
         absent=(*NO_W, "{tmp}/syn", "{tmp}/tfds")),
    # Config files that do not load: one line with the file and line.
    Case("main_config_syntax_error", MAIN, ("--config={tmp}/syntax.py", W),
         ("{tmp}/syntax.py:4: SyntaxError: '(' was never closed",), setup=_broken_configs,
         absent=NO_W),
    Case("main_config_import_error", MAIN, ("--config={tmp}/imports.py", W),
         ("{tmp}/imports.py:2: ModuleNotFoundError: No module named 'no_such_module_anywhere'",),
         setup=_broken_configs, absent=NO_W),
    Case("main_config_raises", MAIN, ("--config={tmp}/divides.py", W),
         ("{tmp}/divides.py:5: ZeroDivisionError",), setup=_broken_configs, absent=NO_W),
    Case("benchmark_config_syntax_error", BENCH, ("--config={tmp}/syntax.py",),
         ("{tmp}/syntax.py:4: SyntaxError",), setup=_broken_configs),
    # Flags: a bad value, an unknown flag or a stray word is one line naming it, in every CLI.
    Case("animate_stray_word", ANIMATE, (*ANIMATE_ARGS, "--output={tmp}/o.mp4", "now"),
         ("unexpected arguments: now",), absent=("{tmp}/o.mp4",)),
    Case("animate_batch_size_not_a_number", ANIMATE, (*ANIMATE_ARGS, "--batch_size=many"),
         ("flag --batch_size=many",)),
    Case("evaluate_stray_word", EVALUATE, (*FOLDERS, "please"), ("unexpected arguments: please",),
         absent=("{tmp}/gen_metrics",)),
    Case("evaluate_unknown_flag", EVALUATE, (*FOLDERS, "--metric=ssim"),
         ("Unknown command line flag 'metric'",)),
    Case("synthetic_resolution_not_a_number", SYNTHETIC,
         ("--output_dir={tmp}/out", "--resolution=64px"), ("flag --resolution=64px",),
         absent=("{tmp}/out",)),
    Case("synthetic_stray_word", SYNTHETIC, ("--output_dir={tmp}/out", "render"),
         ("unexpected arguments: render",), absent=("{tmp}/out",)),
    Case("prepare_stray_word", PREP, (*PREPARE, "now"), ("unexpected arguments: now",),
         absent=("{tmp}/tfds",)),
    Case("prepare_workers_not_a_number", PREP, (*PREPARE, "--num_workers=two"),
         ("flag --num_workers=two",), absent=("{tmp}/tfds",)),
    Case("benchmark_stray_word", BENCH, (TINY, "--fake", "fast"), ("unexpected arguments: fast",)),
    Case("benchmark_batches_not_a_number", BENCH, (TINY, "--fake", "--num_batches=ten"),
         ("flag --num_batches=ten",)),
    Case("convert_weights_unknown_network", CONVERT, ("resnet", "{tmp}/w.pth"),
         ("argument network: invalid choice: 'resnet'",)),
    Case("convert_weights_unknown_flag", CONVERT, ("vgg19", "{tmp}/w.pth", "--dtype=half"),
         ("unrecognized arguments: --dtype=half",)),
]


@pytest.mark.parametrize("case", CONFIG_AND_FLAG_CASES, ids=[c.id for c in CONFIG_AND_FLAG_CASES])
def test_config_and_flag_catalogue(case, tmp_path):
  outcome = dict(_run_case(case, tmp_path, {}), tmp=tmp_path)
  _check_outcome(case, outcome)
  # No usage text: nothing but the error line and absl's log lines (main logs its devices).
  lines = [line for line in outcome["result"].stderr.strip().splitlines()
           if not re.match(r"[IWEF]\d{4} ", line)]
  assert len(lines) == 1, lines


@pytest.mark.parametrize("error, line", [
    (PermissionError(errno.EACCES, "Permission denied", "/srv/out"), "/srv/out: Permission denied"),
    (OSError(errno.EROFS, "Read-only file system", "/mnt/ro/w"), "/mnt/ro/w: Read-only file system"),
    (OSError(errno.ENOSPC, "No space left on device"), "/data/out: No space left on device"),
    (OSError(errno.EXDEV, "Invalid cross-device link", "/a", None, "/b"),
     "/a -> /b: Invalid cross-device link"),
    (FileNotFoundError("/w/checkpoints: no checkpoints"), "/w/checkpoints: no checkpoints"),
])
def test_every_os_error_is_one_line_naming_its_path(error, line, capsys):
  # A write() on a full disk names no file: writing_to supplies the output's.
  with pytest.raises(SystemExit) as exit_info:
    with errors.user_errors(), errors.writing_to("/data/out"):
      raise error
  assert exit_info.value.code == 1
  assert capsys.readouterr().err == f"error: {line}\n"


def _full_disk(*args, **kwargs):
  raise OSError(errno.ENOSPC, "No space left on device")


def test_full_disk_leaves_no_partial_report_or_video(tmp_path, monkeypatch):
  # The last step of each writer fails as a full disk makes it fail: nothing is left behind.
  monkeypatch.setattr(os, "replace", _full_disk)
  monkeypatch.setattr(evaluate, "format_markdown", lambda results: "# Metrics\n")
  with pytest.raises(ValueError, match=rf"^--output_dir: cannot write {tmp_path}/scores: No "
                     "space left on device$"):
    evaluate.write_reports({"mean": {}}, tmp_path / "scores")
  video = tmp_path / "video.mp4"
  with pytest.raises(ValueError, match=rf"^{video}: cannot write \(No space left on device\)$"):
    animate.write_atomically(video, smooth_frames(2, 16, 16), fps=10.0)
  assert list(tmp_path.iterdir()) == []


# ---------------------------------------------------------------------------------------------
# 8. Checkpoint writes that fail: the run stops at the first failed save, in one line, with the
# newest complete checkpoint intact and no temporary folder left.

# `python -c THIS ARGS...` runs `python -m internet_jax.main ARGS...` on a disk that fills up
# once the checkpoint of step 1 is complete: no file may then grow past 8 KiB (the state's
# files do; the event file of two steps does not).
_DISK_FULL_AFTER_STEP_1 = (
    "import resource, runpy, signal\n"
    "from internet_jax import checkpointing\n"
    "save = checkpointing.save\n"
    "def save_then_fill_the_disk(manager, step, *args, **kwargs):\n"
    "  if step == 2:\n"
    "    checkpointing.wait_until_finished(manager)\n"
    "    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)\n"
    "    resource.setrlimit(resource.RLIMIT_FSIZE, (24000, 24000))\n"
    "  save(manager, step, *args, **kwargs)\n"
    "checkpointing.save = save_then_fill_the_disk\n"
    "runpy.run_module('internet_jax.main', run_name='__main__', alter_sys=True)\n")


def _train_command(tiny_config, workdir: Path) -> list[str]:
  return [TINY, f"--workdir={workdir}", "--config.num_train_steps=6",
          "--config.checkpoint_every_steps=1", "--config.num_eval_videos=0",
          "--config.image_every_steps=0", "--config.sample_animation=False",
          *_data_flags(tiny_config)]


def _is_own_info_line(line: str) -> bool:
  """An absl INFO record of this project's files (`I1207 16:25:12.14 123 train.py:389] ...`)."""
  return re.match(r"^I\d{4} [\d:.]+\s+\d+ \w+\.py:\d+\] ", line) is not None


def _one_line_failure(result: subprocess.CompletedProcess) -> str:
  """The last stderr line of a run that must have failed in one line."""
  assert result.returncode == 1, result.stderr[-3000:]
  assert "Traceback" not in result.stderr, result.stderr[-3000:]
  return result.stderr.strip().splitlines()[-1]


def test_checkpoints_folder_that_is_a_file_is_one_line_before_training(tiny_config, tmp_path):
  workdir = tmp_path / "w"
  workdir.mkdir()
  (workdir / "checkpoints").write_text("not a folder")
  started = time.monotonic()
  result = subprocess.run([sys.executable, "-m", MAIN, *_train_command(tiny_config, workdir)],
                          cwd=REPO, env=ENV, capture_output=True, text=True, timeout=300)
  assert _one_line_failure(result) == (f"error: {workdir}/checkpoints: a file is in the way of "
                                       "the checkpoints folder")
  assert "step 1" not in result.stderr and time.monotonic() - started < 120


def test_disk_full_mid_run_stops_at_the_failed_save_keeping_the_last_checkpoint(tiny_config,
                                                                                tmp_path):
  workdir = tmp_path / "w"
  started = time.monotonic()
  result = subprocess.run(
      [sys.executable, "-c", _DISK_FULL_AFTER_STEP_1, *_train_command(tiny_config, workdir)],
      cwd=REPO, env=ENV, capture_output=True, text=True, timeout=300)
  assert time.monotonic() - started < 150  # no wait on Orbax's background-writer timeout
  # One line, and nothing else but the run's own progress lines: no Orbax error records, no
  # tracebacks of TensorStore writes that ended after the failure closed their event loop
  # (before cli.console_policy's unraisable hook, a few hundred of them in most runs).
  assert result.returncode == 1, result.stderr[-3000:]
  assert "Traceback" not in result.stderr, result.stderr[-3000:]
  others = [line for line in result.stderr.splitlines() if not _is_own_info_line(line)]
  assert others == [f"error: {workdir}/checkpoints: cannot save a checkpoint (File too large); "
                    "the newest complete checkpoint is step 1"], others
  assert sorted(p.name for p in (workdir / "checkpoints").iterdir()) == ["1"]
  assert int(_final_state(workdir, 1)["step"]) == 1  # intact: Orbax reads it back


def test_file_in_the_way_of_a_step_folder_stops_that_save(tmp_path):
  manager = checkpointing.create_manager(str(tmp_path))
  state = {"w": jnp.ones((4,)), "step": jnp.int32(1)}
  config = ml_collections.ConfigDict()
  checkpointing.save(manager, 1, state, None, config)
  (tmp_path / "checkpoints" / "2").write_text("in the way")
  with pytest.raises(OSError) as info:
    checkpointing.save(manager, 2, state, None, config)
  checkpointing.close(manager)
  assert errors.os_error_message(info.value) == (
      f"{tmp_path}/checkpoints/2: cannot save the checkpoint of step 2 (a file is in the way of "
      "the step folder); the newest complete checkpoint is step 1")
  assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == ["1", "2"]


# ---------------------------------------------------------------------------------------------
# 9. Interrupted work leaves nothing behind: SIGTERM/SIGINT remove a CLI's temporaries (one line
# `interrupted: ...`, exit 128 + N); after a SIGKILL the next run of the same command removes
# them, with one warning line.

PARTIAL = ".*.partial*"  # temporaries.partial_path, beside each output


def test_stop_on_signals_removes_the_temporaries_and_restores_the_handlers(tmp_path):
  before = [signal.getsignal(s) for s in temporaries.SIGNALS]
  for signum in temporaries.SIGNALS:
    with pytest.raises(errors.Interrupted) as info:
      with temporaries.stop_on_signals("the test output"):
        with temporaries.replaced(tmp_path / "out.txt") as partial:
          partial.write_text("half")
          os.kill(os.getpid(), signum)  # handled here, in the main thread
    assert info.value.exit_code == 128 + signum
    assert str(info.value).startswith(f"{errors.signal_name(signum)}: the test output not")
    assert not list(tmp_path.iterdir())  # neither the output nor its temporary
  assert [signal.getsignal(s) for s in temporaries.SIGNALS] == before


class _SignalsInItsFinaliser:
  """Sends SIGTERM from its finaliser: Python then runs the handler inside `__del__`, where the
  raised exception is dropped as unraisable (as inside JAX's garbage-collection callback)."""

  def __del__(self):
    os.kill(os.getpid(), signal.SIGTERM)


def test_a_signal_handled_inside_a_finaliser_still_stops_the_block(tmp_path):
  before = sys.unraisablehook
  with pytest.raises(errors.Interrupted) as info:
    with temporaries.stop_on_signals("the test output"):
      with temporaries.replaced(tmp_path / "out.txt") as partial:
        partial.write_text("half")
        _SignalsInItsFinaliser()  # dropped at once: its finaliser runs here
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:  # the work goes on; the signal must land in it
          time.sleep(0.001)
  assert info.value.exit_code == 128 + signal.SIGTERM
  assert not list(tmp_path.iterdir())
  assert sys.unraisablehook is before


def test_remove_stale_removes_only_dead_processes_temporaries_of_this_host(tmp_path, caplog):
  output = tmp_path / "out.mp4"
  host = socket.gethostname()
  dead = tmp_path / f".out.mp4.{_dead_pid()}@{host}.partial.mp4"
  live = tmp_path / f".out.mp4.{os.getppid()}@{host}.partial.mp4"
  elsewhere = tmp_path / f".out.mp4.{_dead_pid()}@another-host.partial.mp4"
  other_output = tmp_path / f".out.mp4x.{_dead_pid()}@{host}.partial"
  orphan = tmp_path / "incomplete.ABC_1.0.0"
  for path in (dead, live, elsewhere, other_output):
    path.write_text("")
  orphan.mkdir()
  with caplog.at_level("WARNING"):
    assert temporaries.remove_stale(output, orphans=[orphan]) == [dead]
  assert [r.getMessage() for r in caplog.records] == [
      f"removed what an interrupted run left behind: {dead}"]
  assert orphan.is_dir()  # a live process writes `output`: its incomplete folders may be in use
  live.unlink()
  assert temporaries.remove_stale(output, orphans=[orphan]) == [orphan]
  assert sorted(p.name for p in tmp_path.iterdir()) == sorted([elsewhere.name, other_output.name])


def _start(module: str, args: list[str], log: Path) -> subprocess.Popen:
  with open(log, "w") as out:
    return subprocess.Popen([sys.executable, "-m", module, *args], cwd=REPO, env=ENV,
                            stdout=out, stderr=subprocess.STDOUT)


def _wait_for(process: subprocess.Popen, root: Path, pattern: str, log: Path,
              timeout: float = 300) -> list[Path]:
  """Polls until `root.rglob(pattern)` finds something (the command's temporary)."""
  deadline = time.monotonic() + timeout
  while time.monotonic() < deadline and process.poll() is None:
    found = list(root.rglob(pattern))
    if found:
      return found
    time.sleep(0.01)
  process.kill()
  pytest.fail(f"no {root}/**/{pattern} appeared (exit status {process.poll()}): {_tail(log)}")


def _stopped(process: subprocess.Popen, signum: int, log: Path) -> None:
  """Sends `signum`; the run ends with exit 128 + signum and one line `interrupted: ...`."""
  process.send_signal(signum)
  assert process.wait(timeout=120) == 128 + signum, _tail(log)
  text = log.read_text()
  assert "Traceback" not in text, text[-3000:]
  lines = [line for line in text.splitlines() if line.strip()]
  assert [line for line in lines if line.startswith("interrupted:")] == [lines[-1]], text[-3000:]
  assert lines[-1].startswith(f"interrupted: {errors.signal_name(signum)}: "), lines[-1]


def _killed(process: subprocess.Popen) -> None:
  process.send_signal(signal.SIGKILL)
  assert process.wait(timeout=60) == -signal.SIGKILL


def _warned_once(log: Path, removed: list[Path]) -> None:
  """The rerun's one warning line names what the killed run left."""
  lines = [line for line in log.read_text().splitlines()
           if "removed what an interrupted run left behind" in line]
  assert len(lines) == 1, log.read_text()[-3000:]
  for path in removed:
    assert str(path) in lines[0], (path, lines[0])


SYNTHETIC_ARGS = ["--num_videos=40", "--num_test_videos=1", "--num_frames=24", "--resolution=64"]


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_synthetic_stopped_by_a_signal_leaves_nothing(tmp_path, signum):
  log = tmp_path / "log"
  process = _start(SYNTHETIC, [f"--output_dir={tmp_path}/out", *SYNTHETIC_ARGS], log)
  _wait_for(process, tmp_path, PARTIAL, log)
  _stopped(process, signum, log)
  assert sorted(p.name for p in tmp_path.iterdir()) == ["log"]


def test_synthetic_after_kill_9_removes_the_partial_folder(tmp_path):
  log = tmp_path / "log"
  process = _start(SYNTHETIC, [f"--output_dir={tmp_path}/out", *SYNTHETIC_ARGS], log)
  partial = _wait_for(process, tmp_path, PARTIAL, log)
  _killed(process)
  assert all(p.exists() for p in partial)
  rerun = tmp_path / "rerun"
  process = _start(SYNTHETIC, [f"--output_dir={tmp_path}/out", "--num_videos=1",
                               "--num_test_videos=1", "--num_frames=4", "--resolution=32"], rerun)
  assert process.wait(timeout=120) == 0, _tail(rerun)
  _warned_once(rerun, partial)
  assert sorted(p.name for p in tmp_path.iterdir()) == ["log", "out", "rerun"]


def _prepare_args(tmp: Path) -> list[str]:
  """prepare on videos rendered beforehand (so that the TFDS step is what is interrupted)."""
  return ["--name=folder", f"--manual_dir={tmp}/videos", f"--data_dir={tmp}/tfds",
          "--resolution=64", "--min_driving_offset=0"]


@pytest.fixture(scope="module")
def many_videos(tmp_path_factory) -> Path:
  """train/ and test/ of enough frames that TFDS takes a few seconds over them."""
  from input_pipeline import synthetic  # pylint: disable=g-import-not-at-top
  folder = tmp_path_factory.mktemp("many") / "videos"
  synthetic.write_dataset(folder, num_videos=24, num_test_videos=2, num_frames=48,
                          resolution=64, seed=0, cross_identity=False)
  return folder


def test_prepare_stopped_or_killed_leaves_no_incomplete_folder(tmp_path, many_videos):
  shutil.copytree(many_videos, tmp_path / "videos")
  log = tmp_path / "log"
  process = _start(PREP, _prepare_args(tmp_path), log)
  _wait_for(process, tmp_path / "tfds", "incomplete.*", log)
  _stopped(process, signal.SIGTERM, log)
  assert not [p for p in (tmp_path / "tfds").rglob("*") if p.is_file()]

  process = _start(PREP, _prepare_args(tmp_path), log)
  left = _wait_for(process, tmp_path / "tfds", "incomplete.*", log)
  _killed(process)
  left += list((tmp_path / "tfds").rglob(PARTIAL))  # this run's marker
  assert all(p.exists() for p in left)
  rerun = tmp_path / "rerun"
  process = _start(PREP, _prepare_args(tmp_path), rerun)
  assert process.wait(timeout=300) == 0, _tail(rerun)
  _warned_once(rerun, left)
  assert not list((tmp_path / "tfds").rglob("incomplete.*"))
  assert not list((tmp_path / "tfds").rglob(PARTIAL))


def _wait_for_handler(process: subprocess.Popen, signum: int, log: Path,
                      timeout: float = 300) -> None:
  """Polls until the process catches `signum` (its bit in /proc/<pid>/status SigCgt): the
  command has entered `temporaries.stop_on_signals`. For commands that keep no temporary long
  enough to poll for (they write their outputs at the end)."""
  deadline = time.monotonic() + timeout
  while time.monotonic() < deadline and process.poll() is None:
    try:
      status = Path(f"/proc/{process.pid}/status").read_text()
    except OSError:
      break
    caught = int(re.search(r"^SigCgt:\s*([0-9a-f]+)$", status, re.M).group(1), 16)
    if caught >> (signum - 1) & 1:
      return
    time.sleep(0.01)
  process.kill()
  pytest.fail(f"signal {signum} never caught (exit status {process.poll()}): {_tail(log)}")


def test_evaluate_stopped_by_a_signal_writes_no_report(tmp_path):
  for name, seed in (("a", 3), ("b", 5), ("c", 7)):
    write_pngs(tmp_path / "gen" / name, smooth_frames(200, 64, 64, seed))
    write_pngs(tmp_path / "ref" / name, smooth_frames(200, 64, 64, seed + 1))
  log = tmp_path / "log"
  process = _start(EVALUATE, [f"--generated={tmp_path}/gen", f"--reference={tmp_path}/ref",
                              f"--output_dir={tmp_path}/out"], log)
  _wait_for_handler(process, signal.SIGTERM, log)
  _stopped(process, signal.SIGTERM, log)
  assert not (tmp_path / "out").exists() or not list((tmp_path / "out").iterdir())


def test_benchmark_stopped_by_a_signal_writes_no_contact_sheet(tmp_path):
  log = tmp_path / "log"
  output = tmp_path / "out" / "sheet.png"
  process = _start(BENCH, [TINY, "--fake", "--fake_videos=40", "--fake_frames=48",
                           "--num_batches=100000", f"--output={output}"], log)
  _wait_for_handler(process, signal.SIGTERM, log)  # (Python catches SIGINT from the start)
  _stopped(process, signal.SIGTERM, log)
  assert not output.parent.exists() or not list(output.parent.iterdir())


def _animate_args(tmp: Path, reference: Path, driving: str) -> list[str]:
  return [f"--workdir={reference}", f"--source={tmp}/person.png", f"--driving={tmp}/{driving}",
          f"--output={tmp}/out/o.mp4"]


def test_animate_stopped_or_killed_leaves_no_partial_video(tmp_path, reference):
  _media(tmp_path, {})
  # Long enough that the signal finds the video being written (the partial file exists).
  video_io.write_video(tmp_path / "long.mp4", smooth_frames(1500, 32, 32, 5))
  inputs = sorted(p.name for p in tmp_path.iterdir())
  log = tmp_path / "log"
  process = _start(ANIMATE, _animate_args(tmp_path, reference, "long.mp4"), log)
  _wait_for(process, tmp_path / "out", PARTIAL, log)
  _stopped(process, signal.SIGTERM, log)
  assert not list((tmp_path / "out").iterdir())

  process = _start(ANIMATE, _animate_args(tmp_path, reference, "long.mp4"), log)
  left = _wait_for(process, tmp_path / "out", PARTIAL, log)
  _killed(process)
  assert all(p.exists() for p in left)
  rerun = tmp_path / "rerun"
  process = _start(ANIMATE, _animate_args(tmp_path, reference, "dance.mp4"), rerun)
  assert process.wait(timeout=300) == 0, _tail(rerun)
  _warned_once(rerun, left)
  assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["o.mp4"]
  assert sorted(p.name for p in tmp_path.iterdir()) == sorted(inputs + ["log", "out", "rerun"])
