"""forgetkit.capstone: settings, methods, one run, the comparison table, recipes; bad input raises clearly.

A tiny TinyLM (briefly pre-trained on general text) stands in for the course's cached base model,
so every test runs in a second or two.
"""

from __future__ import annotations

import copy
import functools
import math

import matplotlib
import numpy as np
import pytest
import torch

import forgetkit as fk
from forgetkit import capstone
from forgetkit.capstone import methods, scenario
from forgetkit.regularizers import NextCharacter, fisher_diagonal_loop

matplotlib.use("Agg")

TINY = capstone.Settings(steps=4, lr=1e-2, batch_size=2, domain_sentences=40, test_sentences=20, eval_windows=4)


@functools.lru_cache(maxsize=8)
def _tiny_base(language: str, seed: int) -> fk.TinyLM:
    torch.manual_seed(seed)
    model = fk.TinyLM(fk.TinyLMConfig(fk.CharTokenizer().vocab_size, block_size=16, n_layer=2, n_head=2, n_embd=16))
    fk.fit_lm(model, fk.language_tokens(language, "train", 60, seed), num_steps=15, lr=1e-2, batch_size=4,
              seed=seed, progress=False)
    return model.eval()


def tiny_base(language: str = "general", seed: int | None = None, device=None, progress=None) -> fk.TinyLM:
    """Stands in for ``pretrained_lm``: a 2-block TinyLM that has seen a little general text (a fresh copy)."""
    return copy.deepcopy(_tiny_base(language, fk.get_seed(seed))).to(device or "cpu").eval()


@pytest.fixture
def tiny(monkeypatch):
    monkeypatch.setattr(scenario, "pretrained_lm", tiny_base)
    return TINY


@pytest.fixture(name="scenario")
def tiny_scenario(tiny):
    return capstone.make_scenario(3, tiny)


# ------------------------------------------------------------------------------------------
# Settings and methods
# ------------------------------------------------------------------------------------------


def test_settings_default_checkpoints():
    assert capstone.Settings().checkpoints == (3, 6, 9, 12)
    assert capstone.Settings(steps=3).checkpoints == (1, 2, 3)
    assert capstone.Settings(steps=20).checkpoints == (5, 10, 15, 20)
    assert capstone.Settings(steps=10, checkpoints=(5, 10)).checkpoints == (5, 10)


@pytest.mark.parametrize("kwargs, phrase", [
    (dict(steps=0), "steps"), (dict(steps=-3), "steps"), (dict(lr=0.0), "lr"), (dict(lr=float("nan")), "lr"),
    (dict(lr=-1e-3), "lr"), (dict(batch_size=0), "batch_size"), (dict(eval_windows=0), "eval_windows"),
    (dict(steps=10, checkpoints=(5, 8)), "ending at steps"), (dict(steps=10, checkpoints=(6, 4, 10)), "increasing"),
    (dict(steps=10, checkpoints=(0, 10)), "checkpoint")])
def test_settings_bad_values(kwargs, phrase):
    with pytest.raises(ValueError, match=phrase):
        capstone.Settings(**kwargs)


@pytest.mark.parametrize("kwargs, phrase", [(dict(steps=True), "steps"), (dict(steps=2.5), "steps"),
                                            (dict(lr="0.1"), "lr"), (dict(checkpoints=(1.0,)), "checkpoint")])
def test_settings_bad_types(kwargs, phrase):
    with pytest.raises(TypeError, match=phrase):
        capstone.Settings(**kwargs)


@pytest.mark.parametrize("name, strength", [("low-lr", 0.0), ("low-lr", 1.5), ("lora", 2.5), ("lora", 0),
                                            ("replay", 1.0), ("replay", -0.1), ("wise-ft", 1.2), ("freeze", 0),
                                            ("ewc", -1.0), ("ewc", float("nan")), ("naive", 3.0),
                                            ("distill", -0.5)])
def test_method_check_rejects(name, strength):
    with pytest.raises(ValueError, match=name):
        capstone.METHODS[name].check(strength)


def test_method_check_accepts_and_types():
    assert capstone.METHODS["lora"].check(4) == 4.0
    assert capstone.METHODS["replay"].check(np.float64(0.5)) == 0.5
    with pytest.raises(TypeError, match="ewc strength"):
        capstone.METHODS["ewc"].check("300")
    with pytest.raises(TypeError, match="ewc strength"):
        capstone.METHODS["ewc"].check(True)
    with pytest.raises(ValueError, match="whole number"):
        capstone.METHODS["lora"].check(2.5)


