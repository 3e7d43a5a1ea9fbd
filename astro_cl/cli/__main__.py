"""Allow ``python -m astro_cl.cli``."""

import sys

from astro_cl.cli import main

sys.exit(main())
