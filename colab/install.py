"""Installs internet_jax from the checkout this file is in, with the runtime's accelerator extra.

  python colab/install.py [--dry-run]

- NVIDIA GPU (`nvidia-smi` on the PATH): `pip install -e "<checkout>[cuda12]"`.
- TPU (a TPU device file, or Colab's TPU variables): `pip install -e <checkout>` with the
  installed jax, jaxlib and libtpu pinned by a constraints file, so that pip keeps the runtime's
  own TPU build of JAX (it fails with pip's message if that jax is outside our range).
- Otherwise the CPU install, `pip install -e <checkout>`.

The notebooks' first cell runs this (after cloning the repository when there is no checkout);
`--dry-run` resolves without installing (pip's own --dry-run).
"""

from __future__ import annotations

import glob
import importlib.metadata
import os
import shutil
import subprocess
import sys
import tempfile

CHECKOUT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
JAX_DISTRIBUTIONS = ("jax", "jaxlib", "libtpu")


def accelerator(environ=os.environ) -> str:
  """"gpu", "tpu" or "cpu": what this runtime has."""
  if shutil.which("nvidia-smi"):
    return "gpu"
  if glob.glob("/dev/accel*") or glob.glob("/dev/vfio/*") or "COLAB_TPU_ADDR" in environ \
      or environ.get("TPU_ACCELERATOR_TYPE"):
    return "tpu"
  return "cpu"


def installed_versions(names=JAX_DISTRIBUTIONS) -> dict[str, str]:
  versions = {}
  for name in names:
    try:
      versions[name] = importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
      pass
  return versions


def pip_arguments(kind: str, checkout: str, versions: dict[str, str],
                  constraints_file: str | None) -> tuple[list[str], str]:
  """(pip install arguments, constraints file text) for accelerator `kind`."""
  if kind == "gpu":
    return ["install", "-q", "-e", f"{checkout}[cuda12]"], ""
  if kind == "tpu" and versions:
    text = "".join(f"{name}=={version}\n" for name, version in sorted(versions.items()))
    return ["install", "-q", "-e", checkout, "-c", constraints_file], text
  return ["install", "-q", "-e", checkout], ""


def main(argv: list[str]) -> int:
  dry_run = "--dry-run" in argv[1:]
  kind = accelerator()
  with tempfile.TemporaryDirectory() as folder:
    constraints = os.path.join(folder, "constraints.txt")
    arguments, text = pip_arguments(kind, CHECKOUT, installed_versions(), constraints)
    if text:
      with open(constraints, "w", encoding="utf-8") as f:
        f.write(text)
    if dry_run:  # pip's report of what it would install, instead of the quiet install
      arguments[arguments.index("-q")] = "--dry-run"
    print(f"{kind} runtime: pip {' '.join(arguments)}" + (f"  (constraints: {text.strip()})"
                                                          if text else ""), flush=True)
    return subprocess.run([sys.executable, "-m", "pip", *arguments], check=False).returncode


if __name__ == "__main__":
  sys.exit(main(sys.argv))
