"""Draw the four pictures README.md shows, into notebooks/figures/.

    python3 notebooks/make_figures.py                      # all four
    python3 notebooks/make_figures.py --only cvae,aae      # some of them
    python3 notebooks/make_figures.py --out /tmp/figs      # somewhere else

Each picture is trained and drawn from Fashion-MNIST as a notebook does it:

- cvae_samples_by_class.png: notebooks/04_conditional_vae.ipynb (a CVAE with a learned
  prior, 4 epochs on 6000 images), with 10 samples per class where the notebook shows 8;
- aae_latent_vs_prior.png: notebooks/06_aae_and_recurrent_models.ipynb (an AAE with a
  mixture prior, one component per class);
- convvae_reconstructions.png: notebooks/05_convolutional_vae.ipynb's settings, trained longer
  (4 epochs on 8000 images instead of 3 on 2000);
- vrae_reconstructions.png: notebooks/06 (a VRAE reading images as 28 rows).

For each it prints the figures README's caption quotes, which are taken from this output, and
how long it took. In the environment recorded in the notebooks' metadata (see
notebooks/run_notebooks.py) the CVAE, AAE and VRAE figures equal the notebooks' stored outputs.
Needs matplotlib and the Fashion-MNIST files on disk: nothing is downloaded.
"""

from __future__ import annotations

import argparse
import os
import pathlib
import sys
import time

# The notebooks are executed with one OpenBLAS thread; their float32 numbers depend on it,
# and OpenBLAS reads this only when NumPy is first imported.
os.environ["OPENBLAS_NUM_THREADS"] = "1"

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))  # this checkout's microvae, not an installed copy

import numpy as np  # noqa: E402

import microvae as mv  # noqa: E402
from microvae import plot  # noqa: E402
from microvae.datasets import FASHION_MNIST_CLASSES, images_as_sequences, load_fashion_mnist  # noqa: E402


def fashion(limit):
    """The first ``limit`` images of each Fashion-MNIST split, from disk only."""
    return load_fashion_mnist(download=False, limit=limit)


def save(fig, path, dpi):
    # plot_*(path=...) always saves at 100 dpi; README's pictures were made at these sizes
    fig.savefig(path, dpi=dpi, bbox_inches="tight", pad_inches=0.1)


def cvae(out):
    """Samples of each class from a CVAE with a learned prior p(z | y), and how often a
    nearest-class-mean classifier labels them as requested (notebook 04)."""
    (x_train, y_train), (x_test, y_test) = fashion(6000)
    x_test, y_test = x_test[:2000], y_test[:2000]
    config = dict(input_dim=784, num_classes=10, hidden=(256,), latent_dim=8, seed=0)
    training = dict(epochs=4, batch_size=128, lr=3e-3, verbose=0)
    learned = mv.CVAE(**config, learned_prior=True)
    learned.fit(x_train, y_train, validation_data=(x_test, y_test), **training)
    fixed = mv.CVAE(**config, learned_prior=False)  # the N(0, I) prior, for comparison
    fixed.fit(x_train, y_train, **training)

    # a classifier that knows nothing of the models: the nearest mean training image of a class
    class_means = np.stack([x_train[y_train == k].mean(axis=0) for k in range(10)])

    def nearest_mean(images):
        sq = (images**2).sum(1)[:, None] - 2 * images @ class_means.T + (class_means**2).sum(1)[None, :]
        return sq.argmin(axis=1)

    def sample_accuracy(model, per_class=100, seed=1):
        asked = np.repeat(np.arange(10), per_class)
        return (nearest_mean(model.sample(len(asked), asked, seed=seed)) == asked).mean()

    print(f"  nearest-class-mean accuracy of 1000 samples, labels as requested: "
          f"learned prior {sample_accuracy(learned):.3f}, N(0, I) prior {sample_accuracy(fixed):.3f} "
          f"(on 2000 real test images: {(nearest_mean(x_test) == y_test).mean():.3f})")

    per_class = 10  # a square 10 × 10 grid for the README; the notebook shows 8 per class
    rows = learned.sample(10 * per_class, np.repeat(np.arange(10), per_class), seed=0)
    fig = plot.plot_samples_by_class(rows.reshape(10, per_class, 784), image_shape=(28, 28),
                                     class_names=FASHION_MNIST_CLASSES)
    save(fig, out / "cvae_samples_by_class.png", dpi=80)


