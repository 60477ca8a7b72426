"""What happens in the world: scenes of coloured shapes, an instruction, and the motion it causes.

A clip is FRAMES = 20 frames of SIZE x SIZE pixels: the 4 context frames 0..3 and the 17-frame
future window 3..19 that starts at the current frame (frame 3), exactly the window the loader cuts
with context_frames=4, future_frames=17. Until the current frame every shape moves (or rests) as the
scene says; from the next frame on, the instructed shape moves in the named direction at SPEED
pixels per frame, or stops, and every other shape keeps its motion. Shapes bounce off the borders.

Why the context does not determine the future: the scene (shapes, where they are, how they move) is
drawn from one random stream and the instruction from another, and frames 0..3 depend on the scene
alone. So one context goes with every instruction, and any two instructions give different futures:
the instructed shape leaves the current frame with a different velocity (eight distinct directions
at one speed, or rest), it is drawn last, so nothing hides it, and every shape is at least MARGIN
pixels inside the borders at the current frame, so a bounce cannot fold two paths onto each other
(at the border, "up" and "down" would end a fraction of a pixel apart; over 1,200 scenes of the three
splits the closest two instructions still move the shape 6 px apart).

Longer clips, for rollouts (`frames=rollout_frames(K)` = 4 + 16 K frames score K windows in turn,
each starting at the previous one's last frame): the first FRAMES frames are the short clip's, bit
for bit, and every shape keeps its last motion for ever (the instructed one at SPEED or at rest),
bouncing off the borders. Measured over 400 scenes of each split at 52 frames (the test checks
100): any two instructions still move the instructed shape at least 8 px apart somewhere in each
later window (frames 19..35, 35..51), but bounces make paths cross, so at a window's last frame
(the first window's too) two instructions may leave the shape at one place: within 1 px for 0.3%
of the pairs at frame 19, 1.2-1.3% at frame 35, 2.5-2.8% at frame 51. MARGIN holds only at frame
3: a later window may start with a shape touching a border. A later window's future is what its
own context frames show (positions, velocities, then bounces): only the first window needs the
instruction; the later ones test continuing from frames (in a rollout, predicted frames).

Splits: `train`, `val` and `heldout` draw from separate random streams. Every (colour, shape) pair
has one held-out direction (HELDOUT_DIRECTIONS): train and val never instruct that pair to move
that way, `heldout` always does, so it tests compositions never seen in training.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from foresight.data.sample_world import COLOURS, DIRECTIONS, SHAPES

SIZE = 64  # pixels, square: 2 x 2 latent tokens per frame at LTX's 32x spatial compression
FRAMES = 20  # 4 context frames + 17 future frames, overlapping at the current frame
CONTEXT = 4
CURRENT = CONTEXT - 1  # index of the current frame; the instruction acts from the next frame on
FUTURE = FRAMES - CURRENT  # 17 frames from the current one: the target window (8k+1 for the VAE)
ROLLOUT_CHUNKS = 3  # prediction windows of the long held-out clips
FPS = 24.0
SPEED = 1.5  # pixels per frame of an instructed motion (24 pixels over the future)
STOP = "stops"
ACTIONS = (*DIRECTIONS, STOP)
SPLITS = ("train", "val", "heldout")
RADIUS = (6.0, 9.0)  # half-size of a shape in pixels
MARGIN = 4.0  # pixels between a shape and the borders at the current frame, at least
MOVING = 0.35  # probability that a shape moves before the instruction
SPEEDS = (0.4, 0.9)  # pixels per frame of a shape that moves on its own


def heldout_direction(colour: str, shape: str) -> str:
    """The one direction in which this (colour, shape) pair is never instructed to move in training."""
    pair = list(COLOURS).index(colour) * len(SHAPES) + SHAPES.index(shape)
    return list(DIRECTIONS)[(3 * pair) % len(DIRECTIONS)]  # each direction held out for 2-3 of the 18 pairs


HELDOUT_DIRECTIONS = {(c, s): heldout_direction(c, s) for c in COLOURS for s in SHAPES}


@dataclass(frozen=True)
class Shape:
    colour: str
    kind: str  # one of SHAPES
    radius: float
    position: tuple[float, float]  # (x, y) at the current frame, pixels, y down
    velocity: tuple[float, float]  # pixels per frame before the instruction


@dataclass(frozen=True)
class Scene:
    background: tuple[int, int, int]
    shapes: tuple[Shape, ...]  # distinct colours


@dataclass(frozen=True)
class Instruction:
    target: int  # index into Scene.shapes
    action: str  # a direction of DIRECTIONS or STOP


def _rng(seed: int, split: str, stream: int) -> np.random.Generator:
    if split not in SPLITS:
        raise ValueError(f"split={split!r}: use one of {', '.join(SPLITS)}")
    return np.random.default_rng([seed, SPLITS.index(split), stream])


def sample_scene(seed: int, split: str) -> Scene:
    """1-3 shapes of distinct colours on a dark flat background; each rests or moves (probability MOVING)."""
    rng = _rng(seed, split, 0)
    n = int(rng.choice([1, 2, 3], p=[0.25, 0.4, 0.35]))
    colours = rng.choice(list(COLOURS), size=n, replace=False)
    shapes = []
    for colour in colours:
        kind = str(rng.choice(SHAPES))
        r = float(rng.uniform(*RADIUS))
        x, y = (float(v) for v in rng.uniform(r + MARGIN, SIZE - r - MARGIN, size=2))
        speed = float(rng.uniform(*SPEEDS)) if rng.random() < MOVING else 0.0
        angle = rng.uniform(0, 2 * np.pi)
        shapes.append(Shape(str(colour), kind, r, (x, y), (speed * np.cos(angle), speed * np.sin(angle))))
    background = tuple(int(v) for v in rng.integers(10, 70, size=3))
    return Scene(background, tuple(shapes))


def allowed_actions(scene: Scene, target: int, split: str) -> list[str]:
    """The instructions a split draws for this shape. Held-out: its held-out direction. Train and val:
    the other directions, and STOP unless nothing else would move (a future equal to the current
    frame is not a prediction task, and scores it perfectly)."""
    shape = scene.shapes[target]
    held = HELDOUT_DIRECTIONS[(shape.colour, shape.kind)]
    if split == "heldout":
        return [held]
    others_move = any(s.velocity != (0.0, 0.0) for i, s in enumerate(scene.shapes) if i != target)
    return [d for d in DIRECTIONS if d != held] + ([STOP] if others_move else [])


def sample_instruction(scene: Scene, seed: int, split: str) -> Instruction:
    rng = _rng(seed, split, 1)
    target = int(rng.integers(len(scene.shapes)))
    actions = allowed_actions(scene, target, split)
    return Instruction(target, actions[int(rng.integers(len(actions)))])


def caption(scene: Scene, instruction: Instruction) -> str:
    """'the red circle moves up and to the left', 'the blue square stops' (or 'stays still' at rest)."""
    shape = scene.shapes[instruction.target]
    if instruction.action != STOP:
        verb = f"moves {instruction.action}"
    else:
        verb = "stops" if shape.velocity != (0.0, 0.0) else "stays still"
    return f"the {shape.colour} {shape.kind} {verb}"


def rollout_frames(chunks: int) -> int:
    """Frames of a clip that scores `chunks` prediction windows in turn, each window's last CONTEXT
    frames the next one's context: 4 + 16 * chunks (20, 36, 52, ...; every future 8k+1 frames)."""
    if chunks < 1:
        raise ValueError(f"chunks={chunks}: a rollout predicts at least one window")
    return CONTEXT + chunks * (FUTURE - 1)


