"""``python -m torchlm``: the command line (:mod:`torchlm.cli`)."""

import sys

from torchlm.cli import main

if __name__ == "__main__":
    sys.exit(main())
