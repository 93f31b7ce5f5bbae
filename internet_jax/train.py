"""Training, for any method (`internet_jax.method`): one state pytree, one jitted step and the
train/evaluate loop.

The step takes the gradient of every parameter group from one forward pass: one `jax.vjp` of the
method's {group: loss} and one one-hot cotangent per group (magvit's trick for G and D,
generalised; XLA drops the unused halves). Then each group's optimiser, the non-finite guard and
the EMA. A method trained in chunks (`Method.chunks`: recurrent video models) gets that update once
per chunk of each batch, inside the same jitted step. Nothing here names a method: `config.method` picks it through `method.get`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import os
from typing import Any, Callable

from absl import logging
import flax
import jax
import jax.numpy as jnp
import ml_collections
import optax

from input_pipeline import datasets, pipeline
from input_pipeline import flow as flow_lib
from internet_jax import (checkpointing, config_checks, errors, logs, monitor, reconstruction,
                          sharding, workdir_lock)
from internet_jax import method as method_lib


@flax.struct.dataclass
class TrainState:
  """Everything that changes during training: one pytree, donated to the step."""
  step: jax.Array
  params: dict[str, Any]  # {group: parameters}, e.g. {"g": ..., "d": ...}
  opt_state: dict[str, Any]  # {group: that group's optimiser state}
  # An EMA of the method's inference groups ({group: params}), {} when optimizer.ema_decay == 0.
  ema_params: dict[str, Any]
  # Steps whose loss or gradients were non-finite and were skipped (no update), in total and in a
  # row up to now (the run stops at config.max_consecutive_nonfinite).
  skipped_steps: jax.Array
  consecutive_skipped_steps: jax.Array


# ---------------------------------------------------------------------------------------------
# Construction


def validate_config(config: ml_collections.ConfigDict) -> None:
  """One-line errors naming the field, before anything is prepared, written or compiled: every
  numeric field against its rule (`config_checks.NUMERIC_RULES`), the shared sections here, the
  method's own through `Method.validate_config`."""
  method = method_lib.get(config.get("method", "internet"))
  config_checks.check_numeric_fields(config)
  config_checks.require_choice(config, "data.name", datasets.NAMES, "dataset")
  config_checks.require_choice(config, "data.flow_preset", tuple(flow_lib.PRESETS), "DIS preset")
  method.validate_config(config)
  sharding.check_batch_size(config.batch_size)


def create_train_state(config: ml_collections.ConfigDict, method: method_lib.Method, networks,
                       txs: dict[str, optax.GradientTransformation]) -> TrainState:
  """Initial state from config.seed; jit it with replicated out_shardings to build it on the mesh."""
  params = method.init_params(networks, jax.random.fold_in(jax.random.key(config.seed), 0),
                              config)
  if set(params) != set(txs):
    raise ValueError(f"the method's parameter groups {sorted(params)} and optimisers "
                     f"{sorted(txs)} differ")
  ema = ({group: params[group] for group in method.inference_groups}
         if config.optimizer.ema_decay > 0 else {})
  return TrainState(
      step=jnp.zeros((), jnp.int32),
      params=params,
      opt_state={group: tx.init(params[group]) for group, tx in txs.items()},
      ema_params=ema,
      skipped_steps=jnp.zeros((), jnp.int32),
      consecutive_skipped_steps=jnp.zeros((), jnp.int32),
  )


# ---------------------------------------------------------------------------------------------
# The step


def default_gradients(loss_fn: Callable, params: dict) -> tuple[dict, dict, dict]:
  """(grads per group, losses, metrics) of `loss_fn(params) -> ({group: loss}, metrics)`: one
  forward pass, one vjp, and for group g the cotangent 1 on losses[g] and 0 elsewhere, of which
  only params[g]'s part is kept (so D's loss never moves G, nor G's D)."""
  group_losses, vjp_fn, metrics = jax.vjp(loss_fn, params, has_aux=True)
  grads = {}
  for group in params:
    cotangent = {name: (jnp.ones_like if name == group else jnp.zeros_like)(value)
                 for name, value in group_losses.items()}
    grads[group] = vjp_fn(cotangent)[0][group]
  return grads, group_losses, metrics


def training_key(seed: int) -> jax.Array:
  """The key of the per-step randomness (e.g. the equivariance transforms); init uses another."""
  return jax.random.fold_in(jax.random.key(seed), 1)


