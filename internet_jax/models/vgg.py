"""A frozen VGG-19 feature extractor for the perceptual and style losses (paper Eqs. 9-11).

The network is the convolutional part of torchvision's `vgg19().features`: 16 convolutions 3x3
(SAME, stride 1) each followed by ReLU, and a 2x2 max-pool after blocks 1-4 (the pool after
block 5 is never needed for features). Input images are (..., H, W, 3) in [0, 1]; the ImageNet
mean/std normalisation the weights were trained with is applied inside, as in FOMM
(github.com/AliaksandrSiarohin/first-order-model, modules/model.py `Vgg19`).

Weights cannot be downloaded on our machines: `load_vgg19_params`
reads a user-supplied torchvision/timm state dict from .safetensors, .npz or (with torch
installed) .pth. Without weights a config may allow `random_vgg19_params`, a seeded He-normal
network, and `create_vgg` / `make_vgg_features_fn` log that the feature losses then use random
features.

Parameters are a Flax variables dict {"params": {"conv1_1": {"kernel": (3, 3, in, out) HWIO,
"bias": (out,)}, ..., "conv5_4": ...}}.
"""

from __future__ import annotations

import functools
import os
import re
from typing import Any, Callable, Mapping, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from absl import logging

from internet_jax import config_checks, errors
from internet_jax import weights as weights_folder
from internet_jax.losses import PERCEPTUAL_LAYERS, STYLE_LAYERS

# (block, convolutions in the block, output channels) of VGG-19 (configuration "E").
_BLOCKS = ((1, 2, 64), (2, 2, 128), (3, 4, 256), (4, 4, 512), (5, 4, 512))

CONV_NAMES: tuple[str, ...] = tuple(
    f"conv{b}_{i}" for b, n, _ in _BLOCKS for i in range(1, n + 1))
LAYER_NAMES: tuple[str, ...] = tuple(name.replace("conv", "relu") for name in CONV_NAMES)

# Index of each convolution inside torchvision's (and timm's) `features` Sequential: every conv
# is followed by its ReLU, and a MaxPool closes each block, so indices skip by 2 and by 3.
TORCH_FEATURE_INDEX: dict[str, int] = {}
_index = 0
for _block, _count, _ in _BLOCKS:
  for _i in range(1, _count + 1):
    TORCH_FEATURE_INDEX[f"conv{_block}_{_i}"] = _index
    _index += 2
  _index += 1  # the block's MaxPool2d
del _index, _block, _count, _i

# (in_channels, out_channels) of every convolution.
CONV_CHANNELS: dict[str, tuple[int, int]] = {}
_in = 3
for _block, _count, _out in _BLOCKS:
  for _i in range(1, _count + 1):
    CONV_CHANNELS[f"conv{_block}_{_i}"] = (_in, _out)
    _in = _out
del _in, _block, _count, _out, _i

# Layers the losses read by default (losses.PERCEPTUAL_LAYERS and losses.STYLE_LAYERS: FOMM's
# relu1_1 ... relu5_1); `create_vgg` adds config.loss.style_layers to them.
DEFAULT_LAYERS: tuple[str, ...] = tuple(dict.fromkeys(PERCEPTUAL_LAYERS + STYLE_LAYERS))

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

HOW_TO_SUPPLY_WEIGHTS = (
    "convert torchvision's VGG-19 ImageNet weights once, where torch is installed: python -m "
    "internet_jax.convert_weights vgg19 vgg19-dcbb9e9d.pth (README: Supplying pretrained "
    "weights); the file lands in the default weights folder, or give any file with "
    "--config.loss.vgg_weights=PATH")


def _check_layers(layers: Sequence[str]) -> None:
  unknown = [name for name in layers if name not in LAYER_NAMES]
  if unknown:
    raise ValueError(f"VGG19: unknown layer(s) {unknown}; known: {', '.join(LAYER_NAMES)}")


