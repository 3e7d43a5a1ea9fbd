"""Built-in downstream tasks, registered through the same hook as third-party ones."""

from astro_cl.plugins.hookspecs import hookimpl


@hookimpl
def astro_cl_register_tasks(register):
    """Register astro_cl's own downstream tasks."""
