"""Training entry point: `python -m internet_jax.main --config=synthetic [--workdir=DIR]`, or
the `internet-jax-train` console script.

Intentionally thin: flags, multi-host start-up and logging; the work is in `train.py`, which tests
and notebooks import directly. `--workdir` defaults to ./workdirs/<config file stem>
(`default_workdir`) and a run in an existing workdir resumes from its newest checkpoint.

Exit status: 0 when training finished; 1 with one line `error: ...` on stderr for bad input (config
file, field or value, data, weights, workdir, a checkpoint of another config; `--verbose` shows the
traceback); 128 + N with one line `interrupted: ...` after SIGTERM (N = 15) or SIGINT (N = 2) has
saved a checkpoint at the current step (running the same command again resumes from it).
"""

import os
import sys

from absl import app, flags, logging
from ml_collections import config_flags

import configs
from internet_jax import errors

FLAGS = flags.FLAGS
config_flags.DEFINE_config_file(
    "config", None,
    f"The training config: a packaged config's name ({', '.join(configs.available())}) or a "
    "config file's path, with an optional :variant (synthetic:tiny, ablations:ss4x_a); any "
    "field is overridden by --config.FIELD=VALUE (--config.batch_size=8).", lock_config=True)
flags.DEFINE_bool("print_config", False, "Print the resolved config (overrides applied) and exit.")
flags.DEFINE_string("workdir", None, "Checkpoints, logs and samples (default ./workdirs/<config stem>).")
flags.DEFINE_string("coordinator_address", None, "Multi-host: host:port of process 0 (jax.distributed).")
flags.DEFINE_integer("num_processes", None, "Multi-host: total number of processes.")
flags.DEFINE_integer("process_id", None, "Multi-host: index of this process.")
flags.DEFINE_bool("verbose", False, "Show third-party INFO logs and full tracebacks for "
                  "configuration and data errors.")
flags.mark_flags_as_required(["config"])


def default_workdir(config_argument: str) -> str:
  """./workdirs/<config stem>, plus _<arg> for parameterised configs (`ablations.py:ss4x_a`);
  a method's config folder prefixes it (configs/bdmm/synthetic.py -> workdirs/bdmm_synthetic),
  so that methods' runs of the same data do not share a workdir."""
  path, _, arg = config_argument.partition(":")
  stem = os.path.splitext(os.path.basename(path))[0]
  folder = os.path.basename(os.path.dirname(os.path.normpath(path)))
  if folder and folder != "configs":
    stem = f"{folder}_{stem}"
  return os.path.join("workdirs", f"{stem}_{arg}" if arg else stem)


def initialize_distributed() -> None:
  """Explicit flags, else auto-detection on TPU pods / SLURM / Kubernetes, else one process."""
  import jax  # pylint: disable=g-import-not-at-top
  if FLAGS.coordinator_address:
    jax.distributed.initialize(FLAGS.coordinator_address, FLAGS.num_processes, FLAGS.process_id)
    return
  try:
    jax.distributed.initialize()
  except (ValueError, RuntimeError):
    pass  # a single process: no cluster environment was detected


def main(argv):
  del argv  # stray words are refused by errors.flags_parser
  if FLAGS.print_config:
    sys.stdout.write(str(FLAGS.config))
    return
  import jax  # pylint: disable=g-import-not-at-top  (lazily: --help returns at once)
  from internet_jax import cli  # pylint: disable=g-import-not-at-top
  cli.start(FLAGS.verbose)
  jax.config.config_with_absl()
  initialize_distributed()
  from internet_jax import train  # after distributed start-up: importing TF/grain touches devices

  workdir = FLAGS.workdir or default_workdir(FLAGS["config"].config_filename)
  logging.info("JAX %s, %d process(es), %d device(s): %s", jax.__version__, jax.process_count(),
               jax.device_count(), jax.devices())
  logging.info("workdir: %s", workdir)
  # Bad input ends in one line `error: ...` (exit 1); SIGTERM/SIGINT in `interrupted: ...` after
  # the checkpoint is saved (exit 128 + signal); --verbose shows tracebacks instead.
  with errors.user_errors(verbose=FLAGS.verbose):
    train.train_and_evaluate(FLAGS.config, workdir)


def run() -> None:
  """The `internet-jax-train` console script."""
  # Config files and `--config.FIELD=V` overrides are checked while parsing: one line each.
  app.run(main, flags_parser=errors.flags_parser("config"))


if __name__ == "__main__":
  run()
