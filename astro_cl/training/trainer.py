"""The training loop shared by every astro_cl model.

`Trainer` optimises a `torch.nn.Module` on a batch source (any object with
``len()``, ``ids`` and ``batch(indices)``), given a loss function
``loss_fn(module, batch, generator) -> scalar tensor``. It provides Adam/AdamW,
learning-rate schedules, a validation split, early stopping, atomic
checkpoints every epoch and on Ctrl-C, bit-for-bit resumption, a tqdm progress
bar, a CSV history, bfloat16 autocast (`astro_cl.training.precision`) and
data-parallel training under ``torchrun``.

Speed: while the network trains on step ``s``, a background thread reads batch
``s + 1`` from the source and, when the loss function offers a
``prepare(batch, generator)`` method (as the astro_cl model losses do),
augments it too, so data reading and augmentation overlap the model step. The
optimiser uses PyTorch's fused (single-kernel) Adam/AdamW where the device
and the parameters' memory layout allow it.

Determinism: the shuffle of epoch ``e`` and the augmentation generator of step
``s`` are derived from ``(seed, e, s)``, and the global torch / numpy random
states (dropout) are saved in every checkpoint, so a resumed run repeats the
losses and weights of an uninterrupted one exactly.
"""

import contextlib
import csv
import math
import os
import signal
import threading
import time
import warnings
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from astro_cl.exceptions import AstroCLError, AstroCLWarning, ValidationError
from astro_cl.training.checkpoints import load_checkpoint, make_header, save_checkpoint
from astro_cl.training.distributed import (
    all_reduce_sum,
    convert_batchnorm,
    init_distributed,
    shard_indices,
)
from astro_cl.training.precision import precision_forward, resolve_precision
from astro_cl.training.schema import TRAINER_CONSTRAINTS, Schedule, validate_params
from astro_cl.utils.io import atomic_write, remove_stale_temp_files

__all__ = ["NonFiniteLossError", "Trainer", "default_num_threads", "lr_factor"]

#: Name of the rolling checkpoint inside ``checkpoint_dir``.
LAST_CHECKPOINT = "last.pt"
#: Name of the history file inside ``checkpoint_dir``.
HISTORY_FILE = "history.csv"
#: Validation batches hold this many times the training batch size.
VALIDATION_BATCH_FACTOR = 4
_HISTORY_COLUMNS = ("epoch", "lr", "train_loss", "val_loss", "seconds", "val_seconds",
                    "images_per_s")


class NonFiniteLossError(AstroCLError, FloatingPointError):
    """The training loss became NaN or infinite; the last good checkpoint is kept."""


