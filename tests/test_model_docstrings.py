"""Each model's class docstring lists its constructor's arguments, as ``help(microvae.VAE)`` shows them.

``__init__`` has no docstring of its own ("Initialize self"), so the class docstring's
"Parameters" section is where a reader finds what each argument is and takes. An entry is a
line "name : ..." (or "a, b : ...") at the section's left margin; the entries must name the
signature's parameters exactly, neither missing one nor keeping one that is gone.
"""

import inspect
import re

import pytest

import microvae
from microvae.likelihoods import LIKELIHOOD_NAMES, get_likelihood
from microvae.models.conv_vae import VARIANTS
from microvae.models.cvae import CONDITION_POINTS
from microvae.models.vrae import CELLS

MODELS = [microvae.VAE, microvae.CVAE, microvae.ConvVAE, microvae.AAE, microvae.VRAE, microvae.HierarchicalVRAE]


def parameters_section(cls) -> str:
    """The text of the class docstring's "Parameters" section, up to the next heading or the end."""
    doc = inspect.getdoc(cls)
    found = re.search(r"^Parameters\n-{10,}\n(.*?)(?=^\S[^\n]*\n-{3,}\n|\Z)", doc, re.M | re.S)
    assert found, f"{cls.__name__}'s docstring has no Parameters section"
    return found.group(1)


def documented_names(section: str) -> list:
    """The names of the section's entries: "name : ..." or "a, b, c : ..." at the left margin."""
    names = []
    for entry in re.findall(r"^(\w+(?:, \w+)*) : ", section, re.M):
        names += entry.split(", ")
    return names


def constructor_names(cls) -> list:
    return [name for name in inspect.signature(cls.__init__).parameters if name != "self"]


@pytest.mark.parametrize("cls", MODELS, ids=lambda cls: cls.__name__)
def test_every_constructor_argument_is_documented(cls):
    documented = documented_names(parameters_section(cls))
    expected = constructor_names(cls)
    assert len(documented) == len(set(documented)), f"{cls.__name__}: an argument is listed twice: {documented}"
    missing = [name for name in expected if name not in documented]
    stale = [name for name in documented if name not in expected]
    assert not missing, f"{cls.__name__}'s Parameters section does not list {missing}"
    assert not stale, f"{cls.__name__}'s Parameters section lists {stale}, which {cls.__name__}() does not take"


def test_the_entries_are_found():
    # the parser itself: a section it read as empty would pass the test above for no model
    assert documented_names("a : x\n    b : indented, not an entry\nc, d : y\n") == ["a", "c", "d"]
    assert constructor_names(microvae.VAE)[:3] == ["input_dim", "hidden", "latent_dim"]


@pytest.mark.parametrize("cls", MODELS, ids=lambda cls: cls.__name__)
def test_likelihood_names_are_in_the_docstring(cls):
    # LIKELIHOOD_NAMES is what get_likelihood's error message and the CLI's --likelihood list
    section = parameters_section(cls)
    for name in LIKELIHOOD_NAMES:
        assert f'"{name}"' in section, f"{cls.__name__}'s Parameters section does not name the likelihood {name!r}"


@pytest.mark.parametrize("cls, argument, choices", [
    (microvae.CVAE, "condition_at", CONDITION_POINTS),
    (microvae.ConvVAE, "variant", VARIANTS),
    (microvae.VRAE, "cell", tuple(CELLS)),
    (microvae.HierarchicalVRAE, "cell", tuple(CELLS)),
], ids=lambda value: getattr(value, "__name__", None))
def test_named_choices_are_in_the_docstring(cls, argument, choices):
    # the choices the constructor checks against, from the constants it checks with
    entry = re.search(rf"^{argument} : (.*(?:\n +.*)*)", parameters_section(cls), re.M)
    assert entry, f"{cls.__name__}: no entry for {argument}"
    for choice in choices:
        assert f'"{choice}"' in entry.group(1), f"{cls.__name__}'s {argument} entry does not name {choice!r}"


def test_likelihood_names_are_what_get_likelihood_takes():
    # every listed name builds a likelihood that gives the name back as its config, and a name
    # it does not list is refused with the list in the message
    assert {get_likelihood(name).config() for name in LIKELIHOOD_NAMES} == set(LIKELIHOOD_NAMES)
    with pytest.raises(ValueError) as refused:
        get_likelihood("poisson")
    assert all(repr(name) in str(refused.value) for name in LIKELIHOOD_NAMES)
