"""animate.py with INTERnet's renderer: relative-motion math, encode-once, output size/count/fps, --visualize panels, pairs
CSV, checkpoint restore (workdir, step dir, EMA) and one-line errors for bad input."""

import functools
import json
import os
import shutil
import subprocess
import sys

import cv2
import imageio.v3 as iio
import jax
import numpy as np
import pytest

from configs import synthetic
from input_pipeline import video_io
from internet_jax import animate as animate_lib
from internet_jax import checkpointing, inference
from internet_jax import method as method_lib
from internet_jax.methods.internet import renderer as renderer_lib
from video_fixtures import smooth_frames, write_pngs

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BATCH = 4  # one batch size everywhere: every test reuses the same compilation
PAD = inference.PANEL_PAD


def _save_png(path, image):
  """RGB/RGBA/gray arrays of any dtype cv2 writes (it wants BGR order)."""
  if image.ndim == 3 and image.shape[-1] == 3:
    image = image[..., ::-1]
  elif image.ndim == 3 and image.shape[-1] == 4:
    image = image[..., [2, 1, 0, 3]]
  assert cv2.imwrite(str(path), np.ascontiguousarray(image))
  return path


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
  """A workdir with one checkpoint written the way training writes it: `checkpointing.save` of a
  `train.TrainState` with the tree of `train.create_train_state`. Only the generator is really
  initialised (the rest is zeros: animation never reads it, and compiling the discriminator and
  optimizer inits would double the fixture's time); the EMA parameters are offset from params/g so
  that a test can tell which set was restored. Real training: the slow test at the bottom."""
  from internet_jax import train  # TensorFlow import: only when the fixture is needed
  config = synthetic.get_config("tiny")
  config.optimizer.ema_decay = 0.5
  method = method_lib.get(config.method)
  networks = method.build(config)
  abstract = jax.eval_shape(functools.partial(train.create_train_state, config, method, networks,
                                              method.optimizers(config, 1)))
  state = jax.tree.map(lambda x: np.zeros(x.shape, x.dtype), abstract)
  image = np.zeros((1, 32, 32, 3), np.float32)
  g_params = jax.jit(networks.generator.init)(jax.random.key(0), image, image)
  state = state.replace(params=dict(state.params, g=g_params),
                        ema_params={"g": jax.tree.map(lambda x: x + 0.01, g_params)})
  path = tmp_path_factory.mktemp("run")
  manager = checkpointing.create_manager(str(path))
  checkpointing.save(manager, 3, state, None, config)
  manager.wait_until_finished()
  manager.close()
  return path


@pytest.fixture(scope="module")
def loaded(workdir):
  """INTERnet's renderer of the workdir's (non-EMA) parameters, batch BATCH."""
  return animate_lib.load_renderer(workdir, batch_size=BATCH)


@pytest.fixture(scope="module")
def media(tmp_path_factory):
  """Small inputs of several kinds and sizes (none at the model resolution of 32)."""
  root = tmp_path_factory.mktemp("media")
  source = smooth_frames(1, 50, 30, seed=1)[0]  # portrait: padded left and right
  paths = {
      "source": _save_png(root / "person.png", source),
      "gray16": _save_png(root / "gray16.png",
                          (np.linspace(0, 65535, 40 * 36).reshape(40, 36)).astype(np.uint16)),
      "rgba": _save_png(root / "rgba.png", np.dstack([source, np.full(source.shape[:2], 128,
                                                                        np.uint8)])),
  }
  driving = smooth_frames(10, 24, 40, seed=2)  # landscape, 10 frames = 3 chunks of 4
  video_io.write_video(root / "dance.mp4", driving, fps=24)
  paths["driving"] = root / "dance.mp4"
  write_pngs(root / "frames", smooth_frames(5, 32, 32, seed=3))
  paths["frames"] = root / "frames"
  iio.imwrite(root / "clip.gif", np.stack(smooth_frames(6, 20, 20, seed=4)), plugin="pillow",
              duration=100, loop=0)
  paths["gif"] = root / "clip.gif"
  return root, paths, driving, source


