"""Model files: ``models/NAME.py``, each with ``create_model(n_classes, conv=...)`` and
module-level defaults (INPUT_SHAPE, DATASET, EPOCHS, BATCH_SIZE, LR, ...)."""
import importlib.util
import os

from .checks import whole_number

MODELS_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), 'models')
REQUIRED = ('create_model', 'INPUT_SHAPE', 'DATASET', 'EPOCHS', 'BATCH_SIZE', 'LR')


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
    spec.loader.exec_module(module)
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


def label(name):
    """A model's short name for run folders: ``imagenet_small`` for ``imagenet_small`` and for
    ``path/to/imagenet_small.py`` alike."""
    return os.path.splitext(os.path.basename(name))[0]
