"""astro_cl's own components, listed without importing them, for ``astro-cl plugins``.

Listing a component through the registry imports its class, and so torch
(augmenters, encoders) and astropy (surveys, preprocessors, tasks): seconds, for a command
that prints a table. `component_summaries` instead reads the ``name`` and
``description`` of each class in `BUILTIN_COMPONENTS` from its source file
(just the class statement and its class attributes, not the whole module),
and goes through the registry only for the kinds to which an installed
third-party plugin contributes. A class whose attributes cannot be read that
way is imported. A test checks that `BUILTIN_COMPONENTS` is exactly what the
built-in plugins register, and that the listing equals the registry's.
"""

import ast
import os
import re
from dataclasses import dataclass
from pathlib import Path

__all__ = ["BUILTIN_COMPONENTS", "ComponentSummary", "component_summaries"]

#: ``(kind, "module.Class")`` of every class the built-in plugins register.
BUILTIN_COMPONENTS = (
    ('survey', 'astro_cl.surveys.ecalifa.ECALIFASurvey'),
    ('survey', 'astro_cl.surveys.ecalifa_mock.ECALIFAMockSurvey'),
    ('survey', 'astro_cl.surveys.image_folder.ImageFolderSurvey'),
    ('survey', 'astro_cl.surveys.memory.InMemorySurvey'),
    ('survey', 'astro_cl.surveys.manga.MaNGASurvey'),
    ('survey', 'astro_cl.surveys.pipe3d.Pipe3DSurvey'),
    ('survey', 'astro_cl.surveys.sdss.SDSSSurvey'),
    ('survey', 'astro_cl.surveys.sdss_mock.SDSSMockSurvey'),
    ('preprocessor', 'astro_cl.preprocess.cube_pca.CubePCA'),
    ('preprocessor', 'astro_cl.preprocess.images.ImageScaler'),
    ('augmenter', 'astro_cl.augment.colour.ColourJitter'),
    ('augmenter', 'astro_cl.augment.compose.Compose'),
    ('augmenter', 'astro_cl.augment.geometric.CropResize'),
    ('augmenter', 'astro_cl.augment.photometric.GaussianBlur'),
    ('augmenter', 'astro_cl.augment.photometric.MultiplicativeNoise'),
    ('augmenter', 'astro_cl.augment.photometric.NoiseToDepth'),
    ('augmenter', 'astro_cl.augment.pca_space.PCASpaceNoise'),
    ('augmenter', 'astro_cl.augment.pca_space.PCASpaceRebin'),
    ('augmenter', 'astro_cl.augment.photometric.PSFDegradation'),
    ('augmenter', 'astro_cl.augment.masking.RandomCutout'),
    ('augmenter', 'astro_cl.augment.geometric.RandomFlip'),
    ('augmenter', 'astro_cl.augment.geometric.RandomRot90'),
    ('augmenter', 'astro_cl.augment.geometric.RandomRotation'),
    ('augmenter', 'astro_cl.augment.geometric.RandomTranslation'),
    ('augmenter', 'astro_cl.augment.rebin.Rebin'),
    ('augmenter', 'astro_cl.augment.photometric.Reddening'),
    ('augmenter', 'astro_cl.augment.photometric.SurfaceBrightnessDimming'),
    ('augmenter', 'astro_cl.augment.masking.StarMask'),
    ('augmenter', 'astro_cl.augment.spectral.VelocityShift'),
    ('encoder', 'astro_cl.models.clip.CLIPEncoder'),
    ('encoder', 'astro_cl.models.regressor.CNNRegressor'),
    ('encoder', 'astro_cl.models.dense.DenseContrastive'),
    ('encoder', 'astro_cl.models.simclr.SimCLR'),
    ('task', 'astro_cl.tasks.environment.EnvironmentTest'),
    ('task', 'astro_cl.tasks.maps.MapMetrics'),
    ('task', 'astro_cl.tasks.correlation.PropertyCorrelation'),
    ('task', 'astro_cl.tasks.region_search.RegionSearch'),
    ('task', 'astro_cl.tasks.regression.PropertyRegression'),
    ('task', 'astro_cl.tasks.clustering.SFMSClustering'),
    ('task', 'astro_cl.tasks.similarity.SimilaritySearch'),
)


@dataclass(frozen=True)
class ComponentSummary:
    """What ``astro-cl plugins`` prints about a registered component.

    Parameters
    ----------
    kind : str
        One of `~astro_cl.plugins.registry.KINDS`.
    name : str
        Registered name.
    distribution : str
        Distribution providing it.
    version : str
        That distribution's version.
    description : str
        The class's one-line description.
    """

    kind: str
    name: str
    distribution: str
    version: str
    description: str


#: The package's directory: component modules are read from here, not imported.
_PACKAGE_DIR = Path(__file__).resolve().parents[1]


