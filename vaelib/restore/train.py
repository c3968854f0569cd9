"""Training and evaluation of a restorer (``vaelib train-restorer``): loss, loop, checkpoints, held-out scores, card."""

from __future__ import annotations

import csv
import dataclasses
import json
import math
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from .._util import save_json
from ..audio import LOG_CLAMP
from ..categories import category_index
from ..models import vae_fingerprint
from ..runlock import LOCK_NAME
from .data import collect_pairs, split_holdout
from .model import WEIGHTS, Restorer, RestorerConfig, RestorerError, save_restorer

__all__ = ["TrainOptions", "restorer_loss", "evaluate_restorer", "train_restorer", "model_card"]


def restorer_loss(est: torch.Tensor, ref: torch.Tensor, hf_mask: torch.Tensor, hf_weight: float = 3.0,
                  lsd_weight: float = 1.0, eps: float = 1e-4, energy_weight: float = 0.0) -> torch.Tensor:
    """Band-weighted L1 on log-mel, a per-frame high-band RMS term and a high-band energy term.

    ::

        loss = Σ w_m |d| / Σ w_m  +  lsd_weight · mean_{b,t} sqrt( mean_{m ∈ HF} d² + eps )
               + energy_weight · mean_b | ln Σ_{t, m ∈ HF} exp(est) − ln Σ_{t, m ∈ HF} exp(ref) |,   d = est − ref

    The third term is the crop's 4–8 kHz mel energy log-ratio (``ln`` of :func:`vaelib.metrics.mel_band_energy_ratio`'s
    high-band ratio, computed with ``logsumexp``): it penalises over- and under-restoration of the band's energy
    explicitly, which the first two (per-bin distances) leave free — a restorer can lower them by reshaping the band
    while removing energy the VAE already lost.

    Parameters
    ----------
    est, ref : torch.Tensor
        Log-mels ``(B, 1, T, M)``.
    hf_mask : torch.Tensor
        Boolean ``(M,)``: bins at or above 4 kHz.
    """
    d = est - ref
    w = 1.0 + (hf_weight - 1.0) * hf_mask.to(d.dtype)
    l1 = (d.abs() * w).mean() / w.mean()
    if (lsd_weight == 0 and energy_weight == 0) or not bool(hf_mask.any()):
        return l1
    hf = d[..., hf_mask]
    loss = l1 + lsd_weight * torch.sqrt(hf.pow(2).mean(-1) + eps).mean()
    if energy_weight:
        e_est = torch.logsumexp(est[..., hf_mask].flatten(1), dim=1)
        e_ref = torch.logsumexp(ref[..., hf_mask].flatten(1), dim=1)
        loss = loss + energy_weight * (e_est - e_ref).abs().mean()
    return loss



@torch.no_grad()
def _restored_mel(restorer: Restorer, item: dict, vae=None, strength: float = 1.0, category=None):
    if restorer.kind == "mel":
        return restorer.restore(item["dec"], strength, category)
    if vae is None:
        raise RestorerError("a latent restorer needs the VAE to decode its output")
    z = restorer.restore(item["z"].to(vae.device), strength, category)
    return vae.decode(z).float().cpu()


