"""Checkpoints: Orbax `CheckpointManager` (V0 API) holding the train state, the grain iterator
state and the config, under `<workdir>/checkpoints/<step>/`. Nothing is ever pickled.

This is the only module that talks to Orbax, so that a move to the Orbax V1 API touches one file.

Reliability:
* Orbax writes a step into `<step>.orbax-checkpoint-tmp*` and renames it when complete, so a crash
  mid-save leaves a temporary directory that is never listed as a step; `create_manager` logs and
  removes such leftovers.
* A step directory that looks committed but cannot be restored (an item missing or damaged) is set
  aside into `<workdir>/damaged_checkpoints/` with a warning by `restore_latest`, which then tries
  the previous step. A restore goes into a fresh abstract target and the data iterator is rolled
  back on failure, so nothing is ever half-restored.
* A checkpoint whose state does not fit the current config (another model width, say) is an
  `IncompatibleCheckpointError` naming the checkpoint and the differing config fields.
* `save` refuses a state holding a non-finite value.
* A checkpoint folder that cannot be written (a file in the way of it or of a step folder, no
  permission, a full disk) is an OSError naming it, raised by `create_manager` or the first
  `save` that meets it (checked before Orbax starts: its background writer waits minutes for a
  folder it failed to create), or by the next `save` / `close` after a write failed in the
  background; it says which complete checkpoint is the newest, and the failed save's temporary
  folder is removed.
* The saved config names files and folders by absolute paths (`absolute_paths`).
"""

from __future__ import annotations

import contextlib
import errno
import glob
import os
import re
import shutil
import time
from typing import Any

from absl import logging
import grain
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import orbax.checkpoint as ocp

from internet_jax import errors

ITEM_NAMES = ("state", "data", "config")
# Config fields naming files or folders: saved absolute (`absolute_paths`), so that the config of
# a checkpoint names the data and weights of its run from any working directory.
PATH_FIELDS = ("data.data_dir", "data.manual_dir", "loss.vgg_weights")
# Config fields that decide the shapes of the state: named when a checkpoint does not fit.
STRUCTURE_FIELDS = ("method", "model.", "optimizer.ema_decay")


# The state layout before parameter groups (one G and one D as fields of the state).
OLD_LAYOUT_KEYS = ("g_params", "ema_g_params")
OLD_LAYOUT_MESSAGE = ("a checkpoint of the older layout (g_params, d_params); this version "
                      "stores params/<group> and cannot read it: train again")


class IncompatibleCheckpointError(ValueError):
  """The checkpoint was written by a run whose state has other shapes than this config's."""


def checkpoint_dir(workdir: str) -> str:
  """`<workdir>/checkpoints`, absolute."""
  return os.path.join(os.path.abspath(workdir), "checkpoints")


def damaged_dir(workdir: str) -> str:
  """Where `restore_latest` moves step directories that cannot be restored."""
  return os.path.join(os.path.abspath(workdir), "damaged_checkpoints")


def _handler_registry() -> ocp.handlers.DefaultCheckpointHandlerRegistry:
  # Explicit handlers let item_metadata() read a step before anything is restored.
  registry = ocp.handlers.DefaultCheckpointHandlerRegistry()
  registry.add("state", ocp.args.StandardSave, ocp.StandardCheckpointHandler)
  registry.add("state", ocp.args.StandardRestore, ocp.StandardCheckpointHandler)
  registry.add("config", ocp.args.JsonSave, ocp.JsonCheckpointHandler)
  registry.add("config", ocp.args.JsonRestore, ocp.JsonCheckpointHandler)
  registry.add("data", grain.checkpoint.CheckpointSave, grain.checkpoint.CheckpointHandler)
  registry.add("data", grain.checkpoint.CheckpointRestore, grain.checkpoint.CheckpointHandler)
  return registry


