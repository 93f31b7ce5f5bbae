"""Tests of the single-person mode of the synthetic renderer (input_pipeline/synthetic.py,
person_seed) and of its data.synthetic.person_seed field (input_pipeline/datasets.py)."""

import hashlib
import json
from pathlib import Path
import subprocess
import sys

import ml_collections
import numpy as np
import pytest

from configs import default
from input_pipeline import datasets
from input_pipeline import synthetic

REPO = Path(__file__).resolve().parents[1]
# (child joint, parent joint, the part whose local frame holds both): the child's position in that
# part's local frame is a figure dimension (torso length, arm and leg bone lengths, head offset),
# whatever the pose, turn, foreshortening and camera.
_J = {name: index for index, name in enumerate(synthetic.JOINT_NAMES)}
_P = {name: index for index, name in enumerate(synthetic.PART_NAMES)}
BONES = [("neck", "pelvis", "torso"), ("head", "neck", "head")] + [
    bone for side in ("left", "right") for bone in (
        (f"elbow_{side}", f"shoulder_{side}", f"upper_arm_{side}"),
        (f"wrist_{side}", f"elbow_{side}", f"lower_arm_{side}"),
        (f"knee_{side}", f"hip_{side}", f"upper_leg_{side}"),
        (f"ankle_{side}", f"knee_{side}", f"lower_leg_{side}"))]


def local_bone_lengths(video):
  """(T, bones): |A^-1 (child - parent)| with A the linear part of the part's transform."""
  transforms = video["part_transforms"].astype(np.float64)
  joints = video["joints"].astype(np.float64)
  lengths = []
  for child, parent, part in BONES:
    linear = transforms[:, _P[part], :, :2]
    offset = joints[:, _J[child]] - joints[:, _J[parent]]
    lengths.append(np.linalg.norm(np.linalg.solve(linear, offset[..., None])[..., 0], axis=-1))
  return np.stack(lengths, -1)


def camera_scale(video):
  """The person's pixels per figure unit: the torso map is camera . squash_x . rotation, whose
  second row has the camera's scale as its norm (the turn squashes x only)."""
  return np.linalg.norm(video["part_transforms"][:, _P["torso"], 1, :2].astype(np.float64), axis=-1)


def digest(video):
  h = hashlib.sha256()
  for key in sorted(video):
    h.update(key.encode())
    h.update(np.ascontiguousarray(video[key]).tobytes())
  return h.hexdigest()[:16]


@pytest.fixture(scope="module")
def person_videos():
  return [synthetic.render_video(seed, 6, 48, "mixed", person_seed=11) for seed in (3, 8)]


def test_one_person_in_every_video(person_videos):
  a, b = person_videos
  for key in ("part_textures", "garment", "background"):
    np.testing.assert_array_equal(a[key], b[key], err_msg=key)
  # The backdrop: equal wherever both frames show it.
  both = (a["part_labels"] == 0) & (b["part_labels"] == 0) & ~a["mixed"] & ~b["mixed"]
  assert both.mean() > 0.3
  np.testing.assert_array_equal(a["frames"][both], b["frames"][both])
  # The figure's dimensions and the camera are the person's: equal in every frame of both.
  lengths = np.concatenate([local_bone_lengths(a), local_bone_lengths(b)])
  np.testing.assert_allclose(lengths, np.broadcast_to(lengths[0], lengths.shape), rtol=1e-4)
  scales = np.concatenate([camera_scale(a), camera_scale(b)])
  np.testing.assert_allclose(scales, scales[0], rtol=1e-4)
  # ... while the motion is each video's own.
  assert np.abs(a["joints"] - b["joints"]).max() > 2.0
  assert int(a["seed"]) == 3 and int(b["seed"]) == 8


def test_another_person_seed_is_another_person(person_videos):
  other = synthetic.render_video(3, 6, 48, "mixed", person_seed=12)
  assert not np.allclose(local_bone_lengths(other)[0], local_bone_lengths(person_videos[0])[0],
                         rtol=1e-3)
  # The same motion (video seed 3), drawn on another figure by another camera: the joints differ
  # only by the figure and the camera, the frames differ.
  assert np.abs(other["frames"].astype(int) - person_videos[0]["frames"]).mean() > 5


def test_without_person_seed_each_video_is_its_own_person():
  a, b = (synthetic.render_video(seed, 3, 32, "studio") for seed in (3, 8))
  assert not np.allclose(local_bone_lengths(a)[0], local_bone_lengths(b)[0], rtol=1e-3)
  background = (a["part_labels"] == 0) & (b["part_labels"] == 0)
  assert np.abs(a["frames"][background].astype(int) - b["frames"][background]).max() > 3


def test_without_person_seed_the_renderer_is_unchanged():
  # Digests of every array render_video / render_pair returned before person_seed existed
  # (computed with `digest` at commit ad4448c, where render_video had no person_seed argument);
  # -1 is the same as none.
  assert digest(synthetic.render_video(7, 3, 24, "studio")) == "cdcedb8ed7255787"
  assert digest(synthetic.render_video(7, 3, 24, "mixed", person_seed=None)) == "6cb2bb7137ef7bb6"
  video, partner = synthetic.render_pair(7, 3, 24, "mixed", person_seed=-1)
  assert (digest(video), digest(partner)) == ("6cb2bb7137ef7bb6", "3a9ff80d7d161487")


def test_partner_in_person_mode_is_another_look_at_the_test_motion(person_videos):
  video, partner = synthetic.render_pair(3, 6, 48, "mixed", person_seed=11)
  assert digest(video) == digest(person_videos[0])
  np.testing.assert_array_equal(partner["joints"], video["joints"])
  np.testing.assert_array_equal(partner["part_labels"], video["part_labels"])
  assert str(partner["background"]) != str(video["background"])  # mixed: the other kind
  assert np.abs(partner["frames"].astype(int) - video["frames"]).mean() > 5


