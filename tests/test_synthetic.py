"""Tests of the synthetic human-motion dataset (input_pipeline/synthetic.py) and visualize.py.

The key property: the stored ground truth is consistent with the rendered frames under the
project's own sampler, `geometry.warp` with `geometry.pixel_to_normalized_flow`.
"""

import json
from pathlib import Path
import subprocess
import sys

import cv2
import jax.numpy as jnp
import numpy as np
import pytest

from input_pipeline import synthetic
from input_pipeline import video_io
from internet_jax import geometry
from internet_jax import visualize

REPO = Path(__file__).resolve().parents[1]
NUM_PARTS = len(synthetic.PART_NAMES)


def psnr(a, b):
  return float(10.0 * np.log10(1.0 / max(np.mean((a - b) ** 2), 1e-12)))


def warp_frames(images, coords_px):
  """Samples float images (B, H, W, C) at pixel positions (B, H, W, 2) with geometry.warp."""
  height, width = images.shape[1:3]
  grid = np.asarray(geometry.coordinate_grid(height, width))
  pixel_grid = np.stack(np.meshgrid(np.arange(width), np.arange(height)), -1).astype(np.float32)
  coords = grid + geometry.pixel_to_normalized_flow(coords_px - pixel_grid, height, width)
  return np.asarray(geometry.warp(jnp.asarray(images), jnp.asarray(coords)))


def pixel_grid(height, width):
  return np.stack(np.meshgrid(np.arange(width), np.arange(height)), -1).astype(np.float32)


def interior(labels):
  """True where the 3x3 neighbourhood has one label (not at a part edge)."""
  padded = np.pad(labels, 1, mode="edge")
  height, width = labels.shape
  same = np.ones(labels.shape, bool)
  for dy in range(3):
    for dx in range(3):
      same &= padded[dy:dy + height, dx:dx + width] == labels
  return same


def covered_by_other_part(labels_from, labels_to, coords):
  """Interior figure pixels whose point, at `coords` in the other frame, shows another label.

  A pixel at least one pixel inside its part stays inside that (affinely moving) part's shape, so
  a different label there means something is in front of it: a real occlusion, not an edge effect.
  """
  height, width = labels_from.shape
  r = np.round(coords).astype(int)
  inside = (r[..., 0] >= 0) & (r[..., 0] < width) & (r[..., 1] >= 0) & (r[..., 1] < height)
  target = labels_to[np.clip(r[..., 1], 0, height - 1), np.clip(r[..., 0], 0, width - 1)]
  return (labels_from > 0) & interior(labels_from) & inside & (target != labels_from)


# ---------------------------------------------------------------------------------------------
# The key property at 256^2.


@pytest.fixture(scope="module")
def videos_256():
  # Seed 6 wears plaid and checks (the hardest textures to resample); seed 2 has the lowest
  # all-pixel PSNR of seeds 0-11.
  return [synthetic.render_video(seed, 5, 256, "mixed") for seed in (6, 2)]


def test_forward_and_backward_flow_reproduce_the_other_frame(videos_256):
  for video in videos_256:
    frames = video["frames"].astype(np.float32) / 255.0
    grid = pixel_grid(256, 256)
    figure = video["part_labels"] > 0
    # Forward: frame t+1 sampled at p + flow_forward[t](p) is frame t.
    warped = warp_frames(frames[1:], grid + video["flow_forward"])
    valid = video["valid_forward"]
    assert psnr(warped[valid], frames[:-1][valid]) >= 30.0
    on_figure = valid & figure[:-1]
    assert psnr(warped[on_figure], frames[:-1][on_figure]) >= 30.0
    # Most of the figure is valid: the check is not passed by masking the figure away.
    assert on_figure.sum() / figure[:-1].sum() > 0.8
    # Backward: frame t sampled at p + flow_backward[t](p) is frame t+1.
    warped = warp_frames(frames[:-1], grid + video["flow_backward"])
    valid = video["valid_backward"]
    assert psnr(warped[valid], frames[1:][valid]) >= 30.0
    on_figure = valid & figure[1:]
    assert psnr(warped[on_figure], frames[1:][on_figure]) >= 30.0


