"""forgetkit: a small PyTorch library for a course on catastrophic forgetting in fine-tuning.

One module per concept, each readable top to bottom:

- ``seeding``, ``device``: one seed for everything; a GPU when there is one, else the CPU
- ``data``: digits task streams (permuted pixels, class splits)
- ``languages``: synthetic languages, a character tokenizer, LM batches
- ``models``: an MLP and a tiny transformer LM
- ``training``: one training loop with extension points; fit/evaluate for classifiers and LMs
- ``pretrained``: a cached base LM that already speaks a language
- ``metrics``: accuracy matrix, ACC, BWT, FWT, forgetting, perplexity
- ``peft``: freezing by name, linear probe, LP-FT, adapters, LoRA (with merge), parameter counts
- ``interpolation``: weight-space lines and planes between trained networks; WiSE-FT
- ``replay``: reservoir buffer and replay mixing (rehearsal)
- ``interference``: gradient cosines, first-order loss change, A-GEM and PCGrad
- ``regularizers``: L2, L2-SP and EWC penalties, online EWC, the per-sample diagonal Fisher (torch.func)
- ``representations``: per-layer weight and representation drift (linear CKA), restoring layers, attention stats
- ``capstone``: a general LM becomes a clinical specialist; every mitigation compared over seeds
  (``bench``: the same comparison on the command line, ``forgetkit-bench``)
- ``plots``: the course's pictures and colours
- ``widgets``: interactive explorers over precomputed results
- ``exercises``: checks for the lessons' exercises, with fallbacks
- ``checks``: the argument checks the modules share (clear errors for bad input)
- ``claims``: ``claim``, the lessons' assertions, printed with their margins for the seed sweep
- ``hf``: the same measurements and mitigations on Hugging Face ``transformers``/``peft`` models
  (imported on first use of ``fk.hf``, so ``import forgetkit`` does not load transformers)
"""

from . import (
    capstone,
    exercises,
    interference,
    interpolation,
    peft,
    replay,
    representations,
    widgets,
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
from .models import MLP, TinyLM
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
    unfreeze,
    unmerge_lora,
)
from .plots import (
    NEW_COLOR,
    OLD_COLOR,
    plot_accuracy_matrix,
    plot_attention,
    plot_frontier,
    plot_loss_plane,
    plot_old_vs_new,
    plot_per_layer,
    plot_sweep_frontier,
)
from .pretrained import cache_dir, pretrained_lm
from .regularizers import (
    OnlineEWC,
    batched_fisher_shortcut,
    ewc_penalty,
    ewc_stability_limit,
    fisher_diagonal,
    fisher_diagonal_loop,
    l2_anchor_penalty,
    l2_penalty,
    l2_sp_penalty,
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


def __getattr__(name: str):
    """``fk.hf`` imports ``forgetkit.hf`` (and with it ``transformers``) on first use only."""
    if name == "hf":
        import importlib

        return importlib.import_module(".hf", __name__)
    raise AttributeError(f"module 'forgetkit' has no attribute {name!r}")
