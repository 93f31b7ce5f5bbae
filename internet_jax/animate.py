"""Animation: drive one source image with the motion of a driving video (inference).

Command line (one of --workdir / --checkpoint):

  python -m internet_jax.animate --workdir=DIR --source=IMG --driving=VIDEO --output=OUT.mp4 \
      [--relative] [--adapt_scale] [--normalize_pose] [--smooth_poses=SIGMA] [--background=IMG] \
      [--batch_size=8] [--visualize] [--use_ema] [--verbose]
  python -m internet_jax.animate --checkpoint=DIR/checkpoints/STEP --pairs=pairs.csv \
      --output_dir=OUT [same options]

Library (e.g. in a notebook):

  renderer = load_renderer("workdirs/synthetic")       # or a checkpoint step dir
  frames = animate(renderer, source, driving, relative=True)  # uint8 arrays

Rules:
* Inputs of any size and format (PNG/JPEG/... images, mp4/mov/gif/webm/PNG-frame-folder videos;
  images are read by `video_io.read_image`: EXIF orientation applied, CMYK and palette images
  converted by Pillow, at most `video_io.max_image_pixels()` pixels, which
  $INTERNET_JAX_MAX_IMAGE_PIXELS sets; grayscale, RGBA and 16-bit are converted by
  `video_io.to_rgb_uint8`) are brought to the model resolution R by `video_io.resize_and_pad`,
  the dataset builder's rule: the long side is scaled to R, the frame is centred and padded to an
  R x R square with white. Outputs are R x R.
* Any method: the checkpoint's config picks it, and its renderer (`inference.Renderer`) animates
  the frames in fixed-size batches (the last one padded), so it compiles once per batch size.
* `--relative` / `--adapt_scale` are inference options of keypoint methods (INTERnet: FOMM's
  relative motion, `methods/internet/renderer.py`); `--normalize_pose`, `--smooth_poses` and
  `--background` those of pose-driven methods with a learnt background (D2G-Net,
  `methods/d2g/renderer.py`); a method without an option says so.
* The output video has the driving video's frame rate (30 fps when it states none).
* Bad input stops with one line `error: <path>: <problem>` and exit status 1 (a traceback only
  with --verbose); the output is written to a temporary file beside the target and renamed at the
  end, so a failed run leaves no output file behind; SIGTERM/SIGINT remove it too (one line
  `interrupted: ...`, exit 128 + the signal), and what a SIGKILL leaves the next run for the same
  output removes (`internet_jax.temporaries`). An output that is one of the inputs (however spelt:
  a symlink, `./`) is refused before anything is written.
"""

from __future__ import annotations

import csv
import os
from pathlib import Path
import time
from typing import Iterable, Iterator

from absl import app, flags, logging
from etils import epy

from internet_jax import cli, errors, temporaries

with epy.lazy_imports():  # imported on first use: `--help` returns at once
  import av
  import jax
  import numpy as np
  import tqdm

  from input_pipeline import annotations, video_io
  from internet_jax import checkpointing, inference

DEFAULT_FPS = 30.0
OUTPUT_SUFFIXES = (".mp4", ".mov", ".mkv")  # what video_io.write_video can write


# ---------------------------------------------------------------------------------------------
# Python API on arrays


def load_renderer(workdir_or_checkpoint: str | os.PathLike, *, use_ema: bool = False,
                  batch_size: int = 8) -> inference.Renderer:
  """The renderer of the method a workdir (its newest checkpoint) or a step directory was
  trained with (`checkpointing.load_inference`); its `config` attribute is the saved config."""
  method, networks, params, config, _ = checkpointing.load_inference(workdir_or_checkpoint,
                                                                     use_ema=use_ema)
  renderer = method.renderer(networks, params, config, batch_size)
  renderer.config = config
  return renderer


def _prepare_frame(frame: np.ndarray, resolution: int, name: str) -> np.ndarray:
  frame = video_io.to_rgb_uint8(frame, name)
  if frame.shape[:2] != (resolution, resolution):
    frame = video_io.resize_and_pad(frame, resolution)
  return frame


