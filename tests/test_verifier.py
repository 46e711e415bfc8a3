"""The shipped trained verifier: it refuses the adversarial sets' traps, keeps its paraphrases, and
is the sidecar's default decision with the false-hit budget honoured per request."""

from __future__ import annotations

import itertools
import json
import shutil
from pathlib import Path

import httpx
import numpy as np
import pytest

from semcache.config import VERIFY_FLOOR, Settings
from semcache.guards import tripped
from semcache.thresholds import load_shipped
from semcache.tuning import load_pairs, score_pairs
from semcache.verifier import MODEL_DIR, CrossEncoderVerifier
from tests.servers import serve

DATA = Path(__file__).resolve().parent.parent / "benchmarks" / "data"


@pytest.fixture(scope="module")
def verifier() -> CrossEncoderVerifier:
    model = CrossEncoderVerifier()
    model.load()
    return model


def test_the_model_ships_with_provenance_and_thresholds() -> None:
    assert (MODEL_DIR / "model.onnx").stat().st_size < 40_000_000
    assert "qqp_train.jsonl" in (MODEL_DIR / "provenance.json").read_text()
    shipped = load_shipped(MODEL_DIR / "thresholds.json", "cross-encoder")
    budgets = sorted(shipped)
    assert budgets and all(shipped[a] >= shipped[b] for a, b in itertools.pairwise(budgets))


