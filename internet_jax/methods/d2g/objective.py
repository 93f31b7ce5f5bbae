"""D2G-Net's networks, config checks, initialisation, optimisers and objective ("Robust Pose
Transfer with Dynamic Details using Neural Video Rendering", Sec. 3; the public PyTorch code,
SunYangtian/Neural-Human-Video-Rendering: models/pix2pixHD_Avatar.py `forward`, pre_train.py,
train.py).

A batch holds B pairs of consecutive frames (t - 1, t) of one person (the code stacks each pair
into one batch of 2B images). Every frame t is rendered from its pose label alone: TransG gives
per-part (U, V) and part logits P, the hybrid texture sampled by them gives the texture image
(RGB + feature channels), the translation net turns it into the foreground, and the learnable
background is composited with the background probability P0 = softmax(P)[0] (Eqs. 3-4). The
static image is the composite of the texture's RGB channels alone (Ĩ_syn).

Generator loss (images in [-1, 1]; the weights are the code's, config.loss; [e>S] marks the terms
the code turns on only after `d2g.static_epochs` epochs):
  l2 (500)          mean (Ĩ_syn - I)^2 + [e>S] mean (I_syn - I)^2
  vgg (10)          VGG(Ĩ_syn, I) + [e>S] VGG(I_syn, I), pix2pixHD's layer weights
  uv (1000)         mean over all 2P x H x W of |UV - UV_gt| * 1[label = p]      [densepose]
  part (10)         cross-entropy of the part logits against the labels (P + 1)  [densepose]
  mask (0.1)        BCE-with-logits(1 - P0, person mask): the code applies the sigmoid to a
                    probability (loss.mask_on_probability; False: plain BCE on 1 - P0, as the
                    pretraining script does)
  human_mask (500)  [e>S] mean (I_syn - I)^2 (1 - P0)
  temporal (500)    [e>S] Eq. 5: mean |W(I_syn^{t-1}, f_inv) - I_syn^t| c (the paper writes 100)
  adversarial (1)   [e>S] LSGAN, summed over the discriminator's scales, both frames
and D: [e>S] 0.5 (sum over scales of mean (D(pose, I) - 1)^2 + mean D(pose, I_syn)^2).
[densepose]: only with DensePose labels (`d2g.densepose`; the code's `use_densepose_loss`, whose
`init_loss_filter` drops both terms without them, e.g. on a real video annotated by OpenPose and
a person segmenter only).

The UV pretraining stage (`d2g.stage = "pretrain"`, pre_train.py) trains TransG alone on many
people: loss.uv |UV - UV_gt| + loss.part CE + loss.mask BCE; the per-person stage
(`d2g.stage = "person"`) loads its TransG (`d2g.pretrained`, a workdir).

Optimisers (train.py init_optimizer_G): Adam (0.5, 0.999), lr 2e-4; TransG's rate is lr * 0.9^e
in epoch e (counted from 1 as the code does); the texture, translation net and background get
the same decay while e <= static_epochs and the undecayed lr after; D keeps its rate. The code
creates a new Adam for G every epoch (its moments restart); here the moments are kept across
epochs (one optax state for the run, which checkpoints and resumes exactly), which is the usual
reading of Adam and changes only the first steps of each epoch.
"""

from __future__ import annotations

import dataclasses

from absl import logging
import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax

from internet_jax import config_checks, geometry, losses, optimizers
from internet_jax.methods.d2g import inputs, networks as d2g_networks
from internet_jax.models import vgg

STAGES = ("person", "pretrain")
TEXTURE_INITS = ("unfold", "zeros")
BACKGROUND_INITS = ("median", "zeros")
TEMPORAL_CONFIDENCES = ("forward_backward", "exact")
LOSS_WEIGHTS = ("l2", "vgg", "uv", "part", "mask", "human_mask", "temporal", "adversarial")
DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16}
# G's parameter groups (top-level names of D2GGenerator's parameters) and whose rate keeps
# decaying after the static epochs (train.py: only TransG's).
ALWAYS_DECAYING = ("uv_generator",)


@dataclasses.dataclass(frozen=True)
class Networks:
  """G (TransG + texture + translation net + background), the multi-scale D, the frozen VGG-19
  (None when loss.vgg is 0) and the frozen config the loss reads."""
  generator: nn.Module
  discriminator: nn.Module
  vgg: nn.Module | None
  config: ml_collections.FrozenConfigDict


def uses_vgg(config) -> bool:
  return config.d2g.stage == "person" and config.loss.vgg > 0


