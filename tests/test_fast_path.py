"""The fast path: a bfloat16 train step with float32 parameters, rematerialisation that
changes nothing but memory, no host transfers inside the step, and a donated state.

All on the tiny synthetic config; the train step compiles once for the module (the bfloat16 one).
"""
import functools
import types

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from configs import default, synthetic
from internet_jax import geometry, sharding, train
from internet_jax.methods.internet import generator as generator_lib
from internet_jax.methods.internet import motion
from internet_jax.methods.internet.model import INTERnet

REMAT_PRIMITIVES = ("checkpoint", "remat", "remat2")


def count_primitives(jaxpr, names) -> int:
  """Equations whose primitive is in `names`, in a jaxpr and all its sub-jaxprs."""
  jaxpr = getattr(jaxpr, "jaxpr", jaxpr)
  total = 0
  for eqn in jaxpr.eqns:
    total += eqn.primitive.name in names
    for value in eqn.params.values():
      for item in value if isinstance(value, (list, tuple)) else (value,):
        if hasattr(item, "eqns") or hasattr(getattr(item, "jaxpr", None), "eqns"):
          total += count_primitives(item, names)
  return total


def count_bf16_convolutions(jaxpr) -> int:
  """conv_general_dilated equations with bfloat16 operands, sub-jaxprs included."""
  jaxpr = getattr(jaxpr, "jaxpr", jaxpr)
  total = 0
  for eqn in jaxpr.eqns:
    if eqn.primitive.name == "conv_general_dilated":
      total += all(v.aval.dtype == jnp.bfloat16 for v in eqn.invars)
    for value in eqn.params.values():
      for item in value if isinstance(value, (list, tuple)) else (value,):
        if hasattr(item, "eqns") or hasattr(getattr(item, "jaxpr", None), "eqns"):
          total += count_bf16_convolutions(item)
  return total


def random_batch(config, seed: int = 0) -> dict[str, np.ndarray]:
  """A host batch with the pipeline's contract (uint8 frames, normalised flow, 0/1 mask)."""
  rng = np.random.default_rng(seed)
  size, resolution = config.batch_size, config.data.resolution
  batch = {name: rng.integers(0, 256, (size, resolution, resolution, 3), dtype=np.uint8)
           for name in ("source", "driving", "previous")}
  batch["flow"] = rng.normal(0.0, 0.05, (size, resolution, resolution, 2)).astype(np.float32)
  batch["flow_confidence"] = (rng.random((size, resolution, resolution, 1)) > 0.1).astype(
      np.float32)
  return batch


@pytest.fixture(scope="module")
def bf16_training():
  """The tiny synthetic config with the paper's losses (G, D and VGG all run) in bfloat16: jitted
  state init, jitted step, device batch."""
  config = synthetic.get_config("tiny,paper_losses")
  config.loss.allow_random_vgg = True
  config.loss.pyramid_scales = (1.0,)  # one VGG pass per image: less compilation
  config.model.dtype = "bfloat16"
  mesh = sharding.create_mesh()
  training = train.create_training(config, mesh, 10)
  make_step = functools.partial(train.make_train_step, config, training.method,
                                training.networks, training.txs, mesh)
  return types.SimpleNamespace(
      config=config, init=training.init, make_step=make_step, step=training.step,
      batch=sharding.put_batch(random_batch(config), mesh), vgg_params=training.constants)


# --- (a) bfloat16 compute, float32 parameters ----------------------------------------------------


