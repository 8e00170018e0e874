"""README.md held to the code, so that its examples and API claims cannot rot unnoticed.

* every ```python block runs (Fashion-MNIST cut to a small slice of the real data), and so
  does every ``python3 -c "..."`` one-liner, each followed by checks of what it says it makes;
* the signatures spelled out in "Public API" and "Evaluation" are parsed from the text and
  compared with ``inspect.signature`` (names, order, defaults), every name those sections
  mention resolves, and the value alternatives they list (``kind="bce"|"mse"``) are accepted;
* the model table's Python column builds what it says, agreeing with its command-line column;
* every ``microvae ...`` command line in the README parses with the real argparse parser.

The README read is $MICROVAE_README when set (a mutated copy, to see a check fail), else the
repository's README.md. Nothing here writes outside pytest's tmp_path.
"""

from __future__ import annotations

import argparse
import ast
import contextlib
import glob
import importlib
import inspect
import json
import os
import re
import shlex
from pathlib import Path

import numpy as np
import pytest

import microvae as mv
from microvae import cli

ROOT = Path(__file__).resolve().parents[1]
README_PATH = Path(os.environ.get("MICROVAE_README") or ROOT / "README.md")
README = README_PATH.read_text(encoding="utf-8")
FENCE = re.compile(r"^```(\w*)\n(.*?)^```", re.S | re.M)
PNG = b"\x89PNG\r\n\x1a\n"


# reading the README --------------------------------------------------------------------------
def _masked() -> str:
    """README with its fenced blocks' contents blanked (same offsets), so a ``# comment`` is no heading."""
    return FENCE.sub(lambda m: re.sub(r"[^\n]", " ", m.group(0)), README)


def section(title: str) -> str:
    """The text under the heading ``title`` (any level), up to the next heading of that level or higher."""
    masked = _masked()
    match = re.search(rf"^(#+) {re.escape(title)}\s*$", masked, re.M)
    assert match, f"README has no heading {title!r}"
    level = len(match.group(1))
    end = re.compile(rf"^#{{1,{level}}} ", re.M).search(masked, match.end())
    return README[match.end() : end.start() if end else len(README)]


def prose(text: str) -> str:
    """``text`` without its fenced code blocks."""
    return FENCE.sub("", text)


def spans(text: str) -> list[str]:
    """The inline code spans of ``text`` (outside fenced blocks), whitespace runs made one space."""
    return [" ".join(s.split()) for s in re.findall(r"`([^`]+)`", prose(text))]


def api_bullet(name: str) -> str:
    """The bullet ``- **name** ...`` of "Public API"."""
    match = re.search(rf"^- \*\*{re.escape(name)}\*\*.*$", section("Public API"), re.M)
    assert match, f"README's Public API has no bullet **{name}**"
    return match.group(0)


def python_blocks() -> list[tuple[str, str]]:
    """(heading above it, source) of every ```python block."""
    out = []
    for match in FENCE.finditer(README):
        if match.group(1) == "python":
            heading = re.findall(r"^#+ (.*)$", _masked()[: match.start()], re.M)
            out.append((heading[-1].strip() if heading else "", match.group(2)))
    return out


def python_one_liners() -> list[str]:
    """The code of every ``python3 -c "..."`` in the README (whitespace runs made one space)."""
    return [" ".join(code.split()) for code in re.findall(r'python3? -c "([^"]+)"', README)]


def shown(phrase: str, where: str = README) -> str:
    """Assert that a hand-written table entry is in the README verbatim (whitespace runs as one space)."""
    assert " ".join(phrase.split()) in " ".join(where.split()), f"README no longer says {phrase!r}: update this test"
    return phrase


# Fashion-MNIST, cut small ------------------------------------------------------------------------
N_TRAIN, N_TEST = 512, 256


def _patch_fashion(mp, fashion_data, calls: list) -> None:
    """Make load_fashion_mnist() return the first 512 training and 256 test images of the real data."""
    import microvae.datasets
    import microvae.datasets.mnist

    (x, y), (xt, yt) = fashion_data

    def load_fashion_mnist(root=None, download=True, *, flatten=True, limit=None):
        calls.append(dict(root=root, download=download, flatten=flatten, limit=limit))
        shape = (-1, 784) if flatten else (-1, 1, 28, 28)
        return (x[:N_TRAIN].reshape(shape), y[:N_TRAIN]), (xt[:N_TEST].reshape(shape), yt[:N_TEST])

    mp.setattr(microvae.datasets, "load_fashion_mnist", load_fashion_mnist)
    mp.setattr(microvae.datasets.mnist, "load_fashion_mnist", load_fashion_mnist)


@pytest.fixture
def small_fashion(fashion_data, monkeypatch):
    """Fashion-MNIST cut small (tests/conftest.py's fixture: Debian's dataset-fashion-mnist, which
    the test suite requires). Returns the list of calls made to the loader."""
    calls: list = []
    _patch_fashion(monkeypatch, fashion_data, calls)
    return calls


def _png(path):
    path = Path(path)
    assert path.is_file(), f"{path} was not written"
    assert path.read_bytes()[:8] == PNG, f"{path} is not a PNG"


# 1. the ```python blocks and the python3 -c one-liners --------------------------------------------
def _from_source(pattern: str, source: str) -> str:
    match = re.search(pattern, source)
    assert match, f"the block no longer matches {pattern!r}: update its checks"
    return match.group(1)


def _check_quickstart(source, ns, out, tmp_path, fashion_data):
    (x_real, _), _ = fashion_data
    # "float32 in [0, 1], shape (n, 784)": the real loader's output, not the slice handed to the block
    shown("# float32 in [0, 1], shape (n, 784)", source)
    assert x_real.dtype == np.float32 and x_real.ndim == 2 and x_real.shape[1] == 784
    assert 0.0 <= x_real.min() and x_real.max() <= 1.0
    x_test = ns["x_test"]
    epochs = int(_from_source(r"\.fit\(.*epochs=(\d+)", source))
    assert isinstance(ns["history"], mv.History) and len(ns["history"]) == epochs
    assert "val_loss" in ns["history"]  # validation_data=x_test
    latent_dim = int(_from_source(r"mv\.VAE\(.*latent_dim=(\d+)", source))
    mu, logvar = ns["mu"], ns["logvar"]
    shown("# NumPy in, NumPy out", source)
    assert isinstance(mu, np.ndarray) and isinstance(logvar, np.ndarray)
    assert mu.shape == logvar.shape == (len(x_test), latent_dim)
    images, n = ns["images"], int(_from_source(r"images = model\.sample\((\d+)\)", source))
    assert isinstance(images, np.ndarray) and images.shape == (n, x_test.shape[1])
    shown("# decoder means at z ~ N(0, I)", source)
    assert 0.0 <= images.min() and images.max() <= 1.0  # Bernoulli means
    shown("# nats per example", source)
    printed = float(out.strip().splitlines()[-1])  # the mean ELBO of 100 test images
    assert np.isfinite(printed) and printed < 0
    assert isinstance(ns["model"], mv.VAE) and ns["model"].latent_dim == latent_dim  # the one mv.load gave back
    files = re.findall(r"""(?:save\(|path=)["']([^"']+)["']""", source)  # model.save("vae.npz"), path="grid.png"
    assert files, "the block no longer writes files: update its checks"
    for name in files:
        assert (tmp_path / name).is_file(), f"the quickstart should have written {name}"
        if name.endswith(".png"):
            _png(tmp_path / name)


