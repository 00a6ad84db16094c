"""The training loop: attention pretraining, then self-supervised adversarial training (Eq. 11).

One data stream feeds both stages: iteration t (pretraining first, then adversarial) reads
batch t of the epoch-by-epoch sampler, so resuming at any iteration continues exactly.
"""

from __future__ import annotations

import time
import warnings
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.parallel import DistributedDataParallel
from tqdm import tqdm

from msca_fast.errors import WeightsUnavailable
from msca_fast.losses import VGGLoss
from msca_fast.models.config import ModelConfig
from msca_fast.models.discriminator import MultiscaleDiscriminator
from msca_fast.models.generator import Generator
from msca_fast.models.pretrain_head import AttentionPretrainHead
from msca_fast.models.vgg import PERCEPTUAL_LAYERS, VGG19
from msca_fast.training import checkpoint as ckpt
from msca_fast.training import frozen_vgg, loss_log
from msca_fast.training.config import TrainConfig
from msca_fast.training.data import batches_per_epoch, build_pairs, epoch_loader, fixed_batch
from msca_fast.training.disk_full import reporting_full_disk
from msca_fast.training.distributed import DistInfo, all_mean, any_process, average_gradients, broadcast_from_main
from msca_fast.training.divergence import BufferSnapshot, NonFiniteStreak, TrainingDiverged, describe, non_finite_names
from msca_fast.training.ema import make_ema, update_ema
from msca_fast.training.interrupt import StopAtBoundary, StopRequested
from msca_fast.training.losses_step import Batch, DiscriminatorObjective, Reconstructions, generator_losses
from msca_fast.visuals import class_palette, sample_grid, save_grid


def model_config_for(cfg: TrainConfig, num_classes: int) -> ModelConfig:
    """``cfg.model`` for a data set of ``num_classes`` classes."""
    return cfg.model.replace(num_classes=num_classes)


def build_generator(config: ModelConfig) -> tuple[Generator, ModelConfig]:
    """The generator; vgg_weights "auto" falls back to a random VGG (loudly) when no
    pretrained weights can be found. Returns the config with the weights actually used."""
    if config.vgg_weights != "auto":
        return Generator(config), config
    try:
        config = config.replace(vgg_weights="imagenet")
        return Generator(config), config
    except WeightsUnavailable as error:
        warnings.warn(
            "vgg_weights='auto': no pretrained VGG-19 available, so this run uses a RANDOM VGG for the "
            "feature pyramid and the perceptual loss; samples will be poor. " + str(error).split("\n", 1)[1],
            stacklevel=2,
        )
        config = config.replace(vgg_weights="random")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return Generator(config), config


def resumed_from(cfg: TrainConfig) -> str:
    """The checkpoint ``cfg.resume`` names, in words, for error messages."""
    if cfg.resume in (None, "latest"):
        return f"the newest checkpoint in {str(cfg.output_dir)!r}"
    return f"checkpoint {str(cfg.resume)!r}"


def perceptual_vgg_like(generator: Generator) -> VGG19:
    """A VGG19 tapping the perceptual-loss layers, with the generator's VGG weights."""
    vgg = VGG19(PERCEPTUAL_LAYERS, weights="none")
    source = generator.image_pyramid.vgg.features.state_dict()
    vgg.features.load_state_dict({k: v for k, v in source.items() if int(k.split(".")[0]) < len(vgg.features)})
    return vgg


