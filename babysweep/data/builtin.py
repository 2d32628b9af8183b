"""The built-in corpus: SYNTHETIC child-directed English from a seeded probabilistic grammar.

    folder = build(root, words=250_000, seed=0)   # train/builtin.train, dev/builtin.dev, blimp/*.jsonl
    is_grammatical("The dogs that see the cat are happy.")   # True: the grammar's own recogniser

This corpus exists so that every command runs on a laptop CPU with no download. It is generated
here, not collected: it is not real child-directed speech, and results on it say nothing about
BabyLM. The grammar covers determiners, number agreement (regular and irregular plurals),
pronouns and reflexives, auxiliaries, yes/no and wh-questions, relative clauses, prepositional
phrases, irregular past tenses, imperatives and question/answer turns. Its minimal pairs (BLiMP's
jsonl layout) test agreement across relative clauses and prepositional phrases, reflexives,
irregular forms, auxiliaries and wh-gaps; the same recogniser accepts every good sentence and
rejects every bad one. Same seed and size: same bytes (only random.Random(seed) is used).
"""

from __future__ import annotations

import json
import os
import random
import shutil
import tempfile
from pathlib import Path

GRAMMAR_VERSION = 1

# --------------------------------------------------------------------------- lexicon
# noun: (singular, plural, gender m/f/n, animate)
NOUNS = [
    ("dog", "dogs", "n", True), ("cat", "cats", "n", True), ("bird", "birds", "n", True), ("duck", "ducks", "n", True),
    ("boy", "boys", "m", True), ("girl", "girls", "f", True), ("man", "men", "m", True), ("woman", "women", "f", True),
    ("child", "children", "n", True), ("mouse", "mice", "n", True), ("baby", "babies", "n", True),
    ("teacher", "teachers", "n", True), ("friend", "friends", "n", True), ("bunny", "bunnies", "n", True),
    ("ball", "balls", "n", False), ("book", "books", "n", False), ("cup", "cups", "n", False), ("apple", "apples", "n", False),
    ("box", "boxes", "n", False), ("toy", "toys", "n", False), ("car", "cars", "n", False), ("hat", "hats", "n", False),
    ("cookie", "cookies", "n", False), ("block", "blocks", "n", False), ("spoon", "spoons", "n", False),
    ("shoe", "shoes", "n", False), ("sock", "socks", "n", False), ("tooth", "teeth", "n", False),
    ("foot", "feet", "n", False), ("banana", "bananas", "n", False), ("truck", "trucks", "n", False),
]
PLACES = ["table", "bed", "chair", "box", "tree", "floor", "door", "window", "couch", "rug"]
NAMES = {"Anna": "f", "Lily": "f", "Mommy": "f", "Grandma": "f", "Ben": "m", "Max": "m", "Daddy": "m", "Sam": "m"}
DET_SG = ["the", "a", "this", "that", "my", "your"]
DET_PL = ["the", "these", "those", "some", "my", "your", "two"]
ADJS = ["big", "little", "red", "blue", "happy", "funny", "soft", "new", "old", "sleepy"]
PREPS = ["on", "under", "near", "behind", "in"]
# transitive verb: (base, 3sg, past, bad past made by the -ed rule or None when the past is regular)
TRANSITIVE = [
    ("see", "sees", "saw", "seed"), ("take", "takes", "took", "taked"), ("eat", "eats", "ate", "eated"),
    ("throw", "throws", "threw", "throwed"), ("catch", "catches", "caught", "catched"), ("bring", "brings", "brought", "bringed"),
    ("draw", "draws", "drew", "drawed"), ("make", "makes", "made", "maked"), ("hold", "holds", "held", "holded"),
    ("find", "finds", "found", "finded"), ("like", "likes", "liked", None), ("want", "wants", "wanted", None),
    ("push", "pushes", "pushed", None), ("hug", "hugs", "hugged", None), ("wash", "washes", "washed", None),
    ("kiss", "kisses", "kissed", None), ("help", "helps", "helped", None),
]
INTRANSITIVE = [("run", "runs", "ran"), ("sleep", "sleeps", "slept"), ("sit", "sits", "sat"), ("fall", "falls", "fell"),
                ("swim", "swims", "swam"), ("jump", "jumps", "jumped"), ("laugh", "laughs", "laughed"), ("cry", "cries", "cried"),
                ("play", "plays", "played")]