def aae(out):
    """Test codes of an AAE with a mixture prior over samples of that prior (notebook 06)."""
    (x_train, y_train), (x_test, y_test) = fashion(6000)
    x_test, y_test = x_test[:1000], y_test[:1000]
    model = mv.AAE(input_dim=784, hidden=(256,), latent_dim=2, prior="mixture", num_classes=10,
                   disc_hidden=(64, 64), seed=0)
    before = model.prior_distance(x_test)
    model.fit(x_train, y_train, epochs=15, batch_size=100, lr=1e-3, verbose=0)
    after = model.prior_distance(x_test)
    print(f"  MMD² of 1000 test codes to the prior: {before['mmd2']:.3f} untrained -> {after['mmd2']:.3f} trained")

    fig = plot.plot_latent_vs_prior(model.encode(x_test), model.sample_prior(1000, seed=0), labels=y_test,
                                    class_names=FASHION_MNIST_CLASSES,
                                    title="AAE: test codes (by class) over the mixture prior (grey)")
    save(fig, out / "aae_latent_vs_prior.png", dpi=90)


def convvae(out):
    """Reconstructions by the textbook ConvVAE with a 2-D latent: notebook 05's settings, trained
    as README's caption says (4 epochs on 8000 images; the notebook keeps to 3 on 2000)."""
    (x_train, _), (x_test, _) = fashion(8000)
    x_test = x_test[:500]
    model = mv.ConvVAE(seed=0)
    # the untrained test loss, which notebook 05 prints beside the trained one
    initial = model.evaluate(x_test)["loss"]
    history = model.fit(x_train, epochs=4, batch_size=32, lr=4e-3, validation_data=x_test, verbose=0)
    print(f"  4 epochs on {len(x_train)} images; test loss {initial:.1f} -> {history['val_loss'][-1]:.1f} nats")

    fig = plot.plot_reconstructions(x_test[:10], model.reconstruct(x_test[:10]),
                                    title="ConvVAE (2-D latent): test images and reconstructions")
    save(fig, out / "convvae_reconstructions.png", dpi=100)


def vrae(out):
    """Free-running reconstructions by a VRAE that reads an image row by row (notebook 06)."""
    (x_train, _), (x_test, _) = fashion(6000)
    rows, rows_test = images_as_sequences(x_train[:3000]), images_as_sequences(x_test[:1000])
    # input dropout keeps the decoder from copying the previous row, so z has to carry the image
    model = mv.VRAE(28, hidden_size=64, latent_dim=8, input_dropout=0.5, seed=0)
    history = model.fit(rows, epochs=4, batch_size=64, lr=3e-3, validation_data=rows_test, verbose=0)
    # 400 for notebook 06's check that each reconstruction is nearer its own image than another's
    recon = model.reconstruct(rows_test[:400])
    own, other = np.abs(recon[:200] - rows_test[:200]).mean(), np.abs(recon[:200] - rows_test[200:400]).mean()
    print(f"  4 epochs on {len(rows)} row sequences; test loss {history['val_loss'][-1]:.1f} nats, "
          f"KL {history['val_kl'][-1]:.2f}")
    print(f"  mean |reconstruction - image|: own image {own:.3f}, another image {other:.3f}")

    fig = plot.plot_reconstructions(rows_test[:10].reshape(10, -1), recon[:10].reshape(10, -1),
                                    title="VRAE reading rows: test images and free-running reconstructions")
    save(fig, out / "vrae_reconstructions.png", dpi=100)


FIGURES = {"cvae": cvae, "aae": aae, "convvae": convvae, "vrae": vrae}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=pathlib.Path, default=HERE / "figures",
                        help="folder for the PNGs (default: notebooks/figures)")
    parser.add_argument("--only", default=",".join(FIGURES),
                        help=f"comma-separated pictures to draw, of {', '.join(FIGURES)} (default: all)")
    args = parser.parse_args(argv)
    names = [name.strip() for name in args.only.split(",") if name.strip()]
    unknown = sorted(set(names) - set(FIGURES))
    if unknown or not names:
        parser.error(f"--only: unknown picture(s) {', '.join(unknown) or '(none named)'}; "
                     f"choose from {', '.join(FIGURES)}")
    args.out.mkdir(parents=True, exist_ok=True)
    for name in names:
        print(f"{name}:", flush=True)
        started = time.perf_counter()
        FIGURES[name](args.out)
        print(f"  {time.perf_counter() - started:.1f} s", flush=True)


if __name__ == "__main__":
    main()
