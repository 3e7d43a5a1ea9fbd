"""Seeded corruption fuzzing of every survey reader (harness in ``harness.py`` beside this).

Default run: a few hundred cases (each target's ``default_cases``, case numbers
from 0) plus hypothesis-driven header-card and ``.npy`` header edits, all
deterministic. ``-m slow``: 2,400 more cases (numbers from 1000, as
``benchmarks/fuzz_readers.py`` runs them) in a worker process, with the outcome
table printed. Every case must end in a valid record or an AstroCLError naming
the corrupted file: no foreign exception, hang, crash, misattributed error or
record read from a truncated file.
"""

import importlib.util
import io
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st


def _load_harness():
    spec = importlib.util.spec_from_file_location("astro_cl_fuzz_harness",
                                                  Path(__file__).with_name("harness.py"))
    module = sys.modules.get(spec.name)
    if module is None:
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module  # dataclasses look their module up here
        spec.loader.exec_module(module)
    return module


harness = _load_harness()
SEED = 0
TIMEOUT = 20.0
TARGETS = {t.name: t for t in harness.targets()}


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    return tmp_path_factory.mktemp("fuzz")


def _prepared(name, shared_dir, workdir, request):
    target = TARGETS[name]
    shared = None
    if target.shared:
        shared = request.getfixturevalue("shared_data")  # skips, naming the path, if absent
    return target.prepare(shared or shared_dir, workdir)


def _report(outcomes):
    bad = harness.failures(outcomes)
    lines = [f"[{o.kind}] {o.target} case {o.case}: {o.op}\n    {o.message}" for o in bad]
    return "\n".join([harness.format_table(outcomes), *lines[:30]])


@pytest.mark.parametrize("name", [n for n, t in TARGETS.items() if t.default_cases])
def test_fuzz_default(name, workdir, request):
    target = _prepared(name, None, workdir, request)
    outcomes = harness.run_campaign([target], {name: target.default_cases}, seed=SEED,
                                    shared=None, workdir=workdir, timeout=TIMEOUT)
    assert not harness.failures(outcomes), _report(outcomes)
    kinds = {o.kind for o in outcomes}
    assert "error" in kinds, f"no case of {name} was rejected: the corruptions do not bite"


@pytest.mark.slow
def test_fuzz_campaign(workdir, request, capsys):
    shared = request.getfixturevalue("shared_data")
    selected = [t.prepare(shared, workdir) for t in TARGETS.values()]
    # the same split as `python benchmarks/fuzz_readers.py --cases 2400`
    weights = {t.name: max(t.default_cases, 6) for t in selected}
    scale = 2400 / sum(weights.values())
    cases = {n: max(20, round(w * scale)) for n, w in weights.items()}
    outcomes = harness.run_campaign(selected, cases, seed=SEED, shared=shared,
                                    workdir=workdir, timeout=TIMEOUT, first_case=1000,
                                    isolate=True)
    with capsys.disabled():
        print("\n" + harness.format_table(outcomes))
    assert len(outcomes) >= 2000
    assert not harness.failures(outcomes), _report(outcomes)


# -- hypothesis: header-card values and .npy header text ---------------------------
_SETTINGS = settings(derandomize=True, database=None, deadline=None, max_examples=40,
                     suppress_health_check=[HealthCheck.function_scoped_fixture,
                                            HealthCheck.too_slow])
_KEYWORDS = ["NAXIS", "NAXIS1", "NAXIS2", "BITPIX", "BUNIT", "EXTNAME", "PCOUNT", "GCOUNT",
             "CRVAL1", "NEXTEND"]
_VALUES = st.one_of(
    st.integers(-(2**70), 2**70).map(str),
    st.sampled_from(["99999999", "2147483648", "-32", "0", "999", "1000", "NAN", "T", "''"]),
    st.text(st.characters(min_codepoint=32, max_codepoint=126, exclude_characters="'"),
            max_size=18).map(lambda t: f"'{t}'"),
)


def _expect_record_or_named_error(target, data, workdir, tag):
    """Write the inputs with ``data`` as the fault file, read them, check the outcome."""
    from astro_cl.exceptions import AstroCLError

    folder = workdir / tag
    folder.mkdir(parents=True, exist_ok=True)
    for fname, content in target.files.items():
        (folder / fname).write_bytes(data if fname == target.fault else content)
    try:
        with warnings.catch_warnings(), harness.deadline(TIMEOUT):
            warnings.simplefilter("ignore")
            target.read(folder)
    except AstroCLError as exc:
        assert harness.names_file(str(exc), target.fault), str(exc)


@_SETTINGS
@given(keyword=st.sampled_from(_KEYWORDS), hdu=st.integers(0, 10), value=_VALUES)
def test_card_edits_give_record_or_error(keyword, hdu, value, workdir, request):
    target = _prepared("sdss/cutout", None, workdir, request)
    cards = [c for c in target.info["cards"] if c[0] == hdu and c[2] == keyword]
    data = bytearray(target.files[target.fault])
    if cards:
        offset = cards[0][1]
        data[offset:offset + 80] = harness._make_card(keyword, value)
    _expect_record_or_named_error(target, bytes(data), workdir, "hypothesis-card")


@_SETTINGS
@given(shape=st.lists(st.integers(-(2**65), 2**65), max_size=5),
       tail=st.sampled_from(["", ",", " , }", "}", "))"]),
       descr=st.sampled_from(["<f4", ">f4", "<f8", "|O", "<U2", "|b1", "garbage"]))
def test_npy_headers_give_array_or_error(shape, tail, descr, workdir, request):
    target = _prepared("sdss-npy/images", None, workdir, request)
    prefix, width, _, body = harness._npy_parts(target.files[target.fault])
    header = (f"{{'descr': '{descr}', 'fortran_order': False, "
              f"'shape': ({', '.join(map(str, shape))}{tail}, }}")
    data = harness._npy_join(prefix, width, header, body)
    _expect_record_or_named_error(target, data, workdir, "hypothesis-npy")


def test_harness_names_file():
    assert harness.names_file("/tmp/x/g.maps.fits: truncated", "g.maps.fits")
    assert not harness.names_file("/tmp/x/g.maps.fits: truncated", "g.fits")
    assert harness.names_file("cannot read 'a/b.jpg' (OSError)", "b.jpg")


def test_cases_are_deterministic(workdir, request):
    target = _prepared("sdss/maps", None, workdir, request)
    first = [harness.make_case(target, case, SEED) for case in range(5)]
    again = [harness.make_case(target, case, SEED) for case in range(5)]
    assert first == again
    assert len({data for data, _, _ in first}) == 5  # and they differ from case to case


def test_npy_helpers_roundtrip():
    buf = io.BytesIO()
    np.save(buf, np.zeros((2, 3), np.float32))
    raw = buf.getvalue()
    prefix, width, header, body = harness._npy_parts(raw)
    assert harness._npy_join(prefix, width, header, body) == raw
