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
import signal
import threading
from typing import Any, Callable

from absl import logging
import flax
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax

from input_pipeline import datasets, pipeline, video_io
from input_pipeline import flow as flow_lib
from internet_jax import (animate, checkpointing, errors, geometry, losses, models, sharding,
                          visualize)
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
  # Steps whose loss or gradients were non-finite and were skipped (no update), in total and in a
  # row up to now (the run stops at config.max_consecutive_nonfinite).
  skipped_steps: jax.Array
  consecutive_skipped_steps: jax.Array


# ---------------------------------------------------------------------------------------------
# Construction


def _require(condition: bool, field: str, problem: str) -> None:
  """A one-line ValueError `config.FIELD: problem` unless `condition`."""
  if not condition:
    raise ValueError(f"config.{field}: {problem}")


def _is_int(value: Any) -> bool:
  """An integer that is not a bool (ConfigDict fields may be numpy integers)."""
  return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


# Loss weights that must be >= 0 (a negative weight would maximise the term).
LOSS_WEIGHT_FIELDS = ("loss.adversarial", "loss.feature_matching", "loss.perceptual", "loss.style",
                      "loss.equivariance_value", "loss.equivariance_jacobian",
                      "loss.reconstruction_l1", "temporal.weight")
VGG_WEIGHT_SUFFIXES = (".safetensors", ".npz", ".pth", ".pt", ".bin")


def _field(config: ml_collections.ConfigDict, name: str) -> Any:
  """The value of a dotted field name such as "loss.perceptual"."""
  value = config
  for part in name.split("."):
    value = value[part]
  return value


def uses_vgg(loss_config) -> bool:
  """Whether a loss term needs VGG-19 features (Eqs. 9-10); without one no VGG is built."""
  return loss_config.perceptual > 0 or loss_config.style > 0


def create_vgg(loss_config):
  """(vgg_net, vgg_params) for the perceptual and style terms (`vgg.create_vgg`), or (None, {})
  when no loss term uses VGG-19."""
  return vgg.create_vgg(loss_config) if uses_vgg(loss_config) else (None, {})


def _validate_vgg_weights(loss_config) -> None:
  """The weights file exists and is of a kind we read without unpickling (DESIGN §5)."""
  vgg_weights = loss_config.vgg_weights
  if not uses_vgg(loss_config):
    # Weights nothing reads would look as if the run used them.
    _require(not vgg_weights, "loss.vgg_weights",
             f"{vgg_weights} is given but no loss term uses VGG-19 (loss.perceptual and "
             "loss.style are 0): set them (configs/synthetic.py:paper_losses does), or drop it")
    return
  if not loss_config.allow_random_vgg and not (vgg_weights and os.path.isfile(vgg_weights)):
    raise FileNotFoundError(
        f"config.loss.vgg_weights: VGG-19 weights not found at {vgg_weights or '(unset)'}; the "
        "perceptual and style losses (Eqs. 9-10) need ImageNet VGG-19 weights: save torchvision's "
        "vgg19(weights='IMAGENET1K_V1').state_dict() as .safetensors there (README: Supplying "
        "VGG-19 weights), or set --config.loss.allow_random_vgg=True to train with random features")
  if not vgg_weights:
    return
  if not os.path.isfile(vgg_weights):
    raise FileNotFoundError(f"config.loss.vgg_weights: no file at {vgg_weights}")
  suffix = os.path.splitext(vgg_weights)[1].lower()
  _require(suffix in VGG_WEIGHT_SUFFIXES, "loss.vgg_weights",
           f"{vgg_weights} has an unsupported extension {suffix!r}; use "
           f"{', '.join(VGG_WEIGHT_SUFFIXES)}")
  if suffix in (".pth", ".pt", ".bin"):
    import importlib.util  # pylint: disable=g-import-not-at-top
    # A .pth is a pickle: only torch.load(weights_only=True) may read it, never plain unpickling.
    _require(importlib.util.find_spec("torch") is not None, "loss.vgg_weights",
             f"{vgg_weights} is a PyTorch pickle and torch is not installed, so it is not read "
             "(nothing here unpickles files); convert it to .safetensors where torch is installed")


