"""Query types for long-tail synthesis, by rules (and optionally by an LLM).

METHOD.md part B names the long-tail, knowledge-intensive query types: Q&A, negative (negation),
alternative-intent and knowledge. Each type gets its own few-shot rewriting prompt, and results are
reported per type, so every query gets one *primary* type plus every type whose cue it shows:

- ``qa`` — a question: "what do I need to hang a heavy mirror", "how to…", "?".
- ``negative`` — an excluded attribute: "sofa without wood legs", "not", "no", "non-", "bpa free".
- ``alternative`` — wants something instead of a named product: "cheaper alternative to a dyson",
  "like", "instead of", "similar to", "vs", "dupe".
- ``knowledge`` — needs world knowledge to map a need to products: gifts and occasions ("gift for a
  dinosaur-loving 5 year old"), ages, a person's interests, use cases ("shoes for running on muddy
  trails", "moisturizer for oily skin in summer", "best X for Y").
- ``plain`` — none of these: the product is named ("cordless drill 20v", "filter for lg lfx259755st").

The primary type is the first of ``qa > negative > alternative > knowledge`` that fires: a question
is rewritten from scratch whatever else it holds, and a negation is a hard constraint that every
prompt must keep. Rules are tuned for English shopper queries; each tag records the rule that fired,
so a wrong tag can be traced to its rule.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

import pandas as pd

from shopsearch.synthesis.llm.base import LLMBackend, Message, chat_batch

QueryType = Literal["qa", "negative", "alternative", "knowledge", "plain"]
QUERY_TYPES: tuple[QueryType, ...] = ("qa", "negative", "alternative", "knowledge", "plain")
PRIORITY: tuple[QueryType, ...] = ("qa", "negative", "alternative", "knowledge")

_PRONOUN = r"(?:i|you|we|they|my|your|it|this|these|those|there|he|she|a|an|the)"
# -ing words that are product nouns, not activities ("paint for ceiling", "clips for railing")
_ING_NOUNS = (
    "ceiling|siding|flooring|railing|railings|decking|clothing|bedding|lighting|wiring|tubing|fitting|fittings|"
    "ring|rings|king|string|strings|spring|springs|plumbing|roofing|molding|moulding|shelving|awning|awnings|"
    "housing|bearing|bearings|coupling|fencing|tiling|paneling|panelling|carpeting|trimming|trim|edging|sling|"
    "building|buildings|framing|sheathing|ducting|piping|casing|padding|stuffing|filling|seasoning|frosting|"
    "icing|wedding|thanksgiving|evening|morning|pudding|stocking|stockings|sibling|siblings|"
    "everything|anything|something|nothing|duckling|earring|earrings|o-ring|o-rings|landing|ceilings"
)


_OCCASIONS = (
    r"birthday|anniversary|wedding|christmas|xmas|valentine'?s?(?: day)?|mother'?s day|father'?s day|graduation|"
    r"housewarming|baby shower|bridal shower|retirement|halloween|easter|thanksgiving|new year'?s?|prom|"
    r"first day of school|back to school|date night|hen party|stag party|camping trip|ski trip|road trip"
)

_SEASONS = r"summer|winter|spring|autumn|fall|hot weather|cold weather|humid weather"


@dataclass(frozen=True)
class Rule:
    """One cue: ``pattern`` (a regex over the lower-cased, space-normalised query) means ``qtype``."""

    name: str
    qtype: QueryType
    pattern: re.Pattern[str]


def _r(name: str, qtype: QueryType, pattern: str) -> Rule:
    return Rule(name, qtype, re.compile(pattern))


RULES: tuple[Rule, ...] = (
    # --- qa: questions, and requests for instructions or advice
    _r("question_mark", "qa", r"\?"),
    _r("wh_start", "qa", r"^(?:what|whats|what's|how|which|why|where|when|who|whom|whose)\b"),
    _r("aux_start", "qa", rf"^(?:can|could|should|do|does|did|is|are|will|would|shall|may|must)\s+{_PRONOUN}\b"),
    _r("how_to", "qa", r"\b(?:how to|how do|how can|how much|how many|how long|how often)\b"),
    _r("what_to", "qa", r"\b(?:what (?:to|do|does|is|are|should|can|kind|type|size|sort)|which (?:one|is|are|should))\b"),
    _r("advice", "qa", r"\b(?:best way to|ways? to|tips (?:for|on)|need to (?:know|hang|fix|buy|get))\b"),
    # --- negative: an excluded attribute
    _r("without", "negative", r"\b(?:without|w/o|minus|excluding|except)\b"),
    _r("not", "negative", r"\b(?:not|isn't|isnt|aren't|arent|doesn't|doesnt|don't|dont|won't|wont|never)\b"),
    _r("no", "negative", r"(?:^|\s)no\s+(?![0-9#.])\w"),
    # lexicalised "non-" words name a product property, not an exclusion ("non-stick pan")
    _r("non", "negative", r"(?:^|[\s(])non(?:-|\s)?(?!(?:stop|profit|stick|slip|skid|woven)\b)[a-z]{3,}"),
    _r("free_of", "negative",
       r"\b(?!(?:hands|toll|duty|tax|care|fancy|post|for|buy|get|feel|set|and|or|with|a|the|100%|is|gift|shipping)\b)"
       r"[a-z0-9%]+(?:-|\s)free\b(?![-\s]*(?:standing|stand|shipping|gift|sample|trial|delivery|returns?|weights?|range|style|form|flow|fall|"
       r"hand|handed|throw|wheel|wheeling|spirit|people)\b)"),
    # --- alternative: something instead of a named product or brand
    _r("alternative_to", "alternative", r"\b(?:alternatives?|substitute|substitutes|replacement) (?:to|for) (?:a |an |the )?(?:[a-z]+ )?[a-z]"),
    _r("alternative", "alternative", r"\b(?:alternatives?|dupes?|knock[- ]?offs?|look[- ]?alikes?)\b"),
    _r("instead_of", "alternative", r"\b(?:instead of|rather than|in place of|other than)\b"),
    _r("similar", "alternative", r"\b(?:similar to|similar as|comparable to|equivalent (?:to|of)|same as|cheaper than|cheaper version)\b"),
    _r("cheaper_than", "alternative",
       r"\b(?:cheaper|less expensive|more affordable|budget|lower priced)\b.*\bth(?:an|n|na|en)\b|\bbut cheaper\b"),
    _r("versus", "alternative", r"\b(?:vs\.?|versus|compared to|or similar)\b"),
    _r("like", "alternative",
       r"(?<!\blook )(?<!\blooks )(?<!\blooking )(?<!\bfeel )(?<!\bfeels )(?<!\bsmell )(?<!\bsmells )"
       r"(?<!\bwho )(?<!\bi )(?<!\byou )(?<!\bwe )(?<!\bthey )(?<!\bwould )(?<!\bkids )(?<!\bthat )"
       r"\blike\b(?! new\b)(?=\s+\S)"),
    # --- knowledge: the need, not the product, is named
    _r("gift", "knowledge", r"\b(?:gifts?|presents?(?! tense)|stocking stuffers?|secret santa|party favou?rs?)\b(?! card| wrap| bag| box| tag)"),
    # an occasion the shopper shops *for*; "christmas tree" or "wedding dress" alone names a product
    _r("occasion", "knowledge",
       rf"\bfor (?:a |an |my |our |the |her |his )?(?:{_OCCASIONS})\b|\b(?:{_OCCASIONS}) (?:gifts?|presents?|ideas?)\b"),
    # conversational ages ("5 year old"); "ages 6-8" is catalogue language for an attribute value
    _r("age", "knowledge", r"\b\d{1,2}[- ]?(?:year|yr|month|mo)s?[- ]?olds?\b|\b\d{1,2} ?yo\b"),
    _r("interest", "knowledge", r"\b\w+[- ]loving\b|\bwho (?:loves?|likes?|is into|enjoys?|is obsessed)\b|\bobsessed with\b|\b\w+ lovers?\b|\bfan of\b|\binto \w+ing\b"),
    _r("for_someone", "knowledge", r"\bfor (?:a|an|my|our|your|his|her|someone|somebody|people|beginners?|kids who|someone who|people who)\b"),
    _r("best_for", "knowledge", r"\b(?:best|good|recommended|ideal|suitable|right)\b.*\bfor\b|^(?:the |r )?best\b"),
    _r("something", "knowledge", r"\b(?:something|anything|stuff|things?) (?:to|for|that)\b"),
    _r("keeps", "knowledge", r"\b(?:keeps?|stays?|keeping) (?:\w+ )?(?:hot|cold|warm|cool|dry|fresh|clean|safe|quiet)\b|\bto keep\b"),
    _r("condition", "knowledge",
       r"\bfor (?:\w+ )?(?:acne[- ]prone|frizzy|thinning|greasy|damaged|itchy|sore|pale|bad|side|back|stomach|"
       r"hot|cold|rainy|snowy|humid|wet|windy|summer|winter|spring|autumn|fall|small spaces?|tight spaces?|"
       r"sleepers?|allergies|allergy|arthritis|pain|the (?:gym|beach|pool|office|commute|outdoors|road|trail))\b"
       r"|\bin (?:hot|cold|humid|wet|rainy|snowy|freezing|warm) weather\b|\bin (?:the )?(?:summer|winter|rain|snow|heat)\b"),
    # "summer moisturizer for oily skin": a season that changes which product suits a skin or hair type
    _r("season_condition", "knowledge",
       rf"\b(?:{_SEASONS})\b.*\bfor (?:\w+ ){{0,2}}(?:skin|hair|feet|sleepers)\b"
       rf"|\bfor (?:\w+ ){{0,2}}(?:skin|hair|feet|sleepers)\b.*\b(?:{_SEASONS})\b"),
    _r("for_activity", "knowledge",
       rf"\bfor (?!(?:{_ING_NOUNS})\b)[a-z]+ing\b(?!\s+(?:pools?|trunks?|costumes?|suits?|caps?|goggles|"
       r"machines?|tables?|rooms?|bags?|kits?|supplies|boards?|lines?|gloves|poles?|rods?)\b)"),
    _r("that_does", "knowledge",
       r"\b(?:that|which) (?:can|will|works?|goes|go|does|do|is good|are good|picks? up|lasts?|fits?|holds?|"
       r"won't|wont|doesn't|doesnt|helps?|makes?|stops?|prevents?)\b"),
    _r("task_start", "knowledge",
       r"^(?:hanging|fixing|repairing|installing|cleaning|removing|painting|mounting|making|cooking|growing|"
       r"getting rid|storing|organi[sz]ing|moving|protecting|stopping|preventing|soundproofing|insulating)"
       r"\s+(?:of\s+)?(?:a|an|the|my|our|your|some|heavy|big|large|old)\b"),
)


@dataclass(frozen=True)
class TypeTag:
    """The rule tagger's verdict on one query."""

    query_type: QueryType
    tags: tuple[QueryType, ...]  # every type whose cue fired, in priority order
    rules: tuple[str, ...]  # names of the rules that fired, "type:rule"

    @property
    def reason(self) -> str:
        return ", ".join(self.rules) if self.rules else "no cue: plain"


