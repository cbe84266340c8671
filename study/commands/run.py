"""`python -m study run` (being written in this session)."""

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of `study run`."""


def run(args: argparse.Namespace) -> int:
    """Not implemented yet."""
    raise NotImplementedError
