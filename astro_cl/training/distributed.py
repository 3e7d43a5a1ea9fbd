"""Distributed data-parallel training through ``torchrun``.

The same configuration runs on one process or many: under ``torchrun`` the
environment variables ``RANK``, ``WORLD_SIZE`` and ``LOCAL_RANK`` are set and
`init_distributed` joins the process group (gloo on CPU, NCCL on GPU);
otherwise it returns a single-process `DistInfo` and nothing else changes.

Each optimisation step takes one *global* batch of indices, identical on every
rank, and `shard_indices` gives each rank its share (like
`torch.utils.data.DistributedSampler`, padded by repetition so that every rank
has the same count). Batch statistics are made global with
`DistributedBatchNorm` (CPU-capable, unlike `torch.nn.SyncBatchNorm`) and
contrastive losses gather every rank's embeddings with `all_gather_with_grad`,
so that N processes compute the same gradient as one process on the global
batch. Only rank 0 writes checkpoints and history files.
"""

import os
from dataclasses import dataclass

import torch
from torch import nn

__all__ = [
    "DistInfo",
    "DistributedBatchNorm",
    "all_gather_with_grad",
    "all_reduce_sum",
    "convert_batchnorm",
    "destroy_distributed",
    "dist_active",
    "init_distributed",
    "shard_indices",
]


_CPU = torch.device("cpu")


@dataclass(frozen=True)
class DistInfo:
    """Where this process sits in a (possibly single-process) job.

    Parameters
    ----------
    rank : int
    world_size : int
    local_rank : int
    device : `torch.device`
    backend : str or None
        ``"gloo"``, ``"nccl"`` or None when not distributed.
    """

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = _CPU
    backend: str | None = None

    @property
    def is_main(self):
        """bool: whether this is rank 0 (the one that writes files)."""
        return self.rank == 0

    @property
    def distributed(self):
        """bool: whether more than one process takes part."""
        return self.world_size > 1


def dist_active():
    """Return whether a process group with more than one process is initialised.

    Returns
    -------
    bool
    """
    import torch.distributed as dist

    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def init_distributed(device=None, backend=None):
    """Join the ``torchrun`` process group if there is one.

    Parameters
    ----------
    device : str or `torch.device`, optional
        ``"cpu"``, ``"cuda"`` or None (CUDA when available). Under several
        processes on GPU, each uses ``cuda:LOCAL_RANK``.
    backend : str, optional
        Default: ``"nccl"`` on CUDA, ``"gloo"`` on CPU.

    Returns
    -------
    info : `DistInfo`
    """
    import torch.distributed as dist

    if device is None:
        device = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(device)
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1 and not (dist.is_available() and dist.is_initialized()):
        return DistInfo(device=device)
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if device.type == "cuda":
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        backend = backend or ("nccl" if device.type == "cuda" else "gloo")
        dist.init_process_group(backend=backend)
    return DistInfo(rank=dist.get_rank(), world_size=dist.get_world_size(),
                    local_rank=local_rank, device=device, backend=dist.get_backend())