def validate_config(config: ml_collections.ConfigDict) -> None:
  """`Method.validate_config`: config.model, config.d2g, config.loss and the optimiser."""
  # Sizes, counts and rates are checked with every numeric field (config_checks.NUMERIC_RULES).
  model, d2g = config.model, config.d2g
  config_checks.require_choice(config, "model.dtype", tuple(DTYPES), "dtype")
  resolution = config.data.resolution
  for prefix in ("uv", "translation"):
    downs = model[f"{prefix}_num_downsamples"]
    config_checks.require(resolution % 2 ** downs == 0, "data.resolution",
                          f"must be divisible by 2^model.{prefix}_num_downsamples = {2 ** downs}, "
                          f"got {resolution}")
  config_checks.require_choice(config, "d2g.stage", STAGES, "stage")
  config_checks.require_choice(config, "d2g.texture_init", TEXTURE_INITS, "texture init")
  config_checks.require_choice(config, "d2g.background_init", BACKGROUND_INITS,
                               "background init")
  config_checks.require_choice(config, "d2g.temporal_confidence", TEMPORAL_CONFIDENCES,
                               "temporal confidence")
  inputs.bones_for(d2g.num_joints)
  if not d2g.densepose:
    config_checks.require(d2g.stage == "person", "d2g.densepose",
                          "False needs d2g.stage = 'person' (the UV pretraining learns from "
                          "DensePose labels)")
    config_checks.require(d2g.texture_init == "zeros", "d2g.texture_init",
                          "'unfold' reads the frames' DensePose UV; set 'zeros' when "
                          "d2g.densepose is False")
  for name in LOSS_WEIGHTS:
    config_checks.require_weight(config, f"loss.{name}")
  layers, weights = config.loss.vgg_layers, config.loss.vgg_layer_weights
  config_checks.require(len(weights) == len(layers), "loss.vgg_layer_weights",
                        f"needs one weight per layer of loss.vgg_layers ({len(layers)}), "
                        f"got {len(weights)}")
  unknown = [name for name in config.loss.vgg_layers if name not in vgg.LAYER_NAMES]
  config_checks.require(not unknown, "loss.vgg_layers",
                        f"unknown VGG-19 layer(s) {unknown}; known: {', '.join(vgg.LAYER_NAMES)}")
  vgg.validate_weights(config.loss, uses_vgg(config), "loss.vgg is 0")
  if d2g.stage == "person" and d2g.pretrained:
    pretrained_checkpoint(config)  # a missing pretraining run: the command that makes it
  optimizers.validate(config, ("g_lr", "d_lr"))


def pretrained_checkpoint(config) -> str:
  """The pretraining workdir `d2g.pretrained`, checked to hold a checkpoint; otherwise a one-line
  ValueError with the command that trains it."""
  from internet_jax import checkpointing  # pylint: disable=g-import-not-at-top
  workdir = str(config.d2g.pretrained)
  try:
    checkpointing.resolve_checkpoint(workdir, None)
  except (ValueError, OSError):
    raise ValueError(
        f"config.d2g.pretrained: no pretraining checkpoint in {workdir}; train it first: "
        f"python -m internet_jax.main --config={config.d2g.pretrain_config} --workdir={workdir}"
    ) from None
  return workdir


def build(config: ml_collections.ConfigDict) -> Networks:
  """`Method.build`."""
  model = config.model
  dtype = DTYPES[model.dtype]
  generator = d2g_networks.D2GGenerator(
      num_parts=config.d2g.num_parts, resolution=config.data.resolution,
      texture_size=model.texture_size, feature_channels=model.feature_channels,
      use_translation=model.use_translation, pose_condition=model.pose_condition,
      uv_base_features=model.uv_base_features, uv_max_features=model.uv_max_features,
      uv_num_downsamples=model.uv_num_downsamples, uv_num_blocks=model.uv_num_blocks,
      translation_base_features=model.translation_base_features,
      translation_max_features=model.translation_max_features,
      translation_num_downsamples=model.translation_num_downsamples,
      translation_num_blocks=model.translation_num_blocks, dtype=dtype)
  d = model.discriminator
  discriminator = d2g_networks.MultiscaleDiscriminator(
      num_scales=d.num_scales, num_layers=d.num_layers, base_features=d.base_features,
      max_features=d.max_features, dtype=dtype)
  vgg_net = (vgg.VGG19(layers=tuple(config.loss.vgg_layers), imagenet_normalize=False)
             if uses_vgg(config) else None)
  return Networks(generator, discriminator, vgg_net, ml_collections.FrozenConfigDict(config))