def validate_config(config: ml_collections.ConfigDict) -> None:
  """One-line errors naming the field, before anything is prepared, written or compiled."""
  if config.temporal.scheme not in TEMPORAL_SCHEMES:
    raise ValueError(f"config.temporal.scheme: unknown scheme {config.temporal.scheme!r}; "
                     f"known: {', '.join(TEMPORAL_SCHEMES)}")
  data = config.data
  _require(data.name in datasets.NAMES, "data.name",
           f"unknown dataset {data.name!r}; known: {', '.join(datasets.NAMES)}")
  _require(_is_int(data.resolution) and data.resolution > 0, "data.resolution",
           f"must be a positive integer, got {data.resolution!r}")
  _require(_is_int(data.min_driving_offset) and data.min_driving_offset >= 0,
           "data.min_driving_offset", f"must be an integer >= 0, got {data.min_driving_offset!r}")
  _require(_is_int(data.num_repeats) and data.num_repeats >= 1, "data.num_repeats",
           f"must be an integer >= 1, got {data.num_repeats!r}")
  _require(_is_int(data.worker_count) and data.worker_count >= 0, "data.worker_count",
           f"must be an integer >= 0, got {data.worker_count!r}")
  presets = tuple(flow_lib.PRESETS)
  _require(data.flow_preset in presets, "data.flow_preset",
           f"unknown DIS preset {data.flow_preset!r}; known: {', '.join(presets)}")
  _require(_is_int(config.model.num_anchors) and config.model.num_anchors >= 1,
           "model.num_anchors", f"must be an integer >= 1, got {config.model.num_anchors!r}")
  models.create_models(config)  # validates the model fields; cheap, nothing is initialised
  sharding.check_batch_size(config.batch_size)

  loss = config.loss
  for name in LOSS_WEIGHT_FIELDS:
    value = _field(config, name)
    _require(math.isfinite(value) and value >= 0, name,
             f"a loss weight must be finite and >= 0, got {value!r}")
  _require(math.isfinite(loss.equivariance_colour) and loss.equivariance_colour >= 0,
           "loss.equivariance_colour", f"must be finite and >= 0, got {loss.equivariance_colour!r}")
  _require(loss.gan_mode in losses.GAN_MODES, "loss.gan_mode",
           f"unknown GAN mode {loss.gan_mode!r}; known: {', '.join(losses.GAN_MODES)}")
  for name in ("pyramid_scales", "reconstruction_scales"):
    scales = tuple(loss[name])
    _require(len(scales) > 0 and all(0 < s <= 1 for s in scales), f"loss.{name}",
             f"scales must lie in (0, 1], got {scales}")
  unknown_layers = [name for name in loss.style_layers if name not in vgg.LAYER_NAMES]
  _require(not unknown_layers, "loss.style_layers",
           f"unknown VGG-19 layer(s) {unknown_layers}; known: {', '.join(vgg.LAYER_NAMES)}")
  _validate_vgg_weights(loss)

  opt = config.optimizer
  for name in ("g_lr", "d_lr", "lr_decay_factor"):
    _require(math.isfinite(opt[name]) and opt[name] > 0, f"optimizer.{name}",
             f"must be > 0, got {opt[name]!r}")
  _require(opt.name in OPTIMIZERS, "optimizer.name",
           f"unknown optimizer {opt.name!r}; known: {', '.join(OPTIMIZERS)}")
  for name in ("b1", "b2", "ema_decay"):
    _require(0 <= opt[name] < 1, f"optimizer.{name}", f"must lie in [0, 1), got {opt[name]!r}")

  _require(_is_int(config.num_train_steps) and (config.num_train_steps > 0
                                               or config.num_train_steps == -1),
           "num_train_steps", f"must be > 0, or -1 for num_epochs, got {config.num_train_steps!r}")
  if config.num_train_steps == -1:
    _require(config.num_epochs > 0, "num_epochs", f"must be > 0, got {config.num_epochs!r}")
  for name in ("log_every_steps", "checkpoint_every_steps", "keep_checkpoints",
               "max_consecutive_nonfinite", "eval_frames_per_video", "eval_batch_size"):
    _require(_is_int(config[name]) and config[name] >= 1, name,
             f"must be an integer >= 1, got {config[name]!r}")
  for name in ("image_every_steps", "num_eval_videos", "eval_every_steps"):
    _require(_is_int(config[name]) and config[name] >= 0, name,
             f"must be an integer >= 0, got {config[name]!r}")


def create_learning_rate_fn(base_lr: float, config: ml_collections.ConfigDict,
                            steps_per_epoch: int) -> optax.Schedule:
  """Piecewise constant: x lr_decay_factor at the end of each epoch in lr_decay_epochs (Sec. 4.1)."""
  boundaries = {int(epoch * steps_per_epoch): config.optimizer.lr_decay_factor
                for epoch in config.optimizer.lr_decay_epochs}
  return optax.piecewise_constant_schedule(base_lr, boundaries)