def incomplete_checkpoints(directory: str) -> list[str]:
  """Temporary directories of saves that never committed (a crash or kill -9 mid-save)."""
  return sorted(glob.glob(os.path.join(glob.escape(directory), "*.orbax-checkpoint-tmp*")))


def create_manager(workdir: str, *, max_to_keep: int = 3,
                   read_only: bool = False) -> ocp.CheckpointManager:
  """A manager that keeps the newest `max_to_keep` checkpoints; saves are asynchronous.

  Leftovers of interrupted saves are logged and removed (Orbax never lists them as steps; a new
  save of the same step would collide with them).
  """
  directory = checkpoint_dir(workdir)
  if not read_only and jax.process_index() == 0:
    for path in incomplete_checkpoints(directory):
      logging.warning("Removing the incomplete checkpoint %s (a save that was interrupted before "
                      "it committed); the newest complete checkpoint is used", path)
      shutil.rmtree(path, ignore_errors=True)
  if not read_only:
    check_writable(directory)
  options = ocp.CheckpointManagerOptions(
      preservation_policy=ocp.checkpoint_managers.LatestN(max_to_keep),
      create=not read_only,
      read_only=read_only,
      enable_async_checkpointing=True,
  )
  return ocp.CheckpointManager(directory, handler_registry=_handler_registry(), options=options)


def check_writable(directory: str, step: int | None = None) -> None:
  """OSError naming the path unless `directory` (created if missing) takes a new folder and a
  small file, and `<directory>/<step>` is not a file."""
  if os.path.lexists(directory) and not os.path.isdir(directory):
    raise NotADirectoryError(errno.ENOTDIR, "a file is in the way of the checkpoints folder",
                             directory)
  os.makedirs(directory, exist_ok=True)
  step_dir = os.path.join(directory, str(step))
  if step is not None and os.path.lexists(step_dir) and not os.path.isdir(step_dir):
    raise NotADirectoryError(errno.ENOTDIR, "a file is in the way of the step folder", step_dir)
  probe = os.path.join(directory, f".write-probe-{os.getpid()}")
  try:
    os.makedirs(probe, exist_ok=True)
    with errors.writing_to(directory), open(os.path.join(probe, "probe"), "wb") as file:
      file.write(b"\0" * 4096)
  finally:
    shutil.rmtree(probe, ignore_errors=True)


@contextlib.contextmanager
def _failed_saves(directory: str, step: int | None = None):
  """An OSError of a save (Orbax's writer's, or `check_writable`'s) becomes one naming the path,
  the step, the reason and the newest complete checkpoint; the failed save's temporary folder
  is removed."""
  try:
    yield
  except (OSError, ValueError) as error:  # TensorStore's failed writes are ValueErrors
    code, reason = _write_error(error)
    for path in incomplete_checkpoints(directory):
      shutil.rmtree(path, ignore_errors=True)
    steps = complete_steps(directory)
    newest = (f"the newest complete checkpoint is step {max(steps)}" if steps
              else "no checkpoint is complete")
    what = "a checkpoint" if step is None else f"the checkpoint of step {step}"
    raise OSError(code, f"cannot save {what} ({reason}); {newest}",
                  getattr(error, "filename", None) or directory) from error


def _write_error(error: BaseException) -> tuple[int | None, str]:
  """(errno, reason) of a failed write: an OSError's own, or those TensorStore puts at the end
  of its message (`...: File too large [os_error_code='27']`)."""
  if isinstance(error, OSError):
    return error.errno, error.strerror or errors.one_line(error)
  match = re.search(r"([^:]+?)\s*\[os_error_code='(\d+)'\]", str(error))
  if match:
    return int(match.group(2)), match.group(1).strip()
  return None, errors.one_line(error)


def check_for_errors(manager: ocp.CheckpointManager) -> None:
  """Raises, as `save`, the failure of an asynchronous save that has ended; does not wait (the
  training loop calls it every step, so a failed save stops the run at once)."""
  with _failed_saves(os.fspath(manager.directory)):
    manager.check_for_errors()


