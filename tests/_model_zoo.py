"""Small models of every kind, a batch maker for each and the calls users make on them, and
small layers and losses of every kind with their inputs, shared by the tests that run each
through one property (the emulated GPU path, inputs left alone, memory layouts); and the
recurrent kernels' calls, shared by the CPU and GPU kernels' tests."""

import numpy as np

import microvae as mv
from microvae import layers as L
from microvae import losses, testing


def images(rng, n, size):
    return rng.random((n, size))


def sequences(rng, n, steps, features):
    x = rng.random((n, steps, features))
    mask = np.ones((n, steps))
    mask[0, steps - 2:] = 0  # one ragged sequence
    return (x, mask)


# name: (builder, batch maker, the kernels its loss_and_grads must run)
MODELS = {
    "vae": (lambda **kw: mv.VAE(6, (5, 4), 3, **kw), lambda rng: (images(rng, 4, 6),),
            {"microvae_bias_relu_forward", "microvae_relu_backward", "microvae_bernoulli_nll_logits"}),
    "vae-separate-relus": (lambda **kw: mv.VAE(6, (5, 4), 3, fuse_relu=False, **kw), lambda rng: (images(rng, 4, 6),),
                           {"microvae_relu_forward", "microvae_relu_backward", "microvae_bernoulli_nll_logits"}),
    "beta-vae-gaussian-learned": (
        lambda **kw: mv.VAE(5, (4,), 2, beta=4.0, capacity=2.0, beta_warmup=3, likelihood="gaussian-learned", **kw),
        lambda rng: (images(rng, 3, 5),), {"microvae_bias_relu_forward", "microvae_relu_backward"}),
    "cvae-learned-prior": (
        lambda **kw: mv.CVAE(6, 3, (5,), 2, condition_at="hidden", learned_prior=True, prior_hidden=4, **kw),
        lambda rng: (images(rng, 4, 6), rng.integers(0, 3, 4)), {"microvae_bernoulli_nll_logits"}),
    "convvae-pooling": (lambda **kw: mv.ConvVAE((1, 8, 8), latent_dim=2, **kw), lambda rng: (images(rng, 2, 64),),
                        {"microvae_im2col", "microvae_col2im", "microvae_maxpool_forward", "microvae_maxpool_backward"}),
    "convvae-strided": (lambda **kw: mv.ConvVAE((2, 7, 9), latent_dim=3, variant="strided", **kw),
                        lambda rng: (images(rng, 2, 126),), {"microvae_im2col", "microvae_col2im"}),
    "vrae-tanh": (lambda **kw: mv.VRAE(3, 4, 2, cell="rnn", **kw), lambda rng: sequences(rng, 3, 5, 3),
                  {"microvae_rnn_tanh_forward_step", "microvae_rnn_tanh_backward_step"}),
    "vrae-gru": (lambda **kw: mv.VRAE(3, 4, 2, cell="gru", **kw), lambda rng: sequences(rng, 3, 5, 3),
                 {"microvae_gru_forward_step", "microvae_gru_backward_step"}),
    "hierarchical-vrae": (
        lambda **kw: mv.HierarchicalVRAE(3, segment_length=2, hidden_size=4, conductor_size=3, latent_dim=2, **kw),
        lambda rng: sequences(rng, 2, 6, 3), {"microvae_gru_forward_step", "microvae_gru_backward_step"}),
}


# name: (layer, input shape)
LAYERS = {
    "dense": (lambda: L.Dense(5, 4), (3, 5)),
    "dense-relu": (lambda: L.Dense(5, 4, activation="relu"), (3, 5)),
    "relu": (L.ReLU, (3, 5)), "leaky-relu": (L.LeakyReLU, (3, 5)), "sigmoid": (L.Sigmoid, (3, 5)), "tanh": (L.Tanh, (3, 5)),
    "conv-3x3-direct": (lambda: L.Conv2D(2, 3, 3, padding="same"), (2, 2, 6, 6)),
    "conv-stride-2": (lambda: L.Conv2D(2, 3, 3, stride=2, padding="same"), (2, 2, 6, 6)),
    "conv-transpose": (lambda: L.Conv2DTranspose(2, 3, 3, stride=2, padding="same", output_padding=1), (2, 2, 3, 3)),
    "max-pool": (lambda: L.MaxPool2D(2), (2, 2, 6, 6)),
    "flatten": (L.Flatten, (2, 2, 3, 3)), "reshape": (lambda: L.Reshape((3, 6)), (2, 18)),
    "sequential": (lambda: L.Sequential([L.Conv2D(1, 2, 3, padding="same"), L.ReLU(), L.MaxPool2D(2), L.Flatten(),
                                          L.Dense(18, 3), L.Sigmoid()]), (2, 1, 6, 6)),
    "rnn": (lambda: L.RNN(3, 4), (2, 5, 3)), "gru": (lambda: L.GRU(3, 4), (2, 5, 3)),
}

