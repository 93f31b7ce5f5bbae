"""INTERnet's networks: config checks of `config.model`, `build`, parameter init and the shape of
one training batch (`Method.validate_config` / `build` / `init_params` / `batch_shapes`)."""

from __future__ import annotations

import dataclasses

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections

from input_pipeline import synthetic
from internet_jax import config_checks
from internet_jax.methods.internet import generator as generator_lib
from internet_jax.methods.internet import motion as motion_lib
from internet_jax.methods.internet.discriminator import MultiScaleDiscriminator
from internet_jax.methods.internet.model import INTERnet, parse_dtype
from internet_jax.models import vgg


@dataclasses.dataclass(frozen=True)
class Networks:
  """G (motion estimator + generator), the multi-scale D, the frozen VGG-19 of the perceptual
  and style terms (None when no term uses it), and the frozen `config` the loss reads."""
  generator: nn.Module
  discriminator: nn.Module
  vgg: nn.Module | None
  config: ml_collections.FrozenConfigDict


PART_TRANSFORMS = "part_transforms"
# Where the anchors come from (config.model.motion.anchors): the detector, or the per-part affine
# maps of the data's annotations (`motion.part_anchors`, a diagnostic on the synthetic set).
ANCHOR_SOURCES = ("detector", PART_TRANSFORMS)


def anchor_source(model_config) -> str:
  return model_config.motion.get("anchors", "detector")  # older checkpoints lack the field


def annotation_keys(model_config) -> tuple[str, ...]:
  """The per-frame annotations the model reads of the source and every driving frame: the
  synthetic renderer's part maps and joints (the anchors sit at `synthetic.part_centres`)."""
  return (PART_TRANSFORMS, "joints") if anchor_source(model_config) == PART_TRANSFORMS else ()


def annotation_shapes(model_config) -> dict[str, tuple[int, ...]]:
  """The per-frame shape of each of `annotation_keys`."""
  shapes = {PART_TRANSFORMS: (model_config.num_anchors, 2, 3),
            "joints": (len(synthetic.JOINT_NAMES), 2)}
  return {key: shapes[key] for key in annotation_keys(model_config)}


def given_anchors(model_config, annotations: dict, resolution: int) -> tuple[dict, dict] | None:
  """(source anchors, driving anchors) from the "source_<key>" / "driving_<key>" annotations of
  a batch, or None when the model detects its anchors."""
  if anchor_source(model_config) != PART_TRANSFORMS:
    return None
  return tuple(motion_lib.part_anchors(annotations[f"{name}_{PART_TRANSFORMS}"],
                                       synthetic.part_centres(annotations[f"{name}_joints"]),
                                       resolution)
               for name in ("source", "driving"))


def validate_model(config: ml_collections.ConfigDict) -> None:
  """One-line ValueErrors naming the offending field of `config.model` (nothing is built)."""
  resolution, model = config.data.resolution, config.model
  config_checks.require_int(config, "model.num_anchors", 1)
  base = model.base_resolution
  if not config_checks.is_int(base) or base < 1 or resolution % base:
    raise ValueError(f"config.data.resolution: {resolution} is not divisible by "
                     f"config.model.base_resolution {base}")
  ratio = resolution // base
  if ratio & (ratio - 1):
    raise ValueError(f"config.data.resolution: {resolution} / config.model.base_resolution {base} "
                     f"= {ratio} is not a power of two")
  detector = model.motion.get("detector_resolution", 0)
  if detector:
    if not config_checks.is_int(detector) or detector < 1 or resolution % detector:
      raise ValueError(f"config.model.motion.detector_resolution: {detector} does not divide "
                       f"config.data.resolution {resolution} (0 = the base resolution)")
  for field, size, name in (("detector_num_blocks", detector or base,
                             "detector_resolution" if detector else "base_resolution"),
                            ("num_blocks", base, "base_resolution")):
    factor = 2 ** model.motion[field]
    if size % factor:
      raise ValueError(f"config.model.motion.{field}: {name} {size} is not divisible by "
                       f"2^{model.motion[field]}")
  config_checks.require_choice(config, "model.generator.skip_mode", generator_lib.SKIP_MODES,
                               "mode")
  config_checks.require(anchor_source(model) in ANCHOR_SOURCES, "model.motion.anchors",
                        f"unknown anchor source {anchor_source(model)!r}; known: "
                        f"{', '.join(ANCHOR_SOURCES)}")
  parts = len(synthetic.PART_NAMES)
  config_checks.require(anchor_source(model) != PART_TRANSFORMS or model.num_anchors == parts,
                        "model.num_anchors", f"{model.num_anchors}, but anchors given by "
                        f"part_transforms need one per synthetic body part ({parts})")
  parse_dtype(model.dtype)


