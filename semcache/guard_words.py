"""The word lists the guards (``semcache.guards``) read: units, calendar words, opposites, number
words, command-line tools and the small function words that change how a prompt is compared."""

from __future__ import annotations

import re

from semcache.perturb import LANGUAGES as PERTURB_LANGUAGES

# Not "sec" (the SEC) or "min" (the minimum): each refused real paraphrases.
UNITS = frozenset(re.split(r"\s+", """
    second seconds minute minutes hour hours day days week weeks month months year years ms millisecond
    milliseconds gram grams kg kilogram kilograms pound pounds lb lbs ounce ounces oz ton tons liter liters
    litre litres gallon gallons ml milliliter milliliters meter meters metre metres km kilometer kilometers
    kilometre kilometres mile miles foot feet inch inches cm centimeter centimeters yard yards celsius
    fahrenheit kelvin byte bytes bit bits kb kilobyte kilobytes mb megabyte megabytes megabit megabits gb
    gigabyte gigabytes gigabit gigabits tb terabyte terabytes percent dollar dollars euro euros usd eur
    gbp yen rupee rupees watt watts kw kwh volt volts mph kph cent cents pixel pixels px quart quarts cup cups
    tablespoon tablespoons tbsp teaspoon teaspoons tsp microsecond microseconds nanosecond nanoseconds mm
    millimeter millimeters hz khz mhz ghz kbps mbps gbps fps dpi rpm acre acres hectare hectares hr hrs kib mib
    gib tib jpy inr kilobit kilobits terabit terabits nautical fluid""".strip()))  # fmt: skip
# Abbreviations and spellings of one unit, to the name the guard compares ("a+b": a unit per unit).
UNIT_NAMES = dict(pair.split("=") for pair in re.split(r"\s+", """
    km=kilometer kilometre=kilometer kilometres=kilometer metre=meter metres=meter cm=centimeter
    mm=millimeter ms=millisecond kg=kilogram lb=pound lbs=pound oz=ounce ml=milliliter litre=liter
    litres=liter kb=kilobyte mb=megabyte gb=gigabyte tb=terabyte inches=inch feet=foot hr=hour
    hrs=hour kph=kilometer+hour tsp=teaspoon tbsp=tablespoon px=pixel usd=dollar eur=euro gbp=pound jpy=yen inr=rupee
    kbps=kilobit+second mbps=megabit+second gbps=gigabit+second""".strip()))  # fmt: skip
CALENDAR = frozenset(re.split(r"\s+", """
    monday tuesday wednesday thursday friday saturday sunday january february april june july august
    september october november december today yesterday tomorrow tonight weekend week month year morning
    afternoon evening night @am @pm spring summer autumn winter midnight noon midday dawn dusk sunrise sunset
    christmas easter thanksgiving halloween hanukkah diwali ramadan eve""".strip()))  # fmt: skip
# Compared apart, so that one side saying more ("Monday morning" vs "Monday") is not a change.
TIMES_OF_DAY = frozenset(
    {"morning", "afternoon", "evening", "night", "@am", "@pm", "midnight", "noon", "midday", "dawn", "dusk",
     "sunrise", "sunset"}
)  # fmt: skip
SEASONS = frozenset({"spring", "summer", "autumn", "winter"})
# "fall" is autumn after these ("in the fall", "this fall"); elsewhere a verb ("leaves fall", "fall asleep").
BEFORE_SEASON = frozenset({"the", "this", "next", "last", "in", "early", "late", "during", "every"})
# "open on Mondays" names the day as "open on Monday" does.
WEEKDAY_PLURALS = {
    day + "s": day for day in ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
}
QUALIFIERS = frozenset({"this", "next", "last", "previous", "past", "coming"})
# Opposites the guard knows beyond the training rules' list (semcache.perturb.ANTONYMS, which stays as
# the shipped model was trained with): comparatives and the pairs of everyday tooling prompts.
MORE_OPPOSITES = [tuple(pair.split("/")) for pair in re.split(r"\s+", """
    up/down high/low higher/lower highest/lowest large/small larger/smaller largest/smallest big/small
    bigger/smaller biggest/smallest faster/slower fastest/slowest better/worse long/short longer/shorter
    old/new older/newer early/late earlier/later min/max most/least more/fewer grant/revoke keep/remove
    keep/delete keep/strip keep/drop show/hide expand/collapse include/exclude attach/detach inbound/outbound
    input/output read/write encode/decode increment/decrement overfitting/underfitting sync/async
    synchronous/asynchronous benefits/drawbacks approve/reject reduce/increase always/never success/failure pass/fail
    internal/external horizontal/vertical top/bottom head/tail prefix/suffix next/last next/previous
    deposit/withdraw credit/debit profit/loss lend/borrow hot/cold light/dark
    strong/weak safe/dangerous online/offline login/logout grow/shrink maximize/minimize plus/minus
    add/subtract multiply/divide mutable/immutable frontend/backend quick/slow strength/weakness enlarge/shrink
    blurry/sharp blurred/sharp pause/resume suspend/resume loud/quiet noisy/quiet tighten/loosen tight/loose
    required/optional warm/cold slacken/tighten bright/dim brighter/dimmer soggy/crispy soggy/crisp deepen/lighten neat/messy
    wilt/thrive deep/high spacious/cramped concise/detailed consistent/varied""".strip())]  # fmt: skip
