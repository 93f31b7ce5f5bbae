"""Checkpoints: Orbax `CheckpointManager` (V0 API) holding the train state, the grain iterator
state and the config, under `<workdir>/checkpoints/<step>/`. Nothing is ever pickled.

This is the only module that talks to Orbax, so that a move to the Orbax V1 API touches one file.
"""

from __future__ import annotations

import os
from typing import Any

import grain
import jax
import ml_collections
import orbax.checkpoint as ocp


def checkpoint_dir(workdir: str) -> str:
  return os.path.join(os.path.abspath(workdir), "checkpoints")


def create_manager(workdir: str, *, max_to_keep: int = 3) -> ocp.CheckpointManager:
  """A manager that keeps the newest `max_to_keep` checkpoints; saves are asynchronous."""
  options = ocp.CheckpointManagerOptions(
      preservation_policy=ocp.checkpoint_managers.LatestN(max_to_keep),
      create=True,
      enable_async_checkpointing=True,
  )
  return ocp.CheckpointManager(
      checkpoint_dir(workdir),
      item_names=("state", "data", "config"),
      options=options,
  )


def save(manager: ocp.CheckpointManager, step: int, state: Any,
         data_iterator: grain.DatasetIterator | None, config: ml_collections.ConfigDict) -> None:
  items = {
      "state": ocp.args.StandardSave(state),
      "config": ocp.args.JsonSave(config.to_dict()),
  }
  if data_iterator is not None:
    items["data"] = grain.checkpoint.CheckpointSave(data_iterator)
  manager.save(step, args=ocp.args.Composite(**items), force=True)


def restore(manager: ocp.CheckpointManager, abstract_state: Any,
            data_iterator: grain.DatasetIterator | None, step: int | None = None) -> tuple[Any, int]:
  """Restores the state (into the shapes/shardings of `abstract_state`) and, in place, the
  iterator. Returns (state, step)."""
  step = manager.latest_step() if step is None else step
  if step is None:
    raise FileNotFoundError(f"{manager.directory}: no checkpoint to restore")
  items = {"state": ocp.args.StandardRestore(abstract_state)}
  if data_iterator is not None:
    items["data"] = grain.checkpoint.CheckpointRestore(data_iterator)
  restored = manager.restore(step, args=ocp.args.Composite(**items))
  return restored["state"], step


def restore_config(workdir: str, step: int | None = None) -> ml_collections.ConfigDict:
  """The config saved with a checkpoint (inference restores the model it was trained with)."""
  with ocp.CheckpointManager(checkpoint_dir(workdir), item_names=("state", "data", "config"),
                             options=ocp.CheckpointManagerOptions(read_only=True)) as manager:
    step = manager.latest_step() if step is None else step
    if step is None:
      raise FileNotFoundError(f"{checkpoint_dir(workdir)}: no checkpoint found")
    restored = manager.restore(step, args=ocp.args.Composite(config=ocp.args.JsonRestore()))
  return ml_collections.ConfigDict(restored["config"])


def abstract_like(tree: Any) -> Any:
  """Shape/dtype/sharding structs of a pytree, the restore target."""
  return jax.tree.map(ocp.utils.to_shape_dtype_struct, tree)
