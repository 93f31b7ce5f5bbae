"""The grain training and evaluation pipelines: a chain that runs a method's example function,
and the frame-pair example INTERnet trains on.

The frame-pair example from video v (the INTERnet paper, Sec. 3.3):
  S = frame 0, D_t = frame t with t > min_driving_offset, D_{t-1} = frame t - 1 (I_t = D_t);
  f_t = DIS(D_{t-1}, D_t): for each pixel p of frame t-1 its displacement into frame t, so that
  `warp(O_t, grid + f_t)` lies on frame t-1's grid (Eq. 2);
  M_ext = Sundaram et al. mask of f_t and DIS(D_t, D_{t-1}), also on frame t-1's grid (Eq. 3).
Flow is computed on the un-augmented frames, converted to normalised units once here, then flipped
together with the frames. All transforms are numpy/OpenCV (they run in grain worker processes).

Batch of the frame-pair example (per process, B = batch_size_per_process):
  source, driving, previous: uint8 (B, H, W, 3)   S, D_t, D_{t-1}
  flow: float32 (B, H, W, 2)                       f_t, normalised (x, y) displacement, t-1's grid
  flow_confidence: float32 (B, H, W, 1) in {0, 1}  Sundaram mask on t-1's grid
  source_<key>, driving_<key>                      per-frame annotations of S and D_t, for the
                                                   `annotation_keys` asked for (none by default)

Chain (create_train_iterator): range(num_videos * num_repeats) -> shuffle (reseeded each epoch)
-> repeat forever -> random_map(make example) -> per-process slice [process_index::process_count]
-> batch(drop_remainder) -> to_iter_dataset -> mp_prefetch. The random map sits *before* the
process slice so that its per-example rng is keyed by the global example index: the examples do not
depend on how many processes share the data (process p gets exactly every P-th example of the
single-process stream).
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import functools
import threading
import time
from typing import Any, Iterator

import cv2
import grain
import numpy as np

from input_pipeline import annotations
from input_pipeline import flow as flow_lib
from input_pipeline import sources

Example = dict[str, np.ndarray]

STAGES = ("decode", "flow", "augment")


class StageTimes:
  """Thread-safe accumulator of seconds spent per pipeline stage (decode / flow / augment).

  Only sees work done in *this* process: with grain worker processes the module-level
  `STAGE_TIMES` of the main process stays empty, so measure shares with worker_count=0.
  """

  def __init__(self):
    self._lock = threading.Lock()
    self._seconds = collections.Counter()
    self._examples = 0

  @contextlib.contextmanager
  def time(self, stage: str):
    start = time.perf_counter()
    try:
      yield
    finally:
      elapsed = time.perf_counter() - start
      with self._lock:
        self._seconds[stage] += elapsed

  def count_example(self):
    with self._lock:
      self._examples += 1

  def reset(self):
    with self._lock:
      self._seconds.clear()
      self._examples = 0

  def snapshot(self) -> dict[str, Any]:
    """{"seconds": {stage: s}, "shares": {stage: fraction of the staged time}, "examples": n}."""
    with self._lock:
      seconds = {stage: float(self._seconds.get(stage, 0.0)) for stage in STAGES}
      examples = self._examples
    total = sum(seconds.values())
    shares = {stage: (s / total if total > 0 else 0.0) for stage, s in seconds.items()}
    return {"seconds": seconds, "shares": shares, "examples": examples}


STAGE_TIMES = StageTimes()


@dataclasses.dataclass(frozen=True)
class ExampleParams:
  """The plain-Python subset of `config.data` a training example needs (cheap to pickle)."""
  min_driving_offset: int = 60
  horizontal_flip: bool = True
  brightness: float = 0.0
  contrast: float = 0.0
  saturation: float = 0.0
  hue: float = 0.1
  flow_preset: str = "medium"
  fb_alpha: float = 0.01
  fb_beta: float = 0.5
  mb_alpha: float = 0.01
  mb_beta: float = 0.002

  @classmethod
  def from_config(cls, data_config) -> "ExampleParams":
    jitter = data_config.color_jitter
    return cls(
        min_driving_offset=int(data_config.min_driving_offset),
        horizontal_flip=bool(data_config.horizontal_flip),
        brightness=float(jitter.brightness), contrast=float(jitter.contrast),
        saturation=float(jitter.saturation), hue=float(jitter.hue),
        flow_preset=str(data_config.flow_preset),
        fb_alpha=float(data_config.fb_consistency_alpha),
        fb_beta=float(data_config.fb_consistency_beta),
        mb_alpha=float(data_config.motion_boundary_alpha),
        mb_beta=float(data_config.motion_boundary_beta))


def sample_driving_index(num_frames: int, min_driving_offset: int, rng: np.random.Generator) -> int:
  """t uniform in [min_driving_offset + 1, num_frames - 1] (the INTERnet paper's sample: t > min_driving_offset).

  Videos too short for the offset (num_frames - 1 < min_driving_offset + 1) fall back to t uniform
  in [1, num_frames - 1], so that every video still yields examples (D_{t-1} needs t >= 1).
  """
  if num_frames < 2:
    raise ValueError(f"a training video needs at least 2 frames, got {num_frames}")
  low = max(int(min_driving_offset), 0) + 1
  high = num_frames - 1
  if high < low:
    low = 1
  return int(rng.integers(low, high + 1))


# --- Colour jitter (torchvision/FOMM ColorJitter semantics, one draw per example) ----------------

def sample_color_jitter(rng: np.random.Generator, params: ExampleParams) -> list[tuple[str, float]]:
  """Draws the jitter factors and their random order (torchvision ColorJitter.get_params).

  brightness/contrast/saturation factors ~ U[max(0, 1 - x), 1 + x], hue shift ~ U[-h, h] in
  fractions of the hue circle. A term with strength 0 is left out (identity). The draws are always
  made, so the rng stream does not depend on which terms are active.
  """
  names = ("brightness", "contrast", "saturation", "hue")
  strengths = (params.brightness, params.contrast, params.saturation, params.hue)
  draws = [rng.uniform(max(0.0, 1 - x), 1 + x) for x in strengths[:3]]
  draws.append(rng.uniform(-params.hue, params.hue))
  order = rng.permutation(4)
  return [(names[i], float(draws[i])) for i in order if strengths[i] > 0]


def apply_color_jitter(frame: np.ndarray, ops: list[tuple[str, float]]) -> np.ndarray:
  """Applies drawn jitter ops to one uint8 (H, W, 3) RGB frame; float32 inside, one rounding.

  Contrast blends with the frame's mean grey level and saturation with its grey image (ITU-R 601
  luma, as torchvision/PIL); hue rotates H in HSV. Values are clamped to [0, 1] after every term
  (torchvision). In-place arithmetic throughout: a fresh 512^2 float temporary costs about as much
  in page faults as the operation itself.
  """
  if not ops:
    return frame
  image = frame.astype(np.float32)
  image *= np.float32(1.0 / 255.0)
  for name, factor in ops:
    if name == "brightness":
      image *= np.float32(factor)
    elif name == "contrast":
      mean = np.float32(cv2.mean(cv2.cvtColor(image, cv2.COLOR_RGB2GRAY))[0])
      image -= mean
      image *= np.float32(factor)
      image += mean
    elif name == "saturation":
      grey = cv2.cvtColor(cv2.cvtColor(image, cv2.COLOR_RGB2GRAY), cv2.COLOR_GRAY2RGB)
      image -= grey
      image *= np.float32(factor)
      image += grey
    elif name == "hue":
      cv2.cvtColor(image, cv2.COLOR_RGB2HSV, dst=image)  # float input: H in degrees [0, 360)
      # A shift in [0, 360): OpenCV's HSV2RGB wraps hues >= 360 itself (not negative ones).
      image[..., 0] += np.float32(np.mod(360.0 * factor, 360.0))
      cv2.cvtColor(image, cv2.COLOR_HSV2RGB, dst=image)
    else:
      raise ValueError(f"unknown colour jitter op {name!r}")
    np.clip(image, 0.0, 1.0, out=image)
  # Round to nearest (ties to even, as np.rint), saturating: one fast OpenCV pass.
  return cv2.convertScaleAbs(image, alpha=255.0)


def flip_example(example: Example) -> Example:
  """Mirrors an example left-right: frames and mask mirrored, flow mirrored and x negated.

  A displacement (dx, dy) at column j becomes (-dx, dy) at column W - 1 - j; with align-corners
  coordinates x -> -x is exactly this mirror, so the rule holds in pixel and normalised units.
  """
  out = {}
  for key, value in example.items():
    # cv2.flip is ~10x faster than a reversed-view copy; it drops a trailing channel axis of 1.
    out[key] = cv2.flip(value, 1).reshape(value.shape)
  out["flow"][..., 0] *= -1.0
  return out


# --- Training examples ---------------------------------------------------------------------------


def make_train_example(source: sources.VideoSource, video: int, rng: np.random.Generator,
                       params: ExampleParams, *, flip: bool | None = None,
                       stats: StageTimes | None = STAGE_TIMES,
                       annotation_keys: tuple[str, ...] = ()) -> Example:
  """One training example (unbatched; see the module docstring for the keys).

  Args:
    source: the VideoSource to read from.
    video: video index in the source.
    rng: grain's per-example generator; every random choice comes from it, in a fixed order
      (t, flip coin, jitter), so a given rng state always gives the same example.
    params: ExampleParams.
    flip: None draws the flip (p = 0.5 if params.horizontal_flip); True/False forces it. The coin
      is drawn either way, so forcing the flip does not change t or the jitter.
    stats: StageTimes to record decode/flow/augment seconds into (None: no timing).
    annotation_keys: per-frame annotations (input_pipeline/annotations.py) of S and D_t the
      example also carries, as "source_<key>" and "driving_<key>" (mirrored with the frames by
      `annotations.mirror`).
  """
  timer = stats.time if stats is not None else (lambda stage: contextlib.nullcontext())
  num_frames = source.num_frames(video)
  t = sample_driving_index(num_frames, params.min_driving_offset, rng)
  coin = bool(rng.random() < 0.5)
  jitter_ops = sample_color_jitter(rng, params)
  do_flip = (coin and params.horizontal_flip) if flip is None else bool(flip)

  with timer("decode"):
    source_frame = np.asarray(source.read_frame(video, 0))
    previous = source_frame if t == 1 else np.asarray(source.read_frame(video, t - 1))
    driving = np.asarray(source.read_frame(video, t))

  with timer("flow"):
    height, width = previous.shape[:2]
    forward = flow_lib.compute_flow(previous, driving, params.flow_preset)  # f_t, t-1's grid
    backward = flow_lib.compute_flow(driving, previous, params.flow_preset)  # on t's grid
    confidence = flow_lib.sundaram_confidence(
        forward, backward, fb_alpha=params.fb_alpha, fb_beta=params.fb_beta,
        mb_alpha=params.mb_alpha, mb_beta=params.mb_beta)
    # The one pixel -> normalised conversion of the flow (models work in [-1, 1] coordinates).
    flow = flow_lib.pixel_to_normalized_flow(forward, height, width)

  with timer("augment"):
    # One jitter for all three frames (FOMM applies augmentation jointly), after the flow.
    example = {
        "source": apply_color_jitter(source_frame, jitter_ops),
        "driving": apply_color_jitter(driving, jitter_ops),
        "previous": apply_color_jitter(previous, jitter_ops),
        "flow": flow,
        "flow_confidence": confidence[..., None],
    }
    if do_flip:
      example = flip_example(example)
  for name, frame in (("source", 0), ("driving", t)) if annotation_keys else ():
    found = sources.read_annotations(source, video, frame, annotation_keys)
    for key, value in found.items():
      value = np.asarray(value)
      example[f"{name}_{key}"] = annotations.mirror(key, value, width) if do_flip else value
  if stats is not None:
    stats.count_example()
  return example


def frame_pair_example_fn(data_config, force_flip: bool | None = None,
                          annotation_keys: tuple[str, ...] = ()):
  """The frame-pair example of `make_train_example` with `config.data`'s settings, as the
  (source, video, rng) -> example function the chain runs (it pickles into grain workers)."""
  return functools.partial(make_train_example, params=ExampleParams.from_config(data_config),
                           flip=force_flip, annotation_keys=tuple(annotation_keys))


class ExampleTransform(grain.transforms.RandomMap):
  """grain RandomMap: global example index -> `example_fn(source, index % num_videos, rng)`."""

  def __init__(self, source: sources.VideoSource, example_fn):
    self._source = source
    self._example_fn = example_fn
    self._num_videos = len(source)

  def random_map(self, element: int, rng: np.random.Generator) -> Example:
    return self._example_fn(self._source, int(element) % self._num_videos, rng)


def steps_per_epoch(num_videos: int, num_repeats: int, global_batch: int) -> int:
  """Optimizer steps in one epoch (num_repeats passes over the videos), at least 1.

  The stream is continuous across epochs (batches may straddle an epoch boundary), so this is
  floor(num_videos * num_repeats / global_batch): the step count at which an epoch-based schedule
  (paper: lr x0.1 at epochs 60 and 90) switches.
  """
  if num_videos <= 0 or num_repeats <= 0 or global_batch <= 0:
    raise ValueError(f"need positive sizes, got {num_videos=} {num_repeats=} {global_batch=}")
  return max(1, (num_videos * num_repeats) // global_batch)


def create_train_dataset(data_config, source: sources.VideoSource, *, batch_size_per_process: int,
                         seed: int, process_index: int = 0, process_count: int = 1,
                         worker_count: int | None = None, read_threads: int | None = None,
                         force_flip: bool | None = None, example_fn=None) -> grain.IterDataset:
  """The training IterDataset (see `create_train_iterator`, which iterates it)."""
  num_videos = len(source)
  if num_videos == 0:
    raise ValueError("the training VideoSource has no videos")
  if not 0 <= process_index < process_count:
    raise ValueError(f"process_index {process_index} outside [0, {process_count})")
  num_repeats = int(data_config.num_repeats)
  worker_count = int(data_config.worker_count if worker_count is None else worker_count)
  # In-process reading uses 2 threads (cv2 and large numpy ops release the GIL); each worker
  # process reads with 1 thread, the processes give the parallelism.
  if read_threads is None:
    read_threads = 1 if worker_count > 0 else 2
  buffer_size = max(1, int(data_config.get("prefetch_buffer_size", 2)))
  if example_fn is None:
    example_fn = frame_pair_example_fn(data_config, force_flip)

  ds = grain.MapDataset.range(num_videos * num_repeats)
  ds = ds.shuffle(seed=seed)  # ShuffleMapDataset reseeds each epoch (seed + epoch)
  ds = ds.repeat(None)
  # Seeded by the *global* index, before the process slice (module docstring).
  ds = ds.random_map(ExampleTransform(source, example_fn), seed=seed)
  ds = ds[process_index::process_count]
  ds = ds.batch(batch_size_per_process, drop_remainder=True)
  ids = ds.to_iter_dataset(grain.ReadOptions(num_threads=read_threads,
                                             prefetch_buffer_size=buffer_size))
  if worker_count > 0:
    ids = ids.mp_prefetch(grain.MultiprocessingOptions(num_workers=worker_count,
                                                       per_worker_buffer_size=buffer_size))
  return ids


def create_train_iterator(data_config, source: sources.VideoSource, *,
                          batch_size_per_process: int, seed: int, process_index: int = 0,
                          process_count: int = 1, worker_count: int | None = None,
                          read_threads: int | None = None,
                          force_flip: bool | None = None,
                          example_fn=None) -> grain.DatasetIterator:
  """An endless, checkpointable iterator over training batches (the batch contract above).

  Args:
    data_config: `config.data` (min_driving_offset, num_repeats, horizontal_flip, color_jitter,
      flow_preset, Sundaram constants, worker_count, prefetch_buffer_size).
    source: VideoSource of the training videos (all of them; each process reads its own slice).
    batch_size_per_process: the global batch divided by process_count.
    seed: shuffle and augmentation seed; the stream is a deterministic function of it.
    process_index, process_count: this host's share, `jax.process_index()/process_count()`.
    worker_count: grain worker processes (None: data_config.worker_count; 0: in this process).
      Workers need the program to run under `absl.app.run` (grain starts them by re-importing
      the main module).
    read_threads: grain read threads per process (None: 2 in-process, 1 per worker).
    force_flip: None for random flips; True/False to force the flip (tests, visualisation).
    example_fn: (source, video, rng) -> one example, a method's `Method.example_fn(config)`;
      None: the frame-pair example (`frame_pair_example_fn`). `force_flip` applies to that one.
  Returns:
    A grain DatasetIterator: `next()` gives a batch dict; `get_state()`/`set_state()` (or
    `grain.checkpoint.CheckpointSave/CheckpointRestore` in an orbax Composite) resume exactly.
  """
  return iter(create_train_dataset(
      data_config, source, batch_size_per_process=batch_size_per_process, seed=seed,
      process_index=process_index, process_count=process_count, worker_count=worker_count,
      read_threads=read_threads, force_flip=force_flip, example_fn=example_fn))


def iterate_eval_videos(source: sources.VideoSource,
                        max_videos: int | None = None) -> Iterator[dict[str, Any]]:
  """Yields whole videos in source order: {"name": str, "frames": uint8 (T, H, W, 3)}."""
  count = len(source) if max_videos is None else min(len(source), int(max_videos))
  for video in range(count):
    frames = np.stack([np.asarray(source.read_frame(video, i))
                       for i in range(source.num_frames(video))])
    yield {"name": source.video_name(video), "frames": frames}


# --- Synthetic moving patterns (tests and `benchmark --fake`) -------------------------------------


def _texture(rng: np.random.Generator, height: int, width: int, blur: float) -> np.ndarray:
  """A smooth colour texture, uint8 (H, W, 3): blurred noise stretched to the full range."""
  noise = rng.random((height, width, 3), dtype=np.float32)
  noise = cv2.GaussianBlur(noise, (0, 0), blur)
  low, high = noise.min(axis=(0, 1)), noise.max(axis=(0, 1))
  return np.rint(255.0 * (noise - low) / np.maximum(high - low, 1e-6)).astype(np.uint8)


def make_moving_pattern_videos(num_videos: int, num_frames: int, height: int,
                               width: int | None = None, *, seed: int = 0,
                               speed: float = 1.0) -> list[np.ndarray]:
  """Random-textured videos with known smooth motion: a panning background and an occluding square.

  Each video: a textured background translating by a constant sub-pixel velocity and a textured
  square (a third of the frame) moving with its own velocity in front of it, so that consecutive
  frames have both smooth flow and occlusions. Velocities scale with the resolution and `speed`
  (up to 1 px per frame for the background and 1.5 px for the square at 128 px and speed 1).
  Returns uint8 (T, H, W, 3) arrays.
  """
  width = height if width is None else width
  rng = np.random.default_rng(seed)
  scale = max(height, width) / 128.0
  blur = max(1.0, 1.5 * scale)
  scale *= speed
  videos = []
  for _ in range(num_videos):
    margin = int(np.ceil(2.0 * scale * num_frames)) + 4
    canvas = _texture(rng, height + 2 * margin, width + 2 * margin, blur)
    side = max(4, min(height, width) // 3)
    patch = _texture(rng, side, side, blur)
    background_velocity = rng.uniform(-1.0, 1.0, 2) * scale
    square_velocity = rng.uniform(-1.5, 1.5, 2) * scale
    square_start = rng.uniform(0.2, 0.5, 2) * np.array([width, height]) - side / 2
    frames = np.empty((num_frames, height, width, 3), np.uint8)
    for i in range(num_frames):
      # Background: frame(x) = canvas(x + margin - i v), i.e. content moves by +v per frame.
      offset = margin - i * background_velocity
      m_bg = np.float32([[1, 0, offset[0]], [0, 1, offset[1]]])
      frame = cv2.warpAffine(canvas, m_bg, (width, height),
                             flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP)
      position = square_start + i * square_velocity
      m_fg = np.float32([[1, 0, position[0]], [0, 1, position[1]]])
      fg = cv2.warpAffine(patch, m_fg, (width, height), flags=cv2.INTER_LINEAR)
      alpha = cv2.warpAffine(np.ones((side, side), np.float32), m_fg, (width, height),
                             flags=cv2.INTER_LINEAR)[..., None]
      # fg is already alpha-premultiplied (warped with zeros outside the patch).
      frames[i] = np.rint(fg + (1 - alpha) * frame).astype(np.uint8)
    videos.append(frames)
  return videos


def make_moving_pattern_source(num_videos: int, num_frames: int, height: int,
                               width: int | None = None, *, seed: int = 0,
                               speed: float = 1.0) -> sources.InMemoryVideoSource:
  """`make_moving_pattern_videos` wrapped as an InMemoryVideoSource."""
  return sources.InMemoryVideoSource(
      make_moving_pattern_videos(num_videos, num_frames, height, width, seed=seed, speed=speed),
      names=[f"pattern_{i:03d}" for i in range(num_videos)])
