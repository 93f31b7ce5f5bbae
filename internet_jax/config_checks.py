"""Small helpers for one-line config errors, `config.FIELD: problem` (shared by the trainer and
the methods' `validate_config`)."""

from __future__ import annotations

import dataclasses
import fnmatch
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


# ---------------------------------------------------------------------------------------------
# Every numeric field of a config: a walk over the tree with rules by field name.


@dataclasses.dataclass(frozen=True)
class Bound:
  """The finite values a numeric field accepts: [low, high], an end left out with `*_open`,
  integers only with `integer`, and `also` values outside that mean something (`meaning`)."""
  low: float = -math.inf
  high: float = math.inf
  low_open: bool = False
  high_open: bool = False
  integer: bool = False
  also: tuple = ()
  meaning: str = ""

  def allows(self, value: Any) -> bool:
    if self.integer and not is_int(value):
      return False
    if value in self.also:
      return True
    return (math.isfinite(value)
            and (value > self.low if self.low_open else value >= self.low)
            and (value < self.high if self.high_open else value <= self.high))

  def describe(self) -> str:
    """"an integer >= 1", "a number in [0, 1)", "a finite number", ..."""
    kind = "an integer" if self.integer else "a number"
    if self.high < math.inf:
      text = (f"{kind} in {'(' if self.low_open else '['}{self.low:g}, "
              f"{self.high:g}{')' if self.high_open else ']'}")
    elif self.low > -math.inf:
      text = f"{kind} {'>' if self.low_open else '>='} {self.low:g}"
    else:
      text = f"a finite {kind.split()[1]}"
    return f"{text} ({self.meaning})" if self.meaning else text


COUNT = Bound(low=1, integer=True)  # sizes, counts, widths, periods in steps, frame numbers
POSITIVE = Bound(low=0, low_open=True)  # rates, temperatures, variances
NON_NEGATIVE = Bound(low=0)  # loss weights, augmentation strengths, thresholds
FRACTION = Bound(low=0, high=1, high_open=True)  # decays and Adam's betas


def _zero_means(meaning: str) -> Bound:
  return Bound(low=0, integer=True, meaning=meaning)


# (fnmatch patterns of dotted field names, rule): the first match decides. Fields where 0 or -1
# means something come first; an integer no pattern names is a COUNT, a float must be finite.
NUMERIC_RULES = (
    (("num_train_steps",), Bound(low=1, integer=True, also=(-1,), meaning="-1 for num_epochs")),
    (("model.motion.detector_resolution",), _zero_means("0 = model.base_resolution")),
    (("profile_steps", "image_every_steps"), _zero_means("0 = off")),
    (("eval_every_steps",), _zero_means("0 = at the start and end only")),
    (("num_eval_videos",), _zero_means("0 = no evaluation")),
    (("data.worker_count", "data.prepare_workers"), _zero_means("0 = in the main process")),
    (("data.synthetic.person_seed",), Bound(low=-1, integer=True, meaning="-1 = off")),
    (("model.uv_num_blocks", "model.translation_num_blocks", "d2g.static_epochs"),
     _zero_means("")),
    (("model.feature_channels",), _zero_means("0 = an RGB texture")),
    (("d2g.pose_thickness",), Bound(low=0, meaning="0 = scaled with the resolution")),
    (("d2g.lr_decay_per_epoch",), Bound(low=0, low_open=True, high=1)),
    (("data.min_driving_offset", "data.synthetic.num_test_videos", "*seed"), _zero_means("")),
    (("data.synthetic.num_frames",), Bound(low=2, integer=True, meaning="flows need two frames")),
    (("optimizer.b1", "optimizer.b2", "optimizer.ema_decay"), FRACTION),
    (("data.color_jitter.hue",), Bound(low=0, high=0.5, meaning="of the hue circle")),
    (("loss.*_scales",), Bound(low=0, low_open=True, high=1)),  # image pyramid scales
    (("loss.composition_floor_share",), Bound(low=0, low_open=True, high=1,
                                              meaning="of the frame")),
    (("loss.anchor_composition_share",), Bound(low=0, low_open=True, high=1,
                                               meaning="of the weight at the anchor")),
    (("optimizer.*_lr", "optimizer.lr_decay_factor", "model.motion.temperature",
      "model.motion.anchor_variance", "bdmm.heatmap_sigma"), POSITIVE),
    (("loss.tps_points",), COUNT),
    (("loss.*", "temporal.weight", "data.color_jitter.*", "data.fb_consistency_*",
      "data.motion_boundary_*", "optimizer.lr_decay_epochs"), NON_NEGATIVE),
)


def numeric_rule(name: str, value: Any) -> Bound:
  """The rule of the field `name` (dotted) holding `value` (`NUMERIC_RULES`)."""
  for patterns, rule in NUMERIC_RULES:
    if any(fnmatch.fnmatchcase(name, pattern) for pattern in patterns):
      return rule
  return COUNT if is_int(value) else Bound()


def _is_number(value: Any) -> bool:
  return isinstance(value, (int, float, np.number)) and not isinstance(value, (bool, np.bool_))


def _numeric_fields(config, prefix: str = ""):
  """(dotted name, value) of every number or tuple of numbers in the tree `config`."""
  for key, value in config.items():
    name = f"{prefix}{key}"
    if hasattr(value, "items"):
      yield from _numeric_fields(value, f"{name}.")
    elif _is_number(value) or (isinstance(value, (tuple, list)) and value
                               and all(_is_number(v) for v in value)):
      yield name, value


def check_numeric_fields(config) -> None:
  """A one-line ValueError naming the first numeric field outside its rule (`NUMERIC_RULES`):
  NaN and inf anywhere, a negative size, a decay of 1, ... Tuples are checked element-wise."""
  for name, value in _numeric_fields(config):
    elements = value if isinstance(value, (tuple, list)) else (value,)
    rule = numeric_rule(name, elements[0])
    if not all(rule.allows(element) for element in elements):
      every = "every element " if isinstance(value, (tuple, list)) else ""
      require(False, name, f"{every}must be {rule.describe()}, got {value!r}")