def evaluate_restorer(restorer: Restorer, items: list[dict], vae=None, category="label", cfg=None) -> dict:
    """Score a restorer on (input, decoded) pairs: mel LSD-HF, mel LSD and mel L1 of plain VAE vs restored.

    ``category="label"`` conditions a conditional restorer on each clip's label; ``"auto"`` lets it infer the
    type. Returns ``{"per_clip": [...], "mean": {...}}`` with ``*_vae``, ``*_restored`` and ``*_change`` (relative,
    negative = better) for ``lsd_hf``, ``lsd`` and ``l1``; ``type_accuracy`` for conditional restorers.
    """
    from .. import metrics
    from ..audio import MelConfig

    c = restorer.config
    cfg = cfg or MelConfig(sr=int(c.sr), n_fft=int(c.n_fft), win_length=int(c.n_fft), hop_length=min(160, c.n_fft),
                           n_mels=int(c.n_mels), fmin=float(c.fmin), fmax=float(c.fmax))
    band = (c.high_band_hz, c.sr / 2 + 1)
    rows, hits = [], []
    for it in items:
        cat = None
        if restorer.embedding is not None:
            cat = it["category"] if category == "label" else "auto"
            x = it["dec"] if restorer.kind == "mel" else it["z"]
            hits.append(int(restorer.type_probs(x.to(next(restorer.parameters()).device)).argmax()) == it["category"])
        est = _restored_mel(restorer, it, vae, 1.0, cat)
        row = {"clip": it["name"], "category": c.categories[it["category"]]}
        for key, fn in (("lsd_hf", lambda a, b: metrics.mel_lsd(a, b, band=band, cfg=cfg)),
                        ("lsd", lambda a, b: metrics.mel_lsd(a, b)), ("l1", metrics.mel_l1)):
            row[f"{key}_vae"] = fn(it["mel"], it["dec"])
            row[f"{key}_restored"] = fn(it["mel"], est)
        rows.append(row)
    mean = {}
    if rows:
        for key in ("lsd_hf", "lsd", "l1"):
            a = float(np.mean([r[f"{key}_vae"] for r in rows]))
            b = float(np.mean([r[f"{key}_restored"] for r in rows]))
            mean.update({f"{key}_vae": a, f"{key}_restored": b, f"{key}_change": b / a - 1.0 if a else 0.0})
        mean["clips"] = len(rows)
        if hits:
            mean["type_accuracy"] = float(np.mean(hits))
    return {"per_clip": rows, "mean": mean}



@dataclasses.dataclass
class TrainOptions:
    """Training hyper-parameters (defaults: the bundled restorer's run)."""

    steps: int = 2000
    minutes: float | None = None
    batch_size: int = 8
    crop_frames: int = 128
    lr: float = 2e-3
    lr_min: float = 1e-4
    hf_weight: float = 3.0
    lsd_weight: float = 1.0
    energy_weight: float = 0.0
    cls_weight: float = 0.2
    holdout: float = 0.15
    holdout_files: list[str] | None = None
    seed: int = 0
    threads: int | None = 2
    eval_every: int = 250
    log_every: int = 25
    ckpt_every: int = 250
    max_frames: int = 1024
    augment: int = 0
    mel_floor: bool = True
    ema: float = 0.0
    init: str | None = None


def _init_source(init: str) -> Restorer:
    """The restorer a run starts from (``--init``): a bundled one by name or a restorer folder."""
    from .model import bundled_restorer, load_restorer

    bundled = init in ("learned", "learned_cond") and not Path(init).is_dir()
    return bundled_restorer(init) if bundled else load_restorer(init)


def _init_config(config: RestorerConfig, src: Restorer) -> RestorerConfig:
    """``config`` with the input normalisation of the restorer it starts from (its weights expect that
    normalisation); refuses, in one line, a source of another shape or trained for another VAE."""
    fields = ("kind", "conditional", "arch", "channels", "n_mels", "latent_channels", "emb_dim", "categories")
    diff = [f for f in fields if getattr(src.config, f) != getattr(config, f)]
    if diff:
        raise RestorerError("--init restorer differs in " + ", ".join(
            f"{f} ({getattr(src.config, f)!r} vs {getattr(config, f)!r})" for f in diff)
            + "; pass the same --kind/--arch/--channels/--conditional as the run it comes from")
    if src.config.vae_fingerprint and src.config.vae_fingerprint != config.vae_fingerprint:
        raise RestorerError(f"--init restorer was trained for the VAE {src.config.vae_fingerprint}, this run uses "
                            f"{config.vae_fingerprint}; start from a restorer of this VAE (or without --init)")
    return dataclasses.replace(config, mel_mean=src.config.mel_mean, mel_std=src.config.mel_std)


def _lr_at(frac: float, opts: TrainOptions) -> float:
    """Cosine schedule from ``lr`` to ``lr_min`` over the run (``frac`` = step or time fraction)."""
    frac = min(max(frac, 0.0), 1.0)
    return opts.lr_min + 0.5 * (opts.lr - opts.lr_min) * (1 + math.cos(math.pi * frac))


