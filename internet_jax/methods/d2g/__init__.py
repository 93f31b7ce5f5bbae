"""D2G-Net ("Robust Pose Transfer with Dynamic Details using Neural Video Rendering": a UV
generator, a learnable hybrid texture, a translation net and a learnable background, trained per
person) as a `Method`: networks (`networks.py`), inputs (`inputs.py`), objective and optimisers
(`objective.py`), frame-by-frame inference (`renderer.py`), panels (`summaries.py`)."""

from internet_jax import method
from internet_jax.methods.d2g import inputs, objective, renderer, summaries

METHOD = method.Method(
    validate_config=objective.validate_config,
    build=objective.build,
    batch_shapes=inputs.pair_batch_shapes,
    init_params=objective.init_params,
    optimizers=objective.create_optimizers,
    loss_fn=objective.loss_fn,
    example_fn=inputs.pair_example_fn,
    renderer=renderer.create_renderer,
    summary_images=summaries.summary_images,
    inference_groups=("g",),
    progress_metrics=("g/loss", "d/loss", "g/l2", "g/uv"),
    create_constants=objective.vgg_constants,
    loss_reads_epoch=True,
)
