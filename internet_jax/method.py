"""The method interface: what a pose-transfer system provides so that the shared trainer,
checkpoints, data chain, animate and evaluate run it without ever naming it.

A method is a package `internet_jax/methods/<name>/` whose `__init__.py` defines
`METHOD = Method(...)`; `config.method` names it and `get(name)` imports it on demand (importlib,
as big_vision loads `big_vision.models.<name>`). Shared code reaches a method only through `get`.

What the shared code does with a method, in order (`train.train_and_evaluate`):

  method = get(config.method)
  method.validate_config(config)                     # one-line errors, before any work
  networks = method.build(config)
  example = method.example_fn(config)                # run by the grain workers, numpy -> numpy
  params = method.init_params(networks, key, config)                # {"g": ..., "d": ...}
  txs = method.optimizers(config, steps_per_epoch)                  # one per group
  losses, metrics = method.loss_fn(networks, params, constants, batch, key)   # in the jitted step
  renderer = method.renderer(networks, params, config, batch_size)  # animate, evaluate

The gradient of group g is the gradient of `losses[g]` with respect to `params[g]` only (a GAN's
G and D from one forward pass). The worked example of a complete method is the toy autoencoder in
tests/test_method_interface.py; INTERnet (`methods/internet/`) is the full one.
"""

from __future__ import annotations

import dataclasses
import importlib
from typing import Any, Callable

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax

Config = ml_collections.ConfigDict
Params = dict[str, Any]  # {group name: that group's parameter pytree}


def _no_constants(config: Config) -> Any:
  del config
  return {}


@dataclasses.dataclass(frozen=True)
class Method:
  """A method: the functions below, nothing else. Every function is pure or builds something
  from the config; none keeps state between calls."""

  validate_config: Callable[[Config], None]
  """Raises a one-line ValueError `config.FIELD: problem` for the method's own sections (model,
  loss, ...); the shared sections (data, optimizer, schedule) are checked by the trainer."""

  build: Callable[[Config], Any]
  """The networks, any hashable object (a Linen module, a tuple of them): `networks` below."""

  batch_shapes: Callable[[Config, int], dict[str, jax.ShapeDtypeStruct]]
  """One training batch of the given size as ShapeDtypeStructs: the keys `example_fn` yields
  with a leading batch axis (uint8 images stay uint8). For init, `eval_shape` and fake-data
  tests."""

  init_params: Callable[[Any, jax.Array, Config], Params]
  """(networks, key, config) -> {group: params}, e.g. {"g": ..., "d": ...} for a GAN."""

  optimizers: Callable[[Config, int], dict[str, optax.GradientTransformation]]
  """(config, steps_per_epoch) -> one optax transformation per parameter group."""

  loss_fn: Callable[[Any, Params, Any, dict[str, jax.Array], jax.Array],
                    tuple[dict[str, jax.Array], dict[str, jax.Array]]] | None
  """(networks, params, constants, batch, key) -> ({group: scalar loss}, {name: scalar}), pure
  and traceable; `batch` as the pipeline yields it (uint8 images), sharded along 'data'; `key`
  depends only on the seed and the step. Metrics are logged as train/<name>."""

  example_fn: Callable[[Config], Callable[[Any, int, np.random.Generator],
                                          dict[str, np.ndarray]]]
  """config -> the function the grain workers run, (VideoSource, video index, rng) -> one
  example of numpy arrays (no batch axis); every random choice from `rng`. Must pickle."""

  renderer: Callable[[Any, Params, Config, int], Any]
  """(networks, {group: params} of `inference_groups`, config, batch_size) -> a renderer, a
  subclass of `inference.Renderer` (it writes `start` and `step`; the chunking, padding and the
  carry across chunks are the base class's)."""

  summary_images: Callable[[Any, Params, dict[str, np.ndarray]], dict[str, np.ndarray]]
  """(networks, params, host batch) -> {tag: uint8 (H, W, 3)} for TensorBoard (train/<tag>)."""

  inference_groups: tuple[str, ...] = ("g",)
  """The groups rendering needs: what animate and evaluate read from a checkpoint, and what
  `config.optimizer.ema_decay` keeps an EMA of."""

  create_constants: Callable[[Config], Any] = _no_constants
  """Frozen arrays the loss reads (INTERnet: VGG-19 weights), passed replicated into the step."""

  progress_metrics: tuple[str, ...] = ()
  """Names from the metrics the console progress line shows (3-4 key losses); all metrics go
  to TensorBoard whatever this says."""

  chunks: "Chunks | None" = None
  """Optional: train by truncated backpropagation through time (`Chunks`); `loss_fn` is then
  unused by the trainer and may be None."""

  motion_field: Callable[[Any, Params, jax.Array, jax.Array], jax.Array] | None = None
  """Optional, for methods that estimate motion from pixels: (networks, {group: params} of
  `inference_groups`, source, driving) -> the backward warp (B, R, R, 2) that takes the source to
  the driving frame's pose (`geometry.warp(source, field)`); images float32 in [0, 1],
  (B, R, R, 3). Another method can then read its warps from a checkpoint of this one
  (internet_jax/motion_sources.py)."""

  loss_reads_epoch: bool = False
  """True: the trainer calls `loss_fn(..., key, epoch=E)` with E the 0-based epoch of the update
  (int32 scalar, step // steps_per_epoch), for terms that switch on after the first epochs
  (D2G-Net's static epochs). Methods without `chunks` only."""