def uses_vgg(loss_config) -> bool:
  """Whether a loss term needs VGG-19 features (Eqs. 9-10); without one no VGG is built."""
  return loss_config.perceptual > 0 or loss_config.style > 0


def vgg_module(config):
  """The frozen VGG-19 of the perceptual and style terms, or None when no term uses it; it
  computes in float32 unless `config.loss.vgg_dtype` is "model" (then `config.model.dtype`)."""
  if not uses_vgg(config.loss):
    return None
  model_dtype = config.loss.get("vgg_dtype", "float32") == "model"
  return vgg.vgg_module(config.loss, dtype=parse_dtype(config.model.dtype) if model_dtype
                        else jnp.float32)


def build(config: ml_collections.ConfigDict) -> Networks:
  """`Method.build` (checks `config.model` first)."""
  validate_model(config)
  model = ml_collections.FrozenConfigDict(config.model)
  dtype = parse_dtype(model.dtype)
  d = model.discriminator
  generator = INTERnet(resolution=config.data.resolution, config=model, dtype=dtype)
  discriminator = MultiScaleDiscriminator(
      num_scales=d.num_scales, num_blocks=d.num_blocks, block_expansion=d.block_expansion,
      max_features=d.max_features, dtype=dtype)
  return Networks(generator=generator, discriminator=discriminator,
                  vgg=vgg_module(config),
                  config=ml_collections.FrozenConfigDict(config))


def init_params(nets: Networks, key: jax.Array, config: ml_collections.ConfigDict) -> dict:
  """`Method.init_params`: {"g": G's parameters, "d": D's}."""
  resolution = config.data.resolution
  image = jnp.zeros((1, resolution, resolution, 3), jnp.float32)
  g_key, d_key = jax.random.split(key)
  return {"g": nets.generator.init(g_key, image, image),
          "d": nets.discriminator.init(d_key, image)}


def motion_field(nets: Networks, params: dict, source: jax.Array, driving: jax.Array) -> jax.Array:
  """`Method.motion_field`: the top of the motion pyramid, `motion_full` (the dense motion of
  Eq. 5 refined at every decoder scale), which warps the source into the driving frame's pose
  (absolute motion: the driving frame's own anchors)."""
  if annotation_keys(nets.config.model):
    raise ValueError("config.model.motion.anchors: this model reads its anchors from per-frame "
                     "annotations, so it cannot estimate motion from pixels alone")
  return nets.generator.apply(params["g"], source, driving)["motion_full"]


def batch_shapes(config: ml_collections.ConfigDict, batch_size: int) -> dict:
  """`Method.batch_shapes`: the frame-pair example (`input_pipeline.pipeline.make_train_example`)
  with a leading batch axis."""
  r = config.data.resolution
  uint8 = lambda: jax.ShapeDtypeStruct((batch_size, r, r, 3), jnp.uint8)  # noqa: E731
  shapes = {"source": uint8(), "driving": uint8(), "previous": uint8(),
            "flow": jax.ShapeDtypeStruct((batch_size, r, r, 2), jnp.float32),
            "flow_confidence": jax.ShapeDtypeStruct((batch_size, r, r, 1), jnp.float32)}
  for key, shape in annotation_shapes(config.model).items():
    for name in ("source", "driving"):
      shapes[f"{name}_{key}"] = jax.ShapeDtypeStruct((batch_size,) + shape, jnp.float32)
  return shapes