def normalise(text: str) -> str:
    """Lower-case, typographic quotes to ASCII, whitespace collapsed: what the rules see."""
    text = str(text).lower().replace("’", "'").replace("‘", "'").replace("“", '"').replace("”", '"')
    return re.sub(r"\s+", " ", text).strip()


def tag_query(text: str, rules: Sequence[Rule] = RULES) -> TypeTag:
    """Type one query by rules; see the module docstring for the types and their priority."""
    norm = normalise(text)
    fired = [rule for rule in rules if rule.pattern.search(norm)]
    found = {rule.qtype for rule in fired}
    tags = tuple(t for t in PRIORITY if t in found)
    primary: QueryType = tags[0] if tags else "plain"
    return TypeTag(primary, tags, tuple(f"{r.qtype}:{r.name}" for r in fired))


def tag_queries(texts: Iterable[str], rules: Sequence[Rule] = RULES) -> pd.DataFrame:
    """One row per text: ``query_type``, ``type_tags`` ("|"-joined), ``type_reason``."""
    rows = []
    for text in texts:
        tag = tag_query(text, rules)
        rows.append({"query_type": tag.query_type, "type_tags": "|".join(tag.tags), "type_reason": tag.reason})
    return pd.DataFrame(rows, columns=["query_type", "type_tags", "type_reason"])


