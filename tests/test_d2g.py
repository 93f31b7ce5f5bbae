"""D2G-Net's objective, optimisers, inference and training (internet_jax/methods/d2g/).

Loss terms are checked against direct numpy formulas of the code's expressions
(SunYangtian/Neural-Human-Video-Rendering, models/pix2pixHD_Avatar.py `forward` and `cal_conf`),
on flows whose warps are exact (integer shifts)."""

from __future__ import annotations

import copy
import os
from pathlib import Path
import subprocess
import sys

import imageio.v3 as iio
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs.d2g import pretrain_synthetic, synthetic as d2g_synthetic
from input_pipeline import annotations, datasets, synthetic, video_io
from internet_jax import animate, checkpointing, evaluate, inference, method, notebook, train
from internet_jax.methods.d2g import objective, poses, renderer as d2g_renderer

REPO = Path(__file__).resolve().parents[1]


# --- Loss terms -----------------------------------------------------------------------------------


def test_uv_loss_counts_each_pixel_for_its_own_part_only():
  rng = np.random.default_rng(0)
  h, w, p = 3, 4, 2
  uv = rng.uniform(-1, 1, (h, w, p, 2))
  target = rng.uniform(-1, 1, (h, w, 2))
  labels = rng.integers(0, p + 1, (h, w))
  total = 0.0
  for i in range(h):
    for j in range(w):
      for part in range(p):
        if labels[i, j] == part + 1:
          total += np.abs(uv[i, j, part] - target[i, j]).sum()
  expected = total / (h * w * p * 2)  # the code's mean runs over all 2P x H x W entries
  got = objective.uv_loss(jnp.asarray(uv), jnp.asarray(target), jnp.asarray(labels))
  np.testing.assert_allclose(got, expected, rtol=1e-5)


def test_mask_loss_is_bce_with_logits_on_the_probability_or_plain_bce():
  prob = np.array([0.1, 0.5, 0.9, 0.7])
  mask = np.array([0.0, 1.0, 1.0, 0.0])
  # torch BCEWithLogits(x, y) = -(y log sigmoid(x) + (1 - y) log(1 - sigmoid(x)))
  sig = 1.0 / (1.0 + np.exp(-prob))
  with_logits = np.mean(-(mask * np.log(sig) + (1 - mask) * np.log(1 - sig)))
  plain = np.mean(-(mask * np.log(prob) + (1 - mask) * np.log(1 - prob)))
  np.testing.assert_allclose(objective.mask_loss(jnp.asarray(prob), jnp.asarray(mask), True),
                             with_logits, rtol=1e-5)
  np.testing.assert_allclose(objective.mask_loss(jnp.asarray(prob), jnp.asarray(mask), False),
                             plain, rtol=1e-5)


def test_part_loss_is_the_mean_cross_entropy():
  rng = np.random.default_rng(1)
  logits = rng.normal(size=(2, 3, 4))
  labels = rng.integers(0, 4, (2, 3))
  log_probs = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
  expected = -np.mean(np.take_along_axis(log_probs, labels[..., None], -1))
  np.testing.assert_allclose(objective.part_loss(jnp.asarray(logits), jnp.asarray(labels)),
                             expected, rtol=1e-5)


def _shift_flows(h, w, dx, dy):
  """Frame t = frame t-1 moved by (dx, dy) pixels: backward flow -(dx, dy), forward +(dx, dy)."""
  backward = np.broadcast_to(np.array([-dx, -dy], np.float32), (h, w, 2)).copy()
  forward = -backward
  return backward, forward


def test_temporal_loss_is_eq5_on_an_exact_integer_warp():
  rng = np.random.default_rng(2)
  h, w = 6, 7
  previous = rng.uniform(-1, 1, (h, w, 3)).astype(np.float32)
  current = rng.uniform(-1, 1, (h, w, 3)).astype(np.float32)
  backward, _ = _shift_flows(h, w, 2, 1)
  confidence = (rng.uniform(size=(h, w, 1)) > 0.3).astype(np.float32)
  # W(prev, f_inv)(y, x) = prev(y - 1, x - 2), border padding: indices clamped into the frame.
  rows = np.clip(np.arange(h) - 1, 0, h - 1)
  cols = np.clip(np.arange(w) - 2, 0, w - 1)
  warped = previous[rows][:, cols]
  expected = np.mean(np.abs(warped - current) * confidence)
  got = objective.temporal_loss(jnp.asarray(previous), jnp.asarray(current), jnp.asarray(backward),
                                jnp.asarray(confidence))
  np.testing.assert_allclose(got, expected, rtol=1e-5)


