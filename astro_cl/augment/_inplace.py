"""Which tensors a step of a running chain may overwrite in place.

Private to `astro_cl.augment`. A `~astro_cl.augment.compose.Compose` run
marks the memory of the batch it was called with as protected
(`protecting`); everything else a step receives during the run was made by an
earlier step of the same run, and a step may reuse it (`chain_owned`) instead
of allocating a new tensor. Outside a run nothing may be overwritten.
"""

import contextlib
import contextvars

__all__ = ["chain_owned", "protecting", "storages"]

#: Memory of the batch a `Compose` run was called with (None outside a run):
#: everything else a step of the run receives was made by an earlier step.
_CALLER_STORAGES = contextvars.ContextVar("astro_cl_compose_caller_storages", default=None)


def storages(batch):
    """Return the addresses of the memory behind the tensors of ``batch``.

    Parameters
    ----------
    batch : `~astro_cl.data.batch.TensorBatch`

    Returns
    -------
    addresses : set of int
    """
    return {value.untyped_storage().data_ptr() for value in batch.tensors().values()}


@contextlib.contextmanager
def protecting(addresses):
    """Run a chain whose caller owns the memory at ``addresses`` (see `chain_owned`).

    Parameters
    ----------
    addresses : iterable of int
        Storage addresses (`storages` of the caller's batch).

    Yields
    ------
    None
    """
    token = _CALLER_STORAGES.set(frozenset(addresses))
    try:
        yield
    finally:
        _CALLER_STORAGES.reset(token)


def chain_owned(tensor):
    """Return whether a step may overwrite ``tensor``: an intermediate of the running chain.

    Only inside a `Compose` run (`protecting`), and only for tensors that do
    not share memory with the batch the run was called with (nor are
    broadcast views). A step called on its own always returns new tensors.

    Parameters
    ----------
    tensor : `torch.Tensor`

    Returns
    -------
    bool
    """
    protected = _CALLER_STORAGES.get()
    return (protected is not None and 0 not in tensor.stride()
            and tensor.untyped_storage().data_ptr() not in protected)