# ---------------------------------------------------------------------------------------------
# Initialisation


def pose_labels(config, joints: jax.Array, valid: jax.Array) -> jax.Array:
  """The pose label of every frame (..., R, R, 3) in [-1, 1] from its joints."""
  r = config.data.resolution
  thickness = float(config.d2g.pose_thickness) or None
  return inputs.pose_label(joints, valid, r, r, bones=inputs.bones_for(config.d2g.num_joints),
                           thickness=thickness)


def _load_pretrained_uv_generator(config, initial: dict) -> dict:
  """TransG's parameters from the pretraining run, leaf by leaf where the shapes agree and the
  initial ones elsewhere (pix2pixHD's base_model.py load_network falls back to such a partial
  load; the code's per-person TransG has 9 residual blocks against the pretraining's 5); a
  partial load is logged as a warning."""
  from internet_jax import checkpointing  # pylint: disable=g-import-not-at-top
  # Read on the host while the (jitted) init is traced: eagerly, so that the arrays Orbax
  # restores are concrete values (constants of the init), not tracers.
  with jax.ensure_compile_time_eval():
    _, _, params, _, _ = checkpointing.load_inference(pretrained_checkpoint(config))
  loaded = params["g"]["params"].get("uv_generator", {})
  flat_loaded = {path: np.asarray(value) for path, value in
                 jax.tree_util.tree_flatten_with_path(loaded)[0]}
  counts = [0, 0]

  def pick(path, value):
    found = flat_loaded.get(path)
    if found is not None and found.shape == value.shape:
      counts[0] += 1
      return jnp.asarray(found, value.dtype)
    counts[1] += 1
    return value

  merged = jax.tree_util.tree_map_with_path(pick, initial)
  if counts[1]:
    logging.warning("d2g.pretrained: %d of %d TransG parameter arrays loaded from %s; %d differ "
                    "in shape or are new and keep their initialisation", counts[0], sum(counts),
                    config.d2g.pretrained, counts[1])
  return merged


def init_params(networks: Networks, key: jax.Array, config) -> dict:
  """`Method.init_params`: {"g": D2GGenerator, "d": MultiscaleDiscriminator}.

  The texture's RGB channels and the background start from the training frames when
  d2g.texture_init = "unfold" and d2g.background_init = "median" (`inputs.unfold_texture`,
  `inputs.static_background`, read on the host while the init is traced), TransG from the
  pretraining run when d2g.pretrained names one."""
  r = config.data.resolution
  g_key, d_key = jax.random.split(key)
  pose = jnp.zeros((1, r, r, 3))
  g = networks.generator.init(g_key, pose)
  d = networks.discriminator.init(d_key, pose, jnp.zeros((1, r, r, 3)))
  d2g = config.d2g
  if d2g.stage == "person" and (d2g.texture_init == "unfold" or d2g.background_init == "median"):
    from input_pipeline import datasets  # pylint: disable=g-import-not-at-top
    source = datasets.get_video_source(config.data, "train")
    inner = dict(g["params"])
    if d2g.texture_init == "unfold":
      rgb = inputs.unfold_texture(source, d2g.num_parts, config.model.texture_size,
                                  max_frames=d2g.init_frames)
      inner["texture"] = inner["texture"].at[..., :3].set(jnp.asarray(rgb))
    if d2g.background_init == "median":
      background = inputs.static_background(source, max_frames=d2g.init_frames)
      inner["background"] = jnp.asarray(background * 2.0 - 1.0, inner["background"].dtype)
    g = {**g, "params": inner}
  if d2g.stage == "person" and d2g.pretrained:
    inner = dict(g["params"])
    inner["uv_generator"] = _load_pretrained_uv_generator(config, inner["uv_generator"])
    g = {**g, "params": inner}
  return {"g": g, "d": d}


def create_optimizers(config, steps_per_epoch: int) -> dict:
  """`Method.optimizers`: G's groups with the code's per-epoch decay (module docstring), D at a
  constant rate."""
  opt, d2g = config.optimizer, config.d2g
  steps_per_epoch = max(int(steps_per_epoch), 1)
  static_epochs, decay = int(d2g.static_epochs), float(d2g.lr_decay_per_epoch)

  def schedule(always_decaying: bool):
    def rate(count):
      epoch = count // steps_per_epoch + 1  # the code counts epochs from 1
      factor = decay ** epoch.astype(jnp.float32)
      if not always_decaying:
        factor = jnp.where(epoch <= static_epochs, factor, 1.0)
      return opt.g_lr * factor
    return rate

  def adam(always_decaying: bool):
    return optax.inject_hyperparams(optimizers.OPTIMIZERS[opt.name])(
        learning_rate=schedule(always_decaying), b1=opt.b1, b2=opt.b2)

  def label(params):
    return {"params": {name: jax.tree.map(lambda _: "decaying" if name in ALWAYS_DECAYING
                                          else "static_then_constant", value)
                       for name, value in params["params"].items()}}

  g = optax.multi_transform({"decaying": adam(True), "static_then_constant": adam(False)}, label)
  return {"g": g, "d": optimizers.create(config, opt.d_lr, steps_per_epoch)}


