"""The package surface: every ``fk.<name>`` the lessons may use, and a fast ``import forgetkit`` that
loads matplotlib, ipywidgets and the capstone only when they are first used (PEP 562)."""

from __future__ import annotations

import subprocess
import sys

import pytest

import forgetkit as fk

# Every name ``import forgetkit`` offered before plots, widgets and the capstone became lazy.
EXPORTED = """
ALPHABET Adapter CharTokenizer History LANGUAGE_NAMES Language LoRALinear LossPlane MLP NEW_COLOR OLD_COLOR
OnlineEWC ReservoirBuffer Task TinyLM accuracy accuracy_matrix add_adapters agem_grad_edit agem_project
apply_lora attention_distance attention_entropy attention_shift average_accuracy backward_transfer
batched_fisher_shortcut cache_dir capstone claim count_frozen count_trainable describe_device digits_task
evaluate evaluate_along_line evaluate_lm evaluate_on_plane ewc_penalty ewc_stability_limit exercises
fisher_diagonal fisher_diagonal_loop fit fit_lm flat_grad forgetting forward_transfer freeze get_flat_grad
get_seed gradient_cosine interference interpolate_state_dicts interpolation l2_anchor_penalty l2_penalty
l2_sp_penalty language_tokens layer_groups linear_cka linear_probe lm_batch lm_windows load_digits_split
lp_ft make_generator make_language merge_lora pcgrad pcgrad_grad_edit peft permute_pixels permuted_digits
perplexity pick_device plot_accuracy_matrix plot_attention plot_frontier plot_loss_plane plot_old_vs_new
plot_per_layer plot_sweep_frontier predicted_loss_change pretrained_lm quadratic_penalty replay replay_mixer
representation_drift representations reservoir_sample restore_layers seed_everything set_flat_grad snapshot
split_digits summarize task_gradient train unfreeze unmerge_lora weight_drift widgets wise_ft wise_ft_sweep
checks claims data device languages metrics models plots pretrained regularizers seeding training __version__
""".split()
NEW = ["TinyLMConfig", "trainable_parameters", "lm_fisher", "check_ewc_stability", "plot_method_frontier",
       "Distillation", "distillation_loss", "distillation_penalty"]


@pytest.mark.parametrize("name", EXPORTED + NEW)
def test_every_exported_name_is_there(name: str) -> None:
    assert getattr(fk, name) is not None
    assert name in dir(fk)


def test_lazy_names_are_their_modules_objects() -> None:
    import forgetkit.capstone
    import forgetkit.plots
    import forgetkit.widgets

    assert fk.plot_accuracy_matrix is forgetkit.plots.plot_accuracy_matrix and fk.OLD_COLOR == forgetkit.plots.OLD_COLOR
    assert fk.plot_method_frontier is forgetkit.plots.plot_method_frontier
    assert fk.capstone is forgetkit.capstone and fk.widgets is forgetkit.widgets
    assert fk.exercises.check_count_trainable is not None and callable(fk.exercises.summary)


def test_an_unknown_name_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="has no attribute 'nonexistent'"):
        fk.nonexistent  # noqa: B018


def test_import_forgetkit_loads_no_plotting_widgets_or_capstone() -> None:
    heavy = ("matplotlib.pyplot", "ipywidgets", "forgetkit.capstone", "forgetkit.plots", "forgetkit.widgets")
    code = f"import sys, forgetkit; print([m for m in {heavy!r} if m in sys.modules])"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
    first_use = "import sys, forgetkit as fk; fk.plot_accuracy_matrix; print('matplotlib.pyplot' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", first_use], capture_output=True, text=True,
                          timeout=120).stdout.strip() == "True"
