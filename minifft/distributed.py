"""Data-parallel training over MPI (mpi4py), with NCCL for the gradient sum on GPUs.

Every rank holds the whole model. Rank 0's parameters, buffers and optimizer state are
broadcast at the start; after each backward the gradients are flattened into one contiguous
buffer, summed by one in-place allreduce and divided by the world size, so every rank takes
the same SGD step on the same averaged gradient. Each rank reads a disjoint shard of every
epoch (DataLoader's rank/world). Only rank 0 prints and writes files.

Launch: ``mpirun -np 2 python scripts/train.py ...`` (a launch is recognised by the variables
mpirun sets, or asked for with ``--distributed``).
"""
import os
import sys

import numpy as np

from . import backend, parallel

_LAUNCH_VARIABLES = ('OMPI_COMM_WORLD_SIZE', 'PMI_SIZE', 'PMIX_RANK', 'MV2_COMM_WORLD_SIZE')


def launched_by_mpi():
    return any(v in os.environ for v in _LAUNCH_VARIABLES)


class Communicator:
    """The MPI world of this job, with the few collectives training needs."""

    def __init__(self):
        try:
            from mpi4py import MPI
        except ImportError:
            raise RuntimeError("distributed training needs mpi4py: pip install 'minifft[dist]' "
                               '(and an MPI library, e.g. Debian\'s openmpi-bin)') from None
        self.MPI = MPI
        self.comm = MPI.COMM_WORLD
        self.rank, self.world = self.comm.Get_rank(), self.comm.Get_size()
        node = self.comm.Split_type(MPI.COMM_TYPE_SHARED)
        self.local_rank, self.local_size = node.Get_rank(), node.Get_size()
        self.is_main = self.rank == 0
        self._flat = None
        self._nccl = None

    # -- setup ----------------------------------------------------------------------------
    def pin_gpu(self):
        """One GPU per local rank (round robin when there are more ranks than GPUs)."""
        backend.use_gpu(self.local_rank)

    def share_cores(self):
        """Give each rank on this machine its share of the cores for minifft's threads,
        BLAS and FFTs (each would otherwise use all of them: ranks x cores threads), unless
        ``MINIFFT_THREADS`` says how many. Returns the threads per rank."""
        n = parallel.requested_threads() or max(1, (os.cpu_count() or 1) // self.local_size)
        parallel.set_threads(n)
        backend.share_host_cores(n)
        return n

    def broadcast_state(self, model, optimizer):
        """Rank 0's parameters, buffers and momentum buffers, on every rank."""
        arrays = ([p for _, p, _ in model.named_parameters()] +
                  [b for _, b in model.named_buffers()])
        for a in arrays:
            host = np.ascontiguousarray(backend.asnumpy(a))
            self.comm.Bcast(host, root=0)
            a[...] = backend.get_array_module(a).asarray(host)
        state = self.comm.bcast(optimizer.state_dict() if self.is_main else None, root=0)
        optimizer.load_state_dict(state)

    # -- every step -----------------------------------------------------------------------
    def average_gradients(self, grads):
        """Replace every gradient by its mean over the ranks: one flat buffer, one in-place
        allreduce (NCCL for GPU arrays, MPI otherwise)."""
        if self.world == 1:
            return
        xp = backend.get_array_module(grads[0])
        total = sum(int(g.size) for g in grads)
        if self._flat is None or self._flat.size != total or backend.get_array_module(
                self._flat) is not xp:
            self._flat = xp.empty(total, grads[0].dtype)
        offset = 0
        for g in grads:
            self._flat[offset:offset + g.size] = g.reshape(-1)
            offset += g.size
        if backend.is_gpu_array(self._flat):
            self._nccl_allreduce(self._flat)
        else:
            self.comm.Allreduce(self.MPI.IN_PLACE, self._flat, op=self.MPI.SUM)
        self._flat /= self.world
        offset = 0
        for g in grads:
            g[...] = self._flat[offset:offset + g.size].reshape(g.shape)
            offset += g.size

    def _nccl_allreduce(self, buf):
        if self._nccl is None:
            # rank 0 makes the unique id; MPI carries it to the others
            uid = self.comm.bcast(backend.nccl_unique_id() if self.is_main else None, root=0)
            self._nccl = backend.nccl_communicator(self.world, uid, self.rank)
        backend.nccl_allreduce_sum(self._nccl, buf)

    def sum(self, values):
        """Element-wise sum of a list of numbers over the ranks (metrics)."""
        return [float(v) for v in self.comm.allreduce(np.asarray(values, np.float64),
                                                      op=self.MPI.SUM)]

    def min(self, value):
        return self.comm.allreduce(value, op=self.MPI.MIN)

    def barrier(self):
        self.comm.Barrier()

    def abort(self, message, code=1):
        """End the whole job: a rank that fails must not leave the others waiting forever in
        a collective."""
        print(f'rank {self.rank}: {message}; aborting all {self.world} ranks', file=sys.stderr,
              flush=True)
        self.comm.Abort(code)


class Single:
    """The one-process stand-in, so the trainer has one code path."""
    rank, world, local_rank, local_size, is_main = 0, 1, 0, 1, True

    def pin_gpu(self):
        pass

    def share_cores(self):
        return parallel.threads()

    def broadcast_state(self, model, optimizer):
        pass

    def average_gradients(self, grads):
        pass

    def sum(self, values):
        return [float(v) for v in values]

    def min(self, value):
        return value

    def barrier(self):
        pass

    def abort(self, message, code=1):
        raise SystemExit(code)


def communicator(distributed=False):
    """A Communicator under an MPI launch (or when asked), else Single."""
    return Communicator() if (distributed or launched_by_mpi()) else Single()
