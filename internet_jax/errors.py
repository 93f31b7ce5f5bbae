"""User-facing errors: one line naming the file or field, a non-zero exit, no traceback.

Entry points run their work inside `user_errors(verbose=...)` and parse their flags with
`flags_parser(...)` (`app.run(main, flags_parser=errors.flags_parser("config"))`), so that bad
input - a config field, a config file, a flag value, a data file - ends with exactly one line
`error: ...` on stderr and exit status 1; `--verbose` shows the full traceback instead.
Every `OSError` counts as bad input (a folder where a file belongs or the reverse, a name too
long, no permission, a read-only or full disk): its line names the path the OS names
(`os_error_message`; `writing_to` supplies one where the OS names none).
A run stopped by SIGTERM/SIGINT after saving its checkpoint raises `Interrupted`, which ends with
one line `interrupted: ...` and exit status 128 + the signal number (the shell convention, so that
a scheduler sees the run did not finish and restarts it; a rerun resumes).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import signal
import sys
import sysconfig
import traceback
from typing import Callable, Sequence

from absl import flags
from absl import logging

# Errors that describe bad input (config values, files, data, the machine's disks) rather than
# bugs in this code. OSError is the whole family: a full disk is as much the user's to fix as a
# missing file.
USER_ERRORS = (ValueError, OSError, FloatingPointError)


class Interrupted(Exception):
  """Training stopped on a signal after its checkpoint was saved; rerunning resumes."""

  def __init__(self, message: str, signum: int):
    super().__init__(message)
    self.signum = signum

  @property
  def exit_code(self) -> int:
    return 128 + int(self.signum)


def one_line(error: BaseException | str) -> str:
  """The message of `error` on one line (the type name when it has none)."""
  text = error if isinstance(error, str) else str(error)
  text = " ".join(text.split())
  if not text and isinstance(error, BaseException):
    return type(error).__name__
  return text


def os_error_message(error: OSError) -> str:
  """`<path>: <reason>` for an OSError that names its file(s) (`open`, `mkdir`, `rename`, ...),
  else its own message on one line."""
  if error.strerror and error.filename is not None:
    paths = os.fsdecode(error.filename)
    if error.filename2 is not None:
      paths += f" -> {os.fsdecode(error.filename2)}"
    return f"{paths}: {error.strerror}"
  return one_line(error.strerror or error)


@contextlib.contextmanager
def writing_to(path: str | os.PathLike):
  """OSErrors raised inside that name no file are given `path`: a write() refused by a full disk
  says only "No space left on device", not where."""
  try:
    yield
  except OSError as error:
    if error.filename is None and error.strerror:  # an errno error; others carry their message
      error.filename = os.fspath(path)
    raise


def _message(error: BaseException) -> str:
  """The first line of a user error's message (multi-line ones, from TFDS or OpenCV, repeat it
  with detail); the type name when it has none."""
  if isinstance(error, OSError):
    return os_error_message(error)
  text = str(error).strip()
  return text.splitlines()[0] if text else type(error).__name__


def _report(message: str, exit_code: int, prefix: str = "error") -> None:
  """Prints `prefix: message` on stderr (after pending logs) and exits."""
  logging.flush()
  # One write, newline included: other threads' output cannot split the line.
  sys.stderr.write(f"{prefix}: {message}\n")
  sys.stderr.flush()
  sys.exit(exit_code)


def reject_extra_arguments(argv: Sequence[str]) -> None:
  """absl hands over everything that is not a flag; a stray word is an error, not ignored."""
  if len(argv) > 1:
    _report(f"unexpected arguments: {' '.join(argv[1:])} (flags are --name=value)", 1)


@contextlib.contextmanager
def user_errors(verbose: bool = False, exit_code: int = 1, prefix: str = "error"):
  """Turns a user error into `<prefix>: <message>` on stderr and exit `exit_code`."""
  try:
    yield
  except Interrupted as interrupted:
    # Not an error: the checkpoint is saved; the exit status says the run did not finish.
    _report(one_line(interrupted), interrupted.exit_code, prefix="interrupted")
  except USER_ERRORS as error:
    if verbose:
      raise
    _report(_message(error), exit_code, prefix)


def check_positive(flag_values, *names: str) -> None:
  """ValueError naming the first of the integer flags `names` set to zero or less (an unset
  flag is None and passes)."""
  for name in names:
    value = getattr(flag_values, name)
    if value is not None and value < 1:
      raise ValueError(f"--{name}: must be at least 1, got {value}")


# ---------------------------------------------------------------------------------------------
# Output paths, checked before any work: a run refused for its output has written nothing.


def check_writable(folder: str | os.PathLike, shown: str | os.PathLike) -> None:
  """ValueError naming `shown` unless `folder` can be created and written: its nearest existing
  ancestor must be a writable directory. Nothing is created here, so a run that fails later
  leaves no empty folders behind."""
  existing = os.path.abspath(folder)
  while not _exists(existing):
    existing = os.path.dirname(existing)
  if not os.path.isdir(existing):
    raise ValueError(f"{shown}: cannot write here ({existing} is not a directory)")
  if not os.access(existing, os.W_OK | os.X_OK):
    raise ValueError(f"{shown}: cannot write here ({existing} is not writable)")


def _exists(path: str) -> bool:
  """os.path.exists, except that a name too long or a loop of links is an OSError naming it."""
  try:
    os.stat(path)
  except (FileNotFoundError, NotADirectoryError):
    return False
  return True


def _same_file(a: str, b: str) -> bool:
  try:
    return os.path.samefile(a, b)  # also hard links
  except OSError:
    return False  # one of them does not exist (yet)


def refuse_inputs(output: str | os.PathLike, inputs: dict[str, str | os.PathLike | None], *,
                  folders: bool = False) -> None:
  """ValueError naming `output` when it is one of `inputs` ({what: path}, None skipped), however
  spelt (symlinks, `./`, `..`, hard links); with `folders`, also when it lies inside one."""
  target = os.path.realpath(output)
  for what, path in inputs.items():
    if path is None or not str(path):
      continue
    resolved = os.path.realpath(path)
    if target == resolved or _same_file(target, resolved):
      where = "is"
    elif folders and target.startswith(resolved.rstrip(os.sep) + os.sep):
      where = "is inside"
    else:
      continue
    raise ValueError(f"{output}: {where} the {what} {path}; inputs are never overwritten, "
                     "choose another output")


# ---------------------------------------------------------------------------------------------
# Flag parsing: absl prints multi-line usage text or a traceback for bad config overrides.


def _is_verbose(argv: Sequence[str]) -> bool:
  """--verbose on the command line (read before the flags are parsed)."""
  return any(arg in ("--verbose", "--verbose=true", "--verbose=True", "--verbose=1")
             for arg in argv)


def _unknown_field_message(error: BaseException, argv: Sequence[str],
                           config_names: Sequence[str]) -> str:
  """`--config.a.b=1` where b does not exist: name the override and the missing field."""
  text = str(error).replace("\\'", "'").replace("\\n", " ")
  keys = re.findall(r"'([A-Za-z0-9_]+)'", text)
  hint = re.search(r'Did you mean "([^"]+)"', text)
  for arg in argv:
    for name in config_names:
      prefix = f"--{name}."
      if arg.startswith(prefix):
        path = arg[len(prefix):].split("=", 1)[0]
        if not keys or keys[0] in path.split("."):
          suggestion = f"; did you mean {hint.group(1)!r}?" if hint else ""
          return (f"{prefix}{path}: the config has no field {keys[0] if keys else path!r}"
                  f"{suggestion}")
  return f"unknown config field {keys[0] if keys else one_line(error)}"


def _config_file_message(error: BaseException, argv: Sequence[str], name: str) -> str:
  """Config files load lazily; their errors carry the loader's multi-line report."""
  lines = [line.strip() for line in str(error).splitlines() if line.strip()]
  given = next((arg.split("=", 1)[1] for arg in argv if arg.startswith(f"--{name}=")), "")
  errno_line = next((line for line in lines if line.startswith("[Errno")), None)
  if errno_line:
    return f"--{name}={given}: cannot load the config file: {errno_line}"
  return f"--{name}={given}: {lines[-1] if lines else type(error).__name__}"


