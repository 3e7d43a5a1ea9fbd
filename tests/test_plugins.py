"""Plugin discovery through real entry points, and one test per failure mode."""

import os
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path

import numpy as np
import pytest

import astro_cl
from astro_cl.exceptions import PluginError, PluginWarning, UnknownComponentError, ValidationError
from astro_cl.plugins import hookspecs, registry
from astro_cl.plugins.registry import (
    KINDS,
    available_components,
    get_component_class,
    get_survey,
    list_components,
    register_component,
)

EXAMPLE_PLUGIN = Path(__file__).parent / "example_plugin"


def install_fake_distribution(site, dist, entry_points, version="0.1.0"):
    """Expose a distribution through a .dist-info folder on a path entry."""
    info = site / f"{dist.replace('-', '_')}-{version}.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\n")
    lines = "\n".join(f"{name} = {target}" for name, target in entry_points.items())
    (info / "entry_points.txt").write_text(f"[{hookspecs.ENTRY_POINT_GROUP}]\n{lines}\n")


@pytest.fixture
def site(tmp_path, monkeypatch, fresh_registry):
    """A temporary site directory on sys.path; modules imported from it are forgotten."""
    site = tmp_path / "site"
    site.mkdir()
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.delenv("ASTRO_CL_DISABLE_PLUGIN_AUTOLOAD", raising=False)
    before = set(sys.modules)
    yield site
    for name in set(sys.modules) - before:
        del sys.modules[name]


def write_module(site, name, source):
    (site / f"{name}.py").write_text(textwrap.dedent(source))


GOOD_SURVEY = """
    from astro_cl import hookimpl
    from astro_cl.surveys import Survey

    class {cls}(Survey):
        name = "{name}"
        description = "A test survey."

    @hookimpl
    def astro_cl_register_surveys(register):
        register({cls})
"""


def make_toy_data(folder, n=3):
    folder.mkdir()
    rng = np.random.default_rng(1)
    rows = ["id,redshift"]
    for i in range(n):
        np.save(folder / f"gal{i}.npy", rng.lognormal(size=(5, 8, 8)).astype(np.float32))
        rows.append(f"gal{i},{0.01 * (i + 1)}")
    (folder / "catalogue.csv").write_text("\n".join(rows) + "\n")


def test_builtins_are_registered_through_the_hooks(fresh_registry):
    infos = list_components()
    assert {i.kind for i in infos} <= set(KINDS)
    memory = next(i for i in infos if i.name == "in-memory")
    assert memory.builtin and memory.distribution == "astro_cl"
    assert memory.plugin == "astro_cl.surveys._plugin"


def test_builtin_preprocessors_are_registered_through_their_hook(fresh_registry):
    from astro_cl.preprocess import CubePCA, ImageScaler, build_preprocessor, get_preprocessor_class

    infos = {i.name: i for i in list_components(["preprocessor"])}
    assert {n: i.cls for n, i in infos.items()} == {"cube-pca": CubePCA,
                                                    "image-scaler": ImageScaler}
    assert {i.plugin for i in infos.values()} == {"astro_cl.preprocess._plugin"}
    assert get_preprocessor_class("image-scaler") is ImageScaler
    assert isinstance(astro_cl.plugins.get_preprocessor("cube-pca", n_components=3), CubePCA)
    with pytest.raises(ValidationError, match="unknown preprocessor 'nope'; available "
                                              "preprocessors: cube-pca, image-scaler"):
        build_preprocessor({"name": "nope"})


PLAIN_PREPROCESSOR = """
    import numpy as np
    from astro_cl.preprocess import Preprocessor

    class {cls}(Preprocessor):
        name = "{name}"
        description = "A test preprocessor."

        def _fit_arrays(self, X):
            pass

        def _transform_arrays(self, X):
            X = np.asarray(X, np.float32)
            return X, np.zeros(X.shape, bool), None
"""