def test_method_repr_shows_the_knob_not_functions():
    text = repr(capstone.METHODS["lora"])
    assert "knob='rank'" in text and "function" not in text


def test_check_method_lists_known_names():
    with pytest.raises(ValueError, match="naive.*replay"):
        capstone.check_method("magic")
    assert capstone.check_method("ewc").knob == "lambda"


def test_every_default_strength_is_valid():
    for m in capstone.METHODS.values():
        assert m.default in m.strengths or m.knob == "-", m.name
        for s in m.strengths:
            m.check(s)


def test_parse_methods():
    assert capstone.parse_methods(["ewc"]) == {"ewc": capstone.METHODS["ewc"].strengths}
    assert capstone.parse_methods({"lora": [4, 8]}) == {"lora": (4.0, 8.0)}
    assert list(capstone.parse_methods(None)) == list(capstone.METHODS)
    with pytest.raises(ValueError, match="unknown method"):
        capstone.parse_methods(["naive", "nope"])
    with pytest.raises(ValueError, match="at least one method"):
        capstone.parse_methods([])
    with pytest.raises(ValueError, match="at least one strength"):
        capstone.parse_methods({"lora": []})
    with pytest.raises(TypeError, match="not the str"):
        capstone.parse_methods("naive")
    with pytest.raises(TypeError, match="list of numbers"):
        capstone.parse_methods({"lora": 4})
    with pytest.raises(ValueError, match="rank"):
        capstone.parse_methods({"lora": [1.5]})


# ------------------------------------------------------------------------------------------
# Runs
# ------------------------------------------------------------------------------------------


def test_scenario(scenario):
    assert scenario.seed == 3 and not scenario.base.training
    # the base losses are the mean next-character cross-entropy on the first eval_windows windows, by hand
    for text, loss in ((scenario.general_test, scenario.base_general), (scenario.domain_test, scenario.base_domain)):
        x, y = fk.lm_windows(text, scenario.base.block_size, TINY.eval_windows)
        with torch.no_grad():
            logits, _ = scenario.base(x)
        assert loss == pytest.approx(float(torch.nn.functional.cross_entropy(logits.flatten(0, 1), y.flatten())), rel=1e-6)
    general = fk.CharTokenizer().decode(scenario.general_test[:200])
    domain = fk.CharTokenizer().decode(scenario.domain_test[:2000])
    assert "le patient presente" in domain and "le patient presente" not in general
    other = scenario.with_seed(4)
    assert other.base is scenario.base and torch.equal(other.general_test, scenario.general_test)
    assert not torch.equal(other.domain_train[:200], scenario.domain_train[:200])
    assert repr(scenario).startswith("Scenario(seed=3, characters: general") and len(repr(scenario)) < 200
    with pytest.raises(TypeError, match="settings must be a forgetkit.capstone.Settings"):
        capstone.make_scenario(0, settings={"steps": 3})


def test_checkpoint_rows_are_the_losses_after_that_many_steps(scenario, tiny):
    """A row at checkpoint k holds exactly what a run stopped after k steps measures (same seed, same batches)."""
    rows = capstone.run_method(scenario, "ewc", 10.0)
    short = capstone.make_scenario(3, capstone.Settings(**{**vars(tiny), "steps": 2, "checkpoints": (2,)}))
    stopped = capstone.run_method(short, "ewc", 10.0)[-1]
    at_two = next(r for r in rows if r["steps"] == 2)
    assert at_two["general_loss"] == pytest.approx(stopped["general_loss"], rel=1e-6)
    assert at_two["domain_loss"] == pytest.approx(stopped["domain_loss"], rel=1e-6)


def test_finetune_rows_and_base_untouched(scenario):
    before = {k: v.clone() for k, v in scenario.base.state_dict().items()}
    model, rows = capstone.finetune(scenario, "naive")
    assert [r["steps"] for r in rows] == list(TINY.checkpoints)
    assert all(torch.equal(before[k], v) for k, v in scenario.base.state_dict().items()), "the base must not change"
    general, domain = scenario.losses(model)
    last = rows[-1]
    assert math.isclose(last["general_loss"], general, rel_tol=1e-6) and math.isclose(last["domain_loss"], domain, rel_tol=1e-6)
    assert math.isclose(last["forgetting"], general / scenario.base_general - 1, rel_tol=1e-6)
    assert math.isclose(last["learning"], 1 - domain / scenario.base_domain, rel_tol=1e-6)
    assert last["trainable"] == sum(p.numel() for p in scenario.base.parameters())
    assert all(r["seconds"] >= 0 for r in rows) and rows[0]["seconds"] <= rows[-1]["seconds"]