REFLEXIVE = {("sg", "m"): "himself", ("sg", "f"): "herself", ("sg", "n"): "itself", ("pl", None): "themselves"}
SUBJ_PRONOUNS = {"he": ("sg", "m"), "she": ("sg", "f"), "it": ("sg", "n"), "they": ("pl", None)}
OBJ_PRONOUNS = ["me", "him", "her", "us", "them", "it"]

_NOUN_SG = {n[0]: n for n in NOUNS}
_NOUN_PL = {n[1]: n for n in NOUNS}
_VERB_FORMS = {}
for _v in TRANSITIVE:
    _VERB_FORMS.update({_v[0]: ("t", "base"), _v[1]: ("t", "3sg"), _v[2]: ("t", "past")})
for _v in INTRANSITIVE:
    _VERB_FORMS.update({_v[0]: ("i", "base"), _v[1]: ("i", "3sg"), _v[2]: ("i", "past")})


# --------------------------------------------------------------------------- generator
class Gen:
    def __init__(self, rng: random.Random):
        self.r = rng

    def noun_phrase(self, animate: bool | None = None, number: str | None = None, adj: float = 0.25, pp: float = 0.0, rc: float = 0.0):
        """Returns (words, number, gender)."""
        r = self.r
        pool = [n for n in NOUNS if animate is None or n[3] == animate]
        noun = r.choice(pool)
        number = number or r.choice(["sg", "sg", "pl"])
        words = [r.choice(DET_SG if number == "sg" else DET_PL)]
        if r.random() < adj:
            words.append(r.choice(ADJS))
        words.append(noun[0] if number == "sg" else noun[1])
        if r.random() < pp:
            words += self.prep_phrase()
        elif r.random() < rc:
            words += ["that", *self.verb_agree(r.choice(TRANSITIVE), number, present=True), *self.object()]
        return words, number, noun[2] if number == "sg" else None

    def prep_phrase(self):
        return [self.r.choice(PREPS), "the", self.r.choice(PLACES)]

    def object(self):
        if self.r.random() < 0.15:
            return [self.r.choice(OBJ_PRONOUNS)]
        return self.noun_phrase(animate=None)[0]

    def verb_agree(self, verb, number: str, present: bool):
        if not present:
            return [verb[2]]
        return [verb[1] if number == "sg" else verb[0]]

    def subject(self, **np):
        r = self.r
        roll = r.random()
        if roll < 0.15:
            name = r.choice(sorted(NAMES))
            return [name], "sg", NAMES[name]
        if roll < 0.25:
            pronoun = r.choice(sorted(SUBJ_PRONOUNS))
            return [pronoun], *SUBJ_PRONOUNS[pronoun]
        return self.noun_phrase(animate=True, **np)

    def declarative(self):
        r = self.r
        subj, number, gender = self.subject(pp=0.1, rc=0.15)
        present = r.random() < 0.5
        kind = r.random()
        if kind < 0.45:
            rest = [*self.verb_agree(r.choice(TRANSITIVE), number, present), *self.object()]
            if r.random() < 0.2:
                rest += self.prep_phrase()
        elif kind < 0.65:
            rest = self.verb_agree(r.choice(INTRANSITIVE), number, present)
            if r.random() < 0.4:
                rest += self.prep_phrase()
        elif kind < 0.85:
            cop = ("is" if number == "sg" else "are") if present else ("was" if number == "sg" else "were")
            rest = [cop, r.choice(ADJS)] if r.random() < 0.6 else [cop, *self.prep_phrase()]
        else:
            reflexive = REFLEXIVE[(number, gender if number == "sg" else None)]
            rest = [*self.verb_agree(r.choice(TRANSITIVE), number, present), reflexive]
        return _sentence([*subj, *rest], ".")

    def question(self):
        r = self.r
        kind = r.random()
        subj, number, _ = self.noun_phrase(animate=True, adj=0.2)
        if kind < 0.3:
            return _sentence(["is" if number == "sg" else "are", *subj, r.choice(ADJS)], "?")
        if kind < 0.55:
            return _sentence(["does" if number == "sg" else "do", *subj, r.choice(TRANSITIVE)[0], *self.object()], "?")
        if kind < 0.75:
            return _sentence(["what", r.choice(["did", "can"]), *subj, r.choice(TRANSITIVE)[0]], "?")
        if kind < 0.9:
            return _sentence(["who", *self.verb_agree(r.choice(TRANSITIVE), "sg", r.random() < 0.5), *self.object()], "?")
        return _sentence(["where", "is" if number == "sg" else "are", *subj], "?")

    def imperative(self):
        r = self.r
        if r.random() < 0.4:
            return _sentence(["look", "at", *self.noun_phrase(adj=0.5)[0]], "!")
        return _sentence([r.choice(TRANSITIVE)[0], *self.object(), *(self.prep_phrase() if r.random() < 0.3 else [])], r.choice([".", "!"]))

    def turn(self) -> list[str]:
        """One or two lines: a statement, a question with its answer, or an imperative."""
        roll = self.r.random()
        if roll < 0.55:
            return [self.declarative()]
        if roll < 0.85:
            return [self.question(), self.r.choice(["Yes.", "No.", self.declarative()])]
        return [self.imperative()]