def test_flow_confidence_is_the_forward_backward_check():
  h, w = 8, 8
  backward, forward = _shift_flows(h, w, 2, 0)
  confidence = np.asarray(objective.flow_confidence(jnp.asarray(backward), jnp.asarray(forward)))
  np.testing.assert_array_equal(confidence, 1.0)  # consistent flows: the round trip is 0
  # Break the forward flow in a block: pixels whose backward target lands in it are rejected.
  forward[2:5, 2:5] = [4.0, 0.0]  # round trip |-2 + 4|^2 = 4: not < 1
  confidence = np.asarray(objective.flow_confidence(jnp.asarray(backward), jnp.asarray(forward)))
  expected = np.ones((h, w, 1), np.float32)
  for i in range(h):
    for j in range(w):
      x = min(max(j - 2, 0), w - 1)  # p + f_inv(p), border padding
      if 2 <= i < 5 and 2 <= x < 5:
        expected[i, j] = 0.0
  np.testing.assert_array_equal(confidence, expected)


# --- Driving poses -------------------------------------------------------------------------------


def _standing(num_frames, rng, scale=1.0, shift=(0.0, 0.0)):
  """Synthetic-skeleton poses: joints around a standing figure, head at y 10, ankles at y 50."""
  joints = rng.uniform(20, 40, (num_frames, 15, 2))
  joints[:, 0, 1] = 10.0
  joints[:, [11, 14], 1] = 50.0
  joints[:, 11, 0], joints[:, 14, 0] = 25.0, 35.0
  return (joints * scale + np.asarray(shift)).astype(np.float32)


def test_normalize_poses_maps_another_persons_poses_onto_the_target():
  rng = np.random.default_rng(3)
  target = _standing(1, rng)
  poses_of_target = _standing(6, rng)
  # The same motion performed by a person twice as tall, standing elsewhere in the frame.
  driving = poses_of_target * 2.0 + np.array([7.0, -30.0], np.float32)
  valid = np.ones((6, 15), bool)
  normalized = poses.normalize_poses(driving, valid, target, np.ones((1, 15), bool))
  # Feet midpoint (30, 50) and height 40 in both target and the target's own motion.
  np.testing.assert_allclose(normalized, poses_of_target, atol=1e-4)
  with pytest.raises(ValueError, match="head and both ankles"):
    poses.normalize_poses(driving, np.zeros_like(valid), target, np.ones((1, 15), bool))


def test_smooth_poses_fills_invalid_frames_and_keeps_a_linear_motion():
  frames = np.arange(9, dtype=np.float32)
  joints = np.stack([np.stack([frames, 2 * frames], -1)] * 2, axis=1)  # (9, 2, 2), linear
  valid = np.ones((9, 2), bool)
  valid[3:5, 0] = False
  valid[:, 1] = False  # never valid: left as it is
  broken = joints.copy()
  broken[3:5, 0] = -100.0
  filled, filled_valid = poses.smooth_poses(broken, valid, 0.0)
  np.testing.assert_allclose(filled[:, 0], joints[:, 0])  # linear interpolation
  assert filled_valid[:, 0].all() and not filled_valid[:, 1].any()
  smoothed, _ = poses.smooth_poses(broken, valid, 1.0)
  # A symmetric kernel keeps a linear motion away from the ends (4 sigma of margin).
  np.testing.assert_allclose(smoothed[4, 0], joints[4, 0], atol=1e-3)


