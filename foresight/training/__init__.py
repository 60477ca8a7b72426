"""Training machinery around the core: the LightningModule (module.py), building and fitting a run
from its config (train.py), checkpoints and training state (checkpoint.py), the callbacks (sample
videos, progress and step times), Lightning's loggers and the LoRA export."""