def wait_until_finished(manager: ocp.CheckpointManager) -> None:
  """Waits for a save in flight; its failure raises as in `save`."""
  with _failed_saves(os.fspath(manager.directory)):
    manager.wait_until_finished()


def close(manager: ocp.CheckpointManager) -> None:
  """`wait_until_finished`, then closes `manager` whatever happened."""
  try:
    wait_until_finished(manager)
  finally:
    manager.close()


# Leaves are checked as concatenated runs of at most this many elements: one reduction per run
# compiles ~10x faster than one per leaf (0.7 s vs 7 s for 600 small leaves on a 2-core CPU),
# and the run's copy stays bounded (64 MiB of float32) however large the state.
_FINITE_RUN_ELEMENTS = 1 << 24


@jax.jit
def _all_finite(tree: Any) -> jax.Array:
  """Whether every floating-point element of `tree` is finite."""
  runs, run, size = [], [], 0
  for x in jax.tree.leaves(tree):
    if not jnp.issubdtype(x.dtype, jnp.inexact):
      continue
    if run and size + x.size > _FINITE_RUN_ELEMENTS:
      runs.append(run)
      run, size = [], 0
    run.append(jnp.ravel(x))
    size += x.size
  if run:
    runs.append(run)
  finite = [jnp.all(jnp.isfinite(jnp.concatenate(r))) for r in runs]
  return jnp.all(jnp.stack(finite)) if finite else jnp.array(True)