def animate(renderer: inference.Renderer, source: np.ndarray,
            driving: np.ndarray | Iterable[np.ndarray], *, return_outputs: bool = False,
            **options):
  """Animates `source` with the motion of `driving`; returns uint8 (T, R, R, 3).

  source: an image (H, W, 3) (or grayscale/RGBA, uint8/uint16/float in [0, 1]); driving: frames
  (T, H, W, 3) of the same kinds. Both are brought to the model resolution R with
  `video_io.resize_and_pad` (long side to R, centred, white padding). `options`: the method's
  inference switches (INTERnet: relative, adapt_scale).

  With return_outputs=True returns (frames, extras): extras holds `visualization`, the
  side-by-side frames of `renderer.panels` (panels named by `renderer.panel_names`), and the
  outputs `renderer.panel_keys` names, concatenated over frames.
  """
  resolution = renderer.resolution
  if isinstance(driving, np.ndarray) and driving.ndim != 4:
    raise ValueError(f"driving: expected frames (T, H, W, C), got shape {driving.shape}")
  source = _prepare_frame(source, resolution, "source")
  driving = (_prepare_frame(frame, resolution, f"driving frame {index}")
             for index, frame in enumerate(driving))
  keys = tuple(renderer.panel_keys) if return_outputs else ()
  results = list(renderer.stream(source, driving, keys=keys, **options))
  frames = np.concatenate([result["prediction"] for result in results])
  if not return_outputs:
    return frames
  extras = jax.tree.map(lambda *parts: np.concatenate(parts),
                        *[{key: result[key] for key in keys} for result in results])
  extras["visualization"] = np.stack([frame for result in results
                                      for frame in renderer.panels(source, result)])
  return frames, extras


# ---------------------------------------------------------------------------------------------
# Files


def read_image(path: str | os.PathLike) -> np.ndarray:
  """An image file (`video_io.read_image`: anything Pillow reads, EXIF orientation applied) or
  the first frame of a video, as uint8 RGB (H, W, 3) at its own size. VideoReadError names the
  path."""
  path = Path(path)
  if not path.exists():
    raise video_io.VideoReadError(f"{path}: no such file or directory")
  if video_io.is_video(path):
    return next(video_io.read_video_frames(path))
  if not path.is_file():
    raise video_io.VideoReadError(f"{path}: not an image file")
  return video_io.read_image(path)


def _frame_count(path: Path) -> int | None:
  """Frames a video states it has (for the progress bar), None when unknown."""
  if path.is_dir():
    return sum(1 for p in path.iterdir()
               if p.suffix.lower() in video_io.FRAME_SUFFIXES and not p.name.startswith("."))
  try:
    with av.open(str(path)) as container:
      return container.streams.video[0].frames or None
  except Exception:
    return None  # only a hint; read errors are reported by the reader


def check_output(path: str | os.PathLike, source: str | os.PathLike | None = None,
                 driving: str | os.PathLike | None = None) -> Path:
  """Checks, before any work, that a video can be written at `path`: a suffix write_video knows,
  a writable folder (created only when the video is written), and not the source or driving
  file. Returns the path."""
  path = Path(path)
  if path.suffix.lower() not in OUTPUT_SUFFIXES:
    raise ValueError(f"{path}: the output must be .mp4, .mov or .mkv (h264)")
  if path.is_dir():
    raise ValueError(f"{path}: is a directory")
  errors.check_writable(path.parent, path)
  errors.refuse_inputs(path, {"source": source, "driving video": driving})
  return path


def check_output_dir(folder: str | os.PathLike) -> Path:
  """Checks that videos can be written into `folder` (created only when the first one is)."""
  folder = Path(folder)
  errors.check_writable(folder, folder)
  return folder


def write_atomically(path: Path, frames: Iterable[np.ndarray], fps: float) -> None:
  """write_video into a temporary file beside `path` (`temporaries.replaced`: the suffix kept,
  so write_video picks the same container), renamed to `path` only when complete."""
  try:
    path.parent.mkdir(parents=True, exist_ok=True)
    with temporaries.replaced(path, suffix=path.suffix) as partial:
      video_io.write_video(partial, frames, fps=fps)
  except OSError as error:
    raise ValueError(f"{path}: cannot write ({error.strerror or error})") from None


def _driving_frames(path: Path, resolution: int) -> Iterator[np.ndarray]:
  for frame in video_io.read_video_frames(path):
    yield video_io.resize_and_pad(frame, resolution)