def _count_calls(monkeypatch, name):
  """Counts calls of a module-level jitted function of INTERnet's renderer module."""
  calls = []
  original = getattr(renderer_lib, name)

  def counted(*args, **kwargs):
    calls.append(1)
    return original(*args, **kwargs)

  monkeypatch.setattr(renderer_lib, name, counted)
  return calls


def _files(folder):
  return sorted(p.name for p in folder.iterdir())


# ---------------------------------------------------------------------------------------------
# Relative motion math


def _anchors(values, jacobians):
  return {"value": np.asarray(values, np.float32)[None],
          "jacobian": np.asarray(jacobians, np.float32)[None]}


def test_normalize_anchors_relative_with_adapt_scale_matches_hand_values():
  eye = np.eye(2)
  # Source: a square of side 0.6 (area 0.36) with a point inside, which the hull must ignore;
  # first driving frame: a square of side 0.3 (area 0.09). scale = sqrt(.36) / sqrt(.09) = 2.
  source = _anchors([[-0.3, -0.3], [0.3, -0.3], [0.3, 0.3], [-0.3, 0.3], [0.0, 0.1]],
                    [[[1, 0], [2, 1]]] + [eye] * 4)
  initial = _anchors([[0.0, 0.0], [0.3, 0.0], [0.3, 0.3], [0.0, 0.3], [0.1, 0.1]],
                     [[[2, 0], [0, 1]]] + [eye] * 4)
  driving = _anchors([[0.1, -0.05], [0.3, 0.0], [0.3, 0.3], [0.0, 0.3], [0.2, 0.1]],
                     [[[2, 1], [0, 1]]] + [eye] * 4)
  assert renderer_lib.adapt_scale_factor(source["value"], initial["value"]) == pytest.approx(2.0)

  out = renderer_lib.normalize_anchors(source, driving, initial, relative=True, adapt_scale=True)
  # kp_s + (kp_d - kp_d0) * 2: anchor 0 moved (+0.1, -0.05) -> (-0.1, -0.4); anchor 4 (+0.1, 0).
  want = [[-0.1, -0.4], [0.3, -0.3], [0.3, 0.3], [-0.3, 0.3], [0.2, 0.1]]
  np.testing.assert_allclose(np.asarray(out["value"])[0], want, atol=1e-6)
  # (J_d J_d0^-1) J_s = [[2,1],[0,1]] [[.5,0],[0,1]] [[1,0],[2,1]] = [[1,1],[0,1]] [[1,0],[2,1]].
  np.testing.assert_allclose(np.asarray(out["jacobian"])[0, 0], [[3, 1], [2, 1]], atol=1e-6)
  np.testing.assert_allclose(np.asarray(out["jacobian"])[0, 1:], [eye] * 4, atol=1e-6)

  # Without adapt_scale the motion is copied as it is: anchor 0 -> (-0.2, -0.35).
  plain = renderer_lib.normalize_anchors(source, driving, initial, relative=True,
                                        adapt_scale=False)
  np.testing.assert_allclose(np.asarray(plain["value"])[0, 0], [-0.2, -0.35], atol=1e-6)


