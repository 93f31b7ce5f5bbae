"""Model registry: `config.model_name` -> (generator, discriminator) Linen modules.

INTERnet is the first family; BDMM and D2G-Net join `MODELS` later with the same signature,
`builder(config) -> (generator, discriminator)`, where `config` is the full experiment config.
"""

from __future__ import annotations

from typing import Callable

import flax.linen as nn
import ml_collections

from internet_jax.models import generator as generator_lib
from internet_jax.models.discriminator import MultiScaleDiscriminator
from internet_jax.models.internet import INTERnet, parse_dtype


def _validate_internet(config: ml_collections.ConfigDict) -> None:
  """One-line ValueErrors naming the offending field (checked before anything is built)."""
  resolution, model = config.data.resolution, config.model
  base = model.base_resolution
  if base < 1 or resolution % base:
    raise ValueError(f"config.data.resolution: {resolution} is not divisible by "
                     f"config.model.base_resolution {base}")
  ratio = resolution // base
  if ratio & (ratio - 1):
    raise ValueError(f"config.data.resolution: {resolution} / config.model.base_resolution {base} "
                     f"= {ratio} is not a power of two")
  for field in ("detector_num_blocks", "num_blocks"):
    factor = 2 ** model.motion[field]
    if base % factor:
      raise ValueError(f"config.model.motion.{field}: base_resolution {base} is not divisible by "
                       f"2^{model.motion[field]}")
  if model.generator.skip_mode not in generator_lib.SKIP_MODES:
    raise ValueError(f"config.model.generator.skip_mode: unknown mode "
                     f"{model.generator.skip_mode!r}; known: {generator_lib.SKIP_MODES}")
  parse_dtype(model.dtype)


def _build_internet(config: ml_collections.ConfigDict) -> tuple[nn.Module, nn.Module]:
  _validate_internet(config)
  model = ml_collections.FrozenConfigDict(config.model)
  dtype = parse_dtype(model.dtype)
  d = model.discriminator
  generator = INTERnet(resolution=config.data.resolution, config=model, dtype=dtype)
  discriminator = MultiScaleDiscriminator(
      num_scales=d.num_scales, num_blocks=d.num_blocks, block_expansion=d.block_expansion,
      max_features=d.max_features, dtype=dtype)
  return generator, discriminator


MODELS: dict[str, Callable[[ml_collections.ConfigDict], tuple[nn.Module, nn.Module]]] = {
    "internet": _build_internet,
}


def create_models(config: ml_collections.ConfigDict) -> tuple[nn.Module, nn.Module]:
  """(generator, discriminator) for `config.model_name`, validated against the config."""
  name = config.model_name
  if name not in MODELS:
    raise ValueError(f"config.model_name: unknown model {name!r}; known: {sorted(MODELS)}")
  return MODELS[name](config)


__all__ = ["MODELS", "create_models", "INTERnet", "MultiScaleDiscriminator"]
