"""`python -m internet_jax.evaluate`: folders mode end to end, self-imitation on a tiny trained
workdir, and bad input (one line, non-zero exit, no output files)."""

import json
import os
import shlex
import shutil
import subprocess
import sys
import types
from pathlib import Path

import av
import cv2
import numpy as np
import pytest
import safetensors.numpy

from configs import synthetic as synthetic_config
from input_pipeline import datasets, synthetic, video_io
from internet_jax import checkpointing, evaluate, train
from internet_jax.metrics import image
from internet_jax.metrics import slomo
from numpy_layers import slomo_state

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TABLE_COLUMNS = ("MS-SSIM ↑", "FID ↓", "LPIPS ↓", "SSIM ↑", "PSNR ↑", "L1 ↓", "Interp-PSNR ↑",
                 "Act-Recog-L1 ↓", "Interp-PSNR (flow) ↑", "E_temp ↓", "FVD ↓")
MEAN_KEYS = {"ms_ssim", "fid", "lpips", "ssim", "psnr", "l1", "interp_psnr", "act_recog_l1",
             "interp_psnr_flow", "e_temp", "fvd", "epe", "temporal_error_gt", "interp_psnr_self",
             "interp_psnr_flow_self", "e_temp_valid"} | set(evaluate.BASELINE_KEYS) | set(
                 evaluate.ROBUST_KEYS)
NETWORK_KEYS = ("fid", "lpips", "act_recog_l1", "fvd", "interp_psnr", "interp_psnr_self")


def _write_pngs(folder, frames):
  folder.mkdir(parents=True)
  for t, frame in enumerate(frames):
    cv2.imwrite(str(folder / f"{t:07d}.png"), frame[..., ::-1])


def _blur(frames):
  return np.stack([cv2.GaussianBlur(f, (3, 3), 0) for f in frames])


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
  """reference/: two synthetic videos (PNG frames + <name>.npz, and an mp4); generated/: blurred."""
  root = tmp_path_factory.mktemp("folders")
  for index, name in enumerate(("clip_a", "clip_b")):
    video = synthetic.render_video(20 + index, 5, 64)
    if index == 0:
      _write_pngs(root / "reference" / name, video["frames"])
      synthetic.write_ground_truth(root / "reference" / f"{name}.npz", video)
    else:
      video_io.write_video(root / "reference" / f"{name}.mp4", video["frames"])
    _write_pngs(root / "generated" / name, _blur(video["frames"]))
  return root


def _run(*args, timeout=300, cwd=REPO, module="internet_jax.evaluate"):
  env = dict(os.environ, PYTHONPATH=REPO, TF_CPP_MIN_LOG_LEVEL="2")
  return subprocess.run([sys.executable, "-m", module, *args], cwd=cwd, env=env,
                        capture_output=True, text=True, timeout=timeout)


def _check_reports(output_dir):
  with open(output_dir / "metrics.json", encoding="utf-8") as f:
    results = json.load(f, parse_constant=lambda c: pytest.fail(f"non-strict JSON constant {c}"))
  markdown = (output_dir / "metrics.md").read_text(encoding="utf-8")
  assert set(results["mean"]) == MEAN_KEYS
  header = next(line for line in markdown.splitlines() if "MS-SSIM" in line)
  assert [cell.strip() for cell in header.strip("|").split("|")][1:] == list(TABLE_COLUMNS)
  assert "| Metric | Per-frame |" in markdown and "Temporal" in markdown
  return results, markdown


