"""``python -m hms_ops``: the hms-ops command line."""

from .cli import main

main()
