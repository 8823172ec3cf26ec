"""Small synthetic languages for the tiny transformer LM, generated offline from a seed.

Each language has its own vocabulary (made from its own syllables), word order and morphology,
but all of them are written in one shared alphabet, so a model that learns one of them uses the
same embeddings and output units for the others: that sharing is what makes them interfere.

- ``french``: subject-verb-object; articles and adjectives agree with the noun's gender and number
  ("la maison blanche", "les chats noirs"); verbs agree with the subject.
- ``japanese``: subject-object-verb; consonant-vowel syllables; particles mark roles ("wa", "o",
  "ni"); verbs end in polite endings ("-masu", "-mashita", "-masen"); no articles, no plural.
- ``general`` and ``clinical``: a general-purpose language and a narrow domain register of it
  (shared function words, a jargon vocabulary, rigid report templates), for the capstone's
  "general model becomes a domain specialist" story.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cache

import numpy as np
import torch
from torch import Tensor

from .checks import check_choice, check_number, check_positive_int
from .seeding import get_seed

ALPHABET = "\n .abcdefghijklmnopqrstuvwxyz"
LANGUAGE_NAMES = ("french", "japanese", "general", "clinical")


# ---------------------------------------------------------------------------------------------
# Tokenizer and batching
# ---------------------------------------------------------------------------------------------


class CharTokenizer:
    """Characters <-> integer ids over a fixed alphabet (shared by every language)."""

    def __init__(self, alphabet: str = ALPHABET):
        if len(set(alphabet)) != len(alphabet) or not alphabet:
            raise ValueError("alphabet must be a non-empty string of distinct characters")
        self.alphabet = alphabet
        self.stoi = {ch: i for i, ch in enumerate(alphabet)}

    def __repr__(self) -> str:
        return f"CharTokenizer({self.alphabet!r})"

    @property
    def vocab_size(self) -> int:
        return len(self.alphabet)

    def encode(self, text: str) -> Tensor:
        """``text`` -> (len(text),) int64 ids. Raises ValueError on a character outside the alphabet."""
        if not isinstance(text, str):
            raise TypeError(f"text must be a str, got {type(text).__name__}")
        try:
            return torch.tensor([self.stoi[ch] for ch in text], dtype=torch.int64)
        except KeyError as err:
            raise ValueError(f"character {err.args[0]!r} is not in the alphabet {self.alphabet!r}") from None

    def decode(self, ids: Tensor | Sequence[int]) -> str:
        """(T,) ids -> text."""
        ids = ids.tolist() if isinstance(ids, Tensor) else list(ids)
        if any(not 0 <= i < len(self.alphabet) for i in ids):
            raise ValueError(f"ids must lie in [0, {len(self.alphabet)})")
        return "".join(self.alphabet[i] for i in ids)


def lm_batch(tokens: Tensor, batch_size: int, block_size: int, generator: torch.Generator) -> tuple[Tensor, Tensor]:
    """A random batch of windows: ``x`` (B, T) and the next-character targets ``y`` (B, T)."""
    _check_tokens(tokens, block_size)
    check_positive_int("batch_size", batch_size)
    starts = torch.randint(len(tokens) - block_size, (batch_size,), generator=generator)
    offsets = torch.arange(block_size)
    idx = (starts[:, None] + offsets[None, :]).to(tokens.device)
    return tokens[idx], tokens[idx + 1]


def lm_windows(tokens: Tensor, block_size: int, max_windows: int | None = None) -> tuple[Tensor, Tensor]:
    """Non-overlapping windows covering ``tokens`` in order (deterministic, for evaluation).

    Returns ``x`` and ``y`` of shape (num_windows, block_size).
    """
    _check_tokens(tokens, block_size)
    check_positive_int("max_windows", max_windows, allow_none=True)
    num = (len(tokens) - 1) // block_size
    if max_windows is not None:
        num = min(num, max_windows)
    x = tokens[: num * block_size].view(num, block_size)
    y = tokens[1 : num * block_size + 1].view(num, block_size)
    return x, y


def _check_tokens(tokens: Tensor, block_size: int) -> None:
    if not isinstance(tokens, Tensor) or tokens.ndim != 1 or tokens.dtype != torch.int64:
        raise TypeError("tokens must be a 1-D int64 tensor of character ids")
    check_positive_int("block_size", block_size)
    if len(tokens) <= block_size:
        raise ValueError(f"need more than block_size={block_size} tokens, got {len(tokens)}")


# ---------------------------------------------------------------------------------------------
# Word makers: each language builds its words from its own syllables
# ---------------------------------------------------------------------------------------------


def _make_words(rng: np.random.Generator, syllables: Sequence[str], count: int,
                min_syl: int, max_syl: int, suffixes: Sequence[str] = ("",), taken: set[str] | None = None) -> list[str]:
    taken = set() if taken is None else taken
    words: list[str] = []
    while len(words) < count:
        n = int(rng.integers(min_syl, max_syl + 1))
        word = "".join(rng.choice(syllables) for _ in range(n)) + str(rng.choice(suffixes))
        if word not in taken and len(word) >= 2:
            taken.add(word)
            words.append(word)
    return words


def _syllables(onsets: Sequence[str], vowels: Sequence[str], codas: Sequence[str]) -> list[str]:
    return [o + v + c for o in onsets for v in vowels for c in codas]


ROMANCE_SYLLABLES = _syllables(
    ["b", "c", "d", "f", "g", "l", "m", "n", "p", "r", "s", "t", "v", "ch", "gr", "pl", "tr", "br"],
    ["a", "e", "i", "o", "u", "ou", "ai", "eau", "ei", "an", "on"],
    ["", "", "", "r", "s", "l"],
)
JAPONIC_SYLLABLES = _syllables(
    ["k", "s", "t", "n", "h", "m", "y", "r", "w", "g", "sh", "ch", ""],
    ["a", "i", "u", "e", "o"],
    ["", "", "", "", "n"],
)
CLINICAL_SYLLABLES = _syllables(
    ["c", "d", "f", "l", "m", "n", "p", "r", "t", "th", "ph", "st", "x"],
    ["a", "e", "i", "o", "y"],
    ["", "", "n", "r"],
)


@dataclass(repr=False)
class Language:
    """A generated language: its lexicon and a sentence sampler.

    ``sentence(rng)`` draws one sentence (a str ending in ".\\n"); ``text(num_sentences, seed)``
    draws many. ``vocab_fraction`` < 1 restricts sampling to the most frequent part of the
    lexicon (a *narrow* corpus); ``templates`` restricts the sentence patterns.
    """

    name: str
    word_order: str
    lexicon: dict[str, list[str]]
    templates: tuple[str, ...]
    genders: dict[str, str] = field(default_factory=dict)

    def __repr__(self) -> str:
        sizes = ", ".join(f"{kind} {len(words)}" for kind, words in self.lexicon.items())
        return (f"Language({self.name!r}, {self.word_order}, {sum(map(len, self.lexicon.values()))} words "
                f"({sizes}), templates {self.templates})")

    # -- sampling helpers ------------------------------------------------------------------
    def _word(self, rng: np.random.Generator, kind: str, vocab_fraction: float) -> str:
        words = self.lexicon[kind]
        k = max(1, int(round(len(words) * vocab_fraction)))
        ranks = np.arange(1, k + 1)
        p = 1.0 / ranks  # Zipf's law: a few words are common, most are rare
        return words[int(rng.choice(k, p=p / p.sum()))]

    def sentence(self, rng: np.random.Generator, vocab_fraction: float = 1.0,
                 templates: Sequence[str] | None = None) -> str:
        check_number("vocab_fraction", vocab_fraction, low=0.0, high=1.0, low_open=True)
        pool = tuple(templates) if templates is not None else self.templates
        unknown = set(pool) - set(self.templates)
        if not pool or unknown:
            raise ValueError(f"templates must be a non-empty subset of {self.templates}")
        template = str(rng.choice(pool))
        builder = _BUILDERS[self.word_order]
        return builder(self, rng, template, vocab_fraction) + ".\n"

    def text(self, num_sentences: int, seed: int | None = None, vocab_fraction: float = 1.0,
             templates: Sequence[str] | None = None) -> str:
        """``num_sentences`` sentences drawn with ``seed`` (same seed, same text)."""
        check_positive_int("num_sentences", num_sentences)
        rng = np.random.default_rng(get_seed(seed))
        return "".join(self.sentence(rng, vocab_fraction, templates) for _ in range(num_sentences))


# ---------------------------------------------------------------------------------------------
# Sentence builders, one per word order
# ---------------------------------------------------------------------------------------------


def _romance_noun_phrase(lang: Language, rng: np.random.Generator, vf: float, with_adj: bool) -> tuple[str, bool]:
    noun = lang._word(rng, "noun", vf)
    plural = bool(rng.random() < 0.3)
    feminine = lang.genders.get(noun) == "f"
    article = "les" if plural else ("la" if feminine else "le")
    words = [article, noun + ("s" if plural else "")]
    if with_adj:
        adj = lang._word(rng, "adjective", vf) + ("e" if feminine else "") + ("s" if plural else "")
        words.append(adj)  # adjectives follow the noun and agree with it
    return " ".join(words), plural


def _build_svo(lang: Language, rng: np.random.Generator, template: str, vf: float) -> str:
    subject, plural = _romance_noun_phrase(lang, rng, vf, with_adj=bool(rng.random() < 0.5))
    verb = lang._word(rng, "verb", vf) + ("ent" if plural else "e")
    if template == "transitive":
        obj, _ = _romance_noun_phrase(lang, rng, vf, with_adj=bool(rng.random() < 0.5))
        return f"{subject} {verb} {obj}"
    if template == "location":
        place, _ = _romance_noun_phrase(lang, rng, vf, with_adj=False)
        return f"{subject} {verb} dans {place}"
    if template == "question":
        obj, _ = _romance_noun_phrase(lang, rng, vf, with_adj=False)
        return f"est ce que {subject} {verb} {obj}"
    if template == "report":  # the clinical register: "le patient presente ..."
        finding = lang._word(rng, "finding", vf)
        organ, _ = _romance_noun_phrase(lang, rng, vf, with_adj=False)
        grade = lang._word(rng, "grade", vf)
        return f"le patient presente {finding} {grade} de {organ}"
    if template == "dose":
        drug = lang._word(rng, "drug", vf)
        number = lang._word(rng, "number", vf)
        return f"administrer {drug} {number} fois par jour"
    raise ValueError(f"unknown template {template!r}")


def _build_sov(lang: Language, rng: np.random.Generator, template: str, vf: float) -> str:
    subject = lang._word(rng, "noun", vf)
    ending = str(rng.choice(["masu", "mashita", "masen"], p=[0.5, 0.35, 0.15]))
    verb = lang._word(rng, "verb", vf) + ending
    if template == "transitive":
        obj = lang._word(rng, "noun", vf)
        adj = lang._word(rng, "adjective", vf) + "i " if rng.random() < 0.4 else ""
        return f"{subject} wa {adj}{obj} o {verb}"
    if template == "location":
        place = lang._word(rng, "noun", vf)
        return f"{subject} wa {place} ni {verb}"
    if template == "question":
        obj = lang._word(rng, "noun", vf)
        return f"{subject} wa {obj} o {verb} ka"
    raise ValueError(f"unknown template {template!r}")


_BUILDERS = {"SVO": _build_svo, "SOV": _build_sov}


# ---------------------------------------------------------------------------------------------
# The course's languages
# ---------------------------------------------------------------------------------------------

_LEXICON_SEED = {"french": 11, "japanese": 22, "general": 33, "clinical": 44}


@cache
def make_language(name: str) -> Language:
    """One of ``LANGUAGE_NAMES``. The lexicon is fixed (it does not depend on the lesson seed).

    Built once per process and shared: treat the returned language as read-only.
    """
    if name not in LANGUAGE_NAMES:
        raise ValueError(f"unknown language {name!r}: expected one of {LANGUAGE_NAMES}")
    rng = np.random.default_rng(_LEXICON_SEED[name])
    if name == "japanese":
        lexicon = {
            "noun": _make_words(rng, JAPONIC_SYLLABLES, 60, 2, 3),
            "verb": _make_words(rng, JAPONIC_SYLLABLES, 30, 1, 2),
            "adjective": _make_words(rng, JAPONIC_SYLLABLES, 20, 1, 2),
        }
        return Language(name, "SOV", lexicon, ("transitive", "location", "question"))
    if name == "clinical":
        base = make_language("general")
        lexicon = dict(base.lexicon)  # shares the general language's words and grammar ...
        lexicon.update(  # ... plus its own jargon
            finding=_make_words(rng, CLINICAL_SYLLABLES, 25, 2, 3, suffixes=("itis", "oma", "ose", "algie")),
            grade=["aigue", "chronique", "legere", "severe", "stable"],
            drug=_make_words(rng, CLINICAL_SYLLABLES, 15, 2, 3, suffixes=("ine", "ol", "ex")),
            number=["un", "deux", "trois", "quatre"],
            noun=_make_words(rng, CLINICAL_SYLLABLES, 20, 2, 3, suffixes=("e", "um", "")),
        )
        genders = {w: ("f" if w.endswith("e") else "m") for w in lexicon["noun"]}
        return Language(name, "SVO", lexicon, ("report", "dose"), genders)
    size = {"french": (60, 30, 20), "general": (120, 50, 40)}[name]
    taken: set[str] = set()
    lexicon = {
        "noun": _make_words(rng, ROMANCE_SYLLABLES, size[0], 1, 3, suffixes=("", "e"), taken=taken),
        "verb": _make_words(rng, ROMANCE_SYLLABLES, size[1], 1, 2, taken=taken),
        "adjective": _make_words(rng, ROMANCE_SYLLABLES, size[2], 1, 2, taken=taken),
    }
    genders = {w: ("f" if w.endswith("e") else "m") for w in lexicon["noun"]}
    templates = ("transitive", "location") if name == "french" else ("transitive", "location", "question")
    return Language(name, "SVO", lexicon, templates, genders)


def language_tokens(name: str, split: str = "train", num_sentences: int = 2000, seed: int | None = None,
                    vocab_fraction: float = 1.0, templates: Sequence[str] | None = None,
                    tokenizer: CharTokenizer | None = None) -> Tensor:
    """A corpus of ``name`` as a 1-D int64 tensor of character ids.

    ``split="train"`` and ``split="test"`` draw disjoint streams of sentences from the same seed.
    """
    check_choice("split", split, ("train", "test"))
    seed = (get_seed(seed) * 2 + (split == "test")) % 2**32  # train even, test odd; stays a valid seed
    text = make_language(name).text(num_sentences, seed, vocab_fraction, templates)
    return (tokenizer or CharTokenizer()).encode(text)
