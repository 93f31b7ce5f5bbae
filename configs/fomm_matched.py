"""INTERnet at the sizes of FOMM's fashion-256 model, for the side-by-side speed benchmark.

  python benchmarks/vs_fomm.py --fomm_dir=PATH/first-order-model            # this config
  python benchmarks/vs_fomm.py --fomm_dir=... --config=configs/fomm_matched.py:paper

FOMM = github.com/AliaksandrSiarohin/first-order-model, `config/fashion-256.yaml`. Same as FOMM:
256^2 frames; 10 anchors with Jacobians detected at 64^2 by a 32/1024/5-block hourglass (FOMM's
scale_factor 0.25, temperature 0.1); dense motion at 64^2 from a 64/1024/5-block hourglass; the
generator's 7x7 stem, two down blocks (64 -> 128 -> 256 channels), the source features warped and
gated by the occlusion (confidence) map at 64^2, 6 residual blocks, two up blocks, a 7x7 output
conv and a sigmoid (`"fomm"`: skip_mode single, i.e. no skips, as FOMM): 59,790,759 parameters,
FOMM's generator + keypoint detector to the one; a one-scale discriminator of 4 blocks 64, 128,
256, 512 channels wide (FOMM's block_expansion 32 counts from the first block's input); Adam
(0.5, 0.999), lr 2e-4; batch 1 (the benchmark sets the batch). The losses of the matched step
are a reconstruction L1 and the LSGAN terms only
(FOMM's config trains with VGG-19 perceptual, feature matching and equivariance, which need
ImageNet weights that cannot be downloaded everywhere; the benchmark compares the networks).

What still differs (benchmarks/README.md lists it too):
* normalisation: instance norm here (layers.instance_norm), FOMM's synchronised BatchNorm;
* discriminator: pix2pixHD's layout here (stride-2 convs with padding and a 4x4 output conv,
  methods/internet/discriminator.py: 2,766,529 parameters), FOMM's unpadded 4x4 convs with
  average pooling and a 1x1 output conv (2,758,849);
* anti-aliased downsampling: `jax.image.resize(antialias=True)` here, FOMM's 13-tap Gaussian and
  strided slice;
* D runs once on real and fake together and G and D take their gradients from one pass; FOMM
  runs D on the fake in the G step and on real and detached fake again in the D step.

`:paper` keeps everything else and uses the paper's multiscale generator (warped skips at every
level, Eq. 6).
"""

from configs import default

GENERATORS = {"fomm": "single", "paper": "multiscale"}


def get_config(generator: str = "fomm"):
  if generator not in GENERATORS:
    raise ValueError(f"configs/fomm_matched.py: unknown generator {generator!r}; known: "
                     f"{', '.join(GENERATORS)}")
  config = default.get_config()
  config.data.resolution = 256
  config.model.num_anchors = 10
  config.model.base_resolution = 64  # FOMM: kp detector and dense motion at scale_factor 0.25
  config.model.motion.detector_resolution = 0  # = base_resolution
  config.model.generator.update(dict(
      block_expansion=64, max_features=512, num_bottleneck_blocks=6,
      skip_mode=GENERATORS[generator], composite_source=False))
  config.model.discriminator.update(dict(
      num_scales=1, block_expansion=64, max_features=512, num_blocks=4))
  loss = config.loss
  loss.gan_mode = "lsgan"
  loss.adversarial = 1.0
  loss.reconstruction_l1 = 1.0
  loss.reconstruction_scales = (1.0,)
  loss.feature_matching = 0.0
  loss.perceptual = 0.0
  loss.style = 0.0
  loss.equivariance_value = 0.0
  loss.equivariance_jacobian = 0.0
  config.temporal.scheme = "none"
  config.optimizer.name = "adam"
  config.optimizer.b1, config.optimizer.b2 = 0.5, 0.999
  config.optimizer.g_lr = config.optimizer.d_lr = 2e-4
  config.batch_size = 1
  return config
