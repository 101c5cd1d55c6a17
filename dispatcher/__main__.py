"""``python -m dispatcher``: the ``dispatcher`` command, composed outside the package."""

import sys

from dispatcher_cli import main

sys.exit(main())