def check_video(path: str | os.PathLike) -> float:
  """Reads the first frame of a video (VideoReadError if unreadable or empty) and returns its
  frame rate (DEFAULT_FPS when it states none)."""
  path = Path(path)
  frames = video_io.read_video_frames(path)
  next(frames)
  frames.close()
  return video_io.video_fps(path) or DEFAULT_FPS


def file_annotation_options(renderer: inference.Renderer, source: Path, driving: Path) -> dict:
  """`inference.annotation_options` from the .npz files beside `source` (an image: `<stem>.npz`,
  arrays with a first axis of 1; a video: its frame 0) and beside `driving`, for a renderer that reads
  per-frame annotations ({} otherwise). Their pixel units hold only at the size they were made
  for, so both must already be at the model resolution (a one-line ValueError otherwise)."""
  if not renderer.annotation_keys:
    return {}
  r = renderer.resolution

  def frame_count(path: Path) -> int:
    count = 0
    for frame in video_io.read_video_frames(path):
      if frame.shape[:2] != (r, r):
        raise ValueError(f"{path}: frames are {frame.shape[1]}x{frame.shape[0]}; this method "
                         f"reads pixel annotations, right only at the model resolution {r}x{r}: "
                         "resize the video and its annotations together")
      count += 1
    return count

  def stored(path: Path, count: int, npz: Path, what: str) -> list[dict]:
    if not npz.is_file():
      raise ValueError(f"{npz}: no such file; this method reads {what} annotations "
                       f"({', '.join(renderer.annotation_keys)}) from it")
    return annotations.split_per_frame(annotations.read_npz(npz, str(npz)), count, str(npz))

  if video_io.is_video(source):
    source_frames = stored(source, frame_count(source), annotations.annotation_path(source),
                           "the source's")
  else:  # an image: <stem>.npz beside it, arrays with a first axis of 1
    image = read_image(source)
    if image.shape[:2] != (r, r):
      raise ValueError(f"{source}: is {image.shape[1]}x{image.shape[0]}; this method reads "
                       f"pixel annotations, right only at the model resolution {r}x{r}: resize "
                       "the image and its annotations together")
    source_frames = stored(source, 1, source.with_suffix(annotations.SUFFIX), "the source's")
  driving_frames = stored(driving, frame_count(driving), annotations.annotation_path(driving),
                          "the driving video's")
  return inference.annotation_options(renderer, source_frames[0], driving_frames, str(driving))


def animate_file(renderer: inference.Renderer, source: str | os.PathLike,
                 driving: str | os.PathLike, output: str | os.PathLike, *,
                 visualize_panels: bool = False, progress: bool = True, **options) -> int:
  """Animates an image file with a video file into `output` (see the module docstring); with
  `visualize_panels` the output is the side-by-side video of `renderer.panels`. `options`: the method's
  inference switches (INTERnet: relative, adapt_scale). Returns the
  number of frames written."""
  source, driving, output = Path(source), Path(driving), check_output(output, source, driving)
  resolution = renderer.resolution
  image = video_io.resize_and_pad(read_image(source), resolution)
  fps = check_video(driving)
  options = {**options, **file_annotation_options(renderer, source, driving)}
  keys = tuple(renderer.panel_keys) if visualize_panels else ()
  written = 0
  with tqdm.tqdm(total=_frame_count(driving), unit="frame", desc=driving.name,
                 disable=None if progress else True, leave=False) as bar:  # None: TTY only

    def frames():
      nonlocal written
      try:
        for result in renderer.stream(image, _driving_frames(driving, resolution), keys=keys,
                                      **options):
          chunk = (renderer.panels(image, result) if visualize_panels
                   else result["prediction"])
          for frame in chunk:
            yield frame
            written += 1
          bar.update(len(result["prediction"]))
      except ValueError as error:  # adapt_scale on degenerate anchors: name the video
        if str(error).startswith(str(driving)):
          raise
        raise ValueError(f"{driving}: {error}") from None

    write_atomically(output, frames(), fps)
  return written