def next_learning_rate(schedule: optax.Schedule, steps: int, skipped_steps: int) -> float:
  """The rate the next applied update will use. optax counts applied updates only (a skipped
  non-finite step keeps the optimiser state), so its schedule runs at steps - skipped_steps."""
  return float(schedule(steps - skipped_steps))


# config.optimizer.name: RAdam is the paper's; Adam is FOMM's (no variance rectification, whose
# implicit warm-up spans ~2 / (1 - b2) = 2000 steps at b2 = 0.999).
OPTIMIZERS = {"radam": optax.radam, "adam": optax.adam}


def create_optimizers(config: ml_collections.ConfigDict, steps_per_epoch: int):
  """RAdam [17] (or `config.optimizer.name`) for G and D with the paper's schedule."""
  opt = config.optimizer
  make = OPTIMIZERS[opt.name]
  g_tx = make(create_learning_rate_fn(opt.g_lr, config, steps_per_epoch), b1=opt.b1, b2=opt.b2)
  d_tx = make(create_learning_rate_fn(opt.d_lr, config, steps_per_epoch), b1=opt.b1, b2=opt.b2)
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
      skipped_steps=jnp.zeros((), jnp.int32),
      consecutive_skipped_steps=jnp.zeros((), jnp.int32),
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

  gan_mode = config.loss.gan_mode
  # Without the adversarial and feature-matching terms G never sees D, so D is not run at all
  # (FOMM's configs with generator_gan 0 still train D; here that would be compute for nothing).
  use_discriminator = config.loss.adversarial > 0 or config.loss.feature_matching > 0
  if use_discriminator:
    real, fake = _split_real_fake(
        discriminator.apply(d_params, jnp.concatenate([driving, prediction])), batch_size)
    d_loss = jnp.mean(jax.vmap(lambda r, f: losses.discriminator_loss(r, f, gan_mode))(
        [s["prediction"] for s in real], [s["prediction"] for s in fake]))
  else:
    d_loss = jnp.zeros((), jnp.float32)

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
  features_fn = functools.partial(vgg_net.apply, vgg_params) if vgg_net is not None else None

  # Equivariance: the anchors of D'(z) = D(T(z)) must follow T (FOMM; paper Sec. 4.1 uses TPS).
  tps_keys = jax.random.split(key, batch_size)
  tps = jax.vmap(lambda k: geometry.random_tps(k, config.loss.tps_sigma_affine,
                                               config.loss.tps_sigma_tps, config.loss.tps_points))(tps_keys)
  need_equivariance = weights["equivariance_value"] > 0 or weights["equivariance_jacobian"] > 0
  transformed_anchors = None
  if need_equivariance:
    transformed = jax.vmap(geometry.tps_warp_image)(tps, driving)
    if config.loss.equivariance_colour > 0:
      colour_keys = jax.random.split(jax.random.fold_in(key, 1), batch_size)
      transformed = jax.vmap(lambda k, image: losses.random_colour_change(
          k, image, config.loss.equivariance_colour))(colour_keys, transformed)
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
      terms["reconstruction_l1"] = losses.pyramid_l1_loss(
          pred, target, tuple(config.loss.reconstruction_scales))
    if weights["temporal"]:
      terms["temporal"] = losses.temporal_loss(
          config.temporal.scheme, pred, example["previous"], example["flow"],
          example["flow_confidence"], example["confidence_full"])
    return terms

  examples = {
      "prediction": prediction, "driving": driving, "previous": images["previous"],
      "flow": images["flow"], "flow_confidence": images["flow_confidence"],
      "confidence_full": outputs["confidence_full"],
      "driving_anchors": {k: outputs["driving_anchors"][k] for k in ("value", "jacobian")},
      "tps": tps,
  }
  if use_discriminator:
    examples.update(real=real, fake=fake)
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
  """Updates D and G from one forward pass; returns the new state and scalar metrics.

  A step whose losses, gradients or updated parameters are not all finite changes nothing but the
  step and the skip counters (the non-finite guard): the update is computed as usual and then
  discarded with a select, so a NaN never enters the parameters, the optimiser moments or a
  checkpoint. The metrics keep the step's raw values, so the host can name the offending terms.
  """
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

  norms = {
      "g/grad_norm": optax.tree.norm(g_grads),
      "d/grad_norm": optax.tree.norm(d_grads),
      "g/param_norm": optax.tree.norm(g_params),
      "d/param_norm": optax.tree.norm(d_params),
  }
  # The losses (every term is in one of them), both gradients and both updated parameter sets:
  # norms are NaN/inf exactly when some element is (or when they overflow, which is as bad).
  finite = jnp.all(jnp.isfinite(jnp.stack([g_loss, d_loss, *norms.values()])))
  updated = dict(g_params=g_params, d_params=d_params, g_opt_state=g_opt_state,
                 d_opt_state=d_opt_state, ema_g_params=ema_g_params)
  previous = {name: getattr(state, name) for name in updated}
  kept = jax.tree.map(lambda new, old: jnp.where(finite, new, old), updated, previous)
  skipped = jnp.logical_not(finite).astype(jnp.int32)
  new_state = state.replace(
      step=state.step + 1,
      skipped_steps=state.skipped_steps + skipped,
      consecutive_skipped_steps=jnp.where(finite, 0, state.consecutive_skipped_steps + 1),
      **kept)

  metrics.update(norms)
  metrics.update({
      "nonfinite": skipped,
      "skipped_steps": new_state.skipped_steps,
      "consecutive_skipped_steps": new_state.consecutive_skipped_steps,
  })
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


