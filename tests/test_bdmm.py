"""BDMM's networks, frame scans, objective and training (internet_jax/methods/bdmm/).

The discriminators' shapes follow the official code's arithmetic (rocketappslab/BDMM,
model/networks/discriminator.py): each ResBlockEncoder halves H and W, each 3-D block removes two
frames. The frame scans are checked against a plain Python loop over the generator's one-step
methods, written here from the recurrences of the paper's Eqs. 6-7."""

from __future__ import annotations

import copy

import imageio.v3 as iio
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from configs import synthetic as internet_synthetic
from configs.bdmm import synthetic as bdmm_synthetic
from input_pipeline import annotations, datasets, sources, synthetic, video_io
from input_pipeline.video_io import DataError
from internet_jax import (animate, checkpointing, evaluate, geometry, inference, method, notebook,
                          sharding, train)
from internet_jax.methods.bdmm import discriminators, inputs, objective, propagation
from internet_jax.methods.bdmm.generator import Generator

R = 16  # generator resolution: divisible by 2^style_blocks (3)
JOINTS = 4


def _generator(**switches):
  return Generator(base_features=4, max_features=8, style_blocks=3, **switches)


# Jitted once per module: the scans and inits run op by op (slowly) otherwise.
_generate_clip = jax.jit(propagation.generate_clip, static_argnums=(0, 6),
                         static_argnames=("forward_propagation", "backward_propagation",
                                          "recurrent_structure"))
_generate_chunk = jax.jit(propagation.generate_chunk, static_argnums=0,
                          static_argnames=("forward_propagation", "backward_propagation",
                                           "recurrent_structure"))
_initial_carry = jax.jit(propagation.initial_carry, static_argnums=0)


def _init_generator(generator):
  image = jnp.zeros((1, R, R, 3))
  return jax.jit(generator.init)(jax.random.key(0), image, jnp.zeros((1, R, R, JOINTS)), image)


def _init_method(networks, config):
  return jax.jit(lambda key: method.get("bdmm").init_params(networks, key, config))(
      jax.random.key(0))


def _random(key, shape, scale=1.0):
  return scale * jax.random.normal(jax.random.key(key), shape, jnp.float32)


def _warps(key, shape):
  """Identity coordinates plus a small random displacement, (..., R, R, 2)."""
  identity = geometry.coordinate_grid(R, R)
  return identity + _random(key, shape + (R, R, 2), 0.05)


@pytest.fixture(scope="module")
def small_generator():
  generator = _generator()
  return generator, _init_generator(generator)


# --- Discriminators ------------------------------------------------------------------------------


def test_spatial_discriminator_halves_per_block_with_the_codes_widths():
  net = discriminators.SpatialDiscriminator(base_features=4, max_features=8, num_blocks=3)
  variables = net.init(jax.random.key(0), jnp.zeros((2, 32, 32, 3)))
  logits = net.apply(variables, _random(1, (2, 32, 32, 3)))
  assert logits.shape == (2, 4, 4, 1) and logits.dtype == jnp.float32
  params = variables["params"]
  # ndf * min(2^i, img_f / ndf): 4, 8, 8.
  assert params["block0"]["conv2"]["conv"]["kernel"].shape == (4, 4, 4, 4)
  assert params["encoder0"]["conv2"]["conv"]["kernel"].shape == (4, 4, 4, 8)
  assert params["encoder1"]["conv2"]["conv"]["kernel"].shape == (4, 4, 8, 8)


def test_temporal_discriminator_shapes_and_length_errors():
  net = discriminators.TemporalDiscriminator(input_length=6, base_features=4, max_features=16,
                                             num_blocks=3)
  variables = net.init(jax.random.key(0), jnp.zeros((1, 6, 32, 32, 3)))
  assert net.apply(variables, _random(2, (2, 6, 32, 32, 3))).shape == (2, 4, 4, 1)
  # Two 3-D blocks leave 6 - 4 = 2 frames of 2 * base channels, folded into 16 channels.
  assert variables["params"]["encoder0"]["conv1"]["conv"]["kernel"].shape == (3, 3, 16, 16)
  with pytest.raises(ValueError, match=r"input_length must be >= 5.*got 4"):
    discriminators.TemporalDiscriminator(input_length=4).init(
        jax.random.key(0), jnp.zeros((1, 4, 32, 32, 3)))
  with pytest.raises(ValueError, match=r"expected \(B, 6, H, W, C\) clips, got \(1, 5, 32, 32, 3\)"):
    net.apply(variables, jnp.zeros((1, 5, 32, 32, 3)))