def read_pairs(csv_path: str | os.PathLike) -> list[tuple[int, Path, Path]]:
  """(line number, source, driving) of a CSV with header `source,driving`; relative paths are
  relative to the CSV's folder. Errors name the CSV line."""
  csv_path = Path(csv_path)
  try:
    text = csv_path.read_text(encoding="utf-8-sig")  # -sig: spreadsheets add a BOM
  except (OSError, UnicodeDecodeError) as error:
    raise ValueError(f"{csv_path}: cannot read ({getattr(error, 'strerror', None) or error})") \
        from None
  rows = list(csv.reader(text.splitlines()))
  if not rows or [cell.strip().lower() for cell in rows[0]] != ["source", "driving"]:
    raise ValueError(f"{csv_path}:1: the header must be 'source,driving'")
  pairs, names = [], {}
  for line, row in enumerate(rows[1:], start=2):
    if not any(cell.strip() for cell in row):
      continue  # blank lines
    if len(row) != 2 or not all(cell.strip() for cell in row):
      raise ValueError(f"{csv_path}:{line}: expected two paths 'source,driving', got {row}")
    paths = []
    for cell in row:
      path = Path(cell.strip()).expanduser()
      path = path if path.is_absolute() else csv_path.parent / path
      if not path.exists():
        raise ValueError(f"{csv_path}:{line}: {path}: no such file or directory")
      paths.append(path)
    name = pair_output_name(*paths)
    if name in names:
      raise ValueError(f"{csv_path}:{line}: output {name} repeats line {names[name]}")
    names[name] = line
    pairs.append((line, paths[0], paths[1]))
  if not pairs:
    raise ValueError(f"{csv_path}: no pairs")
  return pairs


def pair_output_name(source: Path, driving: Path) -> str:
  """`<source stem>__<driving stem>.mp4` (a frame folder's name counts as its stem)."""
  return f"{Path(source).stem}__{video_io.video_name(driving)}.mp4"


def check_pairs(csv_path: str | os.PathLike, output_dir: str | os.PathLike
                ) -> list[tuple[int, Path, Path]]:
  """`read_pairs` of the CSV, once `check_output_dir` passes and no row's output is an input of
  any row (a later row would read what an earlier one wrote); errors name the CSV line."""
  pairs = read_pairs(csv_path)
  output_dir = check_output_dir(output_dir)
  inputs = {f"{what} on line {line}": path for line, *paths in pairs
            for what, path in zip(("source", "driving video"), paths)}
  for line, source, driving in pairs:
    try:
      errors.refuse_inputs(output_dir / pair_output_name(source, driving), inputs)
    except ValueError as error:
      raise ValueError(f"{csv_path}:{line}: {error}") from None
  return pairs


def animate_pairs(renderer: inference.Renderer, csv_path: str | os.PathLike,
                  output_dir: str | os.PathLike, *, visualize_panels: bool = False,
                  progress: bool = True, **options) -> list[Path]:
  """Animates every row of a pairs CSV into `output_dir`, one progress bar over the pairs. Stops
  at the first bad pair with an error naming the CSV line; finished videos are kept."""
  pairs = check_pairs(csv_path, output_dir)
  output_dir = Path(output_dir)
  written = []
  with tqdm.tqdm(pairs, unit="pair", disable=None if progress else True) as bar:
    for line, source, driving in bar:
      output = output_dir / pair_output_name(source, driving)
      start = time.perf_counter()
      try:
        count = animate_file(renderer, source, driving, output,
                             visualize_panels=visualize_panels, progress=False, **options)
      except ValueError as error:
        raise ValueError(f"{csv_path}:{line}: {error}") from None
      bar.set_postfix(frames_per_s=f"{count / (time.perf_counter() - start):.1f}")
      written.append(output)
  return written


# ---------------------------------------------------------------------------------------------
# Command line