def _check_gradient_block(source, ns, out, tmp_path, fashion_data):
    assert "FAIL" not in out
    for name, _, _ in ns["model"].flat.named():  # "every parameter"
        assert re.search(rf"^\s+{re.escape(name)}\s+\S+\s+ok$", out, re.M), f"{name} missing from check_model's table:\n{out}"
    assert len(re.findall(r"\bok$", out, re.M)) > len(list(ns["model"].flat.named())), "check_layer's table is missing"


BLOCK_CHECKS = {"Quickstart in Python": _check_quickstart, "Checking gradients": _check_gradient_block}


def test_the_checked_python_blocks_are_still_there():
    headings = [heading for heading, _ in python_blocks()]
    for heading in BLOCK_CHECKS:
        assert heading in headings, f"README has no ```python block under {heading!r} any more: update BLOCK_CHECKS"


@pytest.mark.parametrize("heading, source", python_blocks(), ids=[h for h, _ in python_blocks()])
def test_python_block_runs(heading, source, small_fashion, fashion_data, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    capsys.readouterr()
    ns = {"__name__": "__readme__"}
    exec(compile(source, f"README.md ({heading})", "exec"), ns)  # noqa: S102
    out = capsys.readouterr().out
    if "load_fashion_mnist" in source:
        assert small_fashion, "the block did not go through the patched load_fashion_mnist"
    if heading in BLOCK_CHECKS:
        BLOCK_CHECKS[heading](source, ns, out, tmp_path, fashion_data)


def _out_folder(argv: list[str]) -> str | None:
    return argv[argv.index("--out") + 1] if "--out" in argv else None


def _loaded_checkpoints(code: str) -> list[str]:
    return re.findall(r"""mv\.load\(['"]([^'"]+)['"]""", code)


@pytest.fixture(scope="module")
def readme_runs(tmp_path_factory, fashion_data):
    """The folder in which README's ``microvae train ... --out DIR`` commands ran (in-process, on
    the small slice), for every DIR whose ``model.npz`` a ``python3 -c`` line of the README loads."""
    base = tmp_path_factory.mktemp("readme_runs")
    folders = list(dict.fromkeys(os.path.dirname(p) for code in python_one_liners() for p in _loaded_checkpoints(code)))
    with pytest.MonkeyPatch.context() as mp:
        _patch_fashion(mp, fashion_data, [])
        mp.chdir(base)
        for folder in folders:
            makers = [c for c in cli_commands() if c[:1] == ["train"] and _out_folder(c) == folder]
            assert makers, f"no README command writes {folder}/model.npz, which a `python3 -c` line of the README loads"
            assert cli.main(makers[0] + ["--verbose", "0"]) == 0, makers[0]
    return base, folders


@pytest.mark.parametrize("code", python_one_liners())
def test_python_one_liner_runs(code, small_fashion, readme_runs, monkeypatch, capsys):
    """A ``python3 -c`` line that loads a checkpoint reads the one that the README's own
    ``microvae train ... --out DIR`` command writes (readme_runs)."""
    base, _ = readme_runs
    monkeypatch.chdir(base)
    for path in _loaded_checkpoints(code):
        assert (base / path).is_file()
    capsys.readouterr()
    exec(compile(code, "README.md (python3 -c)", "exec"), {"__name__": "__main__"})  # noqa: S102
    out = capsys.readouterr().out
    if "print(" in code:
        values = [float(v) for v in out.split()]
        assert values and all(np.isfinite(values)), out
        if "iwae_bound" in code and "elbo" in code:  # "print(M.elbo(...).mean(), M.iwae_bound(...).mean())"
            assert all(v < 0 for v in values)


def test_train_writes_what_the_readme_says(readme_runs):
    """"writes `model.npz`, `history.json`/`.csv` and pictures (reconstructions, prior samples, the 15×15
    latent grid, the latent scatter, an interpolation, the loss curves)", and "`train` writes `model.npz`,
    `history.json`, `history.csv` and PNG pictures into `DIR`", checked on a README run of a 2-D VAE."""
    base, folders = readme_runs
    assert folders, "no README train command ran (the README's python3 -c lines load no checkpoint)"
    out = base / folders[0]
    pictures = {"reconstructions": "reconstructions.png", "prior samples": "samples.png",
                "the 15×15 latent grid": "latent_grid.png", "the latent scatter": "latent_scatter.png",
                "an interpolation": "interpolation.png", "the loss curves": "loss_curves.png"}
    match = re.search(r"writes\s+`model\.npz`, `history\.json`/`\.csv` and pictures \(([^)]*)\)", section("On a fresh machine"))
    assert match, "README's list of what `microvae train` writes changed its form: update this test"
    listed = [" ".join(item.split()) for item in match.group(1).split(",")]
    assert set(listed) == set(pictures), f"README lists {listed}; this test maps {list(pictures)}"
    for name in pictures.values():
        _png(out / name)
    sentence = re.search(r"`train` writes (.*?) into `DIR`", section("Command line"), re.S)
    assert sentence, "README's Command line section no longer says what `train` writes: update this test"
    for name in re.findall(r"`([\w.]+)`", sentence.group(1)):
        assert (out / name).is_file(), f"README: `train` writes {name}; it did not"
    assert "PNG pictures" in sentence.group(1) and list(out.glob("*.png"))
    import json

    records = json.loads((out / "history.json").read_text())
    shown("the median of `history.json`'s `seconds`")
    assert len(records) == 10 and all("seconds" in r for r in records)  # --epochs 10
    model = mv.load(out / "model.npz")
    assert model.latent_dim == 2 and model.hidden == (512, 256)


def test_sample_command_runs(readme_runs, tmp_path, monkeypatch):
    """README's ``microvae sample DIR/model.npz -n 64 --out samples.png`` on a README run."""
    base, folders = readme_runs
    monkeypatch.chdir(tmp_path)
    # --label: for a CVAE; --image-shape 3,32,32: for a colour model; --length, --draw-as: for a recurrent model
    (argv,) = [c for c in cli_commands()
               if c[:1] == ["sample"] and not {"--label", "--image-shape", "--length", "--draw-as"} & set(c)]
    argv = [a.replace("DIR", str(base / folders[0])) for a in argv]
    assert cli.main(argv) == 0
    _png(tmp_path / _out_folder(argv))


# 2. signatures and names in "Public API" and "Evaluation" ------------------------------------------
NO_LITERAL = object()


def _split_top(text: str, sep: str) -> list[str]:
    """Split at ``sep`` outside quotes and brackets."""
    parts, depth, quote, current = [], 0, None, ""
    for ch in text:
        if quote:
            quote = None if ch == quote else quote
        elif ch in "\"'":
            quote = ch
        elif ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
        elif ch == sep and depth == 0:
            parts.append(current)
            current = ""
            continue
        current += ch
    parts.append(current)
    return [p.strip() for p in parts]


def _literal(text: str):
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return NO_LITERAL


class Arg:
    """One argument as the README writes it: ``name``, ``name=default``, ``name="a"|"b"``, a
    literal placeholder ``"numpy"|"cupy"`` (no name), or ``...``."""

    def __init__(self, text: str):
        self.text, self.name, self.values, self.ellipsis = text, None, [], text in ("...", "…")
        if self.ellipsis:
            return
        match = re.fullmatch(r"([A-Za-z_]\w*)\s*=\s*(.*)", text, re.S)
        if match:
            self.name, value = match.groups()
            self.values = [_literal(v) for v in _split_top(value, "|") if v not in ("...", "…")]
        elif re.fullmatch(r"[A-Za-z_]\w*", text):
            self.name = text
        else:
            self.values = [_literal(v) for v in _split_top(text, "|") if v not in ("...", "…")]

    @property
    def default(self):
        """The default the README claims: the first value, when it is a literal."""
        return self.values[0] if self.values else NO_LITERAL


CALL = re.compile(r"((?:[A-Za-z_]\w*\.)*[A-Za-z_]\w*)\((.*)\)", re.S)


def _a_model():
    return mv.VAE(8, (4,), 2)


def resolve(dotted: str, modules):
    """What a name in the README refers to: ``mv.x``/``microvae.x.y``, ``model.m`` (an attribute
    of a small VAE), or a plain name of one of ``modules``, of ``microvae``, or a VAE method (in that order)."""
    modules = modules if isinstance(modules, tuple) else (modules,)
    parts = dotted.split(".")
    if parts[0] in ("mv", "microvae"):
        parts[0] = "microvae"
        for cut in range(len(parts), 0, -1):
            try:
                obj = importlib.import_module(".".join(parts[:cut]))
            except ImportError:
                continue
            for part in parts[cut:]:
                obj = getattr(obj, part)
            return obj
    if parts[0] == "model":
        obj = _a_model()
        parts = parts[1:]
    else:
        for owner in (*modules, mv, mv.VAE):
            if hasattr(owner, parts[0]):
                obj = getattr(owner, parts[0])
                parts = parts[1:]
                break
        else:
            raise AttributeError(f"{dotted!r} is not in {', '.join(m.__name__ for m in modules)}, microvae, or a VAE method")
    for part in parts:
        obj = getattr(obj, part)
    return obj


def _parameters(func) -> list[inspect.Parameter]:
    params = list(inspect.signature(func).parameters.values())
    if params and params[0].name == "self":
        params = params[1:]
    return params


def signature_problems(span: str, func) -> list[str]:
    """What in the README's ``span`` disagrees with ``func``'s signature.

    A span whose first argument is a bare name (or a placeholder such as ``"numpy"|"cupy"``)
    is a signature, read the way the README writes them (it lists the parameters a reader
    needs and leaves optional ones out, as in ``anomaly_scores(model, x, method=..., kind=...)``):

    * a bare name (or placeholder) before any ``...`` is the code's parameter at that position;
    * ``name=value`` names a parameter with that default (the first value, where alternatives
      are listed; no claim where the value is not a literal, as in ``every=N``);
    * the names come in the code's order, and no required parameter is left out.

    Any other span (``fit(..., clip_norm=5.0)``, ``anomaly_scores(method="recon")``) is a call:
    its keywords must be parameters (or go to ``**kwargs``)."""
    name, inside = CALL.fullmatch(span).groups()
    args = [Arg(a) for a in _split_top(inside, ",") if a]
    params = _parameters(func)
    names = [p.name for p in params]
    var_kw = any(p.kind is p.VAR_KEYWORD for p in params)
    problems = []
    first = args[0] if args else None
    is_signature = first is not None and not first.ellipsis and (
        (first.name is not None and "=" not in first.text)  # f(a, b, ...): positional names
        or first.name == (names[0] if names else None)
        or (first.name is None and len(first.values) > 1))  # get_backend("numpy"|"cupy", ...)
    if not is_signature:
        for arg in args:
            if arg.name and arg.name not in names and not var_kw:
                problems.append(f"{name}() has no parameter {arg.name!r} (it has {names})")
        return problems
    before_ellipsis, last_index = True, -1
    for i, arg in enumerate(args):
        if arg.ellipsis:
            before_ellipsis = False
            continue
        keyword = "=" in arg.text
        if before_ellipsis and not keyword:  # a positional parameter: its position is part of the claim
            if i >= len(params) or params[i].kind in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD):
                problems.append(f"{name}(): README gives {arg.text!r} at position {i}, the code has parameters {names}")
                continue
            if arg.name is not None and arg.name != params[i].name:
                where = f"at position {names.index(arg.name)}" if arg.name in names else "nowhere"
                problems.append(f"{name}(): README has {arg.name!r} at position {i}, the code has {params[i].name!r} "
                                f"there ({arg.name!r} is {where}; parameters {names})")
                continue
            index = i
        elif arg.name not in names:
            if not var_kw:
                problems.append(f"{name}() has no parameter {arg.name!r} (it has {names})")
            continue
        else:
            index = names.index(arg.name)
        if index <= last_index:
            problems.append(f"{name}(): README puts {arg.text.split('=')[0]!r} after {names[last_index]!r}; "
                            f"the code's order is {names}")
        last_index = max(last_index, index)
        param, default = params[index], arg.default
        if keyword and default is not NO_LITERAL:
            if param.default is inspect.Parameter.empty:
                problems.append(f"{name}(): README gives {arg.name}={default!r}, the code has no default")
            elif not (type(param.default) is type(default) or {type(param.default), type(default)} <= {int, float}) \
                    or param.default != default:
                problems.append(f"{name}(): README gives {arg.name}={default!r}, the code's default is {param.default!r}")
    if before_ellipsis:  # the README's list is complete: a required parameter may not be left out
        given = {a.name for a in args} | set(names[: sum(1 for a in args if "=" not in a.text)])
        for param in params:
            if param.default is inspect.Parameter.empty and param.kind not in (param.VAR_POSITIONAL, param.VAR_KEYWORD) \
                    and param.name not in given:
                problems.append(f"{name}(): required parameter {param.name!r} is missing from the README")
    return problems


