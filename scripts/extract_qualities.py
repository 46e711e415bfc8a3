"""Write the adjective and adverb groups the qualities guard reads (semcache/wordnet_qualities.txt) from
a WordNet 3.0 database.

Each adjective belongs to the group of every sense's head: a head adjective ("wet") heads its own group,
a satellite ("soggy", "damp") joins its head's. Each adverb belongs to its own senses' groups and, through
its pertainym ("quickly" → "quick"), to the adjective's. Two words that share a group can stand for each
other ("rich" / "wealthy", "fast" / "quickly"); two that do not name different qualities ("neat" /
"messy", "spacious" / "cramped"). Irregular forms come from adj.exc and adv.exc ("better" → good, well).

    apt-get download wordnet-base && dpkg-deb -x wordnet-base_*.deb /tmp/wn
    python scripts/extract_qualities.py /tmp/wn/usr/share/wordnet
"""

from __future__ import annotations

import argparse
import re
import sys
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from extract_antonyms import NOTICE, records

OUT = Path(__file__).resolve().parent.parent / "semcache" / "wordnet_qualities.txt"
_WORD = re.compile(r"[a-z]+")


def groups(database: Path) -> dict[str, set[str]]:
    """Each single-word adjective or adverb and the groups (a head adjective's offset, or an adverb
    synset's) it belongs to."""
    adjective_group: dict[str, str] = {}
    adjectives = list(records(database / "data.adj"))
    for offset, kind, _, pointers in adjectives:
        heads = [target for symbol, target, part, _ in pointers if symbol == "&" and part in "as"]
        adjective_group[offset] = "a" + (heads[0] if kind == "s" and heads else offset)
    out: dict[str, set[str]] = defaultdict(set)
    for offset, _, words, _ in adjectives:
        for word in words:
            out[word].add(adjective_group[offset])
    for offset, _, words, pointers in records(database / "data.adv"):
        related = {
            adjective_group[t] for symbol, t, _, _ in pointers if symbol == "\\" and t in adjective_group
        }
        for word in words:
            out[word] |= {"r" + offset, *related}
    return {word: ids for word, ids in out.items() if _WORD.fullmatch(word)}


def exceptions(database: Path) -> dict[str, set[str]]:
    """Irregular forms and their base words: "better" → good, well."""
    out: dict[str, set[str]] = defaultdict(set)
    for name in ("adj.exc", "adv.exc"):
        for line in (database / name).read_text(encoding="latin-1").splitlines():
            form, *bases = line.split()
            out[form].update(bases)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("database", type=Path, help="the WordNet dict folder (data.adj, data.adv, *.exc)")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    words = groups(args.database)
    number = {group: i for i, group in enumerate(sorted({g for ids in words.values() for g in ids}))}
    header = NOTICE.splitlines()[1:]  # Princeton's notice, without the antonym file's own first line
    lines = [
        "# Adjective and adverb groups from WordNet 3.0, written by scripts/extract_qualities.py.",
        *header,
    ]
    lines += [
        f"={form} {' '.join(sorted(bases))}" for form, bases in sorted(exceptions(args.database).items())
    ]
    lines += [
        f"{word} {' '.join(str(number[g]) for g in sorted(ids))}" for word, ids in sorted(words.items())
    ]
    args.out.write_text("\n".join(lines) + "\n")
    print(f"wrote {len(words)} words in {len(number)} groups to {args.out}")


if __name__ == "__main__":
    main()