@pytest.fixture
def runtime_registrations(monkeypatch, fresh_registry):
    """Forget the classes a test registers at run time."""
    monkeypatch.setattr(registry, "_RUNTIME", [])


def test_register_preprocessor_joins_the_registry_and_survives_a_reset(runtime_registrations,
                                                                       tmp_path):
    from astro_cl.preprocess import Preprocessor, build_preprocessor, register_preprocessor

    namespace = {}
    exec(textwrap.dedent(PLAIN_PREPROCESSOR.format(cls="Doubler", name="doubler")), namespace)
    doubler = namespace["Doubler"]
    assert register_preprocessor(doubler) is doubler
    assert register_preprocessor(doubler) is doubler  # again: nothing happens
    info = next(i for i in list_components(["preprocessor"]) if i.name == "doubler")
    assert (info.cls, info.builtin, info.distribution) == (doubler, False,
                                                           registry.RUNTIME_DISTRIBUTION)
    registry.reset_registry()
    assert isinstance(build_preprocessor({"name": "doubler"}), doubler)
    saved = build_preprocessor({"name": "doubler"}).fit(np.ones((1, 1, 2, 2))).save(tmp_path)
    assert type(Preprocessor.load(saved)) is doubler  # load finds the class by name
    assert registry.runtime_registrations() == (("preprocessor", doubler),)
    assert "preprocessor" in {c.kind for c in astro_cl.plugins.component_summaries()
                              if c.name == "doubler"}


def test_register_component_refuses_clashes_and_wrong_classes(runtime_registrations):
    namespace = {}
    exec(textwrap.dedent(PLAIN_PREPROCESSOR.format(cls="Clash", name="cube-pca")), namespace)
    with pytest.raises(PluginError, match="'cube-pca' of .*Clash is already taken by "
                                          "astro_cl.preprocess.cube_pca.CubePCA"):
        register_component("preprocessor", namespace["Clash"])
    with pytest.raises(PluginError, match="does not subclass astro_cl.preprocess.base"):
        register_component("preprocessor", dict)
    with pytest.raises(ValueError, match="unknown component kind 'widget'"):
        register_component("widget", dict)
    assert registry.runtime_registrations() == ()


def test_a_plugin_loaded_later_keeps_a_name_registered_at_run_time(runtime_registrations, site):
    namespace = {}
    exec(textwrap.dedent(PLAIN_PREPROCESSOR.format(cls="Mine", name="shared")), namespace)
    register_component("preprocessor", namespace["Mine"])
    write_module(site, "plug_shared", PLAIN_PREPROCESSOR.format(cls="Theirs", name="shared") + """
    from astro_cl import hookimpl

    @hookimpl
    def astro_cl_register_preprocessors(register):
        register(Theirs)
    """)
    install_fake_distribution(site, "plug-shared", {"shared": "plug_shared"})
    registry.reset_registry()
    with pytest.warns(PluginWarning, match="Mine registered at run time: a plugin of "
                                           "plug-shared registered the name 'shared'"):
        assert get_component_class("preprocessor", "shared").__name__ == "Theirs"


def test_registering_while_the_plugins_load_is_a_plugin_error(runtime_registrations, site):
    write_module(site, "plug_eager", PLAIN_PREPROCESSOR.format(cls="Eager", name="eager") + """
    from astro_cl.preprocess import register_preprocessor

    register_preprocessor(Eager)  # at import, while the registry loads this plugin
    """)
    write_module(site, "plug_in_hook", PLAIN_PREPROCESSOR.format(cls="InHook", name="in-hook")
                 + """
    from astro_cl import hookimpl
    from astro_cl.preprocess import register_preprocessor

    @hookimpl
    def astro_cl_register_preprocessors(register):
        register_preprocessor(InHook)  # not the register argument
    """)
    install_fake_distribution(site, "plug-eager", {"eager": "plug_eager"})
    install_fake_distribution(site, "plug-in-hook", {"in_hook": "plug_in_hook"})
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        names = available_components("preprocessor")
    messages = [str(w.message) for w in _only_plugin_warnings(record)]
    assert len(messages) == 2, messages
    assert "plug-eager" in messages[0] and "while the plugins are being loaded" in messages[0]
    assert "plug-in-hook" in messages[1] and "while the astro_cl_register_preprocessors hooks run" \
        in messages[1]
    assert names == ["cube-pca", "image-scaler"]


