"""The optimiser factory the methods share: Adam-family transformations with the step-decay
schedule of `config.optimizer` (lr x lr_decay_factor at each epoch in lr_decay_epochs)."""

from __future__ import annotations

import math

import ml_collections
import optax

from internet_jax import config_checks

# config.optimizer.name: RAdam is the INTERnet paper's; Adam is FOMM's (no variance
# rectification, whose implicit warm-up spans ~2 / (1 - b2) = 2000 steps at b2 = 0.999).
OPTIMIZERS = {"radam": optax.radam, "adam": optax.adam}


def validate(config: ml_collections.ConfigDict, rate_fields: tuple[str, ...]) -> None:
  """One-line errors for config.optimizer and the learning-rate fields a method reads."""
  opt = config.optimizer
  for name in rate_fields + ("lr_decay_factor",):
    config_checks.require(math.isfinite(opt[name]) and opt[name] > 0, f"optimizer.{name}",
                          f"must be > 0, got {opt[name]!r}")
  config_checks.require_choice(config, "optimizer.name", tuple(OPTIMIZERS), "optimizer")
  for name in ("b1", "b2", "ema_decay"):
    config_checks.require(0 <= opt[name] < 1, f"optimizer.{name}",
                          f"must lie in [0, 1), got {opt[name]!r}")


def learning_rate_schedule(base_lr: float, config: ml_collections.ConfigDict,
                           steps_per_epoch: int) -> optax.Schedule:
  """Piecewise constant: x lr_decay_factor at the end of each epoch in lr_decay_epochs (the
  INTERnet paper, Sec. 4.1: x0.1 at epochs 60 and 90)."""
  boundaries = {int(epoch * steps_per_epoch): config.optimizer.lr_decay_factor
                for epoch in config.optimizer.lr_decay_epochs}
  return optax.piecewise_constant_schedule(base_lr, boundaries)


def create(config: ml_collections.ConfigDict, base_lr: float,
           steps_per_epoch: int) -> optax.GradientTransformation:
  """`config.optimizer.name` with b1, b2 and the schedule from `base_lr`. The learning rate of
  the last applied update is kept in the state (`optax.inject_hyperparams`) for the logs."""
  opt = config.optimizer
  return optax.inject_hyperparams(OPTIMIZERS[opt.name])(
      learning_rate=learning_rate_schedule(base_lr, config, steps_per_epoch), b1=opt.b1,
      b2=opt.b2)

