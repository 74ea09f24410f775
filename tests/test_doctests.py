"""The worked examples in the docstrings of ``domain/`` (and of the modules in
``OTHER_MODULES``) run as tests (the suite's addopts do not
collect doctests on their own)."""

from __future__ import annotations

import doctest
import importlib
import pkgutil

import pytest

import domain

OTHER_MODULES = ["index.formats", "adapters.choice", "app.wiring.estimates"]
MODULES = sorted(m.name for m in pkgutil.iter_modules(domain.__path__, "domain.")) + OTHER_MODULES


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples_hold(name: str) -> None:
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
    assert result.failed == 0, f"{result.failed} of {result.attempted} examples failed in {name}"