def test_source_coords_reproduce_each_frame_from_frame_0(videos_256):
  for video in videos_256:
    frames = video["frames"].astype(np.float32) / 255.0
    num_frames = frames.shape[0]
    warped = warp_frames(np.repeat(frames[:1], num_frames, 0), video["source_coords"])
    visible = video["source_visible"]
    assert psnr(warped[visible], frames[visible]) >= 30.0
    on_figure = visible & (video["part_labels"] > 0)
    assert psnr(warped[on_figure], frames[on_figure]) >= 30.0
    np.testing.assert_allclose(video["source_coords"][0], pixel_grid(256, 256), atol=1e-3)
    assert visible[0].all()


def test_the_flow_is_what_makes_the_check_pass(videos_256):
  # Negative control: on moving figure pixels, no flow (or a flow off by one pixel) is clearly
  # worse, so the PSNR check above does measure the flow.
  video = videos_256[0]
  frames = video["frames"].astype(np.float32) / 255.0
  grid = pixel_grid(256, 256)
  flow = video["flow_forward"]
  moving = (video["valid_forward"] & (video["part_labels"][:-1] > 0)
            & (np.linalg.norm(flow, axis=-1) > 1.0))
  assert moving.sum() > 1000
  exact = psnr(warp_frames(frames[1:], grid + flow)[moving], frames[:-1][moving])
  still = psnr(warp_frames(frames[1:], grid + 0.0 * flow)[moving], frames[:-1][moving])
  shifted = psnr(warp_frames(frames[1:], grid + flow + np.float32([1.0, 0.0]))[moving],
                 frames[:-1][moving])
  assert exact > still + 6.0
  assert exact > shifted + 6.0


# ---------------------------------------------------------------------------------------------
# Validity, occlusions, static background, joints (small resolutions).


@pytest.fixture(scope="module")
def videos_64():
  return [synthetic.render_video(seed, 48, 64) for seed in range(3)]


def test_validity_masks_and_real_occlusions(videos_64):
  occluded_forward = 0
  occluded_source = 0
  for video in videos_64:
    labels = video["part_labels"]
    num_frames, height, width = labels.shape
    grid = pixel_grid(height, width)
    assert video["valid_forward"].mean() > 0.5
    assert video["valid_backward"].mean() > 0.5
    assert video["source_visible"].mean() > 0.5
    for t in range(num_frames - 1):
      target = grid + video["flow_forward"][t]
      occluded = covered_by_other_part(labels[t], labels[t + 1], target)
      assert not (occluded & video["valid_forward"][t]).any()
      occluded_forward += occluded.sum()
      # Valid pixels show the same part at the (rounded) target.
      r = np.round(target).astype(int)
      valid = video["valid_forward"][t]
      assert (labels[t + 1][r[..., 1][valid], r[..., 0][valid]] == labels[t][valid]).all()
    for t in range(num_frames):
      occluded = covered_by_other_part(labels[t], labels[0], video["source_coords"][t])
      assert not (occluded & video["source_visible"][t]).any()
      occluded_source += occluded.sum()
  # Limbs do pass in front of / behind other parts.
  assert occluded_forward > 0
  assert occluded_source > 50


def test_background_is_static(videos_64):
  for video in videos_64:
    labels = video["part_labels"]
    frames = video["frames"]
    both = (labels[:-1] == 0) & (labels[1:] == 0)
    assert (video["flow_forward"][both] == 0).all()
    assert video["valid_forward"][both].all()
    assert (video["flow_backward"][both] == 0).all()
    clean = both & ~video["mixed"][:-1] & ~video["mixed"][1:]
    assert (frames[:-1][clean] == frames[1:][clean]).all()


def test_joints_move_with_the_flow(videos_64):
  head = synthetic.JOINT_NAMES.index("head")
  head_label = synthetic.PART_NAMES.index("head") + 1
  checked = 0
  for video in videos_64:
    joints = video["joints"]
    assert (joints >= 0).all() and (joints <= 63).all()
    for t in range(joints.shape[0] - 1):
      x, y = np.round(joints[t, head]).astype(int)
      if video["part_labels"][t, y, x] != head_label or not video["valid_forward"][t, y, x]:
        continue
      predicted = joints[t, head] + video["flow_forward"][t, y, x]
      assert np.abs(predicted - joints[t + 1, head]).max() < 0.25
      checked += 1
  assert checked > 50