def test_example_plugin_is_discovered_through_its_entry_point(site, tmp_path):
    sys.path.insert(0, str(EXAMPLE_PLUGIN))
    try:
        install_fake_distribution(site, "astro-cl-toy", {"toy": "astro_cl_toy"})
        toy = {i.name: i for i in list_components() if i.distribution == "astro-cl-toy"}
        assert {(i.kind, n) for n, i in toy.items()} == {
            ("survey", "toy"), ("preprocessor", "toy-percentile"), ("augmenter", "toy-gain"),
            ("encoder", "toy-autoencoder"), ("task", "toy-isolation")}
        info = toy["toy"]
        assert (info.distribution, info.version, info.builtin) == ("astro-cl-toy", "0.1.0", False)
        make_toy_data(tmp_path / "toy")
        survey = get_survey("toy", path=tmp_path / "toy")
        from astro_cl.augment import build_augmenter
        from astro_cl.preprocess import build_preprocessor
        from astro_cl.testing import check_augmenter, check_preprocessor, check_survey

        check_survey(survey)
        assert survey["gal1"].observing.redshift == pytest.approx(0.02)
        assert survey.to_tensors().data.shape == (3, 5, 8, 8)
        scaler = build_preprocessor({"name": "toy-percentile", "percentile": 95.0})
        check_preprocessor(scaler, survey)
        chain = build_augmenter([{"name": "random-flip"}, {"name": "toy-gain", "p": 0.5}])
        check_augmenter(chain, survey.to_tensors())
    finally:
        sys.path.remove(str(EXAMPLE_PLUGIN))


def test_cli_lists_and_reads_a_separately_installed_plugin(tmp_path):
    site = tmp_path / "site"
    install_fake_distribution(site, "astro-cl-toy", {"toy": "astro_cl_toy"})
    env = {"PYTHONPATH": f"{site}:{EXAMPLE_PLUGIN}", "PATH": "/usr/bin:/bin"}
    out = subprocess.run([sys.executable, "-m", "astro_cl.cli", "plugins"], env=env,
                         capture_output=True, text=True, check=True)
    toy = [line.split()[:4] for line in out.stdout.splitlines() if "astro-cl-toy" in line]
    assert toy == [["survey", "toy", "astro-cl-toy", "0.1.0"],
                   ["preprocessor", "toy-percentile", "astro-cl-toy", "0.1.0"],
                   ["augmenter", "toy-gain", "astro-cl-toy", "0.1.0"],
                   ["encoder", "toy-autoencoder", "astro-cl-toy", "0.1.0"],
                   ["task", "toy-isolation", "astro-cl-toy", "0.1.0"]], out.stdout
    assert "in-memory" in out.stdout and " cube-pca " in out.stdout


def test_disable_autoload(site, monkeypatch):
    write_module(site, "plug_ok", GOOD_SURVEY.format(cls="OkSurvey", name="ok-survey"))
    install_fake_distribution(site, "plug-ok", {"ok": "plug_ok"})
    monkeypatch.setenv("ASTRO_CL_DISABLE_PLUGIN_AUTOLOAD", "1")
    assert "ok-survey" not in available_components("survey")
    assert "in-memory" in available_components("survey")


def test_unknown_name_lists_available_names(fresh_registry):
    with pytest.raises(UnknownComponentError, match=r"no survey named 'nope'; available surveys:.*in-memory"):
        get_component_class("survey", "nope")
    with pytest.raises(ValueError, match="unknown component kind"):
        available_components("widget")


