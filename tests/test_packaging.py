"""The install and command-line surface: declared dependencies match the imports, the default
install is TensorFlow-free, configs are found by name from any directory, `--print_config`,
lazy `--help`, the console-script targets, EXIF-aware image reading, and the console policy."""
import ast
import importlib.metadata
import logging as python_logging
import os
from pathlib import Path
import subprocess
import sys
import tomllib
import types

from absl import logging
import numpy as np
from PIL import Image

import configs
from internet_jax import animate, cli

REPO = Path(__file__).resolve().parents[1]
# Where the imported packages live: this checkout (editable install), or site-packages when CI
# runs these tests against a non-editable install from another directory.
INSTALLED = Path(cli.__file__).resolve().parents[1]
PACKAGES = ("internet_jax", "input_pipeline", "configs")
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())


def _requirement_name(requirement: str) -> str:
  name = requirement.split(";")[0]
  for separator in "[<>=!~ ":
    name = name.split(separator)[0]
  return name.lower().replace("_", "-")


def _imported_top_level_modules() -> set[str]:
  """Top-level modules the package's own sources import (at any depth, lazily or not)."""
  modules = set()
  for package in PACKAGES:
    for path in (INSTALLED / package).rglob("*.py"):
      for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
          modules.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
          modules.add(node.module.split(".")[0])
  return modules - set(sys.stdlib_module_names) - set(PACKAGES) - {"__future__"}


def test_every_import_is_declared_and_every_dependency_imported():
  declared = {_requirement_name(r) for r in PYPROJECT["project"]["dependencies"]}
  in_extras = {_requirement_name(r) for requirements in
               PYPROJECT["project"]["optional-dependencies"].values() for r in requirements}
  # importlib's map from import names to the distributions that provide them.
  providers = importlib.metadata.packages_distributions()
  used = set()
  for module in _imported_top_level_modules():
    # A module of an extra that is not installed here (torch) is taken by its own name.
    distributions = {_requirement_name(d) for d in providers.get(module, [module])}
    assert distributions & (declared | in_extras), (
        f"{module} is imported but neither a dependency nor an extra provides it")
    used |= distributions & declared
  # Installed for what they read or write, not imported by name: TFDS's ArrayRecord reader,
  # and the TensorBoard reader of notebook.py (imported as `tensorboard`, kept explicit).
  unused = declared - used - {"array-record"}
  assert not unused, f"declared but never imported: {sorted(unused)}"


def test_default_install_has_no_tensorflow():
  names = {_requirement_name(r) for r in PYPROJECT["project"]["dependencies"]}
  assert not {name for name in names if name.startswith("tensorflow-") and name != "tensorflow-datasets"}
  assert "tensorflow" not in names
  assert "tensorflow" not in _imported_top_level_modules()
  extras = PYPROJECT["project"]["optional-dependencies"]
  assert {"cuda12", "tpu", "torch", "notebook", "dev", "tf", "experiments"} <= set(extras)


def test_console_scripts_point_at_functions():
  scripts = PYPROJECT["project"]["scripts"]
  assert set(scripts) == {f"internet-jax-{name}" for name in
                          ("train", "animate", "evaluate", "synthetic", "prepare",
                           "annotate", "convert-weights")}
  for target in scripts.values():
    # Read, not imported: each program defines its own absl flags (two would collide here).
    module, function = target.split(":")
    tree = ast.parse((INSTALLED / (module.replace(".", "/") + ".py")).read_text())
    functions = {node.name for node in tree.body if isinstance(node, ast.FunctionDef)}
    assert function in functions, target


def test_config_names_resolve_to_the_packaged_files(tmp_path, monkeypatch):
  folder = Path(configs.FOLDER)
  assert folder == INSTALLED / "configs"
  assert configs.available() == ["ablations", "bdmm/fashion", "bdmm/synthetic", "d2g/person",
                                 "d2g/pretrain_synthetic", "d2g/synthetic", "dancefashion",
                                 "fomm_matched", "synthetic"]
  assert configs.resolve("synthetic:tiny") == f"{folder / 'synthetic.py'}:tiny"
  assert configs.resolve("bdmm/synthetic") == str(folder / "bdmm" / "synthetic.py")
  monkeypatch.chdir(tmp_path)  # no ./configs here: the README's path form finds the package
  assert configs.resolve("configs/ablations.py:ss4x_a") == f"{folder / 'ablations.py'}:ss4x_a"
  (tmp_path / "mine.py").write_text("")
  assert configs.resolve("mine.py:x") == "mine.py:x"  # an existing file is the user's
  assert configs.resolve("no_such_config") == "no_such_config"  # left to the flag's error


def _main(*args, cwd):
  env = dict(os.environ, PYTHONPATH=str(INSTALLED))
  return subprocess.run([sys.executable, "-m", "internet_jax.main", *args], cwd=cwd, env=env,
                        capture_output=True, text=True, timeout=120)


