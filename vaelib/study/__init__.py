"""The report notebooks' logic, by concern (the notebooks only orchestrate; every number they show comes from here).

=================================  ======================================================================
module                             what it does
=================================  ======================================================================
:mod:`vaelib.study.session`        ``setup(kind, locals())``: checked parameters, seeding, run folder, models,
                                   clips, header
:mod:`vaelib.study.stages`         per-clip, per-stage scores of the round trip; notebook 01's tables
:mod:`vaelib.study.sweeps`         enhancer sweeps in the mel domain, Pareto front, best setting per criterion
:mod:`vaelib.study.claims`         the seed report's claims next to what we measure
:mod:`vaelib.study.summaries`      the headline numbers of each notebook (``metrics.json`` ``"summary"``)
:mod:`vaelib.study.prose`          sentences computed from the numbers (03's conclusions)
:mod:`vaelib.study.findings`       the run's answers for the report index, from the summaries
:mod:`vaelib.study.glossary`       labels, units, direction and one-line definitions of the summary keys
:mod:`vaelib.study.files`          ``metrics.csv`` / ``metrics.json``, the inputs signature
:mod:`vaelib.study.restorers`      notebook 04: restorers vs. baselines, verdict, best/worst clips
:mod:`vaelib.study.perceptual`     ViSQOL / STOI / PESQ / DNSMOS tables of 01 and 04 (when installed)
=================================  ======================================================================
"""

from .claims import (
    CLAIMS,
    claims_changes,
    claims_comparison_table,
    claims_rule_notes,
    claims_vs_measured,
    enhance_comparison_table,
    reuse_claims_scores,
)
from .files import clean_json, inputs_signature, write_metrics
from .perceptual import INSTALL_HINT as PERCEPTUAL_INSTALL_HINT
from .perceptual import (
    baseline_perceptual,
    perceptual_caption,
    perceptual_ready,
    perceptual_summary,
    perceptual_table,
    restorer_perceptual,
    reuse_baseline_rows,
)
from .prose import METRIC_NAMES, conclusions, fmt_num, why_disagree
from .restorers import (
    BASELINE_GRIDS,
    SEED_CANDIDATES,
    compare_restorers,
    energy_given_back,
    extremes,
    pairs_from_clips,
    per_clip_changes,
    summary_numbers,
    variant_mels,
    verdict,
)
from .session import (
    Clip,
    Models,
    Session,
    header_markdown,
    load_clips,
    load_models,
    notebook_dir,
    prepare_out_dir,
    progress,
    save_figure,
    setup,
)
from .stages import (
    MEAN_RULE,
    aggregate,
    attribution_table,
    is_ratio,
    mean_over_clips,
    quick_score,
    run_round_trips,
    score_stages,
    vocode_stages,
)
from .summaries import analysis_summary, baseline_summary, enhance_summary
from .sweeps import (
    CLAIMS_PRESETS,
    CRITERIA,
    DEFAULT_SWEEPS,
    SWEEP_FIXED,
    aggregate_sweep,
    best_per_criterion,
    encode_clip,
    pareto_front,
    per_clip_best,
    preset_labels,
    setting_label,
    sweep,
    sweep_grid,
    sweep_verdict,
)

__all__ = [
    "BASELINE_GRIDS", "CLAIMS", "CLAIMS_PRESETS", "CRITERIA", "DEFAULT_SWEEPS", "METRIC_NAMES", "SEED_CANDIDATES",
    "SWEEP_FIXED", "aggregate", "aggregate_sweep", "analysis_summary", "attribution_table", "baseline_summary",
    "best_per_criterion", "claims_changes", "claims_comparison_table", "claims_rule_notes", "claims_vs_measured",
    "energy_given_back",
    "clean_json", "Clip", "compare_restorers", "conclusions", "encode_clip", "enhance_comparison_table",
    "enhance_summary", "extremes", "fmt_num", "header_markdown", "inputs_signature", "is_ratio", "load_clips",
    "load_models", "Models", "notebook_dir", "pairs_from_clips", "pareto_front", "per_clip_best", "per_clip_changes",
    "prepare_out_dir", "preset_labels", "progress", "quick_score", "reuse_claims_scores", "run_round_trips",
    "save_figure", "score_stages", "Session", "setting_label", "setup", "summary_numbers", "sweep", "sweep_grid",
    "sweep_verdict", "MEAN_RULE", "mean_over_clips",
    "variant_mels", "verdict", "vocode_stages", "why_disagree", "write_metrics",
    "PERCEPTUAL_INSTALL_HINT", "baseline_perceptual", "perceptual_caption", "perceptual_ready", "perceptual_summary",
    "perceptual_table", "restorer_perceptual", "reuse_baseline_rows",
]
