"""``vaelib generate``: one diffusion run per prompt, decoded plain and enhanced from the *same* latents.

:func:`diffuse` runs the pipeline up to its scaled latent (AudioLDM2 / MusicLDM: ``output_type="latent"``;
AudioLDM, which has no latent output, is stopped at its ``decode_latents`` call); :func:`decode` is the
pipeline's own post-processing (``vae.decode(1 / s * z)`` → vocoder → trim), with the stages of a
:class:`~vaelib.generate.hook.Hook` run where :func:`~vaelib.generate.attach` runs them. The plain decode is
therefore exactly what the plain pipeline returns for the same generator seed, and the enhanced one what the
attached pipeline returns (the latent stage from the exact ``z`` rather than the ``x · s`` the hook recovers on
AudioLDM2/MusicLDM). :func:`generate_run` writes the run folder; :func:`load_pipeline` loads a whole pipeline
(HF id, local snapshot, HF cache; offline errors in one line; safetensors only).
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import numpy as np
import torch

from .._util import one_line, save_json
from .hook import Hook, attach, detach, hook_of, pipeline_kind, plan, run_stage

__all__ = ["GenerateError", "Generation", "load_pipeline", "diffuse", "decode", "generate", "generate_run",
           "read_prompts", "audio_length"]


class GenerateError(ValueError):
    """Bad input to ``vaelib generate``; the one-line message says how to fix it."""


@dataclasses.dataclass
class Generation:
    """One prompt generated once and decoded two ways.

    Attributes
    ----------
    prompt : str
    latent : torch.Tensor
        The scaled latent ``(1, C, T/4, M/4)`` the diffusion produced (CPU, float32).
    plain, enhanced : numpy.ndarray
        Waveforms ``(samples,)`` float32: the pipeline's own decode, and with the enhancers.
    plain_mel, enhanced_mel : numpy.ndarray
        Log-mels ``(T, M)`` float32 as the vocoder received them.
    seconds : dict
        ``diffusion``, ``decode_plain``, ``decode_enhanced`` wall-clock seconds.
    """

    prompt: str
    latent: torch.Tensor
    plain: np.ndarray
    enhanced: np.ndarray
    plain_mel: np.ndarray
    enhanced_mel: np.ndarray
    seconds: dict


def read_prompts(prompts=(), prompts_file=None) -> list[str]:
    """The prompts: ``prompts`` then the non-empty lines of ``prompts_file`` (UTF-8; ``#`` lines are comments).
    One-line :class:`GenerateError` when there are none or the file cannot be read."""
    out = [p for p in (prompts or []) if p.strip()]
    if prompts_file is not None:
        path = Path(prompts_file).expanduser()
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise GenerateError(f"cannot read --prompts file {path}: {one_line(exc)}") from None
        out += [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    if not out:
        raise GenerateError("no prompt given: pass --prompt TEXT (repeatable) or --prompts FILE (one per line)")
    return out


def _check_pipeline_folder(folder: Path) -> None:
    if not (folder / "model_index.json").is_file():
        raise GenerateError(f"{folder} is not a diffusers pipeline folder (no model_index.json); vaelib generate "
                            "needs the whole pipeline (save_pretrained folder or HF snapshot), not only vae/ + "
                            "vocoder/")
    from ..models import _PICKLE_SUFFIXES

    for sub in sorted(p for p in folder.iterdir() if p.is_dir()):
        files = [f for f in sub.iterdir() if f.is_file()]
        if any(f.suffix in _PICKLE_SUFFIXES for f in files) and not any(f.suffix == ".safetensors" for f in files):
            raise GenerateError(f"refusing to load pickle weights in {sub}: unpickling can execute arbitrary code; "
                                "convert them to safetensors (save_pretrained(safe_serialization=True))")


def load_pipeline(model: str = "cvssp/audioldm2", device="auto", dtype=None):
    """Load a whole AudioLDM2 / AudioLDM / MusicLDM pipeline with ``DiffusionPipeline.from_pretrained``.

    ``model``: a local folder (``save_pretrained`` output or HF snapshot, with ``model_index.json``) or a HF repo id
    (taken from the HF cache; downloaded only when ``HF_HUB_OFFLINE`` is not set). Only safetensors weights are
    loaded. ``dtype``: ``float32`` (default), ``bfloat16``, ``float16`` (not on CPU). Returns the pipeline on
    ``device`` with the transformers-5 text-path fix applied (:func:`vaelib.generate.compat.fix_language_model`).
    One-line :class:`GenerateError` on any failure.
    """
    from diffusers import DiffusionPipeline

    from ..models import (
        ModelLoadError,
        _cached_snapshot,
        _offline,
        _pick_dtype,
        check_device,
        check_hub,
        hf_cache_dir,
        looks_like_repo_id,
    )
    from .compat import fix_language_model

    try:
        dev = check_device(device)
        dt = _pick_dtype(dtype, dev)
    except ModelLoadError as exc:
        raise GenerateError(one_line(exc)) from None
    folder = Path(model).expanduser()
    kwargs = {"use_safetensors": True, "torch_dtype": dt}
    if folder.exists():
        if not folder.is_dir():
            raise GenerateError(f"--model {folder} is a file; pass the pipeline folder (with model_index.json)")
        _check_pipeline_folder(folder)
        source, kwargs["local_files_only"] = str(folder), True
    elif looks_like_repo_id(model):
        source, kwargs["cache_dir"] = model, str(hf_cache_dir())
        if _offline():
            kwargs["local_files_only"] = True
        elif _cached_snapshot(model, "vae") is None:  # a typo or no network: one line before anything loads
            try:
                check_hub(model, "model_index.json")
            except ModelLoadError as exc:
                raise GenerateError(one_line(exc)) from None
    else:
        raise GenerateError(f"--model {model!r} is neither an existing folder nor a Hugging Face repo id like "
                            "'cvssp/audioldm2'")
    how = (f"download the whole pipeline on a connected machine (`huggingface-cli download {model}`) into the HF "
           f"cache ({hf_cache_dir()}), or pass a local snapshot folder")
    try:
        pipe = DiffusionPipeline.from_pretrained(source, **kwargs)
    except Exception as exc:  # diffusers/hub errors are long and deep: one line, with the fix
        if kwargs.get("local_files_only") and not folder.exists():
            raise GenerateError(f"{model} is not (completely) in the Hugging Face cache {hf_cache_dir()} and "
                                f"HF_HUB_OFFLINE=1 forbids downloading: {how}") from None
        raise GenerateError(f"could not load the pipeline {model}: {one_line(exc, 200)}; {how}") from None
    try:
        pipeline_kind(pipe)
    except TypeError as exc:
        raise GenerateError(f"--model {model}: {exc}") from None
    fix_language_model(pipe)
    pipe.set_progress_bar_config(disable=True)
    return pipe.to(dev)


def audio_length(pipe, duration: float | None = None) -> int:
    """Samples the pipeline returns: ``int(duration · sr)``; default duration as diffusers computes it,
    ``unet.sample_size · vae_scale_factor · prod(vocoder upsample rates) / sr``."""
    sr = int(pipe.vocoder.config.sampling_rate)
    if duration is None:
        duration = pipe.unet.config.sample_size * pipe.vae_scale_factor * float(
            np.prod(pipe.vocoder.config.upsample_rates)) / sr
    return int(duration * sr)


class _Stop(Exception):
    """Raised inside AudioLDM's ``decode_latents`` to hand back the scaled latent without decoding."""

    def __init__(self, latents):
        super().__init__("latent captured")
        self.latents = latents


def diffuse(pipe, prompt: str, *, seed: int = 0, steps: int = 200, guidance: float = 3.5, duration=None,
            negative_prompt=None) -> torch.Tensor:
    """Run the diffusion for one prompt and return its scaled latent ``(1, C, T/4, M/4)`` (the pipeline's dtype,
    on its device), without decoding. The generator is a CPU ``torch.Generator`` seeded with ``seed`` (as
    diffusers' tests do, so a seed means the same latents on every device)."""
    kw = {"num_inference_steps": int(steps), "guidance_scale": float(guidance), "audio_length_in_s": duration,
          "negative_prompt": negative_prompt, "generator": torch.Generator().manual_seed(int(seed))}
    if pipeline_kind(pipe) != "AudioLDMPipeline":
        return pipe(prompt, output_type="latent", **kw).audios

    def stop(latents, *args, **kwargs):
        raise _Stop(latents)

    object.__setattr__(pipe, "decode_latents", stop)
    try:
        pipe(prompt, **kw)
    except _Stop as caught:
        return caught.latents
    finally:
        pipe.__dict__.pop("decode_latents", None)
    raise RuntimeError("AudioLDMPipeline returned without decoding its latents")  # pragma: no cover


@torch.no_grad()
def decode(pipe, latents: torch.Tensor, hook: Hook | None = None, *, length: int | None = None):
    """The pipeline's post-processing of the scaled latent ``latents``, with ``hook``'s stages where
    :func:`~vaelib.generate.attach` runs them (``None``: exactly the plain pipeline's).

    ``z → [latent stage] → vae.decode(1 / s · z).sample → [mel stage] → pipe.mel_spectrogram_to_waveform → [:length]``.
    Returns ``(mel, audio)``: the log-mel ``(B, 1, T, M)`` the vocoder received and the waveforms ``(B, samples)``
    (CPU float32, as the pipeline returns them).
    """
    if hook_of(pipe) is not None:
        raise ValueError("decode() runs the stages itself: detach the pipeline first")
    z = run_stage(hook.latent, latents, seed=hook.seed) if hook else latents
    mel = pipe.vae.decode(1 / pipe.vae.config.scaling_factor * z).sample
    if hook:
        mel = run_stage(hook.mel, mel, seed=hook.seed)
    audio = pipe.mel_spectrogram_to_waveform(mel)
    return mel, audio[:, :length] if length is not None else audio


def generate(pipe, prompts, enhancers=None, *, seed: int = 0, steps: int = 200, guidance: float = 3.5,
             duration=None, negative_prompt=None, allow_foreign_restorer: bool = False, progress=None) -> list:
    """Each prompt diffused once (:func:`diffuse`, seed ``seed`` for every prompt, so a prompt's audio does not
    depend on the others) and decoded plain and with ``enhancers`` (:func:`decode`); returns :class:`Generation`
    objects. ``enhancers`` are parsed and restorers checked once, before any diffusion. A hook attached to
    ``pipe`` is set aside during the run and put back afterwards."""
    hook = plan(pipe, enhancers, seed=seed, allow_foreign_restorer=allow_foreign_restorer)
    before = hook_of(pipe)
    detach(pipe)
    length = audio_length(pipe, duration)
    out = []
    try:
        for i, prompt in enumerate(prompts):
            if progress:
                progress(f"[{i + 1}/{len(prompts)}] {one_line(prompt, 80)}")
            t0 = time.perf_counter()
            z = diffuse(pipe, prompt, seed=seed, steps=steps, guidance=guidance, duration=duration,
                        negative_prompt=negative_prompt)
            t1 = time.perf_counter()
            plain_mel, plain = decode(pipe, z, None, length=length)
            t2 = time.perf_counter()
            enh_mel, enhanced = decode(pipe, z, hook, length=length)
            t3 = time.perf_counter()
            out.append(Generation(
                prompt=prompt, latent=z.detach().float().cpu(), plain=plain[0].numpy(), enhanced=enhanced[0].numpy(),
                plain_mel=plain_mel[0, 0].float().cpu().numpy(), enhanced_mel=enh_mel[0, 0].float().cpu().numpy(),
                seconds={"diffusion": t1 - t0, "decode_plain": t2 - t1, "decode_enhanced": t3 - t2}))
    finally:
        if before is not None:
            attach(pipe, before.enhancers, seed=before.seed, allow_foreign_restorer=before.allow_foreign_restorer)
    return out


def _new_run_dir(out) -> Path:
    if out is None:
        out = Path("generations") / time.strftime("%Y%m%d-%H%M%S")
    run_dir = Path(out).expanduser().resolve()
    if run_dir.exists() and (not run_dir.is_dir() or any(run_dir.iterdir())):
        raise GenerateError(f"output folder {run_dir} already exists and is not empty; choose a new --out folder "
                            "(outputs are never written over)")
    return run_dir


def generate_run(model: str, prompts, enhancers=None, *, out=None, seed: int = 0, steps: int = 200,
                 guidance: float = 3.5, duration=None, negative_prompt=None, device="auto", dtype=None,
                 allow_foreign_restorer: bool = False, echo=None, pipe=None) -> Path:
    """``vaelib generate``: load the pipeline, generate every prompt plain and enhanced from the same latents,
    and write the run folder; returns the path of its ``index.html``.

    Run folder (new, or empty): ``index.html`` (inert page with players and figures, :mod:`vaelib.generate.page`),
    ``run.json`` (everything needed to repeat it, timings), and per prompt ``NNN/plain.wav``, ``NNN/enhanced.wav``,
    ``NNN/comparison.png``, ``NNN/prompt.txt`` (folder names are numbers, never derived from the prompt).
    All input is checked (prompts, enhancers, restorer/VAE fit, output folder) before the first diffusion step.
    """
    from .. import __version__, enhance
    from ..audio import save_audio
    from ..evaluate import EvalError, parse_enhancer_spec
    from ..plots import generation_figure
    from .page import write_page

    echo = echo or (lambda s: None)
    prompts = list(prompts)
    try:
        specs = parse_enhancer_spec(enhancers)
    except EvalError as exc:
        raise GenerateError(one_line(exc)) from None
    if not specs:
        raise GenerateError("--enhancers is empty: name at least one enhancer, e.g. --enhancers learned")
    if not (isinstance(steps, int) and steps >= 1):
        raise GenerateError(f"--steps must be a positive integer (got {steps!r})")
    if duration is not None and not duration > 0:
        raise GenerateError(f"--duration must be a positive number of seconds (got {duration!r})")
    run_dir = _new_run_dir(out)
    if pipe is None:
        pipe = load_pipeline(model, device=device, dtype=dtype)
    try:
        hook = plan(pipe, specs, seed=seed, allow_foreign_restorer=allow_foreign_restorer)
    except (TypeError, ValueError) as exc:
        raise GenerateError(one_line(exc)) from None
    kind = hook.kind
    echo(f"pipeline: {kind} from {model} ({pipe.device}, {pipe.vae.dtype}); enhancers: {', '.join(specs)}")
    started = time.strftime("%Y-%m-%d %H:%M")
    gens = generate(pipe, prompts, specs, seed=seed, steps=steps, guidance=guidance, duration=duration,
                    negative_prompt=negative_prompt, allow_foreign_restorer=allow_foreign_restorer, progress=echo)
    run_dir.mkdir(parents=True, exist_ok=True)
    sr = int(pipe.vocoder.config.sampling_rate)
    items = []
    for i, g in enumerate(gens, start=1):
        folder = run_dir / f"{i:03d}"
        folder.mkdir()
        (folder / "prompt.txt").write_text(g.prompt + "\n", encoding="utf-8")
        save_audio(folder / "plain.wav", g.plain, sr)
        save_audio(folder / "enhanced.wav", g.enhanced, sr)
        fig = generation_figure(g.plain_mel, g.enhanced_mel, g.plain, g.enhanced, sr=sr, title=one_line(g.prompt, 90))
        fig.savefig(folder / "comparison.png", dpi=90)
        items.append({"folder": folder.name, "prompt": g.prompt, "seconds": g.seconds, "figure": fig,
                      "peak_plain": float(np.abs(g.plain).max()), "peak_enhanced": float(np.abs(g.enhanced).max())})
    import diffusers
    import transformers

    record = {
        "vaelib": __version__, "torch": torch.__version__, "diffusers": diffusers.__version__,
        "transformers": transformers.__version__, "started": started, "model": model, "pipeline": kind,
        "device": str(pipe.device), "dtype": str(pipe.vae.dtype).replace("torch.", ""), "seed": seed, "steps": steps,
        "guidance": guidance, "duration_s": audio_length(pipe, duration) / sr, "negative_prompt": negative_prompt,
        "enhancers": {label: {"method": s.method, **s.params} for label, s in hook.specs.items()},
        "enhancer_stages": {label: enhance.get(s.method).stage for label, s in hook.specs.items()},
        "allow_foreign_restorer": allow_foreign_restorer, "sample_rate": sr,
        "prompts": [{k: v for k, v in it.items() if k != "figure"} for it in items],
    }
    save_json(run_dir / "run.json", record)
    page = write_page(run_dir / "index.html", record, items)
    echo(f"run folder: {run_dir}")
    return page

