"""The `Augmenter` interface and the `Compose` chain.

Augmenters transform a `~astro_cl.data.batch.TensorBatch` (data, mask,
uncertainty carried together) on whatever device the batch lives on, drawing
every random number from an explicit `torch.Generator`: the same seed gives the
same views.
"""

import contextvars
from typing import ClassVar

import numpy as np

from astro_cl.base import Component
from astro_cl.exceptions import ValidationError

__all__ = ["Augmenter", "Compose", "make_generator"]


#: Memory of the batch a `Compose` run was called with (None outside a run):
#: everything else a step of the run receives was made by an earlier step.
_CALLER_STORAGES = contextvars.ContextVar("astro_cl_compose_caller_storages", default=None)


def _chain_owned(tensor):
    """Whether a step may overwrite ``tensor``: an intermediate of the running `Compose`.

    Only inside a `Compose` run, and only for tensors that do not share memory
    with the batch the run was called with (nor are broadcast views). A step
    called on its own always returns new tensors.
    """
    protected = _CALLER_STORAGES.get()
    return (protected is not None and 0 not in tensor.stride()
            and tensor.untyped_storage().data_ptr() not in protected)


def make_generator(seed=None, device="cpu"):
    """Return a `torch.Generator` seeded from ``seed``.

    Parameters
    ----------
    seed : int, `torch.Generator` or None
        A generator is returned as is; None draws a fresh seed from the OS
        (not reproducible: pass an int for reproducible views).
    device : str or `torch.device`, optional
        Device of a new generator.

    Returns
    -------
    generator : `torch.Generator`
    """
    import torch

    if isinstance(seed, torch.Generator):
        return seed
    gen = torch.Generator(device=device)
    if seed is None:
        seed = int(np.random.SeedSequence().generate_state(1, dtype=np.uint64)[0] >> 1)
    gen.manual_seed(int(seed))
    return gen


class Augmenter(Component):
    """Base class of batched, seeded data augmentations.

    Subclasses implement `transform`; `__call__` validates the input and
    output. Augmenters are stateless unless they override `fit`.

    Inside a `Compose` chain, later steps may overwrite a step's output
    tensors in place (never the batch the chain was called with), so
    `transform` must return new tensors or tensors of its input batch, not
    buffers it keeps between calls.
    """

    #: Whether the transform conserves the total flux of each channel.
    conserves_flux: ClassVar[bool] = False

    def fit(self, batch=None):
        """Learn nothing (most augmenters are stateless) and return ``self``.

        Parameters
        ----------
        batch : `~astro_cl.data.batch.TensorBatch`, optional
            Example data.

        Returns
        -------
        self : `Augmenter`
        """
        return self

    def transform(self, batch, generator):
        """Return the augmented batch.

        Parameters
        ----------
        batch : `~astro_cl.data.batch.TensorBatch`
            Input batch; not modified in place.
        generator : `torch.Generator`
            Source of every random number.

        Returns
        -------
        batch : `~astro_cl.data.batch.TensorBatch`
        """
        raise NotImplementedError

    def __call__(self, batch, *, generator=None, seed=None):
        """Augment a batch.

        Parameters
        ----------
        batch : `~astro_cl.data.batch.TensorBatch`
        generator : `torch.Generator`, optional
            Source of random numbers (takes precedence over ``seed``).
        seed : int, optional
            Seed for a new generator.

        Returns
        -------
        batch : `~astro_cl.data.batch.TensorBatch`
        """
        from astro_cl.data.batch import TensorBatch

        if not isinstance(batch, TensorBatch):
            msg = f"{type(self).__name__}: expected a TensorBatch, got {type(batch).__name__}"
            raise ValidationError(msg)
        gen = generator if generator is not None else make_generator(seed, batch.device)
        out = self.transform(batch, gen)
        if not isinstance(out, TensorBatch):
            msg = f"{type(self).__name__}.transform must return a TensorBatch"
            raise ValidationError(msg)
        return out

    def apply(self, image, *, seed=None):
        """Augment one `~astropy.nddata.NDData` image, for inspection and plots.

        Parameters
        ----------
        image : `~astropy.nddata.NDData`
            2-D ``(H, W)`` or 3-D ``(C, H, W)`` data.
        seed : int, optional
            Random seed.

        Returns
        -------
        augmented : `~astropy.nddata.NDData`
            Same unit, WCS (of the input grid) and meta; mask and uncertainty
            carried through.
        """
        from astropy.nddata import NDData, StdDevUncertainty

        from astro_cl.data.batch import TensorBatch
        from astro_cl.data.record import uncertainty_as_std

        data = np.asarray(image.data, dtype=np.float32)
        squeeze = data.ndim == 2
        data = data[None] if squeeze else data
        mask = (np.zeros(data.shape, bool) if image.mask is None
                else np.broadcast_to(np.asarray(image.mask, bool), data.shape))
        std = uncertainty_as_std(image.uncertainty)
        batch = TensorBatch.from_arrays(
            np.where(mask, 0, data)[None], mask[None], ids=["0"],
            uncertainty=None if std is None else np.reshape(std, data.shape)[None])
        out = self(batch, seed=seed)
        pick = (lambda t: t[0, 0]) if squeeze else (lambda t: t[0])
        unc = None if out.uncertainty is None else StdDevUncertainty(pick(out.uncertainty).numpy())
        return NDData(pick(out.data).numpy(), unit=image.unit,
                      mask=pick(out.mask.expand_as(out.data)).numpy(),
                      uncertainty=unc, wcs=image.wcs, meta=dict(image.meta))


