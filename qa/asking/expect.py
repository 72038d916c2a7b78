"""What a question asks for: a person, a date, a number, a thing, an explanation, yes or no...

Read with rules from the question's own words, so asking parses nothing with a model. The
labels are those the index-time entity tagger gives spans (spaCy's OntoNotes labels, plus
"NP" for a noun phrase that is not a named entity).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace

PERSON = frozenset({"PERSON", "ORG", "NORP", "GPE"})
PLACE = frozenset({"GPE", "LOC", "FAC", "ORG"})
DATE = frozenset({"DATE", "TIME"})
NUMBER = frozenset({"CARDINAL", "QUANTITY", "MONEY", "PERCENT"})
MONEY = frozenset({"MONEY", "CARDINAL"})
PERCENT = frozenset({"PERCENT"})
DURATION = frozenset({"DATE", "TIME", "QUANTITY", "CARDINAL"})
GROUP = frozenset({"ORG", "NORP", "GPE"})
ANY_SPAN: frozenset[str] = frozenset()  # any entity or noun phrase

# Question kinds whose answer is a span of a given type (the rest are explanations or yes/no).
TYPED = ("person", "place", "date", "number", "money", "percent", "duration", "group")

# The noun after "what"/"which" says the type: "what year", "which city", "what group".
_HEAD_NOUNS = {
    "person": "person man woman men women king queen leader president ruler scientist author "
    "writer player founder minister official lawmaker general emperor duke pope inventor "
    "politician artist composer poet architect actor singer chancellor governor mayor "
    "senator spokesman spokeswoman diplomat cleric philosopher son daughter father mother",
    "group": "group organisation organization company team party agency militia university "
    "school institution committee commission outlet newspaper network band club firm "
    "department ministry army force tribe dynasty family people population nationality "
    "religion ethnicity government council",
    "place": "country city state nation region area place town county continent island river "
    "mountain location province capital village territory site district border coast "
    "neighborhood neighbourhood",
    "date": "year years century centuries decade date time period month day era age season",
    "number": "number amount percentage quantity size population",
    "money": "price cost sum salary revenue budget fee",
    "percent": "percent percentage share proportion rate",
}
PERSON_NOUNS = frozenset(_HEAD_NOUNS["person"].split()) | {"source", "spokesperson"}
_HEAD = {word: kind for kind, words in _HEAD_NOUNS.items() for word in words.split()}
_LABELS = {
    "person": PERSON,
    "place": PLACE,
    "date": DATE,
    "number": NUMBER,
    "money": MONEY,
    "percent": PERCENT,
    "duration": DURATION,
    "group": GROUP,
    "thing": ANY_SPAN,
    "definition": ANY_SPAN,
}
_PRIMARY = {
    "person": frozenset({"PERSON"}),
    "place": frozenset({"GPE", "LOC", "FAC"}),
    "number": frozenset({"CARDINAL", "QUANTITY"}),
    "money": frozenset({"MONEY"}),
    "duration": frozenset({"DATE", "TIME"}),
    "group": frozenset({"ORG", "NORP"}),
}
_AUX = frozenset(
    "is are was were do does did has have had can could will would should may might must".split()
)
_HOW = {
    "many": "number",
    "much": "money",
    "long": "duration",
    "old": "number",
    "far": "number",
    "large": "number",
    "big": "number",
    "tall": "number",
    "high": "number",
    "often": "duration",
    "wide": "number",
    "deep": "number",
    "heavy": "number",
}
_WORD = re.compile(r"[\w'-]+")
_SAY = re.compile(r"\bwhat (did|does|do|has|have|had) .+ (say|said|tell|told|state|stated)\b")


@dataclass(frozen=True)
class Expected:
    """The kind of answer a question wants and the span labels that can be it."""

    kind: str  # one of TYPED, "thing", "definition", "explanation", "statement", "yesno"
    labels: frozenset[str]  # span labels that answer it; empty = any span (thing, definition)
    subject: str = ""  # for "who is X?" / "what is X?": X
    head: str = ""  # the noun a "what X"/"which X" question names ("group"), lower case
    describes: str = ""  # "Who is Turkey's defence minister?": what the answer must be

    @property
    def primary(self) -> frozenset[str]:
        """The labels that fit best ("who": a person before an organisation)."""
        return _PRIMARY.get(self.kind, self.labels)

    @property
    def short(self) -> bool:
        """Whether a short span can answer it (explanations, statements and yes/no cannot)."""
        return self.kind not in ("explanation", "statement", "yesno")

    @property
    def typed(self) -> bool:
        return self.kind in TYPED


def expect(question: str) -> Expected:
    """What `question` asks for, read from its wh-word and the noun that follows it."""
    q = question.strip().rstrip("?!. ").strip()
    low = q.lower()
    words = _WORD.findall(low)
    if not words:
        return Expected("thing", ANY_SPAN)
    if re.search(r"\bwhy\b|\bhow come\b|\bfor what reason\b|\bwhat (is|was) the reason", low):
        return Expected("explanation", ANY_SPAN)
    if _SAY.search(low):
        return Expected("statement", ANY_SPAN)
    how = re.search(r"\bhow (\w+)", low)
    if how:
        kind = _HOW.get(how.group(1))
        if kind is None:  # "how does", "how did": a manner or a process
            return Expected("explanation", ANY_SPAN)
        if kind == "money" and re.search(r"\bhow much time\b", low):
            kind = "duration"
        elif kind == "money" and not re.search(r"\b(cost|costs|pay|paid|price|worth|spend)", low):
            kind = "number"
        return Expected(kind, _LABELS[kind])
    if re.search(r"\bwhen\b", low):
        return Expected("date", DATE)
    if re.search(r"\bwhere\b", low):
        return Expected("place", PLACE)
    definition = re.fullmatch(
        r"(who|what) (is|are|was|were) ((?:the |an? )?[A-Z][\w.'’ -]*)", q, re.I
    )
    if definition and _names_something(definition.group(3)):
        return Expected("definition", ANY_SPAN, subject=definition.group(3))
    if definition and definition.group(1).lower() == "who":
        # "Who is Turkey's defence minister?": the answer must be someone so described.
        return replace(_by_wh(low, words), describes=definition.group(3))
    return _by_wh(low, words)


def _by_wh(low: str, words: list[str]) -> Expected:
    if re.search(r"\b(who|whom|whose)\b", low):
        return Expected("person", PERSON)
    head = _head_noun(words)
    if head is not None:
        kind = _HEAD.get(head) or _HEAD.get(head.rstrip("s")) or "thing"
        return Expected(kind, _LABELS[kind], head=head)
    if words[0] in _AUX:
        return Expected("yesno", ANY_SPAN)
    return Expected("thing", ANY_SPAN)


def _names_something(text: str) -> bool:
    """A proper name ("Conkar", "the YPG"), not a description ("the capital of France")."""
    tokens = text.split()
    body = [t for t in tokens if t.lower() not in ("the", "a", "an")]
    return 0 < len(body) <= 4 and all(t[:1].isupper() or t[:1].isdigit() for t in body)


def _head_noun(words: list[str]) -> str | None:
    """The noun a "what"/"which" question is about: "what group does..." -> "group",
    "what kind of activity" -> "activity", "what is the name of the law" -> "law"."""
    text = " ".join(words)
    named = re.search(
        r"\b(?:what|which) (?:is|was|are|were) the (\w+) (?:of|for) (?:the |an? )?(\w+)", text
    )
    if named:
        return named.group(2) if named.group(1) in ("name", "term", "title") else named.group(1)
    # "what is the largest city in...", "which of the three populated areas has...": the noun
    # before the first preposition, participle or verb.
    described = _DESCRIBED.search(text) or _ONE_OF.search(text)
    if described:
        return described.group(1)
    for n, word in enumerate(words):
        if word not in ("what", "which"):
            continue
        after = words[n + 1 : n + 4]
        if not after or after[0] in _AUX or after[0] in _NOT_HEAD:
            return None
        if after[0] in ("kind", "type", "sort", "form") and len(after) > 2 and after[1] == "of":
            return after[2]
        while len(after) > 1 and (after[0] in _MODIFIERS or after[0].endswith("ly")):
            after = after[1:]  # "what other area", "what commonly used system"
        return after[0]
    return None


_NOT_HEAD = frozenset("of in to for on at by from with about as the a an".split())
_MODIFIERS = frozenset("other another used most more main".split())
_DESCRIBED = re.compile(
    r"\b(?:what|which) (?:is|was|are|were) (?:the|an?) (?:\w+ ){0,4}?(\w+)"
    r"(?: (?:of|in|for|that|to|on|at|by|from|with|which|who|\w+ed)\b|$)"
)
_ONE_OF = re.compile(
    r"\b(?:what|which) of (?:the|these|those) (?:\w+ ){0,3}?(\w+) "
    r"(?:is|are|was|were|has|have|had|do|does|did)\b"
)