def _config_code_message(error: BaseException) -> str:
  """`FILE:LINE: Type: message` for an exception raised while a config file loaded: the line is
  the innermost one in a file of the user's (not Python's own or an installed package's)."""
  where = None
  if isinstance(error, SyntaxError) and error.filename:
    where = f"{error.filename}:{error.lineno}"
  else:
    for frame, line in traceback.walk_tb(error.__traceback__):
      if not _is_library_file(frame.f_code.co_filename):
        where = f"{frame.f_code.co_filename}:{line}"
  reason = error.msg if isinstance(error, SyntaxError) else one_line(error)
  return f"{where or 'config file'}: {type(error).__name__}: {reason}"


def _is_library_file(path: str) -> bool:
  """Python's standard library, an installed package or a frozen module."""
  if path.startswith("<"):
    return True
  libraries = {sysconfig.get_paths()[name] for name in ("stdlib", "purelib", "platlib")}
  path = os.path.abspath(path)
  return any(path.startswith(os.path.join(folder, "")) for folder in libraries)


def _flag_error_message(error: flags.Error) -> str:
  """One line for absl's flag errors, which may embed a traceback."""
  lines = [line.strip() for line in str(error).splitlines() if line.strip()]
  if len(lines) > 1 and "Traceback" in str(error):
    # A config file's get_config raised: `flag --config=X: Error whilst parsing ...` + traceback.
    match = re.match(r"flag (\S+): ", lines[0])
    flag = match.group(1) if match else lines[0]
    reason = re.sub(r"^[A-Za-z_.]*(Error|Exception): ", "", lines[-1])
    return f"{flag}: {reason}"
  return one_line(error)


