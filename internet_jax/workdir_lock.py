"""One training run per workdir: `<workdir>/run.lock` names the process that trains there.

The lock file is created atomically (O_CREAT | O_EXCL) and holds "<pid> <host>". A second run on
the same workdir stops at once with one line naming the holder; a lock whose process no longer
exists on this host (the run was killed with SIGKILL, the machine rebooted) is stale and taken
over with a warning. A holder on another host cannot be checked from here, so it counts as live
and the message says which file to delete if that run is gone.
"""

from __future__ import annotations

import contextlib
import os
import socket
from typing import Iterator

from absl import logging

LOCK_NAME = "run.lock"


def _holder(path: str) -> tuple[int, str] | None:
  """(pid, host) from the lock file, or None when it is unreadable or malformed."""
  try:
    with open(path, encoding="utf-8") as f:
      pid, host = f.read().split()
    return int(pid), host
  except (OSError, ValueError):
    return None


def alive(pid: int) -> bool:
  """Whether process `pid` exists on this host (also shared by `temporaries`)."""
  try:
    os.kill(pid, 0)
  except ProcessLookupError:
    return False
  except PermissionError:
    return True  # it exists, under another user
  return True


def acquire(workdir: str) -> str:
  """Creates the lock of `workdir` for this process; returns its path. ValueError (one line)
  when a live run holds it."""
  path = os.path.join(workdir, LOCK_NAME)
  host, pid = socket.gethostname(), os.getpid()
  for _ in range(3):  # a stale lock removed by two runs at once: O_EXCL decides the winner
    try:
      fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
    except FileExistsError:
      holder = _holder(path)
      if holder is not None and not (holder[1] == host and not alive(holder[0])):
        raise ValueError(
            f"--workdir: {workdir} is in use by another run (pid {holder[0]} on {holder[1]}, "
            f"{path}); wait for it to finish or stop it (delete the file only if that run is "
            "gone)") from None
      logging.warning("Taking over the stale lock %s (%s)", path,
                      "unreadable" if holder is None
                      else f"pid {holder[0]} no longer runs on {holder[1]}")
      with contextlib.suppress(FileNotFoundError):
        os.remove(path)
      continue
    except OSError as error:
      raise ValueError(f"--workdir: cannot create {path}: {error.strerror or error}") from None
    with os.fdopen(fd, "w", encoding="utf-8") as f:
      f.write(f"{pid} {host}\n")
    return path
  raise ValueError(f"--workdir: cannot take the lock {path}: other runs keep taking it")


def release(path: str) -> None:
  """Removes the lock if this process still holds it."""
  if _holder(path) == (os.getpid(), socket.gethostname()):
    with contextlib.suppress(FileNotFoundError):
      os.remove(path)


@contextlib.contextmanager
def held(workdir: str, enabled: bool = True) -> Iterator[None]:
  """The lock of `workdir` for the duration of the block (`enabled`: on the chief process only;
  the other processes of a multi-host run train in the same workdir by design)."""
  if not enabled:
    yield
    return
  path = acquire(workdir)
  try:
    yield
  finally:
    release(path)
