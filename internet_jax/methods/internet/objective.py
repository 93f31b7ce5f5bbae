"""INTERnet's objective: its config checks, the frozen VGG-19 and the loss of one batch
(the INTERnet paper, Eqs. 1-4 and 7-11; FOMM's equivariance loss)."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import ml_collections

from internet_jax import config_checks, geometry, losses, optimizers
from internet_jax import method as method_lib
from internet_jax.methods.internet import networks
from internet_jax.models import vgg


# Loss weights that must be >= 0 (a negative weight would maximise the term).
LOSS_WEIGHT_FIELDS = ("loss.adversarial", "loss.feature_matching", "loss.perceptual", "loss.style",
                      "loss.equivariance_value", "loss.equivariance_jacobian",
                      "loss.reconstruction_l1", "loss.change_weighted_l1",
                      "loss.composition_floor", "loss.anchor_composition",
                      "loss.equivariance_colour", "temporal.weight")


def vgg_params(config) -> dict:
  """`Method.create_constants`: the VGG-19 weights (`vgg.create_vgg`), {} when unused."""
  return vgg.create_vgg(config.loss)[1] if networks.uses_vgg(config.loss) else {}


def validate_config(config: ml_collections.ConfigDict) -> None:
  """`Method.validate_config`: the model, loss, temporal and optimizer fields INTERnet reads."""
  networks.validate_model(config)
  config_checks.require_choice(config, "temporal.scheme", losses.TEMPORAL_SCHEMES, "scheme")
  for name in LOSS_WEIGHT_FIELDS:
    config_checks.require_weight(config, name)
  loss = config.loss
  config_checks.require_choice(config, "loss.gan_mode", losses.GAN_MODES, "GAN mode")
  config_checks.require_choice(config, "loss.vgg_dtype", ("float32", "model"), "VGG-19 dtype")
  for name in ("pyramid_scales", "reconstruction_scales"):
    scales = tuple(loss[name])
    config_checks.require(len(scales) > 0 and all(0 < s <= 1 for s in scales), f"loss.{name}",
                          f"scales must lie in (0, 1], got {scales}")
  unknown_layers = [name for name in loss.style_layers if name not in vgg.LAYER_NAMES]
  config_checks.require(not unknown_layers, "loss.style_layers",
                        f"unknown VGG-19 layer(s) {unknown_layers}; known: "
                        f"{', '.join(vgg.LAYER_NAMES)}")
  vgg.validate_weights(loss, networks.uses_vgg(loss),
                       "loss.perceptual and loss.style are 0: set them "
                       "(configs/synthetic.py:paper_losses does), or drop it")
  optimizers.validate(config, ("g_lr", "d_lr"))


def create_optimizers(config: ml_collections.ConfigDict, steps_per_epoch: int) -> dict:
  """`Method.optimizers`: RAdam (or `config.optimizer.name`) for G and for D, each with the
  paper's step decay (`optimizers.create`)."""
  return {"g": optimizers.create(config, config.optimizer.g_lr, steps_per_epoch),
          "d": optimizers.create(config, config.optimizer.d_lr, steps_per_epoch)}


def _split_real_fake(discriminator_outputs: list[dict], batch_size: int):
  """D runs once on concat([real, fake]); split every map back into the two halves."""
  real = jax.tree.map(lambda x: x[:batch_size], discriminator_outputs)
  fake = jax.tree.map(lambda x: x[batch_size:], discriminator_outputs)
  return real, fake


