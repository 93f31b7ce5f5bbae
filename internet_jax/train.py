"""INTERnet training: one state pytree, one jitted GAN step, and the train/evaluate loop.

The step follows paper Eq. 1 with the frame loss of Eq. 7: G minimises
  adversarial (Eq. 8) + λ_per perceptual (Eq. 9) + λ_sty style (Eqs. 10-11) + feature matching
  + equivariance + λ_reg temporal (Eq. 2, 3 or 4, `config.temporal.scheme`),
and D minimises the multi-scale adversarial loss. G and D are updated from the same forward pass:
one `jax.vjp` of (g_loss, d_loss) and two cotangents (magvit's trick; XLA drops the unused halves).
"""

from __future__ import annotations

import functools
import math
import os
import time
from typing import Any, Callable

from absl import logging
from clu import metric_writers, periodic_actions
import flax
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax

from input_pipeline import datasets, pipeline, video_io
from internet_jax import animate, checkpointing, geometry, losses, models, sharding, visualize
from internet_jax.models import vgg

TEMPORAL_SCHEMES = ("none", "plain", "extrinsic", "intrinsic")


@flax.struct.dataclass
class TrainState:
  """Everything that changes during training (DESIGN §3): one pytree, donated to the step."""
  step: jax.Array
  g_params: Any  # motion estimator + generator
  d_params: Any
  g_opt_state: Any
  d_opt_state: Any
  ema_g_params: Any  # an EMA of g_params, or {} when config.optimizer.ema_decay == 0


# ---------------------------------------------------------------------------------------------
# Construction


def validate_config(config: ml_collections.ConfigDict) -> None:
  """One-line errors naming the field, before anything compiles."""
  if config.temporal.scheme not in TEMPORAL_SCHEMES:
    raise ValueError(f"config.temporal.scheme: unknown scheme {config.temporal.scheme!r}; "
                     f"known: {', '.join(TEMPORAL_SCHEMES)}")
  models.create_models(config)  # validates the model fields; cheap, nothing is initialised
  sharding.check_batch_size(config.batch_size)
  vgg_weights = config.loss.vgg_weights
  if not config.loss.allow_random_vgg and not (vgg_weights and os.path.isfile(vgg_weights)):
    raise FileNotFoundError(
        f"config.loss.vgg_weights: VGG-19 weights not found at {vgg_weights or '(unset)'}; the "
        "perceptual and style losses (Eqs. 9-10) need ImageNet VGG-19 weights: save torchvision's "
        "vgg19(weights='IMAGENET1K_V1').state_dict() as .safetensors there (README: Supplying "
        "VGG-19 weights), or set --config.loss.allow_random_vgg=True to train with random features")


def create_learning_rate_fn(base_lr: float, config: ml_collections.ConfigDict,
                            steps_per_epoch: int) -> optax.Schedule:
  """Piecewise constant: x lr_decay_factor at the end of each epoch in lr_decay_epochs (Sec. 4.1)."""
  boundaries = {int(epoch * steps_per_epoch): config.optimizer.lr_decay_factor
                for epoch in config.optimizer.lr_decay_epochs}
  return optax.piecewise_constant_schedule(base_lr, boundaries)


def create_optimizers(config: ml_collections.ConfigDict, steps_per_epoch: int):
  """RAdam [17] for G and D with the paper's schedule."""
  opt = config.optimizer
  g_tx = optax.radam(create_learning_rate_fn(opt.g_lr, config, steps_per_epoch), b1=opt.b1, b2=opt.b2)
  d_tx = optax.radam(create_learning_rate_fn(opt.d_lr, config, steps_per_epoch), b1=opt.b1, b2=opt.b2)
  return g_tx, d_tx