def test_same_seed_same_numbers(scenario):
    a = capstone.run_method(scenario, "ewc", 10.0, seed=5)
    b = capstone.run_method(scenario, "ewc", 10.0, seed=5)
    strip = [{k: v for k, v in r.items() if k != "seconds"} for r in a]
    assert strip == [{k: v for k, v in r.items() if k != "seconds"} for r in b]


def test_wise_ft_ends(scenario):
    naive = capstone.run_method(scenario, "naive")
    at_one = capstone.run_method(scenario, "wise-ft", 1.0)
    at_zero = capstone.run_method(scenario, "wise-ft", 0.0)
    for n, w in zip(naive, at_one):
        assert math.isclose(n["general_loss"], w["general_loss"], rel_tol=1e-5)
    assert all(abs(r["forgetting"]) < 1e-6 and abs(r["learning"]) < 1e-6 for r in at_zero)


def test_trainable_counts(scenario):
    base = scenario.base
    head = sum(p.numel() for n, p in base.named_parameters() if n.startswith(("ln_f.", "lm_head.")))
    assert capstone.run_method(scenario, "head-only")[-1]["trainable"] == head
    rank = 2
    expected_lora = sum(rank * (m.in_features + m.out_features) for n, m in base.named_modules()
                        if isinstance(m, torch.nn.Linear) and n.startswith("blocks."))
    assert capstone.run_method(scenario, "lora", rank)[-1]["trainable"] == expected_lora
    frozen = sum(p.numel() for n, p in base.named_parameters() if n.startswith(("token_embedding", "position_embedding")))
    total = sum(p.numel() for p in base.parameters())
    assert capstone.run_method(scenario, "freeze", 1)[-1]["trainable"] == total - frozen
    with pytest.raises(ValueError, match="layer groups frozen"):
        capstone.run_method(scenario, "freeze", 4)  # 2 blocks: embeddings + 2 blocks = 3 groups below the head


def _drift(model, base) -> float:
    return sum(float((p.detach() - q.detach()).norm()) for p, q in zip(model.parameters(), base.parameters()))


def test_low_lr_moves_the_weights_less(scenario):
    naive, _ = capstone.finetune(scenario, "naive")
    gentle, rows = capstone.finetune(scenario, "low-lr", 0.1)
    assert 0 < _drift(gentle, scenario.base) < 0.5 * _drift(naive, scenario.base)
    assert rows[-1]["learning"] < capstone.run_method(scenario, "naive")[-1]["learning"]


def test_adapter_runs_leave_every_pretrained_weight_as_it_was(scenario):
    model, rows = capstone.finetune(scenario, "adapter", 2)
    frozen = [p for p in model.parameters() if not p.requires_grad]
    assert len(frozen) == len(list(scenario.base.parameters()))
    assert all(torch.equal(p, q) for p, q in zip(frozen, scenario.base.parameters()))
    assert rows[-1]["trainable"] == sum(p.numel() for p in model.parameters() if p.requires_grad) > 0
    assert rows[-1]["learning"] != 0  # the adapters did train


def test_replay_mixes_windows_of_general_text_into_each_batch(scenario):
    model = copy.deepcopy(scenario.base)
    prepared = methods.prepare_replay(model, scenario, 0.5, seed=0)
    x, y = prepared.extra_batch()
    assert x.shape == (TINY.batch_size, model.block_size)  # ratio 0.5: as many replayed windows as new ones
    assert torch.equal(x[:, 1:], y[:, :-1])  # targets are the next characters
    text = "".join(fk.CharTokenizer().decode(scenario.general_train))
    assert all(fk.CharTokenizer().decode(row) in text for row in x)
    assert methods.prepare_replay(model, scenario, 0.0, seed=0) == capstone.Prepared()
    with pytest.raises(ValueError, match="replay strength"):
        capstone.run_method(scenario, "replay", 1.0)