class _Conv3x3(nn.Module):
  """A 3x3 SAME convolution (torch Conv2d(k=3, padding=1)) whose parameters are optionally
  constants: with `frozen`, gradients stop at the kernel and bias but still flow to the input."""
  features: int
  frozen: bool = True
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    kernel = self.param("kernel", nn.initializers.he_normal(), (3, 3, x.shape[-1], self.features),
                        jnp.float32)
    bias = self.param("bias", nn.initializers.zeros, (self.features,), jnp.float32)
    if self.frozen:
      kernel, bias = jax.lax.stop_gradient(kernel), jax.lax.stop_gradient(bias)
    y = jax.lax.conv_general_dilated(
        x.astype(self.dtype), kernel.astype(self.dtype), window_strides=(1, 1),
        padding=((1, 1), (1, 1)), dimension_numbers=("NHWC", "HWIO", "NHWC"))
    return y + bias.astype(self.dtype)


class VGG19(nn.Module):
  """VGG-19 features: (..., H, W, 3) in [0, 1] -> {"relu1_1": ..., ...}.

  `imagenet_normalize` False feeds the images as they come, without the ImageNet mean/std: the
  way BDMM (rocketappslab/BDMM, model/networks/external_function.py `VGG19`) feeds its [-1, 1]
  images.

  Only the convolutions up to the deepest layer in `layers` are built and run, and the returned
  dict holds every reluX_Y computed on the way (a superset of `layers`). Max-pooling floors odd
  sizes like torch's MaxPool2d(2, 2). With `frozen` (the default) the parameters are constants
  (VGG is never trained): `apply` passes no gradient to them, only to the images.
  """
  layers: Sequence[str] = LAYER_NAMES
  frozen: bool = True
  dtype: Any = jnp.float32
  imagenet_normalize: bool = True

  @nn.compact
  def __call__(self, images: jax.Array) -> dict[str, jax.Array]:
    _check_layers(self.layers)
    deepest = max(LAYER_NAMES.index(name) for name in self.layers)
    batch_shape = images.shape[:-3]
    x = images.reshape((-1,) + images.shape[-3:]).astype(self.dtype)
    mean = jnp.asarray(IMAGENET_MEAN, self.dtype)
    std = jnp.asarray(IMAGENET_STD, self.dtype)
    if self.imagenet_normalize:
      x = (x - mean) / std
    features = {}
    for position, conv_name in enumerate(CONV_NAMES[:deepest + 1]):
      block, index = conv_name[4:].split("_")
      if index == "1" and block != "1":
        x = nn.max_pool(x, (2, 2), strides=(2, 2), padding="VALID")
      x = _Conv3x3(CONV_CHANNELS[conv_name][1], frozen=self.frozen, dtype=self.dtype,
                   name=conv_name)(x)
      x = nn.relu(x)
      features[LAYER_NAMES[position]] = x.reshape(batch_shape + x.shape[1:])
    return features


# ---------------------------------------------------------------------------------------------
# Parameters: random (seeded) and loaded from a torchvision/timm state dict.


def random_vgg19_params(seed: int = 0) -> dict:
  """A deterministic random VGG-19: He-normal (fan-in) kernels, zero biases.

  Fan-in He keeps the activation scale roughly constant through the 16 ReLU layers, so random
  features stay well conditioned at relu5_x. Used only when a config sets
  `loss.allow_random_vgg` (synthetic config, tests).
  """
  # numpy's generator: one fast host draw per layer (jax.random would compile 16 kernels).
  rng = np.random.default_rng(seed)
  params = {}
  for name in CONV_NAMES:
    c_in, c_out = CONV_CHANNELS[name]
    std = np.float32(np.sqrt(2.0 / (9 * c_in)))
    kernel = rng.standard_normal((3, 3, c_in, c_out), dtype=np.float32) * std
    params[name] = {"kernel": jnp.asarray(kernel), "bias": jnp.zeros((c_out,), jnp.float32)}
  return {"params": params}


# Wrappers that checkpoints put in front of the torchvision names (DataParallel, Lightning, ...).
_WRAPPER_PREFIXES = ("module.", "model.", "vgg19.", "vgg.", "net.", "backbone.", "_orig_mod.")
_FEATURE_KEY = re.compile(r"^(\d+)\.(weight|bias)$")


