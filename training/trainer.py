"""The training loop: one process, one GPU with mixed precision, or many under torchrun (DDP).

Rank 0 alone writes: progress bar, per-epoch sample grid, losses.csv, loss plot, checkpoint.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch.nn.parallel import DistributedDataParallel
from torch.optim.swa_utils import AveragedModel
from torch.utils.data.distributed import DistributedSampler
from tqdm import tqdm

from training import checkpoint, data, losses
from training.config import TrainConfig
from training.grids import save_grid
from training.loss_log import append_losses
from training.networks import NetworkSpec, build, count_parameters
from training.train_setup import ema_with_warmup, pick_device


class Trainer:
    def __init__(self, cfg: TrainConfig, command: str = "") -> None:
        self.cfg = cfg
        self.command = command or " ".join(["python -m training", *sys.argv[1:]])
        self.world = int(os.environ.get("WORLD_SIZE", "1"))
        self.rank = int(os.environ.get("RANK", "0"))
        local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        self.device = pick_device(cfg.device, local_rank)
        if self.world > 1 and not dist.is_initialized():
            backend = "nccl" if self.device.type == "cuda" else "gloo"
            dist.init_process_group(backend)
        if self.device.type == "cuda":
            torch.cuda.set_device(self.device)
        if cfg.threads:
            torch.set_num_threads(cfg.threads)
        self.is_main = self.rank == 0
        self.out = Path(cfg.out)
        self.amp = cfg.amp and self.device.type == "cuda"

        resume = checkpoint.load(cfg.resume) if cfg.resume else None
        torch.manual_seed(cfg.seed + self.rank)
        np.random.seed(cfg.seed + self.rank)

        self.dataset = data.load(
            cfg.dataset, "train", cfg.data_root, cfg.download, cfg.image_size
        ).subset(cfg.limit)
        if cfg.image_size and cfg.image_size != self.dataset.image_size:
            raise ValueError(
                f"{cfg.dataset} has {self.dataset.image_size}px images, not {cfg.image_size}px"
            )
        num_classes = len(self.dataset.class_names) if cfg.arch == "cgan" else 0
        self.spec = NetworkSpec(
            arch=cfg.arch,
            channels=self.dataset.channels,
            image_size=self.dataset.image_size,
            latent_dim=cfg.latent_dim,
            num_classes=num_classes,
            width=cfg.width,
            spectral_norm=cfg.spectral_norm,
            batch_norm_d=cfg.loss != "wgan-gp",  # the gradient penalty is per-sample
        )
        if resume and resume["spec"] != asdict(self.spec):
            raise checkpoint.CheckpointError(
                f"{cfg.resume} was trained with {resume['spec']}, not {asdict(self.spec)}"
            )
        generator, discriminator = build(self.spec)
        self.G_raw, self.D_raw = generator.to(self.device), discriminator.to(self.device)
        self.ema = (
            AveragedModel(self.G_raw, multi_avg_fn=ema_with_warmup(cfg.ema_decay), use_buffers=True)
            if cfg.ema_decay > 0
            else None
        )
        self.G, self.D = self.G_raw, self.D_raw
        if self.world > 1:
            ids = [self.device.index] if self.device.type == "cuda" else None
            self.G = DistributedDataParallel(self.G_raw, device_ids=ids)
            self.D = DistributedDataParallel(self.D_raw, device_ids=ids)
        betas = (cfg.beta1, cfg.beta2)
        self.opt_g = torch.optim.Adam(self.G_raw.parameters(), lr=cfg.lr, betas=betas)
        self.opt_d = torch.optim.Adam(self.D_raw.parameters(), lr=cfg.lr_d or cfg.lr, betas=betas)
        self.loss = losses.get(cfg.loss)

        self.images = torch.from_numpy(self.dataset.images).to(self.device)
        self.labels = torch.from_numpy(self.dataset.labels).to(self.device)
        self.sampler = DistributedSampler(
            range(len(self.dataset)),
            num_replicas=self.world,
            rank=self.rank,
            shuffle=True,
            seed=cfg.seed,
            drop_last=True,
        )
        self.epoch, self.step, self.wall_time = 0, 0, 0.0
        if resume:
            self._restore(resume)
        # Fixed noise (and, for the cGAN, one class per grid column) for comparable grids.
        fixed = torch.Generator().manual_seed(cfg.seed + 4242)
        n_grid = cfg.grid_size
        self.grid_columns = None
        if self.spec.conditional:
            self.grid_columns = self.spec.num_classes
            n_grid = self.spec.num_classes * max(1, cfg.grid_size // self.spec.num_classes)
        self.fixed_z = torch.randn(n_grid, cfg.latent_dim, generator=fixed).to(self.device)
        self.fixed_y = (
            self.one_hot(torch.arange(n_grid, device=self.device) % self.spec.num_classes)
            if self.spec.conditional
            else None
        )

    # -- helpers -------------------------------------------------------------------------
    def one_hot(self, labels: torch.Tensor) -> torch.Tensor:
        return F.one_hot(labels, self.spec.num_classes).float()

    def autocast(self) -> contextlib.AbstractContextManager:
        return torch.autocast("cuda", dtype=torch.bfloat16, enabled=self.amp)

    def no_sync(self, module: torch.nn.Module) -> contextlib.AbstractContextManager:
        return (
            module.no_sync()
            if isinstance(module, DistributedDataParallel)
            else contextlib.nullcontext()
        )

    @property
    def export_generator(self) -> torch.nn.Module:
        return self.ema.module if self.ema is not None else self.G_raw

    # -- one step ------------------------------------------------------------------------
    def train_step(self, real_all: torch.Tensor, labels_all: torch.Tensor) -> dict[str, float]:
        """One generator step after `n_critic` discriminator steps, each on its own slice of
        the batch (as in the WGAN-GP reference): an epoch sees every image once in D."""
        cfg = self.cfg
        for real, labels in zip(
            real_all.chunk(cfg.n_critic), labels_all.chunk(cfg.n_critic), strict=True
        ):
            n = real.size(0)
            y = self.one_hot(labels) if self.spec.conditional else None
            z = torch.randn(n, cfg.latent_dim, device=self.device)
            with self.autocast():
                with torch.no_grad():
                    fake = self.G(z, y)
                # Separate calls, as in the DCGAN reference: with batch norm in D, a mixed
                # batch would give D statistics it never sees in the generator's step.
                d_real = self.D(real, y).float()
                d_fake = self.D(fake, y).float()
                d_loss = self.loss.discriminator(d_real, d_fake)
                if cfg.loss == "wgan-gp":
                    gp = losses.gradient_penalty(self.D_raw, real, fake.float(), y)
                    d_loss = d_loss + cfg.gp_weight * gp
            self.opt_d.zero_grad(set_to_none=True)
            d_loss.backward()
            self.opt_d.step()

        z = torch.randn(n, cfg.latent_dim, device=self.device)
        with self.autocast():
            fake = self.G(z, y)
            with self.no_sync(self.D):  # D's gradients from this pass are discarded
                g_loss = self.loss.generator(self.D(fake, y).float())
        self.opt_g.zero_grad(set_to_none=True)
        g_loss.backward()
        self.opt_g.step()
        if self.ema is not None:
            self.ema.update_parameters(self.G_raw)
        self.step += 1
        return {
            "d_loss": d_loss.item(),
            "g_loss": g_loss.item(),
            "d_real": d_real.mean().item(),
            "d_fake": d_fake.mean().item(),
        }

    # -- epochs --------------------------------------------------------------------------
    def run(self) -> Path:
        cfg = self.cfg
        if self.is_main:
            (self.out / "samples").mkdir(parents=True, exist_ok=True)
            (self.out / "config.json").write_text(json.dumps(cfg.to_dict(), indent=2) + "\n")
            print(
                f"training {self.spec.arch} ({cfg.loss}) on {self.dataset.name}: "
                f"{len(self.dataset)} images {self.dataset.channels}x{self.dataset.image_size}"
                f"x{self.dataset.image_size}, G {count_parameters(self.G_raw):,} params, "
                f"D {count_parameters(self.D_raw):,} params, device {self.device}, "
                f"world {self.world}",
                flush=True,
            )
        per_rank_batch = max(1, cfg.batch_size // self.world)
        per_step = per_rank_batch * cfg.n_critic  # images one generator step consumes
        steps_per_epoch = len(self.sampler) // per_step
        if steps_per_epoch == 0:
            raise ValueError(
                f"{len(self.dataset)} images are fewer than one step's {per_step * self.world}"
            )
        while self.epoch < cfg.epochs:
            self.sampler.set_epoch(self.epoch)
            order = torch.tensor(list(self.sampler), device=self.device)
            self.G.train()
            self.D.train()
            bar = tqdm(
                range(steps_per_epoch),
                desc=f"epoch {self.epoch + 1}/{cfg.epochs}",
                disable=not self.is_main,
                dynamic_ncols=True,
                mininterval=1.0,
            )
            rows: list[dict] = []
            started = time.perf_counter()
            for i in bar:
                index = order[i * per_step : (i + 1) * per_step]
                real = self.images[index].float().div_(127.5).sub_(1.0)
                stats = self.train_step(real, self.labels[index])
                speed = (i + 1) * per_step * self.world / (time.perf_counter() - started)
                if i % cfg.log_every == 0 or i == steps_per_epoch - 1:
                    rows.append(
                        {"epoch": self.epoch + 1, "step": self.step, **stats, "images_per_s": speed}
                    )
                    bar.set_postfix(
                        d=f"{stats['d_loss']:.3f}",
                        g=f"{stats['g_loss']:.3f}",
                        real=f"{stats['d_real']:+.2f}",
                        fake=f"{stats['d_fake']:+.2f}",
                        img_s=f"{speed:.0f}",
                    )
            self.wall_time += time.perf_counter() - started
            self.epoch += 1
            if self.is_main:
                self._end_of_epoch(rows)
        if self.world > 1:
            dist.barrier()
        return self.out / "checkpoint.pt"

    def sample_grid(self, path: Path) -> None:
        generator = self.export_generator
        was_training = generator.training
        generator.eval()
        with torch.no_grad():
            images = generator(self.fixed_z, self.fixed_y).float().cpu().numpy()
        generator.train(was_training)
        save_grid(images, str(path), columns=self.grid_columns)

    def _end_of_epoch(self, rows: list[dict]) -> None:
        csv_path = self.out / "losses.csv"
        append_losses(csv_path, rows)
        self.sample_grid(self.out / "samples" / f"epoch_{self.epoch:04d}.png")
        from training.plots import plot_losses  # matplotlib is slow to import; only rank 0

        plot_losses(csv_path, self.out / "losses.png")
        checkpoint.save(self.out / "checkpoint.pt", self._state())
        last = rows[-1]
        print(
            f"epoch {self.epoch}: d_loss {last['d_loss']:.3f} g_loss {last['g_loss']:.3f} "
            f"D(real) {last['d_real']:+.2f} D(fake) {last['d_fake']:+.2f} "
            f"-> {self.out / 'checkpoint.pt'}",
            flush=True,
        )

    def _state(self) -> dict:
        return {
            "spec": asdict(self.spec),
            "config": self.cfg.to_dict(),
            "command": self.command,
            "class_names": self.dataset.class_names if self.spec.conditional else [],
            "dataset": self.dataset.name,
            "generator": self.G_raw.state_dict(),
            "discriminator": self.D_raw.state_dict(),
            "ema": self.ema.state_dict() if self.ema is not None else None,
            "opt_g": self.opt_g.state_dict(),
            "opt_d": self.opt_d.state_dict(),
            "epoch": self.epoch,
            "step": self.step,
            "wall_time_s": self.wall_time,
            "device": str(self.device) + (f" x{self.world}" if self.world > 1 else ""),
            "rng": checkpoint.rng_state(),
        }

    def _restore(self, state: dict) -> None:
        self.G_raw.load_state_dict(state["generator"])
        self.D_raw.load_state_dict(state["discriminator"])
        if self.ema is not None and state.get("ema") is not None:
            self.ema.load_state_dict(state["ema"])
        self.opt_g.load_state_dict(state["opt_g"])
        self.opt_d.load_state_dict(state["opt_d"])
        self.epoch, self.step = state["epoch"], state["step"]
        self.wall_time = state.get("wall_time_s", 0.0)
        if (
            self.world == 1
        ):  # per-rank RNG streams differ; only a single process resumes bit-exactly
            checkpoint.restore_rng(state["rng"])
        if self.is_main:
            print(f"resumed from {self.cfg.resume} at epoch {self.epoch}, step {self.step}")
