"""The root Dockerfile read as data: stages, instructions, ARG defaults, and the build context it sees.

Small on purpose: it understands what our Dockerfile uses (comments, line continuations, global and stage
ARGs, `FROM image AS name`, exec-form JSON arrays, KEY=VALUE lists) and refuses nothing silently: an
unparsable line is a clear error naming its number.
"""

from __future__ import annotations

import fnmatch
import json
import os
import re
import shlex
import shutil
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"

_INSTRUCTION = re.compile(r"^([A-Za-z]+)\s+(.*)$", re.DOTALL)
_VARIABLE = re.compile(r"\$\{(\w+)\}|\$(\w+)")


class DockerfileError(ValueError):
    """The Dockerfile holds something this reader cannot interpret; the message names the line."""


@dataclass(frozen=True)
class Instruction:
    keyword: str  # upper case: RUN, COPY, ...
    value: str  # everything after the keyword, continuation lines joined
    line: int  # 1-based line where the instruction starts

    def exec_form(self) -> list[str] | None:
        """The JSON array of an exec-form ENTRYPOINT/CMD/RUN, or None for the shell form."""
        if not self.value.startswith("["):
            return None
        try:
            parsed = json.loads(self.value)
        except json.JSONDecodeError as exc:
            raise DockerfileError(f"line {self.line}: {self.keyword} is not valid JSON: {exc}") from None
        return parsed

    def pairs(self) -> dict[str, str]:
        """KEY=VALUE pairs of an ENV/LABEL/ARG instruction (the legacy `ENV KEY value` form too)."""
        words = shlex.split(self.value)
        if self.keyword == "ENV" and words and "=" not in words[0]:
            return {words[0]: " ".join(words[1:])}
        pairs = {}
        for word in words:
            key, sep, value = word.partition("=")
            if self.keyword != "ARG" and not sep:
                raise DockerfileError(f"line {self.line}: {self.keyword} item {word!r} has no '='")
            pairs[key] = value
        return pairs


@dataclass
class Stage:
    base: str  # as written, variables unresolved
    name: str | None
    instructions: list[Instruction] = field(default_factory=list)

    def all(self, keyword: str) -> list[Instruction]:
        return [i for i in self.instructions if i.keyword == keyword]

    def env(self) -> dict[str, str]:
        """Every ENV of the stage, later ones winning."""
        merged: dict[str, str] = {}
        for instruction in self.all("ENV"):
            merged.update(instruction.pairs())
        return merged


@dataclass
class Dockerfile:
    global_args: dict[str, str]  # ARG defaults declared before the first FROM
    stages: list[Stage]

    @classmethod
    def parse(cls, text: str) -> Dockerfile:
        global_args: dict[str, str] = {}
        stages: list[Stage] = []
        for instruction in _instructions(text):
            if instruction.keyword == "FROM":
                words = instruction.value.split()
                name = words[2] if len(words) == 3 and words[1].upper() == "AS" else None
                if len(words) not in (1, 3) or (len(words) == 3 and name is None):
                    raise DockerfileError(f"line {instruction.line}: cannot read FROM {instruction.value!r}")
                stages.append(Stage(base=words[0], name=name))
            elif not stages:
                if instruction.keyword != "ARG":
                    where = f"line {instruction.line}: {instruction.keyword}"
                    raise DockerfileError(f"{where} before the first FROM")
                global_args.update(instruction.pairs())
            else:
                stages[-1].instructions.append(instruction)
        if not stages:
            raise DockerfileError("no FROM instruction")
        return cls(global_args, stages)

    @classmethod
    def load(cls, path: Path = DOCKERFILE) -> Dockerfile:
        return cls.parse(path.read_text())

    def resolve(self, value: str) -> str:
        """`value` with ${ARG} / $ARG replaced by the global ARG defaults (unknown names left as written)."""
        return _VARIABLE.sub(lambda m: self.global_args.get(m[1] or m[2], m[0]), value)

    def stage(self, name: str) -> Stage:
        for stage in self.stages:
            if stage.name == name:
                return stage
        raise LookupError(f"Dockerfile has no stage named {name!r} (stages: {[s.name for s in self.stages]})")

    @property
    def final(self) -> Stage:
        return self.stages[-1]


