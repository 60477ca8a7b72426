"""Frozen model loaders (LTX-Video, Qwen2.5-VL, T5), tiny twins, and the trainable adapter."""

import diffusers
import transformers

# Loading a checkpoint is not progress a user needs bars for; errors still surface.
transformers.logging.disable_progress_bar()
diffusers.utils.logging.disable_progress_bar()
