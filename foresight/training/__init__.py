"""Training machinery around the core: the LightningModule (module.py), building and fitting a run
from its config (train.py), trainable weights (weights.py), resuming (resume.py), FSDP (fsdp.py),
the callbacks (sample videos, progress and step times), Lightning's loggers and the LoRA export."""
