"""Tests of D2G-Net's inputs (internet_jax/methods/d2g/inputs.py): training pairs, the pose
label, the unfolded texture and the median background."""

import json
import pickle

import cv2
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from input_pipeline import annotate, annotations, datasets, sources
from input_pipeline import synthetic
from input_pipeline.video_io import DataError
from internet_jax.methods.d2g import inputs
from video_fixtures import write_pngs

J, P = 15, 11


def d2g_config(resolution=32):
  config = ml_collections.ConfigDict()
  config.data = ml_collections.ConfigDict(dict(resolution=resolution))
  config.d2g = ml_collections.ConfigDict(dict(num_joints=J, num_parts=P))
  return config


@pytest.fixture(scope="module")
def person_source():
  videos = [synthetic.render_video(seed, 5, 32, person_seed=4) for seed in (1, 2)]
  keys = ("joints", "part_labels", "uv", "flow_forward", "flow_backward", "valid_backward")
  return sources.InMemoryVideoSource([v["frames"] for v in videos], ["a", "b"],
                                     [{k: v[k] for k in keys} for v in videos]), videos


# --- Pairs ----------------------------------------------------------------------------------------


def test_pair_example_matches_the_ground_truth_and_the_shapes(person_source):
  source, videos = person_source
  example_fn = pickle.loads(pickle.dumps(inputs.pair_example_fn(d2g_config())))
  shapes = inputs.pair_batch_shapes(d2g_config(), 3)
  drawn = set()
  for draw in range(12):
    rng = np.random.default_rng(draw)
    t = int(np.random.default_rng(draw).integers(1, 5))  # the example's one draw
    example = example_fn(source, 1, rng)
    drawn.add(t)
    assert sorted(example) == sorted(shapes)
    for key, value in example.items():
      assert value.shape == shapes[key].shape[1:] and value.dtype == shapes[key].dtype, key
    video = videos[1]
    np.testing.assert_array_equal(example["frames"], video["frames"][t - 1:t + 1])
    np.testing.assert_array_equal(example["joints"], video["joints"][t - 1:t + 1])
    np.testing.assert_array_equal(example["part_labels"], video["part_labels"][t - 1:t + 1])
    np.testing.assert_array_equal(example["uv"], video["uv"][t - 1:t + 1].astype(np.float32))
    # The pair (t - 1, t) is stored with frame t: entry t - 1 of the renderer's arrays.
    np.testing.assert_array_equal(example["flow_backward"], video["flow_backward"][t - 1])
    np.testing.assert_array_equal(example["flow_forward"], video["flow_forward"][t - 1])
    np.testing.assert_array_equal(example["valid_backward"], video["valid_backward"][t - 1])
    assert example["joints_valid"].all()
    np.testing.assert_array_equal(example["person_mask"], video["part_labels"][t - 1:t + 1] > 0)
  assert drawn == {1, 2, 3, 4}


def test_pair_flow_backward_brings_frame_t_minus_1_to_frame_t(person_source):
  source, _ = person_source
  example = inputs.pair_example_fn(d2g_config())(source, 0, np.random.default_rng(3))
  previous, current = example["frames"].astype(np.float32) / 255.0
  r = previous.shape[0]
  ys, xs = np.mgrid[0:r, 0:r]
  target = np.stack([xs, ys], -1) + example["flow_backward"]
  nearest = np.clip(np.rint(target).astype(int), 0, r - 1)
  warped = previous[nearest[..., 1], nearest[..., 0]]
  valid = example["valid_backward"] & (np.abs(target - np.rint(target)).max(-1) < 0.05)
  if valid.sum() > 20:
    assert np.abs(warped - current)[valid].mean() < 0.03


def test_pair_optional_joints_valid():
  frames = np.zeros((3, 8, 8, 3), np.uint8)
  arrays = dict(joints=np.zeros((3, J, 2), np.float32),
                joints_valid=np.ones((3, J), bool), part_labels=np.zeros((3, 8, 8), np.uint8),
                uv=np.zeros((3, 8, 8, 2), np.float16),
                flow_forward=np.zeros((2, 8, 8, 2), np.float32),
                flow_backward=np.zeros((2, 8, 8, 2), np.float32),
                valid_backward=np.ones((2, 8, 8), bool))
  arrays["joints_valid"][:, 4] = False
  source = sources.InMemoryVideoSource([frames], ["v"], [arrays])
  example = inputs.pair_example_fn(d2g_config(8))(source, 0, np.random.default_rng(0))
  assert example["joints_valid"].shape == (2, J) and not example["joints_valid"][:, 4].any()
  assert example["joints_valid"].sum() == 2 * (J - 1)


