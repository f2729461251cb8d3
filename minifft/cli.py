"""Whole numbers given as text, on the scripts' command lines and in environment variables
(``MINIFFT_THREADS``), so that a bad count is named in one line (``error: argument --repeat:
must be a whole number >= 1, got '0'``) before any work starts, instead of training zero
steps, a traceback, or a default taken silently."""
import argparse


def parse_whole(text, minimum):
    """``text`` as an int if it spells a whole number of at least ``minimum``, else None."""
    try:
        value = int(text)
    except ValueError:
        return None
    return value if value >= minimum else None


def whole(minimum):
    """An argparse ``type``: a whole number of at least ``minimum``."""
    def parse(text):
        value = parse_whole(text, minimum)
        if value is None:
            raise argparse.ArgumentTypeError(f'must be a whole number >= {minimum}, '
                                             f'got {text!r}')
        return value
    parse.__name__ = f'whole number >= {minimum}'
    return parse
