"""Rendering over frames and chunks through a method's renderer, shared by animate, evaluate and
training's evaluation.

A method's renderer (`Method.renderer`) subclasses `Renderer` and writes two functions: `start`
(the carry before the first chunk: what depends on the source only, plus any inference options)
and `step` (one chunk of `batch_size` driving frames -> the next carry and the outputs). This
module pads the last chunk (one compiled shape per batch size), threads the carry, dispatches the
next chunk before fetching the previous one (host work overlaps the device) and brings outputs
to the host. Frames are uint8 (R, R, 3) at the model resolution throughout.
"""

from __future__ import annotations

import abc
import inspect
import itertools
from typing import Any, Iterable, Iterator, Mapping, Sequence

import jax
import numpy as np

from input_pipeline import annotations as annotations_lib
from input_pipeline import sources
from input_pipeline.video_io import DataError
from internet_jax import visualize

PANEL_PAD = 2  # pixels tile_images puts between and around the --visualize panels


def chunks(frames: np.ndarray | Iterable[np.ndarray], size: int) -> Iterator[np.ndarray]:
  """Consecutive chunks of at most `size` frames, from an array or any iterable of frames."""
  if isinstance(frames, np.ndarray):
    for start in range(0, len(frames), size):
      yield frames[start:start + size]
    return
  chunk = []
  for frame in frames:
    chunk.append(frame)
    if len(chunk) == size:
      yield np.stack(chunk)
      chunk = []
  if chunk:
    yield np.stack(chunk)


def to_uint8(images: np.ndarray) -> np.ndarray:
  """float images in [0, 1] -> uint8 (rounded, clipped)."""
  return np.clip(np.round(np.asarray(images, np.float32) * 255.0), 0, 255).astype(np.uint8)


def annotation_options(renderer: "Renderer", source: Mapping[str, np.ndarray] | None,
                       driving: Sequence[Mapping[str, np.ndarray]] | None, where: str) -> dict:
  """The `annotations=` option of a renderer that reads per-frame annotations, {} for one that
  reads none (nothing is required then). `source`: the source frame's annotations, `driving`:
  one dict per driving frame, None where there are none; `where` names the video for the
  one-line DataError on a missing key."""
  keys = tuple(renderer.annotation_keys)
  if not keys:
    return {}
  if source is None or driving is None:
    missing = "the source frame" if source is None else "the driving frames"
    raise DataError(f"{where}: this method reads per-frame annotations ({', '.join(keys)}) and "
                    f"{missing} have none: put them in the .npz beside the video "
                    "(input_pipeline/annotations.py)")

  def pick(frame, label, required=keys):
    found = annotations_lib.require(frame, required, f"{where} {label}")
    found.update({key: frame[key] for key in renderer.optional_annotation_keys if key in frame})
    return found

  source_keys = renderer.source_annotation_keys
  return {"annotations": {"source": pick(source, "source frame",
                                         keys if source_keys is None else tuple(source_keys)),
                          "driving": [pick(frame, f"driving frame {t}")
                                      for t, frame in enumerate(driving)]}}


def video_annotation_options(renderer: "Renderer", source, video: int, source_frame: int,
                             driving_frames: Sequence[int], driving_file=None) -> dict:
  """`annotation_options` for frame `source_frame` of video `video` of a VideoSource driven by
  the frames `driving_frames`: of the same video, or of the video file `driving_file` (its .npz
  beside it, `input_pipeline/annotations.py`; as many frames as the source's video)."""
  if not renderer.annotation_keys:
    return {}
  name = source.video_name(video)
  if driving_file is None:
    per_frame = [sources.frame_annotations(source, video, int(t)) for t in driving_frames]
    where = f"video {name}"
  else:
    stored = annotations_lib.load_video_annotations(driving_file, source.num_frames(video))
    per_frame = None if stored is None else [stored[int(t)] for t in driving_frames]
    where = str(driving_file)
  return annotation_options(renderer, sources.frame_annotations(source, video, source_frame),
                            per_frame, where)