@pytest.mark.parametrize(
    ("name", "most_served", "fewest_hits"),
    [
        # The sets whose misses shaped the guards: at most 2 % of their traps served (the fourth: 2 of 80,
        # two negations the model scores as paraphrases).
        ("adversarial_pairs.jsonl", 0.02, 0.5),
        ("adversarial_pairs_2.jsonl", 0.02, 0.5),
        ("adversarial_pairs_3.jsonl", 0.02, 0.5),
        ("adversarial_pairs_4.jsonl", 0.03, 0.5),
        # Measured at 2 of 64 traps: its antonyms led to the WordNet list, which leaves one through. Its
        # paraphrases hit 12 of 28 (43 %) once pairs were scored one at a time, as a lookup scores them
        # (54 % in batches): three pairs sit just under the threshold.
        ("adversarial_pairs_5.jsonl", 0.05, 0.4),
        # Written with the sixth below; its one trap served that a rule could catch (/etc/hosts vs
        # /etc/hostname, at budget 0.3) led to paths as identifiers. Measured at 1 of 90 (Nigeria / Niger).
        ("adversarial_pairs_6.jsonl", 0.02, 0.5),
        # Held out until measured (2 of 58 traps served, 16 of 25 paraphrases hit; 2 of 62, 22 of 30), then
        # one miss of each (blurry / sharp, midnight / noon) went into the word lists.
        ("adversarial_heldout_pairs.jsonl", 0.05, 0.5),
        ("adversarial_heldout_pairs_2.jsonl", 0.05, 0.5),
        # Held out until measured: 3 of 62 traps served (4.8 %: the 2 % does not hold on it), 17 of
        # 30 paraphrases hit; it then added pause / resume to the opposites.
        ("adversarial_heldout_pairs_3.jsonl", 0.07, 0.5),
        # Held out until measured (3 of 61 traps served, 19 of 30 paraphrases hit), then two of its misses
        # led to plurals in swaps and holidays as dates; one left (succeed / fail, with "succeeds" on both
        # sides).
        ("adversarial_heldout_pairs_4.jsonl", 0.03, 0.5),
        # Held out until measured (1 of 64 traps served, 19 of 30 paraphrases hit), then its two guard
        # misses led to round 8: loud / quiet as opposites, and °C / °F as Celsius / Fahrenheit.
        ("adversarial_heldout_pairs_5.jsonl", 0.02, 0.5),
        # Held out until measured: 4 of 63 traps served (6.3 %), 20 of 30 paraphrases hit; round 9 then
        # caught @staticmethod / @classmethod. Left: a calendar sync in swapped places ("sync X with Y"
        # reads as symmetric), pixels / points, Sydney / Melbourne.
        ("adversarial_heldout_pairs_6.jsonl", 0.05, 0.5),
        # Held out until measured (2 of 62 traps served, 17 of 30 paraphrases hit); round 10 then made
        # tighten / loosen opposites. Left: which way a token goes between frontend and backend.
        ("adversarial_heldout_pairs_7.jsonl", 0.02, 0.5),
        # Held out until measured: 3 of 63 traps served (4.8 %), 24 of 30 paraphrases hit. Left: for /
        # against, bitter / sour, and whose games go to whose account.
        ("adversarial_heldout_pairs_8.jsonl", 0.05, 0.5),
        # Held out until measured, the first at the cosine floor of 0.7 (threshold 0.404): 4 of 64 traps
        # served (6.3 %: warmer / colder, tighten / slacken, whose cancellation earns a refund, Mondays /
        # Tuesdays), 19 of 30 paraphrases hit.
        ("adversarial_heldout_pairs_9.jsonl", 0.07, 0.6),
        # Held out until measured once, with the names guard (threshold 0.417): 4 of 64 traps served (6.3 %:
        # lighten / deepen, soggy / crispy, bright / dim, whose closing costs the seller pays), 21 of 30
        # paraphrases hit. Round 13 then made the first three opposites: 1 of 64.
        ("adversarial_heldout_pairs_10.jsonl", 0.02, 0.6),
        # Held out until measured once (threshold 0.417): 7 of 64 traps served; one of them ("how much should a
        # freelancer charge a client" / "a client pay a freelancer") is one question and was relabelled a
        # paraphrase: 6 of 63 (9.5 %: neater / messier, wilting / thriving, deeper / higher, spacious /
        # cramped, and two reworded swaps), 23 of 31 paraphrases hit. Round 14 made the four opposites: 2 of 63.
        ("adversarial_heldout_pairs_11.jsonl", 0.04, 0.6),
        # Held out until measured once, after the qualities guard (threshold 0.405): 1 of 64 traps served (a
        # cosigner's and a borrower's credit swapped), 14 of 30 paraphrases hit: its paraphrases reword more
        # than the other sets' (six of them under the cosine floor).
        ("adversarial_heldout_pairs_12.jsonl", 0.02, 0.4),
        # Held out until measured once (threshold 0.405): 4 of 64 traps served (6.3 %: consistent / varied,
        # the moon and the earth swapped around "and not", Mbps / MBps, who pays vs who charges for pest
        # control), 19 of 30 paraphrases hit. Round 15 then caught the swap and bits / bytes: 2 of 64.
        ("adversarial_heldout_pairs_13.jsonl", 0.04, 0.6),
        # Held out until measured once (threshold 0.405): 3 of 64 traps served (4.7 %: concise / detailed,
        # an employer's and my email swapped around different words, miles / nautical miles), 17 of 30
        # paraphrases hit. Round 16 then caught the first and the last: 1 of 64.
        ("adversarial_heldout_pairs_14.jsonl", 0.02, 0.5),
        # Held out until measured once, at de08b99 (threshold 0.405): 3 of 64 traps served (4.7 %: two swaps
        # reworded around other words, planting in the fall / the spring), 19 of 30 paraphrases hit. Round
        # 17 then read "the fall" as autumn: 2 of 64.
        ("adversarial_heldout_pairs_15.jsonl", 0.04, 0.5),
        # Held out until measured once, at e2ddb5f (threshold 0.405): 2 of 64 traps served (3.1 %: two swaps
        # reworded around other verbs, "cast an integer to a string" / "parse a string into an integer" and
        # cats hissing at dogs / dogs growling at cats), 14 of 30 paraphrases hit (one refused by a guard:
        # "soften sugar gone hard" / "make hardened sugar soft", shaped like "brighten a dark photo" /
        # "darken a bright photo", which it must refuse).
        ("adversarial_heldout_pairs_16.jsonl", 0.04, 0.4),
    ],
)
def test_adversarial_negatives_are_refused_and_paraphrases_hit(
    verifier: CrossEncoderVerifier, embedder, name: str, most_served: float, fewest_hits: float
) -> None:
    pairs = load_pairs(DATA / name)
    scores = score_pairs(pairs, embedder.encode, verifier, floor=VERIFY_FLOOR)
    # The shipped threshold for a 20 % budget, as measured on Quora's noisy labels (see thresholds.json).
    threshold = load_shipped(MODEL_DIR / "thresholds.json", "cross-encoder")[0.2]
    served = scores.verifier >= threshold
    negatives, positives = scores.labels == 0, scores.labels == 1
    assert served[negatives].mean() <= most_served
    assert served[positives].mean() >= fewest_hits
    cosine_served = scores.cosine >= 0.9
    assert cosine_served[negatives].mean() > 0.25  # what a cosine cache would have served (28-53 %)