def create_train_state(config: ml_collections.ConfigDict, generator, discriminator, g_tx,
                       d_tx) -> TrainState:
  """Initial state from config.seed; jit it with replicated out_shardings to build it on the mesh."""
  resolution = config.data.resolution
  image = jnp.zeros((1, resolution, resolution, 3), jnp.float32)
  g_key, d_key = jax.random.split(jax.random.fold_in(jax.random.key(config.seed), 0))
  g_params = generator.init(g_key, image, image)
  d_params = discriminator.init(d_key, image)
  return TrainState(
      step=jnp.zeros((), jnp.int32),
      g_params=g_params,
      d_params=d_params,
      g_opt_state=g_tx.init(g_params),
      d_opt_state=d_tx.init(d_params),
      ema_g_params=g_params if config.optimizer.ema_decay > 0 else {},
  )


def to_float_images(batch: dict[str, jax.Array]) -> dict[str, jax.Array]:
  """uint8 frames -> float32 in [0, 1], inside the jitted step (DESIGN §3: frames stay uint8 on host)."""
  return {name: value.astype(jnp.float32) / 255.0 if value.dtype == jnp.uint8 else value
          for name, value in batch.items()}


# ---------------------------------------------------------------------------------------------
# The step


def _split_real_fake(discriminator_outputs: list[dict], batch_size: int):
  """D runs once on concat([real, fake]); split every map back into the two halves."""
  real = jax.tree.map(lambda x: x[:batch_size], discriminator_outputs)
  fake = jax.tree.map(lambda x: x[batch_size:], discriminator_outputs)
  return real, fake


def loss_terms(g_params, d_params, batch, vgg_params, key, *, generator, discriminator,
               vgg_net, config) -> tuple[tuple[jax.Array, jax.Array], dict]:
  """(g_loss, d_loss) and the logged terms, for one global batch."""
  images = to_float_images(batch)
  source, driving = images["source"], images["driving"]
  outputs = generator.apply(g_params, source, driving)
  prediction = outputs["prediction"]
  batch_size = prediction.shape[0]

  real, fake = _split_real_fake(
      discriminator.apply(d_params, jnp.concatenate([driving, prediction])), batch_size)
  gan_mode = config.loss.gan_mode
  d_loss = jnp.mean(jax.vmap(lambda r, f: losses.discriminator_loss(r, f, gan_mode))(
      [s["prediction"] for s in real], [s["prediction"] for s in fake]))

  weights = {
      "adversarial": config.loss.adversarial,
      "feature_matching": config.loss.feature_matching,
      "perceptual": config.loss.perceptual,
      "style": config.loss.style,
      "equivariance_value": config.loss.equivariance_value,
      "equivariance_jacobian": config.loss.equivariance_jacobian,
      "reconstruction_l1": config.loss.reconstruction_l1,
      "temporal": config.temporal.weight if config.temporal.scheme != "none" else 0.0,
  }
  features_fn = functools.partial(vgg_net.apply, vgg_params)

  # Equivariance: the anchors of D'(z) = D(T(z)) must follow T (FOMM; paper Sec. 4.1 uses TPS).
  tps_keys = jax.random.split(key, batch_size)
  tps = jax.vmap(lambda k: geometry.random_tps(k, config.loss.tps_sigma_affine,
                                               config.loss.tps_sigma_tps, config.loss.tps_points))(tps_keys)
  need_equivariance = weights["equivariance_value"] > 0 or weights["equivariance_jacobian"] > 0
  transformed_anchors = None
  if need_equivariance:
    transformed = jax.vmap(geometry.tps_warp_image)(tps, driving)
    transformed_anchors = generator.apply(g_params, transformed, method="detect_anchors")

  def per_example(example):
    terms = {}
    pred, target = example["prediction"], example["driving"]
    if weights["adversarial"]:
      terms["adversarial"] = losses.generator_adversarial_loss(
          [s["prediction"] for s in example["fake"]], gan_mode)
    if weights["feature_matching"]:
      terms["feature_matching"] = losses.feature_matching_loss(
          [s["features"] for s in example["real"]], [s["features"] for s in example["fake"]])
    if weights["perceptual"] or weights["style"]:
      # One VGG pass per pyramid level serves both Eq. 9 and Eq. 10.
      terms["perceptual"], terms["style"] = losses.perceptual_and_style_loss(
          features_fn, pred, target, tuple(config.loss.pyramid_scales),
          style_layers=tuple(config.loss.style_layers))
    if need_equivariance:
      equivariance = losses.equivariance_loss(example["driving_anchors"],
                                              example["transformed_anchors"], example["tps"])
      terms["equivariance_value"] = equivariance["value"]
      terms["equivariance_jacobian"] = equivariance["jacobian"]
    if weights["reconstruction_l1"]:
      terms["reconstruction_l1"] = losses.l1_loss(pred, target)
    if weights["temporal"]:
      terms["temporal"] = losses.temporal_loss(
          config.temporal.scheme, pred, example["previous"], example["flow"],
          example["flow_confidence"], example["confidence_full"])
    return terms

  examples = {
      "prediction": prediction, "driving": driving, "previous": images["previous"],
      "flow": images["flow"], "flow_confidence": images["flow_confidence"],
      "confidence_full": outputs["confidence_full"], "real": real, "fake": fake,
      "driving_anchors": {k: outputs["driving_anchors"][k] for k in ("value", "jacobian")},
      "tps": tps,
  }
  if need_equivariance:
    examples["transformed_anchors"] = {k: transformed_anchors[k] for k in ("value", "jacobian")}
  terms = jax.tree.map(jnp.mean, jax.vmap(per_example)(examples))
  g_loss = sum(weights[name] * value for name, value in terms.items())

  metrics = {f"g/{name}": value for name, value in terms.items()}
  metrics.update({
      "g/total": g_loss,
      "d/total": d_loss,
      "mean_confidence": jnp.mean(outputs["confidence"]),
      "l1": jnp.mean(jnp.abs(prediction - driving)),
  })
  return (g_loss, d_loss), metrics