def api_spans() -> list[tuple[str, str, object]]:
    """(where, span, module) for every code span of "Public API" and "Evaluation": the module a
    plain name belongs to is the one the bullet names (``**Losses** (`microvae.losses`)``), or
    in "Evaluation" the last ``microvae.x`` that opened a paragraph or bullet; else microvae."""
    out = []
    for line in prose(section("Public API")).splitlines():
        if not line.startswith("- **"):
            continue
        title = re.match(r"- \*\*(.*?)\*\*", line).group(1)
        owner = re.match(r"- \*\*.*?\*\* \(`(microvae[\w.]*)`\)", line)
        module = importlib.import_module(owner.group(1)) if owner else mv
        out += [(f"Public API, {title}", s, module) for s in spans(line)]
    module = mv
    openers = [importlib.import_module(m) for m in re.findall(r"^`(microvae\.\w+)`", section("Evaluation"), re.M)]
    for paragraph in re.split(r"\n(?=- |\n)", prose(section("Evaluation"))):
        opener = re.match(r"\s*`(microvae\.\w+)`", paragraph)
        if opener:
            module = importlib.import_module(opener.group(1))
        # a name the paragraph does not own may be one of the section's other modules ("`metrics.elbo`/`iwae_bound`")
        out += [("Evaluation", s, (module, *[m for m in openers if m is not module])) for s in spans(paragraph)]
    return out


CALL_SPANS = [(where, s, m) for where, s, m in api_spans() if CALL.fullmatch(s) and " " not in s.split("(")[0]]