def _bounce(u: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """Unfolded coordinates -> positions reflected between lo and hi (a triangle wave)."""
    span = hi - lo
    m = np.mod(u - lo, 2 * span)
    return lo + np.where(m > span, 2 * span - m, m)


def trajectories(scene: Scene, instruction: Instruction, frames: int = FRAMES) -> np.ndarray:
    """Centres of every shape in every frame: (K, frames, 2) pixels. Each frame is a function of its
    own time, so the first FRAMES rows of a longer clip are those of the short one, bit for bit."""
    t = np.arange(frames, dtype=np.float64)[:, None] - CURRENT  # (F, 1) frames since the current one
    out = np.empty((len(scene.shapes), frames, 2))
    for k, s in enumerate(scene.shapes):
        v = np.asarray(s.velocity)
        if k == instruction.target and instruction.action == STOP:
            v = np.where(t > 0, 0.0, v)  # (F, 2): moving up to the current frame, then still
        elif k == instruction.target:
            direction = np.asarray(DIRECTIONS[instruction.action], dtype=np.float64)
            v = np.where(t > 0, SPEED * direction / np.hypot(*direction), v)
        out[k] = _bounce(np.asarray(s.position) + t * v, s.radius, SIZE - s.radius)  # (F, 2)
    return out


def draw_order(scene: Scene, instruction: Instruction) -> list[int]:
    """Shapes back to front: the instructed one last, so it is never hidden."""
    return [k for k in range(len(scene.shapes)) if k != instruction.target] + [instruction.target]
