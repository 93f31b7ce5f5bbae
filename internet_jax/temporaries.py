"""Interrupted work leaves nothing behind: temporary outputs, and SIGTERM/SIGINT in the CLIs.

Every output is written under a temporary name beside it and renamed into place when complete
(`replaced`, or `partial_output` for a folder). The name says whose it is,
`.<name>.<pid>@<host>.partial<suffix>`, so that:

* SIGTERM/SIGINT: a CLI runs its work inside `stop_on_signals(what)`, where either signal raises
  a BaseException (no `except Exception` swallows it); the temporaries remove themselves on the
  way out and the run ends with one line `interrupted: ...` and exit status 128 + the signal
  (`errors.Interrupted`, reported by `errors.user_errors`). Python runs a signal handler at the
  next bytecode of the main thread, which may be inside a garbage-collection callback (JAX
  registers one) or a finaliser, where an exception is reported as unraisable and dropped: the
  block's `sys.unraisablehook` then delivers the signal again, so that it lands in the work.
* SIGKILL (nothing runs): the next run for the same output removes the temporaries of processes
  that no longer exist on this host, with one warning line naming them. A temporary of another
  host cannot be checked from here and is left alone (as `workdir_lock` does with locks).
"""

from __future__ import annotations

import _thread
import contextlib
import os
from pathlib import Path
import re
import shutil
import signal
import socket
import sys
import threading
from typing import Iterable, Iterator

from absl import logging

from internet_jax import errors, workdir_lock

SIGNALS = (signal.SIGTERM, signal.SIGINT)


def partial_path(path: str | os.PathLike, suffix: str = "") -> Path:
  """This process's temporary name for `path`: hidden, in the same folder (the rename stays on
  one file system), `suffix` last (a video writer picks the container from it)."""
  path = Path(path)
  return path.with_name(f".{path.name}.{os.getpid()}@{socket.gethostname()}.partial{suffix}")


def _holders(path: Path) -> Iterator[tuple[Path, int, str]]:
  """(temporary, pid, host) of every `partial_path(path, ...)` beside `path`."""
  pattern = re.compile(re.escape(f".{path.name}.") + r"(\d+)@(.+?)\.partial")
  with contextlib.suppress(OSError):  # no folder yet: nothing stale
    for entry in path.parent.iterdir():
      match = pattern.match(entry.name)
      if match:
        yield entry, int(match.group(1)), match.group(2)


def _remove(path: Path) -> None:
  if path.is_dir() and not path.is_symlink():
    shutil.rmtree(path, ignore_errors=True)
  else:
    path.unlink(missing_ok=True)


def remove_stale(path: str | os.PathLike, orphans: Iterable[Path] = ()) -> list[Path]:
  """Removes the temporaries for `path` left by processes gone from this host, and `orphans`
  (temporaries whose names do not say whose they are, e.g. TFDS's) when no live process of
  this host is writing `path` either; one warning names what was removed. Returns it."""
  path, host = Path(path), socket.gethostname()
  removed, live = [], False
  for temporary, pid, owner in _holders(path):
    if owner != host:
      continue
    if pid != os.getpid() and not workdir_lock.alive(pid):
      _remove(temporary)
      removed.append(temporary)
    else:
      live = True
  if not live:
    for orphan in orphans:
      _remove(orphan)
      removed.append(orphan)
  if removed:
    logging.warning("removed what an interrupted run left behind: %s",
                    ", ".join(map(str, removed)))
  return removed


@contextlib.contextmanager
def partial_output(path: str | os.PathLike, suffix: str = "",
                   orphans: Iterable[Path] = ()) -> Iterator[Path]:
  """Yields this process's temporary name for `path` (not created), after removing stale ones
  (`remove_stale`); the temporary, file or folder, is removed on the way out unless it was
  renamed into place."""
  remove_stale(path, orphans)
  temporary = partial_path(path, suffix)
  try:
    yield temporary
  finally:
    _remove(temporary)


@contextlib.contextmanager
def replaced(path: str | os.PathLike, suffix: str = "") -> Iterator[Path]:
  """`partial_output` renamed to `path` when the block completes (and only then)."""
  with partial_output(path, suffix) as temporary:
    yield temporary
    os.replace(temporary, path)


class _Stop(BaseException):
  """Raised by the signal handler; a BaseException so that only `stop_on_signals` catches it."""

  def __init__(self, signum: int):
    super().__init__(errors.signal_name(signum))
    self.signum = signum


def _handle(signum: int, frame) -> None:
  del frame
  for other in SIGNALS:  # a second signal must not cut the removal of the temporaries short
    signal.signal(other, signal.SIG_IGN)
  raise _Stop(signum)


_REDELIVERY_DELAY_S = 0.01


class _Redeliver:
  """`sys.unraisablehook` inside `stop_on_signals`: a `_Stop` that was dropped (raised in a
  garbage-collection callback or a finaliser) re-arms the handlers and, from another thread a
  moment later (once the callback has returned: delivered from here, the handler would run
  inside this hook and be dropped again), delivers its signal to the main thread again;
  anything else goes to the hook it replaced."""

  def __init__(self, previous):
    self.previous = previous

  def __call__(self, unraisable) -> None:
    stop = unraisable.exc_value
    if isinstance(stop, _Stop) and threading.current_thread() is threading.main_thread():
      for signum in SIGNALS:
        signal.signal(signum, _handle)
      again = threading.Timer(_REDELIVERY_DELAY_S, _thread.interrupt_main, (stop.signum,))
      again.daemon = True
      again.start()
      return
    self.previous(unraisable)


@contextlib.contextmanager
def stop_on_signals(what: str) -> Iterator[None]:
  """SIGTERM/SIGINT inside the block unwind it (removing the temporaries) and raise
  `errors.Interrupted` ("<SIGNAL>: <what> not finished; ..."). Outside the main thread, where
  Python cannot set handlers, the block runs as is."""
  if threading.current_thread() is not threading.main_thread():
    yield
    return
  previous = {signum: signal.signal(signum, _handle) for signum in SIGNALS}
  previous_hook = sys.unraisablehook
  sys.unraisablehook = _Redeliver(previous_hook)
  try:
    yield
  except _Stop as stop:
    raise errors.Interrupted(f"{stop}: {what} not finished; its temporary files were removed, "
                             "run the same command again", stop.signum) from None
  finally:
    sys.unraisablehook = previous_hook
    for signum, handler in previous.items():
      signal.signal(signum, handler if handler is not None else signal.SIG_DFL)