def test_temporal_block_removes_two_frames_and_pools_the_shortcut_over_three():
  block = discriminators.ResBlockEncoder(5, temporal=True)
  x = _random(3, (1, 7, 8, 8, 2))
  variables = block.init(jax.random.key(0), x)
  assert block.apply(variables, x).shape == (1, 5, 4, 4, 5)


def test_fold_time_into_channels_is_torchs_view_order():
  x = np.arange(2 * 3 * 2 * 2 * 4, dtype=np.float32).reshape(2, 3, 2, 2, 4)  # (B, T, H, W, C)
  folded = np.asarray(discriminators.fold_time_into_channels(jnp.asarray(x)))
  assert folded.shape == (2, 2, 2, 12)
  for c in range(4):
    for t in range(3):
      np.testing.assert_array_equal(folded[..., c * 3 + t], x[:, t, :, :, c])


def test_unit_norm_head_is_the_exact_spectral_norm_of_its_one_row_weight():
  head = discriminators.UnitNormHead()
  x = _random(4, (2, 3, 3, 6))
  variables = head.init(jax.random.key(1), x)
  weight = np.asarray(variables["params"]["weight"], np.float64)
  bias = float(variables["params"]["bias"][0])
  assert np.all(np.abs(weight) <= 1 / np.sqrt(6))  # torch's default U(+-1/sqrt(fan_in))
  # sigma_max of a (1, C) matrix is its norm: numpy's SVD says the same.
  sigma = np.linalg.svd(weight[None], compute_uv=False)[0]
  expected = np.asarray(x, np.float64) @ (weight / sigma) + bias
  np.testing.assert_allclose(head.apply(variables, x)[..., 0], expected, rtol=1e-5, atol=1e-6)
  scaled = jax.tree.map(lambda v: v, variables)
  scaled["params"]["weight"] = 7.0 * variables["params"]["weight"]
  np.testing.assert_allclose(head.apply(scaled, x), head.apply(variables, x), rtol=1e-5)


def test_lsgan_losses():
  real = jnp.array([[1.0, 3.0]])
  fake = jnp.array([[0.0, -2.0]])
  # mean((D - 1)^2) and 0.5 (mean((D(real) - 1)^2) + mean(D(fake)^2)), by hand.
  assert float(discriminators.lsgan_generator_loss(fake)) == pytest.approx((1 + 9) / 2)
  assert float(discriminators.lsgan_discriminator_loss(real, fake)) == pytest.approx(
      0.5 * ((0 + 4) / 2 + (0 + 4) / 2))
  assert float(discriminators.lsgan_discriminator_loss(jnp.ones(3), jnp.zeros(3))) == 0.0


# --- Frame scans ---------------------------------------------------------------------------------


def _clip_inputs(num_frames=4, batch=1):
  reference = jnp.tanh(_random(5, (batch, R, R, 3)))
  skeletons = jax.nn.sigmoid(_random(6, (num_frames, batch, R, R, JOINTS)))
  return reference, skeletons, _warps(7, (num_frames, batch)), _warps(8, (batch,))