@pytest.mark.parametrize(
    ("a", "b", "guard"),
    [
        ("Install Python 3.11", "Install Python 3.12", "numbers"),
        ("How long is 90 minutes in hours?", "How long is 90 seconds in hours?", "units"),
        ("What meetings do I have on Monday?", "What meetings do I have on Tuesday?", "calendar"),
        ("Sort the list in ascending order", "Sort the list in descending order", "opposites"),
        ("Why does getUserById fail?", "Why does getUserByEmail fail?", "identifiers"),
        ("What does the --force flag do?", "What does the --force-with-lease flag do?", "identifiers"),
        ("Why does np.argmax return 0?", "Why does np.argmin return 0?", "identifiers"),
        ("How do I edit /etc/hosts on Linux?", "How do I edit /etc/hostname on Linux?", "identifiers"),
        ("Edit the ~/.bashrc file", "Edit the ~/.zshrc file", "identifiers"),
        ("Open C:\\Users\\bob\\notes.txt", "Open C:\\Users\\ann\\notes.txt", "identifiers"),
        ("Why is /usr/local/bin not on my PATH?", "Why isn't /usr/local/bin/ on the PATH", None),
        ("Is the gym open on Sundays?", "Is the gym open on Saturdays?", "calendar"),
        ("Why is my flat warmer at night?", "Why is my flat colder at night?", "opposites"),
        ("How do I slacken a guitar string?", "How do I tighten a guitar string?", "opposites"),
        ("Why do I procrastinate on my thesis?", "Why do I keep putting off my thesis?", None),
        (
            "How do I undo a commit in git but keep my files?",
            "How do I revert a git commit and keep my files?",
            None,
        ),
        ("Can I turn the alarm on from my phone?", "Can I turn the alarm off from my phone?", "opposites"),
        (
            "Convert 90 km/h to m/s, and/or explain I/O 24/7",
            "Explain I/O 24/7 and/or convert 90 km/h to m/s",
            None,
        ),
        ("Convert Celsius to Fahrenheit", "Convert Fahrenheit to Celsius", "swapped"),
        ("Is it safe to delete node_modules?", "Is it unsafe to delete node_modules?", "opposites"),
        ("Translate 'good morning' into Spanish", "Translate 'good morning' into Italian", "languages"),
        ("Read a file line by line in Python", "Read a file one line at a time in Python", None),
        ("What is 15% of 240?", "Calculate 15 percent of 240", None),
        (
            "Difference between militants and terrorists?",
            "Difference between terrorists and militants?",
            None,
        ),
        ("Best Steam 5 dollar games?", "Best game on Steam under 5 dollars?", None),
        ("How do I migrate from MySQL to PostgreSQL?", "Move a database from MySQL to Postgres", None),
        ("Give me three ideas for a team offsite", "Give me ten ideas for a team offsite", "numbers"),
        ("Run the job every 15 minutes", "Run the job every fifteen minutes", None),
        ("Who will win in two thousand sixteen?", "Who will win in 2016?", None),
        ("Insert 1,000 rows", "Insert 1000 rows", None),
        ("Which one is faster?", "Which is faster?", None),
        ("Load several thousand files", "Load a lot of files", None),
        ("Set the reminder for 9am", "Set the reminder for 9pm", "calendar"),
        ("Run the backup at midnight", "Run the backup at noon", "calendar"),
        ("Run the backup at midnight", "Schedule the backup to run at midnight", None),
        ("Why is the photo so blurry?", "Why is the photo so sharp?", "opposites"),
        ("How do I pause the download?", "How do I resume the download?", "opposites"),
        ("Why is the fan louder at night?", "Why is the fan quieter at night?", "opposites"),
        ("What is 20 degrees Celsius in Fahrenheit?", "Convert 20 °C to Fahrenheit", None),
        ("Bake it at 180°C", "Bake it at 180°F", "units"),
        ("Explain the @staticmethod decorator", "Explain the @classmethod decorator", "identifiers"),
        ("Email bob@example.com about it", "Email bob@example.com about this", None),
        ("How much is 50 euros in dollars?", "Convert 50 EUR to USD", None),
        ("How much is 50 euros in dollars?", "Convert 50 GBP to USD", "units"),
        ("Convert 5 feet 10 inches to centimeters", "What is 5'10\" in cm?", None),
        ("How can I tighten the hinges?", "How can I loosen the hinges?", "opposites"),
        ("How many teaspoons are in a tablespoon?", "How many tsp in one tbsp?", None),
        ("What is 1 terabyte in gigabytes?", "How many gigabytes are in a terabyte?", None),
        ("Convert 1 mile to km", "Convert one mile to km", None),
        ("Is 1 GB enough?", "Is 10 GB enough?", "numbers"),
        ("Give me 1 example", "Give me an idea", "numbers"),
        ("Count orders per customer", "Count customers per order", "swapped"),
        ("Redirect HTTP traffic to HTTPS", "Redirect HTTPS traffic to HTTP", "swapped"),
        ("Sort the users by orders", "Sort the user by order", None),
        ("Is the museum open on Christmas Eve?", "Is the museum open on New Year's Eve?", "calendar"),
        ("Is the museum open on Christmas?", "Is the museum open on Christmas Day?", None),
        ("Why am I tired in the morning?", "Why do I feel tired in the morning?", None),
        ("Store the price as cents", "Store the price as dollars", "units"),
        ("Make the font size larger", "Make the font size smaller", "opposites"),
        ("Round the number up", "Round the number down", "opposites"),
        ("Is it possible to resize it?", "Is it impossible to resize it?", "opposites"),
        ("What port does Postgres use?", "How do I import data into Postgres?", None),
        ("Is Alice's manager Bob?", "Is Bob's manager Alice?", "swapped"),
        ("Replace tabs with spaces", "Replace spaces with tabs", "swapped"),
        ("Compare Python with Java", "Compare Java with Python", None),
        ("Is the teacher grading the students?", "Are the students grading the teacher?", "swapped"),
        ("Cast the integer to a string", "Cast the string to an integer", "swapped"),
        ("Send the report every Friday", "Every Friday, send the report", None),
        ("What does git revert do?", "What does git restore do?", "identifiers"),
        ("What does kubectl apply do?", "What is the purpose of kubectl apply?", None),
        ("Why is the cron job running twice?", "My cron job runs two times, why?", None),
        ("What is the second largest planet?", "What is the third largest planet?", "numbers"),
        ("Is 120 km/h fast?", "Is 120 kilometers per hour fast?", None),
        ("Increase the limit to 2 GiB", "Increase the limit to 2 MiB", "units"),
        ("What is on this Wednesday?", "What is on next Wednesday?", "calendar"),
        ("Plan a trip for spring", "Plan a trip for autumn", "calendar"),
        ("Arrested Monday morning", "Arrested on Monday", None),
        ("Make the background lighter", "Make the background darker", "opposites"),
        ("Why is my battery draining quickly?", "Why is my battery draining slowly?", "opposites"),
        ("Find the oldest open issue", "Find the newest open issue", "opposites"),
        ("Why are my tests passing?", "Why are my tests failing?", "opposites"),
        ("Should I use a shallow copy?", "Should I use a deep copy?", "opposites"),  # WordNet
        ("How do I zoom in on a PDF?", "How do I zoom out on a PDF?", "opposites"),
        ("The decision was an easy one", "The decision was not difficult", None),
        ("Is tap water the same as rain?", "How are rain and tap water different?", None),
        ("How do I explore the Gobi desert?", "How do I explore the Great Basin desert?", "names"),
        ("Is the PlayStation worth buying?", "Is the Xbox worth buying?", "names"),
        ("Should I learn React or Vue?", "Should I learn React or Angular?", "names"),
        ("Is Java hard to learn?", "Is JavaScript hard to learn?", "languages"),
        ("Does Hertz rent cars to 21 year olds?", "Does Avis rent cars to 21 year olds?", "names"),
        ("How is life in the U.S.?", "How is life in the United States?", None),
        ("Is it expensive to live in the USA?", "Is it expensive to live in America?", None),
        ("Why did the Star Wars prequels flop?", "Why did the Star War prequels flop?", None),
        ("Why do Serbs dislike NATO?", "Why do Serbians dislike NATO?", None),
        ("How do I create an index in Postgres?", "How do I create an index in PostgreSQL?", None),
        ("Is Mongo good for analytics?", "Is MongoDB good for analytics?", None),
        ("Is Austria safe for tourists?", "Is Australia safe for tourists?", "names"),
        ("What is the best What'sApp DP?", "What is the best WhatsApp DP?", None),
        ("Why is the screen too bright at night?", "Why is the screen too dim at night?", "opposites"),
        ("Why are my fries soggy?", "Why are my fries crispy?", "opposites"),
        (
            "How do I undo the last commit in git without losing changes?",
            "How can I undo my most recent git commit but keep the changes?",
            None,
        ),
        ("How do I make my handwriting neater?", "How do I make my handwriting messier?", "opposites"),
        (
            "How can I make a room feel more spacious?",
            "How can I make a room feel more cramped?",
            "opposites",
        ),
        (
            "How do I delete a branch in git locally and remotely?",
            "How can I remove a git branch both locally and on the remote?",
            None,
        ),
        ("Why is my rice so sticky?", "Why is my rice so mushy?", "qualities"),
        (
            "Why do some people always reply to emails?",
            "Why do some people never reply to emails?",
            "qualities",
        ),
        ("How can I get rich quickly?", "How can I get wealthy quickly?", None),
        ("What is the easiest way to learn Python?", "What is the simplest way to learn Python?", None),
        ("What is the best way to learn Python?", "What is a good way to learn Python?", None),
        ("What changed in Django 4.2?", "What's new in Django 4.2?", None),
        ("A dog runs through the grass.", "A dog runs across the grass.", None),
        ("What colour is the sky?", "What color is the sky?", None),
        ("Is 30 Mbps enough for streaming?", "Is 30 MBps enough for streaming?", "units"),
        ("Is 30 Mbps enough for streaming?", "Is 30 mbps enough for streaming?", None),
        (
            "Why does the moon orbit the earth and not the sun?",
            "Why does the earth orbit the sun and not the moon?",
            "swapped",
        ),
        ("What is 60 miles in kilometers?", "What is 60 nautical miles in kilometers?", "units"),
        ("How many milliliters are in an ounce?", "How many milliliters are in a fluid ounce?", "units"),
        ("How do I make my writing more concise?", "How do I make my writing more detailed?", "opposites"),
        ("Why does the room look crowded?", "Why does the room look spacious?", "qualities"),
        ("A man is running.", "A man is singing.", None),
        ("What should I plant in the fall?", "What should I plant in the spring?", "calendar"),
        ("What should I plant in the fall?", "What should I plant in autumn?", None),
        ("Why do leaves fall in spring?", "Why do leaves drop in spring?", None),
        ("Stars Pay Tribute To Cory Monteith", "Stars Pay Tribute To James Garner", None),  # a headline
        ("Sydney or Perth for a week?", "Melbourne or Perth for a week?", None),  # a sentence's first word
    ],
)
def test_guards(a: str, b: str, guard: str | None) -> None:
    assert tripped(a, b) == guard