def _apply_gradients(parts: dict, grads: dict, group_losses: dict, txs: dict,
                     config) -> tuple[dict, jax.Array, dict]:
  """One update of every group of `parts` ({params, opt_state, ema_params}) under the non-finite
  guard: (the new parts, or the old ones if anything was not finite; finite; norms)."""
  params, opt_state, norms = {}, {}, {}
  for group, tx in txs.items():
    updates, opt_state[group] = tx.update(grads[group], parts["opt_state"][group],
                                          parts["params"][group])
    params[group] = optax.apply_updates(parts["params"][group], updates)
    norms[f"{group}/grad_norm"] = optax.tree.norm(grads[group])
    norms[f"{group}/param_norm"] = optax.tree.norm(params[group])
  ema_params = parts["ema_params"]
  if config.optimizer.ema_decay > 0:
    decay = config.optimizer.ema_decay
    ema_params = jax.tree.map(lambda e, p: decay * e + (1.0 - decay) * p, ema_params,
                              {group: params[group] for group in ema_params})
  # The losses (every term is in one of them), all gradients and all updated parameters: norms
  # are NaN/inf exactly when some element is (or when they overflow, which is as bad).
  finite = jnp.all(jnp.isfinite(jnp.stack([*group_losses.values(), *norms.values()])))
  updated = dict(params=params, opt_state=opt_state, ema_params=ema_params)
  kept = jax.tree.map(lambda new, old: jnp.where(finite, new, old), updated, parts)
  return kept, finite, norms


def _chunked_updates(parts: dict, batch: dict, constants, step_key: jax.Array, *,
                     chunks: method_lib.Chunks, networks, txs: dict, config
                     ) -> tuple[dict, jax.Array, dict]:
  """`Method.chunks`: one guarded update per chunk of the batch, in order (a lax.scan), each from
  one forward pass, the carry passed on with its gradient stopped (truncated backpropagation
  through time). Returns the parts, whether every chunk was finite, and metrics averaged over the
  chunks."""
  sequence, context = chunks.split(networks, constants, batch)
  num_chunks = jax.tree.leaves(sequence)[0].shape[0]
  carry = jax.lax.stop_gradient(chunks.init_carry(networks, parts["params"], context, step_key))

  def update(state, inputs):
    parts, carry = state
    chunk, index = inputs
    key = jax.random.fold_in(step_key, index)
    grads, group_losses, (metrics, carry) = default_gradients(
        lambda params: chunks.loss_fn(networks, params, constants, chunk, context, carry, key),
        parts["params"])
    parts, finite, norms = _apply_gradients(parts, grads, group_losses, txs, config)
    return (parts, jax.lax.stop_gradient(carry)), ({**metrics, **norms}, finite)

  (parts, _), (metrics, finite) = jax.lax.scan(
      update, (parts, carry), (sequence, jnp.arange(num_chunks)))
  return parts, jnp.all(finite), jax.tree.map(lambda v: jnp.mean(v, axis=0), metrics)