def _only_plugin_warnings(record):
    return [w for w in record if issubclass(w.category, PluginWarning)]


def assert_one_warning_and_others_work(site, dist, match):
    write_module(site, "plug_ok", GOOD_SURVEY.format(cls="OkSurvey", name="ok-survey"))
    install_fake_distribution(site, "plug-ok", {"ok": "plug_ok"})
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        names = available_components("survey")
    found = _only_plugin_warnings(record)
    assert len(found) == 1, [str(w.message) for w in record]
    message = str(found[0].message)
    assert dist in message
    assert match in message, message
    assert "ok-survey" in names and "in-memory" in names
    return names


def test_plugin_that_fails_to_import(site):
    write_module(site, "plug_broken", "raise ImportError('numpy 1.0 required')\n")
    install_fake_distribution(site, "plug-broken", {"broken": "plug_broken"})
    assert_one_warning_and_others_work(site, "plug-broken", 'Error importing plugin "broken"')


def test_plugin_hook_that_raises(site):
    write_module(site, "plug_raises", """
        from astro_cl import hookimpl

        @hookimpl
        def astro_cl_register_surveys(register):
            raise RuntimeError("boom")
    """)
    install_fake_distribution(site, "plug-raises", {"raises": "plug_raises"})
    assert_one_warning_and_others_work(site, "plug-raises", "RuntimeError: boom")


def test_plugin_with_duplicate_name(site):
    write_module(site, "plug_dup", GOOD_SURVEY.format(cls="Dup", name="in-memory"))
    install_fake_distribution(site, "plug-dup", {"dup": "plug_dup"})
    assert_one_warning_and_others_work(site, "plug-dup", "already taken")
    assert get_component_class("survey", "in-memory").__module__ == "astro_cl.surveys.memory"


def test_plugin_registering_a_non_subclass(site):
    write_module(site, "plug_wrong", """
        from astro_cl import hookimpl

        class NotASurvey:
            name = "wrong"

        @hookimpl
        def astro_cl_register_surveys(register):
            register(NotASurvey)
    """)
    install_fake_distribution(site, "plug-wrong", {"wrong": "plug_wrong"})
    names = assert_one_warning_and_others_work(site, "plug-wrong", "does not subclass")
    assert "wrong" not in names


def test_plugin_registering_a_class_without_name(site):
    write_module(site, "plug_noname", GOOD_SURVEY.format(cls="NoName", name=""))
    install_fake_distribution(site, "plug-noname", {"noname": "plug_noname"})
    assert_one_warning_and_others_work(site, "plug-noname", "without a 'name'")


def test_plugin_with_unknown_hook(site):
    write_module(site, "plug_typo", """
        from astro_cl import hookimpl

        @hookimpl
        def astro_cl_register_survey(register):  # typo: no such hook
            pass
    """)
    install_fake_distribution(site, "plug-typo", {"typo": "plug_typo"})
    assert_one_warning_and_others_work(site, "plug-typo", "unknown hook")


def test_every_hook_is_documented():
    docs = (Path(__file__).parents[1] / "docs" / "plugins.rst").read_text()
    hooks = [n for n in dir(hookspecs) if n.startswith("astro_cl_register_")]
    assert sorted(hooks) == sorted(hook for hook, _ in KINDS.values())
    assert len(hooks) == 5
    for name in hooks:
        assert getattr(hookspecs, name).__doc__, name
        assert name in docs, f"{name} is not documented in docs/plugins.rst"


def test_hookimpl_is_exported():
    assert astro_cl.hookimpl is hookspecs.hookimpl


def test_preprocessors_and_the_augment_interface_do_not_import_torch():
    code = ("import sys, astro_cl.augment; from astro_cl.augment import Compose, build_augmenter; "
            "from astro_cl.plugins.registry import available_components; "
            "assert available_components('preprocessor'); print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={**os.environ, "ASTRO_CL_DISABLE_PLUGIN_AUTOLOAD": "1"})
    assert out.stdout.strip() == "False"
