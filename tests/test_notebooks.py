"""The Colab notebooks run end to end, so that they cannot go stale; and the notebook helpers.

Each notebook is executed with nbclient in a kernel of *this* interpreter (a `python3` kernelspec
written into a temporary JUPYTER_PATH, which takes precedence over user and system kernelspecs),
in a temporary working directory, with the tiny synthetic config. Parameters are injected the
papermill way: a cell tagged `injected-parameters` is inserted after the cell tagged `parameters`.
Both notebooks share one rendered dataset; the JAX compilation cache of conftest.py is passed to
the kernels, so a second run compiles nothing.
"""

import json
from pathlib import Path
import sys

import nbformat
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError
import numpy as np
import pytest

from input_pipeline import video_io
from internet_jax import notebook

REPO = Path(__file__).resolve().parents[1]
COLAB = REPO / "colab"
NOTEBOOKS = ("quickstart.ipynb", "train.ipynb")
CELL_TIMEOUT_S = 600
TINY_RESOLUTION = 32
TINY_TEST_FRAMES = 12  # configs/synthetic.py shrink_to_tiny: num_frames


@pytest.fixture(scope="module")
def kernel_env(tmp_path_factory):
  """A python3 kernelspec running sys.executable, and the environment the kernels inherit."""
  root = tmp_path_factory.mktemp("jupyter")
  spec_dir = root / "kernels" / "python3"
  spec_dir.mkdir(parents=True)
  (spec_dir / "kernel.json").write_text(json.dumps({
      "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
      "display_name": "internet_jax test kernel", "language": "python"}))
  with pytest.MonkeyPatch.context() as patch:
    patch.setenv("JUPYTER_PATH", str(root))
    patch.setenv("TF_CPP_MIN_LOG_LEVEL", "2")
    # conftest.py set JAX_COMPILATION_CACHE_DIR; these make the kernel cache what the tests cache.
    patch.setenv("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0.5")
    patch.setenv("JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES", "0")
    yield


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
  return tmp_path_factory.mktemp("data")


def _inject(nb, parameters: dict) -> None:
  index = next((i for i, cell in enumerate(nb.cells)
                if "parameters" in cell.get("metadata", {}).get("tags", [])), None)
  assert index is not None, "no cell tagged 'parameters'"
  defined = nb.cells[index].source
  for name in parameters:
    assert f"{name} =" in defined, f"the parameters cell does not define {name}"
  cell = nbformat.v4.new_code_cell("\n".join(f"{k} = {v!r}" for k, v in parameters.items()))
  cell.metadata["tags"] = ["injected-parameters"]
  nb.cells.insert(index + 1, cell)


def _run(name: str, parameters: dict, cwd: Path):
  """Executes colab/<name> with `parameters`; returns the executed notebook (also saved in cwd)."""
  nb = nbformat.read(COLAB / name, as_version=4)
  _inject(nb, parameters)
  client = NotebookClient(nb, kernel_name="python3", timeout=CELL_TIMEOUT_S,
                          resources={"metadata": {"path": str(cwd)}})
  try:
    client.execute()
  except CellExecutionError as error:
    pytest.fail(f"colab/{name}: a cell failed:\n{str(error)[-4000:]}")
  finally:
    nbformat.write(nb, cwd / f"executed_{name}")
  return nb


def _outputs(nb, output_type: str | None = None, mime: str | None = None) -> list[str]:
  texts = []
  for cell in nb.cells:
    for output in cell.get("outputs", []):
      if output_type and output.output_type != output_type:
        continue
      if mime:
        if mime in output.get("data", {}):
          texts.append(output.data[mime])
      else:
        texts.append(output.get("text", ""))
  return texts


def _check_kernel_python(nb) -> None:
  stdout = "".join(_outputs(nb, "stream"))
  assert f"python {sys.executable} " in stdout, (
      f"the kernel did not run {sys.executable}; setup cell printed: {stdout[:500]}")