def train_step(state: TrainState, batch: dict, constants, *, method: method_lib.Method, networks,
               txs: dict, config, steps_per_epoch: int = 1) -> tuple[TrainState, dict]:
  """Updates every parameter group from one forward pass (once per chunk for methods trained in
  chunks, `Method.chunks`); returns the new state and scalars.

  An update whose losses, gradients or updated parameters are not all finite changes nothing (the
  non-finite guard): it is computed as usual and then discarded with a select, so a NaN never
  enters the parameters, the optimiser moments or a checkpoint; the step counts as skipped. The
  metrics keep the step's raw values, so the host can name the offending terms.
  """
  # Randomness from the seed and the step only, so a resumed run draws the same.
  step_key = jax.random.fold_in(training_key(config.seed), state.step)
  parts = dict(params=state.params, opt_state=state.opt_state, ema_params=state.ema_params)
  if method.chunks is not None:
    parts, finite, metrics = _chunked_updates(parts, batch, constants, step_key,
                                              chunks=method.chunks, networks=networks, txs=txs,
                                              config=config)
  else:
    extra = ({"epoch": state.step // max(int(steps_per_epoch), 1)} if method.loss_reads_epoch
             else {})
    grads, group_losses, metrics = default_gradients(
        lambda params: method.loss_fn(networks, params, constants, batch, step_key, **extra),
        state.params)
    parts, finite, norms = _apply_gradients(parts, grads, group_losses, txs, config)
    metrics = {**metrics, **norms}
  skipped = jnp.logical_not(finite).astype(jnp.int32)
  new_state = state.replace(
      step=state.step + 1,
      skipped_steps=state.skipped_steps + skipped,
      consecutive_skipped_steps=jnp.where(finite, 0, state.consecutive_skipped_steps + 1),
      **parts)
  metrics = dict(metrics)
  metrics.update({
      "nonfinite": skipped,
      "skipped_steps": new_state.skipped_steps,
      "consecutive_skipped_steps": new_state.consecutive_skipped_steps,
  })
  return new_state, metrics


# XLA:CPU hands convolutions to YNNPACK by default, whose weight gradients at large spatial sizes
# run 3-10x slower than XLA's own convolutions; with YNNPACK kept for dot fusions only, the
# 256^2 FOMM-sized step (configs/fomm_matched.py) is 2.2x faster at batch 4 on a 2-core CPU
# (benchmarks/README.md, "Where the time goes").
CPU_COMPILER_OPTIONS = {"xla_cpu_experimental_ynn_fusion_type": "LIBRARY_FUSION_TYPE_DOT"}


@functools.cache
def _cpu_options_supported() -> bool:
  """Whether this jaxlib knows CPU_COMPILER_OPTIONS (a trivial compile; an XLA without the
  option refuses it with an error, and the step then compiles with XLA's defaults)."""
  try:
    jax.jit(lambda x: x + 1, compiler_options=CPU_COMPILER_OPTIONS).lower(
        jax.ShapeDtypeStruct((), jnp.float32)).compile()
  except Exception:  # jaxlib raises its own runtime error type for an unknown option
    return False
  return True


def compiler_options(mesh) -> dict | None:
  """The XLA options of the train step on `mesh`'s platform: CPU_COMPILER_OPTIONS on CPU."""
  on_cpu = mesh.devices.flat[0].platform == "cpu"
  return dict(CPU_COMPILER_OPTIONS) if on_cpu and _cpu_options_supported() else None


def make_train_step(config, method: method_lib.Method, networks, txs: dict, mesh,
                    steps_per_epoch: int = 1) -> Callable:
  """The jitted step: state replicated and donated, batch sharded along 'data'."""
  step_fn = functools.partial(train_step, method=method, networks=networks, txs=txs,
                              config=config, steps_per_epoch=steps_per_epoch)
  replicated = sharding.replicated(mesh)
  return jax.jit(step_fn, donate_argnums=(0,), out_shardings=(replicated, replicated),
                 compiler_options=compiler_options(mesh))


@dataclasses.dataclass(frozen=True)
class Training:
  """What training one config needs, built once (`create_training`): the method, its networks
  and optimisers, `init()` -> the initial state replicated on the mesh, the jitted `step(state,
  batch, constants)` and the method's `constants` (replicated)."""
  method: method_lib.Method
  networks: Any
  txs: dict[str, optax.GradientTransformation]
  init: Callable[[], TrainState]
  step: Callable
  constants: Any


def create_training(config: ml_collections.ConfigDict, mesh,
                    steps_per_epoch: int) -> Training:
  """The method of `config.method` built for `config` on `mesh` (nothing is compiled yet)."""
  method = method_lib.get(config.method)
  networks = method.build(config)
  txs = method.optimizers(config, steps_per_epoch)
  init = jax.jit(functools.partial(create_train_state, config, method, networks, txs),
                 out_shardings=sharding.replicated(mesh))
  return Training(method=method, networks=networks, txs=txs, init=init,
                  step=make_train_step(config, method, networks, txs, mesh, steps_per_epoch),
                  constants=sharding.put_replicated(method.create_constants(config), mesh))


def learning_rates(state: TrainState) -> dict[str, float]:
  """{learning_rate/<group>: the rate of the group's last applied update}, for optimisers made
  by `optimizers.create` (optax.inject_hyperparams keeps it in the optimiser state)."""
  rates = {}
  for group, opt_state in state.opt_state.items():
    hyperparams = getattr(opt_state, "hyperparams", None)
    if hyperparams and "learning_rate" in hyperparams:
      rates[f"learning_rate/{group}"] = float(jax.device_get(hyperparams["learning_rate"]))
  return rates


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
  training = create_training(config, mesh, steps_per_epoch)
  train_iter = pipeline.create_train_iterator(
      config.data, train_source, batch_size_per_process=local_batch_size, seed=config.seed,
      process_index=jax.process_index(), process_count=jax.process_count(),
      example_fn=training.method.example_fn(config))
  # Shapes only (no compilation): the restore target, and what a checkpoint must match.
  replicated = sharding.replicated(mesh)
  abstract_state = jax.tree.map(
      lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=replicated),
      jax.eval_shape(training.init))

  _make_workdir(workdir)
  with workdir_lock.held(workdir, enabled=is_chief):  # one run per workdir
    manager = checkpointing.create_manager(workdir, max_to_keep=config.keep_checkpoints)
    try:
      state, initial_step = checkpointing.restore_latest(manager, workdir, abstract_state,
                                                         train_iter, config)
      if state is None:
        state, initial_step = training.init(), 0
      else:
        logging.info("Resumed from %s at step %d", checkpointing.checkpoint_dir(workdir),
                     initial_step)
      with logs.EventWriter(workdir, enabled=is_chief) as writer:
        state = _train(config, workdir, state, initial_step, num_train_steps, writer=writer,
                       manager=manager, mesh=mesh, train_iter=train_iter,
                       test_source=test_source, training=training, is_chief=is_chief)
    finally:
      checkpointing.close(manager)  # an async save in flight completes (or raises its error)
  return state


