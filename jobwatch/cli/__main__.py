"""``python -m jobwatch.cli``: the same as the ``jobwatch`` command."""

import sys

from jobwatch.cli.commands import main

sys.exit(main())
