"""``python -m workshop ...``: the same command line as the ``workshop`` script (and ``torchrun -m workshop``)."""

import sys

from workshop.cli import main

if __name__ == "__main__":
    sys.exit(main())
