"""Lightning's loggers as our configs use them (conf/logger/)."""

from __future__ import annotations

from lightning.pytorch.loggers import WandbLogger as LightningWandbLogger


class WandbLogger(LightningWandbLogger):
    """Lightning's WandbLogger without the `anonymous=None` it always passes to wandb.init, which
    wandb 0.31 answers with a deprecation warning on every run."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._wandb_init.pop("anonymous", None)