def _loop_clip(generator, params, reference, skeletons, warps, initial_warp, chunk_frames):
  """The recurrences frame by frame in Python: f_t from f_{t-1} over the whole clip, b_t from
  b_{t+1} restarted at each chunk from the frame after it, the decoder from the previous output
  and structural state."""
  jitted = jax.jit(generator.apply, static_argnames="method")
  apply = lambda *args, method: jitted(params, *args, method=method)  # noqa: E731
  features = lambda warp: apply(geometry.warp(reference, warp), method=Generator.warp_features)  # noqa: E731
  style = apply(reference, method=Generator.style)
  num_frames = skeletons.shape[0]
  forward_state = features(initial_warp)
  previous = reference
  structural_state = apply(skeletons[0], reference, method=Generator.structure)
  outputs = []
  for start in range(0, num_frames, chunk_frames):
    stop = start + chunk_frames
    backward_state = features(warps[min(stop, num_frames - 1)])
    backward = {}
    for t in reversed(range(start, stop)):
      backward_state = apply(features(warps[t]), backward_state,
                             method=Generator.propagate_backward)
      backward[t] = backward_state
    for t in range(start, stop):
      forward_state = apply(features(warps[t]), forward_state, method=Generator.propagate_forward)
      structure = apply(skeletons[t], previous, method=Generator.structure)
      structural_state = apply(structural_state, structure, method=Generator.structural_flow)
      previous = apply(structural_state, style, forward_state, backward[t],
                       method=Generator.decode)
      outputs.append(previous)
  return jnp.stack(outputs)


def test_generate_clip_equals_the_frame_by_frame_recurrence(small_generator):
  generator, params = small_generator
  reference, skeletons, warps, initial_warp = _clip_inputs(num_frames=4)
  scanned = _generate_clip(generator, params, reference, skeletons, warps, initial_warp, 2)
  looped = _loop_clip(generator, params, reference, skeletons, warps, initial_warp, 2)
  assert scanned.shape == (4, 1, R, R, 3)
  assert np.all(np.abs(np.asarray(scanned)) <= 1.0)
  np.testing.assert_allclose(scanned, looped, rtol=1e-4, atol=1e-5)
  # The chunk boundary matters (the backward branch restarts): one chunk of 4 differs.
  whole = _generate_clip(generator, params, reference, skeletons, warps, initial_warp, 4)
  assert not np.allclose(whole[:2], scanned[:2], atol=1e-6)


def _chunk(generator, params, carry, post_warp, **switches):
  reference, skeletons, warps, _ = _clip_inputs(num_frames=3)
  frames, _ = _generate_chunk(generator, params, reference, skeletons, warps,
                                         post_warp, carry, **switches)
  return frames


@pytest.mark.parametrize("switch, carry_key", [
    ("forward_propagation", "forward"), ("recurrent_structure", "structure"),
    ("backward_propagation", None)])
def test_ablation_switches_cut_their_branch(small_generator, switch, carry_key):
  generator, params = small_generator
  reference, skeletons, _, initial_warp = _clip_inputs(num_frames=3)
  carry = _initial_carry(generator, params, reference, skeletons[0], initial_warp)
  other_carry = _initial_carry(generator, params, reference, skeletons[1],
                                          _warps(11, (1,)))
  post, other_post = _warps(12, (1,)), _warps(13, (1,))

  def perturbed(**switches):
    if carry_key is None:  # the backward branch reads the post warp
      return _chunk(generator, params, carry, other_post, **switches)
    return _chunk(generator, params, dict(carry, **{carry_key: other_carry[carry_key]}), post,
                  **switches)

  base = _chunk(generator, params, carry, post)
  assert not np.allclose(perturbed(), base, atol=1e-6)  # the branch is used ...
  off = {switch: False}
  np.testing.assert_allclose(perturbed(**off), _chunk(generator, params, carry, post, **off),
                             atol=1e-6)  # ... and switched off it is not


def test_without_dmm_the_generator_runs_with_styled_convs():
  generator = _generator(use_dmm=False)
  params = _init_generator(generator)
  assert "weight" not in params["params"]["forward_dmm1"]  # no deformable kernel
  reference, skeletons, warps, initial_warp = _clip_inputs(num_frames=2)
  frames = _generate_clip(generator, params, reference, skeletons, warps, initial_warp, 2)
  assert frames.shape == (2, 1, R, R, 3) and np.all(np.isfinite(frames))


# --- Objective and training ----------------------------------------------------------------------