def test_committed_notebooks_are_valid_and_have_no_outputs():
  for name in NOTEBOOKS:
    nb = nbformat.read(COLAB / name, as_version=4)
    nbformat.validate(nb)
    assert nb.metadata.kernelspec.name == "python3"
    code = [cell for cell in nb.cells if cell.cell_type == "code"]
    assert all(not cell.outputs and cell.execution_count is None for cell in code), \
        f"colab/{name}: clear the outputs before committing"
    tagged = [cell for cell in code if "parameters" in cell.metadata.get("tags", [])]
    assert len(tagged) == 1, f"colab/{name}: exactly one cell must be tagged 'parameters'"


def test_quickstart_trains_animates_and_shows_the_panels(kernel_env, data_dir, tmp_path):
  workdir = tmp_path / "quickstart"
  nb = _run("quickstart.ipynb", dict(CONFIG_ARG="tiny", NUM_STEPS=2, WORKDIR=str(workdir),
                                     DATA_DIR=str(data_dir)), tmp_path)
  _check_kernel_python(nb)
  assert notebook.latest_step(workdir) == 2
  animation = video_io.read_video(workdir / "quickstart_animation.mp4")
  assert animation.shape == (TINY_TEST_FRAMES, TINY_RESOLUTION, TINY_RESOLUTION, 3)
  panels = video_io.read_video(workdir / "quickstart_visualization.mp4")
  # six panels, 2 px apart and around (animate.PANEL_PAD); h264 pads odd sizes to even ones
  assert panels.shape[0] == TINY_TEST_FRAMES
  assert panels.shape[2] == 6 * TINY_RESOLUTION + 7 * 2
  html = "".join(_outputs(nb, mime="text/html"))
  assert html.count("<video") >= 3  # training's sample, the animation, the panels
  assert "<img" in html


def test_train_notebook_plots_resumes_and_writes_the_metrics_table(kernel_env, data_dir, tmp_path):
  workdir = tmp_path / "train"
  nb = _run("train.ipynb", dict(CONFIG="configs/synthetic.py:tiny", WORKDIR=str(workdir),
                                DATA_DIR=str(data_dir), CHUNK_STEPS=2, NUM_CHUNKS=2,
                                MAX_EVAL_VIDEOS=1, START_TENSORBOARD=False), tmp_path)
  _check_kernel_python(nb)
  assert notebook.latest_step(workdir) == 4  # two chunks of two steps: the second one resumed
  assert (workdir / "training_curves.png").is_file()
  steps, values = notebook.read_scalars(workdir, prefix="train/")["train/g/total"]
  np.testing.assert_array_equal(steps, [1, 2, 3, 4])  # both chunks' event files, one per step
  assert np.isfinite(values).all()
  metrics_md = (workdir / "eval" / "metrics.md").read_text(encoding="utf-8")
  assert "SSIM" in metrics_md
  assert metrics_md in _outputs(nb, mime="text/markdown")  # the table is shown
  assert not any("tensorboard" in text.lower() for text in _outputs(nb, mime="text/html"))


def test_load_config_takes_the_command_line_syntax(tmp_path):
  assert notebook.load_config("configs/synthetic.py:tiny").data.resolution == TINY_RESOLUTION
  assert notebook.load_config(str(REPO / "configs" / "synthetic.py")).data.resolution == 64
  ablation = notebook.load_config("configs/ablations.py:synthetic_ss4x_a")
  assert (ablation.model.generator.skip_mode, ablation.temporal.scheme) == ("single", "plain")
  with pytest.raises(FileNotFoundError, match="no_such_config"):
    notebook.load_config("configs/no_such_config.py")


def test_plots_and_inline_media():
  image = notebook.plot_scalars({"a": (np.arange(5), np.array([3.0, 2, np.nan, 1, 0.5])),
                                 "b": (np.array([7]), np.array([1.0]))},
                                ["a", "missing", "b"], columns=2, size=(160, 100))
  assert image.dtype == np.uint8 and image.shape == (100 + 2 * 4, 2 * 160 + 3 * 4, 3)
  with pytest.raises(ValueError, match="available"):
    notebook.plot_scalars({"a": (np.arange(2), np.zeros(2))}, ["b"])
  frames = np.random.default_rng(0).integers(0, 255, (3, 17, 20, 3), dtype=np.uint8)
  html = notebook.video_html(frames, fps=10)
  assert html.startswith("<video") and 'width="80"' in html  # 20 px shown 4x
  assert 'width="40"' in notebook.image_html(frames[0], scale=2)