def _instructions(text: str) -> list[Instruction]:
    """Instructions with continuation lines joined; comment lines dropped (also inside continuations)."""
    instructions: list[Instruction] = []
    pending: list[str] = []
    start = 0
    for number, raw in enumerate(text.splitlines(), start=1):
        stripped = raw.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if not pending:
            start = number
        continued = stripped.endswith("\\")
        pending.append(stripped[:-1].strip() if continued else stripped)
        if not continued:
            instructions.append(_instruction(" ".join(pending), start))
            pending = []
    if pending:
        raise DockerfileError(f"line {start}: the file ends inside a continued instruction")
    return instructions


def _instruction(joined: str, line: int) -> Instruction:
    match = _INSTRUCTION.match(joined)
    if not match:
        raise DockerfileError(f"line {line}: not an instruction: {joined!r}")
    return Instruction(match[1].upper(), match[2].strip(), line)


def ignore_patterns(path: Path = DOCKERIGNORE) -> list[str]:
    lines = (line.strip() for line in path.read_text().splitlines())
    return [line for line in lines if line and not line.startswith("#")]


def is_ignored(relative: str, patterns: list[str]) -> bool:
    """Whether .dockerignore keeps `relative` (a context path) out; a matched directory hides its contents.

    Docker matches with Go's filepath.Match plus `**`; fnmatch is close enough for our patterns (none
    uses `!` exceptions, which this refuses rather than misreads).
    """
    parts = relative.split("/")
    prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    for pattern in patterns:
        if pattern.startswith("!"):
            raise DockerfileError(f".dockerignore exception {pattern!r} is not supported by this reader")
        candidates = [pattern, pattern.removeprefix("**/")] if pattern.startswith("**/") else [pattern]
        if any(fnmatch.fnmatchcase(prefix, c) for prefix in prefixes for c in candidates):
            return True
    return False


def build_context_files(root: Path = ROOT) -> list[str]:
    """Every file of the build context (paths relative to `root`) once .dockerignore has been applied."""
    patterns = ignore_patterns(root / ".dockerignore")
    files = []
    for directory, subdirectories, names in os.walk(root):
        base = Path(directory).relative_to(root).as_posix()
        prefix = "" if base == "." else base + "/"
        # Pruned in place: os.walk then never descends into .venv, .git and the like.
        subdirectories[:] = [d for d in subdirectories if not is_ignored(prefix + d, patterns)]
        files += [prefix + name for name in names if not is_ignored(prefix + name, patterns)]
    return sorted(files)


def copy_build_context(stage: Stage, destination: Path, root: Path = ROOT) -> None:
    """Replay the stage's plain COPY instructions (from the context, not --from) into `destination`, which
    stands for the stage's WORKDIR; only context files (.dockerignore applied) are copied."""
    context = set(build_context_files(root))
    for instruction in stage.all("COPY"):
        words = instruction.value.split()
        if any(word.startswith("--from") for word in words):
            continue
        *sources, target = [w for w in words if not w.startswith("--")]
        for source in sources:
            source_path = source.rstrip("/")
            matched = [f for f in context if f == source_path or f.startswith(source_path + "/")]
            if not matched:
                where = f"line {instruction.line}: COPY {source}"
                raise DockerfileError(f"{where} matches nothing in the build context")
            for relative in matched:
                if relative != source_path:  # a directory: its contents go under the target
                    out = destination / target / relative[len(source_path) + 1 :]
                elif target.endswith("/"):
                    out = destination / target / Path(relative).name
                else:
                    out = destination / target
                out.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(root / relative, out)