def test_scores_are_probabilities_and_symmetric_enough(verifier: CrossEncoderVerifier) -> None:
    a, b = "How do I reverse a list in Python?", "How can I reverse a list in python?"
    forward, backward = verifier.score([(a, b), (b, a)], np.array([0.99, 0.99]))
    assert 0.0 <= forward <= 1.0 and abs(forward - backward) < 0.2


def test_the_sidecar_decides_with_the_verifier_and_the_request_budget(settings: Settings, embedder) -> None:
    from semcache.server import create_app

    # Quora's noisy labels certify only loose budgets; a tuned install would use its own thresholds.
    trained = settings.model_copy(update={"verifier": "cross-encoder", "false_hit_budget": 0.2})
    with serve(create_app(trained, embedder=embedder)) as url:

        def ask(content: str, **options: object) -> httpx.Response:
            body = {"model": "m-verify", "messages": [{"role": "user", "content": content}]}
            if options:
                body["semcache"] = options
            return httpx.post(
                f"{url}/v1/chat/completions", json=body, headers={"X-Semcache-Repo": "acme"}, timeout=30
            )

        decision = httpx.get(f"{url}/healthz").json()["decision"]
        assert decision["verifier"] == "cross-encoder" and decision["semantic_hits"]
        assert ask("How do I cancel my subscription?").headers["x-semcache"] == "miss"
        assert ask("How can I cancel my subscription?").headers["x-semcache"] == "hit-semantic"
        assert ask("How do I renew my subscription?").headers["x-semcache"] == "miss"
        assert ask("How do I not cancel my subscription?").headers["x-semcache"] == "miss"
        # A budget stricter than anything calibrated never serves a semantic hit.
        strict = ask("How can I cancel my subscription?", false_hit_budget=0.0001)
        assert strict.headers["x-semcache"] == "miss"
        bad = ask("How can I cancel my subscription?", false_hit_budget=1.5)
        assert bad.status_code == 400 and "false_hit_budget" in bad.json()["error"]["message"]