def test_arrays_have_the_documented_shapes_and_ranges():
  video = synthetic.render_video(3, 4, 48, "textured")
  t, h, w = 4, 48, 48
  expected = {
      "frames": ((t, h, w, 3), np.uint8),
      "joints": ((t, len(synthetic.JOINT_NAMES), 2), np.float32),
      "part_labels": ((t, h, w), np.uint8), "uv": ((t, h, w, 2), np.float16),
      "flow_forward": ((t - 1, h, w, 2), np.float32),
      "flow_backward": ((t - 1, h, w, 2), np.float32),
      "valid_forward": ((t - 1, h, w), np.bool_), "valid_backward": ((t - 1, h, w), np.bool_),
      "source_coords": ((t, h, w, 2), np.float32), "source_visible": ((t, h, w), np.bool_),
      "mixed": ((t, h, w), np.bool_), "part_transforms": ((t, NUM_PARTS, 2, 3), np.float32),
  }
  for key, (shape, dtype) in expected.items():
    assert video[key].shape == shape, key
    assert video[key].dtype == dtype, key
  assert set(synthetic.GT_KEYS) <= set(video)
  assert tuple(video["part_names"]) == synthetic.PART_NAMES
  assert tuple(video["joint_names"]) == synthetic.JOINT_NAMES
  assert video["part_labels"].max() <= NUM_PARTS and video["part_labels"].max() > 0
  uv = video["uv"].astype(np.float32)
  assert uv.min() >= 0.0 and uv.max() <= 1.0
  assert (uv[video["part_labels"] == 0] == 0).all()
  assert str(video["background"]) == "textured"


def test_rendering_is_deterministic_per_seed():
  a = synthetic.render_video(11, 3, 32, "mixed")
  b = synthetic.render_video(11, 3, 32, "mixed")
  for key in a:
    np.testing.assert_array_equal(a[key], b[key], err_msg=key)
  c = synthetic.render_video(12, 3, 32, "mixed")
  assert not np.array_equal(a["frames"], c["frames"])
  assert not np.array_equal(a["flow_forward"], c["flow_forward"])


def test_texture_families_across_seeds():
  seen = set()
  for seed in range(24):
    seen.update(str(f) for f in synthetic.render_video(seed, 2, 16)["part_textures"])
  patterned = {"stripes", "checks", "dots", "noise", "plaid"}
  assert len(seen & patterned) >= 4, seen
  # Each family is a genuinely different pattern: distinct, and non-constant where patterned.
  u, v = [c.ravel().astype(np.float32) for c in np.meshgrid(np.linspace(-0.2, 0.2, 40),
                                                             np.linspace(-0.2, 0.2, 40))]
  images = {}
  for family in synthetic.TEXTURE_FAMILIES:
    colour = synthetic._make_texture(np.random.default_rng(0), family)(u, v, np.float32(0.005))
    images[family] = np.asarray(colour)
    assert images[family].shape == (u.size, 3)
    assert (images[family].std(axis=0).max() > 0.05) == (family != "plain"), family
  names = list(images)
  for i, a in enumerate(names):
    for b in names[i + 1:]:
      assert not np.allclose(images[a], images[b]), (a, b)


def test_render_video_rejects_bad_arguments():
  with pytest.raises(ValueError, match="--resolution"):
    synthetic.render_video(0, 3, 0)
  with pytest.raises(ValueError, match="--num_frames"):
    synthetic.render_video(0, 1, 32)
  with pytest.raises(ValueError, match="--background"):
    synthetic.render_video(0, 3, 32, "beach")
  with pytest.raises(ValueError, match="--seed"):
    synthetic.render_video(-1, 3, 32)


# ---------------------------------------------------------------------------------------------
# The dataset on disk and the command line.


def run_cli(*args):
  return subprocess.run([sys.executable, "-m", "input_pipeline.synthetic", *args], cwd=REPO,
                        capture_output=True, text=True, timeout=120)


