"""``python -m streamrecon.cli``: the same as the ``streamrecon`` command."""
import sys

from . import main

sys.exit(main())