# Guard counters and flags: metrics that are not loss terms.
GUARD_METRICS = ("nonfinite", "skipped_steps", "consecutive_skipped_steps")


def nonfinite_terms(metrics: dict[str, float]) -> list[str]:
  """Names of the logged values that are NaN or infinite: loss terms first, then norms."""
  names = [name for name, value in metrics.items()
           if name not in GUARD_METRICS and not math.isfinite(float(value))]
  return sorted(names, key=lambda n: (n.endswith("_norm"), n.endswith("/total"), n))


class NonFiniteMonitor:
  """Host side of the non-finite guard: warns about skipped steps and stops the run after
  `max_consecutive` in a row, naming the non-finite loss terms.

  `check(step, metrics)` reads one int32 of the step's metrics; the loop calls it one step late
  (after dispatching the next step), so that it never makes the host wait for the device.
  """

  def __init__(self, max_consecutive: int):
    self.max_consecutive = int(max_consecutive)

  def check(self, step: int, metrics: dict) -> None:
    if not int(jax.device_get(metrics["nonfinite"])):
      return
    values = {name: float(value) for name, value in jax.device_get(metrics).items()}
    names = ", ".join(nonfinite_terms(values)) or "(none of the logged values)"
    consecutive = int(values["consecutive_skipped_steps"])
    logging.warning("step %d: non-finite %s; the update was skipped (%d in a row, %d in total)",
                    step, names, consecutive, int(values["skipped_steps"]))
    if consecutive >= self.max_consecutive:
      raise FloatingPointError(
          f"step {step}: {consecutive} consecutive steps with non-finite values "
          f"(config.max_consecutive_nonfinite={self.max_consecutive}), non-finite: {names}; "
          "stopping with the last finite parameters in the checkpoints (lower the learning rate "
          "or check the data)")


class StopSignals:
  """SIGTERM/SIGINT during training set a flag; the loop saves a checkpoint and stops.

  Single process: Python handlers, installed on entry and the previous ones restored on exit; a
  second signal falls through to the previous handler (stop at once). Several processes: JAX's
  preemption service (which listens to SIGTERM) picks a step at which all of them stop together;
  Python handlers would make the processes stop at different steps and are not installed.
  """

  SIGNALS = (signal.SIGTERM, signal.SIGINT)

  def __init__(self):
    self.signum: int | None = None
    self._previous: dict[int, Any] = {}

  def __enter__(self) -> "StopSignals":
    if jax.process_count() > 1:
      return self
    if threading.current_thread() is not threading.main_thread():
      logging.warning("train_and_evaluate runs outside the main thread: SIGTERM/SIGINT are not "
                      "turned into a checkpoint and a clean stop")
      return self
    for signum in self.SIGNALS:
      self._previous[signum] = signal.signal(signum, self._handle)
    return self

  def __exit__(self, *exc_info) -> None:
    for signum, previous in self._previous.items():
      # None: a handler not installed from Python; the default is the closest we can restore.
      signal.signal(signum, previous if previous is not None else signal.SIG_DFL)
    self._previous = {}

  def _handle(self, signum: int, frame) -> None:
    if self.signum is not None:
      # Asked twice: give the signal its previous meaning (KeyboardInterrupt, or termination).
      previous = self._previous.get(signum)
      signal.signal(signum, previous if previous is not None else signal.SIG_DFL)
      if callable(previous):
        previous(signum, frame)
      else:
        os.kill(os.getpid(), signum)
      return
    self.signum = signum
    logging.warning("Received %s: stopping after this step with a checkpoint (send it again to "
                    "stop at once, without one)", errors.signal_name(signum))

  def requested(self, step: int) -> bool:
    """Whether to save and stop after `step` (call it at every step on every process)."""
    if jax.process_count() > 1:
      from jax.experimental import multihost_utils  # pylint: disable=g-import-not-at-top
      try:
        if multihost_utils.reached_preemption_sync_point(step):
          self.signum = self.signum or signal.SIGTERM
          return True
      except RuntimeError:
        pass  # the preemption service is disabled: preemption is not handled
      return False
    return self.signum is not None


