"""INTERnet with anchors given by the data (config.model.motion.anchors = "part_transforms"): the
anchors reproduce each part's exact motion, the training example carries the annotations (flipped
with the frames), the loss leaves the detector out, and the renderer reads the annotations."""
import copy

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from input_pipeline import annotations, pipeline, sources, synthetic
from input_pipeline.video_io import DataError
from internet_jax import geometry, inference, method
from internet_jax.methods.internet import motion, networks, objective
from tests.test_models import tiny_config as model_config

SIZE, FRAMES = 32, 8
PARTS = len(synthetic.PART_NAMES)


@pytest.fixture(scope="module")
def video():
  return synthetic.render_video(seed=3, num_frames=FRAMES, resolution=SIZE)


def _homogeneous(affine):
  return np.vstack([np.asarray(affine, np.float64), [0.0, 0.0, 1.0]])


def test_part_centres_are_fixed_points_of_their_parts(video):
  """Mapped back into part-local coordinates (A^-1 (p - b)), each centre is the same point in
  every frame: it moves exactly with its part."""
  transforms = video["part_transforms"].astype(np.float64)
  centres = synthetic.part_centres(video["joints"].astype(np.float64))
  assert centres.shape == (FRAMES, PARTS, 2)
  local = np.einsum("tkij,tkj->tki", np.linalg.inv(transforms[..., :2]),
                    centres - transforms[..., 2])
  np.testing.assert_allclose(local, np.broadcast_to(local[:1], local.shape), atol=1e-5)
  # The middle of the left forearm's bone: between elbow and wrist.
  joints = dict(zip(synthetic.JOINT_NAMES, video["joints"][3]))
  np.testing.assert_allclose(centres[3, synthetic.PART_NAMES.index("lower_arm_left")],
                             (joints["elbow_left"] + joints["wrist_left"]) / 2, atol=1e-5)


def _anchors(video, frame):
  return motion.part_anchors(video["part_transforms"][frame][None],
                             synthetic.part_centres(video["joints"][frame])[None], SIZE)


def test_part_anchors_make_each_sparse_motion_the_parts_exact_motion(video):
  transforms = video["part_transforms"]
  source, driving = _anchors(video, 0), _anchors(video, 5)
  motions = np.asarray(motion.sparse_motions(SIZE, SIZE, source, driving))[0]
  # Pixel (x, y) of the driving frame -> the same point of part k in the source frame:
  # M_0,k M_5,k^-1 (homogeneous 3x3 maps), in pixels, then normalised (align corners).
  ys, xs = np.mgrid[0:SIZE, 0:SIZE]
  pixels = np.stack([xs, ys, np.ones_like(xs)], -1).reshape(-1, 3).T.astype(np.float64)
  for k in range(PARTS):
    mapping = _homogeneous(transforms[0, k]) @ np.linalg.inv(_homogeneous(transforms[5, k]))
    expected = (mapping @ pixels)[:2].T.reshape(SIZE, SIZE, 2) * 2.0 / (SIZE - 1) - 1.0
    np.testing.assert_allclose(motions[..., k + 1, :], expected, atol=2e-5, err_msg=str(k))


def test_mirrored_annotations_are_those_of_the_mirrored_frame(video):
  width = SIZE
  joints = video["joints"][2]
  mirrored = annotations.mirror("joints", joints, width)
  np.testing.assert_allclose(mirrored[:, 0], width - 1 - joints[:, 0])
  np.testing.assert_allclose(mirrored[:, 1], joints[:, 1])
  # A part-local point u lands, under the mirrored map, where the mirror of its pixel is.
  transforms = video["part_transforms"][2]
  flipped = annotations.mirror("part_transforms", transforms, width)
  local = np.random.default_rng(0).normal(size=(PARTS, 2))
  place = lambda maps: np.einsum("kij,kj->ki", maps[..., :2], local) + maps[..., 2]  # noqa: E731
  original = place(transforms)
  np.testing.assert_allclose(place(flipped), np.stack([width - 1 - original[:, 0],
                                                       original[:, 1]], -1), atol=1e-4)
  with pytest.raises(ValueError, match="'uv' cannot be mirrored"):
    annotations.mirror("uv", video["uv"][2], width)


KEYS = ("part_transforms", "joints")


def _source(video):
  return sources.InMemoryVideoSource([video["frames"]], ["v"],
                                     [{key: video[key] for key in KEYS}])


def _per_frame(video, keys=KEYS):
  return [{key: video[key][t] for key in keys} for t in range(FRAMES)]


@pytest.mark.parametrize("flip", [False, True])
def test_the_training_example_carries_the_annotations_of_source_and_driving(video, flip):
  data = model_config().data
  data.min_driving_offset = 2
  data.color_jitter.hue = 0.0  # the frames as rendered, so that t can be found by matching
  make = pipeline.frame_pair_example_fn(data, force_flip=flip, annotation_keys=KEYS)
  plain = pipeline.frame_pair_example_fn(data, force_flip=False)
  for seed in range(3):
    example = make(_source(video), 0, np.random.default_rng(seed))
    unflipped = plain(_source(video), 0, np.random.default_rng(seed))  # the same t
    assert "source_part_transforms" not in unflipped
    t = [i for i in range(FRAMES) if np.array_equal(video["frames"][i], unflipped["driving"])]
    assert len(t) == 1
    for name, frame in (("source", 0), ("driving", t[0])):
      expected = video["part_transforms"][frame].copy()
      joints = video["joints"][frame].copy()
      if flip:  # x -> W - 1 - x: the x row of A negated, b_x and the joints' x mirrored
        expected[:, 0, :2] *= -1
        expected[:, 0, 2] = SIZE - 1 - expected[:, 0, 2]
        joints[:, 0] = SIZE - 1 - joints[:, 0]
      np.testing.assert_allclose(example[f"{name}_part_transforms"], expected, atol=1e-5)
      np.testing.assert_allclose(example[f"{name}_joints"], joints, atol=1e-5)