# README signatures known to disagree with the code (each names the discrepancy; fix the README, then drop it)
# function name -> the discrepancy, for README signatures known to be wrong: the test is then
# xfail(strict=True), so fixing the README makes it XPASS and fail until the entry is removed.
KNOWN_WRONG: dict[str, str] = {}


def _call_param(span):
    where, text, module = span
    function = CALL.fullmatch(text).group(1).split(".")[-1]
    marks = [pytest.mark.xfail(strict=True, reason=KNOWN_WRONG[function])] if function in KNOWN_WRONG else []
    return pytest.param(*span, id=text.split("(")[0] + "(" + text.split("(", 1)[1][:40], marks=marks)


@pytest.mark.parametrize("where, span, module", [_call_param(s) for s in CALL_SPANS])
def test_readme_signature_matches_the_code(where, span, module):
    name = CALL.fullmatch(span).group(1)
    func = resolve(name, module)
    problems = signature_problems(span, func)
    assert not problems, f"README ({where}): `{span}`\n  " + "\n  ".join(problems)


def test_the_signatures_listed_in_the_brief_are_parsed():
    """The parser must keep seeing the signatures: if the README's wording changes so that these
    are no longer code spans of a call, this fails instead of silently checking nothing."""
    found = {s.split("(")[0] for _, s, _ in CALL_SPANS}
    for name in ("iwae_bound", "elbo", "reconstruction_error", "anomaly_scores", "roc_auc", "roc_curve",
                 "mutual_information_gap", "add_noise", "interpolate", "traverse", "get_backend", "ModelCheckpoint",
                 "log_mean_exp", "mv.load", "model.save", "fit"):
        assert name in found, f"no signature of {name} parsed from README"


def _is_parameter_somewhere(name: str, objects) -> bool:
    for obj in objects:
        try:
            if name in inspect.signature(obj).parameters:
                return True
        except (TypeError, ValueError):
            pass
    return False


def _names(modules) -> str:
    return ", ".join(m.__name__ for m in (modules if isinstance(modules, tuple) else (modules,)))


def test_every_name_in_public_api_and_evaluation_exists():
    """Plain names resolve in the bullet's module (or microvae, or as a VAE method), dotted names
    import, ``name=`` is a parameter of something the same bullet names, ``$VAR`` and
    ``VAR=value`` are environment variables that microvae's source reads."""
    source = "\n".join(p.read_text(encoding="utf-8") for p in (ROOT / "microvae").rglob("*.py"))
    missing = []
    by_where: dict[str, list] = {}
    for where, span, module in api_spans():
        by_where.setdefault(where, []).append((span, module))
    for where, items in by_where.items():
        named = []  # the callables and classes this bullet names, for name= and method names
        for span, module in items:
            name = CALL.fullmatch(span).group(1) if CALL.fullmatch(span) else span
            with contextlib.suppress(AttributeError, ImportError):
                if re.fullmatch(r"[\w.]+", name):
                    named.append(resolve(name, module))
        named += [getattr(mv.VAE, m) for m in ("fit", "__init__")]
        for span, module in items:
            if span.startswith(("/", "~/")):  # a folder microvae searches: "/usr/share/datasets/...", "~/.cache/microvae"
                key = span[2:].split("/")[0] if span.startswith("~/") else span.split("/...")[0]
                if key not in source:
                    missing.append(f"{where}: `{span}` appears nowhere in microvae/ ({key!r})")
            elif re.fullmatch(r"\$[A-Z_]+|[A-Z][A-Z_]+=\w+", span):
                var = span.lstrip("$").split("=")[0]
                if var not in source:
                    missing.append(f"{where}: environment variable {var} is read nowhere in microvae/")
            elif re.fullmatch(r"[a-z_]\w*=", span):
                if not _is_parameter_somewhere(span[:-1], named):
                    missing.append(f"{where}: `{span}` is a parameter of nothing this part names")
            elif re.fullmatch(r"[A-Za-z_][\w.]*", span) and not span.startswith("."):
                try:
                    resolve(span, module)
                except (AttributeError, ImportError):
                    if not (re.fullmatch(r"[a-z_]\w*", span) and (_is_parameter_somewhere(span, named)
                                                                  or any(hasattr(obj, span) for obj in named))):
                        missing.append(f"{where}: `{span}` is not in {_names(module)} (nor a parameter or "
                                       f"attribute of what it names)")
            elif CALL.fullmatch(span):
                try:
                    resolve(CALL.fullmatch(span).group(1), module)
                except (AttributeError, ImportError):
                    missing.append(f"{where}: `{span}` names nothing in {_names(module)}")
    assert not missing, "\n".join(missing)


def test_bullet_modules_hold_their_names():
    """The lists of "Public API" are attributes of the modules the bullets name (or of microvae)."""
    checks = {"Layers": ("microvae.layers", r"[A-Z]\w+"), "Losses": ("microvae.losses", r"[a-z_]+"),
              "Optimizers": ("microvae", r"Adam|SGD|clip_grad_norm"),
              "Training": ("microvae", r"[A-Z]\w+"), "Gradient checks": ("microvae", r"gradcheck|check_\w+"),
              "Data": ("microvae.datasets", r"load_\w+|read_idx|make_\w+|images_as_sequences")}
    for title, (module_name, pattern) in checks.items():
        bullet = api_bullet(title)
        module = importlib.import_module(module_name)
        names = [s for s in spans(bullet) if re.fullmatch(pattern, s)]
        assert names, f"no names found in README's **{title}** bullet"
        for name in names:
            assert hasattr(module, name), f"README's **{title}**: {module_name}.{name} does not exist"
    for name in [s for s in spans(api_bullet("Layers")) if re.fullmatch(r"[A-Z]\w+", s)]:
        layer = getattr(mv.layers, name)
        assert callable(getattr(layer, "forward", None)) and callable(getattr(layer, "backward", None)), name
    for name in [s for s in spans(api_bullet("Losses")) if re.fullmatch(r"[a-z_]+", s)]:
        assert name in mv.losses.__all__, f"{name} is not exported by microvae.losses"


def test_models_bullet_methods():
    """"- **Models**: `VAE`, ... with `fit`, ...; the VAEs (all but the AAE) also `loss_and_grads`, ..., the AAE `phase_loss`."""
    bullet = api_bullet("Models")
    match = re.fullmatch(r"- \*\*Models\*\*: (.*?) with (.*?); the VAEs \(all but the AAE\) also (.*?), the AAE (.*?)\.", bullet)
    assert match, f"README's **Models** bullet changed its form: update this test\n{bullet}"
    models, common, vaes_only, aae_only = (re.findall(r"`(\w+)`", g) for g in match.groups())
    assert models and common and vaes_only and aae_only, bullet
    for model in models:
        cls = getattr(mv, model)
        wanted = common + (aae_only if model == "AAE" else vaes_only)
        for method in wanted:
            assert callable(getattr(cls, method, None)), f"README: {model} has `{method}`; the code has none"
    for method in vaes_only:
        assert not hasattr(mv.AAE, method), f"README says the AAE has no `{method}`, but it has"


def test_backend_claims():
    bullet = api_bullet("Backend")
    shown('models take `backend=`, default "numpy"', bullet)
    for name in re.findall(r"`(\w+)`", api_bullet("Models").split(" with ")[0]):
        default = inspect.signature(getattr(mv, name)).parameters["backend"].default
        assert default == "numpy", f"{name}(backend=) defaults to {default!r}, README says \"numpy\""
    shown("`microvae train`, `sample` and `evaluate` read the variable too", bullet)
    for command in ("train", "sample", "evaluate"):  # None: the variable, else NumPy (tests/test_cli.py runs sample with it)
        assert _subparser(command)._option_string_actions["--backend"].default is None


