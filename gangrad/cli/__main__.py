"""``python -m gangrad.cli``: the ``gangrad`` command."""

import sys

from gangrad.cli import main

sys.exit(main())