def loss_fn(nets: networks.Networks, params, vgg_params, batch, key) -> tuple[dict, dict]:
  """({"g": G's loss, "d": D's loss}, the logged terms) for one global batch (`Method.loss_fn`).

  G minimises adversarial (Eq. 8) + lambda_per perceptual (Eq. 9) + lambda_sty style
  (Eqs. 10-11) + feature matching + equivariance + lambda_reg temporal (Eq. 2, 3 or 4,
  `config.temporal.scheme`), each term a per-example function vmapped over the batch; D the
  multi-scale adversarial loss. Both from this one forward pass (the trainer's one vjp).
  """
  generator, discriminator, vgg_net = nets.generator, nets.discriminator, nets.vgg
  config = nets.config
  g_params, d_params = params["g"], params["d"]
  images = method_lib.to_float_images(batch)
  source, driving = images["source"], images["driving"]
  given = networks.given_anchors(config.model, batch, config.data.resolution)
  outputs = generator.apply(g_params, source, driving, anchors=given)
  prediction = outputs["prediction"]
  batch_size = prediction.shape[0]

  gan_mode = config.loss.gan_mode
  # Without the adversarial and feature-matching terms G never sees D, so D is not run at all
  # (FOMM's configs with generator_gan 0 still train D; here that would be compute for nothing).
  use_discriminator = config.loss.adversarial > 0 or config.loss.feature_matching > 0
  if use_discriminator:
    real, fake = _split_real_fake(
        discriminator.apply(d_params, jnp.concatenate([driving, prediction])), batch_size)
    d_loss = losses.batch_mean(lambda r, f: losses.discriminator_loss(r, f, gan_mode))(
        [s["prediction"] for s in real], [s["prediction"] for s in fake])
  else:
    d_loss = jnp.zeros((), jnp.float32)

  weights = {
      "adversarial": config.loss.adversarial,
      "feature_matching": config.loss.feature_matching,
      "perceptual": config.loss.perceptual,
      "style": config.loss.style,
      "equivariance_value": config.loss.equivariance_value,
      "equivariance_jacobian": config.loss.equivariance_jacobian,
      "reconstruction_l1": config.loss.reconstruction_l1,
      "change_weighted_l1": config.loss.get("change_weighted_l1", 0.0),
      "composition_floor": config.loss.get("composition_floor", 0.0),
      "anchor_composition": config.loss.get("anchor_composition", 0.0),
      "temporal": config.temporal.weight if config.temporal.scheme != "none" else 0.0,
  }
  features_fn = functools.partial(vgg_net.apply, vgg_params) if vgg_net is not None else None

  # Equivariance: the anchors of D'(z) = D(T(z)) must follow T (FOMM; paper Sec. 4.1 uses TPS).
  tps_keys = jax.random.split(key, batch_size)
  tps = jax.vmap(lambda k: geometry.random_tps(k, config.loss.tps_sigma_affine,
                                               config.loss.tps_sigma_tps, config.loss.tps_points))(tps_keys)
  # Given anchors (model.motion.anchors) leave the detector out of the loss: nothing to equivary.
  need_equivariance = given is None and (weights["equivariance_value"] > 0
                                         or weights["equivariance_jacobian"] > 0)
  transformed_anchors = None
  if need_equivariance:
    transformed = jax.vmap(geometry.tps_warp_image)(tps, driving)
    if config.loss.equivariance_colour > 0:
      colour_keys = jax.random.split(jax.random.fold_in(key, 1), batch_size)
      transformed = jax.vmap(lambda k, image: losses.random_colour_change(
          k, image, config.loss.equivariance_colour))(colour_keys, transformed)
    transformed_anchors = generator.apply(g_params, transformed, method="detect_anchors")

  def per_example(example):
    terms = {}
    pred, target = example["prediction"], example["driving"]
    if weights["adversarial"]:
      terms["adversarial"] = losses.generator_adversarial_loss(
          [s["prediction"] for s in example["fake"]], gan_mode)
    if weights["feature_matching"]:
      terms["feature_matching"] = losses.feature_matching_loss(
          [s["features"] for s in example["real"]], [s["features"] for s in example["fake"]])
    if weights["perceptual"] or weights["style"]:
      # One VGG pass per pyramid level serves both Eq. 9 and Eq. 10.
      terms["perceptual"], terms["style"] = losses.perceptual_and_style_loss(
          features_fn, pred, target, tuple(config.loss.pyramid_scales),
          style_layers=tuple(config.loss.style_layers))
    if need_equivariance:
      equivariance = losses.equivariance_loss(example["driving_anchors"],
                                              example["transformed_anchors"], example["tps"])
      terms["equivariance_value"] = equivariance["value"]
      terms["equivariance_jacobian"] = equivariance["jacobian"]
    if weights["reconstruction_l1"]:
      terms["reconstruction_l1"] = losses.pyramid_l1_loss(
          pred, target, tuple(config.loss.reconstruction_scales))
    if weights["change_weighted_l1"]:
      terms["change_weighted_l1"] = losses.change_weighted_l1_loss(pred, target,
                                                                   example["source"])
    if weights["composition_floor"]:
      terms["composition_floor"] = losses.composition_floor_loss(
          example["composition"], config.loss.get("composition_floor_share", 0.005))
    if weights["anchor_composition"]:
      terms["anchor_composition"] = losses.anchor_composition_loss(
          example["composition"], example["driving_anchors"]["value"],
          config.loss.get("anchor_composition_share", 0.5), config.model.motion.anchor_variance)
    if weights["temporal"]:
      terms["temporal"] = losses.temporal_loss(
          config.temporal.scheme, pred, example["previous"], example["flow"],
          example["flow_confidence"], example["confidence_full"])
    return terms

  examples = {
      "prediction": prediction, "driving": driving, "source": source,
      "previous": images["previous"],
      "flow": images["flow"], "flow_confidence": images["flow_confidence"],
      "confidence_full": outputs["confidence_full"],
      "composition": outputs["composition"],
      "driving_anchors": {k: outputs["driving_anchors"][k] for k in ("value", "jacobian")},
      "tps": tps,
  }
  if use_discriminator:
    examples.update(real=real, fake=fake)
  if need_equivariance:
    examples["transformed_anchors"] = {k: transformed_anchors[k] for k in ("value", "jacobian")}
  terms = losses.batch_mean(per_example)(examples)
  g_loss = sum(weights[name] * value for name, value in terms.items())

  metrics = {f"g/{name}": value for name, value in terms.items()}
  metrics.update({
      "g/total": g_loss,
      "d/total": d_loss,
      "mean_confidence": jnp.mean(outputs["confidence"]),
      "l1": jnp.mean(jnp.abs(prediction - driving)),
  })
  return {"g": g_loss, "d": d_loss}, metrics