def test_training_defaults():
    """"a new run uses Adam at lr 1e-3", and the Optimizers bullet's ``fit(..., clip_norm=5.0)`` is accepted and applied."""
    shown("a new run uses Adam at lr 1e-3", api_bullet("Training"))
    (fit_span,) = [s for s in spans(api_bullet("Optimizers")) if s.startswith("fit(")]
    options = {a.name: a.default for a in (Arg(t) for t in _split_top(CALL.fullmatch(fit_span).group(2), ",")) if a.name}
    assert options, fit_span
    model = mv.VAE(8, (4,), 2)
    x = np.random.default_rng(0).random((16, 8)).astype(np.float32)
    model.fit(x, epochs=1, batch_size=8, verbose=0, **options)
    (optimizer,) = model.optimizers.values()
    assert isinstance(optimizer, mv.Adam) and optimizer.lr == 1e-3
    for name, value in options.items():
        assert getattr(optimizer, name) == value, f"README's `{fit_span}`: the optimizer's {name} is {getattr(optimizer, name)!r}"


def test_early_stopping_claims():
    """"`EarlyStopping` (`monitor` is val_loss by default, lower is better; `mode="max"` for a metric of your own where higher is better)"."""
    shown('`EarlyStopping` (`monitor` is val_loss by default, lower is better; `mode="max"` for a metric of your own where higher is better)',
          api_bullet("Training"))
    defaults = {name: p.default for name, p in inspect.signature(mv.EarlyStopping).parameters.items()}
    assert defaults["monitor"] == "val_loss" and defaults["mode"] == "min"

    shown("an `EarlyStopping` after it in the list may monitor that key once the callback names it in its `records`",
          api_bullet("Training"))

    class Accuracy(mv.Callback):  # a metric of one's own, higher is better, best at epoch 2
        records = ("acc",)

        def on_epoch_end(self, model, epoch, record):
            record["acc"] = [0.5, 0.9, 0.6, 0.6][epoch - 1]

    stopper = mv.EarlyStopping(monitor="acc", patience=1, mode="max")
    x = np.random.default_rng(0).random((16, 8)).astype(np.float32)
    mv.VAE(8, (4,), 2).fit(x, epochs=4, batch_size=8, verbose=0, callbacks=[Accuracy(), stopper])
    assert (stopper.best_epoch, stopper.stopped_epoch, stopper.restored_epoch) == (2, 4, 2)


def test_pictures_bullet():
    """"- **Pictures** (`microvae.plot`, needs matplotlib): reconstructions, prior samples, ...": each
    picture named has its plot function (a hand-written table; every entry must be in the bullet)."""
    import microvae.plot

    table = {"reconstructions": "plot_reconstructions", "prior samples": "plot_samples", "latent grid": "plot_latent_grid",
             "latent scatter": "plot_latent_scatter", "loss curves": "plot_loss_curves",
             "interpolation": "plot_interpolation", "traversals": "plot_traversal",
             "samples by class": "plot_samples_by_class", "sequences": "plot_sequences",
             "piano rolls": "plot_piano_roll", "codes against the prior": "plot_latent_vs_prior"}
    match = re.fullmatch(r"- \*\*Pictures\*\* \(`microvae\.plot`, needs matplotlib\): (.*)\.", api_bullet("Pictures"))
    assert match, "README's **Pictures** bullet changed its form: update this test"
    listed = [item.strip() for item in match.group(1).split(",")]
    assert set(listed) == set(table), f"README lists {listed}; this test maps {list(table)}"
    for item, function in table.items():
        assert callable(getattr(microvae.plot, function, None)), f"README's picture {item!r}: microvae.plot.{function} is missing"


def test_loss_convention():
    """"Every loss in `microvae.losses` returns `(per_example, *grads)`, where `per_example` has shape (batch,)"."""
    shown("Every loss in `microvae.losses` returns `(per_example, *grads)`, where `per_example` has shape (batch,)",
          section("The loss convention"))
    rng = np.random.default_rng(0)
    a, p, x = rng.standard_normal((4, 5)), rng.uniform(0.1, 0.9, (4, 5)), (rng.random((4, 5)) > 0.5).astype(float)
    inputs = {"bernoulli_nll": (a, x), "bce_probabilities": (p, x), "gaussian_nll": (a, x, a), "mse": (a, x),
              "kl_normal": (a, a), "kl_gaussians": (a, a, a, a), "discriminator_loss": (a[:, 0], a[:, 1]),
              "generator_loss": (a[:, 0],)}
    listed = [s for s in spans(api_bullet("Losses")) if re.fullmatch(r"[a-z_]+", s)]
    assert set(listed) == set(inputs) == set(mv.losses.__all__), (listed, list(inputs), mv.losses.__all__)
    for name in listed:
        per_example, *grads = getattr(mv.losses, name)(*inputs[name])
        assert per_example.shape == (4,) and grads, name
        assert all(g.shape in {i.shape for i in inputs[name]} for g in grads), name
    shown("`gaussian_nll` with a fixed variance, a number, returns None for dlogvar", section("The loss convention"))
    per_example, dmean, dlogvar = mv.losses.gaussian_nll(a, x, 0.5)
    assert per_example.shape == (4,) and dmean.shape == a.shape and dlogvar is None


def test_which_fit_settings_continue_a_run():
    """README: settings left out, or given at the run's own value, continue the run; any other value starts a new one."""
    shown("Settings that `fit` is not given (optimizer, `lr`, options) continue the current run's, as does a setting "
          "given at the value the run already uses (an option at the optimizer's default, such as `clip_norm=None`, "
          "names the same run as leaving it out); any other value starts a new run, with fresh optimizer state")
    x = np.random.default_rng(0).random((40, 16)).astype(np.float32)
    model = mv.VAE(16, (8,), 2, seed=0)
    model.fit(x, epochs=1, verbose=0, batch_size=20)
    run = model.optimizers["model"]
    for same in ({}, {"clip_norm": None}, {"lr": 1e-3}, {"optimizer": "adam"}):
        model.fit(x, epochs=1, verbose=0, batch_size=20, **same)
        assert model.optimizers["model"] is run, same
    model.fit(x, epochs=1, verbose=0, batch_size=20, clip_norm=5.0)
    clipped = model.optimizers["model"]
    assert clipped is not run and clipped.t == 2  # a new run: its moments and step count start afresh
    model.fit(x, epochs=1, verbose=0, batch_size=20)  # left out: the clipped run continues
    assert model.optimizers["model"] is clipped and model.optimizer_spec[2] == (("clip_norm", 5.0),)
    model.fit(x, epochs=1, verbose=0, batch_size=20, clip_norm=None)  # the default, but not the run's value
    assert model.optimizers["model"] is not clipped and model.optimizer_spec == ("adam", 1e-3, ())


# the value alternatives README lists (kind="bce"|"mse"), tried on small inputs -------------------
@pytest.fixture(scope="module")
def tiny():
    rng = np.random.default_rng(0)
    x = rng.random((12, 16)).astype(np.float32)
    vae = mv.VAE(16, (8,), 2, seed=0)
    vae.fit(x, epochs=1, batch_size=6, verbose=0)
    aae = mv.AAE(16, (8,), 2, seed=0)
    aae.fit(x, epochs=1, batch_size=6, verbose=0)
    return dict(x=x, vae=vae, aae=aae)