# name: (loss, its arguments from a generator; the last is the data where there is one)
LOSSES = {
    "bernoulli_nll": (losses.bernoulli_nll, lambda rng, d: (rng.standard_normal((3, 4)).astype(d),
                                                           rng.random((3, 4)).astype(d))),
    "bce_probabilities": (losses.bce_probabilities, lambda rng, d: (rng.random((3, 4)).astype(d), rng.random((3, 4)).astype(d))),
    "gaussian_nll": (losses.gaussian_nll, lambda rng, d: (rng.standard_normal((3, 4)).astype(d),
                                                         rng.standard_normal((3, 4)).astype(d),
                                                         rng.standard_normal((3, 4)).astype(d))),
    "mse": (losses.mse, lambda rng, d: (rng.standard_normal((3, 4)).astype(d), rng.standard_normal((3, 4)).astype(d))),
    "kl_normal": (losses.kl_normal, lambda rng, d: (rng.standard_normal((3, 2)).astype(d), rng.standard_normal((3, 2)).astype(d))),
    "kl_gaussians": (losses.kl_gaussians, lambda rng, d: tuple(rng.standard_normal((3, 2)).astype(d) for _ in range(4))),
    "discriminator_loss": (losses.discriminator_loss, lambda rng, d: (rng.standard_normal((3, 1)).astype(d),
                                                                     rng.standard_normal((3, 1)).astype(d))),
    "generator_loss": (losses.generator_loss, lambda rng, d: (rng.standard_normal((3, 1)).astype(d),)),
}


def randomize(model, seed):
    """Parameters off their initial values (zero biases would hide a bias handled wrongly)."""
    values = testing.normal_array(model.flat.size, seed, scale=0.5, dtype=model.flat.data.dtype)
    model.flat.data[...] = model.backend.asarray(values)


def vae_calls(model, x, *label):
    from microvae import applications, metrics

    y = label[0] if label else None
    mu, logvar = model.encode(x, *label)
    return {
        "encode": (mu, logvar), "decode": model.decode(mu, *label), "reconstruct": model.reconstruct(x, *label),
        "sample": model.sample(3, *([y[:3]] if label else []), seed=1), "elbo": model.elbo(x, *label, n_samples=2),
        "evaluate": model.evaluate(x, *label, seed=2), "iwae": metrics.iwae_bound(model, x, k=4, y=y, seed=0),
        "reconstruction_error": metrics.reconstruction_error(model, x, y=y),
        "anomaly_scores": metrics.anomaly_scores(model, x, y=y, seed=0),
        "interpolate": applications.interpolate(model, x[0], x[1], steps=3, y=None if y is None else y[0]),
        "denoise": applications.denoise(model, x, y=y),
    }


def sequence_calls(model, x, mask):
    mu, logvar = model.encode(x, mask)
    return {"encode": (mu, logvar), "decode": model.decode(mu, x.shape[1]), "reconstruct": model.reconstruct(x, mask),
            "sample": model.sample(2, x.shape[1], seed=1), "elbo": model.elbo(x, mask, n_samples=2),
            "evaluate": model.evaluate(x, mask, seed=2)}


def aae_calls(model, x):
    return {"encode": model.encode(x), "decode": model.decode(model.encode(x)), "reconstruct": model.reconstruct(x),
            "sample": model.sample(3, seed=1), "sample_prior": model.sample_prior(3, seed=1),
            "prior_distance": model.prior_distance(x, seed=0), "evaluate": model.evaluate(x, seed=2)}


# name: (builder, batch maker, the calls users make on a trained model, results by name)
API = {name: (MODELS[name][0], MODELS[name][1], sequence_calls if "vrae" in name else vae_calls) for name in MODELS}
API["aae"] = (lambda **kw: mv.AAE(6, (5,), 2, prior="mixture", num_classes=3, disc_hidden=(4,), **kw),
              lambda rng: (images(rng, 4, 6),), aae_calls)


def recurrent_kernel_calls(B=3, H=4):
    """(inputs, {output name: shape}) of each recurrent step kernel, in argument order (the
    Numba kernels and the GPU wrappers take the same arguments)."""
    z = np.zeros
    return {
        "rnn_tanh_forward_step": ([z((B, H)), z((B, H)), np.ones(B)], {"h": (B, H)}),
        "rnn_tanh_backward_step": ([z((B, H)), z((B, H)), np.ones(B)], {"da": (B, H), "dh_prev": (B, H)}),
        "gru_forward_step": ([z((B, 3 * H)), z((B, 3 * H)), z(H), z((B, H)), np.ones(B)],
                             {"h": (B, H), "gates": (B, 3 * H), "hn": (B, H)}),
        "gru_backward_step": ([z((B, H)), z((B, H)), np.ones(B), z((B, 3 * H)), z((B, H))],
                              {"dgx": (B, 3 * H), "dhn": (B, H), "dh_prev": (B, H)}),
    }
