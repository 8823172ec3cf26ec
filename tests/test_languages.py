"""Synthetic languages, the character tokenizer and LM batches."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import forgetkit as fk
from forgetkit.languages import (
    ALPHABET,
    LANGUAGE_NAMES,
    CharTokenizer,
    language_tokens,
    lm_batch,
    lm_windows,
)


def test_tokenizer_round_trip() -> None:
    tok = CharTokenizer()
    text = "le chat noir dort.\nwa o ni ka."
    ids = tok.encode(text)
    assert ids.dtype == torch.int64 and ids.shape == (len(text),)
    assert tok.decode(ids) == text and tok.decode(ids.tolist()) == text
    assert tok.vocab_size == len(ALPHABET) == 29
    assert tok.encode("").shape == (0,) and tok.decode([]) == ""
    assert CharTokenizer("ab").encode("ba").tolist() == [1, 0]


def test_tokenizer_bad_input() -> None:
    tok = CharTokenizer()
    with pytest.raises(ValueError, match=r"character 'X' is not in the alphabet"):
        tok.encode("le X")
    with pytest.raises(ValueError, match=r"character '!' is not in the alphabet"):
        tok.encode("oui!")
    with pytest.raises(TypeError, match="text must be a str"):
        tok.encode(5)
    with pytest.raises(ValueError, match=r"ids must lie in \[0, 29\)"):
        tok.decode([0, 29])
    with pytest.raises(ValueError, match=r"ids must lie in \[0, 29\)"):
        tok.decode(torch.tensor([-1]))
    for alphabet in ("", "abca"):
        with pytest.raises(ValueError, match="distinct characters"):
            CharTokenizer(alphabet)


@pytest.mark.parametrize("name", LANGUAGE_NAMES)
def test_every_language_is_written_in_the_shared_alphabet(name: str) -> None:
    tokens = language_tokens(name, num_sentences=40, seed=0)
    assert tokens.dtype == torch.int64 and tokens.ndim == 1
    assert 0 <= int(tokens.min()) and int(tokens.max()) < len(ALPHABET)
    text = CharTokenizer().decode(tokens)
    sentences = text.split("\n")[:-1]
    assert len(sentences) == 40 and all(s.endswith(".") for s in sentences)


def test_languages_differ_in_word_order_and_lexicon() -> None:
    french, japanese = fk.make_language("french"), fk.make_language("japanese")
    assert (french.word_order, japanese.word_order) == ("SVO", "SOV")
    assert not set(french.lexicon["noun"]) & set(japanese.lexicon["noun"])
    general, clinical = fk.make_language("general"), fk.make_language("clinical")
    assert clinical.lexicon["verb"] == general.lexicon["verb"]  # the register shares the general grammar
    assert clinical.templates == ("report", "dose")
    # the lexicon does not follow the lesson seed
    torch.manual_seed(1)
    np.random.seed(1)
    assert fk.make_language("french").lexicon == french.lexicon


def test_french_agreement_and_japanese_particles() -> None:
    for sentence in fk.make_language("french").text(30, seed=3).splitlines():
        words = sentence.rstrip(".").split()
        assert words[0] in ("le", "la", "les")
        if words[0] == "les":  # plural subject: noun (and adjective) take -s, the verb -ent
            assert words[1].endswith("s")
            assert words[2].endswith("ent") or (words[2].endswith("s") and words[3].endswith("ent"))
    for sentence in fk.make_language("japanese").text(30, seed=3).splitlines():
        words = sentence.rstrip(".").split()
        assert words[1] == "wa"
        assert words[-1] == "ka" or words[-1].endswith(("masu", "mashita", "masen"))


def test_determinism_per_seed_and_train_test_differ() -> None:
    a = language_tokens("french", "train", 30, seed=4)
    assert torch.equal(a, language_tokens("french", "train", 30, seed=4))
    assert not torch.equal(a[:200], language_tokens("french", "train", 30, seed=5)[:200])
    assert not torch.equal(a[:200], language_tokens("french", "test", 30, seed=4)[:200])
    text = fk.make_language("japanese").text(5, seed=9)
    assert text == fk.make_language("japanese").text(5, seed=9)


def test_language_tokens_follow_the_env_seed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FORGETKIT_SEED", "6")
    assert torch.equal(language_tokens("japanese", num_sentences=10),
                       language_tokens("japanese", num_sentences=10, seed=6))


def test_large_seeds_are_valid() -> None:
    big = language_tokens("french", "test", 5, seed=2**32 - 1)  # 2 * seed + 1 must not overflow the seed range
    assert big.ndim == 1 and len(big) > 0
    assert not torch.equal(big, language_tokens("french", "train", 5, seed=2**32 - 1))


def test_vocab_fraction_restricts_the_lexicon() -> None:
    lang = fk.make_language("japanese")
    narrow = lang.text(60, seed=0, vocab_fraction=0.01)  # one noun, one verb stem, one adjective
    noun, verb, adjective = (lang.lexicon[k][0] for k in ("noun", "verb", "adjective"))
    allowed = {noun, adjective + "i", "wa", "o", "ni", "ka"} | {verb + e for e in ("masu", "mashita", "masen")}
    assert set(narrow.replace(".", " ").split()) <= allowed
    wide = lang.text(60, seed=0)
    assert len(set(wide.split())) > 3 * len(set(narrow.split()))


def test_templates_restrict_sentence_patterns() -> None:
    lang = fk.make_language("japanese")
    for sentence in lang.text(40, seed=1, templates=("location",)).splitlines():
        words = sentence.rstrip(".").split()
        assert len(words) == 5 and words[1] == "wa" and words[3] == "ni"
    questions = language_tokens("japanese", num_sentences=20, seed=1, templates=["question"])
    assert all(s.endswith(" ka.") for s in CharTokenizer().decode(questions).splitlines())


@pytest.mark.parametrize("kwargs, error, message", [
    (dict(vocab_fraction=0.0), ValueError, r"vocab_fraction must be a finite number in \(0, 1\]"),
    (dict(vocab_fraction=1.5), ValueError, r"vocab_fraction must be a finite number in \(0, 1\]"),
    (dict(vocab_fraction=float("nan")), ValueError, r"vocab_fraction must be a finite number in \(0, 1\]"),
    (dict(vocab_fraction="all"), TypeError, "vocab_fraction"),
    (dict(templates=("report",)), ValueError, "templates must be a non-empty subset of"),
    (dict(templates=()), ValueError, "templates must be a non-empty subset of"),
    (dict(num_sentences=0), ValueError, "num_sentences must be a positive int"),
    (dict(num_sentences=2.5), TypeError, "num_sentences must be a positive int"),
    (dict(num_sentences=True), TypeError, "num_sentences must be a positive int"),
    (dict(split="valid"), ValueError, "split must be one of 'train', 'test'"),
    (dict(name="klingon"), ValueError, "unknown language 'klingon'"),
    (dict(seed=-1), ValueError, r"seed must be an int in \[0, 4294967295\]"),
])
def test_language_tokens_bad_input(kwargs: dict, error: type, message: str) -> None:
    args = dict(name="french", num_sentences=5) | kwargs
    with pytest.raises(error, match=message):
        language_tokens(**args)


def test_lm_batch_shapes_and_target_shift() -> None:
    tokens = torch.arange(100)
    x, y = lm_batch(tokens, 6, 8, torch.Generator().manual_seed(0))
    assert x.shape == y.shape == (6, 8) and x.dtype == torch.int64
    # with tokens = 0..99 every window is a run of consecutive ids and y is x shifted by one
    assert torch.equal(y, x + 1)
    assert torch.equal(x[:, 1:] - x[:, :-1], torch.ones(6, 7, dtype=torch.int64))
    assert int(y.max()) <= 99
    again = lm_batch(tokens, 6, 8, torch.Generator().manual_seed(0))
    assert torch.equal(again[0], x)
    # the shortest legal stream: block_size + 1 tokens give exactly one window
    x1, y1 = lm_batch(torch.arange(9), 3, 8, torch.Generator())
    assert torch.equal(x1, torch.arange(8).expand(3, 8)) and torch.equal(y1, torch.arange(1, 9).expand(3, 8))


def test_lm_windows_cover_the_stream_in_order() -> None:
    tokens = torch.arange(35)
    x, y = lm_windows(tokens, 8)
    assert x.shape == y.shape == (4, 8)  # (35 - 1) // 8
    assert torch.equal(x.flatten(), tokens[:32]) and torch.equal(y.flatten(), tokens[1:33])
    assert lm_windows(tokens, 8, max_windows=2)[0].shape == (2, 8)
    assert lm_windows(tokens, 8, max_windows=100)[0].shape == (4, 8)
    assert torch.equal(lm_windows(torch.arange(33), 8)[1][-1], torch.arange(25, 33))


@pytest.mark.parametrize("fn", ["batch", "windows"])
def test_lm_batching_bad_input(fn: str) -> None:
    def call(tokens, block_size):
        if fn == "batch":
            return lm_batch(tokens, 2, block_size, torch.Generator())
        return lm_windows(tokens, block_size)

    with pytest.raises(TypeError, match="tokens must be a 1-D int64 tensor"):
        call(torch.arange(20.0), 4)
    with pytest.raises(TypeError, match="tokens must be a 1-D int64 tensor"):
        call(torch.arange(20).view(4, 5), 4)
    with pytest.raises(TypeError, match="tokens must be a 1-D int64 tensor"):
        call(list(range(20)), 4)
    with pytest.raises(ValueError, match="block_size must be a positive int"):
        call(torch.arange(20), 0)
    with pytest.raises(ValueError, match="need more than block_size=20 tokens"):
        call(torch.arange(20), 20)
    with pytest.raises(ValueError, match="need more than block_size=4 tokens"):
        call(torch.zeros(0, dtype=torch.int64), 4)


@pytest.mark.parametrize("batch_size, error", [(0, ValueError), (-2, ValueError), (1.5, TypeError)])
def test_lm_batch_bad_batch_size(batch_size, error) -> None:
    with pytest.raises(error, match="batch_size must be a positive int"):
        lm_batch(torch.arange(20), batch_size, 4, torch.Generator())


@pytest.mark.parametrize("max_windows, error", [(0, ValueError), (-1, ValueError), (2.0, TypeError), (True, TypeError)])
def test_lm_windows_bad_max_windows(max_windows, error) -> None:
    with pytest.raises(error, match="max_windows must be a positive int or None"):
        lm_windows(torch.arange(20), 4, max_windows)


def test_language_repr_is_a_summary_not_the_lexicon() -> None:
    assert repr(CharTokenizer()) == "CharTokenizer('\\n .abcdefghijklmnopqrstuvwxyz')"
    text = repr(fk.make_language("french"))
    assert text == "Language('french', SVO, 110 words (noun 60, verb 30, adjective 20), templates ('transitive', 'location'))"


def test_language_sentence_draws_one_sentence() -> None:
    lang = fk.make_language("french")
    sentence = lang.sentence(np.random.default_rng(0))
    assert sentence.endswith(".\n") and sentence.count("\n") == 1
    assert sentence == lang.sentence(np.random.default_rng(0))
    with pytest.raises(ValueError, match=r"vocab_fraction must be a finite number in \(0, 1\]"):
        lang.sentence(np.random.default_rng(0), vocab_fraction=-0.5)
    with pytest.raises(ValueError, match="templates must be a non-empty subset of"):
        lang.sentence(np.random.default_rng(0), templates=["question"])  # French has no question template
