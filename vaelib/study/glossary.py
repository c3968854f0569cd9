"""Human labels, units, direction and one-line definitions of the report's numbers, generated from the metrics.

Every entry of :data:`METRICS` names the :mod:`vaelib.metrics` function that defines it; its definition is the
first line of that function's docstring (so the glossary cannot drift from the code) plus, where the key is a
variant (a band, a change, a percentage), a few words on the variant. :func:`describe_key` splits a summary key
of ``metrics.json`` (``<stage>_<metric>``, e.g. ``vae_lsd_hf``, ``seed_frequency_d_snr_db``) into the stage and
the metric and labels both. Formulas: ``docs/reference.md`` §4 and each function's docstring.
"""

from __future__ import annotations

import dataclasses
import inspect
import re

from .. import metrics as _metrics

__all__ = ["METRICS", "STAGES", "Metric", "describe_key", "definition", "format_value", "plain_text"]


@dataclasses.dataclass(frozen=True)
class Metric:
    """One metric of the summaries.

    Attributes
    ----------
    label : str
        Short human label (table row / column).
    unit : str
        ``"dB"``, ``"%"``, ``"pp"``, ``"×"``, ``"nat"`` or ``""``.
    better : str
        ``"lower"``, ``"higher"``, ``"1"`` (closest to 1), ``"0"`` (closest to 0) or ``""`` (no direction).
    source : str
        Name of the :mod:`vaelib.metrics` function (or study function) that defines it.
    note : str
        What this key adds to the source's definition (band, domain, change, scale).
    """

    label: str
    unit: str
    better: str
    source: str
    note: str = ""

    @property
    def arrow(self) -> str:
        """``↓ better`` / ``↑ better`` / ``→ 1 better`` / ``''``."""
        return {"lower": "↓ better", "higher": "↑ better", "1": "→ 1 better", "0": "→ 0 better"}.get(self.better, "")


_WAVE = "waveform vs. the input waveform (vocoded)"
_MEL = "decoded log-mel vs. the input log-mel (no vocoder)"
_PHASE = "phase-sensitive: the seed report's metric, kept for continuity"