def test_a_budget_nothing_certifies_serves_only_exact_hits_and_says_so(settings: Settings, embedder) -> None:
    from semcache.cache import SemanticCache

    strict = settings.model_copy(update={"verifier": "cross-encoder", "false_hit_budget": 0.0001})
    cache = SemanticCache(strict, embedder=embedder)
    assert cache.decision() == {"verifier": "cross-encoder", "model": cache.verifier.model_id,
                                "false_hit_budget": 0.0001, "threshold": None, "semantic_hits": False}  # fmt: skip
    assert cache.verifier.model_id.startswith("cross-encoder@")
    cache.close()


def retrained_copy(target: Path, thresholds: dict[str, float]) -> Path:
    """The shipped verifier under ``target`` as if retrained (other model bytes), with its own table."""
    import onnx

    shutil.copytree(MODEL_DIR, target)
    model = onnx.load(str(target / "model.onnx"))
    model.doc_string = "retrained"
    onnx.save(model, str(target / "model.onnx"))
    (target / "thresholds.json").write_text(json.dumps({"tables": {"cross-encoder": thresholds}}))
    return target


def test_tuned_thresholds_belong_to_one_model_and_verifier_dir_swaps_it(settings: Settings, tmp_path) -> None:
    from semcache.cache import SemanticCache
    from semcache.store import GLOBAL

    shipped = SemanticCache(
        settings.model_copy(update={"verifier": "cross-encoder", "false_hit_budget": 0.05})
    )
    shipped.thresholds.save(GLOBAL, 0.05, 0.95, pairs=100)
    assert shipped.decision()["threshold"] == 0.95
    shipped_id = shipped.verifier.model_id
    shipped.close()

    other_dir = retrained_copy(tmp_path / "retrained", {"0.3": 0.4})
    update = {"verifier": "cross-encoder", "false_hit_budget": 0.05, "verifier_dir": other_dir}
    other = SemanticCache(settings.model_copy(update=update))
    # The threshold tuned for the shipped model is not applied to the retrained one, and start-up names it.
    assert other.verifier.model_id not in (shipped_id, "") and other.thresholds.orphaned() == [shipped_id]
    assert other.decision()["threshold"] is None
    assert other.thresholds.resolve(GLOBAL, 0.3) == 0.4  # the retrained model's own shipped table
    other.close()
