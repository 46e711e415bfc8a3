"""Write the antonym pairs the guards read (semcache/wordnet_antonyms.txt) from a WordNet 3.0 database.

WordNet's direct antonyms ("!" pointers) of adjectives, adverbs and verbs, single words only
(``--similar-too`` adds the similar adjectives of each antonymous head: "wide" / "narrow" gives
"broad" / "narrow" too; measured, they refused more paraphrases and caught no more traps). Nouns are
left out: their antonyms ("question" / "answer", "man" / "woman") name two sides of one topic more
often than two opposite requests.

The database comes from Debian's wordnet-base package (or wordnet.princeton.edu):

    apt-get download wordnet-base && dpkg-deb -x wordnet-base_*.deb /tmp/wn
    python scripts/extract_antonyms.py /tmp/wn/usr/share/wordnet
"""

from __future__ import annotations

import argparse
import re
from collections.abc import Iterator
from pathlib import Path

OUT = Path(__file__).resolve().parent.parent / "semcache" / "wordnet_antonyms.txt"
NOTICE = """\
# Antonym pairs from WordNet 3.0 (adjectives, adverbs, verbs), written by scripts/extract_antonyms.py.
# WordNet 3.0 Copyright 2006 by Princeton University. All rights reserved.
# THIS SOFTWARE AND DATABASE IS PROVIDED "AS IS" AND PRINCETON UNIVERSITY MAKES NO REPRESENTATIONS OR
# WARRANTIES, EXPRESS OR IMPLIED. BY WAY OF EXAMPLE, BUT NOT LIMITATION, PRINCETON UNIVERSITY MAKES NO
# REPRESENTATIONS OR WARRANTIES OF MERCHANTABILITY OR FITNESS FOR ANY PARTICULAR PURPOSE OR THAT THE USE OF
# THE LICENSED SOFTWARE, DATABASE OR DOCUMENTATION WILL NOT INFRINGE ANY THIRD PARTY PATENTS, COPYRIGHTS,
# TRADEMARKS OR OTHER RIGHTS. The name of Princeton University or Princeton may not be used in
# advertising or publicity pertaining to distribution of the software and/or database.
"""
_WORD = re.compile(r"[a-z]+")
_SAME_PART = {".adj": {"a", "s"}, ".adv": {"r"}, ".verb": {"v"}}  # a pointer's target is in this file


def records(path: Path) -> Iterator[tuple[str, str, list[str], list[tuple[str, str, str, str]]]]:
    """Each synset line of a WordNet data file: its offset, type ("a", "s", "r", "v", "n"), lowercased
    words and pointers (symbol, target offset, target part, source/target word numbers)."""
    for line in path.read_text(encoding="latin-1").splitlines():
        if line.startswith("  "):  # the licence header
            continue
        fields = line.split(" ")
        count = int(fields[3], 16)
        words = [re.sub(r"\(.*\)$", "", fields[4 + 2 * i]).lower() for i in range(count)]
        at = 4 + 2 * count
        pointers = [tuple(fields[at + 1 + 4 * i : at + 5 + 4 * i]) for i in range(int(fields[at]))]
        yield fields[0], fields[2], words, pointers


def synsets(path: Path) -> dict[str, tuple[list[str], list[tuple[str, str, str]]]]:
    """Each synset's words and pointers (symbol, target offset, source/target word numbers) to synsets
    of the same file."""
    same_part = _SAME_PART[path.suffix]
    return {
        offset: (
            words,
            [(symbol, target, numbers) for symbol, target, part, numbers in pointers if part in same_part],
        )
        for offset, _, words, pointers in records(path)
    }


def antonyms(database: Path, similar_too: bool = True) -> set[tuple[str, str]]:
    pairs = set()
    for part in ("adj", "adv", "verb"):
        table = synsets(database / f"data.{part}")
        for words, pointers in table.values():
            similar = [
                table[t][0] for symbol, t, _ in pointers if symbol == "&" and t in table and similar_too
            ]
            for symbol, target, numbers in pointers:
                if symbol != "!" or target not in table:
                    continue
                source, other = words[int(numbers[:2], 16) - 1], table[target][0][int(numbers[2:], 16) - 1]
                pairs.add((source, other))
                pairs.update((word, other) for group in similar for word in group)
    return {tuple(sorted(p)) for p in pairs if all(_WORD.fullmatch(w) for w in p) and p[0] != p[1]}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("database", type=Path, help="the WordNet dict folder (data.adj, data.adv, data.verb)")
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--similar-too", action="store_true",
                        help="add the similar adjectives of each antonymous head (19 k pairs, against 2.5 k)")  # fmt: skip
    args = parser.parse_args()
    pairs = sorted(antonyms(args.database, similar_too=args.similar_too))
    args.out.write_text(NOTICE + "".join(f"{a} {b}\n" for a, b in pairs))
    print(f"wrote {len(pairs)} pairs to {args.out}")


if __name__ == "__main__":
    main()
