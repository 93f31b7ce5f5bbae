"""BDMM's networks, config checks and per-chunk objective ("Bidirectionally Deformable Motion
Modulation for Video-based Human Pose Transfer", Sec. 3.3; rocketappslab/BDMM,
model/dance_model.py `backward_G` / `backward_D`).

Training is truncated backpropagation through time (`method.Chunks`): a batch holds clips of
num_chunks x chunk_frames consecutive frames; every chunk is one update of G and of the two Ds,
from one forward pass, with the carry (previous output, structural and forward states) passed on
with its gradient stopped.

Generator loss per chunk, summed over its frames as the code does (images in [-1, 1]):
  loss.l1 (5)           mean |O_t - I_t|
  loss.content (0.5)    sum over content_layers of mean |phi_l(O_t) - phi_l(I_t)|
  loss.style (500)      sum over style_layers of mean |Gram_l(O_t) - Gram_l(I_t)|
  loss.contextual (0.1) sum over contextual_layers of CX(phi_l(O_t), phi_l(I_t))
  loss.spatial_adversarial (2)   LSGAN (D_s(O_j) - 1)^2 for one random frame j of the chunk
  loss.temporal_adversarial (2)  LSGAN (D_t(O_1..F) - 1)^2
and each D: 0.5 ((D(real) - 1)^2 + D(fake)^2). VGG-19 sees the [-1, 1] images without ImageNet
normalisation, as the code feeds it; BDMM's "relu3_2" is relu3_3 (its VGG wrapper adds the
slices 14-16 to relu3_2 twice), so `loss.contextual_layers` defaults to relu3_3 (set relu3_2 for
the paper's reading). The paper lists other weights (Sec. 4.1) that do not map onto the code's
terms; the code's are the defaults.

Warps. The official code renders the reference -> frame correspondence from fitted SMPL meshes;
with `bdmm.warp_source = "annotation"` they come from the clip's annotations (the synthetic
figure's exact part maps, `inputs.part_warp`). With "<method>:<workdir>" a trained model's motion
estimator makes them from the pixels inside the step (internet_jax/motion_sources.py; frozen,
its parameters in the constants): the warp of every clip frame and of the frame before the clip
into the reference, so BDMM runs on any video with poses and no 3D body model.
"""

from __future__ import annotations

import dataclasses

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections

from internet_jax import config_checks, contextual_loss, losses, motion_sources, optimizers
from internet_jax import method as method_lib
from internet_jax.methods.bdmm import discriminators, inputs, propagation
from internet_jax.methods.bdmm.generator import Generator
from internet_jax.models import vgg

LOSS_WEIGHTS = ("l1", "content", "style", "contextual", "spatial_adversarial",
                "temporal_adversarial")
DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16}


@dataclasses.dataclass(frozen=True)
class Networks:
  """G, the spatial and the temporal D, the frozen VGG-19 (None when no term uses it), the
  frozen config the loss reads and the motion source of the warps (None: from annotations)."""
  generator: Generator
  spatial: nn.Module
  temporal: nn.Module
  vgg: nn.Module | None
  config: ml_collections.FrozenConfigDict
  motion: motion_sources.MotionSource | None = None


def uses_vgg(loss_config) -> bool:
  return any(loss_config[name] > 0 for name in ("content", "style", "contextual"))


def _vgg_layers(loss_config) -> tuple[str, ...]:
  layers = []
  for name, field in (("content", "content_layers"), ("style", "style_layers"),
                      ("contextual", "contextual_layers")):
    if loss_config[name] > 0:
      layers += list(loss_config[field])
  return tuple(dict.fromkeys(layers))


