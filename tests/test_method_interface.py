"""The method interface: a toy method written here (a one-layer convolutional autoencoder with
one parameter group, the worked example of `internet_jax.method.Method`) trains through the real
trainer (checkpoint, resume, TensorBoard scalars and images, evaluation, sample animation) and
renders through the real animate path; shared code never imports a method; old checkpoints are
refused with one line."""

import ast
import copy
import functools
import pathlib

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from input_pipeline import video_io
from internet_jax import (animate, checkpointing, config_checks, inference, method, notebook,
                          optimizers, train, visualize)

REPO = pathlib.Path(__file__).resolve().parent.parent


# ---------------------------------------------------------------------------------------------
# The toy method: everything a method writes.


class ToyAutoencoder(nn.Module):
  """Reconstructs the driving frame from itself (it ignores the source): one 3x3 convolution."""

  @nn.compact
  def __call__(self, driving):
    return jax.nn.sigmoid(nn.Conv(3, (3, 3))(driving))


def toy_validate(config):
  optimizers.validate(config, ("g_lr",))
  config_checks.require_weight(config, "loss.reconstruction_l1")


def toy_batch_shapes(config, batch_size):
  r = config.data.resolution
  return {name: jax.ShapeDtypeStruct((batch_size, r, r, 3), jnp.uint8)
          for name in ("source", "driving")}


def toy_init(network, key, config):
  r = config.data.resolution
  return {"g": network.init(key, jnp.zeros((1, r, r, 3)))}


def toy_optimizers(config, steps_per_epoch):
  return {"g": optimizers.create(config, config.optimizer.g_lr, steps_per_epoch)}


def toy_loss(network, params, constants, batch, key):
  del constants, key
  images = method.to_float_images(batch)

  def per_example(driving):
    return jnp.mean(jnp.abs(network.apply(params["g"], driving[None])[0] - driving))

  loss = jnp.mean(jax.vmap(per_example)(images["driving"]))
  return {"g": loss}, {"l1": loss}


def toy_example(source, video, rng):
  """Frame 0 and a random frame of the video (numpy in, numpy out)."""
  t = int(rng.integers(0, source.num_frames(video)))
  return {"source": np.asarray(source.read_frame(video, 0)),
          "driving": np.asarray(source.read_frame(video, t))}


class ToyRenderer(inference.Renderer):

  def __init__(self, network, params, batch_size):
    super().__init__(resolution=32, batch_size=batch_size)
    self.network, self.params = network, params

  def start(self, source, first_driving):
    return 0  # the carry counts the frames rendered so far

  def step(self, carry, chunk):
    prediction = self.network.apply(self.params["g"], jnp.asarray(chunk, jnp.float32) / 255.0)
    return carry + len(chunk), {"prediction": prediction}


def toy_summaries(network, params, batch):
  output = network.apply(params["g"], jnp.asarray(batch["driving"][:2], jnp.float32) / 255.0)
  output = inference.to_uint8(np.asarray(output))
  return {"toy": visualize.tile_images([[batch["driving"][0], output[0]]], pad=2)}


TOY = method.Method(
    validate_config=toy_validate,
    build=lambda config: ToyAutoencoder(),
    batch_shapes=toy_batch_shapes,
    init_params=toy_init,
    optimizers=toy_optimizers,
    loss_fn=toy_loss,
    example_fn=lambda config: toy_example,
    renderer=lambda network, params, config, batch_size: ToyRenderer(network, params, batch_size),
    summary_images=toy_summaries,
)


@pytest.fixture
def toy_config(tiny_config):
  method.register("toy", TOY)
  config = copy.deepcopy(tiny_config)
  config.method = "toy"
  config.num_train_steps = 30
  config.optimizer.g_lr = 0.05
  config.log_every_steps = 1
  config.image_every_steps = 30
  config.checkpoint_every_steps = 10
  config.eval_batch_size = 4
  return config


# ---------------------------------------------------------------------------------------------


