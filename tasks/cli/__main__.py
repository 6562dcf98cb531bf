"""``python -m tasks.cli``: the suite's command line (what ``dsd-suite`` runs)."""

import sys

from tasks.cli import main

sys.exit(main())
