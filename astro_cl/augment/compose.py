"""The `Compose` chain: augmenters applied in order, each with a per-galaxy probability.

A chain asks each step whether it fuses with the steps after it
(`~astro_cl.augment.base.Augmenter.fusion`); it names no concrete augmenter.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from astro_cl.augment._inplace import protecting, storages
from astro_cl.augment.base import SPACES, Augmenter, make_generator
from astro_cl.exceptions import ValidationError

if TYPE_CHECKING:
    import torch

    from astro_cl.augment.base import Fusion
    from astro_cl.data.batch import TensorBatch

__all__ = ["Compose"]


class Compose(Augmenter):
    """Apply augmenters in order, each with its own probability.

    With ``fuse=True`` each step is asked, before it runs, whether it fuses
    with the steps that follow (`~astro_cl.augment.base.Augmenter.fusion`),
    and a fused group is applied as one. Among the built-ins, consecutive
    affine steps of probability 1 (rotations, flips, translations, 90-degree
    turns: subclasses of `~astro_cl.augment.geometric.AffineAugmenter`) are
    resampled once, with their maps composed and the random numbers drawn in
    the same order as step by step, so the result equals the step-by-step one
    up to interpolation error (and is exact for pixel-exact steps); and a
    `~astro_cl.augment.photometric.MultiplicativeNoise` step directly
    followed by a `~astro_cl.augment.rebin.Rebin` step (as in the eCALIFA
    chain) is applied as one, with each step's probability kept and the
    noise drawn on the rebinned blocks (the same distribution of views, from
    ``1 / f**2`` of the random numbers).

    Parameters
    ----------
    steps : sequence of `Augmenter` or (`Augmenter`, float)
        The chain; a bare augmenter has probability 1. A step with
        probability ``p`` is applied to each batch element independently with
        probability ``p``.
    fuse : bool, optional
        Let steps fuse with the steps after them (see above).
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

    def __init__(self, *, steps: Sequence[Augmenter | tuple[Augmenter, float]] = (),
                 fuse: bool = True, chunk_size: int | Literal["auto"] | None = "auto",
                 workers: int | Literal["auto"] = "auto") -> None:
        self.steps = steps
        self.fuse = fuse
        self.chunk_size = chunk_size
        self.workers = workers

    # the chain's space and channel change follow from its steps: properties
    # where a single augmenter has class attributes
    @property
    def space(self) -> str:  # type: ignore[override]
        """str: what the chain's input must be (see `~astro_cl.augment.base.SPACES`).

        "cube" if a step up to the first channel-changing one works in cube
        space, "image" if one works in image space, else "any".
        """
        spaces = set()
        for aug, _ in self.normalised_steps():
            spaces.add(aug.space)
            if aug.changes_channels:
                break
        return "cube" if "cube" in spaces else "image" if "image" in spaces else "any"

    @property
    def changes_channels(self) -> bool:  # type: ignore[override]
        """bool: whether a step of the chain changes the channel axis."""
        return any(aug.changes_channels for aug, _ in self.normalised_steps())

    def output_channels(self, in_channels: int) -> int:
        """Return the number of output channels for ``in_channels`` input channels.

        Parameters
        ----------
        in_channels : int

        Returns
        -------
        channels : int
        """
        channels = int(in_channels)
        for aug, _ in self.normalised_steps():
            channels = aug.output_channels(channels)
        return channels

    def normalised_steps(self) -> list[tuple[Augmenter, float]]:
        """Return the steps as validated ``(augmenter, probability)`` pairs.

        Returns
        -------
        steps : list of (`~astro_cl.augment.base.Augmenter`, float)
            A bare augmenter has probability 1.

        Raises
        ------
        astro_cl.exceptions.ValidationError
            If a step is not an augmenter, a probability is outside [0, 1],
            or a cube-space step comes after a step that changes the channel
            axis (or an image-space step before one; see
            `~astro_cl.augment.base.SPACES`).
        """
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
        _check_spaces([aug for aug, _ in out])
        return out

    def transform(self, batch: TensorBatch, generator: torch.Generator) -> TensorBatch:
        """Apply each step in turn; see `~astro_cl.augment.base.Augmenter.transform`.

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

        steps = self.normalised_steps()
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

        def run_chunk(k: int) -> TensorBatch:
            if workers > 1:
                # one intra-op thread per worker: the workers are the parallelism
                # (nested OpenMP teams would oversubscribe the cores). This sets
                # the worker's own OpenMP/MKL thread count; the process-wide
                # default it also sets is restored below.
                torch.set_num_threads(1)
            gen = torch.Generator(device=generator.device).manual_seed(seeds[k])
            with torch.set_grad_enabled(grad):
                return self._run(steps, batch.chunk(starts[k], starts[k] + n), gen)

        out: dict[str, torch.Tensor] | None = None
        metas: list[tuple[int, dict[str, Any]]] = []
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
        assert out is not None  # n < len(batch): there were at least two chunks
        return batch.replace(meta=_concat_meta(metas), **out)

    def _n_workers(self) -> int:
        """Chunk threads (see ``workers``)."""
        import torch

        workers = self.workers
        if workers == "auto":
            return max(1, torch.get_num_threads())
        if isinstance(workers, bool) or not isinstance(workers, int | np.integer) or workers < 1:
            msg = f"Compose.workers: expected a positive int or 'auto', got {workers!r}"
            raise ValidationError(msg)
        return int(workers)

    def _chunk_length(self, batch: TensorBatch) -> int:
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

    def _run(self, steps: list[tuple[Augmenter, float]], batch: TensorBatch,
             generator: torch.Generator) -> TensorBatch:
        """Apply ``steps`` to the whole of ``batch``."""
        # tensors of the caller's batch are never written; the chain's own are
        inputs = storages(batch)
        with protecting(inputs):
            return self._run_steps(steps, batch, generator, inputs)

    def _run_steps(self, steps: list[tuple[Augmenter, float]], batch: TensorBatch,
                   generator: torch.Generator, inputs: Collection[int]) -> TensorBatch:
        import torch

        from astro_cl.augment._random import chosen

        i = 0
        while i < len(steps):
            aug, p = steps[i]
            fused = (_fusion(aug, steps[i:], tuple(batch.data.shape)) if self.fuse
                     else None)
            if fused is not None:
                n, apply = fused
                batch = _checked_output(apply(batch, generator), aug)
                i += n
                continue
            i += 1
            if p >= 1.0:
                batch = aug(batch, generator=generator)
                continue
            on = chosen(len(batch), p, generator).to(batch.device)
            if not bool(on.any()):
                continue
            idx = torch.nonzero(on).flatten()
            changed = aug(batch.index(idx.cpu()), generator=generator)
            batch = _scatter(batch, changed, idx, inputs)
        return batch

    def two_views(self, batch: TensorBatch, *, generator: torch.Generator | None = None,
                  seed: int | None = None) -> tuple[TensorBatch, TensorBatch]:
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


def _step_name(aug: Augmenter) -> str:
    return type(aug).name or type(aug).__qualname__


def _check_spaces(steps: Sequence[Augmenter]) -> None:
    """Refuse cube- or image-space steps on the wrong side of a channel change.

    See `Augmenter.space`.
    """
    changed = image = None  # index of the first channel change / image-space step
    for i, aug in enumerate(steps):
        space = aug.space
        if space not in SPACES:
            msg = (f"{type(aug).__name__}.space: expected one of {list(SPACES)}, "
                   f"got {space!r}")
            raise ValidationError(msg)
        if space == "cube" and changed is not None:
            msg = (f"Compose.steps: step {i} ({_step_name(aug)!r}) works in cube space (on "
                   f"the spectral channels) but comes after step {changed} "
                   f"({_step_name(steps[changed])!r}), which changes the channel axis; move "
                   "it before (in a training configuration: [[augment.cube_steps]])")
            raise ValidationError(msg)
        if aug.changes_channels:
            if image is not None:
                msg = (f"Compose.steps: step {image} ({_step_name(steps[image])!r}) works in "
                       f"image space but comes before step {i} ({_step_name(aug)!r}), which "
                       "changes the channel axis; move it after")
                raise ValidationError(msg)
            changed = i if changed is None else changed
        if space == "image" and changed is None:
            image = i if image is None else image


def _fusion(aug: Augmenter, steps: list[tuple[Augmenter, float]],
            shape: tuple[int, ...]) -> Fusion | None:
    """Ask ``aug`` (``steps[0]``) whether it fuses with what follows; check its answer."""
    fused = aug.fusion(steps, shape)
    if fused is None:
        return None
    ok = isinstance(fused, tuple) and len(fused) == 2 and callable(fused[1])
    n = fused[0] if ok else None
    if not ok or isinstance(n, bool) or not isinstance(n, int) or not 2 <= n <= len(steps):
        msg = (f"{type(aug).__name__}.fusion: expected None or (n, apply) with 2 <= n <= "
               f"{len(steps)} (the steps left in the chain) and a callable apply, got {fused!r}")
        raise ValidationError(msg)
    return fused


def _checked_output(out: object, aug: Augmenter) -> TensorBatch:
    """``out`` if it is a `~astro_cl.data.batch.TensorBatch` (a fused group's result)."""
    from astro_cl.data.batch import TensorBatch

    if not isinstance(out, TensorBatch):
        msg = (f"{type(aug).__name__}.fusion: its apply(batch, generator) must return a "
               f"TensorBatch, got {type(out).__name__}")
        raise ValidationError(msg)
    return out


def _gather_into(out: dict[str, torch.Tensor] | None, part: TensorBatch, start: int,
                 total: int) -> dict[str, torch.Tensor]:
    """Copy the fields of the chunk ``part`` into ``out`` (allocated on the first chunk)."""
    import torch

    from astro_cl.augment._resample import memory_format

    if out is None:
        out = {name: torch.empty((total, *value.shape[1:]), dtype=value.dtype,
                                 device=value.device, memory_format=memory_format(value))
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


def _concat_meta(parts: Sequence[tuple[int, dict[str, Any]]]) -> dict[str, Any]:
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


def _scatter_meta(meta: dict[str, Any], changed: TensorBatch, idx: torch.Tensor,
                  n: int) -> dict[str, Any]:
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


def _scatter(batch: TensorBatch, changed: TensorBatch, idx: torch.Tensor,
             protected: Collection[int] = ()) -> TensorBatch:
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
