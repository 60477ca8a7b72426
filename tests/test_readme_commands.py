"""Every command the README shows for train.py, predict.py, evaluate.py and preprocess.py gets through
the shell's quoting and Hydra's override parser as written (brace patterns and templates included),
and composes against our configs (sweeps: parsed only)."""

from __future__ import annotations

import re
import shlex

import pytest
from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import OmegaConf

from foresight.config import CONF_DIR, ROOT, compose

ENTRY = re.compile(r"(?:^|\s)(?:\.venv/bin/)?python (train|predict|evaluate|preprocess)\.py(?=\s|$)")
PLACEHOLDER = re.compile(r"<(\w+)>")  # <run>, <time>: the user fills these in


def readme_commands() -> list[tuple[str, str]]:
    """(script, command line) for each command in the README's shell blocks, continuations joined."""
    text = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```bash\n(.*?)```", text, flags=re.S)
    commands = []
    for block in blocks:
        for line in block.replace("\\\n", " ").splitlines():
            found = ENTRY.search(line)
            if found:
                commands.append((found.group(1), line[found.end() :]))
    return commands


def inline_overrides() -> list[str]:
    """Inline `key=value` spans in the README's prose that hold Hydra syntax characters."""
    text = (ROOT / "README.md").read_text()
    return [
        span
        for span in re.findall(r"`([^`\n]+)`", text)
        if re.match(r"'?[\w.+~]+=", span) and re.search(r"[{}\[\] ]", span)
    ]


COMMANDS = readme_commands()


def shell_words(line: str) -> list[str]:
    """What the shell hands the script: quotes removed, the comment dropped."""
    return shlex.split(PLACEHOLDER.sub(r"\1", line), comments=True)


def test_the_readme_has_the_brace_pattern_commands():
    lines = " ".join(line for _, line in COMMANDS)
    assert "{000000..000099}" in lines and "{000000..000003}" in lines and len(COMMANDS) >= 15


@pytest.mark.parametrize("script,line", COMMANDS, ids=[f"{s}:{cmd.strip()[:60]}" for s, cmd in COMMANDS])
def test_readme_command_parses_and_composes(script, line):
    words = [w for w in shell_words(line) if w != "-m"]
    parsed = OverridesParser.create().parse_overrides(words)
    if any(o.is_sweep_override() for o in parsed):
        return  # a sweep: Hydra expands it into jobs; parsing is what the README line must pass
    cfg = compose(words, config_name=script)
    for override in parsed:
        key = override.key_or_group
        if (CONF_DIR / key.lstrip("+")).is_dir():
            continue  # a config group choice
        expected = override.value()
        assert OmegaConf.select(cfg, key) == expected, key
        if isinstance(expected, str) and "{0000" in expected:
            assert re.fullmatch(r"[^{}]*\{\d{6}\.\.\d{6}\}\.tar", expected)  # the pattern arrives whole


@pytest.mark.parametrize("span", inline_overrides())
def test_readme_inline_override_parses(span):
    words = shell_words(span)
    parsed = OverridesParser.create().parse_overrides(words)
    assert all(
        "{" in str(o.value()) for word, o in zip(words, parsed, strict=True) if "{" in word
    )  # braces kept as text


def test_unquoted_braces_are_what_hydra_refuses():
    """Why the README quotes as it does: the shell strips one level of quotes, Hydra needs the second."""
    from hydra.errors import OverrideParseException

    with pytest.raises(OverrideParseException):
        OverridesParser.create().parse_overrides(
            shell_words("data.train_shards='/d/train-{000000..000099}.tar'")
        )
    (ok,) = OverridesParser.create().parse_overrides(
        shell_words("""'data.train_shards="/d/train-{000000..000099}.tar"'""")
    )
    assert ok.value() == "/d/train-{000000..000099}.tar"
