"""Model files: ``models/NAME.py``, each with ``create_model(n_classes, conv=...)`` and
module-level defaults (INPUT_SHAPE, DATASET, EPOCHS, BATCH_SIZE, LR, ...)."""
import importlib.util
import linecache
import os

from .checks import whole_number

MODELS_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), 'models')
REQUIRED = ('create_model', 'INPUT_SHAPE', 'DATASET', 'EPOCHS', 'BATCH_SIZE', 'LR')


class ModelFileError(ValueError):
    """A model file's own code failed: the message names the file, the line and the error,
    as one line for train.py to print (a model file is the user's code; Python's traceback
    through train.py and importlib buried that line)."""


def _failed(path, error, doing):
    """``error``, raised by the model file at ``path`` while ``doing``, as a ModelFileError
    naming the deepest line of that file it passed through."""
    def here(filename):
        return filename is not None and os.path.abspath(filename) == os.path.abspath(path)
    line = error.lineno if isinstance(error, SyntaxError) and here(error.filename) else None
    tb = error.__traceback__
    while tb is not None:
        if here(tb.tb_frame.f_code.co_filename):
            line = tb.tb_lineno
        tb = tb.tb_next
    detail = error.msg if isinstance(error, SyntaxError) else str(error)
    where = f'{path}, line {line}' if line else path
    text = linecache.getline(path, line).strip() if line else ''
    return ModelFileError(f'{where}{f" ({text})" if text else ""}: {type(error).__name__} '
                          f'while {doing}: {detail}')


def available():
    return sorted(f[:-3] for f in os.listdir(MODELS_DIR)
                  if f.endswith('.py') and not f.startswith('_'))


def load(name):
    """The model file ``models/NAME.py`` (or a path to a .py file) as a module."""
    path = name if name.endswith('.py') else os.path.join(MODELS_DIR, f'{name}.py')
    if not os.path.exists(path):
        raise ValueError(f'unknown model {name!r}; available: {", ".join(available())}')
    spec = importlib.util.spec_from_file_location(f'minifft_model_{os.path.basename(path)[:-3]}',
                                                  path)
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except Exception as e:
        raise _failed(path, e, 'loading it') from e
    missing = [k for k in REQUIRED if not hasattr(module, k)]
    if missing:
        raise ValueError(f'{path}: a model file must define {", ".join(missing)}')
    # a run of zero epochs would end "done", having done nothing
    for key in ('EPOCHS', 'BATCH_SIZE'):
        value = whole_number(getattr(module, key), 1)
        if value is None:
            raise ValueError(f'{path}: {key} must be a whole number >= 1, got '
                             f'{getattr(module, key)!r}')
        setattr(module, key, value)
    return module


def create(module, n_classes, **kwargs):
    """``module.create_model(n_classes, **kwargs)``, any error named by the model file's
    line it came through."""
    try:
        return module.create_model(n_classes, **kwargs)
    except Exception as e:
        raise _failed(module.__file__, e, 'building the model') from e


def label(name):
    """A model's short name for run folders: ``imagenet_small`` for ``imagenet_small`` and for
    ``path/to/imagenet_small.py`` alike."""
    return os.path.splitext(os.path.basename(name))[0]