def _orange(image: np.ndarray) -> np.ndarray:
  """Pixels of the baseline colour (orange: red high, blue low), antialiased edges included."""
  red, blue = image[..., 0].astype(int), image[..., 2].astype(int)
  return (red - blue > 100) & (red > 180)


def test_curves_are_drawn_beside_their_baselines():
  # y axis from 0 to 1 over rows 24 (top) to 78 (bottom) at size (160, 100): a constant
  # baseline 0.5 lies on row 78 - 0.5 * 54 = 51; the model's line (0 -> 1) is far above it at
  # three quarters of the width (value 0.75, row 37.5).
  steps = np.array([0, 10])
  image = notebook.plot_curve(steps, np.array([0.0, 1.0]), "eval/l1", size=(160, 100),
                              baseline=(steps, np.array([0.5, 0.5])), baseline_name="copy source")
  column = 52 + 3 * 98 // 4
  assert _orange(image)[51, column] and not _orange(image)[37:39, column].any()
  assert not _orange(image)[:, column][np.r_[25:49, 54:78]].any()
  # plot_scalars pairs a tag with its logged baseline, and draws none where there is none.
  scalars = {"eval/l1": (steps, np.array([0.2, 0.1])),
             "eval/l1_copy_source": (steps, np.array([0.15, 0.15])),
             "eval/psnr": (steps, np.array([10.0, 20.0]))}
  with_baseline, without = (notebook.plot_scalars(scalars, [name], size=(160, 100))
                            for name in ("eval/l1", "eval/psnr"))
  assert _orange(with_baseline[4:-4, 4 + 52:4 + 150]).any()
  assert not _orange(without).any()


def _install_module():
  import importlib.util  # pylint: disable=g-import-not-at-top
  spec = importlib.util.spec_from_file_location("colab_install", COLAB / "install.py")
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


def test_install_script_picks_the_accelerator_extra(monkeypatch):
  install = _install_module()
  monkeypatch.setattr(install.shutil, "which", lambda name: "/usr/bin/nvidia-smi")
  assert install.accelerator({}) == "gpu"
  monkeypatch.setattr(install.shutil, "which", lambda name: None)
  monkeypatch.setattr(install.glob, "glob", lambda pattern: [])
  assert install.accelerator({}) == "cpu"
  assert install.accelerator({"COLAB_TPU_ADDR": "10.0.0.2:8470"}) == "tpu"

  checkout = "/content/internet_jax_repo"
  assert install.pip_arguments("gpu", checkout, {}, None) == (
      ["install", "-q", "-e", f"{checkout}[cuda12]"], "")
  assert install.pip_arguments("cpu", checkout, {"jax": "0.4.30"}, None) == (
      ["install", "-q", "-e", checkout], "")
  # A TPU runtime's own jax, jaxlib and libtpu are pinned, so pip keeps them.
  arguments, constraints = install.pip_arguments(
      "tpu", checkout, {"jax": "0.11.0", "jaxlib": "0.11.0", "libtpu": "0.0.30"}, "/tmp/c.txt")
  assert arguments == ["install", "-q", "-e", checkout, "-c", "/tmp/c.txt"]
  assert constraints == "jax==0.11.0\njaxlib==0.11.0\nlibtpu==0.0.30\n"


def test_install_script_resolves_in_a_fresh_venv(tmp_path):
  """The notebooks' install branch, run for real in a new virtual environment (pip's dry run:
  everything resolves, nothing is installed)."""
  import subprocess  # pylint: disable=g-import-not-at-top
  venv = tmp_path / "venv"
  subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
  python = venv / "bin" / "python"
  result = subprocess.run([str(python), str(COLAB / "install.py"), "--dry-run"],
                          capture_output=True, text=True, timeout=600)
  assert result.returncode == 0, result.stderr[-2000:]
  assert result.stdout.startswith("cpu runtime: pip install --dry-run -e ")
  assert "Would install" in result.stdout and "internet_jax" in result.stdout
  assert "tensorflow-cpu" not in result.stdout.lower() and "tensorflow-2" not in result.stdout.lower()