def test_pose_labels_draw_the_skeleton_of_the_configured_joint_count():
  config = d2g_synthetic.get_config("tiny")
  r = config.data.resolution
  config.d2g.num_joints = 25  # OpenPose BODY_25: a bone from the neck (1) to the mid hip (8)
  joints = np.full((1, 25, 2), -100.0, np.float32)  # off the frame: nothing drawn
  joints[0, 1], joints[0, 8] = (16, 4), (16, 28)
  valid = np.zeros((1, 25), bool)
  valid[0, [1, 8]] = True
  label = np.asarray(objective.pose_labels(config, jnp.asarray(joints), jnp.asarray(valid)))[0]
  assert label.shape == (r, r, 3)
  assert np.all(label[4:29, 16].min(-1) < 0.9) and np.all(label[:, :10] == 1.0)  # a line on white
  config.d2g.num_joints = 17
  with pytest.raises(ValueError, match=r"^config.d2g.num_joints: 17 joints is no known skeleton"):
    train.validate_config(config)


# --- Optimisers -----------------------------------------------------------------------------------


def _rates(tx, params, steps):
  state = tx.init(params)
  grads = jax.tree.map(jnp.ones_like, params)
  rates = []
  for _ in range(steps):
    _, state = tx.update(grads, state, params)
    inner = state.inner_states
    rates.append({name: float(inner[name].inner_state.hyperparams["learning_rate"])
                  for name in inner})
  return rates


def test_g_rates_follow_the_codes_per_epoch_decay():
  config = d2g_synthetic.get_config("tiny")
  config.d2g.static_epochs = 2
  tx = objective.create_optimizers(config, steps_per_epoch=2)["g"]
  params = {"params": {"uv_generator": {"w": jnp.zeros(2)}, "texture": jnp.zeros(2),
                       "background": jnp.zeros(2)}}
  rates = _rates(tx, params, 8)
  lr = config.optimizer.g_lr
  for step, rate in enumerate(rates):
    epoch = step // 2 + 1  # counted from 1, as train.py
    np.testing.assert_allclose(rate["decaying"], lr * 0.9 ** epoch, rtol=1e-6)
    expected = lr * 0.9 ** epoch if epoch <= 2 else lr
    np.testing.assert_allclose(rate["static_then_constant"], expected, rtol=1e-6)


# --- Training -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def data_root(tmp_path_factory):
  return tmp_path_factory.mktemp("d2g_data")


def _tiny(module, data_root, variant="tiny"):
  config = module.get_config(variant)
  config.data.manual_dir = str(data_root / f"synthetic_{config.data.synthetic.person_seed}")
  config.data.data_dir = str(data_root / "tfds")
  return config


def _fake_batch(config, batch_size=2, seed=0):
  rng = np.random.default_rng(seed)
  batch = {}
  for name, spec in method.get("d2g").batch_shapes(config, batch_size).items():
    if spec.dtype == jnp.uint8:
      batch[name] = rng.integers(0, 256, spec.shape, dtype=np.uint8)
    elif spec.dtype == jnp.bool_:
      batch[name] = np.ones(spec.shape, bool)
    elif jnp.issubdtype(spec.dtype, jnp.integer):
      batch[name] = rng.integers(0, config.d2g.num_parts + 1, spec.shape).astype(spec.dtype)
    elif name == "uv":
      batch[name] = rng.uniform(0, 1, spec.shape).astype(np.float32)
    else:
      batch[name] = rng.uniform(0, config.data.resolution - 1, spec.shape).astype(np.float32)
  return jax.tree.map(jnp.asarray, batch)


def test_static_epochs_gate_the_translated_terms_and_the_discriminator(data_root):
  config = _tiny(d2g_synthetic, data_root, "tiny,scratch")
  config.d2g.texture_init, config.d2g.background_init = "zeros", "zeros"  # no data needed
  d2g = method.get("d2g")
  networks = d2g.build(config)
  params = d2g.init_params(networks, jax.random.key(0), config)
  batch = _fake_batch(config)

  def grads_at(epoch):
    def loss(p):
      return d2g.loss_fn(networks, p, {}, batch, jax.random.key(1), epoch=jnp.int32(epoch))
    group_losses, metrics = loss(params)
    g_grad = jax.grad(lambda p: loss(p)[0]["g"])(params)["g"]["params"]
    return group_losses, metrics, g_grad

  static_losses, static_metrics, static_grad = grads_at(0)
  assert float(static_losses["d"]) == 0.0 and float(static_metrics["static_phase"]) == 1.0
  for name in ("human_mask", "temporal", "adversarial"):
    assert float(static_metrics[f"g/{name}"]) == 0.0, name
  # Before the static epochs end nothing reaches the translation net (only Ĩ_syn is scored).
  assert all(float(jnp.max(jnp.abs(leaf))) == 0.0
             for leaf in jax.tree.leaves(static_grad["translation"]))
  assert any(float(jnp.max(jnp.abs(leaf))) > 0.0
             for leaf in jax.tree.leaves(static_grad["texture"]))
  late_losses, late_metrics, late_grad = grads_at(config.d2g.static_epochs)
  assert float(late_losses["d"]) > 0.0 and float(late_metrics["static_phase"]) == 0.0
  for name in ("human_mask", "temporal", "adversarial"):
    assert float(late_metrics[f"g/{name}"]) > 0.0, name
  assert any(float(jnp.max(jnp.abs(leaf))) > 0.0
             for leaf in jax.tree.leaves(late_grad["translation"]))