def test_toy_method_trains_resumes_and_renders_through_the_shared_code(toy_config, tmp_path):
  workdir = tmp_path / "toy"
  state = train.train_and_evaluate(toy_config, str(workdir))
  assert int(state.step) == 30 and set(state.params) == {"g"}
  assert checkpointing.complete_steps(checkpointing.checkpoint_dir(str(workdir)))[-1] == 30

  # Summaries: the toy's own loss and image panels, the learning rate of its one group, the
  # training-time evaluation beside the copy-source baseline.
  scalars = notebook.read_scalars(str(workdir))
  steps, l1 = scalars["train/l1"]
  assert list(steps) == list(range(1, 31))
  assert np.mean(l1[-5:]) < 0.6 * l1[0], l1  # the loss fell
  assert scalars["train/learning_rate/g"][1][-1] == pytest.approx(toy_config.optimizer.g_lr)
  assert list(scalars["train/steps_per_sec"][0]) == list(steps)  # the progress line's rate
  assert np.all(scalars["train/steps_per_sec"][1] > 0)
  assert {"eval/l1", "eval/l1_copy_source", "eval/cross/l1"} <= set(scalars)
  assert "eval/mean_confidence" not in scalars and "eval/motion_epe" not in scalars
  assert [step for step, _ in notebook.read_images(str(workdir), "train/toy")] == [30]
  assert (workdir / "sample_animation.mp4").is_file()

  # Resume: five more steps continue from the checkpoint of step 30.
  config = copy.deepcopy(toy_config)
  config.num_train_steps = 35
  assert int(train.train_and_evaluate(config, str(workdir)).step) == 35

  # Rendering through the real animate path, from the saved config and parameters.
  renderer = animate.load_renderer(str(workdir), batch_size=4)
  assert isinstance(renderer, ToyRenderer)
  source = np.full((40, 20, 3), 200, np.uint8)  # brought to 32 x 32 by animate
  driving = np.random.default_rng(0).integers(0, 256, (6, 32, 32, 3), dtype=np.uint8)
  frames = animate.animate(renderer, source, driving)
  assert frames.shape == (6, 32, 32, 3) and frames.dtype == np.uint8
  _, _, params, _, step = checkpointing.load_inference(str(workdir))
  expected = inference.to_uint8(np.asarray(TOY.build(None).apply(
      params["g"], driving.astype(np.float32) / 255.0)))
  np.testing.assert_array_equal(frames, expected)
  assert step == 35
  out = tmp_path / "toy.mp4"
  video_io.write_video(tmp_path / "driving.mp4", driving, fps=10)
  assert animate.animate_file(renderer, tmp_path / "driving.mp4", tmp_path / "driving.mp4", out,
                              progress=False) == 6


def test_renderer_threads_the_carry_and_pads_the_last_chunk():
  seen = []

  class Counting(inference.Renderer):
    def start(self, source, first_driving):
      return 0

    def step(self, carry, chunk):
      seen.append((carry, len(chunk)))
      return carry + 1, {"prediction": np.asarray(chunk, np.float32) / 255.0}

  frames = np.arange(7 * 4 * 4 * 3, dtype=np.uint8).reshape(7, 4, 4, 3)
  out = Counting(resolution=4, batch_size=3).animate(frames[0], frames)
  np.testing.assert_array_equal(out, frames)
  assert seen == [(0, 3), (1, 3), (2, 3)]  # 7 frames: chunks of 3, the last padded
  with pytest.raises(ValueError, match="no driving frames"):
    Counting(4, 3).animate(frames[0], frames[:0])
  # An inference option the method does not take: one line naming it (the CLI's --relative).
  with pytest.raises(ValueError, match=r"^Counting: unknown inference option\(s\) relative; "
                     r"this method takes none$"):
    Counting(4, 3).animate(frames[0], frames, relative=True)


def test_unknown_method_is_one_line():
  with pytest.raises(ValueError, match=r"^config.method: unknown method 'bdmm9'; known: .*internet"):
    method.get("bdmm9")
  assert "internet" in method.available()