def _sentence(words: list[str], end: str) -> str:
    text = " ".join(words)
    return text[0].upper() + text[1:] + end


def generate_text(words: int, seed: int) -> str:
    gen = Gen(random.Random(seed))
    lines, count = [], 0
    while count < words:
        for line in gen.turn():
            lines.append(line)
            count += len(line.split())
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------- minimal pairs
PARADIGMS = {
    # uid: (field, linguistics_term)
    "determiner_noun_agreement": ("morphology", "determiner_noun_agreement"),
    "subject_verb_agreement": ("morphology", "subject_verb_agreement"),
    "agreement_across_relative_clause": ("morphology", "subject_verb_agreement"),
    "agreement_across_prepositional_phrase": ("morphology", "subject_verb_agreement"),
    "irregular_plural_agreement": ("morphology", "subject_verb_agreement"),
    "anaphor_number_agreement": ("morphology", "anaphor_agreement"),
    "irregular_past_tense": ("morphology", "irregular_forms"),
    "auxiliary_agreement_question": ("syntax", "question_formation"),
    "wh_question_gap": ("syntax", "filler_gap_dependency"),
}
_IRREGULAR_PL = [n for n in NOUNS if n[3] and not n[1].endswith("s")]


def _pair(gen: Gen, uid: str) -> tuple[str, str]:
    r = gen.r
    other = {"sg": "pl", "pl": "sg"}
    if uid == "determiner_noun_agreement":
        number = r.choice(["sg", "pl"])
        det = r.choice(["this", "that"] if number == "sg" else ["these", "those"])
        swap = {"this": "these", "that": "those", "these": "this", "those": "that"}[det]
        noun = r.choice(NOUNS)
        n = noun[0] if number == "sg" else noun[1]
        head = [r.choice(sorted(NAMES)), r.choice(TRANSITIVE)[2]]
        return _sentence([*head, det, n], "."), _sentence([*head, swap, n], ".")
    if uid in ("subject_verb_agreement", "agreement_across_relative_clause", "agreement_across_prepositional_phrase", "irregular_plural_agreement"):
        number = r.choice(["sg", "pl"])
        if uid == "irregular_plural_agreement":
            noun = r.choice(_IRREGULAR_PL)
            subj = [r.choice(["the", "my"]), noun[0] if number == "sg" else noun[1]]
        else:
            subj = gen.noun_phrase(animate=True, number=number, adj=0.2)[0]
        if uid == "agreement_across_relative_clause":  # the attractor inside the clause has the other number
            subj += ["that", *gen.verb_agree(r.choice(TRANSITIVE), number, True), *gen.noun_phrase(number=other[number], adj=0)[0]]
        if uid == "agreement_across_prepositional_phrase":
            subj += [r.choice(PREPS), "the", r.choice(PLACES)]
        if r.random() < 0.5:
            good, bad = ("is", "are") if number == "sg" else ("are", "is")
            tail = [r.choice(ADJS)]
        else:
            verb = r.choice(TRANSITIVE)
            good, bad = (verb[1], verb[0]) if number == "sg" else (verb[0], verb[1])
            tail = gen.object()
        return _sentence([*subj, good, *tail], "."), _sentence([*subj, bad, *tail], ".")
    if uid == "anaphor_number_agreement":
        number = r.choice(["sg", "pl"])
        subj, number, gender = gen.noun_phrase(animate=True, number=number, adj=0)
        good = REFLEXIVE[(number, gender if number == "sg" else None)]
        bad = "themselves" if number == "sg" else REFLEXIVE[("sg", r.choice(["m", "f"]))]
        verb = gen.verb_agree(r.choice(TRANSITIVE), number, r.random() < 0.5)
        return _sentence([*subj, *verb, good], "."), _sentence([*subj, *verb, bad], ".")
    if uid == "irregular_past_tense":
        verb = r.choice([v for v in TRANSITIVE if v[3]])
        subj, obj = gen.subject(adj=0.2)[0], gen.object()
        return _sentence([*subj, verb[2], *obj], "."), _sentence([*subj, verb[3], *obj], ".")
    if uid == "auxiliary_agreement_question":
        subj, number, _ = gen.noun_phrase(animate=True, adj=0.2)
        good, bad = ("is", "are") if number == "sg" else ("are", "is")
        adj = r.choice(ADJS)
        return _sentence([good, *subj, adj], "?"), _sentence([bad, *subj, adj], "?")
    if uid == "wh_question_gap":
        subj = gen.noun_phrase(animate=True, adj=0.2)[0]
        aux, verb = r.choice(["did", "can"]), r.choice(TRANSITIVE)[0]
        return _sentence(["what", aux, *subj, verb], "?"), _sentence(["what", aux, *subj, verb, *gen.noun_phrase(adj=0)[0]], "?")
    raise KeyError(uid)