# ---------------------------------------------------------------------------------------------
# Evaluation during training


def _eval_ground_truth(ground_truth_dir, name: str, num_frames: int) -> dict | None:
  """The synthetic ground truth of test video `name` (`<ground_truth_dir>/<name>.npz`: part_labels,
  source_coords, source_visible), or None (no directory, no file, or another frame count)."""
  if ground_truth_dir is None:
    return None
  from internet_jax.metrics import synthetic_gt  # pylint: disable=g-import-not-at-top
  path = os.path.join(os.fspath(ground_truth_dir), f"{name}.npz")
  if not os.path.isfile(path):
    logging.warning("evaluation: no ground truth %s; no figure-region scores or motion EPE for "
                    "this video", path)
    return None
  truth = synthetic_gt.load_ground_truth(path, keys=synthetic_gt.EPE_KEYS)
  if len(truth["source_coords"]) != num_frames:
    logging.warning("evaluation: %s has %d frames, the test video %d; not used", path,
                    len(truth["source_coords"]), num_frames)
    return None
  return truth


def _score_animation(tally: dict, animator, encoding, source_frame: np.ndarray,
                     driving: np.ndarray, target: np.ndarray, truth: dict | None,
                     indices: np.ndarray) -> None:
  """Animates `encoding` (of `source_frame`) by `driving` and adds the per-frame scores against
  `target` (uint8 frames `indices` of the test video), and the motion EPEs, to `tally`."""
  from internet_jax import evaluate as evaluate_lib  # pylint: disable=g-import-not-at-top
  from internet_jax.metrics import synthetic_gt  # pylint: disable=g-import-not-at-top
  figure = (None if truth is None else
            synthetic_gt.figure_mask(truth["part_labels"], target.shape[1:3], indices))
  motions = []
  for start, (valid, outputs) in zip(range(0, len(driving), animator.batch_size),
                                     animator.generate_chunks(encoding, driving)):
    chunk = evaluate_lib.frame_scores(
        np.asarray(outputs["prediction"][:valid], np.float32),
        target[start:start + valid].astype(np.float32) / 255.0,
        source_frame.astype(np.float32) / 255.0, with_ssim=False, data_range=1.0,
        figure=None if figure is None else figure[start:start + valid])
    for key, value in chunk.items():
      tally["per_frame"].setdefault(key, []).append(value)
    tally["confidence"].append(np.asarray(outputs["confidence"][:valid]).mean(axis=(1, 2, 3)))
    if truth is not None:
      motions.append(np.asarray(outputs["motion_full"][:valid], np.float32))
  if truth is not None:
    motion = synthetic_gt.motion_scores(np.concatenate(motions), truth, frames=indices)
    tally["motion_epe"].append(motion["epe_figure"])
    tally["motion_epe_zero_motion"].append(motion["epe_figure_zero_motion"])


def _tally_scores(tally: dict, prefix: str) -> dict[str, float]:
  """The means of a `_score_animation` tally as `<prefix><key>` scalars."""
  from internet_jax import evaluate as evaluate_lib  # pylint: disable=g-import-not-at-top
  scores = {f"{prefix}{key}": value for key, value in
            evaluate_lib.mean_frame_scores(tally["per_frame"], None).items() if value is not None}
  for key in ("motion_epe", "motion_epe_zero_motion"):
    values = [v for v in tally[key] if not math.isnan(v)]  # NaN: no visible figure pixel at all
    if values:
      scores[f"{prefix}{key}"] = float(np.mean(values))
  scores[f"{prefix}mean_confidence"] = float(np.concatenate(tally["confidence"]).mean())
  return scores


