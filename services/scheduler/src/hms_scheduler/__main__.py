"""``python -m hms_scheduler``: run the scheduler until SIGTERM."""

from __future__ import annotations

from hms_kit import run_service

from .app import create_service


def main() -> None:
    run_service(create_service)


if __name__ == "__main__":
    main()
