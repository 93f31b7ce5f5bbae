"""The packaged configs, addressable by name as well as by file path.

`--config=synthetic:tiny` is `<this folder>/synthetic.py:tiny`, `--config=bdmm/synthetic` is
`<this folder>/bdmm/synthetic.py`: the same files, found wherever the package is installed.
"""

import os

FOLDER = os.path.dirname(os.path.abspath(__file__))
_HELPERS = ("__init__", "common", "default")  # imported by the configs, not run by themselves


def available() -> list[str]:
  """The names `resolve` accepts: "ablations", "bdmm/synthetic", "synthetic", ..."""
  names = []
  for root, _, files in os.walk(FOLDER):
    for file in files:
      stem, extension = os.path.splitext(file)
      if extension == ".py" and stem not in _HELPERS:
        relative = os.path.relpath(os.path.join(root, stem), FOLDER)
        names.append(relative.replace(os.sep, "/"))
  return sorted(names)


def resolve(argument: str) -> str:
  """A `--config` value as ml_collections reads it: a packaged config's name (with its
  `:variant`) becomes that file's path; an existing file path, or anything else, is returned
  unchanged (a missing file is then the flag's own error)."""
  path, colon, variant = argument.partition(":")
  if os.path.exists(path):
    return argument
  # `configs/synthetic.py` (the README's form) also names the packaged file from any directory.
  name = path.replace(os.sep, "/").removeprefix("./").removeprefix("configs/").removesuffix(".py")
  if name in available():
    return os.path.join(FOLDER, *name.split("/")) + ".py" + colon + variant
  return argument
