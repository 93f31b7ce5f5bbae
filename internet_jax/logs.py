"""What a training run reports: TensorBoard event files and the console progress line.

- `EventWriter` writes TensorBoard event files with tensorboardX, so training needs no
  TensorFlow (clu's writers import it). Scalars, images and the run's hyperparameters (the
  TensorBoard HParams tab).
- `ProgressLine` is one console line per log interval: step, steps/s, ETA and a few key metrics.
- `StepProfiler` records a profiler trace of a few steps (TensorBoard's Profile tab).
"""

from __future__ import annotations

import time
from typing import Any, Mapping, Sequence

import numpy as np

def _flat_hparams(config: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
  """{"optimizer.g_lr": 2e-4, ...}: the leaves of a nested config as TensorBoard HParams
  values (numbers, booleans and strings; anything else as its repr)."""
  flat = {}
  for key, value in config.items():
    name = f"{prefix}{key}"
    if isinstance(value, Mapping):
      flat.update(_flat_hparams(value, f"{name}."))
    elif isinstance(value, (bool, int, float, str)):
      flat[name] = value
    else:
      flat[name] = repr(value)
  return flat


class EventWriter:
  """TensorBoard event files in `logdir` (one file per writer). `enabled=False` (processes other
  than the chief) writes nothing."""

  def __init__(self, logdir: str, *, enabled: bool = True):
    self._writer = None
    if enabled:
      from tensorboardX import FileWriter  # pylint: disable=g-import-not-at-top
      self._writer = FileWriter(logdir)

  def _add(self, summary, step: int) -> None:
    if self._writer is not None:
      self._writer.add_summary(summary, int(step))

  def write_scalars(self, step: int, scalars: Mapping[str, float]) -> None:
    from tensorboardX import summary  # pylint: disable=g-import-not-at-top
    for tag, value in scalars.items():
      self._add(summary.scalar(tag, float(value)), step)

  def write_images(self, step: int, images: Mapping[str, np.ndarray]) -> None:
    """uint8 RGB images (H, W, 3)."""
    from tensorboardX import summary  # pylint: disable=g-import-not-at-top
    for tag, image in images.items():
      image = np.asarray(image)
      if image.dtype != np.uint8 or image.ndim != 3 or image.shape[-1] != 3:
        raise ValueError(f"image summary {tag}: expected uint8 (H, W, 3), got {image.dtype} "
                         f"{image.shape}")
      self._add(summary.image(tag, image, dataformats="HWC"), step)

  def write_hparams(self, config: Mapping[str, Any]) -> None:
    """The config's leaves as the run's hyperparameters (TensorBoard's HParams tab)."""
    if self._writer is None:
      return
    from tensorboardX import summary  # pylint: disable=g-import-not-at-top
    for part in summary.hparams(_flat_hparams(config), {}):
      self._writer.add_summary(part)

  def flush(self) -> None:
    if self._writer is not None:
      self._writer.flush()

  def __enter__(self) -> "EventWriter":
    return self

  def __exit__(self, *exc_info) -> None:
    self.close()

  def close(self) -> None:
    if self._writer is not None:
      self._writer.close()
      self._writer = None


def _duration(seconds: float) -> str:
  seconds = int(round(seconds))
  hours, rest = divmod(seconds, 3600)
  return f"{hours}:{rest // 60:02d}:{rest % 60:02d}"


def format_number(value: float) -> str:
  """4 significant digits, or scientific notation outside [1e-3, 1e4)."""
  if value == 0 or 1e-3 <= abs(value) < 1e4:
    return f"{value:.4g}"
  return f"{value:.2e}"


class ProgressLine:
  """`step 200/2000 (10%) | 3.1 steps/s | ETA 0:09:41 | g/total 0.412 | d/total 0.251`: the
  rate is over the steps since the previous line (the first line's includes compilation)."""

  def __init__(self, num_train_steps: int, initial_step: int, metric_names: Sequence[str]):
    self._total = num_train_steps
    self._names = tuple(metric_names)
    self._last_step, self._last_time = initial_step, time.perf_counter()
    self.rate = float("nan")  # steps/s of the latest line (TensorBoard's train/steps_per_sec)

  def line(self, step: int, metrics: Mapping[str, float]) -> str:
    now = time.perf_counter()
    rate = self.rate = (step - self._last_step) / max(now - self._last_time, 1e-9)
    self._last_step, self._last_time = step, now
    parts = [f"step {step}/{self._total} ({100 * step / self._total:.0f}%)", f"{rate:.3g} steps/s"]
    if step < self._total:
      parts.append(f"ETA {_duration((self._total - step) / rate)}")
    parts += [f"{name} {format_number(metrics[name])}" for name in self._names if name in metrics]
    return " | ".join(parts)


class StepProfiler:
  """A profiler trace of steps `first_step + WARMUP_STEPS + 1` ... `+ num_steps` into `logdir`
  (past compilation and the first executions); `num_steps=0` records nothing."""

  WARMUP_STEPS = 2

  def __init__(self, logdir: str, first_step: int, num_steps: int):
    self._logdir = logdir
    self._start = first_step + self.WARMUP_STEPS + 1
    self._stop = self._start + num_steps - 1 if num_steps > 0 else None
    self._tracing = False

  def before_step(self, step: int) -> None:
    if self._stop is not None and step == self._start:
      import jax  # pylint: disable=g-import-not-at-top
      jax.profiler.start_trace(self._logdir)
      self._tracing = True

  def after_step(self, step: int, outputs: Any) -> None:
    """`outputs` of the step are waited for, so the trace holds the whole step."""
    if self._tracing and step == self._stop:
      self.stop(outputs)

  def close(self) -> None:
    self.stop()

  def stop(self, outputs: Any = None) -> None:
    if self._tracing:
      import jax  # pylint: disable=g-import-not-at-top
      jax.block_until_ready(outputs)
      jax.profiler.stop_trace()
      self._tracing = False