def test_normalize_anchors_identities_batching_and_errors():
  rng = np.random.default_rng(0)
  source = {"value": rng.uniform(-1, 1, (1, 6, 2)).astype(np.float32),
            "jacobian": (np.eye(2) + 0.3 * rng.normal(size=(1, 6, 2, 2))).astype(np.float32)}
  initial = {"value": rng.uniform(-1, 1, (1, 6, 2)).astype(np.float32),
             "jacobian": (np.eye(2) + 0.3 * rng.normal(size=(1, 6, 2, 2))).astype(np.float32)}
  # Driving == first driving frame: the source anchors, values exactly (x - x is 0 in floats).
  same = renderer_lib.normalize_anchors(source, initial, initial, relative=True, adapt_scale=True)
  np.testing.assert_array_equal(np.asarray(same["value"]), source["value"])
  np.testing.assert_allclose(np.asarray(same["jacobian"]), source["jacobian"], atol=1e-5)

  # A batch of driving frames against batch-1 source and first frame: row by row.
  batch = {k: np.concatenate([initial[k], initial[k] * 1.1, initial[k] - 0.05]) for k in initial}
  out = renderer_lib.normalize_anchors(source, batch, initial, relative=True, adapt_scale=False)
  for index in range(3):
    row = renderer_lib.normalize_anchors(source, {k: v[index:index + 1] for k, v in batch.items()},
                                        initial, relative=True, adapt_scale=False)
    np.testing.assert_allclose(np.asarray(out["value"])[index], np.asarray(row["value"])[0],
                               atol=1e-6)

  # Absolute motion returns the driving anchors untouched; adapt_scale alone is refused.
  absolute = renderer_lib.normalize_anchors(source, batch, initial, relative=False,
                                           adapt_scale=False)
  np.testing.assert_array_equal(absolute["value"], batch["value"])
  with pytest.raises(ValueError, match="needs relative"):
    renderer_lib.normalize_anchors(source, batch, initial, relative=False, adapt_scale=True)
  collinear = {"value": np.array([[[0, 0], [0.1, 0.1], [0.2, 0.2]]], np.float32)}
  with pytest.raises(ValueError, match="first driving frame anchors span no area"):
    renderer_lib.adapt_scale_factor(source["value"], collinear["value"])


# ---------------------------------------------------------------------------------------------
# Library on arrays and files


def test_api_encodes_source_once_and_returns_every_frame_at_model_resolution(
    loaded, media, monkeypatch):
  renderer, config = loaded, loaded.config
  _, _, driving, source = media
  encodes = _count_calls(monkeypatch, "_encode_source")
  generates = _count_calls(monkeypatch, "_generate")
  frames, extras = animate_lib.animate(renderer, source, np.stack(driving), return_outputs=True)
  resolution, k = config.data.resolution, config.model.num_anchors
  base = config.model.base_resolution
  assert frames.shape == (10, resolution, resolution, 3) and frames.dtype == np.uint8
  assert len(encodes) == 1 and len(generates) == 3  # 10 frames = 3 chunks, one encoding
  assert extras["visualization"].shape == (10, resolution + 2 * PAD, 6 * resolution + 7 * PAD, 3)
  assert extras["composition"].shape == (10, base, base, k + 1)
  assert extras["confidence"].shape == (10, base, base, 1)
  assert extras["driving_anchors"]["value"].shape == (10, k, 2)
  assert extras["source_anchors"]["jacobian"].shape == (10, k, 2, 2)
  # The output column of the visualisation is the output itself.
  left = 3 * PAD + 2 * resolution  # the third panel
  np.testing.assert_array_equal(
      extras["visualization"][:, PAD:PAD + resolution, left:left + resolution], frames)


def test_relative_motion_in_the_pipeline(loaded, media):
  _, _, driving, source = media
  driving = np.stack([video_io.resize_and_pad(f, 32) for f in driving])
  run = functools.partial(animate_lib.animate, loaded, return_outputs=True)
  # Source != first frame: frame 0 is driven by the source's own anchors (no motion yet), and
  # later frames by the source anchors plus the driving motion since frame 0.
  _, absolute = run(source, driving)
  _, relative = run(source, driving, relative=True)
  kp_s = relative["source_anchors"]["value"][0]
  np.testing.assert_allclose(relative["driving_anchors"]["value"][0], kp_s, atol=1e-5)
  motion = absolute["driving_anchors"]["value"] - absolute["driving_anchors"]["value"][:1]
  np.testing.assert_allclose(relative["driving_anchors"]["value"], kp_s + motion, atol=1e-5)
  # Source == first frame: relative (with adapt_scale, then 1) gives the absolute result.
  plain = animate_lib.animate(loaded, driving[0], driving)
  scaled = animate_lib.animate(loaded, driving[0], driving, relative=True, adapt_scale=True)
  assert np.abs(plain.astype(int) - scaled.astype(int)).max() <= 1