def _define_flags():
  # Defined only when run as a script: train.py imports this module next to main.py's flags.
  flags.DEFINE_string("workdir", None, "Training workdir; its newest checkpoint is used.")
  flags.DEFINE_string("checkpoint", None, "A checkpoint step directory (<workdir>/checkpoints/N).")
  flags.DEFINE_string("source", None, "Source image (PNG/JPEG/...; a video's first frame). "
                      "Images of up to 16384 x 16384 pixels are read; the environment variable "
                      "INTERNET_JAX_MAX_IMAGE_PIXELS sets another limit.")
  flags.DEFINE_string("driving", None, "Driving video (mp4/mov/gif/... or a PNG-frame folder).")
  flags.DEFINE_string("output", None, "Output video (.mp4/.mov/.mkv).")
  flags.DEFINE_bool("relative", False, "FOMM relative motion (same pose in source and frame 0).")
  flags.DEFINE_bool("adapt_scale", False, "With --relative: scale motion by the anchor hull sizes.")
  flags.DEFINE_bool("normalize_pose", False, "Pose-driven methods (D2G-Net): scale and move the "
                    "driving poses onto the source photo's person (another person driving).")
  flags.DEFINE_float("smooth_poses", 0.0, "Pose-driven methods (D2G-Net): smooth the driving "
                     "poses over time with a Gaussian of this sigma in frames (0: off).")
  flags.DEFINE_string("background", None, "Methods with a learnt background (D2G-Net): an image "
                      "that replaces it (resized and padded like the source).")
  flags.DEFINE_integer("batch_size", 8, "Driving frames per generator call.")
  flags.DEFINE_bool("visualize", False,
                    "Write the method's side-by-side panels instead (INTERnet: source | driving | "
                    "output | anchors | motion | confidence).")
  flags.DEFINE_string("pairs", None, "CSV with header 'source,driving': animate every row.")
  flags.DEFINE_string("output_dir", None, "With --pairs: where <source>__<driving>.mp4 go.")
  flags.DEFINE_bool("use_ema", False, "Use the EMA parameters of the checkpoint.")
  flags.DEFINE_bool("verbose", False, "Show tracebacks and INFO logs.")


def _check_flags(flags_) -> None:
  """One-line usage errors before any work."""
  if bool(flags_.workdir) == bool(flags_.checkpoint):
    raise ValueError("give exactly one of --workdir or --checkpoint")
  if flags_.pairs:
    if not flags_.output_dir or flags_.source or flags_.driving or flags_.output:
      raise ValueError("--pairs takes --output_dir (and not --source/--driving/--output)")
  elif not (flags_.source and flags_.driving and flags_.output) or flags_.output_dir:
    raise ValueError("give --source, --driving and --output (or --pairs and --output_dir)")
  errors.check_positive(flags_, "batch_size")
  if not flags_.smooth_poses >= 0:  # NaN included
    raise ValueError(f"--smooth_poses: must be >= 0, got {flags_.smooth_poses}")
  if flags_.adapt_scale and not flags_.relative:
    raise ValueError("--adapt_scale scales relative motion; add --relative")


def main(argv) -> None:
  """Validates inputs and the output location first (cheap), then loads the model."""
  del argv  # stray words are refused by errors.flags_parser
  flags_ = flags.FLAGS
  # Keep the terminal to the progress bar, warnings and errors (INFO with --verbose).
  cli.start(flags_.verbose, level=logging.WARNING)
  with errors.user_errors(verbose=flags_.verbose), temporaries.stop_on_signals("the video"):
    _check_flags(flags_)
    # Only the switches that are set: a method without them takes none.
    options = {name: True for name in ("relative", "adapt_scale", "normalize_pose")
               if getattr(flags_, name)}
    if flags_.smooth_poses:
      options["smooth_poses"] = flags_.smooth_poses
    options["visualize_panels"] = flags_.visualize
    background = read_image(flags_.background) if flags_.background else None
    if not flags_.pairs:
      check_output(flags_.output, flags_.source, flags_.driving)
      read_image(flags_.source)
      check_video(flags_.driving)
    else:
      check_pairs(flags_.pairs, flags_.output_dir)
    renderer = load_renderer(flags_.workdir or flags_.checkpoint, use_ema=flags_.use_ema,
                             batch_size=flags_.batch_size)
    if background is not None:
      options["background"] = video_io.resize_and_pad(background, renderer.resolution)
    logging.info("method %s at %dpx from %s", renderer.config.method,
                 renderer.config.data.resolution, flags_.workdir or flags_.checkpoint)
    start = time.perf_counter()
    if flags_.pairs:
      outputs = animate_pairs(renderer, flags_.pairs, flags_.output_dir, **options)
      print(f"wrote {len(outputs)} videos to {flags_.output_dir} "
            f"in {time.perf_counter() - start:.1f} s")
    else:
      count = animate_file(renderer, flags_.source, flags_.driving, flags_.output, **options)
      seconds = time.perf_counter() - start
      print(f"wrote {flags_.output}: {count} frames in {seconds:.1f} s "
            f"({count / seconds:.1f} frames/s)")


def run() -> None:
  """The `internet-jax-animate` console script."""
  _define_flags()
  app.run(main, flags_parser=errors.flags_parser())


if __name__ == "__main__":
  run()