def evaluate_reconstruction(animator: animate.Animator, source, *, num_videos: int,
                            frames_per_video: int, ground_truth_dir=None,
                            manual_dir=None) -> dict[str, float]:
  """Self-reconstruction (paper Sec. 4.1): source = frame 0, drive with evenly spaced frames.

  Every model score comes with its trivial baseline on the same frames, computed by the functions
  `python -m internet_jax.evaluate` uses (`evaluate.frame_scores` / `mean_frame_scores`,
  `synthetic_gt.motion_scores`; definitions in `evaluate.DEFINITIONS`), on the float output:
    eval/l1, eval/l1_copy_source: L1 on [0, 1] of the model and of copy-source (output = frame 0);
    eval/psnr, eval/psnr_copy_source, eval/psnr_copy_frames: PSNR (dB); the copy-source mean
      leaves out the frames it reproduces exactly (frame 0), psnr_copy_frames is the model's
      PSNR on those same frames;
  with ground truth (`<ground_truth_dir>/<name>.npz`, the synthetic data's):
    eval/l1_figure, eval/l1_figure_copy_source, eval/psnr_figure, eval/psnr_figure_copy_source,
      eval/psnr_figure_copy_frames: the same on the figure region (pixels labelled as figure in
      the target or the source frame);
    eval/motion_epe, eval/motion_epe_zero_motion: EPE (px at the model resolution) of
      `motion_full` and of the identity field against the exact frame t -> frame 0
      correspondence, on the source-visible figure pixels (`epe_figure`), mean over videos;
  and eval/mean_confidence. Means are over all frames used (the EPEs over videos).

  Cross-identity, for the videos with a partner in `<manual_dir>/test_cross/` (the synthetic
  data's: the same motion with another appearance, `evaluate.cross_identity_frames`): the same
  frame 0 driven by the partner's frames, scored against the video's own frames (same motion,
  same ground truth, copy-source = frame 0), as eval/cross/<the keys above>.
  """
  from internet_jax import evaluate as evaluate_lib  # pylint: disable=g-import-not-at-top
  tallies = {name: {"per_frame": {}, "confidence": [], "motion_epe": [],
                    "motion_epe_zero_motion": []} for name in ("self", "cross")}
  for video in range(min(num_videos, len(source))):
    count = source.num_frames(video)
    name = source.video_name(video)
    indices = np.linspace(0, count - 1, min(count, frames_per_video)).round().astype(int)
    target = np.stack([source.read_frame(video, int(t)) for t in indices])
    source_frame = source.read_frame(video, 0)
    encoding = animator.encode(source_frame)
    truth = _eval_ground_truth(ground_truth_dir, name, count)
    _score_animation(tallies["self"], animator, encoding, source_frame, target, target, truth,
                     indices)
    partner = (None if manual_dir is None else
               evaluate_lib.cross_identity_frames(manual_dir, name, target.shape[1]))
    if partner is None:
      continue
    path, partner_frames = partner
    if len(partner_frames) != count:
      logging.warning("evaluation: %s has %d frames, its test video %d; not used", path,
                      len(partner_frames), count)
      continue
    _score_animation(tallies["cross"], animator, encoding, source_frame, partner_frames[indices],
                     target, truth, indices)
  scores = _tally_scores(tallies["self"], "eval/")
  if tallies["cross"]["confidence"]:
    scores.update(_tally_scores(tallies["cross"], "eval/cross/"))
  return scores


# (title, model key, baseline key, baseline name, format, lower is better) of the log line.
_EVAL_LOG_PAIRS = (
    ("L1", "l1", "l1_copy_source", "copy-source", "{:.4f}", True),
    ("PSNR", "psnr_copy_frames", "psnr_copy_source", "copy-source", "{:.2f} dB", False),
    ("figure L1", "l1_figure", "l1_figure_copy_source", "copy-source", "{:.4f}", True),
    ("figure PSNR", "psnr_figure_copy_frames", "psnr_figure_copy_source", "copy-source",
     "{:.2f} dB", False),
    ("motion EPE", "motion_epe", "motion_epe_zero_motion", "zero motion", "{:.3f} px", True),
)


def format_eval_scores(scores: dict[str, float], prefix: str = "eval/") -> str:
  """`evaluate_reconstruction`'s `<prefix>` scores as one line, model (baseline), "WORSE" where
  the model does not beat its baseline. PSNR: both over the frames the copy does not reproduce."""
  parts = []
  for title, model, baseline, name, fmt, lower in _EVAL_LOG_PAIRS:
    model, baseline = prefix + model, prefix + baseline
    if model in scores and baseline in scores:
      a, b = scores[model], scores[baseline]
      worse = a >= b if lower else a <= b
      parts.append(f"{title} {fmt.format(a)} ({name} {fmt.format(b)}){' WORSE' if worse else ''}")
  parts.append(f"mean confidence {scores[prefix + 'mean_confidence']:.3f}")
  return "; ".join(parts)


