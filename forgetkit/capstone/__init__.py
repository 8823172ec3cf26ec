"""The capstone: a general language model becomes a domain specialist. Which recipe keeps it general?

Scenario. ``pretrained_lm("general")`` is a ``TinyLM`` that speaks the "general" synthetic
language. We fine-tune it on the "clinical" register (same function words, new jargon, rigid
report templates) and measure two numbers on held-out text after every run::

    forgetting = L_general(after) / L_general(before) - 1    (relative rise of the general loss; 0 = kept)
    learning   = 1 - L_domain(after) / L_domain(before)      (relative fall of the domain loss; higher = learned)

plus the number of trainable parameters and the seconds of training. Every mitigation of the
course is one entry of ``METHODS`` with one *strength* knob:

==============  =====================================  ========================================
name            strength                               idea (lesson)
==============  =====================================  ========================================
naive           (none)                                 full fine-tuning, the baseline (01)
low-lr          learning-rate factor (< 1)             a gentler training regime (08)
l2-sp           lambda of the pull to the start        L2-SP (Li et al., 2018) (05)
ewc             lambda of the Fisher-weighted pull     EWC (Kirkpatrick et al., 2017) (05)
freeze          layer groups frozen from the bottom    freezing lower layers (00, 06)
head-only       (none)                                 train only the final LayerNorm + head (06)
adapter         bottleneck width (4x the lr)           Houlsby et al., 2019 (06)
lora            rank (4x the lr)                       Hu et al., 2021 (06)
replay          share of general text in each batch    rehearsal (07)
distill         lambda of the KL to the base model     LwF (Li & Hoiem, 2017): no old data (07)
wise-ft         weight alpha of the fine-tuned model   WiSE-FT (Wortsman et al., 2022) (08)
==============  =====================================  ========================================

The package, read in this order:

- ``scenario``: ``Settings`` (how every run is made) and ``Scenario`` (the base model and corpora);
- ``methods``: what each mitigation does to a fresh copy of the base model (``METHODS``);
- ``run``: one fine-tuning run (``finetune``) and many (``run_comparison``);
- ``results``: the table of a comparison (``Results``) and plain fine-tuning's frontier;
- ``recipes``: targets a specialist must meet, and the recipes that meet them.

``run_comparison`` runs methods x strengths x seeds and returns a ``Results`` table with one row
per (method, strength, seed, checkpoint step): a single run also yields its earlier checkpoints,
so "fewer steps" costs nothing extra. ``naive`` and ``wise-ft`` share one training run per seed.
The notebook (lesson 09) and the command line (``python -m forgetkit.bench``) both use it; the
picture is ``fk.plot_method_frontier``.
"""

from .methods import METHODS, Method, Prepared, check_method
from .recipes import Targets, check_recipe_format, evaluate_recipe, reference_recipe, target_margin
from .results import METRICS, PLAIN_METHODS, Results, plain_forgetting_at
from .run import finetune, parse_methods, run_comparison, run_method
from .scenario import Scenario, Settings, make_scenario

__all__ = [
    "METHODS", "METRICS", "PLAIN_METHODS", "Method", "Prepared", "Results", "Scenario", "Settings", "Targets",
    "check_method", "check_recipe_format", "evaluate_recipe", "finetune", "make_scenario", "parse_methods",
    "plain_forgetting_at", "reference_recipe", "run_comparison", "run_method", "target_margin",
]