def _callers(t):
    import microvae.applications as A
    import microvae.metrics as M

    x, vae = t["x"], t["vae"]
    return {
        ("reconstruction_error", "kind"): lambda v: M.reconstruction_error(vae, x, kind=v),
        ("anomaly_scores", "method"): lambda v: M.anomaly_scores(vae, x, method=v, k=3),
        ("anomaly_scores", "kind"): lambda v: M.anomaly_scores(vae, x, method="recon", kind=v),
        ("add_noise", "kind"): lambda v: A.add_noise(x, kind=v, level=0.3, seed=0),
        ("interpolate", "method"): lambda v: A.interpolate(vae, x[0], x[1], 5, method=v),
        ("get_backend", 0): lambda v: _backend_or_unavailable(v),
    }


def _backend_or_unavailable(name):
    try:
        return mv.get_backend(name)
    except mv.BackendUnavailable:  # "cupy" without a GPU: a known name, not available here
        return "unavailable"


def test_listed_alternatives_are_accepted(tiny):
    callers = _callers(tiny)
    seen = 0
    for where, span, module in CALL_SPANS:
        name, inside = CALL.fullmatch(span).groups()
        for position, arg in enumerate(Arg(a) for a in _split_top(inside, ",") if a):
            if len(arg.values) < 2:
                continue
            key = (name.split(".")[-1], arg.name if arg.name else position)
            assert key in callers, f"README ({where}) lists values {arg.values} for {key}: add a caller to _callers"
            for value in arg.values:
                result = callers[key](value)
                assert result is not None, f"{key} = {value!r}"
                seen += 1
    assert seen >= 10


def test_evaluation_claims(tiny):
    import microvae.applications as A
    import microvae.metrics as M

    x, vae, aae = tiny["x"], tiny["vae"], tiny["aae"]
    text = section("Evaluation")
    shown("`importance_log_weights` gives the (n, k) log weights", text)
    assert M.importance_log_weights(vae, x, k=3).shape == (len(x), 3)
    assert M.iwae_bound(vae, x, k=3).shape == (len(x),)
    shown("`log_mean_exp(a, axis)` the stable reduction", text)
    np.testing.assert_allclose(M.log_mean_exp(np.array([[1000.0, 1000.0]]), 1), [1000.0])
    shown("`roc_auc(scores, labels)` (rank-based, ties count ½)", text)
    assert M.roc_auc(np.array([1.0, 1.0]), np.array([0, 1])) == 0.5
    shown("`roc_curve(scores, labels)` → `(fpr, tpr, thresholds)`", text)
    curve = M.roc_curve(np.array([0.1, 0.4, 0.35, 0.8]), np.array([0, 0, 1, 1]))
    assert len(curve) == 3 and len(curve[0]) == len(curve[1]) == len(curve[2])
    shown("with `entropy`, `mutual_information` and `discretize` from histograms", text)
    codes = np.random.default_rng(0).standard_normal((50, 2))
    assert M.discretize(codes).shape == codes.shape
    assert 0 <= M.mutual_information_gap(codes, np.stack([codes[:, 0] > 0, codes[:, 1] > 0], 1).astype(int)) <= 1
    shown("An AAE has no ELBO: `metrics.elbo`/`iwae_bound` refuse it, `reconstruction_error` and "
          "`anomaly_scores(method=\"recon\")` take it", text)
    for refuses in (M.elbo, M.iwae_bound):
        with pytest.raises((TypeError, ValueError)):
            refuses(aae, x)
    assert M.reconstruction_error(aae, x).shape == (len(x),)
    assert M.anomaly_scores(aae, x, method="recon").shape == (len(x),)
    shown("Gaussian noise clipped to [0, 1] only when x lies there", text)
    noisy = A.add_noise(x, kind="gaussian", level=0.5, seed=0)
    assert noisy.min() >= 0 and noisy.max() <= 1
    assert A.add_noise(x * 5, kind="gaussian", level=0.5, seed=0).max() > 5 * x.max() - 1e-6  # not clipped outside [0, 1]
    shown("salt and pepper are 0 and 1", text)
    sp = A.add_noise(x, kind="salt_pepper", level=0.5, seed=0)
    changed = sp != x
    assert changed.any() and set(np.unique(sp[changed])) <= {0.0, 1.0}
    shown("or the data's min and max when it is not in [0, 1]", text)
    shifted = x * 5 + 1
    sp = A.add_noise(shifted, kind="salt_pepper", level=0.5, seed=0)
    assert set(np.unique(sp[sp != shifted])) <= {shifted.min(), shifted.max()}
    shown("unless `clip` says otherwise", text)
    assert A.add_noise(x, kind="gaussian", level=0.5, seed=0, clip=False).min() < 0
    shown("(`y`: the class, for a CVAE; an AAE's codes work too)", text)
    assert A.traverse(aae, x[0], 0, np.linspace(-2, 2, 5)).shape == (5, x.shape[1])
    shown("`denoising_report` (the PSNR gain; `data_range` 1 for [0, 1] data, else the data's span; given a sequence "
          "model's mask as `y` or `mask=`, it corrupts and measures only the real steps)", text)
    assert {"data_range", "mask"} <= set(inspect.signature(A.denoising_report).parameters)
    shown("`psnr` (`data_range` as `denoising_report` chooses it, unless given)", text)
    assert inspect.signature(A.psnr).parameters["data_range"].default is None
    assert A.psnr(x * 5, x * 5 + 0.1) == pytest.approx(A.psnr(x * 5, x * 5 + 0.1, data_range=float(np.ptp(x * 5))))


# 3. the model table ----------------------------------------------------------------------------
def model_rows() -> list[tuple[str, str, str]]:
    """(model, Python column, command-line column) of README's model table."""
    rows = []
    for line in section("Models").splitlines():
        cells = [c.strip() for c in re.split(r"(?<!\\)\|", line.strip())[1:-1]]
        if len(cells) == 4 and cells[2].startswith("`mv."):
            rows.append((cells[0], cells[2].strip("`"), cells[3].strip("`")))
    return rows


def test_model_table_is_parsed():
    assert [r[0] for r in model_rows()] == ["VAE", "β-VAE", "CVAE", "ConvVAE", "AAE", "VRAE", "HierarchicalVRAE"]


def test_convvae_sizes():
    """"NCHW, sides divisible by 4; or the strided variant, any size"."""
    shown("NCHW, sides divisible by 4; or the strided variant, any size", section("Models"))
    mv.ConvVAE((1, 32, 28))
    with pytest.raises(ValueError, match="divisible by 4"):
        mv.ConvVAE((1, 30, 30))
    for shape in ((1, 30, 30), (3, 7, 9)):
        assert mv.ConvVAE(shape, variant="strided").input_shape == shape


def _cli_args(fragment: str):
    argv = shlex.split(fragment.replace("[", "").replace("]", ""))
    if argv[:1] == ["microvae"]:
        argv = argv[1:]
    if argv[:1] != ["train"]:
        argv = ["train"] + argv
    return strict_parser().parse_args(argv), argv