def train_step(state: TrainState, batch: dict, vgg_params, *, generator, discriminator, vgg_net,
               g_tx, d_tx, config) -> tuple[TrainState, dict]:
  """Updates D and G from one forward pass; returns the new state and scalar metrics."""
  # Randomness from the seed and the step only (DESIGN §4), so a resumed run draws the same.
  step_key = jax.random.fold_in(training_key(config.seed), state.step)
  loss_fn = functools.partial(loss_terms, batch=batch, vgg_params=vgg_params, key=step_key,
                              generator=generator, discriminator=discriminator, vgg_net=vgg_net,
                              config=config)
  (g_loss, d_loss), vjp_fn, metrics = jax.vjp(loss_fn, state.g_params, state.d_params, has_aux=True)
  one, zero = jnp.ones_like(g_loss), jnp.zeros_like(g_loss)
  g_grads, _ = vjp_fn((one, zero))
  _, d_grads = vjp_fn((zero, one))

  g_updates, g_opt_state = g_tx.update(g_grads, state.g_opt_state, state.g_params)
  g_params = optax.apply_updates(state.g_params, g_updates)
  d_updates, d_opt_state = d_tx.update(d_grads, state.d_opt_state, state.d_params)
  d_params = optax.apply_updates(state.d_params, d_updates)
  ema_g_params = state.ema_g_params
  if config.optimizer.ema_decay > 0:
    decay = config.optimizer.ema_decay
    ema_g_params = jax.tree.map(lambda e, p: decay * e + (1.0 - decay) * p, ema_g_params, g_params)

  metrics.update({
      "g/grad_norm": optax.tree.norm(g_grads),
      "d/grad_norm": optax.tree.norm(d_grads),
      "g/param_norm": optax.tree.norm(g_params),
      "d/param_norm": optax.tree.norm(d_params),
  })
  new_state = state.replace(step=state.step + 1, g_params=g_params, d_params=d_params,
                            g_opt_state=g_opt_state, d_opt_state=d_opt_state,
                            ema_g_params=ema_g_params)
  return new_state, metrics


