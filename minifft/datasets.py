"""Writing datasets in minifft's HDF5 layout (data/README.md), from their usual sources.

Every writer goes through :func:`write_dataset`, which writes to a temporary file beside the
target, fsyncs it and renames it into place: a crash or Ctrl-C never leaves a half-written
dataset under the final name.
"""
import gzip
import os
import pickle
import struct
import subprocess
import zlib

import h5py
import numpy as np
from tqdm import tqdm

from .atomic import atomic_path
from .data import SPLITS

DATA_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), 'data')
FASHION_CLASSES = ['T-shirt/top', 'Trouser', 'Pullover', 'Dress', 'Coat', 'Sandal', 'Shirt',
                   'Sneaker', 'Bag', 'Ankle boot']
# chunks of whole images, ~32 KiB (h5py recommends 10 KiB - 1 MiB): a random batch then reads
# little beyond its own images
CHUNK_BYTES = 32 * 1024


def default_path(name):
    return os.path.join(DATA_DIR, f'{name}.h5')


class SplitWriter:
    """Appends image blocks to one split, keeping running per-channel sums for mean/std."""

    def __init__(self, group, n, image_shape):
        per_image = int(np.prod(image_shape))
        chunk = max(1, min(n, CHUNK_BYTES // per_image))
        self.images = group.create_dataset('images', (n,) + tuple(image_shape), np.uint8,
                                           chunks=(chunk,) + tuple(image_shape))
        self.labels = group.create_dataset('labels', (n,), np.int64)
        self.count = 0
        C = image_shape[0]
        self.sum, self.sumsq = np.zeros(C), np.zeros(C)

    def add(self, images, labels):
        k = len(images)
        self.images[self.count:self.count + k] = images
        self.labels[self.count:self.count + k] = labels
        self.count += k
        f = images.astype(np.float64)
        self.sum += f.sum(axis=(0, 2, 3))
        self.sumsq += (f * f).sum(axis=(0, 2, 3))


def write_dataset(path, splits, class_names, source, image_shape):
    """``splits``: {'train': (n, iterator of (uint8 images, labels) blocks), 'val': ...}.
    Mean and std (per channel, in pixel units 0..255) are computed over the train split."""
    with atomic_path(path) as tmp, h5py.File(tmp, 'w') as f:
        stats = None
        for split, (n, blocks) in splits.items():
            w = SplitWriter(f.create_group(split), n, image_shape)
            for images, labels in blocks:
                w.add(images, labels)
            if w.count != n:
                raise RuntimeError(f'{split}: wrote {w.count} images, expected {n}')
            if split == 'train':
                stats = w
        count = max(stats.count * image_shape[1] * image_shape[2], 1)
        mean = stats.sum / count
        f.attrs['mean'] = mean
        f.attrs['std'] = np.sqrt(np.maximum(stats.sumsq / count - mean ** 2, 0))
        f.attrs['class_names'] = np.array(class_names, dtype=h5py.string_dtype())
        f.attrs['source'] = source
    return path


def _blocks(images, labels, desc, size=4096, progress=True):
    for s in tqdm(range(0, len(images), size), desc=desc, unit='block', leave=False,
                  disable=not progress):
        yield images[s:s + size], labels[s:s + size]


# -- Fashion-MNIST ------------------------------------------------------------------------------
def fashion_mnist_default_dir():
    """Where Debian's dataset-fashion-mnist package put the IDX files, if it is installed."""
    try:
        files = subprocess.run(['dpkg', '-L', 'dataset-fashion-mnist'], capture_output=True,
                               text=True, check=True).stdout.split()
    except (OSError, subprocess.CalledProcessError):
        return None
    hits = [f for f in files if f.endswith('train-images-idx3-ubyte.gz')]
    return os.path.dirname(hits[0]) if hits else None


def read_idx(path):
    opener = gzip.open if path.endswith('.gz') else open
    try:
        with opener(path, 'rb') as f:
            data = f.read()
    except (EOFError, gzip.BadGzipFile, zlib.error) as e:  # a truncated or damaged download
        raise ValueError(f'{path}: cannot be decompressed ({e})') from None
    if len(data) < 4 or data[:2] != b'\0\0':
        raise ValueError(f'{path}: not an IDX file (bad magic number)')
    dtype_code, ndim = data[2], data[3]
    if dtype_code != 0x08:
        raise ValueError(f'{path}: IDX type 0x{dtype_code:02x} unsupported (expected uint8)')
    shape = struct.unpack(f'>{ndim}I', data[4:4 + 4 * ndim])
    body = np.frombuffer(data, np.uint8, offset=4 + 4 * ndim)
    if body.size != int(np.prod(shape)):
        raise ValueError(f'{path}: header says {shape} but holds {body.size} bytes')
    return body.reshape(shape)


def prepare_fashion_mnist(out, directory=None, progress=True):
    directory = directory or fashion_mnist_default_dir()
    names = {'train': ('train-images-idx3-ubyte', 'train-labels-idx1-ubyte'),
             'val': ('t10k-images-idx3-ubyte', 't10k-labels-idx1-ubyte')}

    def find(name):
        for candidate in (name + '.gz', name):
            p = os.path.join(directory or '', candidate)
            if directory and os.path.exists(p):
                return p
        raise FileNotFoundError(
            f'Fashion-MNIST file {name}.gz not found in {directory or "(no directory)"}. '
            'Install it with `apt-get install dataset-fashion-mnist` (Debian), or pass the '
            'folder holding the four IDX .gz files.')

    splits = {}
    for split, (img, lab) in names.items():
        images = read_idx(find(img))[:, None]
        labels = read_idx(find(lab)).astype(np.int64)
        if len(images) != len(labels):
            raise ValueError(f'{split}: {len(images)} images but {len(labels)} labels')
        splits[split] = (len(images), _blocks(images, labels, f'fashion-mnist {split}',
                                              progress=progress))
    return write_dataset(out, splits, FASHION_CLASSES, f'Fashion-MNIST IDX files in {directory}',
                         (1, 28, 28))


# -- Downsampled ImageNet (Chrabaszcz, Loshchilov & Hutter, 2017) -------------------------------
def _load_pickle(path):
    try:
        with open(path, 'rb') as f:
            d = pickle.load(f, encoding='latin1')
    except (pickle.UnpicklingError, EOFError) as e:  # a truncated or damaged download
        raise ValueError(f'{path}: not a readable pickle ({e})') from None
    if not isinstance(d, dict) or 'data' not in d or 'labels' not in d:
        raise ValueError(f'{path}: expected a dict with "data" and "labels"')
    return np.asarray(d['data'], np.uint8), np.asarray(d['labels'], np.int64) - 1


def prepare_imagenet_downsampled(out, directory, progress=True):
    train = sorted((p for p in os.listdir(directory) if p.startswith('train_data_batch_')),
                   key=lambda p: int(p.rsplit('_', 1)[1]))
    if not train or not os.path.exists(os.path.join(directory, 'val_data')):
        raise FileNotFoundError(f'{directory}: expected train_data_batch_1..10 and val_data '
                                '(the Downsampled ImageNet pickles)')
    first, _ = _load_pickle(os.path.join(directory, train[0]))
    side = int(round((first.shape[1] // 3) ** 0.5))
    if 3 * side * side != first.shape[1]:
        raise ValueError(f'{train[0]}: rows of {first.shape[1]} values are not 3 x H x H')
    shape = (3, side, side)

    def count(files):
        return sum(len(_load_pickle(os.path.join(directory, f))[1]) for f in files)

    def blocks(files):
        for name in tqdm(files, desc='imagenet-downsampled', unit='file',
                         disable=not progress):
            data, labels = _load_pickle(os.path.join(directory, name))
            yield data.reshape((-1,) + shape), labels

    n_classes = 1000
    splits = {'train': (count(train), blocks(train)), 'val': (count(['val_data']),
                                                              blocks(['val_data']))}
    return write_dataset(out, splits, [str(i) for i in range(n_classes)],
                         f'Downsampled ImageNet {side}x{side} from {directory}', shape)


# -- an ImageNet-style folder tree ------------------------------------------------------------
IMAGE_EXTENSIONS = ('.jpeg', '.jpg', '.png', '.bmp', '.gif', '.webp', '.tif', '.tiff')


def _load_image(args):
    """Shorter side to ``size``, centre crop; None for an unreadable file (reported)."""
    path, size = args
    from PIL import Image
    try:
        with Image.open(path) as im:
            im = im.convert('RGB')
            w, h = im.size
            scale = size / min(w, h)
            im = im.resize((max(size, round(w * scale)), max(size, round(h * scale))),
                           Image.BILINEAR)
            w, h = im.size
            left, top = (w - size) // 2, (h - size) // 2
            im = im.crop((left, top, left + size, top + size))
            return np.asarray(im, np.uint8).transpose(2, 0, 1)
    except Exception as e:  # any decoding failure: skip the file, say which
        return f'{path}: {e}'


def prepare_imagefolder(out, root, size, workers=None, progress=True):
    try:
        import PIL  # noqa: F401
    except ImportError:
        raise RuntimeError("imagefolder needs Pillow: pip install 'minifft[images]'") from None
    from multiprocessing import Pool
    layout = f'expected {root}/train/<class>/*.JPEG and {root}/val/<class>/*.JPEG'
    train = os.path.join(root, 'train')
    classes = sorted(d for d in os.listdir(train) if os.path.isdir(os.path.join(train, d))
                     ) if os.path.isdir(train) else []
    if not classes:
        raise FileNotFoundError(f'{train}: no class folders ({layout})')
    val = os.path.join(root, 'val')
    strays = sorted(d for d in os.listdir(val) if os.path.isdir(os.path.join(val, d))
                    and d not in classes) if os.path.isdir(val) else []
    if strays:  # their images would be left out of val without a word
        raise ValueError(f'{val}: class folders that train/ does not have: '
                         f'{", ".join(strays)} (the classes are the folders of {train})')
    lists = {}
    for split in SPLITS:
        files = []
        for label, c in enumerate(classes):
            folder = os.path.join(root, split, c)
            if os.path.isdir(folder):
                files += [(os.path.join(folder, f), label) for f in sorted(os.listdir(folder))
                          if f.lower().endswith(IMAGE_EXTENSIONS)]
        lists[split] = files
    decoded, skipped = {}, []
    with Pool(workers or os.cpu_count()) as pool:
        for split, files in lists.items():
            imgs, labs = [], []
            results = pool.imap(_load_image, [(p, size) for p, _ in files], chunksize=16)
            for (p, label), r in tqdm(zip(files, results), total=len(files),
                                      desc=f'imagefolder {split}', unit='img',
                                      disable=not progress):
                if isinstance(r, str):
                    skipped.append(r)
                else:
                    imgs.append(r)
                    labs.append(label)
            if not files:
                raise FileNotFoundError(f'{root}/{split}: no image files with the extensions '
                                        f'{", ".join(IMAGE_EXTENSIONS)} ({layout})')
            if not imgs:
                raise ValueError(f'{root}/{split}: none of its {len(files)} images could be '
                                 'read')
            decoded[split] = (np.stack(imgs), np.array(labs, np.int64))
    for message in skipped:
        print(f'skipped unreadable image {message}')
    splits = {s: (len(i), _blocks(i, l, f'writing {s}', progress=progress))
              for s, (i, l) in decoded.items()}
    write_dataset(out, splits, classes, f'image folder {root} at {size}x{size}', (3, size, size))
    return skipped


# -- the embedded synthetic default ------------------------------------------------------------
SYNTHETIC_ORIENTATIONS, SYNTHETIC_FREQUENCIES = 16, (0.55, 1.1)  # radians per pixel


def synthetic_images(n, rng, size=64):
    """Images of oriented gratings in a soft-edged patch at a random place, with a random phase,
    contrast and colour, on a noisy background. The class is (orientation, frequency): 16
    orientations 11.25 degrees apart, 2 frequencies. Nothing a pixel-wise linear classifier can
    use (position, phase and colour are random), and what local filters with pooling pick out."""
    n_orient = SYNTHETIC_ORIENTATIONS
    labels = rng.integers(0, n_orient * len(SYNTHETIC_FREQUENCIES), n)
    theta = (labels % n_orient) * np.pi / n_orient
    freq = np.array(SYNTHETIC_FREQUENCIES)[labels // n_orient]
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    cy, cx = rng.uniform(16, size - 16, (2, n))
    radius = rng.uniform(10, 17, n)
    phase = rng.uniform(0, 2 * np.pi, n)
    contrast = rng.uniform(50, 80, n)
    images = np.empty((n, 3, size, size), np.uint8)
    for i in range(n):
        u = (xx - cx[i]) * np.cos(theta[i]) + (yy - cy[i]) * np.sin(theta[i])
        grating = np.cos(freq[i] * u + phase[i])
        d2 = ((yy - cy[i]) ** 2 + (xx - cx[i]) ** 2) / radius[i] ** 2
        mask = np.clip(1.5 - d2, 0, 1)
        colour = rng.uniform(0.3, 1.0, 3)[:, None, None] * rng.choice([-1, 1])
        background = rng.uniform(80, 170, 3)[:, None, None]
        img = (background + contrast[i] * colour * grating * mask +
               rng.normal(0, 20, (3, size, size)))
        images[i] = np.clip(img, 0, 255)
    return images, labels


def prepare_synthetic(out, seed=0, n_train=12800, n_val=2000, size=64, progress=True):
    n_orient = SYNTHETIC_ORIENTATIONS
    names = [f'grating_{o * 180 / n_orient:g}deg_{"fine" if f else "coarse"}'
             for f in range(len(SYNTHETIC_FREQUENCIES)) for o in range(n_orient)]
    rng = np.random.default_rng(seed)

    def blocks(n, desc):
        for s in tqdm(range(0, n, 1000), desc=desc, unit='kimg', disable=not progress):
            yield synthetic_images(min(1000, n - s), rng, size)

    splits = {'train': (n_train, blocks(n_train, 'synthetic train')),
              'val': (n_val, blocks(n_val, 'synthetic val'))}
    return write_dataset(out, splits, names, f'synthetic gratings, seed {seed}', (3, size, size))
