"""``python -m lenet5`` runs the command line, exactly like ``lenet5``."""

import sys

if __name__ == "__main__":
    try:
        from .cli import main
    except KeyboardInterrupt:  # Ctrl-C while the command line is being imported
        print("\nlenet5: interrupted by Ctrl-C", file=sys.stderr)
        sys.exit(130)
    sys.exit(main())