def _mel_batch(items, rng, batch: int, crop: int):
    mels, decs, cats = [], [], []
    for _ in range(batch):
        it = items[rng.integers(len(items))]
        t = it["mel"].shape[2]
        s = int(rng.integers(0, t - crop + 1))
        mels.append(it["mel"][..., s:s + crop, :])
        decs.append(it["dec"][..., s:s + crop, :])
        cats.append(it["category"])
    return torch.cat(mels), torch.cat(decs), torch.tensor(cats)


CHECKPOINT = "state.safetensors"
_META_KEY = "vaelib_checkpoint"
#: TrainOptions fields that shape a run: a resume must repeat them (``threads`` and the logging cadence do not).
_RUN_FIELDS = ("steps", "minutes", "batch_size", "crop_frames", "lr", "lr_min", "hf_weight", "lsd_weight",
               "energy_weight",
               "cls_weight", "holdout", "seed", "max_frames", "augment", "mel_floor", "ema", "init")


def run_signature(vae, files, pairs, kind, conditional, arch, channels, opts) -> dict:
    """Everything that shapes a training run: stored in every checkpoint, compared on ``--resume``.

    The data enter as a SHA-256 of the sorted resolved file paths with their sizes (``data``; for given pairs, of
    their paths), the fixed held-out set likewise (``holdout_files``), the VAE as its source and scaling factor.
    """
    import hashlib

    def digest(paths):
        h = hashlib.sha256()
        for p in sorted({str(Path(q).resolve()) for q in paths}):
            try:
                size = Path(p).stat().st_size
            except OSError:
                size = -1
            h.update(f"{p}\0{size}\n".encode("utf-8", "surrogateescape"))
        return h.hexdigest()[:16]

    data = [it["path"] for it in pairs] if pairs is not None else list(files or [])
    return {"kind": kind, "conditional": bool(conditional), "arch": arch, "channels": channels,
            **{f: getattr(opts, f) for f in _RUN_FIELDS},
            "holdout_files": digest(opts.holdout_files) if opts.holdout_files else None, "data": digest(data),
            "vae": f"{'bundled' if getattr(vae, 'bundled', False) else getattr(vae, 'source', '')}"
                   f" (scaling {float(vae.scaling_factor):g})"}


def check_resume(saved: dict, now: dict, extend_steps: bool = False) -> list[str]:
    """The differences between a checkpoint's :func:`run_signature` and this invocation's (empty: resumable).

    With ``extend_steps`` a larger ``steps`` is accepted (and returned as no difference).
    """
    diffs = []
    for key in sorted(set(saved) | set(now)):
        a, b = saved.get(key), now.get(key)
        if a == b or (key == "steps" and extend_steps and isinstance(a, int) and isinstance(b, int) and b >= a):
            continue
        diffs.append(f"{key} {a!r} -> {b!r}")
    return diffs


def _save_checkpoint(folder: Path, model, opt, step, elapsed, rng, rows, best, ema=None, signature=None):
    """One file, atomically: tensors and the JSON state (step, RNG, log rows, run signature) in one safetensors
    file written beside its final name and renamed into place, so a crash at any point leaves the previous
    complete checkpoint (never new weights with old counters)."""
    import os

    from safetensors.torch import save_file

    ck = folder / "checkpoint"
    ck.mkdir(parents=True, exist_ok=True)
    state = {f"model.{k}": v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    params = [p for g in opt.param_groups for p in g["params"]]
    for i, p in enumerate(params):
        st = opt.state.get(p, {})
        for key in ("exp_avg", "exp_avg_sq"):
            if key in st:
                state[f"opt.{i}.{key}"] = st[key].detach().cpu().contiguous()
        if "step" in st:
            state[f"opt.{i}.step"] = torch.as_tensor(st["step"], dtype=torch.float32).reshape(1).cpu()
    for i, e in enumerate(ema or []):
        state[f"ema.{i}"] = e.detach().cpu().contiguous()
    meta = {"step": step, "elapsed": elapsed, "rng": rng.bit_generator.state, "rows": rows, "best": best,
            "signature": signature}
    tmp = ck / f".{CHECKPOINT}.{os.getpid()}.tmp"
    try:
        save_file(state, str(tmp), metadata={_META_KEY: json.dumps(meta)})
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, ck / CHECKPOINT)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def read_checkpoint_meta(folder: Path) -> dict:
    """The JSON state of ``folder/checkpoint`` (one-line :class:`RestorerError` when missing or unreadable)."""
    from safetensors import safe_open

    path = Path(folder) / "checkpoint" / CHECKPOINT
    if not path.is_file():
        raise RestorerError(f"nothing to resume in {folder}: no checkpoint/{CHECKPOINT} there")
    try:
        with safe_open(str(path), framework="pt") as fh:
            return json.loads((fh.metadata() or {})[_META_KEY])
    except Exception as exc:  # noqa: BLE001 - any damage to the file is the same one-line answer
        raise RestorerError(f"checkpoint {path} is unreadable ({type(exc).__name__}); start a new --out "
                            "folder") from None