def training_key(seed: int) -> jax.Array:
  """The key of the per-step randomness (the equivariance transforms); init uses another."""
  return jax.random.fold_in(jax.random.key(seed), 1)


def make_train_step(config, generator, discriminator, vgg_net, g_tx, d_tx, mesh) -> Callable:
  """The jitted step: state replicated and donated, batch sharded along 'data'."""
  step_fn = functools.partial(train_step, generator=generator, discriminator=discriminator,
                              vgg_net=vgg_net, g_tx=g_tx, d_tx=d_tx, config=config)
  replicated = sharding.replicated(mesh)
  return jax.jit(step_fn, donate_argnums=(0,), out_shardings=(replicated, replicated))


def check_finite(metrics: dict[str, float], step: int) -> None:
  """A non-finite loss stops the run with a message naming the term."""
  for name, value in metrics.items():
    if not math.isfinite(value):
      raise FloatingPointError(f"step {step}: loss term {name} is {value}; stopping "
                               "(lower the learning rate or check the data)")


# ---------------------------------------------------------------------------------------------
# Evaluation during training


def evaluate_reconstruction(animator: animate.Animator, source, *, num_videos: int,
                            frames_per_video: int) -> dict[str, float]:
  """Self-reconstruction (paper Sec. 4.1): source = frame 0, drive with evenly spaced frames.

  Returns mean L1 on [0, 1] images and the mean confidence over the test videos used.
  """
  l1, confidence = [], []
  for video in range(min(num_videos, len(source))):
    count = source.num_frames(video)
    indices = np.linspace(0, count - 1, min(count, frames_per_video)).round().astype(int)
    driving = np.stack([source.read_frame(video, int(t)) for t in indices])
    encoding = animator.encode(source.read_frame(video, 0))
    for start, (valid, outputs) in zip(range(0, len(driving), animator.batch_size),
                                       animator.generate_chunks(encoding, driving)):
      target = driving[start:start + valid].astype(np.float32) / 255.0
      l1.append(np.abs(np.asarray(outputs["prediction"][:valid]) - target).mean(axis=(1, 2, 3)))
      confidence.append(np.asarray(outputs["confidence"][:valid]).mean(axis=(1, 2, 3)))
  return {"eval/l1": float(np.concatenate(l1).mean()),
          "eval/mean_confidence": float(np.concatenate(confidence).mean())}


def write_sample_animation(path: str, animator: animate.Animator, source, *, max_frames: int,
                           fps: float = 30.0) -> None:
  """Side-by-side source | driving | output video of the first test video."""
  count = min(source.num_frames(0), max_frames)
  driving = np.stack([source.read_frame(0, t) for t in range(count)])
  output = animator.animate(driving[0], driving)
  panels = np.concatenate([np.broadcast_to(driving[0], driving.shape), driving, output], axis=2)
  video_io.write_video(path, panels, fps=fps)


def summary_images(generator, params, batch: dict[str, np.ndarray], count: int = 4) -> np.ndarray:
  """source | driving | output | anchors | motion field coloured by anchor | confidence."""
  images = {k: jnp.asarray(v[:count]) for k, v in batch.items()}
  floats = to_float_images(images)
  outputs = jax.device_get(jax.jit(generator.apply)(params, floats["source"], floats["driving"]))
  return visualize.training_summary(jax.device_get(images), outputs)


