"""``python -m streamrecon.cli``: the same as the ``streamrecon`` command."""
import sys

try:
    from . import main
except KeyboardInterrupt:  # Ctrl-C while the package itself is imported
    print("streamrecon: interrupted", file=sys.stderr)
    sys.exit(130)

sys.exit(main())