class Compose(Augmenter):
    """Apply augmenters in order, each with its own probability.

    Consecutive affine steps of probability 1 (rotations, flips,
    translations, 90-degree turns: subclasses of
    `~astro_cl.augment.geometric.AffineAugmenter`) are fused into a single
    resampling of the batch: their maps are composed and the data are
    interpolated once, with the random numbers drawn in the same order as
    step by step, so the result equals the step-by-step one up to
    interpolation error (and is exact for pixel-exact steps).

    A `~astro_cl.augment.photometric.MultiplicativeNoise` step directly
    followed by a `~astro_cl.augment.rebin.Rebin` step (as in the eCALIFA
    chain) is applied as one, with each step's probability kept. Where a
    galaxy gets both, its noise is drawn on the rebinned blocks. Over the
    good pixels of a block, the sum of ``x * (1 + n / SN)`` with independent
    standard normal ``n`` is ``sum(x) + z * sqrt(sum(x**2)) / SN`` with one
    standard normal ``z``, exactly in distribution; so the views are those of
    the two steps in turn, drawn from ``1 / f**2`` of the random numbers.

    Parameters
    ----------
    steps : sequence of `Augmenter` or (`Augmenter`, float)
        The chain; a bare augmenter has probability 1. A step with
        probability ``p`` is applied to each batch element independently with
        probability ``p``.
    fuse : bool, optional
        Fuse consecutive affine steps of probability 1, and a noise step
        followed by a rebinning step (see above).
    chunk_size : int, "auto" or None, optional
        Run the chain on consecutive chunks of this many galaxies and gather
        the results. "auto" (the default) picks the largest chunk whose data
        take at most `CHUNK_BYTES` (at least one galaxy), so every step's
        intermediate arrays stay cache-sized and are recycled by the memory
        allocator instead of being freshly mapped (and zeroed by the kernel)
        for each step; on large cubes this halves the time of the chain.
        None runs the whole batch at once. The chunking is part of the
        random stream: for a given input shape and ``chunk_size``, the same
        seed gives the same views on every machine. A chunked run on the
        CPU also calls `~astro_cl.utils.memory.retain_freed_memory` (once per
        process), so that freed chunks are reused rather than handed back to
        the kernel and faulted in again.
    workers : int or "auto", optional
        Threads that run the chunks of a CPU batch concurrently ("auto": one
        per torch intra-op thread, `torch.get_num_threads`). The chain's
        sequential parts (random numbers, small kernels) then overlap.

    Notes
    -----
    A batch of several chunks draws one seed per chunk from the caller's
    generator first; each chunk then draws its random numbers from its own
    generator. The views therefore depend on the seed, the input shape and
    ``chunk_size``, but not on ``workers`` or the timing of the threads.
    Changing ``chunk_size`` changes the views drawn from a seed (not their
    distribution).
    """

    name = "compose"
    description = "Apply a chain of augmenters, each with a per-galaxy probability."

    #: Data bytes per chunk of the "auto" ``chunk_size``.
    CHUNK_BYTES = 16 * 2**20

    def __init__(self, *, steps=(), fuse=True, chunk_size="auto", workers="auto"):
        self.steps = steps
        self.fuse = fuse
        self.chunk_size = chunk_size
        self.workers = workers

    def _normalised_steps(self):
        out = []
        for step in self.steps:
            aug, p = (step if isinstance(step, tuple) else (step, 1.0))
            if not isinstance(aug, Augmenter):
                msg = f"Compose.steps: expected Augmenter instances, got {type(aug).__name__}"
                raise ValidationError(msg)
            if not 0.0 <= float(p) <= 1.0:
                msg = (f"Compose.steps: probability of {type(aug).__name__} must be in [0, 1], "
                       f"got {p}")
                raise ValidationError(msg)
            out.append((aug, float(p)))
        return out

    def transform(self, batch, generator):
        """Apply each step in turn; see `Augmenter.transform`.

        Parameters
        ----------
        batch : `~astro_cl.data.batch.TensorBatch`
        generator : `torch.Generator`

        Returns
        -------
        batch : `~astro_cl.data.batch.TensorBatch`
        """
        import torch

        from astro_cl.utils.parallel import imap_ordered

        steps = self._normalised_steps()
        n = self._chunk_length(batch)
        workers = self._n_workers()
        if n >= len(batch):
            return self._run(steps, batch, generator)
        starts = list(range(0, len(batch), n))
        if batch.device.type == "cpu":
            from astro_cl.utils.memory import retain_freed_memory

            retain_freed_memory()
        else:
            workers = 1  # a GPU queue is already asynchronous
        # one generator per chunk, seeded before any chunk runs: the views do
        # not depend on which thread runs which chunk, or when
        seeds = torch.randint(0, 2**62, (len(starts),), generator=generator,
                              device=generator.device).tolist()
        grad = torch.is_grad_enabled()  # thread-local: carry it into the workers
        workers = min(workers, len(starts))
        threads = torch.get_num_threads()

        def run_chunk(k):
            if workers > 1:
                # one intra-op thread per worker: the workers are the parallelism
                # (nested OpenMP teams would oversubscribe the cores). This sets
                # the worker's own OpenMP/MKL thread count; the process-wide
                # default it also sets is restored below.
                torch.set_num_threads(1)
            gen = torch.Generator(device=generator.device).manual_seed(seeds[k])
            with torch.set_grad_enabled(grad):
                return self._run(steps, batch.chunk(starts[k], starts[k] + n), gen)

        out, metas = None, []
        if workers > 1:
            torch.set_num_threads(1)  # the gathering copies too: the cores are busy
        try:
            parts = imap_ordered(run_chunk, range(len(starts)), workers=workers)
            for lo, part in zip(starts, parts, strict=True):
                out = _gather_into(out, part, lo, len(batch))
                metas.append((len(part), part.meta))
        finally:
            if workers > 1:
                torch.set_num_threads(threads)
        return batch.replace(meta=_concat_meta(metas), **out)

    def _n_workers(self):
        """Chunk threads (see ``workers``)."""
        import torch

        workers = self.workers
        if workers == "auto":
            return max(1, torch.get_num_threads())
        if isinstance(workers, bool) or not isinstance(workers, int | np.integer) or workers < 1:
            msg = f"Compose.workers: expected a positive int or 'auto', got {workers!r}"
            raise ValidationError(msg)
        return int(workers)

    def _chunk_length(self, batch):
        """Galaxies per chunk for ``batch`` (see ``chunk_size``)."""
        size = self.chunk_size
        if size is None:
            return len(batch)
        if size == "auto":
            per_galaxy = batch.data[:1].numel() * batch.data.element_size()
            return max(1, self.CHUNK_BYTES // max(per_galaxy, 1))
        if isinstance(size, bool) or not isinstance(size, int | np.integer) or size < 1:
            msg = f"Compose.chunk_size: expected a positive int, 'auto' or None, got {size!r}"
            raise ValidationError(msg)
        return int(size)

    def _run(self, steps, batch, generator):
        """Apply ``steps`` to the whole of ``batch``."""
        # tensors of the caller's batch are never written; the chain's own are
        inputs = _storages(batch)
        token = _CALLER_STORAGES.set(frozenset(inputs))
        try:
            return self._run_steps(steps, batch, generator, inputs)
        finally:
            _CALLER_STORAGES.reset(token)

    def _run_steps(self, steps, batch, generator, inputs):
        import torch

        i = 0
        while i < len(steps):
            aug, p = steps[i]
            if self.fuse and _noise_then_rebin(steps, i):
                batch = _fused_noise_rebin(batch, steps[i], steps[i + 1], generator)
                i += 2
                continue
            run = _fusable_run(steps, i, tuple(batch.data.shape)) if self.fuse else ()
            if len(run) > 1:
                batch = _fused_affine(batch, run, generator)
                i += len(run)
                continue
            i += 1
            if p >= 1.0:
                batch = aug(batch, generator=generator)
                continue
            chosen = _chosen(len(batch), p, generator).to(batch.device)
            if not bool(chosen.any()):
                continue
            idx = torch.nonzero(chosen).flatten()
            changed = aug(batch.index(idx.cpu()), generator=generator)
            batch = _scatter(batch, changed, idx, inputs)
        return batch

    def two_views(self, batch, *, generator=None, seed=None):
        """Return two independently augmented views of a batch.

        Parameters
        ----------
        batch : `~astro_cl.data.batch.TensorBatch`
        generator : `torch.Generator`, optional
        seed : int, optional

        Returns
        -------
        view1, view2 : `~astro_cl.data.batch.TensorBatch`
        """
        gen = generator if generator is not None else make_generator(seed, batch.device)
        n = len(batch)
        both = self(batch.repeat(2), generator=gen)  # one call: half the per-call overhead
        return both.chunk(0, n), both.chunk(n, 2 * n)


def _gather_into(out, part, start, total):
    """Copy the fields of the chunk ``part`` into ``out`` (allocated on the first chunk)."""
    import torch

    from astro_cl.augment.geometric import _memory_format

    if out is None:
        out = {name: torch.empty((total, *value.shape[1:]), dtype=value.dtype,
                                 device=value.device, memory_format=_memory_format(value))
               for name, value in part.tensors().items()}
    for name, full in out.items():
        value = getattr(part, name)
        if value is None or value.shape[1:] != full.shape[1:]:
            msg = (f"Compose: chunks of the batch gave different {name} "
                   f"({'none' if value is None else tuple(value.shape[1:])} vs "
                   f"{tuple(full.shape[1:])}); use chunk_size=None for this chain")
            raise ValidationError(msg)
        full[start:start + len(part)].copy_(value)
    return out


def _fusable_run(steps, start, shape):
    """Return the run of fusable affine steps of probability 1 starting at ``start``."""
    from astro_cl.augment.geometric import AffineAugmenter

    run = []
    for aug, p in steps[start:]:
        if p < 1.0 or not isinstance(aug, AffineAugmenter) or not aug.can_fuse(shape):
            break
        run.append(aug)
    return run


def _noise_then_rebin(steps, i):
    """Whether steps ``i`` and ``i + 1`` are a multiplicative noise and a block-sum rebinning."""
    from astro_cl.augment.photometric import MultiplicativeNoise
    from astro_cl.augment.rebin import Rebin

    if i + 1 >= len(steps):
        return False
    first, second = steps[i][0], steps[i + 1][0]
    # subclasses that change what the steps do are applied one by one
    return (isinstance(first, MultiplicativeNoise)
            and type(first).transform is MultiplicativeNoise.transform
            and isinstance(second, Rebin) and type(second).transform is Rebin.transform)


def _fused_noise_rebin(batch, noise_step, rebin_step, generator):
    """Apply ``(MultiplicativeNoise, p), (Rebin, p)`` as one step (see `Compose`)."""
    import torch

    from astro_cl.augment.rebin import _rebin_images

    (noise, p_noise), (rebinning, p_rebin) = noise_step, rebin_step
    n = len(batch)
    noise_on = _chosen(n, p_noise, generator)
    rebin_on = _chosen(n, p_rebin, generator)
    sn = noise._draw_sn(n, generator, batch.device)
    factors = rebinning._draw_factors(n, generator, batch.device)
    factors = torch.where(rebin_on.to(factors.device), factors, 1)
    noise_sn = torch.where(noise_on.to(sn.device), sn, 0)
    return _rebin_images(batch, factors, noise_sn=noise_sn, generator=generator)


def _chosen(n, p, generator):
    """Which of ``n`` galaxies a step of probability ``p`` acts on (no draw when p = 1)."""
    import torch

    if p >= 1.0:
        return torch.ones(n, dtype=torch.bool)
    return (torch.rand(n, generator=generator, device=generator.device) < p).cpu()


def _fused_affine(batch, run, generator):
    """Apply a run of affine augmenters as one resampling of ``batch``."""
    from astro_cl.augment.geometric import _ORDER, _affine_warp

    shape = tuple(batch.data.shape)
    thetas = [aug.affine(shape, generator, batch.device) for aug in run]
    mode = max((aug.interpolation for aug in run), key=_ORDER.__getitem__)
    return _affine_warp(batch, thetas, mode)


def _storages(batch):
    """Addresses of the memory behind the tensors of ``batch``."""
    return {value.untyped_storage().data_ptr() for value in batch.tensors().values()}


def _concat_meta(parts):
    """``meta`` of chunks ``[(length, meta), ...]`` gathered into one batch.

    Per-galaxy values (`~astro_cl.data.batch.PER_IMAGE_META`) are concatenated
    in chunk order; everything else is taken from the last chunk.
    """
    from astro_cl.data.batch import PER_IMAGE_META, per_image_meta

    meta = dict(parts[-1][1])
    for key, default in PER_IMAGE_META.items():
        if not any(per_image_meta(m.get(key), n) is not None for n, m in parts):
            continue
        meta[key] = np.concatenate([np.broadcast_to(np.asarray(m.get(key, default), float), n)
                                    for n, m in parts]).tolist()
    return meta


def _scatter_meta(meta, changed, idx, n):
    """``meta`` of ``n`` galaxies with the per-galaxy values of ``changed`` put at ``idx``."""
    from astro_cl.data.batch import PER_IMAGE_META

    meta = dict(meta)
    rows = np.asarray(idx.cpu())
    for key, default in PER_IMAGE_META.items():
        if key not in changed.meta or changed.meta[key] is meta.get(key):
            continue
        values = np.array(np.broadcast_to(np.asarray(meta.get(key, default), float), n))
        values[rows] = np.broadcast_to(np.asarray(changed.meta[key], float), len(rows))
        meta[key] = values.tolist()
    return meta


def _scatter(batch, changed, idx, protected=()):
    """Put the rows of ``changed`` back into ``batch`` at ``idx`` (shapes must agree).

    Fields whose memory is in ``protected`` (the caller's tensors) are copied
    first; the others, intermediate results of the chain, are updated in place.
    Per-galaxy ``meta`` values (`~astro_cl.data.batch.PER_IMAGE_META`) of the
    changed rows are written back too.
    """
    fields = {}
    for name, full in batch.tensors().items():
        part = getattr(changed, name)
        if part is None:
            continue
        if full.shape[1:] != part.shape[1:]:
            msg = (f"Compose: a step with probability < 1 changed the shape of {name} "
                   f"from {tuple(full.shape[1:])} to {tuple(part.shape[1:])}; "
                   "give shape-changing steps probability 1")
            raise ValidationError(msg)
        owned = (full.untyped_storage().data_ptr() not in protected
                 and 0 not in full.stride())  # broadcast views cannot take rows
        new = full if owned else full.clone()
        new[idx] = part.to(new.dtype)
        fields[name] = new
    return batch.replace(meta=_scatter_meta(batch.meta, changed, idx, len(batch)), **fields)
