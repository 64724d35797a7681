"""The training CLI: flags made from TrainConfig, defaults < --config file < flags."""

import dataclasses
import json

import pytest

from training.cli import config_from_args, parser
from training.config import LOSS_DEFAULTS, TrainConfig


def test_every_config_field_has_a_flag_with_its_help_and_default(capsys) -> None:
    with pytest.raises(SystemExit):
        parser().parse_args(["--help"])
    text = " ".join(capsys.readouterr().out.split())  # argparse wraps lines
    for f in dataclasses.fields(TrainConfig):
        assert f"--{f.name.replace('_', '-')}" in text, f.name
        assert " ".join(f.metadata["help"].split()) in text, f.name
    assert "--grid-size GRID_SIZE samples in each epoch's grid" in text
    assert "(default: 64)" in text and "(default: runs/default)" in text
    assert "--lr LR Adam learning rate of the generator (default: depends on --loss: " in text
    assert "--no-amp" in text and "--spectral-norm, --no-spectral-norm" in text


def test_flags_are_typed_and_checked() -> None:
    flags = ["--grid-size", "16", "--limit", "640", "--image-size", "32", "--lr-d", "3e-4",
             "--no-amp", "--spectral-norm", "--download"]  # fmt: skip
    cfg = config_from_args(flags)
    assert (cfg.grid_size, cfg.limit, cfg.image_size, cfg.lr_d) == (16, 640, 32, 3e-4)
    assert (cfg.amp, cfg.spectral_norm, cfg.download) == (False, True, True)
    for bad in (["--arch", "vae"], ["--image-size", "30"], ["--epochs", "two"]):
        with pytest.raises(SystemExit):
            config_from_args(bad)


def test_defaults_then_file_then_flags(tmp_path) -> None:
    assert config_from_args([]) == TrainConfig()
    path = tmp_path / "run.json"
    path.write_text(json.dumps({"epochs": 9, "amp": False, "loss": "wgan-gp", "lr": 5e-5}))
    cfg = config_from_args(["--config", str(path), "--lr", "3e-5"])
    assert cfg.epochs == 9 and cfg.amp is False  # unset flags leave the file's values
    assert cfg.lr == 3e-5  # a flag beats the file
    assert cfg.n_critic == LOSS_DEFAULTS["wgan-gp"]["n_critic"]  # the file's loss sets defaults
    toml = tmp_path / "run.toml"
    toml.write_text('arch = "cgan"\ngrid_size = 20\n')
    assert config_from_args(["--config", str(toml), "--grid-size", "30"]).grid_size == 30
    path.write_text(json.dumps({"epoch": 3}))
    with pytest.raises(ValueError, match="unknown config keys"):
        config_from_args(["--config", str(path)])