def _tiny_config(tmp_path_factory):
  root = tmp_path_factory.mktemp("bdmm_data")
  config = bdmm_synthetic.get_config("tiny")
  config.data.manual_dir = str(root / "synthetic")
  config.data.data_dir = str(root / "tfds")
  return config


@pytest.fixture(scope="module")
def tiny_config(tmp_path_factory):
  config = _tiny_config(tmp_path_factory)
  datasets.get_video_source(config.data, "train")
  return config


def _fake_batch(config, batch_size=2, seed=0):
  rng = np.random.default_rng(seed)
  shapes = method.get("bdmm").batch_shapes(config, batch_size)
  batch = {}
  for name, spec in shapes.items():
    if spec.dtype == jnp.uint8:
      batch[name] = rng.integers(0, 256, spec.shape, dtype=np.uint8)
    elif spec.dtype == jnp.bool_:
      batch[name] = np.ones(spec.shape, bool)
    else:
      batch[name] = rng.uniform(-0.9, 0.9, spec.shape).astype(np.float32)
  return jax.tree.map(jnp.asarray, batch)


def test_split_puts_each_chunks_post_warp_at_the_next_chunks_first_frame(tiny_config):
  networks = method.get("bdmm").build(tiny_config)
  batch = _fake_batch(tiny_config)
  sequence, _ = objective.split(networks, objective.create_constants(tiny_config), batch)
  f = tiny_config.bdmm.chunk_frames
  np.testing.assert_array_equal(sequence["warps"][1, :, 0], batch["warps"][:, f])
  np.testing.assert_array_equal(sequence["post_warp"][0], batch["warps"][:, f])
  np.testing.assert_array_equal(sequence["post_warp"][-1], batch["warps"][:, -1])


@pytest.mark.parametrize("field, value, message", [
    ("bdmm.chunk_frames", 4, r"config.bdmm.chunk_frames: must be >= 5 for the temporal"),
    ("model.encoder_blocks", 2, r"config.model.encoder_blocks: must be 3"),
    ("model.style_blocks", 6, r"config.data.resolution: must be divisible by 2\^model.style"),
    ("loss.l1", -1.0, r"config.loss.l1: a loss weight must be finite and >= 0"),
    ("model.dtype", "float16", r"config.model.dtype: unknown dtype 'float16'"),
])
def test_config_errors_are_one_line(field, value, message):
  config = bdmm_synthetic.get_config("tiny")
  section, name = field.split(".")
  config[section][name] = value
  with pytest.raises(ValueError, match=message) as error:
    method.get("bdmm").validate_config(config)
  assert "\n" not in str(error.value)


# --- Inference ----------------------------------------------------------------------------------


def _video_annotations(num_frames, seed=3):
  video = synthetic.render_video(seed, num_frames=num_frames, resolution=32)
  per_frame = [{key: video[key][t] for key in inputs.ANNOTATION_KEYS} for t in range(num_frames)]
  return video, per_frame


def test_renderer_runs_chunks_with_the_state_carried_and_pads_the_last(tiny_config):
  bdmm = method.get("bdmm")
  networks = bdmm.build(tiny_config)
  params = _init_method(networks, tiny_config)
  renderer = bdmm.renderer(networks, params, tiny_config, 3)
  video, per_frame = _video_annotations(7)
  options = inference.annotation_options(renderer, per_frame[0], per_frame, "clip")
  output = renderer.animate(video["frames"][0], video["frames"], **options)
  assert output.shape == (7, 32, 32, 3) and output.dtype == np.uint8

  # The same clip in one call of generate_clip: chunks of 3, the last padded by its last frame.
  padded = [min(t, 6) for t in range(9)]
  warps = np.stack([inputs.part_warp(video["part_labels"][t], video["part_transforms"][t],
                                     video["part_transforms"][0]) for t in padded])
  joints = video["joints"][padded].astype(np.float32)
  skeleton_maps = objective.skeletons(networks.config, joints, np.ones(joints.shape[:2], bool))
  reference = objective.to_signed(jnp.asarray(video["frames"][0])[None])
  frames = _generate_clip(networks.generator, params["g"], reference, skeleton_maps[:, None],
                          jnp.asarray(warps)[:, None], jnp.asarray(warps[:1]), 3)
  expected = inference.to_uint8((np.asarray(frames[:7, 0]) + 1.0) / 2.0)
  assert np.abs(output.astype(int) - expected.astype(int)).max() <= 1