def test_without_densepose_the_loss_has_no_uv_or_part_terms_and_reads_the_mask(data_root):
  config = _tiny(d2g_synthetic, data_root, "tiny,scratch")
  config.d2g.update(dict(densepose=False, texture_init="zeros", background_init="zeros"))
  train.validate_config(config)
  d2g = method.get("d2g")
  networks = d2g.build(config)
  params = d2g.init_params(networks, jax.random.key(0), config)
  batch = _fake_batch(config)
  assert "part_labels" not in batch and "uv" not in batch
  loss = jax.jit(lambda b: d2g.loss_fn(networks, params, {}, b, jax.random.key(1),
                                       epoch=jnp.int32(0))[1])
  metrics = loss(batch)
  assert "g/uv" not in metrics and "g/part" not in metrics
  # The mask term is BCE of 1 - P0 against person_mask: all-person vs no-person targets differ
  # by exactly the mean logit of 1 - P0 (softplus(x) - x y), and nothing else changes.
  empty = dict(batch, person_mask=jnp.zeros_like(batch["person_mask"]))
  other = loss(empty)
  pose = objective.pose_labels(config, batch["joints"].reshape((-1,) + batch["joints"].shape[2:]),
                               batch["joints_valid"].reshape(-1, batch["joints"].shape[2]))
  foreground = 1.0 - networks.generator.apply(params["g"], pose)["probs"][..., 0]
  np.testing.assert_allclose(float(other["g/mask"] - metrics["g/mask"]),
                             float(jnp.mean(foreground)), rtol=1e-4)
  for name in ("g/l2", "g/vgg", "g/temporal"):
    if name in metrics:
      np.testing.assert_allclose(float(other[name]), float(metrics[name]), rtol=1e-6)
  for field, value, message in (("d2g.stage", "pretrain", "d2g.densepose"),
                                ("d2g.texture_init", "unfold", "d2g.texture_init")):
    bad = copy.deepcopy(config)
    bad.d2g[field.split(".")[1]] = value
    with pytest.raises(ValueError, match=rf"^config.{message}: "):
      train.validate_config(bad)


