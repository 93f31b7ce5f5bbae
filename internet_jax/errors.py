"""User-facing errors: one line naming the file or field, a non-zero exit, no traceback."""

import contextlib
import sys

from absl import logging

# Errors that describe bad input (config values, files, data) rather than bugs in this code.
USER_ERRORS = (ValueError, FileNotFoundError, NotADirectoryError, PermissionError,
               FloatingPointError)


@contextlib.contextmanager
def user_errors(verbose: bool = False, exit_code: int = 1):
  """Turns a user error into `error: <message>` on stderr and exit `exit_code`."""
  try:
    yield
  except USER_ERRORS as error:
    if verbose:
      raise
    logging.flush()
    message = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    print(f"error: {message}", file=sys.stderr)
    sys.exit(exit_code)
