"""Data-parallel training over MPI: two ranks on the CPU (skipped where mpirun or mpi4py is
missing; .ci/run installs both)."""
import os
import shutil
import subprocess
import sys
import time

import numpy as np
import pytest

from minifft import distributed, parallel

from .test_train import TRAIN, read_log, setup  # noqa: F401  (the tiny dataset and model)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DRIVER = os.path.join(ROOT, 'tests', 'distributed_driver.py')

pytestmark = pytest.mark.skipif(shutil.which('mpirun') is None, reason='no mpirun')


def mpirun(*args, n=2, timeout=180):
    pytest.importorskip('mpi4py')
    env = dict(os.environ, PYTHONPATH=ROOT, OMP_NUM_THREADS='1', OPENBLAS_NUM_THREADS='1',
               MINIFFT_FFT_WORKERS='1')
    cmd = ['mpirun', '--allow-run-as-root', '--oversubscribe', '-np', str(n), sys.executable,
           *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)


def test_distributed_ranks_agree_and_match_one_process(setup, tmp_path):  # noqa: F811
    out = tmp_path / 'params.npy'
    r = mpirun(DRIVER, setup[0], str(out))
    assert r.returncode == 0, r.stderr
    ranks = np.load(out)
    assert ranks.shape[0] == 2 and np.array_equal(ranks[0], ranks[1])  # bit-identical
    # one process over the same global batches (2 ranks x 16 = 32, same epoch order)
    sys.path.insert(0, os.path.join(ROOT, 'tests'))
    import distributed_driver
    single = distributed_driver.train(setup[0], 32, 3, distributed.Single())
    assert np.abs(single - ranks[0]).max() <= 1e-4 * np.abs(single).max()


def test_distributed_train_script_writes_once_and_resumes(setup, tmp_path):  # noqa: F811
    data, model, _ = setup
    out = tmp_path / 'run'
    common = ['--model', model, '--data', data, '--no-progress', '--workers', '0']
    r = mpirun(TRAIN, *common, '--epochs', '1', '--out', str(out))
    assert r.returncode == 0, r.stderr
    assert r.stdout.count('epoch 1/1') == 1 and '2 ranks, global batch 32' in r.stdout
    share = parallel.requested_threads() or max(1, (os.cpu_count() or 1) // 2)
    assert f'{share} thread' in r.stdout    # each rank takes its share of the cores
    assert sorted(os.listdir(out)) == ['checkpoint.h5', 'curves.png', 'log.csv']
    r = mpirun(TRAIN, *common, '--epochs', '2', '--resume', str(out / 'checkpoint.h5'))
    assert r.returncode == 0, r.stderr
    assert 'resumed' in r.stdout and [row['epoch'] for row in read_log(str(out))] == ['1', '2']


def test_distributed_failing_rank_ends_the_job(setup, tmp_path):  # noqa: F811
    start = time.time()
    r = mpirun(DRIVER, setup[0], str(tmp_path / 'x.npy'), '1', timeout=120)
    assert r.returncode != 0
    assert 'rank 1 fails on purpose' in r.stderr and 'aborting all 2 ranks' in r.stderr
    assert time.time() - start < 120