def test_animate_file_count_size_fps_and_formats(loaded, media, tmp_path, monkeypatch):
  _, paths, driving, _ = media
  encodes = _count_calls(monkeypatch, "_encode_source")
  animator = loaded
  out = tmp_path / "out" / "a.mp4"  # the folder is created
  assert animate_lib.animate_file(animator, paths["source"], paths["driving"], out) == 10
  video = video_io.read_video(out)
  assert video.shape == (10, 32, 32, 3)
  assert video_io.video_fps(out) == pytest.approx(24.0)
  assert len(encodes) == 1
  # A PNG-frame folder states no frame rate (30 fps); a GIF keeps its own (10 fps); grayscale
  # 16-bit and RGBA sources are converted.
  for source, driving_path, count, fps in ((paths["gray16"], paths["frames"], 5, 30.0),
                                           (paths["rgba"], paths["gif"], 6, 10.0)):
    out = tmp_path / f"{driving_path.name}.mp4"
    animate_lib.animate_file(animator, source, driving_path, out, progress=False)
    assert video_io.read_video(out).shape == (count, 32, 32, 3)
    assert video_io.video_fps(out) == pytest.approx(fps)
  assert _files(tmp_path) == ["clip.gif.mp4", "frames.mp4", "out"]


def test_visualize_writes_six_panels(loaded, media, tmp_path):
  _, paths, driving, _ = media
  animator = loaded
  out = tmp_path / "vis.mp4"
  animate_lib.animate_file(animator, paths["source"], paths["driving"], out,
                           visualize_panels=True, progress=False)
  video = video_io.read_video(out)
  assert len(loaded.panel_names) == 6
  assert video.shape == (10, 32 + 2 * PAD, 6 * 32 + 7 * PAD, 3)
  # Panel order: the second panel is the driving frame (resized and padded), up to h264 loss.
  panel = video[:, PAD:PAD + 32, 2 * PAD + 32:2 * PAD + 64].astype(int)
  expected = np.stack([video_io.resize_and_pad(f, 32) for f in driving]).astype(int)
  assert np.abs(panel - expected).mean() < 8


def test_failure_mid_video_leaves_no_output(loaded, tmp_path):
  frames = smooth_frames(9, 32, 32)
  write_pngs(tmp_path / "clip", frames)
  (tmp_path / "clip" / "0000006.png").write_bytes(b"broken")  # after the first chunk is written
  _save_png(tmp_path / "source.png", frames[0])
  out = tmp_path / "out" / "x.mp4"
  with pytest.raises(ValueError, match="0000006.png: not a readable"):
    animate_lib.animate_file(loaded, tmp_path / "source.png", tmp_path / "clip", out, progress=False)
  assert _files(tmp_path / "out") == []  # neither the video nor its temporary file


def test_pairs_csv_writes_one_video_per_row(loaded, media, tmp_path):
  root, paths, _, _ = media
  csv_path = tmp_path / "pairs.csv"
  shutil.copy(paths["source"], tmp_path / "near.png")
  # A path relative to the CSV's folder, an absolute one, a frame folder and a blank line.
  csv_path.write_text(f"source,driving\nnear.png,{paths['driving']}\n\n"
                      f"{paths['gray16']},{paths['frames']}\n")
  written = animate_lib.animate_pairs(loaded, csv_path, tmp_path / "videos", progress=False)
  assert _files(tmp_path / "videos") == ["gray16__frames.mp4", "near__dance.mp4"]
  assert [p.name for p in written] == ["near__dance.mp4", "gray16__frames.mp4"]
  assert video_io.read_video(written[0]).shape == (10, 32, 32, 3)
  assert video_io.read_video(written[1]).shape == (5, 32, 32, 3)