def write_sample_animation(path: str, animator: animate.Animator, source, *, max_frames: int,
                           fps: float = 30.0, manual_dir=None) -> None:
  """A side-by-side video of the first test video, and its contact sheet (`<path stem>.png`:
  the panels as rows, six frames as columns). Cross-identity when it has a partner in
  `<manual_dir>/test_cross/` (`evaluate.cross_identity_frames`): source | driving (the partner,
  another appearance) | output | target (the video's own frame); else self-imitation: source |
  driving | output."""
  from internet_jax import evaluate as evaluate_lib  # pylint: disable=g-import-not-at-top
  count = min(source.num_frames(0), max_frames)
  frames = np.stack([source.read_frame(0, t) for t in range(count)])
  partner = (None if manual_dir is None else
             evaluate_lib.cross_identity_frames(manual_dir, source.video_name(0), frames.shape[1]))
  if partner is not None and len(partner[1]) >= count:
    driving = partner[1][:count]
    output = animator.animate(frames[0], driving)
    panels = [np.broadcast_to(frames[0], frames.shape), driving, output, frames]
  else:
    output = animator.animate(frames[0], frames)
    panels = [np.broadcast_to(frames[0], frames.shape), frames, output]
  video_io.write_video(path, np.concatenate(panels, axis=2), fps=fps)
  visualize.save_png(os.path.splitext(path)[0] + ".png", visualize.animation_contact_sheet(panels))


def summary_images(generator, params, batch: dict[str, np.ndarray], count: int = 4) -> np.ndarray:
  """source | driving | output | anchors | motion field coloured by anchor | confidence."""
  images = {k: jnp.asarray(v[:count]) for k, v in batch.items()}
  floats = to_float_images(images)
  outputs = jax.device_get(jax.jit(generator.apply)(params, floats["source"], floats["driving"]))
  return visualize.training_summary(jax.device_get(images), outputs)


# ---------------------------------------------------------------------------------------------
# The loop


def _make_workdir(workdir: str) -> None:
  """Creates the workdir, or a one-line error naming it (a file in the way, no permission)."""
  try:
    os.makedirs(workdir, exist_ok=True)
  except OSError as error:
    raise ValueError(f"--workdir: cannot create {workdir}: {error.strerror or error}") from None
  if not os.access(workdir, os.W_OK | os.X_OK):
    raise PermissionError(f"--workdir: {workdir} is not writable")


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str) -> TrainState:
  """Trains (resuming from `workdir` if it holds a checkpoint) and returns the final state.

  Everything that can be checked (config, data, weights, an existing checkpoint's fit) is checked
  before the workdir is written to or anything is compiled. SIGTERM/SIGINT save a checkpoint after
  the current step and raise `errors.Interrupted`; rerunning resumes bit-exactly (CPU).
  """
  validate_config(config)
  # Absolute paths (for synthetic data, the rendered folder itself): the config saved with the
  # checkpoints names the data and weights of this run from any working directory.
  config = checkpointing.absolute_paths(config)
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
  init_state = jax.jit(functools.partial(create_train_state, config=config, generator=generator,
                                         discriminator=discriminator, g_tx=g_tx, d_tx=d_tx),
                       out_shardings=replicated)
  # Shapes only (no compilation): the restore target, and what a checkpoint must match.
  abstract_state = jax.tree.map(
      lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=replicated),
      jax.eval_shape(init_state))
  vgg_net, vgg_params = create_vgg(config.loss)

  _make_workdir(workdir)
  manager = checkpointing.create_manager(workdir, max_to_keep=config.keep_checkpoints)
  try:
    state, initial_step = checkpointing.restore_latest(manager, workdir, abstract_state,
                                                       train_iter, config)
    if state is None:
      state, initial_step = init_state(), 0
    else:
      logging.info("Resumed from %s at step %d", checkpointing.checkpoint_dir(workdir),
                   initial_step)
    state = _train(config, workdir, state, initial_step, num_train_steps, steps_per_epoch,
                   manager=manager, mesh=mesh, train_iter=train_iter, test_source=test_source,
                   generator=generator, discriminator=discriminator, g_tx=g_tx, d_tx=d_tx,
                   vgg_net=vgg_net, vgg_params=sharding.put_replicated(vgg_params, mesh),
                   is_chief=is_chief)
  finally:
    manager.wait_until_finished()  # an async save in flight completes (or the error is raised)
    manager.close()
  return state


