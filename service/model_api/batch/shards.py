"""Which rows a shard owns and what its files are called: pure arithmetic, no I/O."""

from __future__ import annotations

from dataclasses import dataclass

PAD = 5  # part-00003-of-00016.jsonl sorts by shard in any listing


@dataclass(frozen=True)
class Shard:
    """Shard `index` of `count`: the half-open row range [start, stop) of a `total`-row input."""

    index: int
    count: int
    start: int
    stop: int

    @property
    def rows(self) -> int:
        return self.stop - self.start

    @property
    def part_name(self) -> str:
        return f"part-{self.index:0{PAD}d}-of-{self.count:0{PAD}d}.jsonl"

    @property
    def errors_name(self) -> str:
        return f"errors-{self.index:0{PAD}d}-of-{self.count:0{PAD}d}.jsonl"

    @property
    def marker_name(self) -> str:
        return f"_SUCCESS-{self.index:0{PAD}d}"


def shard_of(index: int, count: int, total: int) -> Shard:
    """Contiguous, balanced ranges: sizes differ by at most one row and every row has exactly one shard."""
    if count < 1:
        raise ValueError(f"--shard-count must be at least 1, got {count}")
    if not 0 <= index < count:
        raise ValueError(f"--shard-index must be in 0..{count - 1}, got {index}")
    if total < 0:
        raise ValueError(f"row count must not be negative, got {total}")
    return Shard(index=index, count=count, start=index * total // count, stop=(index + 1) * total // count)