def test_read_pairs_errors_name_the_csv_line(media, tmp_path):
  _, paths, _, _ = media
  csv_path = tmp_path / "p.csv"
  for text, where in (("src,drv\na.png,b.mp4\n", "p.csv:1:"),
                      (f"source,driving\n{paths['source']},{paths['driving']}\n"
                       f"{paths['source']},missing.mp4\n", "p.csv:3:"),
                      (f"source,driving\n{paths['source']}\n", "p.csv:2:"),
                      (f"source,driving\n{paths['source']},{paths['driving']}\n"
                       f"{paths['source']},{paths['driving']}\n", "repeats line 2"),
                      ("source,driving\n", "no pairs")):
    csv_path.write_text(text)
    with pytest.raises(ValueError, match=where):
      animate_lib.read_pairs(csv_path)


def test_load_inference_from_workdir_step_dir_and_ema(workdir, tmp_path):
  method, networks, params, config, step = checkpointing.load_inference(workdir, use_ema=False)
  assert method is method_lib.get("internet") and step == 3 and set(params) == {"g"}
  assert config.model.num_anchors == 4 and networks.generator.resolution == 32
  leaves = jax.tree.leaves(params)
  # A step directory copied elsewhere restores the same parameters.
  copied = tmp_path / "elsewhere" / "3"
  shutil.copytree(workdir / "checkpoints" / "3", copied)
  _, _, step_params, _, _ = checkpointing.load_inference(copied, use_ema=False)
  for a, b in zip(leaves, jax.tree.leaves(step_params)):
    np.testing.assert_array_equal(a, b)
  # The EMA by default when the run kept one (use_ema=None), as evaluation uses.
  _, _, ema, _, _ = checkpointing.load_inference(workdir)
  for a, b in zip(leaves, jax.tree.leaves(ema)):
    np.testing.assert_allclose(np.asarray(b) - np.asarray(a), 0.01, atol=1e-6)


# ---------------------------------------------------------------------------------------------
# The command line


def _command(*args):
  return [sys.executable, "-m", "internet_jax.animate", *map(str, args)]


def _env():
  return dict(os.environ, PYTHONPATH=REPO, TF_CPP_MIN_LOG_LEVEL="2")


def test_cli_writes_driving_count_resolution_and_fps(workdir, media, tmp_path):
  _, paths, _, _ = media
  out = tmp_path / "cli.mp4"
  result = subprocess.run(
      _command(f"--checkpoint={workdir / 'checkpoints' / '3'}", f"--source={paths['source']}",
               f"--driving={paths['driving']}", f"--output={out}", "--relative", "--adapt_scale",
               f"--batch_size={BATCH}"),
      cwd=REPO, env=_env(), capture_output=True, text=True, timeout=300)
  assert result.returncode == 0, result.stderr[-2000:]
  assert f"wrote {out}: 10 frames" in result.stdout
  assert video_io.read_video(out).shape == (10, 32, 32, 3)
  assert video_io.video_fps(out) == pytest.approx(24.0)
  assert _files(tmp_path) == ["cli.mp4"]