def vgg_constants(config) -> dict:
  """`Method.create_constants`: the VGG-19 weights, {} when loss.vgg is 0."""
  return vgg.create_vgg(config.loss, tuple(config.loss.vgg_layers))[1] if uses_vgg(config) else {}


# ---------------------------------------------------------------------------------------------
# Loss terms, per example (one pair: arrays with a leading axis of 2 frames)


def to_signed(images: jax.Array) -> jax.Array:
  """uint8 [0, 255] -> float32 [-1, 1], the code's image range."""
  return images.astype(jnp.float32) / 127.5 - 1.0


def uv_loss(uv: jax.Array, uv_target: jax.Array, labels: jax.Array) -> jax.Array:
  """mean over all parts, both coordinates and pixels of |UV_p - UV_gt| 1[label = p].

  uv: (..., H, W, P, 2) in [-1, 1]; uv_target: (..., H, W, 2) in [-1, 1] (the UV of the part
  each pixel belongs to); labels: (..., H, W) int, 0 = background, p = part p."""
  num_parts = uv.shape[-2]
  mask = jax.nn.one_hot(labels, num_parts + 1, dtype=jnp.float32)[..., 1:, None]
  return jnp.mean(jnp.abs(uv - uv_target[..., None, :]) * mask)


def part_loss(logits: jax.Array, labels: jax.Array) -> jax.Array:
  """Mean cross-entropy of the part logits (..., H, W, P + 1) against labels (..., H, W)."""
  return jnp.mean(optax.softmax_cross_entropy_with_integer_labels(logits, labels))


def mask_loss(foreground_prob: jax.Array, mask: jax.Array, on_probability: bool) -> jax.Array:
  """The person-mask term on 1 - P0. on_probability: the code's BCEWithLogits applied to the
  probability itself (softplus(x) - x y with x = 1 - P0); otherwise plain binary cross-entropy
  of the probability (pre_train.py)."""
  x = foreground_prob.astype(jnp.float32)
  if on_probability:
    return jnp.mean(jax.nn.softplus(x) - x * mask)
  x = jnp.clip(x, 1e-6, 1.0 - 1e-6)
  return jnp.mean(-(mask * jnp.log(x) + (1.0 - mask) * jnp.log1p(-x)))


def backward_warp(image: jax.Array, flow_px: jax.Array) -> jax.Array:
  """W(image, f): image(p + f(p)) sampled bilinearly with border padding (the code's backwarp,
  pix2pixHD_Avatar.py). image (H, W, C); flow_px (H, W, 2) in pixels, (x, y)."""
  height, width = flow_px.shape[:2]
  coords = geometry.coordinate_grid(height, width) + geometry.pixel_to_normalized_flow(
      flow_px, height, width)
  return geometry.warp(image, coords, padding_mode="border")


def flow_confidence(flow_backward: jax.Array, flow_forward: jax.Array) -> jax.Array:
  """The code's cal_conf: 1 where ||f_inv(p) + f(p + f_inv(p))||^2 < 1 (pixels squared), else 0.
  flow_backward: pixels of frame t -> t - 1 (f_inv); flow_forward: pixels of t - 1 -> t (f).
  (H, W, 1)."""
  round_trip = flow_backward + backward_warp(flow_forward, flow_backward)
  return (jnp.sum(jnp.square(round_trip), axis=-1, keepdims=True) < 1.0).astype(jnp.float32)


def temporal_loss(previous: jax.Array, current: jax.Array, flow_backward: jax.Array,
                  confidence: jax.Array) -> jax.Array:
  """Eq. 5: mean over pixels and channels of |W(I^{t-1}, f_inv) - I^t| c. previous, current
  (H, W, 3); flow_backward (H, W, 2) pixels of frame t -> t - 1; confidence (H, W, 1)."""
  return jnp.mean(jnp.abs(backward_warp(previous, flow_backward) - current) * confidence)