class Trainer:
    """Owns the models, optimisers, AMP scaler and counters; :meth:`run` trains to cfg's end."""

    def __init__(
        self, cfg: TrainConfig, info: DistInfo, device: torch.device, images: Any, resume: dict | None = None
    ) -> None:
        self.cfg, self.info, self.device = cfg, info, device
        self.out_dir = Path(cfg.output_dir)
        num_classes = images.num_classes
        if resume is not None:
            model_config = ModelConfig.from_dict(resume["model_config"])
            if model_config.num_classes != num_classes:
                raise ValueError(
                    f"resume: the checkpoint's model has {model_config.num_classes} classes, the data set "
                    f"{num_classes}; resume with the data set it was trained on"
                )
            self.generator = Generator(model_config, vgg_weights="none")
            frozen_vgg.restore_vgg(self.generator, resume, resumed_from(cfg))
        else:
            self.generator, model_config = build_generator(model_config_for(cfg, num_classes))
        self.model_config = model_config
        self.vgg_entry = frozen_vgg.checkpoint_entry(model_config.vgg_weights, self.generator, resume)
        self.num_classes = num_classes
        self.discriminator = MultiscaleDiscriminator(model_config)
        self.head = AttentionPretrainHead(model_config, rgb=cfg.pretrain_rgb)
        self.vgg_loss = VGGLoss(perceptual_vgg_like(self.generator), weight=cfg.lambda_vgg)
        memory_format = torch.channels_last if cfg.channels_last else torch.contiguous_format
        for module in (self.generator, self.discriminator, self.head, self.vgg_loss):
            module.to(device, memory_format=memory_format)
        broadcast_from_main((self.generator, self.discriminator, self.head, self.vgg_loss), info)
        self.generator_ema = make_ema(self.generator)
        self.buffers = BufferSnapshot((self.generator, self.discriminator, self.head))
        self.non_finite = NonFiniteStreak(cfg.max_bad_steps)

        lr_g, lr_d = cfg.learning_rates
        betas = (cfg.beta1, cfg.beta2)
        trainable_g = [p for p in self.generator.parameters() if p.requires_grad]
        self.opt_g = torch.optim.Adam(trainable_g, lr=lr_g, betas=betas)
        self.opt_d = torch.optim.Adam(self.discriminator.parameters(), lr=lr_d, betas=betas)
        lr_pretrain = lr_g if cfg.lr_pretrain is None else cfg.lr_pretrain
        self.opt_pretrain = torch.optim.Adam(trainable_g + list(self.head.parameters()), lr=lr_pretrain, betas=betas)
        self.scaler = torch.amp.GradScaler(device.type, enabled=cfg.amp == "fp16")
        self.pretrain_step = 0
        self.step = 0

        self.images = images
        self.pairs = build_pairs(cfg, images)
        self.batches_per_epoch = batches_per_epoch(len(self.pairs), cfg.batch_size, info)
        self.samples = (
            fixed_batch(build_pairs(cfg, images, seed_offset=1), cfg.num_samples) if cfg.num_samples else None
        )
        palette = getattr(images, "palette", None)
        self.palette = (
            torch.as_tensor(palette, dtype=torch.uint8) if palette is not None else class_palette(num_classes)
        )
        self.reconstructions: nn.Module = Reconstructions(self.generator)
        self.d_objective: nn.Module = DiscriminatorObjective(self.discriminator)
        self._wrapped = False
        self.tensorboard = None
        if resume is not None:
            self.load_state_dict(resume)

    # --- state ------------------------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        return {
            "model_config": self.model_config.to_dict(),
            "train_config": self.cfg.to_dict(),
            "generator": frozen_vgg.without_vgg(self.generator.state_dict()),
            "generator_ema": frozen_vgg.without_vgg(self.generator_ema.state_dict()),
            **self.vgg_entry,
            "discriminator": self.discriminator.state_dict(),
            "pretrain_head": self.head.state_dict(),
            "optimizer_g": self.opt_g.state_dict(),
            "optimizer_d": self.opt_d.state_dict(),
            "optimizer_pretrain": self.opt_pretrain.state_dict(),
            "scaler": self.scaler.state_dict(),
            "step": self.step,
            "pretrain_step": self.pretrain_step,
            "non_finite": self.non_finite.state_dict(),
            "rng_cpu": torch.get_rng_state(),
            "rng_cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Everything but the frozen VGG, which the constructor restored from the checkpoint's record."""
        where = resumed_from(self.cfg)
        frozen_vgg.load_trained(self.generator, state["generator"], where)
        frozen_vgg.load_trained(self.generator_ema, state["generator_ema"], where)
        self.discriminator.load_state_dict(state["discriminator"])
        self.head.load_state_dict(state["pretrain_head"])
        self.opt_g.load_state_dict(state["optimizer_g"])
        self.opt_d.load_state_dict(state["optimizer_d"])
        self.opt_pretrain.load_state_dict(state["optimizer_pretrain"])
        self.scaler.load_state_dict(state["scaler"])
        self.step = int(state["step"])
        self.pretrain_step = int(state["pretrain_step"])
        if "non_finite" in state:  # absent from checkpoints of versions before the guard
            self.non_finite.load_state_dict(state["non_finite"])
        torch.set_rng_state(state["rng_cpu"])
        if torch.cuda.is_available() and state["rng_cuda"]:
            torch.cuda.set_rng_state_all(state["rng_cuda"])

    def save(self) -> Path | None:
        """A checkpoint at the current iteration (main process only)."""
        if not self.info.is_main:
            return None
        return ckpt.save_checkpoint(self.state_dict(), self.out_dir, self.iteration, self.cfg.keep_checkpoints)

    @property
    def iteration(self) -> int:
        return self.pretrain_step + self.step

    @property
    def total_iterations(self) -> int:
        if self.cfg.epochs is not None:
            return max(self.cfg.epochs * self.batches_per_epoch, self.cfg.pretrain_steps)
        return self.cfg.pretrain_steps + self.cfg.steps

    # --- one iteration ----------------------------------------------------------------------

    def _autocast(self):
        if self.cfg.amp == "none":
            return nullcontext()
        dtype = torch.bfloat16 if self.cfg.amp == "bf16" else torch.float16
        return torch.autocast(self.device.type, dtype=dtype)

    def to_batch(self, samples: dict) -> Batch:
        """Collated pair samples -> device tensors, labels one-hot (B,C,H,W)."""
        memory_format = torch.channels_last if self.cfg.channels_last else torch.contiguous_format

        def image(key: str) -> Tensor:
            return samples[key].to(self.device, non_blocking=True).contiguous(memory_format=memory_format)

        def labels(key: str) -> Tensor:
            ids = samples[key].to(self.device, non_blocking=True)
            one_hot = F.one_hot(ids, self.num_classes).permute(0, 3, 1, 2).float()
            return one_hot.contiguous(memory_format=memory_format)

        return Batch(
            labels("target_label"), image("target_image"), labels("exemplar_label"), image("exemplar_image"),
            labels("global_label"), image("global_image"),
        )  # fmt: skip

    def pretrain_iteration(self, batch: Batch) -> dict[str, float]:
        """Section 4: the aligned features must predict the target's VGG features, both tasks.
        Non-finite losses skip the update (see :mod:`msca_fast.training.divergence`)."""
        lam = self.cfg.lambda_global
        self.buffers.take()
        with self._autocast():
            losses = {}
            for task, (c1, x1, x2, c2) in {
                "patch": (batch.c_p, batch.x_p, batch.x_q, batch.c_q),
                "global": (batch.c, batch.x, batch.x, batch.c),
            }.items():
                predictions = self.head(self.generator.align(c1, x2, c2))
                with torch.no_grad():
                    targets = self.head.targets(self.generator.image_pyramid.vgg_features(x1), x1)
                losses[f"pretrain_{task}"] = self.head.loss(
                    [p.float() for p in predictions], [t.float() for t in targets]
                )
            total = losses["pretrain_patch"] + lam * losses["pretrain_global"]
        self.opt_pretrain.zero_grad(set_to_none=True)
        self.scaler.scale(total).backward()
        average_gradients(self.opt_pretrain.param_groups[0]["params"], self.info)
        values = self._read(losses)
        if non_finite_names(values):
            self._skip_update(self.opt_pretrain)
        else:
            self.scaler.step(self.opt_pretrain)
            self.scaler.update()
            # The average starts where pretraining ends, so a pretraining checkpoint samples and
            # evaluates the pretrained weights (not the initialisation).
            update_ema(self.generator_ema, self.generator, 0.0)
        self.pretrain_step += 1
        return values

    def _read(self, losses: dict[str, Tensor]) -> dict[str, float]:
        """The losses' means over processes as floats: the iteration's one host read. Every
        process gets the same values, so all of them skip the same updates."""
        stacked = torch.stack([v.detach().float().reshape(()) for v in losses.values()])
        return dict(zip(losses, all_mean(stacked, self.info).tolist()))

    def _skip_update(self, *optimizers: torch.optim.Optimizer) -> None:
        """Leave the iteration's update out: gradients dropped, buffers as before its forward passes."""
        for optimizer in optimizers:
            optimizer.zero_grad(set_to_none=True)
        self.buffers.restore()

    def _wrap_for_distributed(self) -> None:
        if self._wrapped:
            return
        self._wrapped = True
        if self.info.distributed:
            ids = [self.device.index] if self.device.type == "cuda" else None
            self.reconstructions = DistributedDataParallel(self.reconstructions, device_ids=ids)
            self.d_objective = DistributedDataParallel(self.d_objective, device_ids=ids)
        if self.cfg.compile:
            self.reconstructions = torch.compile(self.reconstructions)
            self.d_objective = torch.compile(self.d_objective)

    def adversarial_iteration(self, batch: Batch) -> dict[str, float]:
        """One D update, and a G update every cfg.g_every-th iteration (Eq. 11, lambda = lambda_global)."""
        self._wrap_for_distributed()
        cfg, lam = self.cfg, self.cfg.lambda_global
        update_g = self.step % cfg.g_every == 0
        logs: dict[str, Tensor] = {}
        self.buffers.take()
        if update_g:
            self.discriminator.requires_grad_(False)
            with self._autocast():
                fake_p, fake = self.reconstructions(batch.c_p, batch.x_q, batch.c_q, batch.c, batch.x)
                terms = generator_losses(
                    self.discriminator, self.vgg_loss, batch, fake_p, fake, cfg.lambda_feat, cfg.lambda_l1, cfg.l1_pool
                )
                g_loss = sum(v if k.endswith("patch") else lam * v for k, v in terms.items())
            self.opt_g.zero_grad(set_to_none=True)
            self.scaler.scale(g_loss).backward()
            self.discriminator.requires_grad_(True)
            logs.update(terms)
            logs["g_total"] = g_loss
        else:
            with torch.no_grad(), self._autocast():
                fake_p, fake = self.reconstructions(batch.c_p, batch.x_q, batch.c_q, batch.c, batch.x)
        with self._autocast():
            d_patch, d_global = self.d_objective(*batch, fake_p.detach(), fake.detach())
            d_loss = d_patch + lam * d_global
        self.opt_d.zero_grad(set_to_none=True)
        self.scaler.scale(d_loss).backward()
        logs.update(d_patch=d_patch, d_global=d_global)
        # The G step waits for the D backward (which reads no generator weight) so that one read
        # of every loss decides both updates.
        values = self._read(logs)
        if non_finite_names(values):
            self._skip_update(self.opt_g, self.opt_d)
        else:
            if update_g:
                self.scaler.step(self.opt_g)
            self.scaler.step(self.opt_d)
            self.scaler.update()
            if update_g:
                # TensorFlow's warm-up: early on the average follows the model closely, so short
                # runs do not sample from weights that are mostly the initialisation.
                updates = self.step // cfg.g_every
                update_ema(self.generator_ema, self.generator, min(cfg.ema_decay, (1 + updates) / (10 + updates)))
        self.step += 1
        return values

    # --- outputs ----------------------------------------------------------------------------

    @torch.no_grad()
    def write_samples(self) -> Path | None:
        """samples/iter_<t>.png and samples/latest.png: target label | exemplar | EMA output | truth."""
        if not self.info.is_main or self.cfg.num_samples == 0:
            return None
        batch = self.to_batch(self.samples)
        with self._autocast():
            outputs = self.generator_ema(batch.c_p, batch.x_q, batch.c_q).float()
        grid = sample_grid(batch.c_p, batch.x_q, outputs, batch.x_p, self.palette)
        folder = self.out_dir / "samples"
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"iter_{self.iteration:08d}.png"
        for destination in (path, folder / "latest.png"):
            with reporting_full_disk("samples", destination, grid.numel()):  # uncompressed: at most that
                save_grid(grid, destination)
        if self.tensorboard is not None:
            self.tensorboard.add_image("samples", grid, self.iteration)
        return path

    def log(self, phase: str, values: dict[str, float], images_per_second: float, skipped: bool = False) -> None:
        """A row of the loss log (and TensorBoard); ``skipped``: the iteration's update was left out."""
        if not self.info.is_main:
            return
        record = {"iteration": self.iteration, "phase": phase, **values, "images_per_s": images_per_second}
        if skipped:
            record["skipped"] = True
        loss_log.append_row(self.out_dir / LOSS_LOG, record)
        if self.tensorboard is not None:
            for key, value in values.items():
                self.tensorboard.add_scalar(f"{phase}/{key}", value, self.iteration)
            self.tensorboard.add_scalar("images_per_s", images_per_second, self.iteration)

    # --- the loop ---------------------------------------------------------------------------

    def run(self) -> None:
        """Train until the last iteration, checkpointing on the way and at the end.

        Ctrl-C (or SIGTERM, SIGUSR1) stops at the next iteration boundary, saves a checkpoint there
        and raises StopRequested (a KeyboardInterrupt); a second one raises at once and saves
        nothing (a checkpoint taken mid-iteration would not resume exactly)."""
        self.out_dir.mkdir(parents=True, exist_ok=True)
        if self.info.is_main:
            dropped = loss_log.truncate_after(self.out_dir / LOSS_LOG, self.iteration)
            if dropped:
                print(f"{LOSS_LOG}: dropped {dropped} rows after iteration {self.iteration}, where this run starts")
        self.tensorboard = open_tensorboard(self.out_dir, self.iteration) if self.info.is_main else None
        self.generator.train()
        self.discriminator.train()
        bar = tqdm(
            total=self.total_iterations, initial=self.iteration, disable=not self.info.is_main,
            desc="training", dynamic_ncols=True,
        )  # fmt: skip
        try:
            with StopAtBoundary() as stop:
                try:
                    stopped = self._iterate(bar, stop)
                except KeyboardInterrupt:
                    bar.close()
                    self._report_unsaved_interrupt()
                    raise
                finally:
                    bar.close()
                if stopped:
                    path = self.save()
                    if path is not None:
                        print(f"stopped: saved {path}; continue with --resume latest --output-dir {self.out_dir}")
                    raise StopRequested(stop.signum)
                self.write_samples()
                self.save()
        finally:
            if self.tensorboard is not None:
                self.tensorboard.close()

    def _iterate(self, bar: tqdm, stop: StopAtBoundary) -> bool:
        """Iterations until the last one; True when a stop was requested before it (the state
        is then at the boundary after the iteration that was running)."""
        cfg = self.cfg
        images_per_iteration = cfg.batch_size * self.info.world_size * 2  # two reconstructions each
        while self.iteration < self.total_iterations:
            epoch, start = divmod(self.iteration, self.batches_per_epoch)
            loader = epoch_loader(self.pairs, cfg, self.info, epoch, start)
            # Starting a DataLoader draws a worker base seed from the global RNG; a resumed run
            # starts one more loader than a straight run, so the draw must not move the RNG.
            with torch.random.fork_rng(devices=[]):
                batches = iter(loader)
            for samples in batches:
                started = time.perf_counter()
                batch = self.to_batch(samples)
                pretraining = self.pretrain_step < cfg.pretrain_steps
                values = self.pretrain_iteration(batch) if pretraining else self.adversarial_iteration(batch)
                rate = images_per_iteration / (time.perf_counter() - started)
                bar.update(1)
                shown = {k: f"{v:.3g}" for k, v in values.items() if k in SHOWN} | {"img/s": f"{rate:.1f}"}
                bar.set_postfix(shown | ({"skipped": self.non_finite.total} if self.non_finite.total else {}))
                finite = not non_finite_names(values)
                if not finite or self.iteration % cfg.log_every == 0:
                    self.log("pretrain" if pretraining else "train", values, rate, skipped=not finite)
                if self.non_finite.record(finite):
                    raise TrainingDiverged(self._divergence_message(values))
                if not finite and self.info.is_main:
                    bar.write(
                        f"iteration {self.iteration}: non-finite loss ({describe(values)}), update skipped "
                        f"({self.non_finite.consecutive} in a row; the run stops at {cfg.max_bad_steps})"
                    )
                if self.iteration % cfg.sample_every == 0:
                    self.write_samples()
                if self.iteration % cfg.checkpoint_every == 0:
                    self.save()
                if self.iteration >= self.total_iterations:
                    return False
                # Every process asks, so all stop after the same iteration.
                if any_process(stop.requested, self.info, self.device):
                    return True
        return False

    def _divergence_message(self, values: dict[str, float]) -> str:
        newest = ckpt.latest_checkpoint(self.out_dir)
        resume = (
            f"resume from the newest checkpoint, {newest}, with a lower learning rate (--lr-g, --lr-d, --lr-pretrain)"
            if newest is not None
            else "there is no checkpoint yet; start again with a lower learning rate (--lr-g, --lr-d, --lr-pretrain)"
        )
        return (
            f"training diverged: {self.non_finite.consecutive} iterations in a row had non-finite losses, the last "
            f"iteration {self.iteration} ({describe(values)}); stopped without saving; {resume}"
        )

    def _report_unsaved_interrupt(self) -> None:
        if not self.info.is_main:
            return
        newest = ckpt.latest_checkpoint(self.out_dir)
        where = f"the newest checkpoint is {newest}" if newest is not None else "there is no checkpoint yet"
        print(f"\ninterrupted inside iteration {self.iteration + 1}: nothing saved; {where}")


SHOWN = ("pretrain_patch", "g_total", "d_patch", "vgg_patch")
LOSS_LOG = "losses.jsonl"


def open_tensorboard(out_dir: Path, iteration: int):
    """A SummaryWriter under out_dir/tensorboard when tensorboard is installed, else None; it
    hides events logged after ``iteration`` (the checkpoint a resumed run starts from)."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        return None
    return SummaryWriter(str(out_dir / "tensorboard"), purge_step=iteration + 1)