def test_folders_mode_scores_every_video_and_reports_what_is_not_computed(folders, tmp_path):
  output_dir = tmp_path / "out"
  evaluate.evaluate_folders(folders / "generated", folders / "reference", output_dir=output_dir)
  assert sorted(os.listdir(output_dir)) == ["metrics.json", "metrics.md"]
  results, markdown = _check_reports(output_dir)
  assert results["mode"] == "folders" and results["num_videos"] == 2
  assert results["num_frames"] == 10
  assert set(results["videos"]) == {"clip_a", "clip_b"}

  # Per-video numbers are the metric modules' on the frames as read.
  fake = video_io.read_video(folders / "generated" / "clip_b")
  real = video_io.read_video(folders / "reference" / "clip_b.mp4")
  video = results["videos"]["clip_b"]
  assert video["ssim"] == pytest.approx(image.ssim(fake, real).mean(), abs=1e-9)
  assert video["psnr"] == pytest.approx(image.psnr(fake, real).mean(), abs=1e-9)
  assert video["l1"] == pytest.approx(image.l1(fake, real).mean(), abs=1e-12)
  assert 0 < video["e_temp"] < 0.2 and video["interp_psnr_flow"] > 15
  mean = results["mean"]
  assert mean["ssim"] == pytest.approx(np.mean([v["ssim"] for v in results["videos"].values()]))

  # Absent weights, small frames and missing ground truth are reported, never dropped.
  for key in NETWORK_KEYS:
    assert mean[key].startswith("not computed: no weights given (--"), mean[key]
  assert mean["ms_ssim"].startswith("not computed: frames 64x64")
  assert mean["epe"].startswith("not computed") and "--workdir" in mean["epe"]
  # Ground truth only beside clip_a: its true temporal error is computed, clip_b's is not.
  assert results["videos"]["clip_a"]["temporal_error_gt"] < 0.05
  assert results["videos"]["clip_b"]["temporal_error_gt"].startswith("not computed")
  assert mean["temporal_error_gt"] == results["videos"]["clip_a"]["temporal_error_gt"]
  assert any(note.startswith("temporal_error_gt: mean over 1 of 2") for note in results["notes"])
  assert set(results["not_computed"]) == set(NETWORK_KEYS) | {
      "ms_ssim", "epe", "ms_ssim_copy_source", "lpips_copy_source", "epe_zero_motion",
      "epe_figure", "epe_figure_zero_motion", "epe_arms", "epe_arms_zero_motion", "epe_legs",
      "epe_legs_zero_motion", "epe_trunk", "epe_trunk_zero_motion"} | set(evaluate.ROBUST_KEYS) | set(
          evaluate.ANCHOR_KEYS) | set(evaluate.CONFIDENCE_KEYS) | set(evaluate.COMPOSITION_KEYS)
  assert mean["psnr_robust"].startswith("not computed: folder mode: no poses")
  # Copy-source (frame 0 for every frame) beside every per-frame score; figure region where the
  # ground truth is (clip_a only).
  copy = np.broadcast_to(real[0], real.shape)
  assert video["l1_copy_source"] == pytest.approx(image.l1(copy, real).mean(), abs=1e-12)
  assert video["ssim_copy_source"] == pytest.approx(image.ssim(copy, real).mean(), abs=1e-9)
  assert results["videos"]["clip_a"]["l1_figure"] > results["videos"]["clip_a"]["l1"]
  assert video["l1_figure"].startswith("not computed: no synthetic ground truth")
  assert "| L1 ↓ | whole frame |" in markdown and "## Per video: model vs baselines" in markdown
  assert "not computed" in markdown and "no weights given (--lpips_weights)" in markdown


def test_identical_folders_give_ideal_values_and_strict_json(folders, tmp_path):
  results = evaluate.evaluate_folders(folders / "reference", folders / "reference",
                                      output_dir=tmp_path / "same", max_videos=1)
  _check_reports(tmp_path / "same")
  video = results["videos"]["clip_a"]
  assert video["ssim"] == pytest.approx(1.0) and video["l1"] == 0.0
  assert video["psnr"] == np.inf
  saved = json.loads((tmp_path / "same" / "metrics.json").read_text())
  assert saved["videos"]["clip_a"]["psnr"] == "inf" and saved["mean"]["psnr"] == "inf"
  assert saved["videos"]["clip_a"]["e_temp"] < 0.01


