"""The committed fuzz seeds pass both fuzz invariants (no atheris needed)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

FUZZ = Path(__file__).resolve().parent.parent / "fuzz"
sys.path.insert(0, str(FUZZ))

import fuzz_parser  # noqa: E402
import fuzz_roundtrip  # noqa: E402

PARSER_SEEDS = sorted((FUZZ / "corpus" / "parser").iterdir())
ROUNDTRIP_SEEDS = sorted((FUZZ / "corpus" / "roundtrip").iterdir())


@pytest.mark.parametrize("seed", PARSER_SEEDS, ids=lambda p: p.name)
def test_parser_seed(seed: Path) -> None:
    """Every split of the seed's stream parses alike, and like the reference."""
    fuzz_parser.check(seed.read_bytes())


@pytest.mark.parametrize("seed", ROUNDTRIP_SEEDS, ids=lambda p: p.name)
def test_roundtrip_seed(seed: Path) -> None:
    """The seed's items survive serialize -> parse in every split."""
    fuzz_roundtrip.check(seed.read_bytes())


def test_corpus_is_what_make_corpus_writes() -> None:
    """The committed seeds are exactly the tables in make_corpus.py (reproducible)."""
    import make_corpus

    for directory, table in ((FUZZ / "corpus" / "parser", make_corpus.PARSER_SEEDS),
                             (FUZZ / "corpus" / "roundtrip", make_corpus.ROUNDTRIP_SEEDS)):
        on_disk = {p.name: p.read_bytes() for p in directory.iterdir()}
        assert on_disk == table


def test_parser_harness_catches_a_divergence(monkeypatch: pytest.MonkeyPatch) -> None:
    """The parser harness fails when a split gives different items (it can fail)."""
    fuzz_parser.check(b"")  # imports the targets
    real = fuzz_parser.run_parser

    def broken(kwargs: dict[str, object], chunks: list[bytes]) -> object:
        items, outcome, last_event_id = real(kwargs, chunks)
        return (items[:-1] if len(chunks) > 1 else items), outcome, last_event_id

    monkeypatch.setattr(fuzz_parser, "run_parser", broken)
    with pytest.raises(AssertionError, match="differs from whole feed"):
        fuzz_parser.check(fuzz_parser.encode_input(b"data: a\n\n"))