def _load_checkpoint(folder: Path, model, opt, rng, ema=None):
    from safetensors.torch import load_file

    meta = read_checkpoint_meta(folder)
    state = load_file(str(folder / "checkpoint" / CHECKPOINT))
    model.load_state_dict({k[6:]: v for k, v in state.items() if k.startswith("model.")})
    params = [p for g in opt.param_groups for p in g["params"]]
    for i, p in enumerate(params):
        if f"opt.{i}.exp_avg" in state:
            opt.state[p] = {"step": state[f"opt.{i}.step"].reshape(()).clone(),
                            "exp_avg": state[f"opt.{i}.exp_avg"].to(p.device),
                            "exp_avg_sq": state[f"opt.{i}.exp_avg_sq"].to(p.device)}
    for i, e in enumerate(ema or []):
        if f"ema.{i}" not in state:
            raise RestorerError(f"{folder} was trained without --ema; resume it with the same arguments")
        e.copy_(state[f"ema.{i}"])
    rng.bit_generator.state = meta["rng"]
    return meta["step"], meta["elapsed"], meta["rows"], meta.get("best")


_DEFAULT_WIDTH = {"tcn": 128, "unet": 16, "latent": 64}


def train_restorer(vae, files, out, kind: str = "mel", conditional: bool = False, opts: TrainOptions | None = None,
                   channels: int | None = None, arch: str = "tcn", resume: bool = False, progress: bool = True,
                   command: str = "", echo=print, pairs: list[dict] | None = None,
                   extend_steps: bool = False) -> dict:
    """Train a restorer for the frozen ``vae`` on ``files`` and write it to the new folder ``out``.

    Writes ``model.safetensors``, ``config.json``, ``MODEL_CARD.md``, ``training_log.csv``,
    ``training_curve.png``, ``eval.json`` (held-out clips) and ``checkpoint/`` (resumable with ``resume=True``).
    Refuses a non-empty ``out`` unless resuming an unfinished run there. Seeded: the same seed, data and thread
    count give the same weights. A resume must repeat every argument that shapes the run (:func:`run_signature`;
    the differences are refused in one line); ``extend_steps`` accepts a larger ``steps`` (recorded in the card).
    Returns ``{"folder", "eval", "steps", "seconds"}``.
    """
    out = Path(out).expanduser()
    lock = _lock_run_folder(out)  # one writer per run folder: a second process stops here, naming the first
    try:
        return _train(vae, files, out, kind, conditional, opts, channels, arch, resume, progress, command, echo,
                      pairs, extend_steps)
    finally:  # also on Ctrl-C and errors: the folder is free for the rerun
        lock.release()


