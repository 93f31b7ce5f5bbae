"""Motion from another trained model: the warps a method's checkpoint estimates between frames,
for a method that consumes warps (e.g. BDMM's `bdmm.warp_source`).

A spec "<method>:<workdir or step directory>" names the checkpoint; its saved config picks and
builds the method (`checkpointing.load_inference`), which must offer `Method.motion_field`.
Shared code: nothing here names a method.

  source = motion_sources.load("internet:workdirs/synthetic", 64, "bdmm.warp_source")
  warps = source(source.params, reference_images, frames)   # jittable; params passed explicitly

The parameters travel as an argument (inside a training step: replicated constants), never as
constants closed over by a jitted function, which would put them into the compiled program.
Loading is cached per spec: every `load` of one spec returns the same object, so that it can be a
field of a method's (hashable, static) networks.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any

import jax

ANNOTATION = "annotation"  # the other value of a warp-source field: warps from the annotations


@dataclasses.dataclass(frozen=True, eq=False)  # hashed by identity: one object per spec
class MotionSource:
  """A checkpoint's motion estimator: `self(params, source, driving)` -> backward warps."""
  spec: str
  method: Any
  networks: Any
  params: Any  # {group: parameters} of the method's inference groups (host arrays)
  resolution: int

  def __call__(self, params, source: jax.Array, driving: jax.Array) -> jax.Array:
    """source, driving: float32 (B, R, R, 3) in [0, 1] -> (B, R, R, 2), `Method.motion_field`."""
    return self.method.motion_field(self.networks, params, source, driving)


def parse(spec: str, field: str, others: tuple[str, ...] = (ANNOTATION,)) -> tuple[str, str]:
  """"<method>:<path>" -> (method, path); a one-line ValueError naming `field` and the field's
  other values (`others`) otherwise."""
  name, separator, path = str(spec).partition(":")
  if not separator or not name or not path:
    listed = ", ".join(map(repr, others))
    raise ValueError(f"config.{field}: expected {listed} or '<method>:<workdir>' (e.g. "
                     f"'internet:workdirs/synthetic'), got {spec!r}")
  return name, path


@functools.lru_cache(maxsize=None)
def _load(spec: str, field: str, others: tuple[str, ...]) -> MotionSource:
  from internet_jax import checkpointing  # pylint: disable=g-import-not-at-top
  name, path = parse(spec, field, others)
  try:
    method, networks, params, config, _ = checkpointing.load_inference(path)
  except (ValueError, OSError) as error:
    raise ValueError(f"config.{field}: {error}") from None
  saved = config.get("method", "internet")
  if saved != name:
    raise ValueError(f"config.{field}: {path} holds a {saved!r} checkpoint, not {name!r}")
  if method.motion_field is None:
    raise ValueError(f"config.{field}: the method {name!r} estimates no motion field "
                     "(Method.motion_field)")
  return MotionSource(spec=spec, method=method, networks=networks,
                      params=jax.device_get(params), resolution=int(config.data.resolution))


def load(spec: str, resolution: int, field: str,
         others: tuple[str, ...] = (ANNOTATION,)) -> MotionSource:
  """The motion source of `spec` (cached), checked to work at `resolution`; one-line
  ValueErrors naming config.`field` (and its values other than a checkpoint, `others`)."""
  source = _load(str(spec), field, tuple(others))
  if source.resolution != int(resolution):
    raise ValueError(f"config.{field}: {spec} was trained at {source.resolution}^2, this "
                     f"model runs at {int(resolution)}^2 (data.resolution)")
  return source
