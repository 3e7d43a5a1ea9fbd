"""Shared fixtures: the real data beside the project, and a clean plugin registry."""

import os
from pathlib import Path

import pytest

# The real data sets live in ../shared/data from the project root (never copied
# into the repo); ASTRO_CL_TEST_DATA points elsewhere.
SHARED_DATA = Path(
    os.environ.get("ASTRO_CL_TEST_DATA", Path(__file__).resolve().parents[1].parent / "shared" / "data")
)


@pytest.fixture(scope="session")
def shared_data():
    """Path to the real test data, or skip when it is not beside the project.

    Under CI (``CI`` set in the environment) the data must be there: a missing
    folder fails the tests that need it instead of skipping them silently.
    """
    if not SHARED_DATA.is_dir():
        msg = f"real test data not found at {SHARED_DATA} (set ASTRO_CL_TEST_DATA)"
        if os.environ.get("CI", "").lower() not in ("", "0", "false"):
            pytest.fail(f"{msg}; CI must run the tests that need it", pytrace=False)
        pytest.skip(msg)
    return SHARED_DATA


@pytest.fixture
def fresh_registry():
    """Reset the plugin registry before and after a test."""
    from astro_cl.plugins.registry import reset_registry

    reset_registry()
    yield
    reset_registry()


@pytest.fixture(scope="session")
def docs_script():
    """Return a loader of the science scripts in ``docs/science`` (not a package).

    ``docs_script("gz1_search")`` imports ``docs/science/gz1_search.py`` once per
    session under a private module name.
    """
    import importlib.util

    folder = Path(__file__).resolve().parents[1] / "docs" / "science"
    loaded = {}

    def load(name):
        if name not in loaded:
            spec = importlib.util.spec_from_file_location(f"_docs_science_{name}",
                                                          folder / f"{name}.py")
            module = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(module)
            loaded[name] = module
        return loaded[name]

    return load
