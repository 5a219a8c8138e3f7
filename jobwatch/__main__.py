"""``python -m jobwatch``: the same as the ``jobwatch`` command."""

import sys

from jobwatch.cli.main import main

sys.exit(main())