def validate_config(config: ml_collections.ConfigDict) -> None:
  """`Method.validate_config`: config.model, config.loss, config.bdmm and the optimiser."""
  for name in ("base_features", "max_features", "style_blocks", "encoder_blocks"):
    config_checks.require_int(config, f"model.{name}", 1)
  config_checks.require_choice(config, "model.dtype", tuple(DTYPES), "dtype")
  model, bdmm = config.model, config.bdmm
  config_checks.require(model.max_features % model.base_features == 0, "model.max_features",
                        f"must be a multiple of model.base_features ({model.base_features}), "
                        f"got {model.max_features}")
  resolution = config.data.resolution
  config_checks.require(resolution % 2 ** model.style_blocks == 0, "data.resolution",
                        f"must be divisible by 2^model.style_blocks = {2 ** model.style_blocks}, "
                        f"got {resolution}")
  config_checks.require(model.encoder_blocks == 3, "model.encoder_blocks",
                        "must be 3: the decoder upsamples R/8 -> R/4 -> R/2 -> R "
                        f"(the official code's layers=3), got {model.encoder_blocks}")
  config_checks.require_int(config, "bdmm.chunk_frames", 1)
  config_checks.require_int(config, "bdmm.num_chunks", 1)
  config_checks.require_int(config, "bdmm.reference_frames", 1)
  config_checks.require_int(config, "bdmm.num_joints", 1)
  if config.loss.temporal_adversarial > 0:
    config_checks.require(bdmm.chunk_frames >= 5, "bdmm.chunk_frames",
                          "must be >= 5 for the temporal discriminator (two temporal "
                          f"reductions of 2), got {bdmm.chunk_frames}")
  config_checks.require(bdmm.heatmap_sigma > 0, "bdmm.heatmap_sigma",
                        f"must be > 0, got {bdmm.heatmap_sigma!r}")
  for name in LOSS_WEIGHTS:
    config_checks.require_weight(config, f"loss.{name}")
  for field in ("content_layers", "style_layers", "contextual_layers"):
    unknown = [name for name in config.loss[field] if name not in vgg.LAYER_NAMES]
    config_checks.require(not unknown, f"loss.{field}",
                          f"unknown VGG-19 layer(s) {unknown}; known: {', '.join(vgg.LAYER_NAMES)}")
  vgg.validate_weights(config.loss, uses_vgg(config.loss),
                       "loss.content, loss.style and loss.contextual are 0")
  motion_source(config)  # a bad spec or checkpoint: one line naming bdmm.warp_source
  optimizers.validate(config, ("g_lr", "d_lr"))


def motion_source(config) -> motion_sources.MotionSource | None:
  """The checkpoint `bdmm.warp_source` names (loaded once per spec), None for warps from the
  annotations ("annotation": part maps; "source_coords": stored correspondences)."""
  spec = config.bdmm.get("warp_source", motion_sources.ANNOTATION)
  annotation_sources = (motion_sources.ANNOTATION, inputs.SOURCE_COORDS)
  if spec in annotation_sources:
    return None
  return motion_sources.load(spec, config.data.resolution, "bdmm.warp_source",
                             annotation_sources)


def build(config: ml_collections.ConfigDict) -> Networks:
  """`Method.build`."""
  model = config.model
  dtype = DTYPES[model.dtype]
  generator = Generator(base_features=model.base_features, max_features=model.max_features,
                        style_blocks=model.style_blocks, encoder_blocks=model.encoder_blocks,
                        use_dmm=model.use_dmm, orthogonal_init=model.orthogonal_init,
                        dtype=dtype)
  d = model.discriminator
  spatial = discriminators.SpatialDiscriminator(
      base_features=d.base_features, max_features=d.max_features, num_blocks=d.num_blocks,
      orthogonal_init=model.orthogonal_init, dtype=dtype)
  temporal = discriminators.TemporalDiscriminator(
      input_length=config.bdmm.chunk_frames, base_features=d.base_features,
      max_features=d.max_features, orthogonal_init=model.orthogonal_init, dtype=dtype)
  vgg_net = (vgg.VGG19(layers=_vgg_layers(config.loss), imagenet_normalize=False)
             if uses_vgg(config.loss) else None)
  return Networks(generator, spatial, temporal, vgg_net, ml_collections.FrozenConfigDict(config),
                  motion_source(config))


def init_params(networks: Networks, key: jax.Array, config) -> dict:
  """`Method.init_params`: {"g": G, "d": {"spatial", "temporal"}}."""
  r, joints = config.data.resolution, config.bdmm.num_joints
  g_key, s_key, t_key = jax.random.split(key, 3)
  image = jnp.zeros((1, r, r, 3))
  generator = networks.generator.init(g_key, image, jnp.zeros((1, r, r, joints)),
                                      image)
  spatial = networks.spatial.init(s_key, image)
  temporal = networks.temporal.init(t_key, jnp.zeros((1, config.bdmm.chunk_frames, r, r, 3)))
  return {"g": generator, "d": {"spatial": spatial, "temporal": temporal}}