def test_distill_pulls_the_predictions_on_the_domain_batches_to_the_base(scenario):
    model = copy.deepcopy(scenario.base)
    prepared = methods.prepare_distill(model, scenario, 2.0, seed=0)
    assert isinstance(prepared.batch_penalty, fk.Distillation) and prepared.batch_penalty.lam == 2.0
    x, _ = fk.lm_batch(scenario.domain_train, 4, model.block_size, fk.make_generator(0))
    assert prepared.batch_penalty(model, x).item() == pytest.approx(0.0, abs=1e-6)  # zero at the base
    # lambda 0 is plain fine-tuning, row for row; a large lambda keeps the model near the base
    naive = capstone.run_method(scenario, "naive")
    at_zero = capstone.run_method(scenario, "distill", 0.0)
    for n, d in zip(naive, at_zero):
        assert d["general_loss"] == pytest.approx(n["general_loss"], rel=1e-5)
    strong, rows = capstone.finetune(scenario, "distill", 100.0)
    plain, _ = capstone.finetune(scenario, "naive")
    assert _drift(strong, scenario.base) < _drift(plain, scenario.base)
    assert rows[-1]["forgetting"] < naive[-1]["forgetting"]


def test_l2_sp_huge_lambda_keeps_weights(scenario):
    model, rows = capstone.finetune(scenario, "l2-sp", 1e6)
    low, _ = capstone.finetune(scenario, "low-lr", 1.0)
    assert _drift(model, scenario.base) < _drift(low, scenario.base)


def test_lm_fisher_matches_the_loop(scenario):
    x, _ = fk.lm_batch(scenario.general_train, 3, scenario.base.block_size, fk.make_generator(1))
    fast = fk.lm_fisher(scenario.base, scenario.general_train, num_windows=3, seed=1)
    slow = fisher_diagonal_loop(NextCharacter(scenario.base), x)
    assert set(fast) == {n for n, _ in scenario.base.named_parameters()}
    for name, value in fast.items():
        assert torch.allclose(value, slow["lm." + name], rtol=1e-4, atol=1e-7), name
        assert (value >= 0).all()
    with pytest.raises(TypeError, match="TinyLM"):
        fk.lm_fisher(torch.nn.Linear(3, 3), scenario.general_train)


def test_run_comparison(tiny):
    results = capstone.run_comparison({"naive": [0], "wise-ft": [0.5], "head-only": [0]}, seeds=[1, 2],
                                      settings=tiny, base_seed=1, progress=False)
    assert len(results.rows) == 2 * 3 * len(tiny.checkpoints)
    assert results.seeds == [1, 2] and set(results.scenarios) == {1, 2}
    one, two = results.scenarios[1], results.scenarios[2]
    assert one.base is two.base and one.general_test is two.general_test and one.cache is two.cache  # shared
    assert not torch.equal(one.domain_train[:200], two.domain_train[:200])  # each seed its own clinical corpus
    summary = results.summary(tiny.steps)
    assert [e["method"] for e in summary] == ["naive", "wise-ft", "head-only"]
    assert all(e["n"] == 2 for e in summary)
    text = results.to_markdown()
    assert "| naive |" in text and "head-only" in text and "alpha = 0.5" in text
    again = capstone.Results.from_json(results.to_json())
    assert again.rows == results.rows and again.settings == results.settings and again.seeds == [1, 2]


@pytest.mark.parametrize("seeds, error", [(0, ValueError), ([], ValueError), ([1, 1], ValueError), (True, TypeError),
                                          (["a"], TypeError)])
def test_run_comparison_bad_seeds(tiny, seeds, error):
    with pytest.raises(error, match="seed"):
        capstone.run_comparison(["naive"], seeds=seeds, settings=tiny, progress=False)


def test_run_comparison_bad_settings():
    with pytest.raises(TypeError, match="settings must be a forgetkit.capstone.Settings"):
        capstone.run_comparison(["naive"], seeds=1, settings=dict(steps=3), progress=False)


# ------------------------------------------------------------------------------------------
# The table, hand-made
# ------------------------------------------------------------------------------------------


def row(method, strength, seed, steps, forgetting, learning, trainable=10, seconds=1.0):
    return dict(method=method, strength=float(strength), seed=seed, steps=steps, general_loss=1 + forgetting,
                domain_loss=1 - learning, forgetting=forgetting, learning=learning, trainable=trainable, seconds=seconds)