def vgg_loss(networks: Networks, vgg_params, prediction: jax.Array,
             target: jax.Array) -> jax.Array:
  """pix2pixHD's VGGLoss: sum_l w_l mean |phi_l(prediction) - phi_l(target)|, frames (2, H, W, 3)
  in [-1, 1] fed as they are (no ImageNet normalisation), targets constant."""
  loss = networks.config.loss
  features = networks.vgg.apply(vgg_params, jnp.concatenate([prediction, target]))
  count = prediction.shape[0]
  total = jnp.zeros((), jnp.float32)
  for name, weight in zip(loss.vgg_layers, loss.vgg_layer_weights):
    generated, real = features[name][:count], jax.lax.stop_gradient(features[name][count:])
    total = total + weight * jnp.mean(jnp.abs(generated - real))
  return total


def _pair_terms(networks: Networks, vgg_params, out: dict, example: dict, gate) -> dict:
  """The image, UV, part, mask and temporal terms of one pair (module docstring); `gate` is 1
  after the static epochs and 0 before."""
  loss, d2g = networks.config.loss, networks.config.d2g
  real = to_signed(example["frames"])
  person = example["person_mask"].astype(jnp.float32)
  foreground_prob = 1.0 - out["probs"][..., 0]
  terms = {"mask": mask_loss(foreground_prob, person, loss.mask_on_probability)}
  if d2g.densepose:
    labels = example["part_labels"]
    terms["uv"] = uv_loss(out["uv"], example["uv"] * 2.0 - 1.0, labels)
    terms["part"] = part_loss(out["logits"], labels)
  if d2g.stage == "pretrain":
    return terms
  output, static = out["output"], out["static_output"]
  terms["l2"] = jnp.mean(jnp.square(static - real)) + gate * jnp.mean(jnp.square(output - real))
  terms["human_mask"] = gate * jnp.mean(jnp.square(output - real) * foreground_prob[..., None])
  if d2g.temporal_confidence == "exact":
    confidence = example["valid_backward"].astype(jnp.float32)[..., None]
  else:
    confidence = flow_confidence(example["flow_backward"], example["flow_forward"])
  terms["temporal"] = gate * temporal_loss(output[0], output[1], example["flow_backward"],
                                           confidence)
  if networks.vgg is not None:
    terms["vgg"] = (vgg_loss(networks, vgg_params, static, real)
                    + gate * vgg_loss(networks, vgg_params, output, real))
  return terms


def loss_fn(networks: Networks, params: dict, constants, batch: dict, key: jax.Array, *,
            epoch: jax.Array) -> tuple[dict, dict]:
  """`Method.loss_fn`: ({"g", "d"}, metrics) of a batch of B pairs."""
  del key
  config = networks.config
  loss = config.loss
  batch_size = batch["frames"].shape[0]
  # The pairs (B, 2, ...) as one batch of 2B frames (as the code stacks them), and back.
  flat = lambda x: x.reshape((2 * batch_size,) + x.shape[2:])  # noqa: E731
  unflat = lambda x: x.reshape((batch_size, 2) + x.shape[1:])  # noqa: E731
  pose = pose_labels(config, flat(batch["joints"]), flat(batch["joints_valid"]))
  pretrain = config.d2g.stage == "pretrain"
  out = networks.generator.apply(params["g"], pose, uv_only=pretrain)
  gate = (epoch >= config.d2g.static_epochs).astype(jnp.float32)
  per_pair = {name: unflat(value) for name, value in out.items() if name != "background"}
  terms = losses.batch_mean(
      lambda o, e: _pair_terms(networks, constants, o, e, gate))(per_pair, batch)
  d_loss = jnp.zeros((), jnp.float32)
  if not pretrain and loss.adversarial > 0:
    fake, real = out["output"], to_signed(flat(batch["frames"]))
    d_params = params["d"]
    apply_d = lambda image: networks.discriminator.apply(d_params, pose, image)  # noqa: E731
    terms["adversarial"] = gate * losses.generator_adversarial_loss(apply_d(fake), "lsgan")
    d_loss = gate * 0.5 * losses.discriminator_loss(
        apply_d(real), apply_d(jax.lax.stop_gradient(fake)), "lsgan")
  g_loss = sum(loss[name] * value for name, value in terms.items())
  metrics = {f"g/{name}": value for name, value in terms.items()}
  metrics.update({"g/loss": g_loss, "d/loss": d_loss, "static_phase": 1.0 - gate,
                  "mean_foreground": jnp.mean(1.0 - out["probs"][..., 0])})
  return {"g": g_loss, "d": d_loss}, metrics