def _real_video_arrays(num_frames=3, r=8):
  """What input_pipeline/annotate.py writes without DensePose: joints, a person mask, flows."""
  rng = np.random.default_rng(0)
  return dict(joints=rng.uniform(0, r - 1, (num_frames, J, 2)).astype(np.float32),
              joints_valid=np.ones((num_frames, J), bool),
              mask=rng.uniform(size=(num_frames, r, r)) < 0.3,
              flow_forward=np.zeros((num_frames - 1, r, r, 2), np.float16),
              flow_backward=np.ones((num_frames - 1, r, r, 2), np.float16),
              valid_backward=np.ones((num_frames - 1, r, r), bool))


def test_pair_without_densepose_reads_the_person_mask_and_no_part_labels():
  arrays = _real_video_arrays()
  source = sources.InMemoryVideoSource([np.zeros((3, 8, 8, 3), np.uint8)], ["v"], [arrays])
  config = d2g_config(8)
  config.d2g.densepose = False
  shapes = inputs.pair_batch_shapes(config, 1)
  assert "part_labels" not in shapes and "uv" not in shapes
  rng = np.random.default_rng(1)
  t = int(np.random.default_rng(1).integers(1, 3))
  example = inputs.pair_example_fn(config)(source, 0, rng)
  assert sorted(example) == sorted(shapes)
  for key, value in example.items():
    assert value.shape == shapes[key].shape[1:] and value.dtype == shapes[key].dtype, key
  np.testing.assert_array_equal(example["person_mask"], arrays["mask"][t - 1:t + 1])
  np.testing.assert_array_equal(example["flow_backward"], np.ones((8, 8, 2), np.float32))
  # With DensePose labels too, the mask annotation still gives the person mask (it is the
  # segmenter's, as the code's mask term reads; the labels only supervise TransG).
  labelled = dict(arrays, part_labels=np.zeros((3, 8, 8), np.uint8),
                  uv=np.zeros((3, 8, 8, 2), np.float32))
  source = sources.InMemoryVideoSource([np.zeros((3, 8, 8, 3), np.uint8)], ["v"], [labelled])
  example = inputs.pair_example_fn(d2g_config(8))(source, 0, np.random.default_rng(1))
  np.testing.assert_array_equal(example["person_mask"], arrays["mask"][t - 1:t + 1])
  assert not example["part_labels"].any()
  # Without either there is no person mask: the error names the video, frame and key.
  del arrays["mask"]
  source = sources.InMemoryVideoSource([np.zeros((3, 8, 8, 3), np.uint8)], ["clip"], [arrays])
  with pytest.raises(DataError, match=r"^video clip frame \d: no annotation 'mask'") as info:
    inputs.pair_example_fn(config)(source, 0, np.random.default_rng(1))
  assert "\n" not in str(info.value)


def test_static_background_leaves_out_the_masked_person():
  # A constant backdrop of 10 with a "person" of 200 that the mask marks; the part labels say
  # nothing is a person, so only the mask can keep 200 out of the median.
  frames = np.full((4, 6, 6, 3), 10, np.uint8)
  mask = np.zeros((4, 6, 6), bool)
  mask[:, 1:3, 1:3] = True  # covered in every frame: gets the median of all background pixels
  mask[:2, 4, 4] = True  # covered in two frames of four
  frames[mask] = 200
  frames[2:, 4, 4] = (10, 20, 30)
  labels = np.zeros((4, 6, 6), np.uint8)
  source = sources.InMemoryVideoSource([frames], ["v"], [dict(mask=mask, part_labels=labels)])
  background = inputs.static_background(source)
  expected = np.full((6, 6, 3), 10 / 255, np.float32)
  expected[4, 4] = np.array([10, 20, 30]) / 255
  np.testing.assert_allclose(background, expected, atol=1e-6)
  unmasked = sources.InMemoryVideoSource([frames], ["v"], [dict(part_labels=labels)])
  assert inputs.static_background(unmasked)[1, 1, 0] > 0.5  # the person leaks in without it