def test_print_config_by_name_from_another_directory(tmp_path):
  result = _main("--config=bdmm/synthetic", "--config.batch_size=3", "--print_config", cwd=tmp_path)
  assert result.returncode == 0, result.stderr
  assert "method: bdmm" in result.stdout and "batch_size: 3" in result.stdout
  assert not list(tmp_path.iterdir())  # printing the config writes nothing

  missing = _main("--config=no_such_config", "--print_config", cwd=tmp_path)
  assert missing.returncode == 1
  lines = missing.stderr.strip().splitlines()
  assert len(lines) == 1 and "no_such_config" in lines[0], missing.stderr


def test_help_lists_configs_and_imports_no_jax(tmp_path):
  result = _main("--help", cwd=tmp_path)  # absl's --help exits with status 1
  assert "bdmm/synthetic" in result.stdout and ":variant" in result.stdout
  assert "--config.FIELD=VALUE" in result.stdout and "--[no]print_config" in result.stdout
  # Each CLI module imports no jax, TensorFlow or Orbax until its main runs (one process each:
  # their absl flags would collide in one).
  for module in ("internet_jax.main", "internet_jax.animate", "internet_jax.evaluate",
                 "input_pipeline.synthetic", "input_pipeline.prepare", "input_pipeline.benchmark"):
    code = (f"import sys, {module}\n"
            "print(sorted(m for m in ('jax', 'tensorflow', 'orbax') if m in sys.modules))")
    imported = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True,
                              text=True, timeout=60, env=dict(os.environ, PYTHONPATH=str(INSTALLED)))
    assert imported.stdout.strip() == "[]", (module, imported.stdout, imported.stderr)


def test_read_image_applies_exif_orientation_and_palettes(tmp_path):
  pixels = np.arange(2 * 3 * 3, dtype=np.uint8).reshape(2, 3, 3) * 10
  exif = Image.Exif()
  exif[0x0112] = 6  # EXIF Orientation 6: the stored image is shown rotated 90° clockwise
  Image.fromarray(pixels).save(tmp_path / "rotated.png", exif=exif)
  np.testing.assert_array_equal(animate.read_image(tmp_path / "rotated.png"),
                                np.rot90(pixels, k=-1))

  palette = Image.fromarray(np.array([[0, 1], [1, 0]], np.uint8), mode="P")
  palette.putpalette([255, 0, 0, 0, 0, 255] + [0] * 762)  # index 0 red, 1 blue
  palette.save(tmp_path / "palette.png")
  red, blue = [255, 0, 0], [0, 0, 255]
  np.testing.assert_array_equal(animate.read_image(tmp_path / "palette.png"),
                                np.array([[red, blue], [blue, red]], np.uint8))


def _record(pathname: str, level: int, message: str = "message") -> python_logging.LogRecord:
  return python_logging.LogRecord("absl", level, pathname, 1, message, (), None)


def test_console_policy_keeps_third_party_info_out_unless_verbose():
  handler = logging.get_absl_handler()
  own = _record(str(INSTALLED / "internet_jax" / "train.py"), python_logging.INFO)
  orbax_info = _record("/site-packages/orbax/checkpoint/manager.py", python_logging.INFO)
  orbax_warning = _record("/site-packages/orbax/checkpoint/manager.py", python_logging.WARNING)
  routine = _record("/site-packages/tensorflow_datasets/core/dataset_builder.py",
                    python_logging.WARNING, "Using custom data configuration: %s")
  orbax_error = _record("/site-packages/orbax/checkpoint/future.py", python_logging.ERROR)
  other_error = _record("/site-packages/grain/python/data_loader.py", python_logging.ERROR)
  records = (own, orbax_info, orbax_warning, routine, orbax_error, other_error)
  try:
    cli.console_policy(verbose=False)
    assert [bool(handler.filter(r)) for r in records] == [True, False, True, False, False, True]
    cli.console_policy(verbose=True)
    assert all(handler.filter(r) for r in records)
  finally:
    cli.console_policy(verbose=True)
    logging.set_verbosity(logging.INFO)


def test_console_policy_drops_closed_event_loop_tracebacks_unless_verbose():
  seen = []
  original = sys.unraisablehook
  sys.unraisablehook = seen.append
  closed = types.SimpleNamespace(exc_value=RuntimeError("Event loop is closed"))
  other = types.SimpleNamespace(exc_value=RuntimeError("something else"))
  try:
    cli.console_policy(verbose=False)
    cli.console_policy(verbose=False)  # a second call wraps the original hook, not itself
    sys.unraisablehook(closed)
    sys.unraisablehook(other)
    assert seen == [other]
    cli.console_policy(verbose=True)
    assert sys.unraisablehook == seen.append  # the original hook back
  finally:
    cli.console_policy(verbose=True)
    sys.unraisablehook = original
    logging.set_verbosity(logging.INFO)