def test_cli_folders_mode_learned_interp_psnr_and_unavailable_weights(folders, tmp_path):
  output_dir = tmp_path / "cli"
  weights = tmp_path / "SuperSloMo.safetensors"
  safetensors.numpy.save_file(slomo_state(), str(weights))
  result = _run(f"--generated={folders / 'generated'}", f"--reference={folders / 'reference'}",
                f"--output_dir={output_dir}", f"--lpips_weights={tmp_path / 'absent.npz'}",
                f"--slomo_weights={weights}", "--max_videos=1", "--flow_preset=fast")
  assert result.returncode == 0, result.stderr[-2000:]
  results, _ = _check_reports(output_dir)
  assert results["num_videos"] == 1
  # Weights named but unusable (missing file, or the module not there yet): still "not computed".
  assert results["mean"]["lpips"].startswith("not computed: "), results["mean"]["lpips"]
  # Super SloMo weights given: the paper's Interp-PSNR is the module's on the frames as read.
  want = slomo.create(str(weights)).interp_psnr(
      video_io.read_video(folders / "generated" / "clip_a"),
      video_io.read_video(folders / "reference" / "clip_a"))
  video = results["videos"]["clip_a"]
  assert video["interp_psnr"] == pytest.approx(want["interp_psnr"], abs=1e-6)
  assert video["interp_psnr_self"] == pytest.approx(want["interp_psnr_self"], abs=1e-6)
  # The progress bar over videos is drawn on a terminal only: no carriage returns in a log file.
  assert "evaluate:" not in result.stderr and "\r" not in result.stderr
  assert "ssim: " in result.stdout


def _fake_network_modules(monkeypatch, i3d_error=None):
  """Stand-ins for metrics/lpips.py, fid.py, i3d.py with their contract and simple numbers."""
  lpips = types.ModuleType("fake_lpips")
  lpips.create = lambda path: (lambda a, b: np.abs(a / 255.0 - b / 255.0).mean(axis=(1, 2, 3)))
  fid = types.ModuleType("fake_fid")
  fid.create = lambda path: types.SimpleNamespace(
      features=lambda frames: frames.reshape(len(frames), -1)[:, :8].astype(np.float64))
  fid.frechet_distance = lambda a, b: float(np.abs(a.mean(0) - b.mean(0)).sum()) + len(a)

  def embed(video):
    if i3d_error:
      raise ValueError(i3d_error)
    return video.mean(axis=(0, 1, 2)) / 255.0, video.std(axis=(0, 1, 2)) / 255.0

  i3d = types.ModuleType("fake_i3d")
  i3d.create = lambda path: types.SimpleNamespace(embed=embed)
  i3d.fvd = lambda real, fake: float(np.abs(real - fake).sum()) + 1000 * len(real)
  i3d.act_recog_l1 = lambda real, fake: float(np.abs(real - fake).sum())
  slomo = types.ModuleType("fake_slomo")
  slomo.create = lambda path: types.SimpleNamespace(interp_psnr=lambda fake, real: {
      "interp_psnr": float(len(fake)), "interp_psnr_self": -float(len(fake))})
  for name, module in (("lpips", lpips), ("fid", fid), ("i3d", i3d), ("slomo", slomo)):
    monkeypatch.setitem(sys.modules, f"internet_jax.metrics.{name}", module)