@pytest.fixture
def table():
    settings = capstone.Settings(steps=20, checkpoints=(10, 20))
    rows = [row("naive", 0, 0, 10, 1.0, 0.5), row("naive", 0, 0, 20, 1.6, 0.7),
            row("naive", 0, 1, 10, 1.2, 0.4), row("naive", 0, 1, 20, 2.0, 0.6),
            row("low-lr", 0.3, 0, 10, 0.1, 0.2), row("low-lr", 0.3, 0, 20, 0.3, 0.4),
            row("replay", 0.75, 0, 20, 0.10, 0.60), row("replay", 0.75, 1, 20, 0.14, 0.62),
            row("ewc", 300, 0, 20, 0.30, 0.50), row("ewc", 300, 1, 20, 0.50, 0.40)]
    return capstone.Results(rows, settings, [0, 1], base_seed=0)


def test_summary_means_and_stds(table):
    entry = table.lookup("replay", 0.75, 20)
    assert entry["n"] == 2
    assert math.isclose(entry["forgetting_mean"], 0.12) and math.isclose(entry["learning_mean"], 0.61)
    assert math.isclose(entry["forgetting_std"], np.std([0.10, 0.14], ddof=1))
    assert table.lookup("replay", 0.5, 20) is None
    assert len(table.select("naive")) == 4 and len(table.select(steps=10)) == 3


def test_plain_forgetting_at(table):
    # seed 0: naive passes (0,0), (0.5,1.0), (0.7,1.6); low-lr passes (0,0), (0.2,0.1), (0.4,0.3)
    assert math.isclose(capstone.plain_forgetting_at(table, 0.3, seed=0), 0.2)  # low-lr forgets less there
    assert math.isclose(capstone.plain_forgetting_at(table, 0.6, seed=0), 1.3)  # only naive got that far
    assert math.isclose(capstone.plain_forgetting_at(table, 0.25, seed=1), 1.2 * 0.25 / 0.4)  # naive alone
    with pytest.raises(ValueError, match="never reached"):
        capstone.plain_forgetting_at(table, 0.8, seed=0)
    with pytest.raises(ValueError, match="no plain"):
        capstone.plain_forgetting_at(capstone.Results([row("ewc", 1, 0, 20, 0.1, 0.1)], table.settings, [0]), 0.05)


def test_forgetting_at_reads_each_method_frontier_at_matched_learning(table):
    # ewc, seed 1: (0, 0) then (0.4, 0.5): at learning 0.3 it had forgotten 0.375
    assert table.forgetting_at("ewc", 0.3, seed=1) == pytest.approx(0.375)
    # plain, seed 0: low-lr reaches 0.3 with 0.2 forgotten, naive with 0.6: the frontier is the lower one
    assert table.forgetting_at(("naive", "low-lr"), 0.3, seed=0) == pytest.approx(0.2)
    assert math.isnan(table.forgetting_at("ewc", 0.45, seed=1))  # ewc never learned that much in seed 1
    # on the means over seeds: replay (0, 0) then (0.61, 0.12)
    assert table.forgetting_at("replay", 0.305) == pytest.approx(0.06)


def test_matched_forgetting_compares_every_method_with_plain_fine_tuning_seed_by_seed(table):
    entries = table.matched_forgetting(0.3)
    assert [e["method"] for e in entries] == ["replay", "ewc"]  # plain ones left out
    replay, ewc = entries
    assert replay["plain"] == pytest.approx([0.2, 1.2 * 0.3 / 0.4])  # seed 1 has only naive
    assert replay["forgetting"] == pytest.approx([0.10 * 0.3 / 0.60, 0.14 * 0.3 / 0.62])
    assert ewc["ratios"] == pytest.approx([0.30 * 0.3 / 0.5 / 0.2, 0.375 / 0.9])
    far = table.matched_forgetting(0.65, methods=["replay"])[0]  # beyond every plain run: no fair comparison
    assert math.isnan(far["ratios"][0]) and math.isnan(far["ratios"][1])


def test_markdown_shows_no_spread_for_one_seed(table):
    assert "+-" in table.to_markdown() and "mean +- std over 2 seed(s)" in table.to_markdown()
    one = capstone.Results(table.select(steps=20), table.settings, [0])
    one.rows = [r for r in one.rows if r["seed"] == 0]
    text = one.to_markdown()
    assert "+-" not in text and "| replay | general share = 0.75 | 10.0 | 60.0 | 10 | 1.00 |" in text
    assert repr(one) == ("Results(4 rows: 4 methods ['naive', 'low-lr', 'replay', 'ewc'], seeds [0], "
                         "checkpoints (10, 20))")