@dataclasses.dataclass(frozen=True)
class Chunks:
  """Training in chunks, for recurrent video models (BDMM): each batch is a clip cut into chunks
  and the trainer updates every group once per chunk, in order (a lax.scan inside the one jitted
  step, each update from one forward pass under the non-finite guard), passing a carry (recurrent
  state, the last generated frame) from chunk to chunk with its gradient stopped."""

  split: Callable[[Any, Any, dict[str, jax.Array]], tuple[Any, Any]]
  """(networks, constants, batch) -> (chunks, context): `chunks` a pytree whose arrays have a leading chunk
  axis (the scanned one; the batch axis second), `context` what every chunk reads (the reference
  frame)."""

  init_carry: Callable[[Any, Params, Any, jax.Array], Any]
  """(networks, params, context, key) -> the carry entering the first chunk."""

  loss_fn: Callable[..., tuple[dict[str, jax.Array], tuple[dict[str, jax.Array], Any]]]
  """(networks, params, constants, chunk, context, carry, key) -> ({group: loss},
  (metrics, the carry after this chunk)); pure, as `Method.loss_fn`."""


def to_float_images(batch: dict[str, jax.Array]) -> dict[str, jax.Array]:
  """uint8 frames -> float32 in [0, 1] (frames stay uint8 on the host and are converted inside
  the jitted step); other arrays unchanged. For methods' loss functions."""
  return {name: value.astype(jnp.float32) / 255.0 if value.dtype == jnp.uint8 else value
          for name, value in batch.items()}


_REGISTERED: dict[str, Method] = {}


def register(name: str, method: Method) -> None:
  """Makes `get(name)` return `method` without a package (tests, notebooks)."""
  _REGISTERED[name] = method


def available() -> list[str]:
  """The names `get` accepts: the packages under internet_jax/methods/ and registered ones."""
  import pkgutil  # pylint: disable=g-import-not-at-top
  methods = importlib.import_module("internet_jax.methods")  # the registry's one way down
  found = {info.name for info in pkgutil.iter_modules(methods.__path__) if info.ispkg}
  return sorted(found | set(_REGISTERED))


def get(name: str) -> Method:
  """The method called `name` (`config.method`): a registered one, else `METHOD` of the package
  `internet_jax.methods.<name>`. An unknown name is a one-line ValueError listing the known."""
  if name in _REGISTERED:
    return _REGISTERED[name]
  if not isinstance(name, str) or not name.isidentifier() or name not in available():
    raise ValueError(f"config.method: unknown method {name!r}; known: {', '.join(available())}")
  module = importlib.import_module(f"internet_jax.methods.{name}")
  return module.METHOD