def test_renderer_with_stored_correspondences_reads_them_from_the_driving_frames(tiny_config):
  """bdmm.warp_source = "source_coords": the source needs only its joints, each driving frame
  carries its warp into the source; warps equal to the part maps' give the same video."""
  bdmm = method.get("bdmm")
  networks = bdmm.build(tiny_config)
  params = _init_method(networks, tiny_config)
  video, per_frame = _video_annotations(7)
  expected = bdmm.renderer(networks, params, tiny_config, 3).animate(
      video["frames"][0], video["frames"],
      **inference.annotation_options(bdmm.renderer(networks, params, tiny_config, 3),
                                     per_frame[0], per_frame, "clip"))

  config = copy.deepcopy(tiny_config)
  config.bdmm.warp_source = inputs.SOURCE_COORDS
  coords_networks = bdmm.build(config)
  renderer = bdmm.renderer(coords_networks, params, config, 3)
  driving = []
  for t in range(7):  # the part maps' warp, stored as pixels with its validity
    warp = inputs.part_warp(video["part_labels"][t], video["part_transforms"][t],
                            video["part_transforms"][0])
    visible = warp[..., 0] != inputs.OUTSIDE
    driving.append({"joints": video["joints"][t],
                    "source_coords": (warp.astype(np.float64) + 1.0) * (32 - 1) / 2.0,
                    "source_visible": visible})
  with pytest.raises(DataError, match=r"^clip driving frame 0: no annotation 'source_coords'"):
    inference.annotation_options(renderer, {"joints": video["joints"][0]},
                                 [{"joints": video["joints"][0]}], "clip")
  options = inference.annotation_options(renderer, {"joints": video["joints"][0]}, driving, "clip")
  output = renderer.animate(video["frames"][0], video["frames"], **options)
  assert np.abs(output.astype(int) - expected.astype(int)).max() <= 1


def test_annotation_options_require_the_renderers_keys(tiny_config):
  bdmm = method.get("bdmm")
  networks = bdmm.build(tiny_config)
  renderer = bdmm.renderer(networks, _init_method(networks, tiny_config), tiny_config, 2)
  _, per_frame = _video_annotations(2)
  valid = [dict(frame, joints_valid=np.ones(15, bool), uv=np.zeros(2)) for frame in per_frame]
  options = inference.annotation_options(renderer, valid[0], valid, "clip")["annotations"]
  assert set(options["driving"][1]) == set(inputs.ANNOTATION_KEYS) | {"joints_valid"}
  with pytest.raises(DataError, match=r"^clip driving frame 1: no annotation 'part_labels'"):
    inference.annotation_options(
        renderer, per_frame[0], [per_frame[0], {"joints": per_frame[1]["joints"]}], "clip")
  with pytest.raises(DataError, match=r"^clip: this method reads per-frame annotations .* the "
                                      r"source frame have none"):
    inference.annotation_options(renderer, None, per_frame, "clip")
  with pytest.raises(DataError, match="more frames than its 2 annotated ones"):
    renderer.animate(np.zeros((32, 32, 3), np.uint8), np.zeros((3, 32, 32, 3), np.uint8),
                     **inference.annotation_options(renderer, per_frame[0], per_frame, "clip"))
  # A renderer that reads no annotations needs none.
  assert inference.annotation_options(_NoAnnotations(), None, None, "clip") == {}


class _NoAnnotations:
  annotation_keys = ()