NEGATING_PREFIXES = ("un", "in", "dis", "non", "im", "il", "ir")
SUFFIXES = [("iest", ["y"]), ("ier", ["y"]), ("ily", ["y"]), ("ied", ["y"]), ("est", ["", "e"]),
             ("er", ["", "e"]), ("ing", ["", "e"]), ("ed", ["", "e"]), ("ly", [""]), ("es", [""]),
             ("s", [""])]  # fmt: skip
NEGATORS = frozenset({"not", "no", "never", "cannot", "without", "nor"})
PARTICLES = {"in": "out", "out": "in", "on": "off", "off": "on"}
PHRASAL = frozenset(re.split(r"\s+", """
    log sign opt check zoom scale turn switch plug clock cash fade phase roll tune lock clip""".strip()))  # fmt: skip
LANGUAGES = frozenset(language.lower() for language in PERTURB_LANGUAGES)
SMALL_NUMBERS = {word: n for n, word in enumerate(re.split(r"\s+", """
    zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen
    seventeen eighteen nineteen""".strip())) if n >= 2}  # fmt: skip
TENS = {word: 10 * n for n, word in enumerate(re.split(r"\s+", """
    _ _ twenty thirty forty fifty sixty seventy eighty ninety""".strip())) if n >= 2}  # fmt: skip
TIMES = {"twice": 2, "thrice": 3}  # "runs twice" is "runs two times"
# Ordinals from "third": "first" is an opposite of "last" and "second" a unit of time.
ORDINALS = {word: n for n, word in enumerate(re.split(r"\s+", """
    _ _ _ third fourth fifth sixth seventh eighth ninth tenth eleventh twelfth thirteenth fourteenth fifteenth
    sixteenth seventeenth eighteenth nineteenth twentieth""".strip())) if n >= 3}  # fmt: skip
SCALES = {"hundred": 100, "thousand": 1_000, "million": 1_000_000, "billion": 1_000_000_000}
CLOCK = re.compile(r"\d+(am|pm)")
CLI_TOOLS = frozenset(re.split(r"\s+", """
    git kubectl docker podman npm yarn pnpm pip cargo helm terraform aws gcloud az brew apt systemctl
    conda poetry dotnet mvn gradle""".strip()))  # fmt: skip
NOT_SUBCOMMANDS = frozenset(
    re.split(
        r"\s+",
        "a an and as at but by for from hub if in into is it of on or so that the this to using vs when with"
        " without",
    )
)
# Words WordNet also lists as adjectives or adverbs that never name the quality a question asks about:
# quantifiers, intensifiers, question words, particles, and praise ("the best way" is "a good way").
FUNCTION_WORDS = frozenset(re.split(r"\s+", """
    all any each every some no none few many much more most less least several other another such same own
    only very too also just so then there here now still even ever again already yet once really quite
    rather enough almost about around well up down out in on off over back away how why when where what
    which who not as like best better good great nice top greatest finest ideal excellent awesome amazing
    cool perfect decent favorite favourite wonderful main major key certain sure possible different through
    across above below under along past behind beyond inside outside before after near""".strip()))  # fmt: skip
# After these a participle is an adjective ("more varied", "looks crowded"); elsewhere, after "is" too
# ("is running", "was signed"), mostly a verb.
BEFORE_ADJECTIVES = frozenset(re.split(r"\s+", """
    more less most least too so very really quite rather become becomes look looks seem seems feel feels
    sound sounds""".strip()))  # fmt: skip
NOUN_MARKERS = frozenset(
    {"a", "an", "the", "my", "our", "your", "this", "that", "in", "into", "from", "on", "of"}
)
SYMMETRIC = frozenset({"and", "or", "vs", "versus", "with", "&"})  # "X and Y" is "Y and X"
DIRECTED_WITH = frozenset({"replace", "replacing", "replaced", "substitute", "fill", "overwrite", "populate"})
AUXILIARY = {"an": "a", "is": "be", "are": "be", "was": "be", "were": "be", "am": "be", "does": "do", "did": "do",
              "has": "have", "had": "have"}  # fmt: skip
