"""`python -m automl` runs the CLI."""

import sys

from automl.cli import main

sys.exit(main())