def test_cli_writes_the_layout(tmp_path):
  out = tmp_path / "data"
  result = run_cli(f"--output_dir={out}", "--num_videos=2", "--num_test_videos=1",
                   "--num_frames=3", "--resolution=32", "--seed=4", "--preview")
  assert result.returncode == 0, result.stderr
  assert sorted(p.name for p in tmp_path.iterdir()) == ["data"]  # no temporary left behind
  assert sorted(p.name for p in out.iterdir()) == ["dataset_info.json", "preview.png", "test",
                                                   "test_cross", "train"]
  assert sorted(p.name for p in (out / "train").iterdir()) == [
      "synth_00000", "synth_00000.npz", "synth_00001", "synth_00001.npz"]
  assert sorted(p.name for p in (out / "test").iterdir()) == [
      "synth_test_00000", "synth_test_00000.npz"]
  folder = out / "train" / "synth_00001"
  assert sorted(p.name for p in folder.iterdir()) == ["0000000.png", "0000001.png", "0000002.png"]
  frame = cv2.imread(str(folder / "0000002.png"))
  assert frame.shape == (32, 32, 3)

  # The files are exactly what render_video gives for that video's seed (PNG is lossless), and
  # the project's video reader sees them as videos (the .npz files are ignored).
  expected = synthetic.render_video(synthetic.video_seed(4, "train", 1), 3, 32, "studio")
  np.testing.assert_array_equal(video_io.read_video(folder), expected["frames"])
  assert [p.name for p in video_io.list_videos(out / "train")] == ["synth_00000", "synth_00001"]
  with np.load(out / "train" / "synth_00001.npz", allow_pickle=False) as gt:
    assert sorted(gt.files) == sorted(synthetic.GT_KEYS)
    for key in synthetic.GT_KEYS:
      np.testing.assert_array_equal(gt[key], expected[key], err_msg=key)
  info = json.loads((out / "dataset_info.json").read_text())
  assert info["videos"] == {"train": ["synth_00000", "synth_00001"], "test": ["synth_test_00000"]}
  preview = cv2.imread(str(out / "preview.png"))
  assert preview is not None and preview.shape[0] > 4 * 32 and preview.shape[1] > 2 * 32
  # 32 px frames are enlarged 4x to 128 px; 2 columns (flows 0 and 1), 2 px pads. Rows: the
  # training video's frames, labels, flow, validity, then the first test video and its partner.
  assert preview.shape[:2] == (6 * 128 + 7 * 2, 2 * 128 + 3 * 2)


@pytest.mark.parametrize("case", ["resolution", "existing_file", "under_a_file"])
def test_cli_rejects_bad_arguments_and_writes_nothing(tmp_path, case):
  (tmp_path / "notes.txt").write_text("keep")
  args = {"resolution": [f"--output_dir={tmp_path / 'data'}", "--resolution=0"],
          "existing_file": [f"--output_dir={tmp_path / 'notes.txt'}"],
          "under_a_file": [f"--output_dir={tmp_path / 'notes.txt' / 'data'}"]}[case]
  result = run_cli(*args, "--num_videos=1", "--num_frames=2")
  assert result.returncode != 0
  lines = [line for line in result.stderr.splitlines() if line.strip()]
  assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
  assert ("--resolution" if case == "resolution" else "--output_dir") in lines[0]
  assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]
  assert (tmp_path / "notes.txt").read_text() == "keep"


def test_write_dataset_is_all_or_nothing(tmp_path, monkeypatch):
  real_render = synthetic.render_video
  calls = []

  def failing_render(*args, **kwargs):
    calls.append(args)
    if len(calls) == 2:
      raise RuntimeError("disk on fire")
    return real_render(*args, **kwargs)

  monkeypatch.setattr(synthetic, "render_video", failing_render)
  with pytest.raises(RuntimeError, match="disk on fire"):
    synthetic.write_dataset(tmp_path / "data", num_videos=3, num_frames=2, resolution=16, seed=0)
  assert list(tmp_path.iterdir()) == []


def test_videos_do_not_depend_on_the_number_of_videos(tmp_path):
  synthetic.write_dataset(tmp_path / "a", num_videos=1, num_frames=2, resolution=16, seed=9)
  synthetic.write_dataset(tmp_path / "b", num_videos=3, num_test_videos=2, num_frames=2,
                          resolution=16, seed=9)
  for name in ("train/synth_00000", "test/synth_test_00000"):
    with np.load(tmp_path / "a" / f"{name}.npz") as a, np.load(tmp_path / "b" / f"{name}.npz") as b:
      np.testing.assert_array_equal(a["flow_forward"], b["flow_forward"])
      np.testing.assert_array_equal(a["part_labels"], b["part_labels"])
  # Default test split: max(1, round(0.1 N)).
  assert len(list((tmp_path / "a" / "test").glob("*.npz"))) == 1