def test_bfloat16_step_is_finite_and_keeps_float32_params(bf16_training):
  t = bf16_training
  state = t.init()
  # The step really computes in bfloat16: every G and D convolution (forward and backward) has
  # bfloat16 operands (the frozen VGG-19 runs in float32, as train.py builds it).
  jaxpr = t.step.trace(state, t.batch, t.vgg_params).jaxpr
  kernels = [p for p, _ in jax.tree_util.tree_leaves_with_path(state.params)
             if "kernel" in jax.tree_util.keystr(p)]
  assert count_bf16_convolutions(jaxpr) >= len(kernels)

  for _ in range(2):  # the second step starts from updated bfloat16-trained parameters
    state, metrics = t.step(state, t.batch, t.vgg_params)
  values = {name: float(value) for name, value in jax.device_get(metrics).items()}
  assert all(np.isfinite(v) for v in values.values()), values
  assert values["g/grad_norm"] > 0 and values["d/grad_norm"] > 0
  assert int(state.step) == 2
  for name in ("params", "opt_state"):
    dtypes = {x.dtype for x in jax.tree.leaves(getattr(state, name))
              if jnp.issubdtype(x.dtype, jnp.floating)}
    assert dtypes == {jnp.dtype(jnp.float32)}, (name, dtypes)
  assert all(np.isfinite(np.asarray(x)).all() for x in jax.tree.leaves(state.params))


# --- (d) no host round-trips inside the step -----------------------------------------------------


def test_train_step_makes_no_host_transfers(bf16_training):
  t = bf16_training
  state, _ = t.step(t.init(), t.batch, t.vgg_params)  # compiled (or cached) outside the guard
  with jax.transfer_guard("disallow"):
    state, metrics = t.step(state, t.batch, t.vgg_params)
    jax.block_until_ready((state, metrics))
  # A freshly built step traced, compiled and run under the guard: no constant is copied from the
  # host at trace time either (the compile comes from the persistent cache in CI).
  fresh_step = t.make_step()
  with jax.transfer_guard("disallow"):
    state, metrics = fresh_step(state, t.batch, t.vgg_params)
    jax.block_until_ready((state, metrics))
  assert int(state.step) == 3


# --- (e) the state is donated ---------------------------------------------------------------------


def test_train_step_donates_the_state(bf16_training):
  t = bf16_training
  state = t.init()
  old_leaves = jax.tree.leaves(state)
  new_state, _ = t.step(state, t.batch, t.vgg_params)
  jax.block_until_ready(new_state)
  assert all(leaf.is_deleted() for leaf in old_leaves)
  # Only the state: the batch and the VGG parameters are reused by the next step.
  assert not any(x.is_deleted() for x in jax.tree.leaves((t.batch, t.vgg_params)))
  assert not any(x.is_deleted() for x in jax.tree.leaves(new_state))


# --- (b) rematerialisation ------------------------------------------------------------------------

R, BASE, K, B = 32, 16, 3, 2


def _stage_modules(remat: bool):
  """Anchor detector, dense motion and generator at tiny widths, every remat site enabled."""
  return (motion.AnchorDetector(num_anchors=K, block_expansion=8, max_features=16, num_blocks=2,
                                remat=remat),
          motion.DenseMotion(num_anchors=K, block_expansion=8, max_features=16, num_blocks=2,
                             remat=remat),
          generator_lib.Generator(resolution=R, base_resolution=BASE, block_expansion=8,
                                  max_features=16, num_bottleneck_blocks=2, remat=remat))


def _stages_forward(remat: bool, params, source, driving):
  """INTERnet's data flow through the three modules (detect, dense motion, decode)."""
  detector, dense_motion, gen = _stage_modules(remat)
  source_base = geometry.downsample(source, BASE, BASE)
  driving_base = geometry.downsample(driving, BASE, BASE)
  source_anchors = detector.apply(params["detector"], source_base)
  driving_anchors = detector.apply(params["detector"], driving_base)
  dense = dense_motion.apply(params["dense_motion"], source_base, source_anchors, driving_anchors)
  return gen.apply(params["generator"], source, dense["motion"], dense["confidence"])


def _init_stages(remat: bool, source, driving):
  """Parameters of the three stage modules (driving is unused: init needs only shapes)."""
  del driving
  detector, dense_motion, gen = _stage_modules(remat)
  keys = jax.random.split(jax.random.key(0), 3)
  source_base = geometry.downsample(source, BASE, BASE)
  detector_params = detector.init(keys[0], source_base)
  anchors = detector.apply(detector_params, source_base)
  motion_field = jnp.broadcast_to(geometry.coordinate_grid(BASE, BASE), (B, BASE, BASE, 2))
  return {"detector": detector_params,
          "dense_motion": dense_motion.init(keys[1], source_base, anchors, anchors),
          "generator": gen.init(keys[2], source, motion_field, jnp.ones((B, BASE, BASE, 1)))}


