"""Host-side guards of the training loop: the non-finite monitor and the stop signals."""

from __future__ import annotations

import math
import os
import signal
import threading
from typing import Any

from absl import logging
import jax

from internet_jax import errors

# Guard counters and flags: metrics that are not loss terms.
GUARD_METRICS = ("nonfinite", "skipped_steps", "consecutive_skipped_steps")


def nonfinite_terms(metrics: dict[str, float]) -> list[str]:
  """Names of the logged values that are NaN or infinite: loss terms first, then norms."""
  names = [name for name, value in metrics.items()
           if name not in GUARD_METRICS and not math.isfinite(float(value))]
  return sorted(names, key=lambda n: (n.endswith("_norm"), n.endswith("/total"), n))


class NonFiniteMonitor:
  """Host side of the non-finite guard: warns about skipped steps and stops the run after
  `max_consecutive` in a row, naming the non-finite loss terms.

  `check(step, metrics)` reads one int32 of the step's metrics; the loop calls it one step late
  (after dispatching the next step), so that it never makes the host wait for the device.
  """

  def __init__(self, max_consecutive: int):
    self.max_consecutive = int(max_consecutive)

  def check(self, step: int, metrics: dict) -> None:
    if not int(jax.device_get(metrics["nonfinite"])):
      return
    values = {name: float(value) for name, value in jax.device_get(metrics).items()}
    names = ", ".join(nonfinite_terms(values)) or "(none of the logged values)"
    consecutive = int(values["consecutive_skipped_steps"])
    logging.warning("step %d: non-finite %s; the update was skipped (%d in a row, %d in total)",
                    step, names, consecutive, int(values["skipped_steps"]))
    if consecutive >= self.max_consecutive:
      raise FloatingPointError(
          f"step {step}: {consecutive} consecutive steps with non-finite values "
          f"(config.max_consecutive_nonfinite={self.max_consecutive}), non-finite: {names}; "
          "stopping with the last finite parameters in the checkpoints (lower the learning rate "
          "or check the data)")


class StopSignals:
  """SIGTERM/SIGINT during training set a flag; the loop saves a checkpoint and stops.

  Single process: Python handlers, installed on entry and the previous ones restored on exit; a
  second signal falls through to the previous handler (stop at once). Several processes: JAX's
  preemption service (which listens to SIGTERM) picks a step at which all of them stop together;
  Python handlers would make the processes stop at different steps and are not installed.
  """

  SIGNALS = (signal.SIGTERM, signal.SIGINT)

  def __init__(self):
    self.signum: int | None = None
    self._previous: dict[int, Any] = {}

  def __enter__(self) -> "StopSignals":
    if jax.process_count() > 1:
      return self
    if threading.current_thread() is not threading.main_thread():
      logging.warning("train_and_evaluate runs outside the main thread: SIGTERM/SIGINT are not "
                      "turned into a checkpoint and a clean stop")
      return self
    for signum in self.SIGNALS:
      self._previous[signum] = signal.signal(signum, self._handle)
    return self

  def __exit__(self, *exc_info) -> None:
    for signum, previous in self._previous.items():
      # None: a handler not installed from Python; the default is the closest we can restore.
      signal.signal(signum, previous if previous is not None else signal.SIG_DFL)
    self._previous = {}

  def _handle(self, signum: int, frame) -> None:
    if self.signum is not None:
      # Asked twice: give the signal its previous meaning (KeyboardInterrupt, or termination).
      previous = self._previous.get(signum)
      signal.signal(signum, previous if previous is not None else signal.SIG_DFL)
      if callable(previous):
        previous(signum, frame)
      else:
        os.kill(os.getpid(), signum)
      return
    self.signum = signum
    logging.warning("Received %s: stopping after this step with a checkpoint (send it again to "
                    "stop at once, without one)", errors.signal_name(signum))

  def requested(self, step: int) -> bool:
    """Whether to save and stop after `step` (call it at every step on every process)."""
    if jax.process_count() > 1:
      from jax.experimental import multihost_utils  # pylint: disable=g-import-not-at-top
      try:
        if multihost_utils.reached_preemption_sync_point(step):
          self.signum = self.signum or signal.SIGTERM
          return True
      except RuntimeError:
        pass  # the preemption service is disabled: preemption is not handled
      return False
    return self.signum is not None
