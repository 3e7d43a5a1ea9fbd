"""pytest configuration of the documentation tests (``python -m pytest docs``).

The ``>>>`` examples of the ``.rst`` pages are collected by pytest-doctestplus.
Generated output (the HTML build, the executed gallery and the API stubs) is
not documentation source: importing the gallery's copies of the tutorials would
run them, so they are left out.
"""

collect_ignore_glob = ["_build/*", "auto_examples/*", "api/*"]
collect_ignore = ["conftest.py"]