def test_a_video_annotated_from_pose_tool_files_prepares_into_d2g_pairs(tmp_path):
  """The real-video path end to end: OpenPose JSON and mask PNGs of a video -> annotate ->
  the folder dataset builder -> D2G-Net pairs without DensePose (the synthetic figure's frames
  and its exact joints and person mask stand in for a pose tool's output)."""
  video = synthetic.render_video(3, 4, 32, person_seed=4)
  write_pngs(tmp_path / "raw" / "clip", video["frames"])
  for t, joints in enumerate(video["joints"]):  # the 15 joints in BODY_25's first 15 slots
    keypoints = np.zeros((25, 3))
    keypoints[:J, :2], keypoints[:J, 2] = joints, 0.9
    (tmp_path / "json").mkdir(exist_ok=True)
    (tmp_path / "json" / f"clip_{t:012d}_keypoints.json").write_text(
        json.dumps({"people": [{"pose_keypoints_2d": keypoints.ravel().tolist()}]}))
    (tmp_path / "masks").mkdir(exist_ok=True)
    cv2.imwrite(str(tmp_path / "masks" / f"{t}.png"),
                (video["part_labels"][t] > 0).astype(np.uint8) * 255)
  for split in ("train", "test"):
    annotate.annotate_video(tmp_path / "raw" / "clip", tmp_path / "manual" / split, 32,
                            openpose_dir=tmp_path / "json", mask_dir=tmp_path / "masks",
                            progress=False)
  data = ml_collections.ConfigDict(dict(name="folder", manual_dir=str(tmp_path / "manual"),
                             data_dir=str(tmp_path / "tfds"), resolution=32,
                             min_driving_offset=0))
  source = datasets.get_video_source(data, "train")
  config = d2g_config(32)
  config.d2g.update(dict(num_joints=25, densepose=False))
  rng = np.random.default_rng(2)
  t = int(np.random.default_rng(2).integers(1, 4))
  example = inputs.pair_example_fn(config)(source, 0, rng)
  shapes = inputs.pair_batch_shapes(config, 1)
  assert sorted(example) == sorted(shapes)
  np.testing.assert_array_equal(example["frames"], video["frames"][t - 1:t + 1])
  np.testing.assert_allclose(example["joints"][:, :J], video["joints"][t - 1:t + 1], atol=1e-5)
  assert example["joints_valid"][:, :J].all() and not example["joints_valid"][:, J:].any()
  np.testing.assert_array_equal(example["person_mask"], video["part_labels"][t - 1:t + 1] > 0)
  assert example["flow_backward"].dtype == np.float32
  assert annotations.annotation_path(tmp_path / "manual" / "train" / "clip").is_file()


def test_pair_errors_are_one_line():
  frames = np.zeros((3, 8, 8, 3), np.uint8)
  source = sources.InMemoryVideoSource(
      [frames], ["clip"], [dict(joints=np.zeros((3, J, 2), np.float32),
                                part_labels=np.zeros((3, 8, 8), np.uint8))])
  example_fn = inputs.pair_example_fn(d2g_config(8))
  with pytest.raises(DataError, match=r"^video clip frame \d: no annotation 'uv'") as info:
    example_fn(source, 0, np.random.default_rng(0))
  assert "\n" not in str(info.value)
  short = sources.InMemoryVideoSource([frames[:1]], ["one"])
  with pytest.raises(DataError, match=r"^video one has 1 frame\(s\); a D2G-Net training pair "
                                      r"needs 2") as info:
    example_fn(short, 0, np.random.default_rng(0))
  assert "\n" not in str(info.value)


# --- The pose label -------------------------------------------------------------------------------


def numpy_pose_label(joints, valid, height, width, bones, thickness):
  """The pose label by an independent loop: per bone, per pixel centre, the distance to the
  segment -> coverage, composited over white in bone order."""
  colours = inputs.bone_colours(len(bones)).astype(np.float64)
  image = np.ones((height, width, 3))
  for index, (a, b) in enumerate(bones):
    if not (valid[a] and valid[b]):
      continue
    p0, p1 = np.asarray(joints[a], np.float64), np.asarray(joints[b], np.float64)
    for i in range(height):
      for j in range(width):
        p = np.array([j, i], np.float64)
        d = p1 - p0
        s = 0.0 if d @ d == 0 else min(max((p - p0) @ d / (d @ d), 0.0), 1.0)
        distance = np.linalg.norm(p - (p0 + s * d))
        coverage = min(max(thickness / 2 + 0.5 - distance, 0.0), 1.0)
        image[i, j] += coverage * (colours[index] - image[i, j])
  return image * 2 - 1