def test_cli_bad_input_one_line_error_naming_the_file_and_no_output(workdir, media, tmp_path):
  _, paths, _, _ = media
  bad = tmp_path / "bad"
  bad.mkdir()
  (bad / "garbage.png").write_bytes(b"not an image")
  (bad / "corrupt.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42" + os.urandom(2000))
  (bad / "no_frames").mkdir()
  (bad / "no_frames" / "notes.txt").write_text("no frames here")
  import av  # a container with a video stream and no frames
  with av.open(str(bad / "empty.mp4"), "w") as container:
    stream = container.add_stream("libx264", rate=24)
    stream.width, stream.height, stream.pix_fmt = 32, 32, "yuv420p"
    container.start_encoding()
  (bad / "a_file").write_text("")
  incompatible = tmp_path / "incompatible"
  shutil.copytree(workdir, incompatible)
  config_file = incompatible / "checkpoints" / "3" / "config" / "metadata"
  saved = json.loads(config_file.read_text())
  saved["model"]["num_anchors"] = 5  # the parameters were saved for 4 anchors
  config_file.write_text(json.dumps(saved))
  csv_path = bad / "pairs.csv"
  csv_path.write_text(f"source,driving\n{paths['source']},{paths['driving']}\n"
                      f"{paths['source']},{bad / 'gone.mp4'}\n")

  out = tmp_path / "out"
  good = dict(workdir=workdir, source=paths["source"], driving=paths["driving"],
              output=out / "o.mp4")
  cases = {  # name: (flag overrides, what the message must name)
      "unreadable image": (dict(source=bad / "garbage.png"), bad / "garbage.png"),
      "corrupt video": (dict(driving=bad / "corrupt.mp4"), bad / "corrupt.mp4"),
      "video without frames": (dict(driving=bad / "empty.mp4"), bad / "empty.mp4"),
      "frame folder without frames": (dict(driving=bad / "no_frames"), bad / "no_frames"),
      "missing workdir": (dict(workdir=tmp_path / "nowhere"), tmp_path / "nowhere"),
      "missing checkpoint": (dict(workdir=None, checkpoint=workdir / "checkpoints" / "99"),
                             workdir / "checkpoints" / "99"),
      "incompatible checkpoint": (dict(workdir=incompatible),
                                  incompatible / "checkpoints" / "3"),
      "unwritable output dir": (dict(output=bad / "a_file" / "o.mp4"), bad / "a_file"),
      "bad pairs row": (dict(source=None, driving=None, output=None, pairs=csv_path,
                             output_dir=out), f"{csv_path}:3:"),
  }
  # Concurrently: each run is mostly interpreter and JAX start-up.
  running = {}
  for name, (overrides, _) in cases.items():
    flags = {**good, **overrides}
    args = [f"--{flag}={value}" for flag, value in flags.items() if value is not None]
    running[name] = subprocess.Popen(_command(*args), cwd=REPO, env=_env(), text=True,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE)
  failures = []
  for name, process in running.items():
    stdout, stderr = process.communicate(timeout=300)
    lines = stderr.strip().splitlines()
    named = str(cases[name][1])
    if (process.returncode == 0 or len(lines) != 1 or not lines[0].startswith("error: ")
        or named not in lines[0]):
      failures.append(f"{name}: exit {process.returncode}, stderr {stderr[-600:]!r}")
  assert not failures, "\n".join(failures)
  # No output anywhere (no video, no temporary file); the pairs run stopped before writing
  # anything because rows are checked first.
  assert not out.exists()
  assert _files(bad) == ["a_file", "corrupt.mp4", "empty.mp4", "garbage.png", "no_frames",
                         "pairs.csv"]


@pytest.mark.slow
def test_trained_workdir_end_to_end(tmp_path, media):
  """A real (tiny) training run, then the command line on its workdir."""
  from internet_jax import train
  _, paths, _, _ = media
  config = synthetic.get_config("tiny")
  config.data.manual_dir = str(tmp_path / "synthetic")
  config.data.data_dir = str(tmp_path / "tfds")
  train.train_and_evaluate(config, str(tmp_path / "run"))
  out = tmp_path / "trained.mp4"
  result = subprocess.run(
      _command(f"--workdir={tmp_path / 'run'}", f"--source={paths['source']}",
               f"--driving={paths['driving']}", f"--output={out}", "--visualize"),
      cwd=REPO, env=_env(), capture_output=True, text=True, timeout=300)
  assert result.returncode == 0, result.stderr[-2000:]
  assert video_io.read_video(out).shape == (10, 32 + 2 * PAD, 6 * 32 + 7 * PAD, 3)