def test_network_metrics_follow_the_module_contract(folders, tmp_path, monkeypatch):
  _fake_network_modules(monkeypatch)
  options = evaluate.Options(lpips_weights="l.safetensors", inception_weights="i.safetensors",
                             i3d_weights="3.safetensors", slomo_weights="s.safetensors")
  results = evaluate.evaluate_folders(folders / "generated", folders / "reference",
                                      output_dir=tmp_path / "net", options=options)
  mean, videos = results["mean"], results["videos"]
  assert mean["lpips"] == pytest.approx(np.mean([v["l1"] for v in videos.values()]))
  assert mean["fid"] > 10  # the set-level stand-in adds the number of frames (10)
  assert mean["fvd"] > 2000  # ... and 1000 per video
  assert mean["act_recog_l1"] == pytest.approx(np.mean([v["act_recog_l1"] for v in videos.values()]))
  assert mean["interp_psnr"] == 5.0 and mean["interp_psnr_self"] == -5.0  # 5 frames per video
  assert not set(NETWORK_KEYS) & set(results["not_computed"])

  _fake_network_modules(monkeypatch, i3d_error="I3D: a video needs at least 9 frames, got 5")
  results = evaluate.evaluate_folders(folders / "generated", folders / "reference",
                                      output_dir=tmp_path / "short", options=options)
  assert results["mean"]["act_recog_l1"] == "not computed: I3D: a video needs at least 9 frames, got 5"
  assert results["mean"]["fvd"].startswith("not computed: no video could be embedded")


# ---------------------------------------------------------------------------------------------
# Self-imitation on a tiny trained workdir


@pytest.fixture(scope="module")
def trained_workdir(tmp_path_factory):
  """A tiny run trained in its own directory with relative data paths (as the quickstart's
  ./data/synthetic and ./data/tfds): evaluation runs from elsewhere."""
  root = tmp_path_factory.mktemp("trained")
  config = synthetic_config.get_config("tiny")
  config.data.manual_dir = os.path.join(".", "synthetic")
  config.data.data_dir = os.path.join(".", "tfds")
  config.sample_animation = False  # nothing evaluation needs: spare the compile time
  config.image_every_steps = 0
  workdir = str(root / "run")
  cwd = os.getcwd()
  os.chdir(root)
  try:
    train.train_and_evaluate(config, workdir)
  finally:
    os.chdir(cwd)
  return workdir