def test_pose_label_matches_a_numpy_loop():
  rng = np.random.default_rng(0)
  height, width = 12, 14
  joints = rng.uniform(-1, 14, (J, 2)).astype(np.float32)
  joints[3] = joints[4]  # a zero-length bone: a dot
  valid = np.ones(J, bool)
  for thickness in (1.5, 3.0):
    got = np.asarray(inputs.pose_label(joints, valid, height, width, thickness=thickness))
    want = numpy_pose_label(joints, valid, height, width, inputs.SYNTHETIC_BONES, thickness)
    np.testing.assert_allclose(got, want, atol=2e-5)
  # Batched and jitted: the same per element.
  batch = np.stack([joints, joints[::-1].copy()])
  valid2 = np.ones((2, J), bool)
  jitted = jax.jit(lambda j, v: inputs.pose_label(j, v, height, width, thickness=2.0))(
      batch, valid2)
  assert jitted.shape == (2, height, width, 3) and jitted.dtype == jnp.float32
  np.testing.assert_allclose(
      np.asarray(jitted[1]),
      numpy_pose_label(batch[1], valid2[1], height, width, inputs.SYNTHETIC_BONES, 2.0),
      atol=2e-5)


def test_pose_label_invalid_joints_remove_their_bones_and_range():
  joints = synthetic.render_video(5, 2, 48)["joints"][0]
  valid = np.ones(J, bool)
  full = np.asarray(inputs.pose_label(joints, valid, 48, 48))
  assert full.min() >= -1.0 and full.max() <= 1.0
  assert (full < 0.99).any() and (full == 1.0).mean() > 0.5  # white background, coloured bones
  elbow = synthetic.JOINT_NAMES.index("elbow_left")
  valid[elbow] = False
  joints_nan = joints.copy()
  joints_nan[elbow] = np.nan  # ignored
  missing = np.asarray(inputs.pose_label(joints_nan, valid, 48, 48))
  assert np.isfinite(missing).all()
  kept = [bone for bone in inputs.SYNTHETIC_BONES if elbow not in bone]
  colours = inputs.bone_colours(len(inputs.SYNTHETIC_BONES))
  index = {bone: i for i, bone in enumerate(inputs.SYNTHETIC_BONES)}
  want = np.ones((48, 48, 3))
  # Rebuild from the kept bones in their colours: equal to the label without the elbow's bones.
  for bone in kept:
    p0, p1 = joints[bone[0]].astype(np.float64), joints[bone[1]].astype(np.float64)
    ys, xs = np.mgrid[0:48, 0:48]
    p = np.stack([xs, ys], -1).astype(np.float64)
    d = p1 - p0
    s = np.clip(((p - p0) @ d) / max(d @ d, 1e-12), 0, 1)
    distance = np.linalg.norm(p - (p0 + s[..., None] * d), axis=-1)
    cov = np.clip(inputs.default_thickness(48) / 2 + 0.5 - distance, 0, 1)[..., None]
    want += cov * (colours[index[bone]] - want)
  np.testing.assert_allclose(missing, want * 2 - 1, atol=2e-5)
  assert np.abs(missing - full).max() > 0.5  # the two elbow bones are gone
  assert len(inputs.SYNTHETIC_BONES) == 14 and len(set(map(tuple, colours.tolist()))) == 14


# --- Texture and background -----------------------------------------------------------------------


