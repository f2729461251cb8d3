"""Writing files so that a crash never leaves a half-written one under the final name."""
import contextlib
import os
import tempfile


def check_writable(path):
    """Makes the folder of ``path`` where missing, and raises an OSError that says why where
    ``path`` cannot be written as a file: what ``atomic_path`` checks before anything is
    written, for callers that want to know before long work too. (A folder at ``path`` was
    found only at the final rename, after all the writing.)"""
    path = os.path.abspath(path)
    if os.path.isdir(path):
        raise IsADirectoryError(f'{path} is a folder; expected a file name')
    folder = os.path.dirname(path)
    try:
        os.makedirs(folder, exist_ok=True)
    except OSError as e:
        raise OSError(e.errno, f'cannot make the folder {folder} of {path} '
                               f'({e.strerror or e})') from None
    if not os.access(folder, os.W_OK):
        raise PermissionError(f'{path}: its folder {folder} is not writable')


@contextlib.contextmanager
def atomic_path(path):
    """A temporary path beside ``path``; renamed over it only if the block succeeds."""
    path = os.path.abspath(path)
    check_writable(path)
    try:
        fd, tmp = tempfile.mkstemp(prefix=os.path.basename(path) + '.', suffix='.partial',
                                   dir=os.path.dirname(path))
    except OSError as e:  # its message named the temporary file, which the user never chose
        raise OSError(e.errno, f'cannot write {path}: no file can be made in its folder '
                               f'({e.strerror or e})') from None
    os.close(fd)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)  # mkstemp's 0600 would make the file private
    try:
        yield tmp
        with open(tmp, 'rb+') as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
        dir_fd = os.open(os.path.dirname(path), os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