def test_workdir_mode_reconstructs_the_test_split(trained_workdir, tmp_path, monkeypatch):
  output_dir = tmp_path / "eval"
  results = evaluate.evaluate_workdir(trained_workdir, output_dir=output_dir, max_videos=1)
  _, markdown = _check_reports(output_dir)
  assert results["mode"] == "self_imitation" and results["step"] == 2
  assert results["num_videos"] == 1 and results["num_frames"] == 12
  video = next(iter(results["videos"].values()))
  # The synthetic test video's ground truth (in data.manual_dir/test) gives both GT metrics.
  assert 0.0 <= video["epe"] < 32.0
  assert 0.0 <= video["temporal_error_gt"] < 1.0
  assert 0.0 < video["l1"] < 1.0 and -1.0 < video["ssim"] <= 1.0
  # Zero motion on the same pixels as the model's EPE; the figure's share is the harder part
  # (the static background is exact for zero motion).
  assert 0.0 < video["epe_zero_motion"] < video["epe_figure_zero_motion"] < 32.0
  assert 0.0 <= video["epe_figure"] < 32.0
  assert 0.0 < video["l1_figure_copy_source"] < 1.0 and 0.0 < video["l1_figure"] < 1.0

  # The reconstruction is the method's renderer's (absolute motion, source = frame 0) with the
  # restored parameters, and the motion field comes with it.
  method, networks, params, config, step = checkpointing.load_inference(trained_workdir)
  renderer = method.renderer(networks, params, config, 4)
  assert step == 2 and config.data.resolution == 32
  source = datasets.get_video_source(config.data, "test")
  frames = np.stack([source.read_frame(0, t) for t in range(source.num_frames(0))])
  generated, motion_full = evaluate._animate(renderer, frames[0], frames, {})
  np.testing.assert_array_equal(generated, renderer.animate(frames[0], frames))
  assert motion_full.shape == (12, 32, 32, 2)
  assert video["l1"] == pytest.approx(image.l1(generated, frames).mean(), abs=1e-9)
  # The composition weights of the same renderer (K + 1 channels) give anchor_motions_used.
  _, composition = evaluate._animate(renderer, frames[0], frames, {}, keys=("composition",))
  assert composition.shape[0] == 12 and composition.shape[-1] == config.model.num_anchors + 1
  assert video["anchor_motions_used"] == evaluate.anchor_motions_used(composition)
  assert 0.0 <= video["anchor_motions_used"] <= 1.0
  copy = np.broadcast_to(frames[0], frames.shape)  # copy-source: the source for every frame
  assert video["l1_copy_source"] == pytest.approx(image.l1(copy, frames).mean(), abs=1e-9)

  # Cross-identity: the test video's partner (test_cross/<name>: same motion, another
  # appearance) drives the video's frame 0; the target is the video itself.
  cross = results["cross_identity"]
  assert cross["mode"] == "cross_identity" and cross["num_videos"] == 1
  assert set(cross["mean"]) == MEAN_KEYS and "## Cross-identity" in markdown
  name = source.video_name(0)
  partner = video_io.read_video(os.path.join(config.data.manual_dir, "test_cross", name), 32)
  assert np.abs(partner.astype(int) - frames).mean() > 5  # another appearance indeed
  crossed, _ = evaluate._animate(renderer, frames[0], partner, {})
  cross_video = cross["videos"][name]
  assert cross_video["l1"] == pytest.approx(image.l1(crossed, frames).mean(), abs=1e-9)
  assert cross_video["l1_copy_source"] == video["l1_copy_source"]  # the same source and target
  assert cross_video["epe_zero_motion"] == video["epe_zero_motion"]  # ... and the same motion
  assert 0.0 <= cross_video["epe_figure"] < 32.0
  # D2G-Net's Robust-PSNR / Robust-SSIM: the synthetic data has joints in both splits; the 10 of
  # the 12 test frames farthest from the training poses, the same frames in both blocks.
  assert isinstance(results["mean"]["psnr_robust"], float)
  assert isinstance(cross["mean"]["ssim_robust_copy_source"], float)
  assert len(results["mean"]["robust_frames"]) == 10
  assert cross["mean"]["robust_frames"] == results["mean"]["robust_frames"]
  assert "## Robust frames" in markdown and "### Robust frames" in markdown

  # Without partners the block says so.
  monkeypatch.setattr(evaluate, "cross_identity_frames", lambda *args: None)
  results = evaluate.evaluate_workdir(trained_workdir, output_dir=tmp_path / "plain", max_videos=1)
  assert results["cross_identity"].startswith("not computed: no cross-identity partners")
  assert results["cross_identity"] in (tmp_path / "plain" / "metrics.md").read_text()


def test_checkpoint_names_its_data_by_absolute_paths(trained_workdir, tmp_path):
  """Trained with ./synthetic and ./tfds, evaluated from another directory: the checkpoint's
  config names the data that training used, and nothing is rendered or prepared elsewhere."""
  from internet_jax import checkpointing  # pylint: disable=g-import-not-at-top
  root = os.path.dirname(trained_workdir)
  saved = checkpointing.restore_config(trained_workdir)
  assert saved.data.data_dir == os.path.join(root, "tfds")
  key = f"r32_f12_train5_test1_studio_seed0_v{synthetic.RENDERER_VERSION}"
  assert saved.data.manual_dir == os.path.join(root, "synthetic", key)
  assert saved.loss.vgg_weights == ""  # empty stays empty (a random VGG-19 stood in)
  elsewhere = tmp_path / "elsewhere"
  elsewhere.mkdir()
  result = _run(f"--workdir={trained_workdir}", f"--output_dir={tmp_path / 'eval'}",
                "--max_videos=1", cwd=elsewhere)
  assert result.returncode == 0, result.stderr[-3000:]
  assert list(elsewhere.iterdir()) == []
  with open(tmp_path / "eval" / "metrics.json", encoding="utf-8") as f:
    results = json.load(f)
  assert results["test_split"].startswith(os.path.join(root, "tfds") + os.sep)
  assert results["cross_identity"]["partners"] == os.path.join(root, "synthetic", key,
                                                                "test_cross")


