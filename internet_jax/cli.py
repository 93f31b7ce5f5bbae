"""What every command-line program does first: the console policy and the compilation cache.

- The console shows this project's own INFO lines, and warnings and errors from anywhere; the
  INFO records of Orbax, TFDS, grain and the like, and their tracebacks, appear only with
  `--verbose`, as do Orbax's error records (the failures they describe reach this program as
  exceptions, which it reports in one line) and the tracebacks of TensorStore writes that end
  after a failed save closed their event loop.
- JAX's persistent compilation cache is on, so a second run of the same programs starts in
  seconds: `$JAX_COMPILATION_CACHE_DIR` when set, else `$XDG_CACHE_HOME/internet_jax/jax`
  (`~/.cache/internet_jax/jax`).
"""

from __future__ import annotations

import logging as python_logging
import os
import sys

from absl import logging

# Records logged from files under these folders are this project's own.
_OWN_FOLDERS = tuple(
    os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), folder) + os.sep
    for folder in ("internet_jax", "input_pipeline", "configs"))


# Third-party warnings that every run of ours triggers and that ask nothing of the user: TFDS
# on every builder config of ours, and on the dataset folder it is about to write.
_ROUTINE_WARNINGS = ("Using custom data configuration", "Variant folder ")
# asyncio's report, at exit, of futures and tasks that ended in an error nobody read ("<class>
# exception was never retrieved"): Orbax's writes of a failed save, which this program has
# already reported in its one line.
_UNREAD_ASYNC_ERROR = "exception was never retrieved"
# Where Orbax's modules live: their error records describe a failed save or restore, which
# reaches this program as an exception (internet_jax/checkpointing.py) and is reported there.
_ORBAX = os.sep + "orbax" + os.sep


class _OwnInfoOnly(python_logging.Filter):
  """Passes this project's own records, and third-party warnings and errors but routine ones,
  those without their traceback: an error that stops the run is reported in one line anyway
  (Orbax's background writer logs its failure with a traceback before the save re-raises it)."""

  def filter(self, record: python_logging.LogRecord) -> bool:
    if os.path.abspath(record.pathname).startswith(_OWN_FOLDERS):
      return True
    record.exc_info, record.exc_text = None, None
    message = str(record.msg)
    if record.levelno >= python_logging.ERROR and _ORBAX in record.pathname:
      return False
    return (record.levelno >= python_logging.WARNING
            and not message.startswith(_ROUTINE_WARNINGS)
            and not message.partition("\n")[0].endswith(_UNREAD_ASYNC_ERROR))


class _QuietClosedLoop:
  """A `sys.unraisablehook` that drops `RuntimeError: Event loop is closed` and passes anything
  else to the hook it replaced. When one write of an Orbax save fails (a full disk), Orbax ends
  the event loop that the save's other TensorStore writes report to; each of those, ending
  later on a TensorStore thread, raises this in its callback: a few hundred tracebacks after
  the one line that reports the failed save."""

  def __init__(self, previous):
    self.previous = previous

  def __call__(self, unraisable) -> None:
    error = unraisable.exc_value
    if isinstance(error, RuntimeError) and str(error) == "Event loop is closed":
      return
    self.previous(unraisable)


def _quiet_closed_loops(quiet: bool) -> None:
  hook = sys.unraisablehook
  previous = hook.previous if isinstance(hook, _QuietClosedLoop) else hook
  sys.unraisablehook = _QuietClosedLoop(previous) if quiet else previous


_FILTER = _OwnInfoOnly()


def console_policy(verbose: bool, level: int = logging.INFO) -> None:
  """absl at `level`; without `verbose`, third-party records below WARNING (and Orbax's errors)
  are dropped at absl's handler, and closed-event-loop tracebacks at `sys.unraisablehook`. A
  second call replaces the first."""
  logging.set_verbosity(logging.INFO if verbose else level)
  handler = logging.get_absl_handler()
  handler.removeFilter(_FILTER)
  if not verbose:
    handler.addFilter(_FILTER)
  _quiet_closed_loops(not verbose)


def default_cache_dir() -> str:
  base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
  return os.path.join(base, "internet_jax", "jax")


def enable_compilation_cache() -> None:
  """JAX's persistent compilation cache, unless one is already configured (by the environment
  or by the caller, as the tests do)."""
  import jax  # pylint: disable=g-import-not-at-top
  if jax.config.jax_compilation_cache_dir:
    return
  jax.config.update("jax_compilation_cache_dir",
                    os.environ.get("JAX_COMPILATION_CACHE_DIR") or default_cache_dir())
  # Programs that compile in under a second are not worth a disk round trip.
  jax.config.update("jax_persistent_cache_min_compile_time_secs", 1.0)


def start(verbose: bool, level: int = logging.INFO) -> None:
  """Called first in each program's main: the console policy and the compilation cache."""
  console_policy(verbose, level)
  enable_compilation_cache()
