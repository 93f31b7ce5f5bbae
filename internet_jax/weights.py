"""The default weights folder: where `convert_weights` writes and the loaders look.

`$INTERNET_JAX_WEIGHTS` when set, else `$XDG_CACHE_HOME/internet_jax/weights`
(`~/.cache/internet_jax/weights`). Each pretrained network has one file name there; a weights
flag or config field that is given always wins over the folder.
"""

from __future__ import annotations

import os

# Network -> file name in the folder (the stems of the files the upstream projects publish).
DEFAULT_FILES = {
    "vgg19": "vgg19.safetensors",
    "lpips": "lpips_alex.safetensors",
    "fid": "pt_inception-2015-12-05-6726825d.safetensors",
    "i3d": "rgb_imagenet.safetensors",
    "slomo": "SuperSloMo.safetensors",
}


def weights_dir() -> str:
  if os.environ.get("INTERNET_JAX_WEIGHTS"):
    return os.path.expanduser(os.environ["INTERNET_JAX_WEIGHTS"])
  base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
  return os.path.join(base, "internet_jax", "weights")


def default_path(network: str) -> str:
  """Where `network`'s converted weights go in the default folder."""
  if network not in DEFAULT_FILES:
    raise ValueError(f"unknown network {network!r}; known: {', '.join(DEFAULT_FILES)}")
  return os.path.join(weights_dir(), DEFAULT_FILES[network])


def find_default(network: str) -> str:
  """`default_path(network)` if that file exists, else ""."""
  path = default_path(network)
  return path if os.path.isfile(path) else ""
