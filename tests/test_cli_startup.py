"""The command line starts without astropy or torch; the warnings still subclass astropy's."""

import os
import pickle
import subprocess
import sys
import textwrap

import pytest

from astro_cl.plugins import hookspecs

PROBE = "import sys; {code}; print(sorted({{'astropy', 'torch'}} & set(sys.modules)))"


def _loaded_heavy_modules(code, env=None):
    """Run ``code`` in a fresh interpreter; return which of astropy/torch it imported."""
    full_env = {**os.environ, **(env or {})}
    out = subprocess.run([sys.executable, "-c", PROBE.format(code=code)], env=full_env,
                         capture_output=True, text=True, check=True)
    return out.stdout.strip().splitlines()


def test_exceptions_and_parser_import_neither_astropy_nor_torch():
    code = ("import astro_cl.exceptions; from astro_cl.exceptions import ValidationError; "
            "from astro_cl.cli import build_parser; build_parser()")
    assert _loaded_heavy_modules(code)[-1] == "[]"


def test_warnings_still_subclass_astropy_user_warning():
    from astropy.utils.exceptions import AstropyUserWarning

    import astro_cl
    from astro_cl.exceptions import AstroCLWarning, PluginWarning

    assert issubclass(AstroCLWarning, AstropyUserWarning)
    assert issubclass(PluginWarning, AstroCLWarning)
    assert astro_cl.AstroCLWarning is AstroCLWarning
    assert AstroCLWarning.__module__ == "astro_cl.exceptions"
    assert type(pickle.loads(pickle.dumps(PluginWarning("x")))) is PluginWarning
    with pytest.warns(AstropyUserWarning, match="seen"):
        import warnings

        warnings.warn("seen", PluginWarning)
    import astro_cl.exceptions as exceptions

    with pytest.raises(AttributeError, match="NoSuchWarning"):
        exceptions.NoSuchWarning  # noqa: B018


def test_plugins_command_lists_builtins_without_astropy_or_torch(fresh_registry, monkeypatch):
    code = "from astro_cl.cli import main; main(['plugins'])"
    out = _loaded_heavy_modules(code, env={"ASTRO_CL_DISABLE_PLUGIN_AUTOLOAD": "1"})
    assert out[-1] == "[]"
    from astro_cl.plugins.registry import list_components

    monkeypatch.setenv("ASTRO_CL_DISABLE_PLUGIN_AUTOLOAD", "1")
    listed = [line.split()[:2] for line in out[1:-1]]
    assert listed == [[c.kind, c.name] for c in list_components()]
    assert [kind for kind, _ in listed if kind == "preprocessor"] == ["preprocessor"] * 2
    only = _loaded_heavy_modules("from astro_cl.cli import main; main(['plugins', '--kind', "
                                 "'preprocessor'])", env={"ASTRO_CL_DISABLE_PLUGIN_AUTOLOAD": "1"})
    assert [line.split()[:2] for line in only[1:-1]] == [["preprocessor", "cube-pca"],
                                                         ["preprocessor", "image-scaler"]]
    assert only[-1] == "[]"


def test_builtin_list_is_what_the_builtin_plugins_register(fresh_registry, monkeypatch):
    from astro_cl.plugins import _builtins
    from astro_cl.plugins.registry import list_components

    monkeypatch.setenv("ASTRO_CL_DISABLE_PLUGIN_AUTOLOAD", "1")
    real = list_components()
    classes = sorted((c.kind, f"{c.cls.__module__}.{c.cls.__qualname__}") for c in real)
    assert classes == sorted(_builtins.BUILTIN_COMPONENTS), "update astro_cl/plugins/_builtins.py"

    def no_import(path):
        raise AssertionError(f"{path}: name/description not readable from its source")

    # every built-in class is read from its source, none imported
    monkeypatch.setattr(_builtins, "_import_class_attributes", no_import)
    fast = [(c.kind, c.name, c.distribution, c.version, c.description)
            for c in _builtins.component_summaries()]
    assert fast == [(c.kind, c.name, c.distribution, c.version, c.description) for c in real]
    only = _builtins.component_summaries(["task", "encoder"])
    counts = {kind: sum(k == kind for k, _ in _builtins.BUILTIN_COMPONENTS)
              for kind in ("task", "encoder")}
    assert [c.kind for c in only] == ["task"] * counts["task"] + ["encoder"] * counts["encoder"]
    with pytest.raises(ValueError, match="unknown component kind 'widget'"):
        _builtins.component_summaries(["widget"])


def test_class_statement_reader_falls_back_to_importing(tmp_path, monkeypatch):
    from astro_cl.plugins import _builtins

    source = (
        "class A:\n"
        '    """Doc line.\n\nunindented docstring line\n    """\n\n'
        '    name = "a"\n    def f(self):\n        name = "wrong"\n\n'
        "class B(A):\n    description = 'inherits its name'\n")
    (tmp_path / "mod.py").write_text(source)
    monkeypatch.setattr(_builtins, "_PACKAGE_DIR", tmp_path)
    assert _builtins._read_class_attributes("astro_cl.mod.A") == ("a", "Doc line.")
    assert _builtins._read_class_attributes("astro_cl.mod.B") is None  # name inherited
    assert _builtins._read_class_attributes("astro_cl.mod.C") is None
    assert _builtins._read_class_attributes("astro_cl.missing.A") is None


def test_plugins_command_with_a_third_party_survey_loads_only_that_kind(tmp_path):
    site = tmp_path / "site"
    site.mkdir()
    (site / "plug_fast.py").write_text(textwrap.dedent("""
        from astro_cl import hookimpl
        from astro_cl.surveys import Survey

        class FastSurvey(Survey):
            name = "fast-survey"
            description = "A third-party test survey."

        @hookimpl
        def astro_cl_register_surveys(register):
            register(FastSurvey)
    """))
    info = site / "plug_fast-0.2.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: plug-fast\nVersion: 0.2.0\n")
    (info / "entry_points.txt").write_text(f"[{hookspecs.ENTRY_POINT_GROUP}]\nfast = plug_fast\n")
    env = {"PYTHONPATH": str(site), "ASTRO_CL_DISABLE_PLUGIN_AUTOLOAD": ""}
    out = _loaded_heavy_modules("from astro_cl.cli import main; main(['plugins'])", env=env)
    fast = [line for line in out if "fast-survey" in line]
    assert fast and "plug-fast" in fast[0] and "0.2.0" in fast[0], out
    assert any(" in-memory " in line for line in out) and any(" simclr " in line for line in out)
    # surveys went through the registry (astropy); augmenters and encoders did not (torch)
    assert out[-1] == "['astropy']"