def _train(config, workdir, state, initial_step, num_train_steps, *, writer: logs.EventWriter,
           manager, mesh, train_iter, test_source, training: Training, is_chief) -> TrainState:
  """The loop of `train_and_evaluate`, from `initial_step` to `num_train_steps`."""
  if initial_step == 0:
    writer.write_hparams(config.to_dict())
  method, networks = training.method, training.networks
  progress = logs.ProgressLine(num_train_steps, initial_step, method.progress_metrics)

  def evaluate(step):
    # Host copies: evaluation runs on each process's local device, never as a multi-host program;
    # it reads the state and draws no random numbers, so it cannot change the training.
    params = jax.device_get(state.ema_params if config.optimizer.ema_decay > 0 else
                            {group: state.params[group] for group in method.inference_groups})
    renderer = method.renderer(networks, params, config, config.eval_batch_size)
    if config.num_eval_videos > 0:  # 0: no evaluation (fast tests)
      truth_dir = (os.path.join(config.data.manual_dir, "test")
                   if config.data.name == "synthetic" else None)
      scores = reconstruction.evaluate_reconstruction(renderer, test_source, num_videos=config.num_eval_videos,
                                       frames_per_video=config.eval_frames_per_video,
                                       ground_truth_dir=truth_dir,
                                       manual_dir=config.data.manual_dir)
      logging.info("step %d evaluation, model (baseline): %s", step,
                   reconstruction.format_eval_scores(scores))
      if "eval/cross/l1" in scores:
        logging.info("step %d cross-identity evaluation, model (baseline): %s", step,
                     reconstruction.format_eval_scores(scores, "eval/cross/"))
      writer.write_scalars(step, scores)
    return renderer

  if initial_step == 0 and config.num_eval_videos > 0:
    evaluate(0)
  guard = monitor.NonFiniteMonitor(config.max_consecutive_nonfinite)
  pending = None  # (step, metrics) of the previous step, checked one step late
  last_saved = initial_step
  profiler = logs.StepProfiler(workdir, initial_step, config.profile_steps if is_chief else 0)
  with monitor.StopSignals() as stop, contextlib.closing(profiler):
    for step in range(initial_step + 1, num_train_steps + 1):
      host_batch = next(train_iter)
      batch = sharding.put_batch(host_batch, mesh)
      profiler.before_step(step)
      with jax.profiler.StepTraceAnnotation("train", step_num=step):
        state, metrics = training.step(state, batch, training.constants)
      profiler.after_step(step, metrics)
      if pending is not None:
        guard.check(*pending)
      pending = (step, metrics)
      if step % config.log_every_steps == 0 or step == num_train_steps:
        guard.check(*pending)
        pending = None
        scalars = {name: float(value) for name, value in jax.device_get(metrics).items()}
        scalars.update(learning_rates(state))
        line = progress.line(step, scalars)
        scalars["steps_per_sec"] = progress.rate
        writer.write_scalars(step, {f"train/{name}": value for name, value in scalars.items()})
        logging.info("%s", line)
      if config.image_every_steps > 0 and (step % config.image_every_steps == 0 or step == num_train_steps):
        images = method.summary_images(networks, jax.device_get(state.params), host_batch)
        writer.write_images(step, {f"train/{tag}": image for tag, image in images.items()})
      if step % config.checkpoint_every_steps == 0 or step == num_train_steps:
        checkpointing.save(manager, step, state, train_iter, config)
        last_saved = step
      checkpointing.check_for_errors(manager)  # a failed save stops the run now, not at the next
      if (config.eval_every_steps > 0 and config.num_eval_videos > 0
          and step % config.eval_every_steps == 0 and step != num_train_steps):
        evaluate(step)  # the last step's evaluation follows the loop
      if stop.requested(step):
        if last_saved != step:
          checkpointing.save(manager, step, state, train_iter, config)
        checkpointing.wait_until_finished(manager)
        message = (f"{errors.signal_name(stop.signum)} at step {step}: saved the checkpoint "
                   f"{os.path.join(checkpointing.checkpoint_dir(workdir), str(step))}; run the "
                   "same command again to resume")
        logging.warning("Stopping: %s", message)
        writer.flush()
        raise errors.Interrupted(message, stop.signum)
    if pending is not None:
      guard.check(*pending)
    checkpointing.wait_until_finished(manager)

  if config.num_eval_videos > 0 or (config.sample_animation and is_chief):
    renderer = evaluate(num_train_steps)
    if config.sample_animation and is_chief and len(test_source):
      path = os.path.join(workdir, "sample_animation.mp4")
      reconstruction.write_sample_animation(path, renderer, test_source,
                                            max_frames=config.sample_animation_frames,
                                            manual_dir=config.data.manual_dir)
      logging.info("Wrote %s", path)
  return state