@pytest.mark.parametrize("label, python, command", model_rows(), ids=[r[0] for r in model_rows()])
def test_model_table_row(label, python, command):
    call = CALL.fullmatch(python)
    assert call and call.group(1).startswith("mv."), python
    cls = resolve(call.group(1), mv)
    expr = re.sub(r"\(\s*\.\.\.\s*,\s*", "(", python)  # mv.VAE(..., beta=4): the row above's model, defaults here
    model = eval(expr, {"mv": mv})  # noqa: S307
    assert type(model) is cls
    if re.fullmatch(r"\w+", label):
        assert cls.__name__ == label, f"row {label} builds a {cls.__name__}"
    args = eval(re.sub(r"^[\w.]+\(", "(lambda *a, **k: (a, k))(", expr), {"mv": mv})  # noqa: S307
    bound = inspect.signature(cls).bind(*args[0], **args[1]).arguments
    for name, value in bound.items():
        held = getattr(model, name, None)
        if isinstance(held, (str, int, float, bool, tuple)) and not isinstance(value, (list, dict)):
            assert held == value, f"{python}: model.{name} is {held!r}"
    # the command-line column: it parses, and the options it gives agree with the Python column
    parsed, argv = _cli_args(command)
    if "--model" in argv:
        assert argv[argv.index("--model") + 1] in cli.MODELS
        assert cli.MODELS[argv[argv.index("--model") + 1]] is cli.MODELS[{"HierarchicalVRAE": "hvrae"}.get(
            cls.__name__, cls.__name__.lower())]
    given = {a.dest for a in _subparser("train")._actions if set(a.option_strings) & set(argv)}
    for name in given & set(bound):
        assert getattr(parsed, name) == bound[name], f"{command}: --{name} gives {getattr(parsed, name)!r}, {python} {bound[name]!r}"
    # and the command line builds that same model (its optional [...] parts left out); what the
    # data decides (input size, classes, likelihood) is compared only where the cell names --data
    plain, _ = _cli_args(re.sub(r"\[[^]]*\]", "", command))
    cli.check_model_options(plain)
    built = cli.MODELS[plain.model].build(plain, cli.load_data(plain.data, 60, plain.seed, flatten=plain.model != "convvae",
                                                               sequences=cli.MODELS[plain.model].sequences))
    from_data = set() if "--data" in argv else {"input_dim", "input_shape", "input_size", "num_classes", "likelihood"}
    python_config = {k: v for k, v in model.config.items() if k not in from_data}
    cli_config = {k: v for k, v in built.config.items() if k not in from_data}
    assert cli_config == python_config, f"{command} builds {built!r}; {python} builds {model!r}"


# 4. the command line ------------------------------------------------------------------------------
def strict_parser():
    """cli.build_parser() without prefix matching, so that README's ``--latent 8`` does not pass for ``--latent-dim``."""
    parser = cli.build_parser()
    parser.allow_abbrev = False
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                sub.allow_abbrev = False
    return parser


def _subparser(name: str):
    sub = next(a for a in strict_parser()._actions if isinstance(a, argparse._SubParsersAction))
    return sub.choices[name]


def _bash_commands() -> list[str]:
    out = []
    for match in FENCE.finditer(README):
        if match.group(1) in ("bash", "sh", "console", ""):
            text = match.group(2).replace("\\\n", " ")
            for line in text.splitlines():
                line = line.split(" #")[0] if not line.lstrip().startswith("#") else ""
                out += [part.strip() for part in line.split("&&") if part.strip().startswith("microvae ")]
    return out


def _expand(command: str) -> list[str]:
    """``--model a|b`` → one command per value (the other options at their first); ``[--x y]`` → with and without."""
    variants = [command]
    while any("[" in v for v in variants):
        v = next(v for v in variants if "[" in v)
        variants.remove(v)
        inner = re.search(r"\[([^\[\]]*)\]", v)
        variants += [v[: inner.start()] + inner.group(1) + v[inner.end() :], v[: inner.start()] + v[inner.end() :]]
    out = []
    for v in variants:
        tokens = shlex.split(v)
        first = [t.split("|")[0] for t in tokens]
        out.append(shlex.join(first))
        for i, t in enumerate(tokens):
            for alt in t.split("|")[1:]:
                out.append(shlex.join(first[:i] + [alt] + first[i + 1 :]))
    return list(dict.fromkeys(out))


def cli_commands() -> list[list[str]]:
    """Every ``microvae ...`` command of the README (code spans and bash blocks), as argv lists, expanded."""
    found = [s for s in spans(README) if s.startswith("microvae ")] + _bash_commands()
    argvs = [tuple(shlex.split(c)[1:]) for command in dict.fromkeys(found) for c in _expand(command)]
    return [list(argv) for argv in dict.fromkeys(argvs)]


def test_cli_commands_are_found():
    commands = cli_commands()
    assert ["gradcheck", "--explain"] in commands
    assert any(c[:1] == ["sample"] for c in commands)
    assert sum(c[:1] == ["train"] for c in commands) >= 10


@pytest.mark.parametrize("argv", cli_commands(), ids=[" ".join(c) for c in cli_commands()])
def test_cli_command_parses(argv, capsys):
    try:
        args = strict_parser().parse_args(argv)
    except SystemExit as exc:
        pytest.fail(f"README's `microvae {' '.join(argv)}` does not parse: {capsys.readouterr().err.strip()} ({exc})")
    if args.command == "train":
        assert args.model in cli.MODELS, f"--model {args.model}: not one of {list(cli.MODELS)}"
        cli.check_model_options(args)  # no option the model does not take


def test_cli_synopsis_lists_every_choice():
    """The ``train`` synopsis's ``--model a|b|...`` and ``--data a|b|...`` are exactly the CLI's choices,
    and every option of the synopsis exists."""
    synopsis = next(c for c in _bash_commands() if c.startswith("microvae train --model"))
    tokens = shlex.split(synopsis)
    models = tokens[tokens.index("--model") + 1].split("|")
    data = tokens[tokens.index("--data") + 1].split("|")
    assert models == list(cli.MODELS), f"README: {models}; the CLI: {list(cli.MODELS)}"
    assert tuple(data) == cli.DATASETS, f"README: {data}; the CLI: {cli.DATASETS}"
    assert _subparser("train")._option_string_actions["--data"].choices == cli.DATASETS
    options = [t.strip("[]") for t in tokens if t.strip("[]").startswith("-")]
    for option in ("--model", "--data", "--epochs", "--batch-size", "--latent-dim", "--lr", "--seed", "--backend", "--out"):
        assert option in options, f"{option} is no longer in README's synopsis: update this test"
    for option in options:
        assert option in _subparser("train")._option_string_actions, f"README's train synopsis has {option}; the CLI has not"
    backend = tokens[tokens.index("--backend") + 1]
    assert backend in _subparser("train")._option_string_actions["--backend"].choices
    for command, options in (("sample", ("-n", "--out", "--label", "--image-shape", "--length", "--draw-as")), ("gradcheck", ("--explain",))):
        line = next(c for c in _bash_commands() if c.startswith(f"microvae {command}"))
        for option in options:
            assert option in line, f"{option} is no longer in README's {command} line: update this test"
        for option in re.findall(r"(?<![\w-])(-{1,2}[a-z][\w-]*)", line):
            assert option in _subparser(command)._option_string_actions, f"README's `{line}`: {option} is not an option"