def _resolve_config_names(argv: list[str], config_names: tuple[str, ...]) -> list[str]:
  """`--config=synthetic:tiny` -> `--config=<packaged configs>/synthetic.py:tiny` (also the
  two-argument form `--config synthetic`), for each config flag; see `configs.resolve`."""
  import configs  # pylint: disable=g-import-not-at-top
  argv = list(argv)
  for i, argument in enumerate(argv):
    for name in config_names:
      if argument.startswith(f"--{name}="):
        argv[i] = f"--{name}=" + configs.resolve(argument[len(name) + 3:])
      elif argument == f"--{name}" and i + 1 < len(argv):
        argv[i + 1] = configs.resolve(argv[i + 1])
  return argv


def flags_parser(*config_names: str) -> Callable[[list[str]], list[str]]:
  """An `app.run(..., flags_parser=)` that reports bad flags and config overrides in one line.

  Args:
    *config_names: names of `config_flags.DEFINE_config_file` flags; their files are loaded here
      (they load lazily), so that a missing or broken config file is a flag error.
  """

  def parse(argv: list[str]) -> list[str]:
    verbose = _is_verbose(argv)
    argv = _resolve_config_names(argv, config_names)
    try:
      remaining = flags.FLAGS(argv)
      for name in config_names:
        # A config that failed to load is a stand-in raising on first attribute access.
        getattr(getattr(flags.FLAGS, name), "to_dict", None)
    except flags.Error as error:
      if verbose:
        raise
      _report(_flag_error_message(error), 1)
    except (AttributeError, KeyError) as error:
      # ml_collections: an override of a field the (locked) config does not have.
      if verbose:
        raise
      _report(_unknown_field_message(error, argv, config_names), 1)
    except (OSError, ValueError, TypeError) as error:
      if verbose:
        raise
      _report(_config_file_message(error, argv, config_names[0] if config_names else "config"), 1)
    except Exception as error:  # pylint: disable=broad-except
      # A config file is code: a syntax error, a failed import, a division by zero in it.
      if verbose or not config_names:
        raise
      _report(_config_code_message(error), 1)
    reject_extra_arguments(remaining)
    return remaining

  return parse


class ArgumentParser(argparse.ArgumentParser):
  """argparse for the entry points that take positional arguments: a bad argument is one line
  `error: <argparse's message>`, not the usage text, with argparse's exit status 2."""

  def error(self, message: str):
    _report(f"{one_line(message)} (see --help)", 2)


def signal_name(signum: int) -> str:
  """"SIGTERM" for 15, and so on."""
  try:
    return signal.Signals(signum).name
  except ValueError:
    return f"signal {signum}"