def _train(config, workdir, state, initial_step, num_train_steps, steps_per_epoch, *, manager,
           mesh, train_iter, test_source, generator, discriminator, g_tx, d_tx, vgg_net,
           vgg_params, is_chief) -> TrainState:
  """The loop of `train_and_evaluate`, from `initial_step` to `num_train_steps`."""
  # clu imports TensorFlow (2 s): only once the inputs are checked, so bad input fails fast.
  from clu import metric_writers, periodic_actions  # pylint: disable=g-import-not-at-top
  writer = metric_writers.create_default_writer(workdir, just_logging=not is_chief)
  p_train_step = make_train_step(config, generator, discriminator, vgg_net, g_tx, d_tx, mesh)
  g_lr = create_learning_rate_fn(config.optimizer.g_lr, config, steps_per_epoch)
  report = periodic_actions.ReportProgress(num_train_steps=num_train_steps, writer=writer,
                                           every_steps=config.log_every_steps)

  def evaluate(step):
    # Host copies: evaluation runs on each process's local device, never as a multi-host program;
    # it reads the state and draws no random numbers, so it cannot change the training.
    params = jax.device_get(state.ema_g_params if config.optimizer.ema_decay > 0 else state.g_params)
    animator = animate.Animator(generator, params, batch_size=config.eval_batch_size)
    if config.num_eval_videos > 0:  # 0: no evaluation (fast tests)
      truth_dir = (os.path.join(config.data.manual_dir, "test")
                   if config.data.name == "synthetic" else None)
      scores = evaluate_reconstruction(animator, test_source, num_videos=config.num_eval_videos,
                                       frames_per_video=config.eval_frames_per_video,
                                       ground_truth_dir=truth_dir,
                                       manual_dir=config.data.manual_dir)
      logging.info("step %d evaluation, model (baseline): %s", step, format_eval_scores(scores))
      if "eval/cross/mean_confidence" in scores:
        logging.info("step %d cross-identity evaluation, model (baseline): %s", step,
                     format_eval_scores(scores, "eval/cross/"))
      writer.write_scalars(step, scores)
    return animator

  if initial_step == 0 and config.num_eval_videos > 0:
    evaluate(0)
  monitor = NonFiniteMonitor(config.max_consecutive_nonfinite)
  pending = None  # (step, metrics) of the previous step, checked one step late
  last_saved = initial_step
  with StopSignals() as stop, metric_writers.ensure_flushes(writer):
    for step in range(initial_step + 1, num_train_steps + 1):
      with report.timed("data"):
        host_batch = next(train_iter)
        batch = sharding.put_batch(host_batch, mesh)
      with jax.profiler.StepTraceAnnotation("train", step_num=step):
        state, metrics = p_train_step(state, batch, vgg_params)
      if pending is not None:
        monitor.check(*pending)
      pending = (step, metrics)
      report(step)
      if step % config.log_every_steps == 0 or step == num_train_steps:
        monitor.check(*pending)
        pending = None
        scalars = {name: float(value) for name, value in jax.device_get(metrics).items()}
        scalars["learning_rate_g"] = next_learning_rate(g_lr, step, int(scalars["skipped_steps"]))
        writer.write_scalars(step, {f"train/{name}": value for name, value in scalars.items()})
      if config.image_every_steps > 0 and (step % config.image_every_steps == 0 or step == num_train_steps):
        summary = summary_images(generator, jax.device_get(state.g_params), host_batch)
        writer.write_images(step, {"train/summary": summary[None]})
      if step % config.checkpoint_every_steps == 0 or step == num_train_steps:
        checkpointing.save(manager, step, state, train_iter, config)
        last_saved = step
      if (config.eval_every_steps > 0 and config.num_eval_videos > 0
          and step % config.eval_every_steps == 0 and step != num_train_steps):
        evaluate(step)  # the last step's evaluation follows the loop
      if stop.requested(step):
        if last_saved != step:
          checkpointing.save(manager, step, state, train_iter, config)
        manager.wait_until_finished()
        message = (f"{errors.signal_name(stop.signum)} at step {step}: saved the checkpoint "
                   f"{os.path.join(checkpointing.checkpoint_dir(workdir), str(step))}; run the "
                   "same command again to resume")
        logging.warning("Stopping: %s", message)
        writer.flush()
        raise errors.Interrupted(message, stop.signum)
    if pending is not None:
      monitor.check(*pending)
    manager.wait_until_finished()

  if config.num_eval_videos > 0 or (config.sample_animation and is_chief):
    animator = evaluate(num_train_steps)
    if config.sample_animation and is_chief and len(test_source):
      path = os.path.join(workdir, "sample_animation.mp4")
      write_sample_animation(path, animator, test_source, max_frames=config.sample_animation_frames,
                             manual_dir=config.data.manual_dir)
      logging.info("Wrote %s", path)
  writer.flush()
  return state