def test_cli_defaults_the_readme_states():
    """"The first command trains the textbook MLP VAE (hidden 512, 256; latent 2) on the built-in
    procedural **sprites** dataset (no download) for 10 epochs": `microvae train --out runs/first`."""
    shown("microvae train --out runs/first")
    defaults = strict_parser().parse_args(["train", "--out", "runs/first"])
    claims = [("the textbook MLP VAE", "model", "vae"), ("procedural **sprites** dataset", "data", "sprites"),
              ("**sprites** dataset (no download) for 10 epochs", "epochs", 10)]
    for phrase, dest, value in claims:
        shown(phrase, section("On a fresh machine"))
        assert getattr(defaults, dest) == value, f"README: {phrase!r}; `microvae train` defaults {dest} to {getattr(defaults, dest)!r}"
    # the model options left out take the model's defaults: what the command builds
    model = cli.MODELS[defaults.model].build(defaults, cli.load_data(defaults.data, 40, defaults.seed))
    shown("(hidden 512, 256; latent 2)", section("On a fresh machine"))
    assert model.hidden == (512, 256) and model.latent_dim == 2, model


@pytest.mark.parametrize("document", ["README.md", "bench/RESULTS.md"])
def test_implementation_names_in_the_measurements_exist(document):
    """The performance notes (the README's speed section and the full record in bench/RESULTS.md)
    name kernels, switches and settings: they must still exist (hand-written table; every entry
    is found verbatim in both documents)."""
    text = README if document == "README.md" else (ROOT / document).read_text(encoding="utf-8")
    kernels_source = "\n".join(p.read_text(encoding="utf-8") for p in (ROOT / "microvae" / "kernels").glob("*.py"))
    for kernel in ("relu_forward", "conv3x3_same", "conv3x3_same_weight_grad"):
        shown(f"`{kernel}`", text)
        assert re.search(rf"^def {kernel}\(", kernels_source, re.M), f"{document} names kernel {kernel}; microvae/kernels has none"
    shown("`microvae.layers.conv.DIRECT_3X3`", text)
    assert hasattr(resolve("microvae.layers.conv", mv), "DIRECT_3X3")
    shown("`fuse_relu=True`", text)
    assert inspect.signature(mv.ConvVAE).parameters["fuse_relu"].default is True
    shown('`activation="relu"`', text)
    assert "activation" in inspect.signature(mv.Conv2D).parameters
    mv.Conv2D(1, 2, 3, activation="relu")
    shown("`Backend('numpy', dtype='float32', kernels='compiled')`", text)
    assert mv.Backend("numpy", dtype="float32", kernels="compiled").dtype == np.float32
    if document == "README.md":  # the GPU paragraph stays in the README
        shown('`backend="cupy"`')
        assert "backend" in inspect.signature(mv.VAE).parameters


def test_install_claims_match_pyproject():
    """"It depends on NumPy, Numba and tqdm only; matplotlib (pictures) and CuPy (GPU) are optional
    extras", the ``pip install -e ".[extra]"`` lines, and the ``microvae`` command they install."""
    tomllib = pytest.importorskip("tomllib", reason="tomllib is in Python's standard library from 3.11")

    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    shown("It depends on NumPy, Numba and tqdm only; matplotlib (pictures) and CuPy (GPU) are optional extras")

    def names(requirements):
        return {re.match(r"[A-Za-z0-9_.-]+", r).group(0).lower() for r in requirements}

    assert names(project["project"]["dependencies"]) == {"numpy", "numba", "tqdm"}
    extras = project["project"]["optional-dependencies"]
    assert any("matplotlib" in names(v) for v in extras.values())
    assert any(any(n.startswith("cupy") for n in names(v)) for v in extras.values())
    asked = re.findall(r'pip install -e "\.\[([\w,-]+)\]"', README)
    assert asked, "README's install lines changed their form: update this test"
    for extra in (e for group in asked for e in group.split(",")):
        assert extra in extras, f"README installs the extra [{extra}]; pyproject.toml has {sorted(extras)}"
    assert "matplotlib" in names(extras["dev"])  # "matplotlib is installed (dev extra)": the tests draw pictures
    module, _, function = project["project"]["scripts"]["microvae"].partition(":")
    assert getattr(importlib.import_module(module), function) is cli.main
    shown("MIT: see `LICENSE`")  # an SPDX string, and the file it ships (the TOML table is deprecated)
    assert project["project"]["license"] == "MIT" and project["project"]["license-files"] == ["LICENSE"]
    assert (ROOT / "LICENSE").read_text(encoding="utf-8").startswith("MIT License")


# 5. files the README points to ------------------------------------------------------------------
def test_files_the_readme_names_exist():
    paths = re.findall(r"\]\(([^)\s]+)\)", README)  # Markdown links and images
    paths += re.findall(r"(?<![\w/.])((?:bench|microvae|tests|notebooks|\.ci)/[\w./*-]*)", README)
    missing = []
    for path in dict.fromkeys(paths):
        if "://" in path:
            continue
        if not (glob.glob(str(ROOT / path)) or glob.glob(str(ROOT / path) + "*")):
            missing.append(path)
    assert not missing, f"README names files that do not exist: {missing}"
    shown("`VAE._objective` in `microvae/models/vae.py`")
    assert callable(mv.VAE._objective) and mv.VAE._objective.__module__ == "microvae.models.vae"
    run = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    shown("runs exactly `python3 -m pytest -q`")
    assert re.search(r"^python3 -m pytest -q$", run, re.M)
    # "does the second line's installs": the same Debian packages
    readme_packages = re.search(r"apt-get install -y ([^&\n]+?) &&", README).group(1).split()
    assert re.search(r"^apt-get install -y (.+)$", run, re.M).group(1).split() == readme_packages


def test_figures_under_the_pictures_are_the_notebooks_stored_outputs():
    """The captions of "What they produce" quote figures that the notebooks print (and
    tests/test_notebooks.py holds those outputs to a fresh run)."""
    quoted = [  # (the caption's words, the notebook, what its stored outputs print)
        ("labels 72.5 % of them as asked", "04_conditional_vae", "learned prior 0.725"),
        ("with the N(0, I) prior, 19.6 %", "04_conditional_vae", "N(0, I) prior 0.196"),
        ("MMD² to the prior fell from 0.549 to 0.025", "06_aae_and_recurrent_models", "0.549 untrained ->  0.025 trained"),
        ("0.166 to the image's own pixels, 0.261 to another image's", "06_aae_and_recurrent_models",
         "own image 0.166, another image 0.261"),
    ]
    for words, notebook, printed in quoted:
        shown(words, section("Models"))
        nb = json.loads((ROOT / "notebooks" / f"{notebook}.ipynb").read_text(encoding="utf-8"))
        text = "".join("".join(o.get("text", "")) for c in nb["cells"] if c["cell_type"] == "code" for o in c["outputs"])
        assert printed in text, f"README quotes {words!r}; {notebook} prints no {printed!r}"


def test_history_json_writes_non_finite_values_as_null(tmp_path):
    """"`History.to_json` writes a NaN or ±Inf value as null"."""
    shown("`History.to_json` writes a NaN or ±Inf value as null")
    mv.History([{"epoch": 1, "loss": float("nan"), "kl": float("-inf")}]).to_json(tmp_path / "h.json")
    assert json.loads((tmp_path / "h.json").read_text()) == [{"epoch": 1, "loss": None, "kl": None}]
