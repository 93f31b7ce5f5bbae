"""Network building blocks shared by the methods (`layers`, `vgg`); each method's own networks
live in its package under `internet_jax/methods/`."""