def test_missing_checkpoint_data_stops_with_the_command_that_recreates_it(trained_workdir,
                                                                          tmp_path):
  """Evaluation never renders or prepares: a missing folder is named with the command that
  recreates it, and that command recreates exactly the data training used."""
  root = os.path.dirname(trained_workdir)
  aside = tmp_path / "aside"
  aside.mkdir()
  elsewhere = tmp_path / "elsewhere"
  elsewhere.mkdir()
  rendered_parent, tfds_dir = os.path.join(root, "synthetic"), os.path.join(root, "tfds")
  prepared_before = sorted(str(p.relative_to(tfds_dir)) for p in Path(tfds_dir).rglob("*"))
  shutil.move(rendered_parent, aside / "synthetic")
  shutil.move(tfds_dir, aside / "tfds")
  try:
    result = _run(f"--workdir={trained_workdir}", f"--output_dir={tmp_path / 'eval'}",
                  cwd=elsewhere)
    assert result.returncode == 1, result.stderr[-3000:]
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith(f"error: {os.path.join(rendered_parent, '')}"), last
    assert "missing" in last and "recreate it with: python -m input_pipeline.prepare " in last
    assert not os.path.exists(rendered_parent) and not os.path.exists(tfds_dir)
    assert list(elsewhere.iterdir()) == [] and not (tmp_path / "eval").exists()

    command = shlex.split(last.split("recreate it with: ", 1)[1])
    assert command[:3] == ["python", "-m", "input_pipeline.prepare"]
    made = _run(*command[3:], cwd=elsewhere, module="input_pipeline.prepare")
    assert made.returncode == 0, made.stderr[-3000:]
    assert list(elsewhere.iterdir()) == []
    (info,) = (aside / "synthetic").glob("*/dataset_info.json")  # the same videos, same place
    again = Path(rendered_parent) / info.relative_to(aside / "synthetic")
    assert json.loads(again.read_text()) == json.loads(info.read_text())
    prepared_again = sorted(str(p.relative_to(tfds_dir)) for p in Path(tfds_dir).rglob("*"))
    infos = [p for p in prepared_before if p.endswith("dataset_info.json")]
    assert len(infos) == 1 and [p for p in prepared_again if p.endswith("dataset_info.json")] == infos

    # Rendered videos present, prepared dataset missing: named too, and not prepared here.
    shutil.rmtree(tfds_dir)
    result = _run(f"--workdir={trained_workdir}", f"--output_dir={tmp_path / 'eval'}",
                  cwd=elsewhere)
    assert result.returncode == 1, result.stderr[-3000:]
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith(f"error: {os.path.join(tfds_dir, '')}"), last
    assert "recreate it with: python -m input_pipeline.prepare " in last
    assert not os.path.exists(tfds_dir)
  finally:
    for name, target in (("synthetic", rendered_parent), ("tfds", tfds_dir)):
      if (aside / name).exists():
        shutil.rmtree(target, ignore_errors=True)
        shutil.move(aside / name, target)


def test_a_checkpoint_with_relative_data_paths_is_not_read_against_another_directory(
    trained_workdir, tmp_path, monkeypatch):
  """A checkpoint saved before its paths were made absolute: from another directory its data is
  missing (never rendered there), and the message says the paths are relative."""
  workdir = tmp_path / "old"
  shutil.copytree(trained_workdir, workdir)
  config_file = workdir / "checkpoints" / "2" / "config" / "metadata"
  saved = json.loads(config_file.read_text())
  saved["data"].update(manual_dir="./synthetic", data_dir="./tfds")
  config_file.write_text(json.dumps(saved))
  monkeypatch.chdir(tmp_path)
  with pytest.raises(datasets.MissingDataError) as info:
    evaluate.evaluate_workdir(str(workdir), output_dir=tmp_path / "eval")
  message = str(info.value)
  assert message.startswith(str(tmp_path / "synthetic") + os.sep) and "\n" not in message
  assert "data.manual_dir=./synthetic, data.data_dir=./tfds, relative to the directory" in message
  assert sorted(p.name for p in tmp_path.iterdir()) == ["old"]


