"""forgetkit: a small PyTorch library for a course on catastrophic forgetting in fine-tuning.

One module per concept, each readable top to bottom:

- ``seeding``, ``device``: one seed for everything; a GPU when there is one, else the CPU
- ``data``: digits task streams (permuted pixels, class splits)
- ``languages``: synthetic languages, a character tokenizer, LM batches
- ``models``: an MLP and a tiny transformer LM (``TinyLMConfig``), eval mode, a model's device
- ``training``: one training loop with extension points; fit/evaluate for classifiers and LMs
- ``pretrained``: a cached base LM that already speaks a language
- ``metrics``: accuracy matrix, ACC, BWT, FWT, forgetting, perplexity
- ``peft``: trainable parameters and counts, freezing by name, linear probe, LP-FT, adapters, LoRA
- ``interpolation``: weight-space lines and planes between trained networks; WiSE-FT
- ``replay``: reservoir buffer and replay mixing (rehearsal)
- ``interference``: gradient cosines, first-order loss change, A-GEM and PCGrad
- ``regularizers``: L2, L2-SP and EWC penalties, online EWC, the per-sample diagonal Fisher (torch.func),
  distillation to the base model (LwF)
- ``representations``: per-layer weight and representation drift (linear CKA), restoring layers, attention stats
- ``capstone`` (a package): a general LM becomes a clinical specialist; every mitigation compared
  over seeds (``bench``: the same comparison on the command line, ``forgetkit-bench``)
- ``plots``: the course's pictures and colours
- ``widgets``: interactive explorers over precomputed results
- ``exercises`` (a package): the exercise-check framework and the lessons' checks, with fallbacks
- ``checks``: the argument checks the modules share (clear errors for bad input)
- ``claims``: ``claim``, the lessons' assertions, printed with their margins for the seed sweep
- ``hf``: the same measurements and mitigations on Hugging Face ``transformers``/``peft`` models
  (imported on first use of ``fk.hf``, so ``import forgetkit`` does not load transformers)

``plots``, ``widgets`` and ``capstone`` (matplotlib, ipywidgets and the capstone's machinery) load
on first use: ``fk.plot_accuracy_matrix`` or ``fk.widgets`` imports them then (PEP 562), so
``import forgetkit`` stays fast.
"""

import importlib

from . import (
    exercises,
    interference,
    interpolation,
    peft,
    replay,
    representations,
)
from .claims import claim
from .data import (
    Task,
    digits_task,
    load_digits_split,
    permute_pixels,
    permuted_digits,
    split_digits,
)
from .device import describe_device, pick_device
from .interference import (
    agem_grad_edit,
    agem_project,
    flat_grad,
    get_flat_grad,
    gradient_cosine,
    pcgrad,
    pcgrad_grad_edit,
    predicted_loss_change,
    set_flat_grad,
    task_gradient,
)
from .interpolation import (
    LossPlane,
    evaluate_along_line,
    evaluate_on_plane,
    interpolate_state_dicts,
    wise_ft,
    wise_ft_sweep,
)
from .languages import (
    ALPHABET,
    LANGUAGE_NAMES,
    CharTokenizer,
    Language,
    language_tokens,
    lm_batch,
    lm_windows,
    make_language,
)
from .metrics import (
    accuracy_matrix,
    average_accuracy,
    backward_transfer,
    forgetting,
    forward_transfer,
    perplexity,
    summarize,
    value_at_learning,
)
from .models import MLP, TinyLM, TinyLMConfig
from .peft import (
    Adapter,
    LoRALinear,
    add_adapters,
    apply_lora,
    count_frozen,
    count_trainable,
    freeze,
    linear_probe,
    lp_ft,
    merge_lora,
    trainable_parameters,
    unfreeze,
    unmerge_lora,
)
from .pretrained import cache_dir, pretrained_lm
from .regularizers import (
    Distillation,
    OnlineEWC,
    batched_fisher_shortcut,
    check_ewc_stability,
    distillation_loss,
    distillation_penalty,
    ewc_penalty,
    ewc_stability_limit,
    fisher_diagonal,
    fisher_diagonal_loop,
    l2_anchor_penalty,
    l2_penalty,
    l2_sp_penalty,
    lm_fisher,
    quadratic_penalty,
    snapshot,
)
from .replay import ReservoirBuffer, replay_mixer, reservoir_sample
from .representations import (
    attention_distance,
    attention_entropy,
    attention_shift,
    layer_groups,
    linear_cka,
    representation_drift,
    restore_layers,
    weight_drift,
)
from .seeding import get_seed, make_generator, seed_everything
from .training import History, accuracy, evaluate, evaluate_lm, fit, fit_lm, train

__version__ = "0.1.0"

# Loaded on first use (PEP 562): these modules import matplotlib, ipywidgets, the capstone or transformers.
LAZY_MODULES = ("capstone", "hf", "plots", "widgets")
LAZY_NAMES = {name: "plots" for name in (
    "NEW_COLOR", "OLD_COLOR", "plot_accuracy_matrix", "plot_attention", "plot_frontier", "plot_loss_plane",
    "plot_method_frontier", "plot_old_vs_new", "plot_per_layer", "plot_scenarios", "plot_sweep_frontier")}


def __getattr__(name: str):
    """``fk.<name>`` for the lazily loaded modules and the names they export."""
    if name in LAZY_MODULES:
        return importlib.import_module(f".{name}", __name__)
    if name in LAZY_NAMES:
        value = getattr(importlib.import_module(f".{LAZY_NAMES[name]}", __name__), name)
        globals()[name] = value  # found directly from now on
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(LAZY_MODULES) | set(LAZY_NAMES))