@pytest.mark.parametrize("person_seed", [-2, 1.5, "3", True])
def test_render_rejects_a_bad_person_seed(person_seed):
  with pytest.raises(ValueError, match=r"^--person_seed: must be an integer >= 0") as error:
    synthetic.render_video(0, 2, 16, person_seed=person_seed)
  assert "\n" not in str(error.value)


def test_cli_person_seed(tmp_path):
  out = tmp_path / "data"
  result = subprocess.run(
      [sys.executable, "-m", "input_pipeline.synthetic", f"--output_dir={out}", "--num_videos=2",
       "--num_test_videos=1", "--num_frames=3", "--resolution=24", "--seed=4", "--person_seed=9"],
      cwd=REPO, capture_output=True, text=True, timeout=120)
  assert result.returncode == 0, result.stderr
  info = json.loads((out / "dataset_info.json").read_text())
  assert info["person_seed"] == 9
  for split, name, index in (("train", "synth_00001", 1), ("test", "synth_test_00000", 0)):
    expected = synthetic.render_video(synthetic.video_seed(4, split, index), 3, 24,
                                      person_seed=9)
    with np.load(out / split / f"{name}.npz", allow_pickle=False) as gt:
      for key in ("joints", "part_labels", "part_textures"):
        np.testing.assert_array_equal(gt[key], expected[key], err_msg=f"{name} {key}")


def test_write_dataset_records_person_seed_off(tmp_path):
  synthetic.write_dataset(tmp_path / "data", num_videos=1, num_test_videos=0, num_frames=2,
                          resolution=16, seed=0, cross_identity=False)
  assert json.loads((tmp_path / "data" / "dataset_info.json").read_text())["person_seed"] is None


def data_config(**synthetic_fields):
  data = default.get_config().data
  data.name = "synthetic"
  data.resolution = 64
  data.synthetic.update(dict(num_videos=40, num_test_videos=4, num_frames=48), **synthetic_fields)
  return data


def test_dataset_key_changes_only_in_person_mode():
  version = synthetic.RENDERER_VERSION
  assert default.get_config().data.synthetic.person_seed == -1
  assert datasets.synthetic_key(data_config()) == \
      f"r64_f48_train40_test4_studio_seed0_v{version}"
  # A config from before the field existed (e.g. a checkpoint's) names the same folder.
  old = data_config()
  old.synthetic = ml_collections.ConfigDict(
      {k: v for k, v in old.synthetic.items() if k != "person_seed"})
  assert datasets.synthetic_key(old) == datasets.synthetic_key(data_config())
  assert datasets.synthetic_key(data_config(person_seed=0)) == \
      f"r64_f48_train40_test4_studio_seed0_person0_v{version}"
  assert datasets._synthetic_args(data_config())["person_seed"] is None
  assert datasets._synthetic_args(data_config(person_seed=5))["person_seed"] == 5
  assert "--person_seed" not in datasets.prepare_command(data_config())
  assert "--person_seed=5" in datasets.prepare_command(data_config(person_seed=5))


@pytest.mark.parametrize("value", [-2, 2.5, "1"])
def test_dataset_rejects_a_bad_person_seed(value):
  config = data_config()
  config.synthetic = ml_collections.ConfigDict(dict(config.synthetic.to_dict(), person_seed=value))
  with pytest.raises(ValueError, match=r"^data\.synthetic\.person_seed: must be an integer"):
    datasets.synthetic_key(config)


def test_rendered_folder_check_reads_person_seed(tmp_path):
  folder = tmp_path / datasets.synthetic_key(data_config())
  folder.mkdir()
  info = {name: datasets._synthetic_settings(data_config())[name]
          for name, _ in datasets.SYNTHETIC_SETTINGS}
  info.pop("person_seed")  # written before the field existed
  info["generator"] = "input_pipeline.synthetic"
  (folder / "dataset_info.json").write_text(json.dumps(info))
  datasets._check_rendered(folder, data_config())  # off: the same settings
  with pytest.raises(datasets.DataError, match="data.synthetic.person_seed: rendered"):
    datasets._check_rendered(folder, data_config(person_seed=3))


def test_config_check_accepts_person_seed_off_and_on():
  from configs import synthetic as synthetic_configs  # pylint: disable=g-import-not-at-top
  from internet_jax import train  # pylint: disable=g-import-not-at-top
  for value in (-1, 0, 7):
    config = synthetic_configs.get_config("tiny")
    config.data.synthetic.person_seed = value
    train.validate_config(config)
  config.data.synthetic.person_seed = -2
  with pytest.raises(ValueError, match=r"config\.data\.synthetic\.person_seed: must be an "
                                       r"integer >= -1") as info:
    train.validate_config(config)
  assert "\n" not in str(info.value)


def test_the_printed_prepare_command_prepares_a_person_dataset(tmp_path):
  data = data_config(person_seed=5, num_videos=1, num_test_videos=1, num_frames=4)
  data.resolution = 16
  data.min_driving_offset = 0
  data.manual_dir, data.data_dir = str(tmp_path / "raw"), str(tmp_path / "tfds")
  command = datasets.prepare_command(data).split()
  assert command[0] == "python" and "--person_seed=5" in command
  result = subprocess.run([sys.executable] + command[1:], cwd=REPO, capture_output=True,
                          text=True, timeout=300)
  assert result.returncode == 0, result.stderr
  info = json.loads((datasets.synthetic_dir(data) / "dataset_info.json").read_text())
  assert info["person_seed"] == 5
