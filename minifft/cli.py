"""Argument types for the scripts' command lines, so that a bad count is named in one line
(``error: argument --repeat: must be a whole number >= 1, got '0'``) before any work starts,
instead of training zero steps, a traceback, or a default taken silently."""
import argparse


def whole(minimum):
    """An argparse ``type``: a whole number of at least ``minimum``."""
    def parse(text):
        try:
            value = int(text)
        except ValueError:
            value = None
        if value is None or value < minimum:
            raise argparse.ArgumentTypeError(f'must be a whole number >= {minimum}, '
                                             f'got {text!r}')
        return value
    parse.__name__ = f'whole number >= {minimum}'
    return parse