def generate_pairs(pairs_per_paradigm: int, seed: int) -> dict[str, list[dict]]:
    gen = Gen(random.Random(f"pairs-{seed}"))
    out = {}
    for uid, (field, term) in PARADIGMS.items():
        rows, seen = [], set()
        attempts = 0
        while len(rows) < pairs_per_paradigm and attempts < pairs_per_paradigm * 50:
            attempts += 1
            good, bad = _pair(gen, uid)
            if good == bad or (good, bad) in seen:
                continue
            seen.add((good, bad))
            rows.append({"sentence_good": good, "sentence_bad": bad, "field": field, "linguistics_term": term,
                         "UID": uid, "pairID": str(len(rows))})
        out[uid] = rows
    return out


# --------------------------------------------------------------------------- recogniser
def _np(words: list[str], i: int, allow_rc: bool = True):
    """Parses a noun phrase at i; yields (next index, number, gender) for every parse."""
    if i >= len(words):
        return
    w = words[i]
    if w in NAMES:
        yield i + 1, "sg", NAMES[w]
        return
    if w in SUBJ_PRONOUNS:
        yield i + 1, *SUBJ_PRONOUNS[w]
        return
    for number, dets in (("sg", DET_SG), ("pl", DET_PL)):
        if w not in dets:
            continue
        j = i + 1
        if j < len(words) and words[j] in ADJS:
            j += 1
        if j >= len(words):
            continue
        noun = (_NOUN_SG if number == "sg" else _NOUN_PL).get(words[j])
        if noun is None:
            continue
        gender = noun[2] if number == "sg" else None
        yield j + 1, number, gender
        if j + 3 < len(words) + 0 and words[j + 1] in PREPS and words[j + 2] == "the" and words[j + 3] in PLACES:
            yield j + 4, number, gender
        if allow_rc and j + 2 < len(words) and words[j + 1] == "that" and _agrees(words[j + 2], number, present_only=True, kind="t"):
            for k in _object(words, j + 3):
                yield k, number, gender


def _object(words, i):
    if i < len(words) and words[i] in OBJ_PRONOUNS:
        yield i + 1
    if i < len(words) and words[i] not in SUBJ_PRONOUNS:
        for k, _, _ in _np(words, i, allow_rc=False):
            yield k


def _agrees(word: str, number: str, present_only: bool = False, kind: str | None = None) -> bool:
    form = _VERB_FORMS.get(word)
    if form is None or (kind and form[0] != kind):
        return False
    if form[1] == "past":
        return not present_only
    return form[1] == ("3sg" if number == "sg" else "base")


def _pp(words, i):
    return i + 3 if i + 2 < len(words) and words[i] in PREPS and words[i + 1] == "the" and words[i + 2] in PLACES else None


