#!/usr/bin/env python3
"""Write a dataset in minifft's HDF5 layout (see data/README.md).

  python scripts/prepare_data.py synthetic                 # the embedded default, < 1 minute
  python scripts/prepare_data.py fashion-mnist [DIR]       # apt-get install dataset-fashion-mnist
  python scripts/prepare_data.py imagefolder ROOT --size 64
  python scripts/prepare_data.py imagenet-downsampled DIR

Each writes atomically to --out (default data/NAME.h5): a temporary file renamed into place.
"""
import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from minifft import cli, datasets  # noqa: E402


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest='command', required=True)
    p = sub.add_parser('synthetic', help='ImageNet-shaped 3x64x64 gratings, 32 classes')
    p.add_argument('--seed', type=cli.whole(0), default=0)
    p.add_argument('--train', type=cli.whole(1), default=12800, help='training images')
    p.add_argument('--val', type=cli.whole(1), default=2000, help='validation images')
    p = sub.add_parser('fashion-mnist', help='Fashion-MNIST from its IDX .gz files')
    p.add_argument('dir', nargs='?', default=None,
                   help="folder of the IDX files (default: Debian's dataset-fashion-mnist)")
    p = sub.add_parser('imagefolder', help='ROOT/train/<class>/*, ROOT/val/<class>/*')
    p.add_argument('root')
    p.add_argument('--size', type=cli.whole(1), required=True, help='output side in pixels')
    p.add_argument('--workers', type=cli.whole(1), default=None, help='decoding processes')
    p = sub.add_parser('imagenet-downsampled', help='Downsampled ImageNet pickles')
    p.add_argument('dir')
    for p in sub.choices.values():
        p.add_argument('--out', default=None, help='output file (default data/NAME.h5)')
        p.add_argument('--no-progress', dest='progress', action='store_false',
                       help='no progress bars (for logs)')
    args = parser.parse_args(argv)
    name = {'fashion-mnist': 'fashion_mnist', 'imagenet-downsampled': 'imagenet_downsampled'}.get(
        args.command, args.command)
    out = args.out or datasets.default_path(name)
    try:
        if args.command == 'synthetic':
            datasets.prepare_synthetic(out, args.seed, args.train, args.val,
                                       progress=args.progress)
        elif args.command == 'fashion-mnist':
            datasets.prepare_fashion_mnist(out, args.dir, progress=args.progress)
        elif args.command == 'imagefolder':
            skipped = datasets.prepare_imagefolder(out, args.root, args.size, args.workers,
                                                   progress=args.progress)
            print(f'{len(skipped)} unreadable images skipped')
        else:
            datasets.prepare_imagenet_downsampled(out, args.dir, progress=args.progress)
    except (OSError, ValueError, RuntimeError) as e:
        print(f'prepare_data.py {args.command}: error: {e}', file=sys.stderr)
        return 2  # as argparse's usage errors and train.py's
    print(f'wrote {out}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