def create_optimizers(config, steps_per_epoch: int) -> dict:
  """`Method.optimizers`: Adam with the code's betas (configs set b1 0, b2 0.999) for G and for
  both Ds together (one optimiser over both, as the code)."""
  return {"g": optimizers.create(config, config.optimizer.g_lr, steps_per_epoch),
          "d": optimizers.create(config, config.optimizer.d_lr, steps_per_epoch)}


def create_constants(config) -> dict:
  """`Method.create_constants`: {"vgg": the VGG-19 weights ({} when no term uses them),
  "motion": the motion source's parameters ({} for annotation warps)}."""
  source = motion_source(config)
  return {"vgg": (vgg.create_vgg(config.loss, _vgg_layers(config.loss))[1]
                  if uses_vgg(config.loss) else {}),
          "motion": source.params if source is not None else {}}


def model_warps(networks: Networks, motion_params, reference: jax.Array,
                frames: jax.Array) -> jax.Array:
  """The motion source's warps of uint8 frames (B, F, R, R, 3) into the uint8 references
  (B, R, R, 3): (B, F, R, R, 2), gradients stopped (the estimator is frozen)."""
  batch, count = frames.shape[:2]
  as_float = lambda x: x.astype(jnp.float32) / 255.0  # noqa: E731
  sources = jnp.repeat(as_float(reference), count, axis=0)
  warps = networks.motion(motion_params, sources, as_float(frames).reshape(
      (batch * count,) + frames.shape[2:]))
  return jax.lax.stop_gradient(warps.reshape((batch, count) + warps.shape[1:]))


def with_warps(networks: Networks, motion_params, batch: dict) -> dict:
  """The batch with "warps" and "initial_warp": as they are for annotation warps, else from the
  motion source (the clip frames, and "initial_frame", the frame before the clip)."""
  if networks.motion is None:
    return batch
  frames = jnp.concatenate([batch["initial_frame"][:, None], batch["frames"]], axis=1)
  warps = model_warps(networks, motion_params, batch["reference"], frames)
  return dict(batch, warps=warps[:, 1:], initial_warp=warps[:, 0])


# ---------------------------------------------------------------------------------------------
# Chunks


def to_signed(images: jax.Array) -> jax.Array:
  """uint8 [0, 255] -> float32 [-1, 1], BDMM's image range."""
  return images.astype(jnp.float32) / 127.5 - 1.0


def split(networks: Networks, constants: dict, batch: dict) -> tuple[dict, dict]:
  """`Chunks.split`: the clip's per-frame arrays (B, F, ...) -> (num_chunks, B, chunk, ...), and
  each chunk's post warp (the next chunk's first frame; the last chunk's own last frame)."""
  batch = with_warps(networks, constants["motion"], batch)
  chunk_frames = networks.config.bdmm.chunk_frames
  num_frames = batch["frames"].shape[1]

  def chunked(value):
    value = jnp.swapaxes(value, 0, 1)  # (F, B, ...)
    return jnp.swapaxes(value.reshape((-1, chunk_frames) + value.shape[1:]), 1, 2)

  starts = jnp.arange(chunk_frames, num_frames + 1, chunk_frames)
  post_index = jnp.minimum(starts, num_frames - 1)
  sequence = {name: chunked(batch[name]) for name in ("frames", "joints", "joints_valid", "warps")}
  sequence["post_warp"] = jnp.swapaxes(batch["warps"][:, post_index], 0, 1)
  context = {name: batch[name] for name in ("reference", "initial_warp")}
  context["first_joints"] = batch["joints"][:, 0]
  context["first_joints_valid"] = batch["joints_valid"][:, 0]
  return sequence, context


def propagation_switches(config) -> dict:
  """The ablation switches of `propagation.generate_chunk` from config.model."""
  model = config.model
  return dict(forward_propagation=model.forward_propagation,
              backward_propagation=model.backward_propagation,
              recurrent_structure=model.recurrent_structure)


def skeletons(config, joints, valid):
  r = config.data.resolution
  return inputs.skeleton_heatmaps(joints, valid, r, r,
                                  inputs.heatmap_sigma(r, config.bdmm.heatmap_sigma))


def init_carry(networks: Networks, params: dict, context: dict, key: jax.Array) -> dict:
  """`Chunks.init_carry`: the first chunk of each clip starts from the reference."""
  del key
  config = networks.config
  skeleton = skeletons(config, context["first_joints"], context["first_joints_valid"])
  return propagation.initial_carry(networks.generator, params["g"],
                                   to_signed(context["reference"]), skeleton,
                                   context["initial_warp"])