#: Metric key (as in ``metrics.score`` / ``metrics.score_mel`` / the summaries) -> :class:`Metric`.
METRICS: dict[str, Metric] = {
    "lsd": Metric("LSD", "", "lower", "lsd", f"full band; {_WAVE}"),
    "lsd_lf": Metric("LSD < 4 kHz", "", "lower", "lsd_lf", f"bins below 4 kHz; {_WAVE}"),
    "lsd_hf": Metric("LSD-HF (≥ 4 kHz)", "", "lower", "lsd_hf", f"bins from 4 kHz; {_WAVE}"),
    "mrstft": Metric("MR-STFT distance", "", "lower", "mrstft", _WAVE),
    "si_sdr": Metric("SI-SDR", "dB", "higher", "si_sdr", "gain-invariant but phase-sensitive"),
    "snr_db": Metric("SNR (seed rule)", "dB", "higher", "snr_db", _PHASE),
    "correlation": Metric("correlation (seed rule)", "", "higher", "correlation", _PHASE),
    "claims_ret_low": Metric("retention < 500 Hz (seed rule)", "×", "1", "band_retention_claims", _PHASE),
    "claims_ret_mid": Metric("retention 0.5–4 kHz (seed rule)", "×", "1", "band_retention_claims", _PHASE),
    "claims_ret_high": Metric("retention ≥ 4 kHz (seed rule)", "×", "1", "band_retention_claims", _PHASE),
    "claims_ret_high_pct": Metric("retention ≥ 4 kHz (seed rule)", "%", "", "band_retention_claims",
                                  f"in percent; {_PHASE}"),
    "ber_low": Metric("energy < 500 Hz", "×", "1", "band_energy_ratio", "output / input, whole clip (Welch)"),
    "ber_mid": Metric("energy 0.5–4 kHz", "×", "1", "band_energy_ratio", "output / input, whole clip (Welch)"),
    "ber_high": Metric("energy 4–8 kHz", "×", "1", "band_energy_ratio", "output / input, whole clip (Welch)"),
    "hf_flatness": Metric("4–8 kHz flatness", "", "", "hf_flatness", "of the output's 4–8 kHz band"),
    "added_hf_flatness": Metric("flatness of added 4–8 kHz energy", "", "", "added_hf_flatness",
                                "near 1: what was added is spread like white noise"),
    "mel_err_db_high": Metric("log-mel error ≥ 4 kHz", "dB", "lower", "mel_band_error_db",
                              "re-analysed output vs. input, mean |Δ| over frames and mel bins ≥ 4 kHz"),
    "mel_err_db_lf": Metric("log-mel error < 4 kHz", "dB", "lower", "mel_band_error_db",
                            "re-analysed output vs. input, mean |Δ| over frames and mel bins < 4 kHz"),
    "mel_l1": Metric("mel L1", "nat", "lower", "mel_l1", _MEL),
    "mel_lsd": Metric("mel LSD", "", "lower", "mel_lsd", f"full band; {_MEL}"),
    "mel_lsd_hf": Metric("mel LSD-HF (≥ 4 kHz)", "", "lower", "mel_lsd", f"mel bins from 4 kHz; {_MEL}"),
    "mel_lsd_lf": Metric("mel LSD < 4 kHz", "", "lower", "mel_lsd", f"mel bins below 4 kHz; {_MEL}"),
    "mel_ber_high": Metric("mel energy 4–8 kHz", "×", "1", "mel_band_energy_ratio", f"decoded / input; {_MEL}"),
    "mel_err_db_high_dec": Metric("log-mel error ≥ 4 kHz (decoded)", "dB", "lower", "mel_band_error_db_logmel", _MEL),
    "mel_err_db_lf_dec": Metric("log-mel error < 4 kHz (decoded)", "dB", "lower", "mel_band_error_db_logmel", _MEL),
    "share_lsd_hf": Metric("VAE share of LSD-HF", "%", "", "attribution_table",
                           "(round trip − vocoder only) / round trip; < 0: the VAE adds no high-band distance"),
    "share_lsd_lf": Metric("VAE share of LSD < 4 kHz", "%", "", "attribution_table",
                           "(round trip − vocoder only) / round trip, bins below 4 kHz"),
    "d_snr_db": Metric("Δ SNR vs. VAE only (seed rule)", "dB", "", "snr_db", _PHASE),
    "d_claims_high_pp": Metric("Δ retention ≥ 4 kHz vs. VAE only (seed rule)", "pp", "", "band_retention_claims",
                               "the seed report's 'high-frequency improvement'; counts added noise as restored"),
    "d_corr": Metric("Δ correlation vs. VAE only (seed rule)", "", "", "correlation", _PHASE),
    # perceptual measures (vaelib[perceptual]; docs/perceptual.md): each output vs. the normalised input
    "visqol": Metric("ViSQOL (audio, 48 kHz)", "", "higher", "visqol",
                     f"visqol-python, checked against google/visqol's conformance values; {_WAVE}"),
    "visqol_speech": Metric("ViSQOL (speech, 16 kHz)", "", "higher", "visqol_speech", f"speech clips only; {_WAVE}"),
    "stoi": Metric("STOI", "", "higher", "stoi", f"pystoi; speech clips only; {_WAVE}"),
    "estoi": Metric("ESTOI", "", "higher", "estoi", f"pystoi; speech clips only; {_WAVE}"),
    "pesq_wb": Metric("PESQ-WB", "", "higher", "pesq_wb", f"pesq (ITU-T P.862.2 C code); speech clips only; {_WAVE}"),
    "dnsmos_ovrl": Metric("DNSMOS overall", "", "higher", "dnsmos", "speechmos; no reference: of the output alone; "
                          "speech clips only"),
    "dnsmos_sig": Metric("DNSMOS signal", "", "higher", "dnsmos", "speech-signal quality of the output; speech only"),
    "dnsmos_bak": Metric("DNSMOS background", "", "higher", "dnsmos", "background-noise quality of the output (5: "
                         "no audible noise); speech only"),
    "visqol_change_median": Metric("ViSQOL change, median over clips", "", "higher", "visqol",
                                   "per-clip difference to the plain VAE, median"),
    "visqol_n_improved": Metric("clips with higher ViSQOL", "", "", "visqol", "count of clips where the method "
                                "scores above the plain VAE"),
    "clap_cosine": Metric("CLAP embedding cosine distance", "", "lower", "embedding_distance",
                          "needs CLAP weights the user has (vaelib ships none)"),
}