def destroy_distributed():
    """Leave the process group, if this process joined one."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def shard_indices(indices, rank, world_size):
    """Return this rank's share of a global batch of indices.

    Parameters
    ----------
    indices : `torch.Tensor` or sequence of int
        The global batch, identical on every rank.
    rank, world_size : int

    Returns
    -------
    shard : `torch.Tensor`
        ``indices[rank::world_size]`` after padding ``indices`` by repetition
        from its start to a multiple of ``world_size`` (as
        `torch.utils.data.DistributedSampler`), so every rank gets
        ``ceil(len(indices) / world_size)`` indices.
    """
    indices = torch.as_tensor(indices, dtype=torch.long)
    if world_size <= 1:
        return indices
    if not 0 <= rank < world_size:
        msg = f"shard_indices: rank {rank} out of range for world size {world_size}"
        raise ValueError(msg)
    n = len(indices)
    total = -(-n // world_size) * world_size
    if total > n:
        reps = -(-total // n)
        indices = indices.repeat(reps)[:total]
    return indices[rank::world_size]


def all_gather_with_grad(tensor):
    """Concatenate a tensor from every rank along dim 0, keeping gradients.

    Parameters
    ----------
    tensor : `torch.Tensor`

    Returns
    -------
    gathered : `torch.Tensor`
        The input itself when not distributed.
    """
    if not dist_active():
        return tensor
    return _GatherWithGrad.apply(tensor)


def all_reduce_sum(tensor):
    """Sum a tensor over ranks (no gradient); identity when not distributed.

    Parameters
    ----------
    tensor : `torch.Tensor`

    Returns
    -------
    total : `torch.Tensor`
    """
    if not dist_active():
        return tensor
    import torch.distributed as dist

    tensor = tensor.detach().clone()
    dist.all_reduce(tensor)
    return tensor


class _GatherWithGrad(torch.autograd.Function):
    """All-gather along dim 0, with gradient.

    The backward sums every rank's gradient of the gathered tensor (an
    all-reduce, which gloo supports) and keeps this rank's rows.
    """

    @staticmethod
    def forward(ctx, tensor):
        import torch.distributed as dist

        tensor = tensor.contiguous()
        world, rank = dist.get_world_size(), dist.get_rank()
        parts = [torch.empty_like(tensor) for _ in range(world)]
        dist.all_gather(parts, tensor)
        ctx.rows, ctx.rank = tensor.shape[0], rank
        return torch.cat(parts, dim=0)

    @staticmethod
    def backward(ctx, grad):
        import torch.distributed as dist

        grad = grad.contiguous().clone()
        dist.all_reduce(grad)
        start = ctx.rank * ctx.rows
        return grad[start:start + ctx.rows]


class _AllReduceWithGrad(torch.autograd.Function):
    """Sum over ranks; the gradient is summed over ranks as well."""

    @staticmethod
    def forward(ctx, tensor):
        import torch.distributed as dist

        out = tensor.contiguous().clone()
        dist.all_reduce(out)
        return out

    @staticmethod
    def backward(ctx, grad):
        import torch.distributed as dist

        grad = grad.contiguous().clone()
        dist.all_reduce(grad)
        return grad


class DistributedBatchNorm(nn.modules.batchnorm._BatchNorm):
    """Batch normalisation whose statistics span every rank's batch (CPU or GPU).

    Behaves as the batch norm it replaces in a single process, and in
    evaluation mode; in training mode under a process group, the per-channel
    sums are all-reduced (with gradient), so N ranks normalise with the global
    batch's mean and variance.
    """

    def _check_input_dim(self, input):
        if input.dim() < 2:
            msg = f"DistributedBatchNorm: expected at least 2-D input, got {input.dim()}-D"
            raise ValueError(msg)

    def forward(self, x):
        """Normalise ``x`` of shape ``(B, C, ...)``.

        Parameters
        ----------
        x : `torch.Tensor`

        Returns
        -------
        y : `torch.Tensor`
        """
        if not (self.training and dist_active()):
            return super().forward(x)
        c = x.shape[1]
        dims = [0, *range(2, x.dim())]
        count = torch.tensor([x.numel() / c], dtype=x.dtype, device=x.device)
        packed = torch.cat([x.sum(dims), (x * x).sum(dims), count])
        packed = _AllReduceWithGrad.apply(packed)
        n = packed[-1]
        mean = packed[:c] / n
        var = (packed[c:2 * c] / n - mean * mean).clamp_min(0.0)
        if self.track_running_stats:
            with torch.no_grad():
                self.num_batches_tracked.add_(1)
                momentum = (1.0 / float(self.num_batches_tracked) if self.momentum is None
                            else self.momentum)
                unbiased = var * (n / (n - 1).clamp_min(1.0))
                self.running_mean.mul_(1 - momentum).add_(momentum * mean.detach())
                self.running_var.mul_(1 - momentum).add_(momentum * unbiased.detach())
        shape = [1, c] + [1] * (x.dim() - 2)
        y = (x - mean.view(shape)) * torch.rsqrt(var.view(shape) + self.eps)
        if self.affine:
            y = y * self.weight.view(shape) + self.bias.view(shape)
        return y


def convert_batchnorm(module):
    """Replace every batch-norm layer of ``module`` by a `DistributedBatchNorm`.

    Parameters and running statistics are kept.

    Parameters
    ----------
    module : `torch.nn.Module`

    Returns
    -------
    module : `torch.nn.Module`
        The converted module (the same object unless ``module`` itself is a
        batch norm).
    """
    if isinstance(module, nn.modules.batchnorm._BatchNorm) and \
            not isinstance(module, DistributedBatchNorm):
        new = DistributedBatchNorm(module.num_features, module.eps, module.momentum,
                                   module.affine, module.track_running_stats)
        new.load_state_dict(module.state_dict())
        new.train(module.training)
        return new.to(next(iter(module.state_dict().values())).device) \
            if module.state_dict() else new
    for name, child in module.named_children():
        setattr(module, name, convert_batchnorm(child))
    return module