def _class_statement(source, class_name):
    """Return the source of ``class <class_name>`` up to its first method (or None).

    That is the class line, its docstring and its class attributes: enough to
    read ``name`` and ``description``, and a fraction of the module to parse.
    """
    match = re.search(rf"^class {re.escape(class_name)}\b", source, re.MULTILINE)
    if match is None:
        return None
    lines = source[match.start():].splitlines()
    end = len(lines)
    for i, line in enumerate(lines[1:], start=1):
        # the first method, nested class or decorator, or the next top-level one
        # (not any unindented line: docstrings may have those)
        if re.match(r"(    )?(async def |def |class |@)", line):
            end = i
            break
    return "\n".join(lines[:end])


def _read_class_attributes(path):
    """Return ``(name, description)`` of a built-in class from its source, or None.

    Only string constants assigned in the class body count; ``description``
    falls back to the docstring's first line, as in
    `~astro_cl.plugins.registry.ComponentInfo.description`.
    """
    module, _, class_name = path.rpartition(".")
    file = _PACKAGE_DIR.joinpath(*module.split(".")[1:]).with_suffix(".py")
    try:
        statement = _class_statement(file.read_text(encoding="utf-8"), class_name)
        tree = ast.parse(statement) if statement else None
    except (OSError, SyntaxError, UnicodeDecodeError):
        return None
    if tree is None or not tree.body or not isinstance(tree.body[0], ast.ClassDef):
        return None
    attrs = {}
    for node in tree.body[0].body:
        if (isinstance(node, ast.Assign) and len(node.targets) == 1
                and isinstance(node.targets[0], ast.Name)
                and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str)):
            attrs[node.targets[0].id] = node.value.value
    name = attrs.get("name")
    text = attrs.get("description") or (ast.get_docstring(tree.body[0]) or "").strip()
    if not name:
        return None  # inherited or computed: import the class instead
    return name, (text.splitlines()[0] if text else "")


def _import_class_attributes(path):
    import importlib

    from astro_cl.plugins.registry import ComponentInfo

    module, _, class_name = path.rpartition(".")
    cls = getattr(importlib.import_module(module), class_name)
    info = ComponentInfo("", cls.name, cls, "", "", "", True)
    return cls.name, info.description


def _third_party_kinds(registry):
    """Kinds to which a loaded third-party plugin contributes a hook implementation."""
    from astro_cl.plugins.manager import plugin_source
    from astro_cl.plugins.registry import KINDS

    pm = registry.plugin_manager
    return {kind for kind, (hook_name, _) in KINDS.items()
            if any(not plugin_source(pm, impl.plugin).builtin
                   for impl in getattr(pm.hook, hook_name).get_hookimpls())}


def component_summaries(kinds=None):
    """Return every registered component, importing component classes only where needed.

    Without third-party plugins (none installed in the ``astro_cl.plugins``
    entry-point group, or autoloading disabled) the built-in components are
    read from the source of the classes in `BUILTIN_COMPONENTS`, and nothing
    heavy is imported. Otherwise the
    plugins are loaded, and the kinds they contribute to are collected
    through the registry (with its checks and name-clash warnings); so are
    the kinds of classes registered in this process with
    `~astro_cl.plugins.registry.register_component`.

    Parameters
    ----------
    kinds : sequence of str, optional
        Restrict to these kinds (default: all).

    Returns
    -------
    summaries : list of `ComponentSummary`
        By kind, then by name: the order of
        `~astro_cl.plugins.registry.list_components`.
    """
    from importlib.metadata import entry_points

    from astro_cl import __version__
    from astro_cl.plugins.hookspecs import ENTRY_POINT_GROUP
    from astro_cl.plugins.manager import DISABLE_AUTOLOAD_ENV
    from astro_cl.plugins.registry import KINDS, get_registry, runtime_registrations

    kinds = list(kinds or KINDS)
    for kind in kinds:
        if kind not in KINDS:
            msg = f"unknown component kind {kind!r}; kinds are {sorted(KINDS)}"
            raise ValueError(msg)
    autoload = os.environ.get(DISABLE_AUTOLOAD_ENV, "").strip() not in ("1", "true", "yes")
    foreign = {kind for kind, _ in runtime_registrations()}
    registry = get_registry() if foreign else None
    if autoload and entry_points(group=ENTRY_POINT_GROUP):
        registry = get_registry()
        foreign |= _third_party_kinds(registry)
    out = []
    for kind in kinds:
        if kind in foreign:
            out += [ComponentSummary(kind, info.name, info.distribution, info.version,
                                     info.description)
                    for info in registry.components(kind).values()]
        else:
            rows = [_read_class_attributes(path) or _import_class_attributes(path)
                    for kind_, path in BUILTIN_COMPONENTS if kind_ == kind]
            out += [ComponentSummary(kind, name, "astro_cl", __version__, description)
                    for name, description in sorted(rows)]
    return out