def _train(vae, files, out, kind, conditional, opts, channels, arch, resume, progress, command, echo, pairs,
           extend_steps) -> dict:
    from tqdm.auto import tqdm

    opts = opts or TrainOptions()
    out = Path(out).expanduser()
    channels = channels or _DEFAULT_WIDTH["latent" if kind == "latent" else arch]
    signature = run_signature(vae, files, pairs, kind, conditional, arch, channels, opts)
    extended_from = None
    if resume:
        if (out / WEIGHTS).is_file():
            raise RestorerError(f"{out} holds a finished restorer ({WEIGHTS}); nothing to resume")
        saved = read_checkpoint_meta(out).get("signature") or {}
        diffs = check_resume(saved, signature, extend_steps)
        if diffs:
            raise RestorerError(f"--resume with other arguments than the run in {out}: {'; '.join(diffs)}; repeat "
                                "the original arguments" + (" (or --extend-steps to raise --steps)"
                                                            if any(d.startswith("steps ") for d in diffs) else ""))
        if saved.get("steps") != signature["steps"]:
            extended_from = saved.get("steps")
    elif any(p.name != LOCK_NAME for p in out.iterdir()):
        raise RestorerError(f"output folder {out} exists and is not empty; pass a new folder (or --resume)")
    if opts.steps < 1 and not opts.minutes:
        raise RestorerError("--steps must be a positive integer")
    if opts.threads:
        torch.set_num_threads(int(opts.threads))
    torch.manual_seed(opts.seed)
    if opts.holdout_files:  # a fixed held-out set: never trained on, never mixed into augmented copies
        fixed = {str(Path(f).resolve()) for f in opts.holdout_files}
        files = [f for f in files if str(Path(f).resolve()) not in fixed]
        if pairs is not None:
            pairs = [it for it in pairs if str(Path(it["path"]).resolve()) not in fixed]
        if (pairs is None and not files) or (pairs is not None and not pairs):
            raise RestorerError("every training file is also in --holdout-files: nothing left to train on")
    held_files = opts.holdout_files
    if pairs is None and not held_files and opts.augment:
        # split the files before collecting pairs, so that held-out audio is never a mixing partner of an augmented
        # training copy (the split is the one split_holdout makes on the pairs: same seed, same files)
        listed = [{"path": str(f), "category": category_index(f)} for f in files]
        kept, held_listed = split_holdout(listed, opts.holdout, opts.seed)
        files, held_files = [Path(it["path"]) for it in kept], [Path(it["path"]) for it in held_listed]
    items = pairs if pairs is not None else collect_pairs(files, vae, opts.max_frames, progress,
                                                          augment=opts.augment, seed=opts.seed)
    if held_files:
        train_items = items
        try:
            held = collect_pairs(held_files, vae, opts.max_frames, progress=False, seed=opts.seed)
        except RestorerError:
            raise RestorerError("no readable audio among the held-out files") from None
    else:
        train_items, held = split_holdout(items, opts.holdout, opts.seed)
    allmel = torch.cat([it["mel"].flatten() for it in train_items])
    mc = vae.mel_config
    config = RestorerConfig(kind=kind, conditional=conditional, arch=arch, channels=channels, n_mels=mc.n_mels,
                            latent_channels=vae.latent_channels, mel_mean=round(float(allmel.mean()), 4),
                            mel_std=round(float(allmel.std()), 4), sr=mc.sr, n_fft=mc.n_fft, fmin=mc.fmin,
                            fmax=mc.fmax,
                            mel_floor=math.log(LOG_CLAMP) if kind == "mel" and opts.mel_floor else None,
                            vae_fingerprint=vae_fingerprint(vae), vae_name=signature["vae"])
    source = _init_source(opts.init) if opts.init else None
    if source is not None:
        config = _init_config(config, source)
    device = vae.device
    model = Restorer(config).to(device)
    if source is not None:
        model.load_state_dict(source.state_dict())
    n_params = sum(p.numel() for p in model.parameters())
    opt = torch.optim.Adam(model.parameters(), lr=opts.lr)
    rng = np.random.default_rng(opts.seed)
    hf = torch.from_numpy(config.hf_mask()).to(device)
    crop = min(opts.crop_frames, min(it["mel"].shape[2] for it in train_items))
    crop -= crop % 4
    step, elapsed, rows, best = 0, 0.0, [], None
    # exponential moving average of the weights (Polyak averaging); decay warmed up as min(d, (1 + n) / (10 + n))
    ema = [q.detach().clone() for q in model.parameters()] if opts.ema else None
    if resume:
        step, elapsed, rows, best = _load_checkpoint(out, model, opt, rng, ema)
        echo(f"resuming at step {step} ({elapsed:.0f} s done)")
    budget = opts.minutes * 60 if opts.minutes else None
    total = int(budget) if budget else opts.steps
    if kind == "latent":
        for p in vae.model.parameters():
            p.requires_grad_(False)
    sf = vae.scaling_factor

    def swap_ema():  # exchange the live weights with their average (twice = back)
        with torch.no_grad():
            for q, e in zip(model.parameters(), ema, strict=True):
                tmp = q.detach().clone()
                q.copy_(e)
                e.copy_(tmp)

    def heldout_metric():
        if not held:
            return None
        model.eval()
        if ema:
            swap_ema()
        ev = evaluate_restorer(model, held, vae)["mean"]
        if ema:
            swap_ema()
        model.train()
        return ev["lsd_hf_change"]

    cpu0 = time.process_time() - (rows[-1].get("cpu_seconds", 0.0) if rows else 0.0)
    bar = tqdm(total=total, initial=int(elapsed) if budget else step, disable=not progress, desc=f"train {kind}",
               unit="s" if budget else "step", dynamic_ncols=True)
    t0 = time.time() - elapsed
    acc, last_eval = [], rows[-1].get("heldout_lsd_hf_change") if rows else None
    model.train()
    while True:
        now = time.time() - t0
        if (budget is not None and now >= budget) or (budget is None and step >= opts.steps):
            break
        frac = now / budget if budget else step / opts.steps
        for g in opt.param_groups:
            g["lr"] = _lr_at(frac, opts)
        if kind == "mel":
            mel, dec, cats = _mel_batch(train_items, rng, opts.batch_size, crop)
            mel, dec, cats = mel.to(device), dec.to(device), cats.to(device)
            est = dec + model(dec, cats if conditional else None)
            if config.mel_floor is not None:  # the clamp of Restorer.restore, straight-through for the gradient
                est = est + (est.clamp(min=config.mel_floor) - est).detach()
            src = dec
        else:
            it = train_items[rng.integers(len(train_items))]
            mel, z, cats = it["mel"].to(device), it["z"].to(device), torch.tensor([it["category"]], device=device)
            z2 = z + model(z, cats if conditional else None)
            est = vae.model.decode((z2 / sf).to(vae.dtype)).sample.float()
            src = z
        loss = restorer_loss(est, mel, hf, opts.hf_weight, opts.lsd_weight, energy_weight=opts.energy_weight)
        total_loss = loss
        if conditional:
            ce = F.cross_entropy(model.classifier(model._norm(src)), cats)
            total_loss = loss + opts.cls_weight * ce
        opt.zero_grad(set_to_none=True)
        total_loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        step += 1
        if ema:
            d = min(opts.ema, (1 + step) / (10 + step))
            with torch.no_grad():
                for q, e in zip(model.parameters(), ema, strict=True):
                    e.lerp_(q.detach(), 1 - d)
        acc.append(loss.item())
        done_now = time.time() - t0
        if step % opts.eval_every == 0:
            last_eval = heldout_metric()
        if step % opts.log_every == 0 or step == 1:
            rows.append({"step": step, "loss": float(np.mean(acc)), "lr": opt.param_groups[0]["lr"],
                         "heldout_lsd_hf_change": last_eval, "seconds": round(done_now, 1),
                         "cpu_seconds": round(time.process_time() - cpu0, 1)})
            acc = []
        post = {"loss": f"{loss.item():.4f}"}
        if last_eval is not None:
            post["heldout LSD-HF"] = f"{100 * last_eval:+.1f}%"
        bar.set_postfix(post, refresh=False)
        bar.update(int(done_now) - bar.n if budget else 1)
        if step % opts.ckpt_every == 0:
            _save_checkpoint(out, model, opt, step, done_now, rng, rows, best, ema, signature)
    bar.close()
    seconds = time.time() - t0
    if acc:
        rows.append({"step": step, "loss": float(np.mean(acc)), "lr": opt.param_groups[0]["lr"],
                     "heldout_lsd_hf_change": last_eval, "seconds": round(seconds, 1),
                     "cpu_seconds": round(time.process_time() - cpu0, 1)})
    _save_checkpoint(out, model, opt, step, seconds, rng, rows, best, ema, signature)
    if ema:  # the averaged weights are the result
        swap_ema()
    model.eval()
    result_eval = {"heldout": evaluate_restorer(model, held, vae) if held else None}
    if conditional and held:
        result_eval["heldout_auto"] = evaluate_restorer(model, held, vae, category="auto")
    train_info = {
        "vae": "bundled" if getattr(vae, "bundled", False) else str(getattr(vae, "source", "")),
        "scaling_factor": sf, "vae_fingerprint": config.vae_fingerprint, "kind": kind, "conditional": conditional,
        "parameters": n_params, "steps": step, "seconds": round(seconds, 1),
        "cpu_seconds": round(time.process_time() - cpu0, 1), "threads": torch.get_num_threads(),
        "device": str(device), "options": dataclasses.asdict(opts), "command": command,
        **({"extended_from_steps": extended_from} if extended_from is not None else {}),
        "train_clips": sorted({Path(it["path"]).name for it in train_items}),
        "heldout_clips": sorted({Path(it["path"]).name for it in held}),
        "train_seconds_audio": round(sum(it["mel"].shape[2] for it in train_items) * mc.hop_length / mc.sr, 1),
    }
    save_restorer(model, out, {"training": train_info})
    _write_log(out / "training_log.csv", rows)
    save_json(out / "eval.json", result_eval)
    _plot_curve(out / "training_curve.png", rows)
    (out / "MODEL_CARD.md").write_text(model_card(train_info, result_eval, rows))
    return {"folder": out, "eval": result_eval, "steps": step, "seconds": seconds}