def _assert_same_gradients(grads, grads_remat):
  # Recomputation runs the same operations, but XLA fuses the recomputed forward differently, so
  # float32 sums may round differently (measured: <= 3e-8 against gradients up to 0.1). Conv
  # biases in front of an instance norm have zero true gradient and hold only rounding noise, so
  # the tolerance is relative to the largest gradient, not to each leaf.
  scale = max(float(jnp.max(jnp.abs(g))) for g in jax.tree.leaves(grads))
  assert jax.tree.structure(grads) == jax.tree.structure(grads_remat)
  for path, a in jax.tree_util.tree_leaves_with_path(grads):
    b = dict(jax.tree_util.tree_leaves_with_path(grads_remat))[path]
    np.testing.assert_allclose(np.asarray(b), np.asarray(a), rtol=1e-5, atol=1e-5 * scale,
                               err_msg=jax.tree_util.keystr(path))


def test_remat_gives_identical_params_outputs_and_gradients():
  source = jax.random.uniform(jax.random.key(1), (B, R, R, 3))
  driving = jax.random.uniform(jax.random.key(2), (B, R, R, 3))
  params = jax.jit(functools.partial(_init_stages, False))(source, driving)
  # Same parameter tree (names, shapes) with and without remat: checkpoints are interchangeable.
  shapes = jax.eval_shape(functools.partial(_init_stages, True), source, driving)
  assert jax.tree.map(lambda x: (x.shape, x.dtype), shapes) == jax.tree.map(
      lambda x: (x.shape, x.dtype), params)

  results = {}
  for remat in (False, True):
    def loss(p, s, d, remat=remat):
      outputs = _stages_forward(remat, p, s, d)
      return jnp.mean(outputs["prediction"] ** 2), outputs["prediction"]

    traced = jax.jit(jax.value_and_grad(loss, argnums=(0, 1), has_aux=True)).trace(
        params, source, driving)
    regions = count_primitives(traced.jaxpr, REMAT_PRIMITIVES)
    # 2 hourglasses x (2 down + 2 up) + generator (1 down + 2 res + 1 up) = 12 blocks.
    assert (regions > 0) == remat, regions
    (value, prediction), grads = traced.lower().compile()(params, source, driving)
    results[remat] = (value, prediction, grads)
  (value, prediction, grads), (value_r, prediction_r, grads_r) = results[False], results[True]
  np.testing.assert_allclose(prediction_r, prediction, rtol=1e-6, atol=1e-7)
  np.testing.assert_allclose(value_r, value, rtol=1e-6)
  _assert_same_gradients(grads, grads_r)


def _tiny_model_config(remat: bool) -> ml_collections.FrozenConfigDict:
  config = default.get_config()
  config.model.base_resolution = BASE
  config.model.num_anchors = K
  config.model.motion.update(detector_block_expansion=8, detector_max_features=16,
                             detector_num_blocks=2, block_expansion=8, max_features=16,
                             num_blocks=2)
  config.model.generator.update(block_expansion=8, max_features=16, num_bottleneck_blocks=1)
  config.model.remat = remat
  return ml_collections.FrozenConfigDict(config.model)


def test_config_remat_switch_reaches_the_model():
  assert default.get_config().model.remat is False  # off unless a config asks for it
  source = jax.random.uniform(jax.random.key(1), (B, R, R, 3))
  driving = jax.random.uniform(jax.random.key(2), (B, R, R, 3))
  model = INTERnet(resolution=R, config=_tiny_model_config(False))
  params = jax.jit(model.init)(jax.random.key(0), source, driving)

  def gradients(remat: bool):
    net = INTERnet(resolution=R, config=_tiny_model_config(remat))
    loss = lambda p: jnp.mean(net.apply(p, source, driving)["prediction"] ** 2)
    traced = jax.jit(jax.grad(loss)).trace(params)
    return count_primitives(traced.jaxpr, REMAT_PRIMITIVES), traced

  regions, traced_remat = gradients(True)
  assert regions > 0
  plain_regions, traced_plain = gradients(False)
  assert plain_regions == 0
  _assert_same_gradients(traced_plain.lower().compile()(params),
                         traced_remat.lower().compile()(params))


