from __future__ import annotations

import subprocess
import sys

import pytest

import analysis


def test_import_is_light_and_exports_resolve_lazily():
    """Importing analysis loads neither lifelines nor matplotlib; every name in __all__ then resolves."""
    code = "import sys, analysis; print('lifelines' in sys.modules or 'matplotlib' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
    for name in analysis.__all__:
        assert getattr(analysis, name) is not None
    assert callable(analysis.survival) and callable(analysis.rates)


def test_unknown_attribute_raises_attribute_error():
    """A name the package does not export raises AttributeError naming it."""
    with pytest.raises(AttributeError, match="no attribute 'nonsense'"):
        analysis.nonsense  # noqa: B018