# ---------------------------------------------------------------------------------------------
# The loop


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str) -> TrainState:
  """Trains (resuming from `workdir` if it holds a checkpoint) and returns the final state."""
  validate_config(config)
  os.makedirs(workdir, exist_ok=True)
  mesh = sharding.create_mesh()
  local_batch_size = sharding.check_batch_size(config.batch_size)
  is_chief = jax.process_index() == 0

  train_source = datasets.get_video_source(config.data, "train")
  test_source = datasets.get_video_source(config.data, "test")
  steps_per_epoch = pipeline.steps_per_epoch(len(train_source), config.data.num_repeats,
                                             config.batch_size)
  num_train_steps = (config.num_train_steps if config.num_train_steps > 0
                     else config.num_epochs * steps_per_epoch)
  logging.info("%d training videos, %d steps per epoch, %d steps", len(train_source),
               steps_per_epoch, num_train_steps)
  train_iter = pipeline.create_train_iterator(
      config.data, train_source, batch_size_per_process=local_batch_size, seed=config.seed,
      process_index=jax.process_index(), process_count=jax.process_count())

  generator, discriminator = models.create_models(config)
  g_tx, d_tx = create_optimizers(config, steps_per_epoch)
  replicated = sharding.replicated(mesh)
  state = jax.jit(functools.partial(create_train_state, config=config, generator=generator,
                                    discriminator=discriminator, g_tx=g_tx, d_tx=d_tx),
                  out_shardings=replicated)()
  vgg_net, vgg_params = vgg.create_vgg(config.loss)
  vgg_params = sharding.put_replicated(vgg_params, mesh)

  manager = checkpointing.create_manager(workdir, max_to_keep=config.keep_checkpoints)
  initial_step = 0
  if manager.latest_step() is not None:
    state, initial_step = checkpointing.restore(manager, checkpointing.abstract_like(state),
                                                train_iter)
    logging.info("Resumed from %s at step %d", checkpointing.checkpoint_dir(workdir), initial_step)

  writer = metric_writers.create_default_writer(workdir, just_logging=not is_chief)
  p_train_step = make_train_step(config, generator, discriminator, vgg_net, g_tx, d_tx, mesh)
  g_lr = create_learning_rate_fn(config.optimizer.g_lr, config, steps_per_epoch)
  report = periodic_actions.ReportProgress(num_train_steps=num_train_steps, writer=writer,
                                           every_steps=config.log_every_steps)

  def evaluate(step):
    # Host copies: evaluation runs on each process's local device, never as a multi-host program.
    params = jax.device_get(state.ema_g_params if config.optimizer.ema_decay > 0 else state.g_params)
    animator = animate.Animator(generator, params, batch_size=config.eval_batch_size)
    scores = evaluate_reconstruction(animator, test_source, num_videos=config.num_eval_videos,
                                     frames_per_video=config.eval_frames_per_video)
    logging.info("step %d: %s", step, scores)
    writer.write_scalars(step, scores)
    return animator

  if initial_step == 0:
    evaluate(0)
  with metric_writers.ensure_flushes(writer):
    for step in range(initial_step + 1, num_train_steps + 1):
      with report.timed("data"):
        host_batch = next(train_iter)
        batch = sharding.put_batch(host_batch, mesh)
      with jax.profiler.StepTraceAnnotation("train", step_num=step):
        state, metrics = p_train_step(state, batch, vgg_params)
      report(step)
      if step % config.log_every_steps == 0 or step == num_train_steps:
        scalars = {name: float(value) for name, value in jax.device_get(metrics).items()}
        check_finite(scalars, step)
        scalars["learning_rate_g"] = float(g_lr(step))
        writer.write_scalars(step, {f"train/{name}": value for name, value in scalars.items()})
      if config.image_every_steps > 0 and (step % config.image_every_steps == 0 or step == num_train_steps):
        summary = summary_images(generator, jax.device_get(state.g_params), host_batch)
        writer.write_images(step, {"train/summary": summary[None]})
      if step % config.checkpoint_every_steps == 0 or step == num_train_steps:
        checkpointing.save(manager, step, state, train_iter, config)
    manager.wait_until_finished()
  manager.close()

  animator = evaluate(num_train_steps)
  if config.sample_animation and is_chief and len(test_source):
    path = os.path.join(workdir, "sample_animation.mp4")
    write_sample_animation(path, animator, test_source, max_frames=config.sample_animation_frames)
    logging.info("Wrote %s", path)
  writer.flush()
  return state
