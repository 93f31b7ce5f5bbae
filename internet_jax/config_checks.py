"""Small helpers for one-line config errors, `config.FIELD: problem` (shared by the trainer and
the methods' `validate_config`)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np


def require(condition: bool, field: str, problem: str) -> None:
  """A one-line ValueError `config.FIELD: problem` unless `condition`."""
  if not condition:
    raise ValueError(f"config.{field}: {problem}")


def is_int(value: Any) -> bool:
  """An integer that is not a bool (ConfigDict fields may be numpy integers)."""
  return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def field(config, name: str) -> Any:
  """The value of a dotted field name such as "loss.perceptual"."""
  value = config
  for part in name.split("."):
    value = value[part]
  return value


def require_int(config, name: str, minimum: int) -> None:
  """config.NAME is an integer >= minimum."""
  value = field(config, name)
  require(is_int(value) and value >= minimum, name,
          f"must be an integer >= {minimum}, got {value!r}")


def require_weight(config, name: str) -> None:
  """config.NAME is a finite number >= 0 (a negative loss weight would maximise the term)."""
  value = field(config, name)
  require(isinstance(value, (int, float, np.number)) and math.isfinite(value) and value >= 0,
          name, f"a loss weight must be finite and >= 0, got {value!r}")


def require_choice(config, name: str, known, what: str) -> None:
  """config.NAME is one of `known`."""
  value = field(config, name)
  require(value in known, name, f"unknown {what} {value!r}; known: {', '.join(known)}")