_LLM_LABELS: dict[str, QueryType] = {
    "qa": "qa", "q&a": "qa", "question": "qa", "negative": "negative", "negation": "negative",
    "alternative": "alternative", "knowledge": "knowledge", "plain": "plain",
}
_LLM_PROMPT = (
    "Classify an online shop search query into exactly one type:\n"
    "qa - a question or request for advice (\"what do I need to hang a heavy mirror\", \"how to unclog a drain\")\n"
    "negative - excludes an attribute (\"sofa without wood legs\", \"rug not wool\", \"bpa free bottle\")\n"
    "alternative - wants something instead of a named product or brand (\"cheaper alternative to a dyson\")\n"
    "knowledge - names a need, occasion, person or use, not the product (\"gift for a dinosaur-loving 5 year old\", "
    "\"summer moisturizer for oily skin\")\n"
    "plain - names the product (\"cordless drill 20v\", \"white subway tile\")\n"
    "Answer with the type only."
)


class LLMQueryTagger:
    """Query types from an LLM (any :class:`~shopsearch.synthesis.llm.LLMBackend`), greedy decoding.

    An answer naming no type falls back to the rule tagger, and says so in ``type_reason``, so a weak
    model can only disagree with the rules where it answers clearly.
    """

    def __init__(self, backend: LLMBackend, rules: Sequence[Rule] = RULES) -> None:
        self.backend = backend
        self.rules = rules

    def messages(self, text: str) -> list[Message]:
        return [{"role": "system", "content": _LLM_PROMPT}, {"role": "user", "content": f"Query: {text}\nType:"}]

    def tag_queries(self, texts: Sequence[str]) -> pd.DataFrame:
        """Same columns as :func:`tag_queries`; ``type_tags`` still holds every rule cue."""
        answers = chat_batch(self.backend, [self.messages(t) for t in texts], n=1, temperature=0.0, max_tokens=8)
        rows = []
        for text, (answer,) in zip(texts, answers, strict=True):
            rule_tag = tag_query(text, self.rules)
            label = parse_type_label(answer)
            if label is None:
                qtype, reason = rule_tag.query_type, f"llm answer {answer[:40]!r} unparsable; rules: {rule_tag.reason}"
            else:
                qtype, reason = label, f"llm {self.backend.name}: {label}"
            rows.append({"query_type": qtype, "type_tags": "|".join(rule_tag.tags), "type_reason": reason})
        return pd.DataFrame(rows, columns=["query_type", "type_tags", "type_reason"])


def parse_type_label(answer: str) -> QueryType | None:
    """The first type name in an LLM's answer, or None."""
    for word in re.findall(r"[a-z&]+", answer.lower()):
        if word in _LLM_LABELS:
            return _LLM_LABELS[word]
    return None
