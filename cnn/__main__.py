"""``python -m cnn``: the command line of ``cnn.cli``."""

import sys

try:
    from cnn.cli import main
except KeyboardInterrupt:  # Ctrl-C while NumPy is being imported
    print("cnn: interrupted", file=sys.stderr)
    sys.exit(130)

sys.exit(main())