def lr_factor(schedule, epoch):
    """Return the learning-rate multiplier of a schedule at an epoch.

    Parameters
    ----------
    schedule : dict or None
        ``None`` or ``{"name": "constant"}``; ``{"name": "step", "step_size": 2,
        "gamma": 0.75}`` (the eCALIFA study: x0.75 every 2 epochs);
        ``{"name": "multistep", "milestones": [8, 10], "gamma": 0.1}``
        (PICASSSO: /10 after epochs 8 and 10); ``{"name": "cosine",
        "epochs": N, "min_factor": 0.0}``.
    epoch : int
        Zero-based epoch.

    Returns
    -------
    factor : float
    """
    if schedule is None:
        return 1.0
    spec = dict(schedule)
    name = spec.pop("name", "constant")
    if name == "constant":
        return 1.0
    if name == "step":
        return float(spec.get("gamma", 0.75)) ** (epoch // int(spec.get("step_size", 2)))
    if name == "multistep":
        passed = sum(1 for m in spec.get("milestones", ()) if epoch >= int(m))
        return float(spec.get("gamma", 0.1)) ** passed
    if name == "cosine":
        total = max(1, int(spec.get("epochs", 1)))
        lo = float(spec.get("min_factor", 0.0))
        return lo + (1 - lo) * 0.5 * (1 + math.cos(math.pi * min(epoch, total) / total))
    msg = f"schedule: unknown name {name!r}; expected constant, step, multistep or cosine"
    raise ValueError(msg)


def default_num_threads(processes_per_node=1):
    """Return a sensible intra-op thread count: usable cores per local process.

    Usable cores are `~astro_cl.utils.available_cpus`: the process's CPU
    affinity capped by its cgroup CPU quota, not the machine's core count.

    Parameters
    ----------
    processes_per_node : int, optional
        Training processes sharing this machine.

    Returns
    -------
    n : int
    """
    from astro_cl.utils.cpus import available_cpus

    return max(1, available_cpus() // max(1, int(processes_per_node)))


def _mix(*values):
    """Deterministic 63-bit seed from integers (SplitMix-style, platform independent)."""
    seq = np.random.SeedSequence([int(v) & 0xFFFFFFFF for v in values])
    return int(seq.generate_state(1, dtype=np.uint64)[0] >> 1)


def _numpy_state():
    state = np.random.get_state(legacy=False)  # noqa: NPY002 - global state of third-party code
    inner = state["state"]
    return {"bit_generator": state["bit_generator"],
            "key": torch.from_numpy(np.asarray(inner["key"], dtype=np.int64)),
            "pos": int(inner["pos"]), "has_gauss": int(state["has_gauss"]),
            "gauss": float(state["gauss"])}


def _set_numpy_state(saved):
    np.random.set_state({"bit_generator": saved["bit_generator"],  # noqa: NPY002
                         "state": {"key": saved["key"].numpy().astype(np.uint32),
                                   "pos": int(saved["pos"])},
                         "has_gauss": int(saved["has_gauss"]), "gauss": float(saved["gauss"])})


@dataclass
class _Run:
    """What the epochs of one `Trainer.fit` share."""

    source: object
    #: the network itself (weights, state dicts, train/eval mode)
    module: torch.nn.Module
    #: what the loss calls: the network, wrapped for data parallelism and precision
    forward: object
    optimizer: torch.optim.Optimizer
    train_idx: torch.Tensor
    val_idx: torch.Tensor
    batch_size: int
    device: torch.device
    dist: object
    tqdm: object
    #: best monitored loss so far: loss, epoch, bad (epochs without improvement), state
    best: dict


class Trainer:
    """Optimise a module on a batch source.

    Parameters
    ----------
    module : `torch.nn.Module`
        The network (moved to ``device``).
    loss_fn : callable
        ``loss_fn(module, batch, generator) -> scalar tensor``; ``generator``
        (a `torch.Generator` on ``device``) is the source of every random
        number of the step (augmentations). A loss object may split this
        into ``prepare(batch, generator) -> prepared`` (data work only:
        augmentation, target transforms; no model, no collectives, no global
        random state) and ``compute(module, prepared) -> scalar tensor``; the
        trainer then runs ``prepare`` for the next step in a background
        thread while the current step computes.
    optimizer : {"adam", "adamw", "sgd"}, optional
        Adam, AdamW, or SGD with Nesterov momentum (``betas[0]``, 0.9 by default).
    lr : float, optional
        Base learning rate.
    weight_decay : float, optional
    betas : tuple of float, optional
    schedule : dict, optional
        Learning-rate schedule, see `lr_factor`.
    epochs : int, optional
        Maximum number of epochs.
    batch_size : int or None, optional
        Global batch size (summed over processes); None = the whole training set.
    drop_last : bool, optional
        Drop a last, smaller batch of each epoch. A last training batch of a
        single galaxy is always dropped when the network has batch norm
        (which cannot normalise one value per channel); a different galaxy
        misses each epoch, as the order is shuffled.
    validation_fraction : float, optional
        Fraction of the source held out (seeded) to monitor; 0 = none.
    patience : int or None, optional
        Early stopping: stop after this many epochs without improvement of the
        monitored loss (validation loss, else training loss); 0 or None: never.
    min_delta : float, optional
        Smallest decrease counted as an improvement.
    restore_best : bool, optional
        Load the best weights at the end.
    seed : int, optional
        Seed of the split, the shuffles, the augmentations and the global
        torch / numpy random states.
    device : str or `torch.device`, optional
        Default: CUDA when available, else CPU.
    checkpoint_dir : str or `~pathlib.Path`, optional
        Where ``last.pt`` and ``history.csv`` are written (atomically) after
        every epoch and on interruption.
    header : dict, optional
        Checkpoint header from `~astro_cl.training.checkpoints.make_header`
        (model name and configuration).
    extra_state : dict, optional
        Plain data saved in every checkpoint (e.g. target names).
    progress : bool, optional
        Show a tqdm progress bar (rank 0 only).
    num_threads : int, optional
        Intra-op CPU threads during training (default: `default_num_threads`).
    precision : {"auto", "fp32", "bf16"}, optional
        ``"bf16"``: the network's forward passes run under bfloat16 autocast,
        with float32 weights and the loss computed in float32 on the
        network's float32-cast outputs; ``"auto"``: bf16 where the device has
        native bfloat16 arithmetic, else fp32 (see
        `astro_cl.training.precision`). The precision used is kept as
        ``precision_``.
    callbacks : sequence of callable, optional
        Called as ``callback(trainer, event, info)`` with ``event`` in
        ``"step_end"`` and ``"epoch_end"``.
    prefetch : bool, optional
        Read (and, with a ``prepare`` method, augment) the next training batch
        in a background thread during the current step. The results are
        identical either way.
    prefetch_threads : int, optional
        Intra-op threads of the prefetch thread (default: as many as the
        training step). With a light ``prepare`` (pixel permutations,
        element-wise maps) one thread leaves the cores to the model step: the
        two OpenMP teams otherwise compete for the same cores (figures in
        ``benchmarks/README.md``). Results can
        change with the thread count only through parallel reductions inside
        ``prepare``.
    fused : bool or None, optional
        Use the fused Adam/AdamW kernel; None: when the device supports it and
        every parameter is contiguous (else the multi-tensor implementation).
    max_batches : int, optional
        Run one epoch of at most this many training and validation batches
        (a quick check of the whole path, like PyTorch Lightning's
        ``fast_dev_run``).
    """

    #: Accepted values of the parameters, checked at the start of `fit`
    #: (`astro_cl.training.schema`); ``schedule`` is a table or None here.
    _parameter_constraints = {**TRAINER_CONSTRAINTS, "schedule": [None, Schedule()]}

    def __init__(self, module, loss_fn, *, optimizer="adam", lr=1e-3, weight_decay=0.0,
                 betas=(0.9, 0.999), schedule=None, epochs=10, batch_size=32, drop_last=False,
                 validation_fraction=0.0, patience=None, min_delta=0.0, restore_best=True,
                 seed=0, device=None, checkpoint_dir=None, header=None, extra_state=None,
                 progress=True, num_threads=None, precision="auto", callbacks=(), prefetch=True,
                 prefetch_threads=None, fused=None, max_batches=None):
        self.module = module
        self.loss_fn = loss_fn
        self.optimizer = optimizer
        self.lr = lr
        self.weight_decay = weight_decay
        self.betas = betas
        self.schedule = schedule
        self.epochs = epochs
        self.batch_size = batch_size
        self.drop_last = drop_last
        self.validation_fraction = validation_fraction
        self.patience = patience
        self.min_delta = min_delta
        self.restore_best = restore_best
        self.seed = seed
        self.device = device
        self.checkpoint_dir = checkpoint_dir
        self.header = header or make_header("unnamed", {})
        self.extra_state = extra_state or {}
        self.progress = progress
        self.num_threads = num_threads
        self.precision = precision
        self.callbacks = list(callbacks)
        self.prefetch = prefetch
        self.prefetch_threads = prefetch_threads
        self.fused = fused
        self.max_batches = max_batches
        self.history = []
        self._stop_requested = False

    # -- helpers -----------------------------------------------------------
    @property
    def checkpoint_path(self):
        """`~pathlib.Path` or None: the rolling checkpoint file."""
        return None if self.checkpoint_dir is None else Path(self.checkpoint_dir) / LAST_CHECKPOINT

    def request_stop(self):
        """Ask the loop to checkpoint and raise `KeyboardInterrupt` after the current step."""
        self._stop_requested = True

    def _make_optimizer(self, params):
        kind = str(self.optimizer).lower()
        classes = {"adam": torch.optim.Adam, "adamw": torch.optim.AdamW, "sgd": torch.optim.SGD}
        if kind not in classes:
            msg = f"optimizer: expected 'adam', 'adamw' or 'sgd', got {self.optimizer!r}"
            raise ValueError(msg)
        params = list(params)
        kwargs = {"lr": float(self.lr), "weight_decay": float(self.weight_decay)}
        if kind == "sgd":  # Nesterov momentum 0.9, with betas[0] as the momentum
            kwargs.update(momentum=float(self.betas[0]), nesterov=True)
        else:
            kwargs["betas"] = tuple(self.betas)
        fused = self.fused
        if fused is None:
            # The fused kernels copy non-contiguous (e.g. channels-last convolution)
            # weights to contiguous buffers and back on every step, which costs more
            # than the multi-tensor (foreach) implementation they would replace.
            fused = all(p.dtype in (torch.float32, torch.float64, torch.float16, torch.bfloat16)
                        and p.device.type in ("cpu", "cuda") and p.is_contiguous()
                        for p in params)
        if fused:
            try:
                return classes[kind](params, fused=True, **kwargs)
            except (RuntimeError, ValueError):
                if self.fused:  # explicitly asked for
                    raise
        return classes[kind](params, **kwargs)

    def _split(self, n):
        frac = float(self.validation_fraction or 0.0)
        if not 0.0 <= frac < 1.0:
            msg = f"validation_fraction: expected a value in [0, 1), got {frac}"
            raise ValueError(msg)
        order = np.random.default_rng(_mix(self.seed, 1)).permutation(n)
        n_val = round(frac * n)
        if frac > 0 and n_val == 0 and n > 1:
            n_val = 1
        return torch.as_tensor(np.sort(order[n_val:])), torch.as_tensor(np.sort(order[:n_val]))

    def _resolve_precision(self, device):
        """Set and return ``precision_``: the precision this run uses on ``device``."""
        precision = resolve_precision(self.precision, device)
        if precision == "bf16" and device.type == "cuda" and not torch.cuda.is_bf16_supported():
            warnings.warn("bf16 autocast requested but this GPU does not support bfloat16; "
                          "training in float32", AstroCLWarning, stacklevel=3)
            precision = "fp32"
        self.precision_ = precision
        return precision

    def _steps(self, n_train, batch_size):
        if self.drop_last and n_train >= batch_size:
            return n_train // batch_size
        steps = -(-n_train // batch_size)
        if getattr(self, "_drop_single", False) and steps > 1 \
                and n_train - (steps - 1) * batch_size == 1:
            steps -= 1  # batch norm cannot train on one galaxy
        return steps

    def _check_params(self):
        names = [k for k in self._parameter_constraints if hasattr(self, k)]
        validate_params(type(self), {k: getattr(self, k) for k in names}, where="Trainer")

    def _check_signal(self, source, train_idx):
        """Refuse a training set whose every input pixel (or every target pixel) is masked.

        Reads galaxies in small chunks until one unmasked input and one
        unmasked target pixel are seen (usually the first chunk).
        """
        inputs_ok = targets_ok = False
        chunk = 4  # small: a batch of raw IFU cubes is large
        for start in range(0, len(train_idx), chunk):
            batch = source.batch(train_idx[start:start + chunk])
            mask = getattr(batch, "mask", None)
            inputs_ok = inputs_ok or mask is None or bool((~mask.bool()).any())
            targets = getattr(batch, "targets", None)
            if targets is None:
                targets_ok = True
            elif not targets_ok:
                good = torch.isfinite(targets)
                tmask = getattr(batch, "target_mask", None)
                if tmask is not None:
                    good &= ~tmask.bool().expand_as(targets)
                targets_ok = bool(good.any())
            if inputs_ok and targets_ok:
                return
        what = "input" if not inputs_ok else "target"
        msg = (f"Trainer.fit: every {what} pixel of the {len(train_idx)} training galaxies is "
               f"masked (mask True = bad): there is nothing to learn from; check the survey's "
               f"{'masks' if what == 'input' else 'target maps and their masks'}")
        raise ValidationError(msg)

    def _write_history(self):
        if self.checkpoint_dir is None:
            return
        with atomic_write(Path(self.checkpoint_dir) / HISTORY_FILE, newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=_HISTORY_COLUMNS)
            writer.writeheader()
            for row in self.history:
                writer.writerow({k: ("" if row.get(k) is None else row[k])
                                 for k in _HISTORY_COLUMNS})

    def _state(self, optimizer, epoch, step, sums, best):
        raw = self._raw_module
        return {
            "model_state": {k: v.detach().clone() for k, v in raw.state_dict().items()},
            "optimizer_state": optimizer.state_dict(),
            "scheduler_state": {"schedule": dict(self.schedule or {}), "base_lr": float(self.lr),
                                "epoch": int(epoch)},
            "rng": {"torch": torch.get_rng_state(), "numpy": _numpy_state(),
                    "cuda": (torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [])},
            "epoch": int(epoch),
            "step": int(step),
            "running": {"loss_sum": float(sums[0]), "count": int(sums[1]),
                        "seconds": float(sums[2])},
            "history": [dict(r) for r in self.history],
            "best": {"loss": best["loss"], "epoch": best["epoch"], "bad_epochs": best["bad"],
                     "state": best["state"]},
            "seed": int(self.seed),
            "extra": dict(self.extra_state),
        }

    def _save(self, optimizer, epoch, step, sums, best):
        if self.checkpoint_path is None or not self._dist.is_main:
            return
        save_checkpoint(self.checkpoint_path, self._state(optimizer, epoch, step, sums, best),
                        self.header)
        self._write_history()

    def _callback(self, event, info):
        for cb in self.callbacks:
            cb(self, event, info)

    # -- main loop ----------------------------------------------------------
    def fit(self, source, *, resume=False):
        """Train on a batch source.

        Parameters
        ----------
        source : batch source
            ``len(source)``, ``source.ids``, ``source.batch(indices)``.
        resume : bool, optional
            Continue from ``checkpoint_dir/last.pt`` if it exists. Either way,
            temporary files that a writer killed mid-write left in
            ``checkpoint_dir`` are removed first
            (`~astro_cl.utils.io.remove_stale_temp_files`).

        Returns
        -------
        history : list of dict
            One row per epoch: epoch, lr, train_loss, val_loss, seconds
            (training steps), val_seconds (the validation pass), images_per_s.

        Raises
        ------
        astro_cl.exceptions.ValidationError
            Before training: if a parameter has the wrong type or range, the
            device does not exist on this machine, or every input (or
            target) pixel of the training set is masked.
        NonFiniteLossError
            If a loss is NaN or infinite (weights stay those of the last good
            step; the last checkpoint is not overwritten).
        KeyboardInterrupt
            On Ctrl-C, after writing a checkpoint from which ``resume=True``
            continues exactly.
        """
        from tqdm.auto import tqdm

        self._check_params()  # before anything is built: types, ranges, the device
        self._dist = init_distributed(self.device)
        dist_info = self._dist
        device = dist_info.device
        n = len(source)
        if n == 0:
            msg = "Trainer.fit: the batch source is empty"
            raise ValidationError(msg)
        if torch.device(device).type == "cpu":
            from astro_cl.utils.memory import retain_freed_memory

            retain_freed_memory()  # recycle large freed tensors (see its docstring)
        old_threads = torch.get_num_threads()
        local_world = int(os.environ.get("LOCAL_WORLD_SIZE", dist_info.world_size))
        torch.set_num_threads(int(self.num_threads or default_num_threads(local_world)))
        try:
            return self._fit(source, n, device, dist_info, resume, tqdm)
        finally:
            torch.set_num_threads(old_threads)

    def _fit(self, source, n, device, dist_info, resume, tqdm):
        module = self.module.to(device)
        if dist_info.distributed:
            module = convert_batchnorm(module).to(device)
            self.module = module
        self._raw_module = module
        self._drop_single = any(isinstance(m, torch.nn.modules.batchnorm._BatchNorm)
                                for m in module.modules())
        if self.checkpoint_dir is not None and dist_info.is_main:
            # left by a run killed while writing (kill -9, power loss)
            remove_stale_temp_files(self.checkpoint_dir, (LAST_CHECKPOINT, HISTORY_FILE))
        train_idx, val_idx = self._split(n)
        batch_size = len(train_idx) if self.batch_size is None else int(self.batch_size)
        if batch_size < 1:
            msg = f"batch_size: expected a positive integer or None, got {self.batch_size!r}"
            raise ValueError(msg)
        self._check_signal(source, train_idx)
        optimizer = self._make_optimizer(module.parameters())
        start_epoch, start_step, sums, best = self._start(module, optimizer, device, resume)
        forward = precision_forward(self._parallel(module, device, dist_info),
                                    self._resolve_precision(device), device)
        run = _Run(source=source, module=module, forward=forward, optimizer=optimizer,
                   train_idx=train_idx, val_idx=val_idx, batch_size=batch_size, device=device,
                   dist=dist_info, tqdm=tqdm, best=best)
        with self._sigint_handler():
            stopped_early = self._run_epochs(run, start_epoch, start_step, sums)
        if self.restore_best and best["state"] is not None:
            module.load_state_dict(best["state"])
        self.stopped_early_ = stopped_early
        return self.history

    def _start(self, module, optimizer, device, resume):
        """Return the epoch, step, running sums and best-so-far record to start from.

        From ``last.pt`` when resuming (weights, optimiser and random states
        restored), else fresh, with the global random states seeded.
        """
        self.history = []
        ckpt = None
        if resume and self.checkpoint_path is not None and self.checkpoint_path.exists():
            ckpt = load_checkpoint(self.checkpoint_path, model_name=self.header.get("model"),
                                   map_location=device)
        if ckpt is None:
            torch.manual_seed(_mix(self.seed, 2))
            np.random.seed(_mix(self.seed, 3) % (2**32))  # noqa: NPY002
            return 0, 0, (0.0, 0, 0.0), {"loss": float("inf"), "epoch": -1, "bad": 0,
                                         "state": None}
        module.load_state_dict(ckpt["model_state"])
        optimizer.load_state_dict(ckpt["optimizer_state"])
        torch.set_rng_state(ckpt["rng"]["torch"].cpu())
        _set_numpy_state(ckpt["rng"]["numpy"])
        if torch.cuda.is_available() and ckpt["rng"]["cuda"]:
            torch.cuda.set_rng_state_all([s.cpu() for s in ckpt["rng"]["cuda"]])
        self.history = [dict(r) for r in ckpt["history"]]
        b, r = ckpt["best"], ckpt["running"]
        best = {"loss": b["loss"], "epoch": b["epoch"], "bad": b["bad_epochs"], "state": b["state"]}
        return (int(ckpt["epoch"]), int(ckpt["step"]),
                (r["loss_sum"], r["count"], r["seconds"]), best)

    @staticmethod
    def _parallel(module, device, dist_info):
        """Return the module wrapped for data-parallel training under torchrun (else as is)."""
        if not dist_info.distributed:
            return module
        ddp_kwargs = {"device_ids": [device]} if device.type == "cuda" else {}
        # Buffers (batch-norm running statistics) are kept equal by
        # DistributedBatchNorm itself; no per-forward broadcast is needed.
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*broadcast_buffers",
                                    category=FutureWarning)
            return torch.nn.parallel.DistributedDataParallel(
                module, broadcast_buffers=False, **ddp_kwargs)

    @contextlib.contextmanager
    def _sigint_handler(self):
        """Turn a first Ctrl-C into `request_stop` (a checkpoint, then KeyboardInterrupt)."""
        previous, installed = None, False
        # Only in the main thread, and not where SIGINT is deliberately ignored
        # (nohup, background jobs): then the process stays uninterruptible.
        if (threading.current_thread() is threading.main_thread()
                and signal.getsignal(signal.SIGINT) is not signal.SIG_IGN):
            def _on_sigint(signum, frame):
                if self._stop_requested:  # second Ctrl-C: stop at once
                    raise KeyboardInterrupt
                self._stop_requested = True
            previous = signal.signal(signal.SIGINT, _on_sigint)
            installed = True
        self._stop_requested = False
        try:
            yield
        finally:
            if installed:
                signal.signal(signal.SIGINT, previous)

    def _run_epochs(self, run, start_epoch, start_step, sums):
        """Train until the last epoch or early stopping; return whether it stopped early."""
        last_epoch = int(self.epochs) if not self.max_batches else min(int(self.epochs), 1)
        for epoch in range(start_epoch, last_epoch):
            if run.best["bad"] >= (self.patience or math.inf):
                return True
            if self._epoch(run, epoch, start_step, sums):
                return True
            start_step, sums = 0, (0.0, 0, 0.0)
        return False

    def _epoch(self, run, epoch, start_step, sums):
        """Train one epoch (from ``start_step``), validate, checkpoint; return whether to stop."""
        lr = float(self.lr) * lr_factor(self.schedule, epoch)
        for group in run.optimizer.param_groups:
            group["lr"] = lr
        order = torch.randperm(len(run.train_idx), generator=torch.Generator().manual_seed(
            _mix(self.seed, 4, epoch)))
        n_steps = self._steps(len(run.train_idx), run.batch_size)
        if self.max_batches:
            n_steps = min(n_steps, int(self.max_batches))
        bar = run.tqdm(total=n_steps, initial=start_step, desc=f"epoch {epoch + 1}/{self.epochs}",
                       disable=not (self.progress and run.dist.is_main), leave=False,
                       unit="step", dynamic_ncols=True)
        try:
            loss_sum, count, seconds = self._train_steps(
                run, epoch, lr, run.train_idx[order], range(start_step, n_steps), sums, bar)
        finally:
            bar.close()
        train_loss = loss_sum / max(count, 1)
        started = time.perf_counter()
        val_loss = self._validate(run)
        val_seconds = time.perf_counter() - started if val_loss is not None else 0.0
        monitored = val_loss if val_loss is not None else train_loss
        best = run.best
        if monitored < best["loss"] - float(self.min_delta):
            best.update(loss=monitored, epoch=epoch, bad=0,
                        state={k: v.detach().clone() for k, v in run.module.state_dict().items()})
        else:
            best["bad"] += 1
        self.history.append({"epoch": epoch + 1, "lr": lr, "train_loss": train_loss,
                             "val_loss": val_loss, "seconds": seconds,
                             "val_seconds": val_seconds,
                             "images_per_s": count / seconds if seconds > 0 else float("nan")})
        self._save(run.optimizer, epoch + 1, 0, (0.0, 0, 0.0), best)
        self._callback("epoch_end", dict(self.history[-1]))
        return bool(self.patience) and best["bad"] >= int(self.patience)

    def _split_loss(self):
        """Return the loss's ``(prepare, compute)`` methods, or None if it has not both."""
        prepare = getattr(self.loss_fn, "prepare", None)
        compute = getattr(self.loss_fn, "compute", None)
        return (prepare, compute) if callable(prepare) and callable(compute) else None

    def _loader(self, run, epoch, shuffled):
        """Return ``load(step) -> (n_global, item, generator)``; runs in the prefetch thread.

        ``item`` is the prepared batch (generator None) when the loss has a
        ``prepare`` method, else the batch.
        """
        caller = threading.current_thread()
        split = self._split_loss()
        size, rank, world = run.batch_size, run.dist.rank, run.dist.world_size

        def load(step):
            if self.prefetch_threads and threading.current_thread() is not caller:
                # sets this thread's OpenMP/MKL count (and the process default,
                # which fit() restores); the training thread keeps its own
                torch.set_num_threads(int(self.prefetch_threads))
            global_idx = shuffled[step * size:(step + 1) * size]
            batch = run.source.batch(shard_indices(global_idx, rank, world)).to(run.device)
            gen = torch.Generator(device=run.device).manual_seed(
                _mix(self.seed, 5, epoch, step, rank))
            if split is not None:
                return len(global_idx), split[0](batch, gen), None
            return len(global_idx), batch, gen

        return load

    def _train_steps(self, run, epoch, lr, shuffled, steps, sums, bar):
        """Run the optimisation steps of an epoch; return the running (loss sum, count, s)."""
        load = self._loader(run, epoch, shuffled)
        pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="astro-cl-prefetch") \
            if self.prefetch and len(steps) > 1 else None
        pending = None
        loss_sum, count, seconds = sums
        run.module.train()
        t_log = 0.0
        try:
            for step in steps:
                t0 = time.perf_counter()
                n_global, item, gen = pending.result() if pending is not None else load(step)
                pending = pool.submit(load, step + 1) \
                    if pool is not None and step + 1 < steps.stop else None
                value = self._step(run, item, gen, n_global, epoch, step, lr)
                del item  # free the batch before the next one is taken
                t1 = time.perf_counter()
                dt = t1 - t0
                loss_sum += value * n_global
                count += n_global
                seconds += dt
                if not bar.disable and (t1 - t_log > 0.5 or step + 1 == steps.stop):
                    # throttled: formatting the bar text every step is wasted work
                    bar.set_postfix(loss=f"{value:.4g}", img_s=f"{n_global / dt:.1f}",
                                    refresh=False)
                    t_log = t1
                bar.update(1)
                if self.callbacks:
                    self._callback("step_end", {"epoch": epoch, "step": step, "loss": value})
                if self._stop_requested:
                    self._save(run.optimizer, epoch, step + 1, (loss_sum, count, seconds),
                               run.best)
                    raise KeyboardInterrupt
        finally:
            if pool is not None:
                pool.shutdown(wait=True, cancel_futures=True)
        return loss_sum, count, seconds

    def _step(self, run, item, gen, n_global, epoch, step, lr):
        """One optimisation step on a loaded batch; return its loss (float, mean over ranks)."""
        split = self._split_loss()
        run.optimizer.zero_grad(set_to_none=True)
        try:
            loss = split[1](run.forward, item) if split is not None \
                else self.loss_fn(run.forward, item, gen)
        except ValueError as exc:
            if "more than 1 value per channel" not in str(exc):
                raise
            msg = (f"epoch {epoch + 1}, step {step + 1}: a batch of {n_global} "
                   "galaxies is too small for the network's batch norm (one value per "
                   "channel); train on more galaxies, a larger batch_size or larger images")
            raise ValidationError(msg) from None
        loss_value = loss.detach().float().reshape(1)
        if run.dist.world_size > 1:
            loss_value = all_reduce_sum(loss_value) / run.dist.world_size
        # One host read per step: needed to stop *before* a non-finite
        # update (free on CPU; on a GPU it waits for the forward pass).
        value = float(loss_value.item())
        if not math.isfinite(value):
            where = (f"; the last good checkpoint is {self.checkpoint_path}"
                     if self.checkpoint_path is not None and self.checkpoint_path.exists()
                     else "")
            msg = (f"training loss became {value} at epoch {epoch + 1}, step {step + 1} "
                   f"(lr={lr:g}, precision {self.precision_}); stopping. Check the input data "
                   f"for NaN/inf, lower the learning rate, or train in fp32 (precision='fp32')"
                   f"{where}")
            raise NonFiniteLossError(msg)
        loss.backward()
        run.optimizer.step()
        return value

    def _validate(self, run):
        if len(run.val_idx) == 0:
            return None
        module, dist_info = run.module, run.dist
        module.eval()
        total = torch.zeros(2, dtype=torch.float64)
        # no gradients to keep, so larger batches fit in memory and cut the
        # per-batch overhead of the validation pass
        size = VALIDATION_BATCH_FACTOR * run.batch_size
        with torch.inference_mode():
            n_val_steps = -(-len(run.val_idx) // size)
            if self.max_batches:
                n_val_steps = min(n_val_steps, int(self.max_batches))
            for step in range(n_val_steps):
                global_idx = run.val_idx[step * size:(step + 1) * size]
                local_idx = shard_indices(global_idx, dist_info.rank, dist_info.world_size)
                batch = run.source.batch(local_idx).to(run.device)
                gen = torch.Generator(device=run.device).manual_seed(
                    _mix(self.seed, 6, step, dist_info.rank))
                loss = self.loss_fn(run.forward, batch, gen)
                value = float(loss.detach().float().item())
                total += torch.tensor([value * len(global_idx) / dist_info.world_size,
                                       len(global_idx) / dist_info.world_size],
                                      dtype=torch.float64)
        total = all_reduce_sum(total)
        module.train()
        return float(total[0] / total[1])
