"""`python -m study worker` (being written in this session)."""

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of `study worker`."""


def run(args: argparse.Namespace) -> int:
    """Not implemented yet."""
    raise NotImplementedError
