"""Make the plugin importable when its tests run from a source checkout.

pytest puts this folder (the project root of the plugin) on ``sys.path``, so
``import astro_cl_toy`` works without installing the package first. After
``pip install -e .`` the installed copy is the same code.
"""