def test_tiny_training_runs_checkpoints_and_writes_the_panel(tiny_config, tmp_path):
  config = copy.deepcopy(tiny_config)
  state = train.train_and_evaluate(config, str(tmp_path))
  assert int(state.step) == config.num_train_steps
  assert set(state.params) == {"g", "d"} and set(state.params["d"]) == {"spatial", "temporal"}
  assert int(state.skipped_steps) == 0
  assert all(np.all(np.isfinite(leaf)) for leaf in jax.tree.leaves(state.params))
  # Gradients reached every group: Adam's second moment of nearly every leaf of G and of both
  # Ds is non-zero (it stays 0 exactly where every gradient so far was 0).
  for group, path in (("g", ()), ("d", ("spatial",)), ("d", ("temporal",))):
    (adam,) = [leaf for leaf in jax.tree.leaves(
        state.opt_state[group], is_leaf=lambda x: isinstance(x, optax.ScaleByAdamState))
        if isinstance(leaf, optax.ScaleByAdamState)]
    nu = adam.nu
    for key in path:
      nu = nu[key]
    reached = [bool(np.any(np.asarray(leaf) > 0)) for leaf in jax.tree.leaves(nu)]
    assert sum(reached) >= 0.9 * len(reached), (group, path)
  steps = checkpointing.complete_steps(checkpointing.checkpoint_dir(str(tmp_path)))
  assert steps[-1] == config.num_train_steps
  scalars = notebook.read_scalars(str(tmp_path))
  for name in ("train/g/l1", "train/d/spatial", "train/d/temporal",
               "train/learning_rate/g", "train/learning_rate/d"):
    assert np.all(np.isfinite(scalars[name][1])), name
  ((image_step, image),) = notebook.read_images(str(tmp_path), "train/summary")
  # One row per frame (2 chunks of 5: at most 6 rows) of five R x R panels with 2 px padding.
  r = config.data.resolution
  assert image_step == config.image_every_steps
  assert image.shape[:2] == (6 * (r + 2) + 2, 5 * (r + 2) + 2)
  # The training-time evaluation ran through the renderer, beside copy-source.
  assert {"eval/l1", "eval/l1_copy_source", "eval/cross/l1_figure"} <= set(scalars)
  assert (tmp_path / "sample_animation.mp4").is_file()

  # evaluate: every test frame, scored beside copy-source, self- and cross-identity.
  results = evaluate.evaluate_workdir(str(tmp_path), output_dir=tmp_path / "eval")
  assert results["num_frames"] == config.data.synthetic.num_frames
  for scores in (results["mean"], results["cross_identity"]["mean"]):
    assert 0.0 < scores["l1"] < 1.0 and 0.0 < scores["l1_figure_copy_source"] < 1.0
  assert (tmp_path / "eval" / "metrics.md").is_file()

  # animate: a photo and a driving video, each with its .npz of annotations beside it.
  video, per_frame = _video_annotations(7)
  iio.imwrite(tmp_path / "person.png", video["frames"][0])
  annotations.write_npz(tmp_path / "person.npz",
                        {key: video[key][:1] for key in inputs.ANNOTATION_KEYS})
  video_io.write_video(tmp_path / "dance.mp4", video["frames"], fps=10)
  annotations.write_npz(tmp_path / "dance.npz",
                        {key: video[key] for key in inputs.ANNOTATION_KEYS})
  renderer = animate.load_renderer(str(tmp_path), batch_size=5)
  count = animate.animate_file(renderer, tmp_path / "person.png", tmp_path / "dance.mp4",
                               tmp_path / "out.mp4", progress=False)
  assert count == 7
  expected = renderer.animate(video["frames"][0], video["frames"], **inference.annotation_options(
      renderer, per_frame[0], per_frame, "dance"))
  written = video_io.read_video(tmp_path / "out.mp4", r)
  assert written.shape == expected.shape
  assert np.mean(np.abs(written.astype(float) - expected)) < 4  # h264 is lossy
  (tmp_path / "dance.npz").unlink()
  with pytest.raises(ValueError, match=r"dance.npz: no such file; this method reads the driving"):
    animate.animate_file(renderer, tmp_path / "person.png", tmp_path / "dance.mp4",
                         tmp_path / "out2.mp4", progress=False)
  assert not (tmp_path / "out2.mp4").exists()


# --- Warps from a trained motion estimator -------------------------------------------------------


