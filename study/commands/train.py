"""`python -m study train` (being written in this session)."""

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of `study train`."""


def run(args: argparse.Namespace) -> int:
    """Not implemented yet."""
    raise NotImplementedError
