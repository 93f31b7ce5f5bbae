"""Data parallelism with `jax.jit` over a 1-D ('data',) mesh (jax.sharding; data parallel, params replicated).

Parameters and optimiser states are replicated (`P()`), every batch array is sharded along its
leading axis (`P('data')`). Gradient averaging is implicit in jit; there is no pmap and no pmean.
Multi-host: each process feeds its own slice of the global batch and
`jax.make_array_from_process_local_data` assembles the global array.
"""

from __future__ import annotations

from typing import Any

import jax
import numpy as np
from jax.sharding import AxisType, NamedSharding, PartitionSpec as P


def create_mesh(num_devices: int | None = None) -> jax.sharding.Mesh:
  num_devices = num_devices or jax.device_count()
  # Auto axes: the compiler propagates shardings (Explicit would demand annotations on reshapes).
  return jax.make_mesh((num_devices,), ("data",), axis_types=(AxisType.Auto,))


def replicated(mesh: jax.sharding.Mesh) -> NamedSharding:
  return NamedSharding(mesh, P())


def batch_sharded(mesh: jax.sharding.Mesh) -> NamedSharding:
  return NamedSharding(mesh, P("data"))


def check_batch_size(global_batch_size: int, field: str = "config.batch_size") -> int:
  """Returns the per-process batch size; a one-line error if the batch does not divide evenly."""
  devices, processes = jax.device_count(), jax.process_count()
  if global_batch_size <= 0 or global_batch_size % devices:
    raise ValueError(f"{field}={global_batch_size} must be a positive multiple of the device count "
                     f"({devices})")
  return global_batch_size // processes


def put_replicated(tree: Any, mesh: jax.sharding.Mesh) -> Any:
  """Host values (identical on every process) -> arrays replicated over the whole mesh.

  Works on multi-host meshes, where `device_put` cannot target non-addressable devices; the copy
  also avoids aliasing buffers that the donating train step would delete.
  """
  sharding = replicated(mesh)
  return jax.tree.map(
      lambda x: jax.make_array_from_process_local_data(sharding, np.array(x)), jax.device_get(tree))


def put_batch(local_batch: dict[str, np.ndarray], mesh: jax.sharding.Mesh) -> dict[str, jax.Array]:
  """Host-local batch (per-process slice) -> global arrays sharded along 'data'."""
  sharding = batch_sharded(mesh)
  return {name: jax.make_array_from_process_local_data(sharding, np.asarray(value))
          for name, value in local_batch.items()}