def _zero_frame_mp4(path):
  container = av.open(str(path), "w")
  stream = container.add_stream("libx264", rate=30)
  stream.width, stream.height, stream.pix_fmt = 32, 32, "yuv420p"
  container.start_encoding()
  container.close()


def _bad_case(kind, folders, trained_workdir, tmp_path):
  """(arguments, text the one-line error must contain) for each kind of bad input."""
  generated = tmp_path / "generated"
  shutil.copytree(folders / "generated", generated)
  reference = [f"--reference={folders / 'reference'}"]
  if kind == "unreadable":
    (generated / "clip_a" / "0000002.png").write_bytes(b"\x89PNG broken")
    return [f"--generated={generated}", *reference], str(generated / "clip_a" / "0000002.png")
  if kind == "zero_frames":
    shutil.rmtree(generated / "clip_b")
    _zero_frame_mp4(generated / "clip_b.mp4")
    return [f"--generated={generated}", *reference], str(generated / "clip_b.mp4")
  if kind == "frame_count":
    os.remove(generated / "clip_a" / "0000004.png")
    return [f"--generated={generated}", *reference], "4 frames"
  if kind == "names":
    shutil.move(generated / "clip_a", generated / "clip_x")
    return [f"--generated={generated}", *reference], "missing from"
  if kind == "missing_checkpoint":
    (tmp_path / "empty").mkdir()
    return [f"--workdir={tmp_path / 'empty'}"], f"{tmp_path / 'empty' / 'checkpoints'}: no checkpoints"
  if kind == "incompatible_checkpoint":
    workdir = tmp_path / "changed"
    shutil.copytree(trained_workdir, workdir)
    config_file = workdir / "checkpoints" / "2" / "config" / "metadata"
    saved = json.loads(config_file.read_text())
    saved["model"]["generator"]["block_expansion"] *= 2  # other parameter shapes
    config_file.write_text(json.dumps(saved))
    return [f"--workdir={workdir}"], f"{workdir / 'checkpoints' / '2'}: the parameters do not match"
  raise AssertionError(kind)


@pytest.mark.parametrize("kind", ["unreadable", "zero_frames", "frame_count", "names",
                                  "missing_checkpoint", "incompatible_checkpoint"])
def test_bad_input_is_one_line_nonzero_exit_no_outputs(kind, folders, trained_workdir, tmp_path):
  args, expected = _bad_case(kind, folders, trained_workdir, tmp_path)
  output_dir = tmp_path / "out"
  result = _run(*args, f"--output_dir={output_dir}", "--flow_preset=ultrafast")
  assert result.returncode != 0
  last = result.stderr.strip().splitlines()[-1]
  assert last.startswith("error: ") and expected in last, result.stderr[-2000:]
  assert "Traceback" not in result.stderr
  assert not output_dir.exists()
  if kind == "names":
    assert "clip_a" in last and "not in" in last and "clip_x" in last


def test_headline_psnr_leaves_out_the_exactly_reproduced_source_frame():
  rng = np.random.default_rng(0)
  reference = rng.integers(0, 200, (4, 24, 24, 3), dtype=np.uint8)
  generated = reference.copy()
  generated[1:] += 10  # every frame but the source frame itself is off by 10 grey levels
  scorer = evaluate.Scorer(evaluate.Options())
  scorer.add("clip", generated, reference)
  results = scorer.results(mode="self_imitation", label="model")
  assert results["mean"]["psnr"] == np.inf
  expected = 20 * np.log10(255 / 10)  # MSE 100 on the other frames
  assert results["mean"]["psnr_copy_frames"] == pytest.approx(expected)
  headline = next(line for line in evaluate.format_markdown(results).splitlines()
                  if line.startswith("| model |"))
  assert f"| {expected:.2f}* |" in headline and "inf" not in headline