def test_pretraining_then_per_person_training_loads_transg(data_root, tmp_path):
  pretrain = _tiny(pretrain_synthetic, data_root)
  pretrain_dir = tmp_path / "pretrain"
  pretrain_state = train.train_and_evaluate(pretrain, str(pretrain_dir))
  assert int(pretrain_state.step) == pretrain.num_train_steps

  person = _tiny(d2g_synthetic, data_root)
  person.d2g.pretrained = str(tmp_path / "missing")
  with pytest.raises(ValueError, match=r"config.d2g.pretrained: no pretraining checkpoint in "
                     r".*missing; train it first: python -m internet_jax.main "
                     r"--config=configs/d2g/pretrain_synthetic.py"):
    train.validate_config(person)
  person.d2g.pretrained = str(pretrain_dir)
  d2g = method.get("d2g")
  networks = d2g.build(person)
  params = jax.jit(lambda key: d2g.init_params(networks, key, person))(jax.random.key(5))
  pretrained = pretrain_state.params["g"]["params"]["uv_generator"]
  for loaded, trained in zip(jax.tree.leaves(params["g"]["params"]["uv_generator"]),
                             jax.tree.leaves(pretrained)):
    np.testing.assert_array_equal(np.asarray(loaded), np.asarray(trained))
  # A TransG with one more residual block than the pretraining's loads every array the two share
  # and keeps its initialisation for the new block (pix2pixHD's partial load).
  deeper = copy.deepcopy(person)
  deeper.model.uv_num_blocks += 1
  deeper_networks = d2g.build(deeper)
  deeper_params = jax.jit(lambda key: d2g.init_params(deeper_networks, key, deeper))(
      jax.random.key(5))["g"]["params"]["uv_generator"]
  trained = {path: leaf for path, leaf in jax.tree_util.tree_flatten_with_path(pretrained)[0]}
  deeper_leaves = jax.tree_util.tree_flatten_with_path(deeper_params)[0]
  assert len(deeper_leaves) > len(trained)
  for path, leaf in deeper_leaves:
    if path in trained and trained[path].shape == leaf.shape:
      np.testing.assert_array_equal(np.asarray(leaf), np.asarray(trained[path]))
  # The texture starts from the training frames (unfolded by their exact UV), the background
  # from their median: neither is the default initialisation any more.
  plain = copy.deepcopy(person)
  plain.d2g.update(dict(texture_init="zeros", background_init="zeros", pretrained=""))
  default = d2g.init_params(networks, jax.random.key(5), plain)
  assert not np.allclose(params["g"]["params"]["texture"][..., :3],
                         default["g"]["params"]["texture"][..., :3])
  assert not np.allclose(params["g"]["params"]["background"],
                         default["g"]["params"]["background"])

  workdir = tmp_path / "person"
  state = train.train_and_evaluate(person, str(workdir))
  assert int(state.step) == person.num_train_steps and int(state.skipped_steps) == 0
  assert all(np.all(np.isfinite(leaf)) for leaf in jax.tree.leaves(state.params))
  scalars = notebook.read_scalars(str(workdir))
  for name in ("train/g/l2", "train/g/uv", "train/g/part", "train/g/temporal", "train/d/loss"):
    assert np.all(np.isfinite(scalars[name][1])), name
  # The trainer passes the epoch: 5 videos x 1 repeat / batch 2 = 2 steps per epoch, so the
  # static phase (static_epochs 1) covers the first two steps and D starts at the third.
  np.testing.assert_array_equal(scalars["train/static_phase"][1], [1.0, 1.0, 0.0])
  assert list(scalars["train/d/loss"][1][:2]) == [0.0, 0.0] and scalars["train/d/loss"][1][2] > 0
  ((_, image),) = notebook.read_images(str(workdir), "train/summary")
  r = person.data.resolution
  assert image.shape[1] == 6 * (r + 2) + 2  # pose | parts | UV | texture | output | target
  assert {"eval/l1", "eval/l1_copy_source"} <= set(scalars)
  assert (workdir / "sample_animation.mp4").is_file()
  assert checkpointing.complete_steps(checkpointing.checkpoint_dir(str(workdir)))[-1] == 3

  # Exact resume: 2 steps, stop, then on to 3 equals the 3 straight steps bit for bit (the
  # epoch-gated terms, the per-epoch rates and the data order all pick up where they were).
  resumed = copy.deepcopy(person)
  resumed.update(dict(eval_every_steps=0, sample_animation=False, checkpoint_every_steps=2))
  resumed.num_train_steps = 2
  train.train_and_evaluate(resumed, str(tmp_path / "resumed"))
  resumed.num_train_steps = 3
  resumed_state = train.train_and_evaluate(resumed, str(tmp_path / "resumed"))
  for straight, again in zip(jax.tree.leaves((state.params, state.opt_state)),
                             jax.tree.leaves((resumed_state.params, resumed_state.opt_state))):
    np.testing.assert_array_equal(np.asarray(again), np.asarray(straight))

  results = evaluate.evaluate_workdir(str(workdir), output_dir=tmp_path / "eval")
  assert 0.0 < results["mean"]["l1"] < 1.0
  assert (tmp_path / "eval" / "metrics.md").is_file()
  # D2G-Net's Robust-PSNR / Robust-SSIM: the data has joints in both splits.
  assert isinstance(results["mean"]["psnr_robust"], float)
  assert len(results["mean"]["robust_frames"]) == min(10, results["num_frames"])

  # animate: the person's model driven by a video with joints in the .npz beside it.
  video = synthetic.render_video(11, num_frames=5, resolution=r)
  iio.imwrite(tmp_path / "person.png", video["frames"][0])
  annotations.write_npz(tmp_path / "person.npz", {"joints": video["joints"][:1]})
  video_io.write_video(tmp_path / "dance.mp4", video["frames"], fps=10)
  annotations.write_npz(tmp_path / "dance.npz", {"joints": video["joints"]})
  renderer = animate.load_renderer(str(workdir), batch_size=2)
  count = animate.animate_file(renderer, tmp_path / "person.png", tmp_path / "dance.mp4",
                               tmp_path / "out.mp4", progress=False)
  assert count == 5
  per_frame = [{"joints": joints} for joints in video["joints"]]
  expected = renderer.animate(video["frames"][0], video["frames"], **inference.annotation_options(
      renderer, per_frame[0], per_frame, "dance"))
  assert expected.shape == (5, r, r, 3)
  written = video_io.read_video(tmp_path / "out.mp4", r)
  # h264 keeps the low frequencies of the untrained model's noisy frames: 8 x 8 block means.
  blocks = lambda v: v.astype(float).reshape(5, r // 8, 8, r // 8, 8, 3).mean((2, 4))  # noqa: E731
  assert np.mean(np.abs(blocks(written) - blocks(expected))) < 4
  # Inference options: another person's poses normalised onto the source frame's person, and a
  # swapped background (Eqs. 3-4 with the new one).
  shifted = [{"joints": joints * 0.8 + 3.0} for joints in video["joints"]]
  normalized = renderer.animate(video["frames"][0], video["frames"], normalize_pose=True,
                                **inference.annotation_options(renderer, per_frame[0], shifted,
                                                               "d"))
  target = poses.normalize_poses(np.stack([f["joints"] for f in shifted]), np.ones((5, 15), bool),
                                 video["joints"][:1], np.ones((1, 15), bool))
  direct = d2g_renderer.render_frames(renderer.networks, renderer.params, jnp.asarray(target),
                                      jnp.ones((5, 15), bool))
  # Within one grey level: batches of 2 (the renderer) and of 5 round differently.
  np.testing.assert_allclose(normalized, inference.to_uint8(direct["prediction"]), atol=1)
  backdrop = np.random.default_rng(4).integers(0, 256, (r, r, 3), dtype=np.uint8)
  swapped = renderer.animate(video["frames"][0], video["frames"], background=backdrop,
                             **inference.annotation_options(renderer, per_frame[0], per_frame,
                                                            "d"))
  out = d2g_renderer.render_frames(renderer.networks, renderer.params,
                                   jnp.asarray(video["joints"]), jnp.ones((5, 15), bool))
  p0 = np.asarray(out["probs"][..., :1])
  composite = np.asarray(out["foreground"]) * (1 - p0) + (backdrop / 127.5 - 1.0) * p0
  np.testing.assert_allclose(swapped, inference.to_uint8((composite + 1) / 2), atol=1)
  # The command line passes the three options (the background image any size: resized, padded).
  iio.imwrite(tmp_path / "backdrop.png", np.full((2 * r, r, 3), 40, np.uint8))
  result = subprocess.run(
      [sys.executable, "-m", "internet_jax.animate", f"--workdir={workdir}",
       f"--source={tmp_path / 'person.png'}", f"--driving={tmp_path / 'dance.mp4'}",
       f"--output={tmp_path / 'cli.mp4'}", "--normalize_pose", "--smooth_poses=2",
       f"--background={tmp_path / 'backdrop.png'}", "--batch_size=2"],
      cwd=REPO, env=dict(os.environ, PYTHONPATH=str(REPO)), capture_output=True, text=True,
      timeout=300)
  assert result.returncode == 0, result.stderr[-2000:]
  assert video_io.read_video(tmp_path / "cli.mp4").shape == (5, r, r, 3)
  # The same poses give the same frames whatever the source photo shows (one person per model).
  other = renderer.animate(np.zeros_like(video["frames"][0]), video["frames"],
                           **inference.annotation_options(renderer, per_frame[0], per_frame, "d"))
  np.testing.assert_array_equal(other, expected)
