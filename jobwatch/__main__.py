"""``python -m jobwatch``: the same as the ``jobwatch`` command."""

import sys

from jobwatch.cli import main

sys.exit(main())