def test_mp4_format(tmp_path):
  synthetic.write_dataset(tmp_path / "data", num_videos=1, num_test_videos=0, num_frames=3,
                          resolution=32, seed=1, video_format="mp4", background="textured")
  frames = video_io.read_video(tmp_path / "data" / "train" / "synth_00000.mp4")
  assert frames.shape == (3, 32, 32, 3)
  expected = synthetic.render_video(synthetic.video_seed(1, "train", 0), 3, 32, "textured")
  assert psnr(frames / 255.0, expected["frames"] / 255.0) > 25.0  # lossy h264
  with pytest.raises(ValueError, match="even"):
    synthetic.write_dataset(tmp_path / "odd", num_videos=1, num_frames=2, resolution=33, seed=0,
                            video_format="mp4")
  assert not (tmp_path / "odd").exists()


# ---------------------------------------------------------------------------------------------
# Cross-identity partners: the same motion with another appearance.


def mean_abs_difference(a, b, mask):
  """Mean absolute difference of uint8 frames over `mask` pixels, in grey levels (0-255)."""
  return float(np.abs(a.astype(np.float32) - b.astype(np.float32))[mask].mean())


# Geometry-only ground truth: the partner's must be the video's, array for array.
SHARED_KEYS = ("joints", "part_labels", "uv", "flow_forward", "flow_backward", "valid_forward",
               "valid_backward", "source_coords", "source_visible", "mixed", "part_transforms",
               "joint_names", "part_names", "garment", "seed", "fps")


@pytest.mark.parametrize("background", ["studio", "textured", "mixed"])
def test_partner_has_the_same_motion_and_another_appearance(background):
  torso = synthetic.PART_NAMES.index("torso")
  hips = synthetic.PART_NAMES.index("skirt_or_hips")
  for seed in range(4):
    video, partner = synthetic.render_pair(seed, 6, 64, background)
    # The pair's video is the ordinary video of that seed.
    alone = synthetic.render_video(seed, 6, 64, background)
    for key in alone:
      np.testing.assert_array_equal(video[key], alone[key], err_msg=key)
    for key in SHARED_KEYS:
      np.testing.assert_array_equal(partner[key], alone[key], err_msg=key)
    assert sorted(partner) == sorted(alone)
    # Another person: other garments (texture family) on the same silhouettes, and the frames
    # differ clearly on the figure and on the background. 20 grey levels is far above what two
    # renderings of one appearance could differ by (identical here) and above the difference of
    # two near-white studio backdrops (checked below), which the shared studio distribution
    # draws for a video and its partner alike.
    assert partner["part_textures"][torso] != video["part_textures"][torso]
    assert partner["part_textures"][hips] != video["part_textures"][hips]
    labels = video["part_labels"]
    solid = ~video["mixed"]
    figure = (labels > 0) & solid
    backdrop = (labels == 0) & solid
    assert figure.sum() > 1000 and backdrop.sum() > 1000
    assert mean_abs_difference(video["frames"], partner["frames"], figure) > 20.0
    assert mean_abs_difference(video["frames"], partner["frames"], backdrop) > 20.0
    if background == "mixed":
      assert str(partner["background"]) != str(video["background"])
    else:
      assert str(partner["background"]) == str(video["background"]) == background


def test_partners_always_wear_other_garments():
  # Over many seeds (an independent draw would repeat a family with probability 11/36 per seed).
  torso = synthetic.PART_NAMES.index("torso")
  hips = synthetic.PART_NAMES.index("skirt_or_hips")
  for seed in range(24):
    video, partner = synthetic.render_pair(seed, 2, 16)
    assert partner["part_textures"][torso] != video["part_textures"][torso], seed
    assert partner["part_textures"][hips] != video["part_textures"][hips], seed


def test_two_studio_backdrops_differ_little():
  # Negative control for the 20-level threshold above: two near-white studio backdrops are nearly
  # the same, so a partner drawn from the shared studio distribution without the minimum
  # difference rule (a redraw while too close) would fail it. Ordinary videos are no longer all
  # near-white (pastel with probability 1/2), so the control picks the first two near-white ones.
  near_white = []
  for seed in range(12):
    video = synthetic.render_video(seed, 2, 64)
    if studio_backdrop_kind(video["frames"][0, 0, 0]) == "near-white":
      near_white.append(video)
  assert len(near_white) >= 2
  a, b = near_white[:2]
  both = (a["part_labels"] == 0) & (b["part_labels"] == 0) & ~a["mixed"] & ~b["mixed"]
  assert mean_abs_difference(a["frames"], b["frames"], both) < 10.0


