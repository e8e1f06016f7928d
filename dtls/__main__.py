"""`python -m dtls`: see dtls.cli."""

import sys

from .cli import main

sys.exit(main())