def _vgg_terms(networks: Networks, vgg_params, prediction, target) -> dict:
  """Content, style and contextual terms of one frame (H, W, 3) in [-1, 1]."""
  loss = networks.config.loss
  features = networks.vgg.apply(vgg_params, jnp.stack([prediction, target]))
  generated = {name: value[0] for name, value in features.items()}
  real = {name: jax.lax.stop_gradient(value[1]) for name, value in features.items()}
  terms = {}
  if loss.content > 0:
    terms["content"] = contextual_loss.content_loss(generated, real, loss.content_layers)
  if loss.style > 0:
    terms["style"] = contextual_loss.style_loss(generated, real, loss.style_layers)
  if loss.contextual > 0:
    terms["contextual"] = sum(
        contextual_loss.contextual_loss(generated[name], real[name])
        for name in loss.contextual_layers)
  return terms


def chunk_loss(networks: Networks, params: dict, constants, chunk: dict, context: dict, carry,
               key: jax.Array):
  """`Chunks.loss_fn`: ({"g", "d"}, (metrics, carry after the chunk)) of one chunk."""
  config = networks.config
  loss = config.loss
  reference = to_signed(context["reference"])
  real = to_signed(chunk["frames"])  # (B, f, R, R, 3)
  skeleton_maps = jnp.swapaxes(skeletons(config, chunk["joints"], chunk["joints_valid"]), 0, 1)
  frames, carry = propagation.generate_chunk(
      networks.generator, params["g"], reference, skeleton_maps,
      jnp.swapaxes(chunk["warps"], 0, 1), chunk["post_warp"], carry,
      **propagation_switches(config))
  fake = jnp.swapaxes(frames, 0, 1)  # (B, f, R, R, 3)
  num_frames = fake.shape[1]

  # Per example: every term is a sum over the chunk's frames (the code sums frame losses).
  def per_example(prediction, target):
    terms = {"l1": jnp.sum(jnp.mean(jnp.abs(prediction - target), axis=(1, 2, 3)))}
    if networks.vgg is not None:
      per_frame = jax.lax.map(
          jax.checkpoint(lambda pair: _vgg_terms(networks, constants["vgg"], pair[0], pair[1])),
          (prediction, target))
      terms.update({name: jnp.sum(value) for name, value in per_frame.items()})
    return terms

  terms = losses.batch_mean(per_example)(fake, real)
  g_terms, d_terms = {}, {}
  frame_index = jax.random.randint(key, (), 0, num_frames)
  d_params = params["d"]
  if loss.spatial_adversarial > 0:
    pick = lambda clip: clip[:, frame_index]  # noqa: E731
    logits_fake = networks.spatial.apply(d_params["spatial"], pick(fake))
    logits_real = networks.spatial.apply(d_params["spatial"], pick(real))
    logits_detached = networks.spatial.apply(d_params["spatial"],
                                             jax.lax.stop_gradient(pick(fake)))
    g_terms["spatial_adversarial"] = losses.batch_mean(discriminators.lsgan_generator_loss)(
        logits_fake)
    d_terms["spatial"] = losses.batch_mean(discriminators.lsgan_discriminator_loss)(
        logits_real, logits_detached)
  if loss.temporal_adversarial > 0:
    logits_fake = networks.temporal.apply(d_params["temporal"], fake)
    logits_real = networks.temporal.apply(d_params["temporal"], real)
    logits_detached = networks.temporal.apply(d_params["temporal"], jax.lax.stop_gradient(fake))
    g_terms["temporal_adversarial"] = losses.batch_mean(discriminators.lsgan_generator_loss)(
        logits_fake)
    d_terms["temporal"] = losses.batch_mean(discriminators.lsgan_discriminator_loss)(
        logits_real, logits_detached)
  terms.update(g_terms)
  g_loss = sum(loss[name] * value for name, value in terms.items())
  d_loss = sum(d_terms.values()) if d_terms else jnp.zeros((), jnp.float32)
  metrics = {f"g/{name}": value for name, value in terms.items()}
  metrics.update({f"d/{name}": value for name, value in d_terms.items()})
  metrics.update({"g/loss": g_loss, "d/loss": d_loss})
  return {"g": g_loss, "d": d_loss}, (metrics, carry)


CHUNKS = method_lib.Chunks(split=split, init_carry=init_carry, loss_fn=chunk_loss)