def _lock_run_folder(out: Path):
    """Create ``out`` if needed and take its lock (:func:`vaelib.runlock.lock_folder`) for this process's life;
    one-line :class:`RestorerError` when another process holds it or the folder cannot be made."""
    from ..runlock import FolderLocked, StorageError, lock_folder

    if out.exists() and not out.is_dir():
        raise RestorerError(f"output path {out} is a file; pass a new folder")
    try:
        out.mkdir(parents=True, exist_ok=True)
        return lock_folder(out, what="train-restorer run folder")
    except (FolderLocked, StorageError) as exc:
        raise RestorerError(str(exc)) from None
    except OSError as exc:
        raise RestorerError(f"cannot create {out}: {exc.strerror or exc}") from None


def _write_log(path: Path, rows: list[dict]):
    if not rows:
        return
    with open(path, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)




def _plot_curve(path: Path, rows: list[dict]):
    """Training loss and held-out LSD-HF change against step (Agg canvas; never switches the backend)."""
    if not rows:
        return
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7, 3.2))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 2, 1)
    ax.plot([r["step"] for r in rows], [r["loss"] for r in rows])
    ax.set(xlabel="step", ylabel="training loss", title="loss")
    ax2 = fig.add_subplot(1, 2, 2)
    ev = [(r["step"], 100 * r["heldout_lsd_hf_change"]) for r in rows if r.get("heldout_lsd_hf_change") is not None]
    if ev:
        ax2.plot(*zip(*ev, strict=True), marker="o")
    ax2.axhline(0, color="grey", lw=0.8)
    ax2.set(xlabel="step", ylabel="% vs plain VAE", title="held-out mel LSD-HF change")
    fig.tight_layout()
    fig.savefig(path, dpi=90)