#: Summary-key prefixes (stages / variants) -> human label.
STAGES: dict[str, str] = {
    "projection": "vocoder only (input mel → vocoder)",
    "naive": "4×4 reference codec (band-blind)",
    "vae": "VAE round trip",
    "configured": "configured enhancer",
    "best": "best swept setting",
    "seed_frequency": "seed report: frequency g 1.5",
    "seed_noise": "seed report: noise 0.1",
    "seed_contrast": "seed report: contrast 1.3",
    "seed_hybrid": "seed report: hybrid",
    "best_seed": "best seed-report setting",
    "baseline_mel_shelf": "mel high shelf",
    "baseline_mel_unsharp": "mel unsharp mask",
    "baseline_frequency_axis": "frequency-axis latent boost",
    "learned": "learned restorer",
    "learned_cond": "conditional restorer (type inferred)",
    "learned_cond_label": "conditional restorer (type given)",
}

_META = {"n_clips": "clips", "n_settings": "swept settings", "n_perceptual_clips": "clips with perceptual measures",
         "n_perceptual_speech": "speech clips with the speech measures",
         "n_better_mel_lsd_hf": "swept settings below the plain VAE's mel LSD-HF"}


_ROLE = re.compile(r":(?:py:)?(?:func|meth|class|mod|data|attr|obj|exc):`~?([^`]+)`")


def plain_text(doc: str) -> str:
    """A docstring line as plain text: reST roles become their target's short name (``:func:`lsd``` → ``lsd()``,
    ``:data:`~vaelib.metrics.BANDS``` → ``BANDS``), double back-quotes and ``*emphasis*`` marks are dropped."""
    def role(m):
        name = m.group(1).split(".")[-1]
        return f"{name}()" if m.group(0).startswith((":func:", ":meth:", ":py:func:", ":py:meth:")) else name

    text = _ROLE.sub(role, doc)
    text = re.sub(r"``([^`]*)``", r"\1", text)
    text = re.sub(r"`([^`]*)`", r"\1", text)
    return re.sub(r"(?<![\w*])\*{1,2}([^*\s][^*]*?)\*{1,2}(?![\w*])", r"\1", text)


def definition(key: str) -> str:
    """One line defining metric ``key``, as plain text (:func:`plain_text`: no reST markup): the first docstring
    line of its source function, plus the key's note."""
    m = METRICS[key]
    fn = getattr(_metrics, m.source, None)
    if fn is None:
        from . import stages as _stages

        fn = getattr(_stages, m.source, None)
    first = (inspect.getdoc(fn) or "").strip().split("\n")[0] if fn is not None else ""
    first = plain_text(first)
    return f"{first} ({m.note})" if m.note else first


def describe_key(key: str) -> tuple[str, str, str | None]:
    """Split a summary key into ``(stage label, metric key, change)``.

    Returns ``(stage_label, metric, suffix)`` where ``metric`` is a key of :data:`METRICS` (or ``""`` when the key
    is unknown: then ``stage_label`` is the key itself) and ``suffix`` is ``"change"`` for ``..._change`` keys
    (a difference vs. the plain VAE, in the metric's unit) and ``"rel_change"`` for ``..._rel_change`` keys (a
    relative change, a fraction).
    ``n_clips``-style keys give ``("", key, None)``.
    """
    if key in _META:
        return "", key, None
    suffix = None
    base = key
    if base.endswith("_rel_change"):
        base, suffix = base[: -len("_rel_change")], "rel_change"
    elif base.endswith("_change"):
        base, suffix = base[: -len("_change")], "change"
    for metric in sorted(METRICS, key=len, reverse=True):
        if base.endswith("_" + metric):
            prefix = base[: -len(metric) - 1]
            return STAGES.get(prefix, prefix.replace("_", " ")), metric, suffix
        if base == metric:
            return "", metric, suffix
    return key, "", None


def format_value(value, metric: str = "", suffix: str | None = None) -> str:
    """A number for a table cell, in the metric's unit (``%`` keys are fractions ×100 unless already percent);
    ``suffix="rel_change"`` formats a relative change (a fraction) as a signed percentage."""
    import math

    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "–"
    m = METRICS.get(metric)
    unit = m.unit if m else ""
    v = float(value)
    if suffix == "rel_change":
        return f"{100 * v:+.1f} %"
    if metric.startswith("share_"):
        return f"{100 * v:+.0f} %"
    if unit == "×":
        return f"{v:.3g}×" if abs(v) < 1e4 else f"{v:.2e}×"
    text = f"{v:.3g}" if (abs(v) >= 1e4 or (v != 0 and abs(v) < 1e-3)) else f"{v:.3f}"  # one width per column
    return f"{text} {unit}".strip() if unit not in ("", "nat") else text
