import subprocess
import sys


def test_import_does_not_import_torch():
    code = ("import sys, astro_cl, astro_cl.surveys, astro_cl.tasks, astro_cl.data; "
            "from astro_cl.plugins.registry import available_components; "
            "available_components('survey'); available_components('task'); "
            "print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_lazy_public_names():
    import astro_cl

    assert astro_cl.Survey.__name__ == "Survey"
    assert "GalaxyRecord" in dir(astro_cl)
    try:
        astro_cl.no_such_name  # noqa: B018
    except AttributeError as exc:
        assert "no_such_name" in str(exc)
    else:
        raise AssertionError("expected AttributeError")