# Studio backdrops: one distribution for every video (training, test, partners), near-white or,
# with probability 1/2, pastel (module docstring). The top-left pixel is backdrop in every frame
# (the figure is fitted inside a margin of 3% + 1 px) and shows the top of the vertical gradient.
# Near-white there is a grey level in [0.95, 0.99] plus a per-channel tint in [-0.015, 0.015]:
# channel spread (max - min) <= 0.03 * 255 + 1 (uint8 rounding) < 9 levels, every channel
# >= 0.935 * 255 - 0.5 > 237. Pastel is HSV saturation s in [0.15, 0.4] at value v in [0.8, 0.95]:
# spread = v s >= 0.12 * 255 - 1 > 29 levels, brightest channel = v in [203, 243] levels (light,
# a plausible studio wall, not white). Nothing falls between the two classes.
NEAR_WHITE_MAX_SPREAD = 9
PASTEL_MIN_SPREAD = 29


def studio_backdrop_kind(pixel):
  """"near-white", "pastel" or None (neither) for an RGB uint8 pixel of a studio backdrop's top."""
  pixel = np.asarray(pixel).astype(int)
  spread = pixel.max() - pixel.min()
  if spread <= NEAR_WHITE_MAX_SPREAD and pixel.min() >= 237:
    return "near-white"
  if spread >= PASTEL_MIN_SPREAD and 203 <= pixel.max() <= 243:
    return "pastel"
  return None


def corner_kinds(split_dir):
  """The studio_backdrop_kind of every video of a written split (frame 0's top-left pixel)."""
  kinds = []
  for path in sorted(split_dir.glob("*.npz")):
    with np.load(path) as gt:
      assert (gt["part_labels"][:, :2, :2] == 0).all() and not gt["mixed"][:, :2, :2].any()
    kinds.append(studio_backdrop_kind(video_io.read_video(path.with_suffix(""))[0, 0, 0]))
  return kinds


def test_studio_backdrops_are_one_distribution_for_every_split(tmp_path):
  # The bug this guards against: training backdrops always near-white, partners always pastel,
  # so the cross-identity test measured an unseen kind of background. Training must show both
  # kinds, about half each (24 videos: at least 6 of each, a 1-in-300 tail of Binomial(24, 1/2),
  # while a pastel probability of 0 or 1 gives none), and the partners nothing training lacks.
  synthetic.write_dataset(tmp_path / "data", num_videos=24, num_test_videos=16, num_frames=2,
                          resolution=16, seed=0, background="studio")
  kinds = {split: corner_kinds(tmp_path / "data" / split)
           for split in ("train", "test", synthetic.CROSS_SPLIT)}
  for split, split_kinds in kinds.items():
    assert None not in split_kinds, (split, split_kinds)
  assert kinds["train"].count("near-white") >= 6 and kinds["train"].count("pastel") >= 6, kinds
  assert set(kinds["test"]) == {"near-white", "pastel"}, kinds
  # Partners of pastel videos may be near-white: not a pastel-only partner distribution.
  assert set(kinds[synthetic.CROSS_SPLIT]) == {"near-white", "pastel"}, kinds


def test_studio_partner_backdrops_differ_by_the_minimum(monkeypatch):
  # Every backdrop drawn is recorded: the video's first, then the partner's draws (the last one
  # is kept: the first that differs enough). The frames show exactly these backdrops.
  drawn = []
  real_backdrop = synthetic._backdrop

  def recording_backdrop(*args, **kwargs):
    drawn.append(real_backdrop(*args, **kwargs))
    return drawn[-1]

  monkeypatch.setattr(synthetic, "_backdrop", recording_backdrop)
  redraws, partner_kinds = [], set()
  for seed in range(24):
    drawn.clear()
    video, partner = synthetic.render_pair(seed, 2, 16, "studio")
    backdrop, partner_backdrop = drawn[0], drawn[-1]
    for frames, image in ((video["frames"], backdrop), (partner["frames"], partner_backdrop)):
      clean = (video["part_labels"][0] == 0) & ~video["mixed"][0]
      np.testing.assert_array_equal(frames[0][clean], np.round(image[clean] * 255.0))
    assert np.abs(partner_backdrop - backdrop).mean() >= 0.1, seed
    redraws.append(len(drawn) - 2)
    partner_kinds.add(studio_backdrop_kind(np.round(partner_backdrop[0, 0] * 255.0)))
  # The rule does work: two near-white draws are too close, so some partners needed a redraw
  # (a near-white video's first partner draw fails with probability >= 1/2); others did not.
  assert max(redraws) >= 1 and min(redraws) == 0, redraws
  assert partner_kinds == {"near-white", "pastel"}