class Renderer(abc.ABC):
  """Inference of one method with one set of parameters (see the module docstring).

  Subclasses set `panel_names` / `panel_keys` and write `start`, `step` and, for --visualize,
  `panels`. Outputs of `step` are device arrays with a leading axis of `batch_size`: at least
  "prediction" (float in [0, 1], (B, R, R, 3)); the shared evaluation also reads "motion_full"
  ((B, R, R, 2), the backward field into the source, for the synthetic motion EPE) and
  "confidence" ((B, h, w, 1)) when present.
  """

  # The --visualize panels, left to right, and the outputs they need on the host.
  panel_names: tuple[str, ...] = ("source", "driving", "output")
  panel_keys: tuple[str, ...] = ()
  # Per-frame annotations (input_pipeline/annotations.py keys) the renderer reads of the source
  # frame and of every driving frame, and those it reads where present. With any, callers pass
  # `annotations=` (`annotation_options`) to the render functions, and `start` takes it.
  annotation_keys: tuple[str, ...] = ()
  optional_annotation_keys: tuple[str, ...] = ()
  # Those read of the source frame, where fewer than annotation_keys (None: the same).
  source_annotation_keys: tuple[str, ...] | None = None

  def __init__(self, resolution: int, batch_size: int = 8):
    if batch_size < 1:
      raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    self.resolution = int(resolution)
    self.batch_size = int(batch_size)

  @abc.abstractmethod
  def start(self, source: np.ndarray, first_driving: np.ndarray, **options) -> Any:
    """The carry before the first chunk. `options` are the method's inference switches, as
    keyword-only arguments; one the method does not take is a ValueError (`_start`)."""

  @abc.abstractmethod
  def step(self, carry: Any, chunk: np.ndarray) -> tuple[Any, dict[str, jax.Array]]:
    """`batch_size` uint8 driving frames -> (next carry, device outputs)."""

  def panels(self, source: np.ndarray, fetched: dict[str, np.ndarray]) -> list[np.ndarray]:
    """Side-by-side frames of one fetched chunk (`stream` with keys=panel_keys)."""
    return [visualize.tile_images([[source, driving, output]], pad=PANEL_PAD)
            for driving, output in zip(fetched["driving"], fetched["prediction"])]

  def _start(self, source: np.ndarray, first_driving: np.ndarray, options: dict) -> Any:
    """`start`, with an option the method does not take as a one-line ValueError (not the
    TypeError of a bad keyword, which the command lines would show as a traceback)."""
    try:
      inspect.signature(self.start).bind(source, first_driving, **options)
    except TypeError:
      known = [name for name, p in inspect.signature(self.start).parameters.items()
               if p.kind == p.KEYWORD_ONLY]
      raise ValueError(f"{type(self).__name__}: unknown inference option(s) "
                       f"{', '.join(sorted(options))}; this method takes "
                       f"{', '.join(known) or 'none'}") from None
    return self.start(source, first_driving, **options)

  def render_chunk(self, carry: Any, chunk: np.ndarray) -> tuple[Any, int, dict]:
    """(next carry, number of valid frames, outputs) for at most `batch_size` frames; returns as
    soon as the work is dispatched."""
    valid = len(chunk)
    if not 0 < valid <= self.batch_size:
      raise ValueError(f"a chunk holds 1 to {self.batch_size} frames, got {valid}")
    if valid < self.batch_size:  # pad the last chunk: one compiled shape for the whole video
      chunk = np.concatenate([chunk, np.repeat(chunk[-1:], self.batch_size - valid, axis=0)])
    carry, outputs = self.step(carry, chunk)
    return carry, valid, outputs

  def render_chunks(self, source: np.ndarray, driving: np.ndarray | Iterable[np.ndarray],
                    **options) -> Iterator[tuple[int, dict]]:
    """Yields (number of valid frames, device outputs) per chunk of `batch_size` frames."""
    pieces = chunks(driving, self.batch_size)
    first = next(pieces, None)
    if first is None:
      raise ValueError("no driving frames")
    carry = self._start(source, first[0], options)
    for chunk in itertools.chain([first], pieces):
      carry, valid, outputs = self.render_chunk(carry, chunk)
      yield valid, outputs

  def stream(self, source: np.ndarray, driving: np.ndarray | Iterable[np.ndarray], *,
             keys: tuple[str, ...] = (), **options) -> Iterator[dict]:
    """Host dicts per chunk: driving (n, R, R, 3) uint8, prediction (n, R, R, 3) uint8 and the
    outputs named in `keys`. The next chunk is dispatched before the previous one is fetched."""
    pieces = chunks(driving, self.batch_size)
    first = next(pieces, None)
    if first is None:
      raise ValueError("no driving frames")
    carry = self._start(source, first[0], options)

    def fetch(chunk, valid, outputs):
      wanted = {key: outputs[key] for key in keys + ("prediction",)}
      host = jax.device_get(jax.tree.map(lambda x: x[:valid], wanted))
      host["prediction"] = to_uint8(host["prediction"])
      host["driving"] = chunk
      return host

    pending = None
    for chunk in itertools.chain([first], pieces):
      carry, valid, outputs = self.render_chunk(carry, chunk)
      if pending is not None:
        yield fetch(*pending)
      pending = (chunk, valid, outputs)
    yield fetch(*pending)

  def animate(self, source: np.ndarray, driving: np.ndarray, **options) -> np.ndarray:
    """uint8 (R, R, 3) source and (T, R, R, 3) driving frames -> uint8 (T, R, R, 3) output."""
    return np.concatenate([r["prediction"] for r in self.stream(source, driving, **options)])