# --- XLA:CPU options of the step ------------------------------------------------------------------


def ynn_convolutions(hlo_text: str) -> int:
  """Convolutions inside YNNPACK fusions of a compiled module's text."""
  bodies, name, lines = {}, None, []
  for line in hlo_text.splitlines():
    if line.rstrip().endswith("{") and line.startswith("%"):
      name, lines = line.split()[0].lstrip("%"), []
    elif line.startswith("}") and name:
      bodies[name] = "\n".join(lines)
      name = None
    elif name:
      lines.append(line)
  called = [line.split("calls=%")[1].split(",")[0].split()[0]
            for line in hlo_text.splitlines() if "__ynn_fusion" in line and "calls=%" in line]
  return sum(bodies.get(c, "").count(" convolution(") for c in called)


@pytest.mark.skipif(jax.default_backend() != "cpu", reason="the options are XLA:CPU's")
def test_cpu_step_keeps_convolutions_out_of_ynnpack_and_computes_the_same():
  config = synthetic.get_config("tiny")
  mesh = sharding.create_mesh()
  training = train.create_training(config, mesh, 10)
  assert train.compiler_options(mesh) == train.CPU_COMPILER_OPTIONS
  batch = sharding.put_batch(random_batch(config), mesh)
  step_fn = functools.partial(train.train_step, method=training.method,
                              networks=training.networks, txs=training.txs, config=config)
  compiled = {options: jax.jit(step_fn, compiler_options=train.compiler_options(mesh)
                               if options else None).lower(
                                   training.init(), batch, training.constants).compile()
              for options in (True, False)}
  assert ynn_convolutions(compiled[True].as_text()) == 0
  assert compiled[True].as_text().count(" convolution(") > 0
  # Without the options XLA:CPU fuses convolutions into YNNPACK: the options change something.
  assert ynn_convolutions(compiled[False].as_text()) > 0
  results = {options: program(training.init(), batch, training.constants)
             for options, program in compiled.items()}
  # Same maths, other convolution kernels, so only float32 rounding differs; the anchors'
  # spatial softmax (temperature 0.1) amplifies it: measured 1.5e-5 on the equivariance loss,
  # <= 6e-6 on the other losses and 4.6e-4 on G's gradient norm ...
  metrics = {options: jax.device_get(result[1]) for options, result in results.items()}
  assert any("grad_norm" in name for name in metrics[True])
  for name, value in metrics[True].items():
    rtol = 2e-3 if name.endswith("grad_norm") else 1e-4
    np.testing.assert_allclose(value, metrics[False][name], rtol=rtol, atol=1e-6, err_msg=name)
  # ... and so do the updated parameters (Adam's first update is about lr * sign(g), so a
  # rounding flip of a near-zero gradient moves that weight by up to 2 lr).
  for with_options, without in zip(jax.tree.leaves(results[True][0].params),
                                   jax.tree.leaves(results[False][0].params)):
    np.testing.assert_allclose(np.asarray(with_options), np.asarray(without), rtol=0,
                               atol=2.5 * config.optimizer.g_lr)


def test_an_xla_without_the_cpu_option_compiles_the_step_with_its_defaults(monkeypatch):
  # An XLA that does not know an option refuses it at compile time; the step must then fall back
  # to XLA's defaults instead of failing to compile.
  monkeypatch.setattr(train, "CPU_COMPILER_OPTIONS", {"xla_cpu_no_such_option": "1"})
  train._cpu_options_supported.cache_clear()
  try:
    assert train.compiler_options(sharding.create_mesh()) is None
  finally:
    train._cpu_options_supported.cache_clear()
