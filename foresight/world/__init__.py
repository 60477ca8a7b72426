"""A small world where the answer is known: procedural clips whose future depends on the instruction,
and the pretrained LTX-Video parts (VAE, DiT) that `foresight world pretrain` makes for it.

scene.py     what happens: scenes, instructions, trajectories, captions, the splits
render.py    pixels: anti-aliased rasterisation of a batch of clips (torch, any device)
shards.py    rendered clips as webdataset shards the loader reads (`foresight world render`)
pretrain.py  the VAE, then the DiT, trained on clips rendered on demand (`foresight world pretrain`)
quality.py   the world's gates on its held-out split (`foresight world evaluate`), instruction gap
ship.py      the shipped files: fp16 export, SHA256SUMS (`foresight world checksums`)
"""
