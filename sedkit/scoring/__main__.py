"""``python -m sedkit.scoring``: the same as ``sedkit score``, without loading torch or plugins."""

import sys

from sedkit.scoring.cli import main

sys.exit(main())
