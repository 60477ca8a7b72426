"""Offline tokenizers for tiny twins: a word-level vocabulary wrapped as a transformers fast tokenizer.

Real checkpoints ship their own tokenizers; twins cannot download one, so they get a small
word-level vocabulary (the words the sample world and tests use) that saves and loads through
`AutoTokenizer` exactly like a real one.
"""

from __future__ import annotations

from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors
from transformers import PreTrainedTokenizerFast

WORDS = """a an the and or of in on at to from with without into onto over under across along toward
away up down left right top bottom middle centre center corner edge diagonally slowly quickly fast
moves move moving slides slide bounces bounce falls fall rises rise turns turn stops stop stays still
red green blue yellow orange purple white black grey gray pink cyan magenta brown
circle square triangle ball box shape shapes object objects background frame frames scene camera
what happens next predict future video clip show shows describe is are it its then while one two
small large big little tiny bright dark plain textured gently you helpful assistant system user""".split()


def word_tokenizer(
    special: list[str], pad: str, eos: str, unk: str, append_eos: bool = False
) -> PreTrainedTokenizerFast:
    """A lower-casing, whitespace/punctuation-split word-level tokenizer with these special tokens.

    append_eos: end every sequence with eos, as T5's tokenizer does.
    """
    vocab = {tok: i for i, tok in enumerate(dict.fromkeys([pad, eos, unk, *special]))}
    for w in WORDS + list(".,!?;:'\"-"):
        vocab.setdefault(w, len(vocab))
    core = Tokenizer(models.WordLevel(vocab=vocab, unk_token=unk))
    core.normalizer = normalizers.Lowercase()
    core.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.WhitespaceSplit(), pre_tokenizers.Punctuation()]
    )
    if append_eos:
        core.post_processor = processors.TemplateProcessing(
            single=f"$A {eos}", special_tokens=[(eos, vocab[eos])]
        )
    tok = PreTrainedTokenizerFast(tokenizer_object=core, pad_token=pad, eos_token=eos, unk_token=unk)
    tok.add_special_tokens({"additional_special_tokens": [s for s in special if s not in (pad, eos, unk)]})
    return tok