def test_shared_code_never_imports_a_method():
  """Outside internet_jax/methods/ nothing imports internet_jax.methods.<name> (the registry
  `method.get` loads them by name). Tests may: a method's tests test its internals. Allowed:
  the benchmarks of one method's own internals, benchmarks/warp.py (INTERnet's warp sites) and
  benchmarks/d2g_inference.py (D2G-Net's frame renderer)."""
  allowed = {REPO / "benchmarks" / "warp.py", REPO / "benchmarks" / "d2g_inference.py"}
  offenders = []
  for folder in ("internet_jax", "input_pipeline", "configs", "benchmarks"):
    for path in sorted((REPO / folder).rglob("*.py")):
      if (REPO / "internet_jax" / "methods") in path.parents or path in allowed:
        continue
      for node in ast.walk(ast.parse(path.read_text())):
        names = ([alias.name for alias in node.names] if isinstance(node, ast.Import) else
                 [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
        if any(name.startswith("internet_jax.methods.") for name in names):
          offenders.append(f"{path.relative_to(REPO)}:{node.lineno}")
  assert not offenders, offenders


def test_checkpoints_of_the_old_layout_are_refused_with_one_line(tiny_config, tmp_path):
  workdir = str(tmp_path / "old")
  old_state = {"step": np.int32(5), "g_params": {"w": np.ones(3, np.float32)},
               "d_params": {"w": np.ones(3, np.float32)}}
  manager = checkpointing.create_manager(workdir)
  checkpointing.save(manager, 5, old_state, None, tiny_config)
  manager.wait_until_finished()
  with pytest.raises(ValueError, match=r"older layout \(g_params, d_params\)") as info:
    checkpointing.load_inference(workdir)
  assert "\n" not in str(info.value) and str(info.value).startswith(workdir)
  abstract = jax.eval_shape(functools.partial(
      train.create_train_state, tiny_config, method.get("internet"),
      method.get("internet").build(tiny_config),
      method.get("internet").optimizers(tiny_config, 10)))
  with pytest.raises(checkpointing.IncompatibleCheckpointError, match="older layout"):
    checkpointing.restore_latest(manager, workdir, abstract, None)
  manager.close()


# ---------------------------------------------------------------------------------------------
# Training in chunks (Method.chunks): one update per chunk, the carry passed on.


def _chunked_toy():
  """A scalar 'recurrent' model: prediction_t = w * x_t + carry, the carry the chunk's last
  prediction. Every chunk of a clip is one update of w."""

  def split(network, constants, batch):
    del network, constants
    clip = jnp.swapaxes(batch["clip"].reshape(batch["clip"].shape[0], 3, -1), 0, 1)
    return clip, batch["start"]  # chunks (3, B, frames per chunk), context (B,)

  def init_carry(network, params, context, key):
    del network, key
    return context * params["g"]["w"]

  def loss_fn(network, params, constants, chunk, context, carry, key):
    del network, constants, context, key
    prediction = params["g"]["w"] * chunk + carry[:, None]
    loss = jnp.mean((prediction - 1.0) ** 2)
    return {"g": loss}, ({"mse": loss}, prediction[:, -1])

  return method.Method(
      validate_config=lambda config: None, build=lambda config: None,
      batch_shapes=lambda config, batch_size: {}, init_params=lambda *a: {"g": {"w": 0.5}},
      optimizers=lambda config, steps: {"g": optax.sgd(0.1)}, loss_fn=None,
      example_fn=None, renderer=None, summary_images=None,
      chunks=method.Chunks(split=split, init_carry=init_carry, loss_fn=loss_fn))


def test_chunked_training_updates_once_per_chunk_with_the_carry_passed_on(tiny_config):
  toy = _chunked_toy()
  config = copy.deepcopy(tiny_config)
  config.optimizer.ema_decay = 0.0
  txs = toy.optimizers(config, 1)
  state = train.create_train_state(config, toy, None, txs)
  state = jax.tree.map(jnp.asarray, state)
  rng = np.random.default_rng(0)
  batch = {"clip": jnp.asarray(rng.normal(size=(2, 12)), jnp.float32),
           "start": jnp.asarray(rng.normal(size=(2,)), jnp.float32)}
  new_state, metrics = jax.jit(functools.partial(
      train.train_step, method=toy, networks=None, txs=txs, config=config))(state, batch, None)

  # By hand: three SGD steps, each on its chunk, the carry a constant from the step before.
  w = 0.5
  carry = np.asarray(batch["start"]) * w
  chunks = np.asarray(batch["clip"]).reshape(2, 3, 4)
  losses = []
  for index in range(3):
    x = chunks[:, index]
    prediction = w * x + carry[:, None]
    losses.append(np.mean((prediction - 1.0) ** 2))
    grad = np.mean(2.0 * (prediction - 1.0) * x)  # d/dw with the carry held fixed
    carry = prediction[:, -1]
    w -= 0.1 * grad
  np.testing.assert_allclose(float(new_state.params["g"]["w"]), w, rtol=1e-5)
  np.testing.assert_allclose(float(metrics["mse"]), np.mean(losses), rtol=1e-5)
  assert int(new_state.step) == 1 and int(metrics["nonfinite"]) == 0