def test_targets_and_recipes(table):
    targets = capstone.Targets(max_forgetting=0.15, min_learning=0.55)
    assert targets.failures(0.1, 0.6) == []
    missed = targets.failures(0.3, 0.4)
    assert len(missed) == 2 and "retention" in missed[0] and "learning" in missed[1]
    assert capstone.reference_recipe(table, targets) == {"method": "replay", "strength": 0.75, "steps": 20}
    assert math.isclose(capstone.target_margin(table.lookup("replay", 0.75, 20), targets), 0.03)  # 0.15 - 0.12
    strict = capstone.Targets(max_forgetting=0.01, min_learning=0.99)  # nothing meets it: the closest miss
    assert capstone.reference_recipe(table, strict)["method"] == "replay"
    assert capstone.evaluate_recipe({"method": "ewc", "strength": 300, "steps": 20}, table)["forgetting_mean"] == 0.4


@pytest.mark.parametrize("recipe, error, phrase", [
    (None, ValueError, "exactly the keys"), ({"method": "ewc"}, ValueError, "exactly the keys"),
    ({"method": "ewc", "strength": 1, "steps": 0}, ValueError, "steps must be a positive int"),
    ({"method": "ewc", "strength": 1, "steps": True}, TypeError, "steps must be a positive int"),
    ({"method": "nope", "strength": 1, "steps": 3}, ValueError, "unknown method"),
    ({"method": "lora", "strength": 0.5, "steps": 3}, ValueError, "lora strength"),
    ({"method": "ewc", "strength": 1, "steps": 3, "lr": 1}, ValueError, "exactly the keys")])
def test_bad_recipes(recipe, error, phrase):
    with pytest.raises(error, match=phrase):
        capstone.check_recipe_format(recipe)
    assert capstone.check_recipe_format({"method": "lora", "strength": np.int64(4), "steps": np.int64(3)}) == ("lora", 4.0, 3)


def test_evaluate_recipe_runs_what_is_missing(tiny):
    results = capstone.run_comparison({"naive": [0]}, seeds=[4], settings=tiny, base_seed=4, progress=False)
    entry = capstone.evaluate_recipe({"method": "head-only", "strength": 0, "steps": 3}, results, progress=False)
    assert entry["method"] == "head-only" and entry["steps"] == 3 and entry["n"] == 1


def test_check_recipe_verdicts(table, capsys):
    targets = capstone.Targets(max_forgetting=0.15, min_learning=0.55)

    def good(results, targets):
        return {"method": "replay", "strength": 0.75, "steps": 20}

    def forgets(results, targets):
        return {"method": "ewc", "strength": 300.0, "steps": 20}

    def stub(results, targets):
        raise NotImplementedError

    assert fk.exercises.check_recipe(good, table, targets) is good
    assert "PASSED" in capsys.readouterr().out
    assert fk.exercises.check_recipe(forgets, table, targets) is capstone.reference_recipe
    out = capsys.readouterr().out
    assert "WRONG" in out and "retention target missed" in out and "learning target missed" in out
    assert fk.exercises.check_recipe(stub, table, targets) is capstone.reference_recipe
    assert "NOT DONE" in capsys.readouterr().out
    fk.exercises.check_recipe(lambda r, t: {"method": "ewc"}, table, targets)
    assert "WRONG" in capsys.readouterr().out


def test_frontier_labels_sit_off_the_lines(table):
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 5.5))
    fk.plot_method_frontier(table, ax=ax)
    fig.canvas.draw()
    boxes = [text.get_window_extent(fig.canvas.get_renderer()) for text in ax.texts]
    assert len(boxes) == 3  # one strength label for low-lr, replay and ewc (naive has no knob)
    for line in ax.lines:
        xy = line.get_transform().transform(line.get_xydata())
        samples = [p for a, b in zip(xy[:-1], xy[1:]) for p in np.linspace(a, b, 50)]
        assert not any(box.contains(*p) for box in boxes for p in samples), "a label covers a line"
    plt.close(fig)


def test_plot_and_explorer(table):
    ax = fk.plot_method_frontier(table, targets=capstone.Targets(), highlight={"method": "replay", "strength": 0.75, "steps": 20})
    assert ax.get_xlabel().startswith("learning") and ax.get_title()
    explorer = fk.widgets.recipe_explorer(table)
    assert len(explorer.children) == 2
    with pytest.raises(TypeError, match="results must be a forgetkit.capstone.Results"):
        fk.widgets.recipe_explorer(table.rows)