def _read_state_dict(path: str) -> dict[str, np.ndarray]:
  """Reads {name: array} from .safetensors, .npz or .pth/.pt/.bin without unpickling anything."""
  suffix = os.path.splitext(path)[1].lower()
  if suffix == ".safetensors":
    import safetensors.numpy  # pylint: disable=g-import-not-at-top
    try:
      return dict(safetensors.numpy.load_file(path))
    except Exception as e:  # pylint: disable=broad-except
      raise ValueError(f"VGG-19 weights: cannot read {path}: {errors.one_line(e)}") from None
  if suffix == ".npz":
    try:
      with np.load(path, allow_pickle=False) as archive:
        return {name: archive[name] for name in archive.files}
    except Exception as e:  # pylint: disable=broad-except
      raise ValueError(f"VGG-19 weights: cannot read {path}: {errors.one_line(e)}") from None
  if suffix in (".pth", ".pt", ".bin"):
    try:
      import torch  # pylint: disable=g-import-not-at-top
    except ImportError:
      raise ImportError(
          f"VGG-19 weights: {path} is a PyTorch file and torch is not installed; install torch "
          "or convert it to .safetensors with python -c \"import torch, safetensors.torch as s; "
          f"s.save_file(torch.load('{path}', weights_only=True), 'vgg19.safetensors')\"") from None
    try:
      loaded = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # pylint: disable=broad-except
      raise ValueError(f"VGG-19 weights: cannot read {path}: {errors.one_line(e)}") from None
    if isinstance(loaded, Mapping) and isinstance(loaded.get("state_dict"), Mapping):
      loaded = loaded["state_dict"]  # a training checkpoint that wraps the state dict
    if not isinstance(loaded, Mapping):
      raise ValueError(f"VGG-19 weights: {path} does not hold a state dict "
                       f"(got {type(loaded).__name__})")
    return {name: value.detach().float().cpu().numpy() for name, value in loaded.items()
            if hasattr(value, "detach")}
  raise ValueError(f"VGG-19 weights: {path} has an unsupported extension {suffix!r}; use "
                   ".safetensors, .npz or .pth/.pt (the last needs torch)")


def _feature_entries(state: Mapping[str, np.ndarray], path: str) -> dict[str, np.ndarray]:
  """Maps any accepted key spelling to 'N.weight' / 'N.bias' of the features Sequential.

  Accepted: torchvision and timm (`features.N.*`; both number the Sequential the same way), with
  wrapper prefixes such as `module.` or `model.`, or with `features.` itself missing. Classifier
  keys (`classifier.*`, timm's `pre_logits.*`, `head.*`) are ignored.
  """
  entries: dict[str, np.ndarray] = {}
  origin: dict[str, str] = {}
  for key, value in state.items():
    name = key
    stripped = True
    while stripped:
      stripped = False
      for prefix in _WRAPPER_PREFIXES:
        if name.startswith(prefix):
          name = name[len(prefix):]
          stripped = True
    if name.startswith("features."):
      name = name[len("features."):]
    if "running_mean" in name or "running_var" in name:
      raise ValueError(f"VGG-19 weights: {path} holds batch-norm statistics ({key}); that is "
                       "vgg19_bn, and only plain vgg19 is supported")
    if not _FEATURE_KEY.match(name):
      continue  # classifier / pre_logits / head / anything else
    if name in entries:
      raise ValueError(f"VGG-19 weights: {path} has two entries for features.{name}: "
                       f"{origin[name]!r} and {key!r}")
    entries[name] = value
    origin[name] = key
  return entries