def test_partner_is_the_exact_cross_identity_target():
  # Source = the partner's frame 0, driving = the video: the shared source_coords carry the
  # source to every partner frame (the geometry is the partner's too), not to the driving frames.
  video, partner = synthetic.render_pair(6, 5, 256, "mixed")
  target = partner["frames"].astype(np.float32) / 255.0
  driving = video["frames"].astype(np.float32) / 255.0
  warped = warp_frames(np.repeat(target[:1], 5, 0), partner["source_coords"])
  on_figure = partner["source_visible"] & (partner["part_labels"] > 0)
  assert on_figure[1:].sum() > 5000
  exact = psnr(warped[on_figure], target[on_figure])
  assert exact >= 30.0
  assert psnr(warped[on_figure], driving[on_figure]) < exact - 10.0


def test_partners_are_deterministic():
  a = synthetic.render_pair(11, 3, 32, "mixed")[1]
  b = synthetic.render_pair(11, 3, 32, "mixed")[1]
  for key in a:
    np.testing.assert_array_equal(a[key], b[key], err_msg=key)
  c = synthetic.render_pair(12, 3, 32, "mixed")[1]
  assert not np.array_equal(a["frames"], c["frames"])


def test_write_dataset_writes_the_partners_of_the_test_videos(tmp_path):
  out = tmp_path / "data"
  synthetic.write_dataset(out, num_videos=2, num_test_videos=2, num_frames=3, resolution=32,
                          seed=5, background="mixed")
  assert synthetic.CROSS_SPLIT == "test_cross"
  test_names = ["synth_test_00000", "synth_test_00001"]
  # Exactly the test videos have partners, under the same names and in the same format.
  assert sorted(p.name for p in (out / "test_cross").iterdir()) == sorted(
      p.name for p in (out / "test").iterdir()) == sorted(test_names + [
          f"{n}.npz" for n in test_names])
  for index, name in enumerate(test_names):
    path = synthetic.cross_identity_video(out, name)
    assert path == out / "test_cross" / name
    frames = video_io.read_video(path)
    assert frames.shape == (3, 32, 32, 3)
    expected = synthetic.render_pair(synthetic.video_seed(5, "test", index), 3, 32, "mixed")[1]
    np.testing.assert_array_equal(frames, expected["frames"])  # PNG is lossless
    assert not np.array_equal(frames, video_io.read_video(out / "test" / name))
    with np.load(out / "test_cross" / f"{name}.npz") as gt, \
        np.load(out / "test" / f"{name}.npz") as test_gt:
      assert sorted(gt.files) == sorted(synthetic.GT_KEYS)
      for key in synthetic.GT_KEYS:
        np.testing.assert_array_equal(gt[key], expected[key], err_msg=key)
      np.testing.assert_array_equal(gt["joints"], test_gt["joints"])
      np.testing.assert_array_equal(gt["part_labels"], test_gt["part_labels"])
      np.testing.assert_array_equal(gt["source_coords"], test_gt["source_coords"])
  # The training split has no partners.
  assert synthetic.cross_identity_video(out, "synth_00000") is None
  assert synthetic.cross_identity_video(out, "synth_test_00002") is None
  info = json.loads((out / "dataset_info.json").read_text())
  assert info["cross_identity"] is True
  assert sorted(info["cross_video_backgrounds"]) == test_names