@pytest.fixture(scope="module")
def given_model():
  config = model_config()
  config.model.num_anchors = PARTS
  config.model.motion.anchors = "part_transforms"
  config.data.resolution = SIZE
  config.model.base_resolution = 16
  # configs/synthetic.py's frame loss: no VGG-19 (there are no weights here), no discriminator.
  config.loss.update(adversarial=0.0, feature_matching=0.0, perceptual=0.0, style=0.0)
  nets = method.get("internet").build(config)
  params = method.get("internet").init_params(nets, jax.random.key(0), config)
  return config, nets, params


def test_the_loss_leaves_the_detector_out_and_trains_the_dense_motion(given_model, video):
  config, nets, params = given_model
  batch = {"source": video["frames"][None, 0], "driving": video["frames"][None, 5],
           "previous": video["frames"][None, 4],
           "flow": np.zeros((1, SIZE, SIZE, 2), np.float32),
           "flow_confidence": np.ones((1, SIZE, SIZE, 1), np.float32),
           **{f"{name}_{key}": video[key][None, frame] for key in KEYS
              for name, frame in (("source", 0), ("driving", 5))}}
  assert {k: v.shape for k, v in batch.items()} == {
      k: v.shape for k, v in networks.batch_shapes(config, 1).items()}
  grads = jax.grad(lambda g: objective.loss_fn(nets, {"g": g, "d": params["d"]}, {}, batch,
                                               jax.random.key(1))[0]["g"])(params["g"])
  norm = lambda tree: float(sum(jnp.sum(x * x) for x in jax.tree.leaves(tree)))  # noqa: E731
  assert norm(grads["params"]["detector"]) == 0.0
  assert norm(grads["params"]["dense_motion"]) > 0.0


def test_the_renderer_reads_the_anchors_from_the_annotations(given_model, video):
  config, nets, params = given_model
  renderer = method.get("internet").renderer(nets, {"g": params["g"]}, config, 3)
  assert renderer.annotation_keys == KEYS
  frames = video["frames"]
  per_frame = _per_frame(video)
  options = inference.annotation_options(renderer, per_frame[0], per_frame, "video v")
  output = renderer.animate(frames[0], frames, **options)
  # The same frames through the model with the anchors made directly from the annotations.
  floats = jnp.asarray(frames, jnp.float32) / 255.0
  centres = synthetic.part_centres(video["joints"])
  anchors = (motion.part_anchors(np.repeat(video["part_transforms"][:1], FRAMES, 0),
                                 np.repeat(centres[:1], FRAMES, 0), SIZE),
             motion.part_anchors(video["part_transforms"], centres, SIZE))
  direct = nets.generator.apply(params["g"], jnp.repeat(floats[:1], FRAMES, 0), floats,
                                anchors=anchors)["prediction"]
  # Equal up to the rounding to uint8 of float differences (jit, batch sizes).
  difference = lambda a, b: np.abs(a.astype(int) - inference.to_uint8(b).astype(int))  # noqa: E731
  assert difference(output, direct).max() <= 1
  # Detected anchors give another output: the annotations are what moved it.
  detected = nets.generator.apply(params["g"], jnp.repeat(floats[:1], FRAMES, 0),
                                  floats)["prediction"]
  assert difference(output, detected).max() > 10
  with pytest.raises(ValueError, match="pass annotations="):
    renderer.animate(frames[0], frames)
  with pytest.raises(ValueError, match="relative motion"):
    renderer.animate(frames[0], frames, relative=True, **options)
  with pytest.raises(ValueError, match="cannot estimate motion from pixels"):
    method.get("internet").motion_field(nets, params, floats[:1], floats[:1])


def test_a_wrong_part_count_or_anchor_source_is_one_line(given_model, video):
  config, nets, params = given_model
  renderer = method.get("internet").renderer(nets, {"g": params["g"]}, config, 2)
  short = [{"part_transforms": video["part_transforms"][t, :4], "joints": video["joints"][t]}
           for t in range(FRAMES)]
  with pytest.raises(DataError, match=r"'part_transforms' is \(4, 2, 3\), this model reads "
                     r"\(11, 2, 3\)"):
    renderer.animate(video["frames"][0], video["frames"], **inference.annotation_options(
        renderer, short[0], short, "video v"))
  bad = copy.deepcopy(config)
  bad.model.motion.anchors = "joints"
  with pytest.raises(ValueError, match="config.model.motion.anchors: unknown anchor source"):
    method.get("internet").validate_config(bad)
  bad = copy.deepcopy(config)
  bad.model.num_anchors = 10
  with pytest.raises(ValueError, match=r"config.model.num_anchors: .*10, but anchors given by "
                     r"part_transforms need one per synthetic body part \(11\)"):
    method.get("internet").validate_config(bad)
