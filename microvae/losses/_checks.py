"""Shape checks shared by the losses (cheap: no pass over the data)."""


def same_shape(what: str, a, b, names=("prediction", "target")) -> None:
    if a.shape != b.shape:
        raise ValueError(f"{what}: {names[0]} and {names[1]} must have the same shape, got {tuple(a.shape)} and {tuple(b.shape)}")
    if a.ndim < 1 or a.shape[0] < 1:
        raise ValueError(f"{what}: expected a non-empty batch (batch, ...), got shape {tuple(a.shape)}")


def rows(a):
    """View (batch, ...) as (batch, features) for per-example sums."""
    return a.reshape(a.shape[0], -1)