def load_vgg19_params(path: str | os.PathLike) -> dict:
  """Loads VGG-19 convolution weights (torchvision or timm layout) into our Flax params.

  Args:
    path: a .safetensors, .npz (read with allow_pickle=False) or .pth/.pt file (read with
      torch.load(weights_only=True), only if torch is installed) holding
      `features.{0,2,5,7,10,...,34}.weight` of shape (out, in, 3, 3) and `.bias`.
  Returns:
    {"params": {"conv1_1": {"kernel": (3, 3, in, out), "bias": (out,)}, ...}} as float32.
  Raises:
    FileNotFoundError, ValueError or ImportError with a one-line message naming the file.
  """
  path = os.path.expanduser(os.fspath(path))
  if not os.path.isfile(path):
    raise FileNotFoundError(f"VGG-19 weights: no file at {path}")
  entries = _feature_entries(_read_state_dict(path), path)
  params = {}
  for name in CONV_NAMES:
    index = TORCH_FEATURE_INDEX[name]
    c_in, c_out = CONV_CHANNELS[name]
    converted = {}
    for kind, expected, flax_name in (("weight", (c_out, c_in, 3, 3), "kernel"),
                                      ("bias", (c_out,), "bias")):
      key = f"{index}.{kind}"
      if key not in entries:
        found = ", ".join(sorted(entries, key=lambda k: int(k.split(".")[0]))[:6]) or "none"
        raise ValueError(f"VGG-19 weights: {path} has no features.{key} ({name}); "
                         f"conv keys found: {found}")
      value = np.asarray(entries[key])
      if value.shape != expected:
        raise ValueError(f"VGG-19 weights: {path}: features.{key} ({name}) has shape "
                         f"{tuple(value.shape)}, expected {expected}")
      if kind == "weight":
        value = value.transpose(2, 3, 1, 0)  # torch OIHW -> flax HWIO
      converted[flax_name] = jnp.asarray(value, jnp.float32)
    params[name] = converted
  return {"params": params}


# ---------------------------------------------------------------------------------------------
# The features function the losses take.


def make_features_fn(params: dict, layers: Sequence[str] = DEFAULT_LAYERS,
                     dtype: Any = jnp.float32) -> Callable[[jax.Array], dict[str, jax.Array]]:
  """features_fn(image (H, W, 3) in [0, 1]) -> {layer: (h, w, c)} over frozen VGG params.

  No gradient reaches the params (VGG is a fixed feature extractor, never trained), while
  gradients still flow to the image. Works on any leading batch shape too.
  """
  _check_layers(layers)
  model = VGG19(layers=tuple(layers), dtype=dtype)
  return functools.partial(model.apply, params)


def _config_get(config: Any, name: str, default: Any) -> Any:
  if config is None:
    return default
  if isinstance(config, Mapping) or hasattr(config, "get"):
    return config.get(name, default)
  return getattr(config, name, default)


def _layers_for(loss_config: Any) -> tuple[str, ...]:
  """The layers the losses read: the perceptual layers plus config.loss.style_layers."""
  perceptual = tuple(_config_get(loss_config, "perceptual_layers", None) or PERCEPTUAL_LAYERS)
  style = tuple(_config_get(loss_config, "style_layers", None) or STYLE_LAYERS)
  return tuple(dict.fromkeys(perceptual + style))


def _given_or_default(loss_config: Any) -> str:
  """config.loss.vgg_weights, or the default weights folder's VGG-19 file if there is one."""
  return (_config_get(loss_config, "vgg_weights", "") or "") or weights_folder.find_default("vgg19")


def _params_from_config(loss_config: Any) -> tuple[dict, str]:
  weights = _given_or_default(loss_config)
  if weights:
    return load_vgg19_params(weights), f"VGG-19 weights from {weights}"
  if _config_get(loss_config, "allow_random_vgg", False):
    seed = int(_config_get(loss_config, "random_vgg_seed", 0))
    logging.warning(
        "No VGG-19 weights (config.loss.vgg_weights is empty): the perceptual and style losses "
        "use a frozen random VGG-19 (seed %d), not ImageNet features. To use real ones, %s.",
        seed, HOW_TO_SUPPLY_WEIGHTS)
    return random_vgg19_params(seed), f"random VGG-19 (seed {seed}, He-normal)"
  raise ValueError(
      "The perceptual and style losses need VGG-19 weights and config.loss.vgg_weights is "
      f"empty: {HOW_TO_SUPPLY_WEIGHTS} (or set --config.loss.allow_random_vgg=True for a "
      "random feature network).")