def test_warps_from_an_internet_checkpoint_drive_training_and_inference(tiny_config, tmp_path):
  """bdmm.warp_source = "internet:<workdir>": clips read only joints and carry the frame before
  the clip; the step's warps are the INTERnet checkpoint's motion field of every frame into the
  reference (checked against INTERnet's own renderer); a step trains; inference needs only
  joints."""
  internet_config = internet_synthetic.get_config("tiny")
  internet_config.data.manual_dir = tiny_config.data.manual_dir
  internet_config.data.data_dir = tiny_config.data.data_dir
  internet_config.update(dict(num_train_steps=1, sample_animation=False, eval_every_steps=0))
  workdir = tmp_path / "internet"
  train.train_and_evaluate(internet_config, str(workdir))

  config = copy.deepcopy(tiny_config)
  for spec, message in (("internet",
                         "expected 'annotation', 'source_coords' or '<method>:<workdir>'"),
                        (f"bdmm:{workdir}", "holds a 'internet' checkpoint, not 'bdmm'"),
                        (f"internet:{tmp_path / 'none'}", "no such")):
    config.bdmm.warp_source = spec
    with pytest.raises(ValueError, match=rf"^config.bdmm.warp_source: .*{message}"):
      train.validate_config(config)
  config.bdmm.warp_source = f"internet:{workdir}"
  train.validate_config(config)
  bdmm = method.get("bdmm")

  # The clip: only joints are read (a video with nothing else serves it).
  video = synthetic.render_video(5, num_frames=12, resolution=32)
  poses_only = sources.InMemoryVideoSource([video["frames"]], ["v"], [{"joints": video["joints"]}])
  rng = np.random.default_rng(4)
  start = int(np.random.default_rng(4).integers(0, 12 - 10 + 1))
  example = bdmm.example_fn(config)(poses_only, 0, rng)
  shapes = bdmm.batch_shapes(config, 1)
  assert sorted(example) == sorted(shapes) and "warps" not in example
  np.testing.assert_array_equal(example["initial_frame"], video["frames"][max(start - 1, 0)])

  # The warps of the step: the checkpoint's motion field, frame by frame, into the reference.
  networks = bdmm.build(config)
  constants = bdmm.create_constants(config)
  batch = jax.tree.map(lambda x: jnp.asarray(x)[None], example)
  sequence, context = jax.jit(lambda b: objective.split(networks, constants, b))(batch)
  internet = animate.load_renderer(str(workdir), batch_size=5)
  frames = np.concatenate([example["initial_frame"][None], example["frames"]])
  expected = np.concatenate([r["motion_full"] for r in internet.stream(
      example["reference"], frames, keys=("motion_full",))])
  f = config.bdmm.chunk_frames
  got = np.asarray(sequence["warps"]).swapaxes(1, 2).reshape((-1,) + expected.shape[1:])
  np.testing.assert_allclose(got, expected[1:], atol=1e-5)
  np.testing.assert_allclose(np.asarray(context["initial_warp"][0]), expected[0], atol=1e-5)
  np.testing.assert_allclose(np.asarray(sequence["post_warp"][0, 0]), expected[1 + f], atol=1e-5)

  # One training step through the shared trainer (the motion parameters are constants).
  mesh = sharding.create_mesh(1)
  training = train.create_training(config, mesh, 10)
  state = training.init()
  batch = jax.tree.map(lambda x: np.repeat(x[None], config.batch_size, 0), example)
  state, metrics = training.step(state, sharding.put_batch(batch, mesh), training.constants)
  assert int(state.step) == 1 and float(metrics["nonfinite"]) == 0.0

  # Inference: joints only, the warps from the pixels.
  params = _init_method(networks, config)
  renderer = bdmm.renderer(networks, params, config, 3)
  assert tuple(renderer.annotation_keys) == ("joints",)
  per_frame = [{"joints": joints} for joints in video["joints"][:7]]
  options = inference.annotation_options(renderer, per_frame[0], per_frame, "clip")
  output = renderer.animate(video["frames"][0], video["frames"][:7], **options)
  assert output.shape == (7, 32, 32, 3) and output.dtype == np.uint8
