"""``python -m lenet5`` runs the command line, exactly like ``lenet5``."""

import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