WEIGHT_SUFFIXES = (".safetensors", ".npz", ".pth", ".pt", ".bin")


def validate_weights(loss_config, used: bool, unused_hint: str) -> None:
  """config.loss.vgg_weights: the file exists and is of a kind read without unpickling, when a
  loss term uses VGG-19 (`used`); when none does, no weights may be given (weights nothing reads
  would look as if the run used them; `unused_hint` says which terms are 0 and how to set them)."""
  vgg_weights = loss_config.vgg_weights
  if not used:
    config_checks.require(not vgg_weights, "loss.vgg_weights",
                          f"{vgg_weights} is given but no loss term uses VGG-19 ({unused_hint})")
    return
  vgg_weights = _given_or_default(loss_config)
  if not loss_config.allow_random_vgg and not (vgg_weights and os.path.isfile(vgg_weights)):
    raise FileNotFoundError(
        f"config.loss.vgg_weights: VGG-19 weights not found at "
        f"{vgg_weights or '(unset, and none in the default weights folder)'}; the perceptual "
        f"and style losses need ImageNet VGG-19 weights: {HOW_TO_SUPPLY_WEIGHTS}; or set "
        "--config.loss.allow_random_vgg=True to train with random features")
  if not vgg_weights:
    return
  if not os.path.isfile(vgg_weights):
    raise FileNotFoundError(f"config.loss.vgg_weights: no file at {vgg_weights}")
  suffix = os.path.splitext(vgg_weights)[1].lower()
  config_checks.require(suffix in WEIGHT_SUFFIXES, "loss.vgg_weights",
                        f"{vgg_weights} has an unsupported extension {suffix!r}; use "
                        f"{', '.join(WEIGHT_SUFFIXES)}")
  if suffix in (".pth", ".pt", ".bin"):
    import importlib.util  # pylint: disable=g-import-not-at-top
    # A .pth is a pickle: only torch.load(weights_only=True) may read it, never plain unpickling.
    config_checks.require(
        importlib.util.find_spec("torch") is not None, "loss.vgg_weights",
        f"{vgg_weights} is a PyTorch pickle and torch is not installed, so it is not read "
        "(nothing here unpickles files); convert it to .safetensors where torch is installed")


def vgg_module(loss_config: Any, dtype: Any = jnp.float32) -> VGG19:
  """The frozen VGG-19 module computing the layers `config.loss` reads (no weights loaded)."""
  layers = _layers_for(loss_config)
  _check_layers(layers)
  return VGG19(layers=layers, dtype=dtype)


def create_vgg(loss_config: Any, layers: Sequence[str] | None = None,
               dtype: Any = jnp.float32) -> tuple[VGG19, dict]:
  """(vgg_net, vgg_params) from `config.loss`; `vgg_net.apply(vgg_params, image)` -> features.

  Weights: `loss_config.vgg_weights` if set (`load_vgg19_params`); else, if
  `loss_config.allow_random_vgg`, `random_vgg19_params(loss_config.random_vgg_seed or 0)` with a
  logged warning; else a one-line ValueError saying how to supply them. The module is frozen (no
  gradient to vgg_params) and computes up to the deepest of `layers` (default: the perceptual
  layers plus `loss_config.style_layers`). Passing vgg_params as a jit argument lets the caller
  place them (e.g. replicated) instead of baking them into the program.
  """
  layers = tuple(layers) if layers is not None else _layers_for(loss_config)
  _check_layers(layers)
  params, _ = _params_from_config(loss_config)
  return VGG19(layers=layers, dtype=dtype), params


def make_vgg_features_fn(loss_config: Any, layers: Sequence[str] | None = None
                         ) -> tuple[Callable[[jax.Array], dict[str, jax.Array]], str]:
  """(features_fn, description) from `config.loss`: the same weights as `create_vgg`, closed
  over; description says where they came from (log it)."""
  layers = tuple(layers) if layers is not None else _layers_for(loss_config)
  params, description = _params_from_config(loss_config)
  return make_features_fn(params, layers), description
