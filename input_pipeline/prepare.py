"""Prepares a video dataset (TFDS array_record, one PNG record per frame) and prints a summary.

  python -m input_pipeline.prepare --config=configs/dancefashion.py
  python -m input_pipeline.prepare --name=folder --manual_dir=DIR --data_dir=./data/tfds \
      --resolution=256 [--min_driving_offset=60] [--num_workers=8]
  python -m input_pipeline.prepare --name=synthetic --manual_dir=./data/synthetic \
      --data_dir=./data/tfds --resolution=64 --min_driving_offset=8 --num_videos=40 \
      --num_test_videos=4 --num_frames=48 --background=studio --seed=0

Without --config the defaults of configs/default.py are used; the other flags override the config's
`data` fields (--num_videos, --num_test_videos, --num_frames, --background, --seed and
--person_seed those of `data.synthetic`). Synthetic data is rendered first if its folder has none (see
`input_pipeline.datasets`: a subfolder of --manual_dir named by the settings); the command that
`python -m internet_jax.evaluate` prints when a checkpoint's data is missing is of this form.
Training prepares on first use anyway; this makes it explicit (and lets a multi-host job prepare
once, before training). An already prepared dataset is reused, not rebuilt: delete its directory
to prepare it again. Bad input (data, and the file system's refusals: a file where a folder
belongs, a name too long, a full disk) ends with one line `prepare: ...` and exit status 1;
SIGTERM/SIGINT with one line `interrupted: ...` and exit status 128 + the signal, the partial
dataset removed, and a run killed with SIGKILL leaves TFDS's incomplete.* folders (and a partial
synthetic folder) to the next run, which removes them with a warning.
Frame images are read by `input_pipeline.video_io.read_image` (EXIF orientation applied, CMYK
converted, at most 16384 x 16384 pixels unless $INTERNET_JAX_MAX_IMAGE_PIXELS says otherwise).
"""

from __future__ import annotations

from absl import app
from absl import flags
from ml_collections import config_flags

_CONFIG = config_flags.DEFINE_config_file(
    "config", None, "Experiment config file (uses its `data` fields).", lock_config=False)
_NAME = flags.DEFINE_enum("name", None, ["dancefashion", "folder", "synthetic"], "data.name")
_MANUAL_DIR = flags.DEFINE_string("manual_dir", None, "data.manual_dir: train/ and test/ of videos")
_DATA_DIR = flags.DEFINE_string("data_dir", None, "data.data_dir: where the dataset is prepared")
_RESOLUTION = flags.DEFINE_integer("resolution", None, "data.resolution: frame size R (R x R)")
_MIN_DRIVING_OFFSET = flags.DEFINE_integer(
    "min_driving_offset", None, "data.min_driving_offset: videos need at least this + 2 frames")
_SYNTHETIC = (
    ("num_videos", flags.DEFINE_integer("num_videos", None, "data.synthetic.num_videos")),
    ("num_test_videos", flags.DEFINE_integer("num_test_videos", None,
                                             "data.synthetic.num_test_videos")),
    ("num_frames", flags.DEFINE_integer("num_frames", None, "data.synthetic.num_frames")),
    ("background", flags.DEFINE_string("background", None, "data.synthetic.background")),
    ("seed", flags.DEFINE_integer("seed", None, "data.synthetic.seed")),
    ("person_seed", flags.DEFINE_integer(
        "person_seed", None, "data.synthetic.person_seed: one person in every video (-1: off)")),
)
_NUM_WORKERS = flags.DEFINE_integer(
    "num_workers", None, "processes decoding/encoding videos (default: data.prepare_workers or 0)")


def _data_config():
  if _CONFIG.value is not None:
    config = _CONFIG.value
  else:
    from configs import default  # pylint: disable=g-import-not-at-top
    config = default.get_config()
  data = config.data
  for field, flag in (("name", _NAME), ("manual_dir", _MANUAL_DIR), ("data_dir", _DATA_DIR),
                      ("resolution", _RESOLUTION), ("min_driving_offset", _MIN_DRIVING_OFFSET)):
    if flag.value is not None:
      data[field] = flag.value
  for field, flag in _SYNTHETIC:
    if flag.value is not None:
      data.synthetic[field] = flag.value
  return data


def summary(builder) -> str:
  """A few lines: where the dataset is, and videos / frames / skipped videos per split."""
  metadata = builder.info.metadata or {}
  lines = [f"{builder.name}/{builder.builder_config.name}: {builder.data_dir}",
           f"  resolution {metadata.get('resolution')}, min_frames {metadata.get('min_frames')}"]
  for split, info in builder.info.splits.items():
    videos = len(metadata.get("videos", {}).get(split, []))
    skipped = len(metadata.get("skipped", {}).get(split, []))
    lines.append(f"  {split}: {videos} videos, {info.num_examples} frames, {skipped} skipped "
                 "(shorter than min_frames)")
  return "\n".join(lines)


def main(argv):
  del argv  # stray words are refused by errors.flags_parser
  from input_pipeline import datasets  # pylint: disable=g-import-not-at-top
  from internet_jax import cli, errors, temporaries  # pylint: disable=g-import-not-at-top
  cli.start(verbose=False)
  data = _data_config()
  num_workers = _NUM_WORKERS.value
  if num_workers is None:
    num_workers = int(data.get("prepare_workers", 0))
  with errors.user_errors(prefix="prepare"), errors.writing_to(data.data_dir), \
      temporaries.stop_on_signals("the preparation"):
    builder = datasets.prepare(data, num_workers=num_workers)
  print(summary(builder))
  if data.name == "synthetic":
    print(f"  rendered videos: {datasets.synthetic_dir(data)}")


def run() -> None:
  """The `internet-jax-prepare` console script."""
  from internet_jax import errors  # pylint: disable=g-import-not-at-top
  app.run(main, flags_parser=errors.flags_parser("config"))


if __name__ == "__main__":
  run()
