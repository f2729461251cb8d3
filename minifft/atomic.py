"""Writing files so that a crash never leaves a half-written one under the final name."""
import contextlib
import os
import tempfile


@contextlib.contextmanager
def atomic_path(path):
    """A temporary path beside ``path``; renamed over it only if the block succeeds."""
    path = os.path.abspath(path)
    if os.path.isdir(path):  # else found only at the rename, after all the writing
        raise IsADirectoryError(f'{path} is a folder; expected a file name')
    os.makedirs(os.path.dirname(path), exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=os.path.basename(path) + '.', suffix='.partial',
                               dir=os.path.dirname(path))
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