def model_card(info: dict, ev: dict, rows: list[dict]) -> str:
    """Markdown model card: data, exact command, numbers (held-out, per type), curve."""
    from ..report.html import md_code, md_text

    kind = "mel post-net `r' = r + s·f(r)`" if info["kind"] == "mel" else "latent residual net `z' = z + s·g(z)`"
    lines = [
        f"# vaelib restorer ({'conditional ' if info['conditional'] else ''}{info['kind']})", "",
        f"A learned high-band restorer for the frozen VAE {md_code(info['vae'])} (fingerprint "
        f"{md_code(info.get('vae_fingerprint') or '?')}; applying it to another VAE is refused): {kind}"
        + (", FiLM-conditioned on the audio type (speech / music / percussion / other), with a type classifier "
           "for unlabelled audio" if info["conditional"] else "") + ".", "",
        "| | |", "|---|---|",
        f"| parameters | {info['parameters']:,} |",
        f"| training | {info['steps']} steps, {info['seconds'] / 60:.1f} min wall, {info['cpu_seconds'] / 60:.1f} min "
        f"CPU time (all threads), {info['threads']} threads, device {md_text(info['device'])} |",
        f"| data | {len(info['train_clips'])} training files ({info['train_seconds_audio']:.0f} s of audio), "
        f"{len(info['heldout_clips'])} held out ("
        + ("a fixed set, `--holdout-files`" if info["options"].get("holdout_files")
           else f"a seeded {100 * info['options'].get('holdout', 0.15):g} % split stratified by type") + ") |",
        f"| loss | band-weighted L1 on log-mel (×{info['options']['hf_weight']:g} at ≥ 4 kHz) + "
        f"{info['options']['lsd_weight']:g} × per-frame high-band RMS log-ratio"
        + (f" + {info['options']['energy_weight']:g} × clip high-band energy |log-ratio|"
           if info["options"].get("energy_weight") else "") + " (see `vaelib.restore`) |",
        f"| augmentation | {info['options'].get('augment', 0)} re-coloured cop(ies) per training clip |",
        *([f"| resumed | planned for {info['extended_from_steps']} steps, extended to {info['options']['steps']} "
           "(`--extend-steps`) |"] if info.get("extended_from_steps") is not None else []),
        *([f"| initialised from | {md_code(info['options']['init'])} (its weights and input normalisation) |"]
          if info["options"].get("init") else []),
        *([f"| weights | exponential moving average, decay {info['options']['ema']:g} |"]
          if info["options"].get("ema") else []), "",
        "## Command", "", "```bash", info.get("command") or "(library call)", "```", "",
    ]
    held = (ev or {}).get("heldout")
    if held and held["mean"]:
        m = held["mean"]
        lines += ["## Held-out clips (never trained on)", "",
                  "| metric | plain VAE | restored | change |", "|---|---|---|---|"]
        for key, label in (("lsd_hf", "mel LSD ≥ 4 kHz"), ("lsd", "mel LSD"), ("l1", "mel L1")):
            lines.append(f"| {label} | {m[f'{key}_vae']:.4f} | {m[f'{key}_restored']:.4f} | "
                         f"{100 * m[f'{key}_change']:+.1f} % |")
        if "type_accuracy" in m:
            lines.append(f"| type classifier accuracy | | {m['type_accuracy']:.2f} | |")
        if ev.get("heldout_auto"):
            a = ev["heldout_auto"]["mean"]
            lines.append(f"| mel LSD ≥ 4 kHz, type inferred (auto) | {a['lsd_hf_vae']:.4f} | "
                         f"{a['lsd_hf_restored']:.4f} | {100 * a['lsd_hf_change']:+.1f} % |")
        from ..changes import change_summary, describe_change

        clips = [r["clip"] for r in held["per_clip"]]
        lines += ["", "Per clip (the change of each held-out clip against the plain VAE; a mean can hide a clip made "
                  "worse, `vaelib.changes`):", ""]
        for key, label in (("lsd_hf", "mel LSD ≥ 4 kHz"), ("l1", "mel L1")):
            c = change_summary([r[f"{key}_vae"] for r in held["per_clip"]],
                               [r[f"{key}_restored"] for r in held["per_clip"]], clips)
            lines.append(f"- {label}: {md_text(describe_change(c))}")
        cats = sorted({r["category"] for r in held["per_clip"]})
        lines += ["", "| audio type | clips | LSD-HF change | L1 change |", "|---|---|---|---|"]
        for c in cats:
            sel = [r for r in held["per_clip"] if r["category"] == c]
            d_hf = np.mean([r["lsd_hf_restored"] for r in sel]) / np.mean([r["lsd_hf_vae"] for r in sel]) - 1
            d_l1 = np.mean([r["l1_restored"] for r in sel]) / np.mean([r["l1_vae"] for r in sel]) - 1
            lines.append(f"| {c} | {len(sel)} | {100 * d_hf:+.1f} % | {100 * d_l1:+.1f} % |")
        lines += ["", "| clip | type | LSD-HF VAE | LSD-HF restored | L1 VAE | L1 restored |",
                  "|---|---|---|---|---|---|"]
        for r in held["per_clip"]:
            lines.append(f"| {md_text(r['clip'])} | {r['category']} | {r['lsd_hf_vae']:.4f} | "
                         f"{r['lsd_hf_restored']:.4f} | {r['l1_vae']:.4f} | {r['l1_restored']:.4f} |")
    else:
        lines += ["No held-out clips (too few files): the numbers above are not measured.", ""]
    lines += ["", "Training curve: `training_curve.png`, `training_log.csv`. Held-out scores: `eval.json`.", ""]
    return "\n".join(lines)