def test_unfold_texture_reproduces_known_colours_and_averages():
  size, parts = 4, 3
  rng = np.random.default_rng(0)
  truth = rng.integers(0, 256, (parts, size, size, 3)).astype(np.uint8)
  # Frames of 6x6 pixels: each labelled pixel shows texel (v, u) of its part.
  num_frames, h = 4, 6
  frames = np.zeros((num_frames, h, h, 3), np.uint8)
  labels = np.zeros((num_frames, h, h), np.uint8)
  uv = np.zeros((num_frames, h, h, 2), np.float16)
  written = np.zeros((parts, size, size), bool)
  for t in range(num_frames):
    for i in range(h):
      for j in range(h):
        if (i + j + t) % 5 == 0:
          continue  # background
        part = (i + t) % 2 + 1  # parts 1 and 2 only; part 3 never seen
        row, col = (i * 3 + t) % size, (j + 2 * t) % size
        labels[t, i, j] = part
        uv[t, i, j] = (col / (size - 1), row / (size - 1))
        frames[t, i, j] = truth[part - 1, row, col]
        written[part - 1, row, col] = True
  # One texel written twice with two different colours: the average.
  labels[0, 0, 1], uv[0, 0, 1], frames[0, 0, 1] = 1, (0.0, 0.0), (10, 20, 30)
  labels[1, 0, 1], uv[1, 0, 1], frames[1, 0, 1] = 1, (0.0, 0.0), (30, 60, 90)
  others = (labels[:, :, :] == 1) & (np.abs(uv.astype(np.float32)).sum(-1) == 0)
  others[0, 0, 1] = others[1, 0, 1] = False
  labels[others] = 0  # only those two writes reach texel (0, 0) of part 1
  written[0, 0, 0] = True
  source = sources.InMemoryVideoSource([frames[:2], frames[2:]], ["a", "b"],
                                       [dict(part_labels=labels[:2], uv=uv[:2]),
                                        dict(part_labels=labels[2:], uv=uv[2:])])
  texture = inputs.unfold_texture(source, parts, size)
  assert texture.shape == (parts, size, size, 3) and texture.dtype == np.float32
  np.testing.assert_allclose(texture[0, 0, 0], np.array([20, 40, 60]) / 255.0, atol=1e-6)
  check = written.copy()
  check[0, 0, 0] = False
  np.testing.assert_allclose(texture[check], truth[check] / 255.0, atol=1e-6)
  # Texels never written: their part's mean written texel; a part never seen: grey.
  for part in range(2):
    unseen = ~written[part]
    if unseen.any():
      np.testing.assert_allclose(texture[part][unseen],
                                 np.broadcast_to(texture[part][written[part]].mean(0),
                                                 texture[part][unseen].shape), atol=1e-6)
  np.testing.assert_allclose(texture[2], 0.5)
  # max_frames and videos choose the frames read.
  first = inputs.unfold_texture(source, parts, size, max_frames=1)
  only_b = inputs.unfold_texture(source, parts, size, videos=[1])
  assert not np.allclose(first, texture) and not np.allclose(only_b, texture)


def test_unfold_texture_of_the_synthetic_figure(person_source):
  source, videos = person_source
  texture = inputs.unfold_texture(source, P, 16)
  # The torso's texels reproduce the torso's pixel colours (nearest texel).
  video = videos[0]
  torso = synthetic.PART_NAMES.index("torso") + 1
  mask = video["part_labels"] == torso
  uv = video["uv"][mask].astype(np.float32)
  rows, cols = np.rint(uv[:, 1] * 15).astype(int), np.rint(uv[:, 0] * 15).astype(int)
  sampled = texture[torso - 1][rows, cols]
  assert np.abs(sampled - video["frames"][mask] / 255.0).mean() < 0.1


def test_static_background_is_the_median_of_background_pixels():
  rng = np.random.default_rng(1)
  num_frames, h, w = 7, 5, 6
  frames = rng.integers(0, 256, (num_frames, h, w, 3)).astype(np.uint8)
  labels = (rng.uniform(size=(num_frames, h, w)) < 0.4).astype(np.uint8) * 3
  labels[:, 2, 3] = 1  # never background
  labels[:4, 0, 0] = 0
  labels[4:, 0, 0] = 2  # background in 4 frames: an even count
  source = sources.InMemoryVideoSource([frames[:3], frames[3:]], None,
                                       [dict(part_labels=labels[:3]), dict(part_labels=labels[3:])])
  got = inputs.static_background(source)
  assert got.shape == (h, w, 3) and got.dtype == np.float32
  background = labels == 0
  everywhere = np.median(frames[background].astype(np.float64), axis=0)
  for i in range(h):
    for j in range(w):
      seen = background[:, i, j]
      want = np.median(frames[seen, i, j].astype(np.float64), 0) if seen.any() else everywhere
      np.testing.assert_allclose(got[i, j], want / 255.0, atol=1e-6, err_msg=f"{i} {j}")
  first = inputs.static_background(source, max_frames=2)
  seen = background[:2, 1, 1]
  if seen.any():
    np.testing.assert_allclose(first[1, 1], np.median(frames[:2][seen, 1, 1], 0) / 255.0,
                               atol=1e-6)


def test_static_background_of_a_person_dataset(person_source):
  source, videos = person_source
  background = inputs.static_background(source)
  # Pixels that show the backdrop untouched (no part, no anti-aliased edge) in every frame: exact.
  clean = np.all([(v["part_labels"] == 0) & ~v["mixed"] for v in videos], axis=(0, 1))
  assert clean.mean() > 0.5
  np.testing.assert_allclose(background[clean], videos[0]["frames"][0][clean] / 255.0, atol=1e-6)
  # Elsewhere the median: close to the backdrop where it shows in most frames.
  shown = np.mean([v["part_labels"] == 0 for v in videos], axis=(0, 1)) == 1.0
  assert np.abs(background[shown] - videos[0]["frames"][0][shown] / 255.0).mean() < 0.01
