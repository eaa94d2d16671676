"""``python -m connector_mparticle.sandbox``: the same as ``connector sandbox``."""

import argparse
import sys

from .cli import add_arguments, run_command


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m connector_mparticle.sandbox",
        description="Run a local emulator of mParticle's OAuth, Platform and Events APIs.",
    )
    add_arguments(parser)
    return run_command(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