def test_cross_identity_off_writes_no_partners(tmp_path):
  synthetic.write_dataset(tmp_path / "on", num_videos=1, num_test_videos=1, num_frames=2,
                          resolution=16, seed=2)
  synthetic.write_dataset(tmp_path / "off", num_videos=1, num_test_videos=1, num_frames=2,
                          resolution=16, seed=2, cross_identity=False)
  off = tmp_path / "off"
  assert sorted(p.name for p in off.iterdir()) == ["dataset_info.json", "test", "train"]
  assert synthetic.cross_identity_video(off, "synth_test_00000") is None
  assert json.loads((off / "dataset_info.json").read_text())["cross_identity"] is False
  # Writing partners does not change the test videos.
  for name in ("test/synth_test_00000", "train/synth_00000"):
    np.testing.assert_array_equal(video_io.read_video(tmp_path / "on" / name),
                                  video_io.read_video(off / name))
  with pytest.raises(ValueError, match="--cross_identity"):
    synthetic.write_dataset(tmp_path / "bad", num_videos=1, num_frames=2, resolution=16, seed=0,
                            cross_identity="yes")
  assert not (tmp_path / "bad").exists()


def test_cli_nocross_identity(tmp_path):
  out = tmp_path / "data"
  result = run_cli(f"--output_dir={out}", "--num_videos=1", "--num_test_videos=1",
                   "--num_frames=2", "--resolution=16", "--nocross_identity")
  assert result.returncode == 0, result.stderr
  assert sorted(p.name for p in out.iterdir()) == ["dataset_info.json", "test", "train"]


def test_mp4_partners(tmp_path):
  synthetic.write_dataset(tmp_path / "data", num_videos=1, num_test_videos=1, num_frames=3,
                          resolution=32, seed=1, video_format="mp4")
  path = synthetic.cross_identity_video(tmp_path / "data", "synth_test_00000")
  assert path == tmp_path / "data" / "test_cross" / "synth_test_00000.mp4"
  assert (tmp_path / "data" / "test_cross" / "synth_test_00000.npz").is_file()
  frames = video_io.read_video(path)
  expected = synthetic.render_pair(synthetic.video_seed(1, "test", 0), 3, 32, "studio")[1]
  assert psnr(frames / 255.0, expected["frames"] / 255.0) > 25.0  # lossy h264


# ---------------------------------------------------------------------------------------------
# visualize.py


def test_flow_to_rgb_colour_wheel():
  flow = np.zeros((3, 4, 2), np.float32)
  flow[0, 0] = (1.0, 0.0)  # right: red
  flow[0, 1] = (0.0, 1.0)  # down (image y): the wheel's blue-green side
  flow[0, 2] = (-1.0, 0.0)  # left: cyan
  flow[0, 3] = (2.0, 0.0)  # beyond max_magnitude: darkened
  rgb = visualize.flow_to_rgb(flow, max_magnitude=1.0)
  assert rgb.shape == (3, 4, 3) and rgb.dtype == np.uint8
  assert (rgb[1:] == 255).all()  # no motion is white
  np.testing.assert_array_equal(rgb[0, 0], (255, 0, 0))
  assert rgb[0, 2, 0] < 10 and rgb[0, 2, 1] > 200 and rgb[0, 2, 2] > 200
  assert (rgb[0, 3] < rgb[0, 0].max()).any() and rgb[0, 3].max() <= 0.75 * 255 + 1
  assert not np.array_equal(rgb[0, 1], rgb[0, 0])
  # Default scale: the largest magnitude is fully saturated.
  np.testing.assert_array_equal(visualize.flow_to_rgb(flow * 5.0)[0, 3], (255, 0, 0))


def test_labels_tiles_and_png(tmp_path):
  labels = np.arange(12, dtype=np.uint8).reshape(3, 4)
  rgb = visualize.labels_to_rgb(labels, 11)
  assert rgb.shape == (3, 4, 3)
  assert len({tuple(c) for c in rgb.reshape(-1, 3)}) == 12
  sheet = visualize.tile_images([[rgb, np.ones((5, 2), bool)], [np.zeros((2, 2, 3), np.float32)]],
                                pad=1, pad_value=7)
  # Row 1: height 5, widths 4 + 2 + 3 pads; row 2: height 2.
  assert sheet.shape == (1 + 5 + 1 + 2 + 1, 1 + 4 + 1 + 2 + 1, 3)
  assert (sheet[0] == 7).all() and (sheet[1:6, 6:8] == 255).all()
  visualize.save_png(tmp_path / "sheet.png", sheet)
  np.testing.assert_array_equal(cv2.imread(str(tmp_path / "sheet.png"))[..., ::-1], sheet)
  with pytest.raises(OSError):
    visualize.save_png(tmp_path / "missing" / "x.png", sheet)