def absolute_paths(config: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  """A copy of `config` whose PATH_FIELDS that are set are absolute (`~` expanded), with
  data.manual_dir and data.data_dir as `input_pipeline.datasets.resolve_paths` gives them (for
  synthetic data, the folder of the rendered dataset itself). Idempotent; training resolves its
  config with it before anything reads the data, and `save` stores only resolved configs."""
  from input_pipeline import datasets  # pylint: disable=g-import-not-at-top
  config = config.copy_and_resolve_references()
  for name in PATH_FIELDS:
    section, field = name.split(".")
    if section in config and config[section].get(field):
      config[section][field] = os.path.abspath(os.path.expanduser(str(config[section][field])))
  if "data" in config and config.data.get("name") == "synthetic":
    config.data.manual_dir = datasets.resolve_paths(config.data).manual_dir
  return config


def save(manager: ocp.CheckpointManager, step: int, state: Any,
         data_iterator: grain.DatasetIterator | None, config: ml_collections.ConfigDict) -> None:
  """Starts an asynchronous save of `state`, the iterator position and the config (its paths
  made absolute, `absolute_paths`) at `step`.

  Raises FloatingPointError (before writing anything) if the state holds a NaN or infinity.
  """
  if not bool(_all_finite(state)):
    raise FloatingPointError(f"step {step}: the train state holds non-finite values; not saving "
                             f"it to {manager.directory}")
  items = {
      "state": ocp.args.StandardSave(state),
      "config": ocp.args.JsonSave(absolute_paths(config).to_dict()),
  }
  if data_iterator is not None:
    items["data"] = grain.checkpoint.CheckpointSave(data_iterator)
  wait_until_finished(manager)  # a failed previous save is reported as such
  directory = os.fspath(manager.directory)
  with _failed_saves(directory, step):
    check_writable(directory, step)
    manager.save(step, args=ocp.args.Composite(**items), force=True)  # waits for the previous


def restore(manager: ocp.CheckpointManager, abstract_state: Any,
            data_iterator: grain.DatasetIterator | None, step: int | None = None) -> tuple[Any, int]:
  """Restores the state (into the shapes/shardings of `abstract_state`) and, in place, the
  iterator. Returns (state, step). No fallback: see `restore_latest`."""
  step = manager.latest_step() if step is None else step
  if step is None:
    raise FileNotFoundError(f"{manager.directory}: no checkpoint to restore")
  items = {"state": ocp.args.StandardRestore(abstract_state)}
  if data_iterator is not None:
    items["data"] = grain.checkpoint.CheckpointRestore(data_iterator)
  restored = manager.restore(step, args=ocp.args.Composite(**items))
  return restored["state"], step


# ---------------------------------------------------------------------------------------------
# Restoring the newest usable checkpoint


def _key_name(key: Any) -> str:
  # Orbax metadata names dataclass fields and namedtuple fields like dict keys; unify them.
  for attribute in ("key", "name", "idx"):
    if hasattr(key, attribute):
      return str(getattr(key, attribute))
  return str(key)


def leaf_shapes(tree: Any) -> dict[str, tuple[int, ...]]:
  """{"params.g.params.x.kernel": shape} of a state, an abstract state or Orbax tree metadata."""
  leaves, _ = jax.tree_util.tree_flatten_with_path(tree)
  return {".".join(_key_name(k) for k in path): tuple(leaf.shape) for path, leaf in leaves}


def _flatten(tree: Any, prefix: str = "") -> dict[str, Any]:
  """{"a.b.c": value} of nested dicts (a saved config)."""
  if isinstance(tree, dict):
    out = {}
    for key, value in tree.items():
      out.update(_flatten(value, f"{prefix}{key}."))
    return out
  return {prefix[:-1]: tree}


def config_differences(saved: dict, config: ml_collections.ConfigDict,
                       prefixes: tuple[str, ...] = STRUCTURE_FIELDS) -> list[str]:
  """`config.FIELD: checkpoint A, this config B` for fields under `prefixes` that differ."""
  old, new = _flatten(saved), _flatten(config.to_dict())
  differences = []
  for name in sorted(set(old) | set(new)):
    if not any(name == p or (p.endswith(".") and name.startswith(p)) for p in prefixes):
      continue
    a, b = old.get(name, "(absent)"), new.get(name, "(absent)")
    if isinstance(a, list):
      a = tuple(a)
    if isinstance(b, list):
      b = tuple(b)
    if a != b:
      differences.append(f"config.{name}: checkpoint {a!r}, this config {b!r}")
  return differences


def _check_fits(manager: ocp.CheckpointManager, step: int, abstract_state: Any,
                config: ml_collections.ConfigDict | None) -> None:
  """Raises IncompatibleCheckpointError if the saved state's leaves differ from the target's.

  Other failures (unreadable metadata) propagate as they are: the step is damaged.
  """
  where = os.path.join(str(manager.directory), str(step))
  metadata = manager.item_metadata(step)
  state_metadata = metadata["state"] if "state" in metadata else None
  saved_shapes = leaf_shapes(state_metadata) if state_metadata is not None else {}
  if not saved_shapes:
    # Missing or empty: damage (fall back), not another config.
    raise ValueError(f"{where}: no readable state metadata")
  if any(name.startswith(OLD_LAYOUT_KEYS) for name in saved_shapes):
    raise IncompatibleCheckpointError(f"{where}: {OLD_LAYOUT_MESSAGE}")
  wanted_shapes = leaf_shapes(abstract_state)
  if saved_shapes == wanted_shapes:
    return
  hints = []
  if config is not None:
    try:
      saved_config = manager.restore(step, args=ocp.args.Composite(config=ocp.args.JsonRestore()))
      hints = config_differences(dict(saved_config["config"]), config)
    except Exception:  # pylint: disable=broad-except
      hints = []  # the shapes alone still tell what is wrong
  if not hints:
    missing = sorted(set(wanted_shapes) - set(saved_shapes))
    extra = sorted(set(saved_shapes) - set(wanted_shapes))
    changed = sorted(k for k in set(saved_shapes) & set(wanted_shapes)
                     if saved_shapes[k] != wanted_shapes[k])
    if changed:
      hints = [f"{changed[0]} has shape {saved_shapes[changed[0]]} in the checkpoint, "
               f"{wanted_shapes[changed[0]]} in this config"]
    elif missing or extra:
      hints = [f"state entries only in this config: {missing[:3]}, only in the checkpoint: "
               f"{extra[:3]}"]
  raise IncompatibleCheckpointError(
      f"{where}: the checkpoint does not fit this config ({'; '.join(hints[:3])}); resume with the "
      "config it was trained with, or use another --workdir")


def _all_processes(ok: bool) -> bool:
  """Whether `ok` holds on every process."""
  # Every process must take the same decision, or the hosts would train from different steps.
  if jax.process_count() == 1:
    return ok
  from jax.experimental import multihost_utils  # pylint: disable=g-import-not-at-top
  return bool(np.all(multihost_utils.process_allgather(np.int32(ok))))


def _set_aside(manager: ocp.CheckpointManager, step: int, workdir: str) -> str:
  """Moves a damaged step out of the checkpoint directory (never deletes it)."""
  source = os.path.join(str(manager.directory), str(step))
  target = os.path.join(damaged_dir(workdir), f"{step}-{int(time.time())}")
  suffix = 1
  while os.path.exists(target):  # the same step set aside twice within a second
    target = os.path.join(damaged_dir(workdir), f"{step}-{int(time.time())}-{suffix}")
    suffix += 1
  if jax.process_index() == 0 and os.path.exists(source):
    os.makedirs(os.path.dirname(target), exist_ok=True)
    shutil.move(source, target)
  if jax.process_count() > 1:
    from jax.experimental import multihost_utils  # pylint: disable=g-import-not-at-top
    multihost_utils.sync_global_devices(f"set aside checkpoint {step}")
  manager.reload()
  return target


def restore_latest(manager: ocp.CheckpointManager, workdir: str, abstract_state: Any,
                   data_iterator: grain.DatasetIterator | None,
                   config: ml_collections.ConfigDict | None = None) -> tuple[Any, int | None]:
  """The newest checkpoint that restores completely: (state, step), or (None, None) if none.

  A step that fails to restore is set aside into `damaged_checkpoints/` with a warning and the
  previous step is tried. The state is restored into `abstract_state` (a fresh target, never an
  array in use) and the iterator is rolled back after a failed attempt.

  Raises:
    IncompatibleCheckpointError: the newest readable step has other state shapes than
      `abstract_state` (e.g. it was trained with another model width).
    ValueError: every step that was found is damaged (they have been set aside).
  """
  failures = []
  for step in sorted(manager.all_steps(), reverse=True):
    iterator_state = data_iterator.get_state() if data_iterator is not None else None
    try:
      _check_fits(manager, step, abstract_state, config)
      state, _ = restore(manager, abstract_state, data_iterator, step)
      jax.block_until_ready(state)
      error = None
    except IncompatibleCheckpointError:
      raise
    except Exception as e:  # pylint: disable=broad-except
      error = e
    if _all_processes(error is None):
      return state, step
    if data_iterator is not None:
      data_iterator.set_state(iterator_state)  # never leave the iterator half-restored
    reason = " ".join(str(error).split())[:300] if error is not None else "failed on another host"
    target = _set_aside(manager, step, workdir)
    logging.warning("Checkpoint step %d in %s cannot be restored (%s: %s); moved it to %s and "
                    "trying the previous one", step, manager.directory,
                    type(error).__name__ if error is not None else "Error", reason, target)
    failures.append(step)
  if failures:
    raise ValueError(f"{manager.directory}: none of the checkpoints (steps "
                     f"{', '.join(map(str, failures))}) could be restored; they were moved to "
                     f"{damaged_dir(workdir)}; rerun to start from step 0")
  return None, None


def restore_config(workdir: str, step: int | None = None) -> ml_collections.ConfigDict:
  """The config saved with a checkpoint (inference restores the model it was trained with)."""
  with ocp.CheckpointManager(checkpoint_dir(workdir), item_names=ITEM_NAMES,
                             options=ocp.CheckpointManagerOptions(read_only=True)) as manager:
    step = manager.latest_step() if step is None else step
    if step is None:
      raise FileNotFoundError(f"{checkpoint_dir(workdir)}: no checkpoint found")
    restored = manager.restore(step, args=ocp.args.Composite(config=ocp.args.JsonRestore()))
  return ml_collections.ConfigDict(restored["config"])


def abstract_like(tree: Any) -> Any:
  """Shape/dtype/sharding structs of a pytree, the restore target."""
  return jax.tree.map(ocp.utils.to_shape_dtype_struct, tree)


@contextlib.contextmanager
def quiet_logs():
  """Orbax logs several WARNINGs for every read-only manager: hidden unless INFO logs were asked
  for (--verbose), restored afterwards."""
  verbosity = logging.get_verbosity()
  if verbosity < logging.INFO:
    logging.set_verbosity(logging.ERROR)
  try:
    yield
  finally:
    logging.set_verbosity(verbosity)


# ---------------------------------------------------------------------------------------------
# Reading a method's parameters for inference (animate, evaluate, notebooks)


def _first_line(error: BaseException) -> str:
  text = " ".join(str(error).strip().splitlines()[:1])
  return text or type(error).__name__


def _is_step_dir(path: str) -> bool:
  return os.path.basename(path).isdigit() and os.path.isdir(os.path.join(path, "state"))


def complete_steps(directory: str) -> list[int]:
  """The committed steps in a checkpoints directory, oldest first (Orbax writes a step under a
  temporary name and renames it when complete, so a numbered directory with `state/` is whole)."""
  if not os.path.isdir(directory):
    return []
  return sorted(int(name) for name in os.listdir(directory)
                if _is_step_dir(os.path.join(directory, name)))


def resolve_checkpoint(path: str | os.PathLike, step: int | None = None) -> tuple[str, int]:
  """(checkpoints directory, step) of a workdir, its `checkpoints/` folder, or one step directory
  `<...>/<step>/` holding `state/` (which may have been copied anywhere); the newest complete step
  unless `step` (or the step directory) names one. One-line FileNotFoundError otherwise."""
  path = os.path.abspath(os.path.expanduser(os.fspath(path)))
  if not os.path.exists(path):
    raise FileNotFoundError(f"{path}: no such workdir or checkpoint")
  if _is_step_dir(path):
    directory, named = os.path.dirname(path), int(os.path.basename(path))
    if step is not None and step != named:
      raise ValueError(f"{path}: is the checkpoint of step {named}, not {step}")
    return directory, named
  directory = checkpoint_dir(path) if os.path.isdir(checkpoint_dir(path)) else path
  steps = complete_steps(directory)
  if not steps:
    if directory == path and not os.path.isdir(checkpoint_dir(path)):
      raise FileNotFoundError(f"{path}: not a workdir (no checkpoints/ inside) nor a checkpoint "
                              "step directory (no state/ inside)")
    raise FileNotFoundError(f"{directory}: no complete checkpoint inside")
  if step is None:
    return directory, steps[-1]
  if step not in steps:
    raise FileNotFoundError(f"{directory}: no checkpoint of step {step} (steps: "
                            f"{', '.join(map(str, steps))})")
  return directory, step


def _first_mismatch(abstract: Any, stored: Any) -> str | None:
  """'<path>: ...' for the first parameter whose shape differs between the model the config
  builds and the checkpoint (or that only one of them has); None when all agree."""
  want, have = leaf_shapes(abstract), leaf_shapes(stored)
  for key in sorted(want.keys() | have.keys()):
    if want.get(key) != have.get(key):
      return (f"{key}: the checkpoint has {have.get(key, 'nothing')}, the model needs "
              f"{want.get(key, 'nothing')}")
  return None


def load_inference(path: str | os.PathLike, *, step: int | None = None,
                   use_ema: bool | None = None):
  """(method, networks, params, config, step) for inference from a workdir (its newest complete
  checkpoint, or `step`) or a step directory: params = {group: parameters} of the method's
  `inference_groups`, from `ema_params` (use_ema True; None: when the run kept an EMA, as
  training's own evaluation does) or `params`.

  The config saved with the checkpoint picks and builds the method; only those groups are read
  (a partial restore into abstract targets from `jax.eval_shape` of the method's init), so the
  optimiser states and the other groups are never loaded. One-line errors name the path.
  """
  from internet_jax import method as method_lib  # pylint: disable=g-import-not-at-top
  directory, step = resolve_checkpoint(path, step)
  step_dir = os.path.join(directory, str(step))
  with quiet_logs(), ocp.CheckpointManager(
      directory, item_names=ITEM_NAMES,
      item_handlers={"state": ocp.PyTreeCheckpointHandler()},  # reads the StandardSave layout
      options=ocp.CheckpointManagerOptions(read_only=True)) as manager:
    try:
      restored = manager.restore(step, args=ocp.args.Composite(config=ocp.args.JsonRestore()))
      config = ml_collections.ConfigDict(restored["config"])
    except Exception as error:  # pylint: disable=broad-except
      raise ValueError(f"{step_dir}: cannot read the saved config ({_first_line(error)})") \
          from None
    try:
      method = method_lib.get(config.get("method", "internet"))
      networks = method.build(config)
    except (ValueError, KeyError, AttributeError) as error:
      raise ValueError(f"{step_dir}: the saved config does not build a model "
                       f"({_first_line(error)})") from None
    has_ema = float(config.get("optimizer", {}).get("ema_decay", 0.0)) > 0
    if use_ema and not has_ema:
      raise ValueError(f"{step_dir}: no EMA parameters (trained with config.optimizer.ema_decay "
                       "= 0); run without --use_ema")
    name = "ema_params" if (has_ema if use_ema is None else use_ema) else "params"
    groups = tuple(method.inference_groups)
    abstract = jax.eval_shape(lambda: method.init_params(networks, jax.random.key(0), config))
    abstract = {group: abstract[group] for group in groups}
    # Shapes are compared from the metadata before anything is read: a failing Orbax restore
    # leaves reads in flight that print tracebacks at exit.
    try:
      stored = manager.item_metadata(step)["state"]
      stored = getattr(stored, "tree", stored)
    except Exception as error:  # pylint: disable=broad-except
      raise ValueError(f"{step_dir}: no readable state ({_first_line(error)})") from None
    if any(key in stored for key in OLD_LAYOUT_KEYS):
      raise ValueError(f"{step_dir}: {OLD_LAYOUT_MESSAGE}")
    if name not in stored or any(group not in stored[name] for group in groups):
      raise ValueError(f"{step_dir}: no {name} of the groups {', '.join(groups)} in the saved "
                       "state")
    mismatch = _first_mismatch(abstract, {group: stored[name][group] for group in groups})
    if mismatch:
      raise ValueError(f"{step_dir}: the parameters do not match the saved config: {name}."
                       f"{mismatch}")
    device = jax.sharding.SingleDeviceSharding(jax.local_devices()[0])
    target = {name: jax.tree.map(
        lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=device), abstract)}
    restore_args = jax.tree.map(lambda _: ocp.ArrayRestoreArgs(sharding=device), target)
    try:
      restored = manager.restore(step, args=ocp.args.Composite(state=ocp.args.PyTreeRestore(
          item=target, restore_args=restore_args, partial_restore=True)))
    except Exception as error:  # pylint: disable=broad-except
      raise ValueError(f"{step_dir}: cannot read {name} ({_first_line(error)})") from None
  return method, networks, restored["state"][name], config, step