def _predicate(words, i, number, gender) -> bool:
    """Does words[i:] form a verb phrase agreeing with a subject of this number and gender?"""
    if i >= len(words):
        return False
    w, rest = words[i], i + 1
    if w in ("is", "was", "are", "were"):
        if (w in ("is", "was")) != (number == "sg"):
            return False
        return (rest + 1 == len(words) and words[rest] in ADJS) or _pp(words, rest) == len(words)
    if not _agrees(w, number):
        return False
    if _VERB_FORMS[w][0] == "i":
        return rest == len(words) or _pp(words, rest) == len(words)
    if rest + 1 == len(words) and words[rest] in REFLEXIVE.values():
        return words[rest] == REFLEXIVE[(number, gender if number == "sg" else None)]
    return any(k == len(words) or _pp(words, k) == len(words) for k in _object(words, rest))


def _words(sentence: str) -> tuple[list[str], str]:
    end = sentence[-1] if sentence and sentence[-1] in ".?!" else ""
    words = sentence[: len(sentence) - len(end)].split()
    if words and words[0] not in NAMES:
        words[0] = words[0].lower()
    return words, end


def is_grammatical(sentence: str) -> bool:
    """The grammar's recogniser: True for every sentence the generator can produce, False otherwise."""
    if sentence in ("Yes.", "No."):
        return True
    words, end = _words(sentence)
    if not words or not end:
        return False
    if end == "?":
        return _question(words)
    if words[0] == "look" and len(words) > 2 and words[1] == "at":
        return end == "!" and any(k == len(words) for k, _, _ in _np(words, 2, allow_rc=False))
    if _VERB_FORMS.get(words[0]) == ("t", "base"):  # imperative
        return any(k == len(words) or _pp(words, k) == len(words) for k in _object(words, 1))
    return end == "." and any(_predicate(words, k, n, g) for k, n, g in _np(words, 0))


def _question(words) -> bool:
    first = words[0]
    if first in ("is", "are"):
        number = "sg" if first == "is" else "pl"
        if words[-1] in ADJS:
            return any(k == len(words) - 1 and n == number for k, n, _ in _np(words, 1, allow_rc=False))
        return False
    if first in ("does", "do"):
        number = "sg" if first == "does" else "pl"
        for k, n, _ in _np(words, 1, allow_rc=False):
            if n == number and k < len(words) and _VERB_FORMS.get(words[k]) == ("t", "base") and any(m == len(words) for m in _object(words, k + 1)):
                return True
        return False
    if first == "what" and len(words) > 2 and words[1] in ("did", "can"):
        return any(k == len(words) - 1 and _VERB_FORMS.get(words[-1]) == ("t", "base") for k, _, _ in _np(words, 2, allow_rc=False))
    if first == "who" and len(words) > 1:
        return _agrees(words[1], "sg", kind="t") and any(k == len(words) for k in _object(words, 2))
    if first == "where" and len(words) > 2 and words[1] in ("is", "are"):
        number = "sg" if words[1] == "is" else "pl"
        return any(k == len(words) and n == number for k, n, _ in _np(words, 2, allow_rc=False))
    return False


# --------------------------------------------------------------------------- on disk
def build(root: str | Path, words: int = 250_000, seed: int = 0, pairs_per_paradigm: int = 200) -> Path:
    """Write the corpus and its pairs once; later calls return the finished folder."""
    root = Path(root)
    folder = root / f"builtin-v{GRAMMAR_VERSION}-w{words}-s{seed}-p{pairs_per_paradigm}"
    if (folder / "README.txt").is_file():
        return folder
    root.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".tmp-", dir=root))
    (tmp / "train").mkdir()
    (tmp / "dev").mkdir()
    (tmp / "blimp").mkdir()
    (tmp / "train" / "builtin.train").write_text(generate_text(words, seed))
    (tmp / "dev" / "builtin.dev").write_text(generate_text(max(words // 10, 100), seed + 1_000_003))
    for uid, rows in generate_pairs(pairs_per_paradigm, seed).items():
        (tmp / "blimp" / f"{uid}.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    (tmp / "README.txt").write_text(
        f"SYNTHETIC corpus generated by babysweep's built-in grammar (version {GRAMMAR_VERSION}), seed {seed}, "
        f"{words} training words, {pairs_per_paradigm} minimal pairs per paradigm.\n"
        "It is not real child-directed speech; it exists so that babysweep runs without a download.\n")
    try:
        os.replace(tmp, folder)  # atomic; another process may have finished first
    except OSError:
        shutil.rmtree(tmp, ignore_errors=True)
    return folder
