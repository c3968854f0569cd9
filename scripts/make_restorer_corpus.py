"""Generate extra *training* audio for the learned high-band restorers (never eval material).

Re-uses the generators of ``scripts/make_corpus.py`` (espeak-ng speech, fluidsynth music from seeded MIDI,
numpy/scipy synthetic signals) with **new** texts, voices, seeds and programs. Nothing here is read from, or
derived from, ``vaelib/assets/demo/eval/``; recipes that would reproduce an eval clip are avoided on purpose:

* speech: none of the eval voices (``en-us+f4``, ``en-gb-scotland+m5``) and none of their sentences;
* music: seeds 100+, none of the eval programs (6 harpsichord; 34/27/65 band) and no ``hats16`` drum style;
* synthetic: no upward 50 Hz → 8 kHz chirp, no 220 Hz tone, no burst seed 42.

File names start with the audio type (``speech_``, ``music_``, ``drums_`` = percussion, anything else =
other), which is how :func:`vaelib.categories.category_of` labels them for the conditional restorer.

With ``--real``, real recordings from other Debian packages are added (:data:`REAL_SOURCES`: ``oxygen-sounds``,
``sound-icons``, ``lmms-common``; ``apt-get install --no-install-recommends oxygen-sounds sound-icons
lmms-common``). They are resampled to 16 kHz mono; files shorter than :data:`CHAIN_MIN_S` are chained (sorted order,
0.2 s of silence between them) into clips of up to ~8 s (17 clips of 1.9–8.7 s), so that no training clip is shorter
than a 128-frame crop. The real-recordings *test set* of ``scripts/eval_restorer.py`` (``sound-theme-freedesktop``)
is never read as training audio: any path under ``/usr/share/sounds/freedesktop`` is refused, ``alsa-utils`` is not
used (its nine ``/usr/share/sounds/alsa`` files are the same recordings as freedesktop's ``audio-channel-*`` and
``audio-test-signal``: normalised cross-correlation ≥ 0.995), and :data:`EXCLUDED` lists the files of the chosen
packages that correlate ≥ 0.5 with a freedesktop sound (one is an identical copy). When sound-theme-freedesktop is
installed the script re-checks that (reading it only to exclude) and stops if a kept file correlates ≥ 0.5 with one
of its sounds.

``--real-extra [PACKAGE ...]`` adds :data:`REAL_SOURCES_EXTRA` (desktop event sounds, Sonic Pi samples, KLettres real
speech). ``--real-more [PACKAGE ...]`` adds :data:`REAL_SOURCES_MORE` (game voice acting, effects, game and
orchestral music; long files cut to an excerpt), with or without ``--real``; ``--exclude-like DIR ...`` leaves out
every real training file that correlates ≥ 0.5 with an audio file under those folders (the test and selection sets
of ``scripts/make_realtest.py``) and lists it in ``dropped.csv``. Every run writes ``heldout.lst``, the fixed
held-out set (:data:`HELDOUT`) for ``vaelib train-restorer
--holdout-files``.

Usage::

    python scripts/make_restorer_corpus.py --out /tmp/restorer_corpus     # refuses a non-empty folder
    python scripts/make_restorer_corpus.py --out /tmp/rcorpus3 --rounds 3 --real   # the bundled restorers' corpus
    python scripts/make_restorer_corpus.py --out /tmp/rc3k --rounds 3 --real --real-extra klettres-data  # + speech
    python scripts/make_restorer_corpus.py --out /tmp/rcmore --rounds 0 --real-more --exclude-like /tmp/realtest
"""

from __future__ import annotations

import argparse
import re
import sys
import tempfile
from functools import partial
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import make_corpus as mc  # noqa: E402

SPEECH = (
    # voice, speed, sentences
    ("en-us+m1", 160, ("Thirty thrifty thinkers thought three thousand thoughts.",
                       "Fresh sushi sizzles as Sasha slices sashimi swiftly.")),
    ("en-us+f2", 140, ("Seventy shiny scissors snipped the silk sashes.",
                       "Chester's cheap chess set hisses when it is shaken.")),
    ("en-gb-x-rp+m4", 150, ("Six slick slim sycamore saplings stood still.",
                            "She chose six shirts and sent them to Sheffield.")),
    ("en-gb-x-rp+f1", 165, ("A proper cup of coffee in a copper coffee pot.",
                            "Whistling wasps whizz past the whispering willows.")),
    ("en-us+m7", 135, ("Fast-fading flashes of cheerful fireworks fizzed.",
                       "Cheese, cherries and chips were served at the feast.")),
    ("de+f3", 150, ("Schnecken erschrecken, wenn sie an Schnecken schlecken.",
                    "Zehn zahme Ziegen zogen zehn Zentner Zucker zum Zoo.")),
    ("de+m5", 140, ("Der Whiskymixer mixt frischen Whisky.", "Sechs Schweizer schwitzten schwer.")),
    ("fr-fr+m3", 155, ("Si six scies scient six cyprès, six cent six scies scient six cent six cyprès.",
                       "Ces cerises sont si sûres qu'on ne sait pas si c'en sont.")),
    ("fr-fr+f4", 145, ("Cinq chiens chassent six chats.", "Seize chaises sèchent.")),
    ("es+f2", 150, ("Pablito clavó un clavito en la calva de un calvito.",
                    "Cuando cuentes cuentos, cuenta cuántos cuentos cuentas.")),
    ("es+m4", 160, ("Erre con erre cigarro, erre con erre barril.", "Seis sastres sesudos cosen sin cesar.")),
    ("it+m2", 150, ("Apelle figlio di Apollo fece una palla di pelle di pollo.",
                    "Chi fa scherzi spesso si scotta.")),
    ("it+f3", 155, ("Tre tigri contro tre tigri.", "Sessantasei sassi sotto sei sacchi.")),
    ("pt+f1", 150, ("O rato roeu a roupa do rei de Roma.", "Sabiá sabia assobiar.")),
    ("nl+m1", 150, ("De kat krabt de krullen van de trap.", "Zes zeeuwse zeeslakken zwemmen zacht.")),
    ("pl+f2", 140, ("W Szczebrzeszynie chrząszcz brzmi w trzcinie.", "Stół z powyłamywanymi nogami.")),
    ("sv+m2", 150, ("Sju sjösjuka sjömän sköttes av sju sköna sjuksköterskor.", "Kvistfritt kvastskaft.")),
    ("en-us+f5", 175, ("Sister Suzie's sewing shirts for soldiers.",
                       "Such skill at sewing shirts our shy young sister Suzie shows.")),
)

MUSIC = (
    # name, seed, builder, seconds, dry, kwargs
    ("music_piano_bright", 101, mc.piece_piano, 8.0, False, dict(bpm=112, root=76, scale=mc.MAJOR, prog=1)),
    ("music_epiano", 102, mc.piece_piano, 8.0, False, dict(bpm=92, root=67, scale=mc.MINOR, prog=5)),
    ("music_celesta", 103, mc.piece_piano, 7.0, True, dict(bpm=104, root=79, scale=mc.MAJOR, prog=8)),
    ("music_marimba", 104, mc.piece_piano, 7.0, True, dict(bpm=120, root=72, scale=mc.MINOR, prog=12)),
    ("music_guitar_nylon", 105, mc.piece_piano, 8.0, False, dict(bpm=88, root=64, scale=mc.MAJOR, prog=24)),
    ("music_strings_choir", 106, mc.piece_strings, 8.0, False,
     dict(bpm=70, root=62, scale=mc.MAJOR, pad_prog=52, lead_prog=40)),
    ("music_strings_synth", 107, mc.piece_strings, 8.0, False,
     dict(bpm=84, root=65, scale=mc.MINOR, pad_prog=90, lead_prog=71)),
    ("music_band_funk", 108, mc.piece_band, 8.0, False,
     dict(bpm=100, root=62, scale=mc.MINOR, bass_prog=36, chord_prog=16, lead_prog=61, drums="disco")),
    ("music_band_pop", 109, mc.piece_band, 8.0, False,
     dict(bpm=124, root=69, scale=mc.MAJOR, bass_prog=33, chord_prog=2, lead_prog=80, drums="rock")),
    ("music_band_breaks", 110, mc.piece_band, 8.0, True,
     dict(bpm=96, root=60, scale=mc.MINOR, bass_prog=39, chord_prog=18, lead_prog=66, drums="breaks")),
    ("music_band_jazz", 111, mc.piece_band, 8.0, False,
     dict(bpm=140, root=65, scale=mc.MAJOR, bass_prog=32, chord_prog=0, lead_prog=57, drums="ride")),
    ("music_band_distort", 112, mc.piece_band, 8.0, False,
     dict(bpm=132, root=64, scale=mc.MINOR, bass_prog=34, chord_prog=30, lead_prog=84, drums="rock")),
    ("drums_rock_fast", 113, mc.piece_drums, 6.0, True, dict(bpm=150, style="rock")),
    ("drums_disco", 114, mc.piece_drums, 6.0, True, dict(bpm=118, style="disco")),
    ("drums_breaks_slow", 115, mc.piece_drums, 6.0, False, dict(bpm=90, style="breaks")),
    ("drums_ride_fast", 116, mc.piece_drums, 6.0, True, dict(bpm=180, style="ride")),
    ("drums_rock_wet", 117, mc.piece_drums, 6.0, False, dict(bpm=100, style="rock")),
    ("drums_disco_wet", 118, mc.piece_drums, 6.0, False, dict(bpm=126, style="disco")),
)


def synthetic(r: int = 0):
    """(name, render) pairs of seeded synthetic signals, none equal to an eval recipe (round ``r`` shifts them)."""
    k0 = 50 * r
    out = [
        (f"chirp_log_down_{f0:.0f}_{f1 * (1 + 0.5 * r):.0f}",
         partial(mc.synth_chirp, f0=f0, f1=f1 * (1 + 0.5 * r), seconds=secs + 0.5 * r))
        for f0, f1, secs in ((6000.0, 100.0, 5.0), (7900.0, 300.0, 4.0), (7999.0, 1000.0, 4.0))
    ]
    bands = (((None, None),), ((4000.0, None),), ((3000.0, 7000.0), (None, 1500.0)), ((5000.0, None), (None, None)))
    for k, b in enumerate(bands):
        out.append((f"noise_bursts_s{200 + k + k0}", partial(mc.synth_bursts, seed=200 + k + k0, seconds=4.5,
                                                              bands=b)))
    tones = ((130.8, (4500.0, 7500.0), -6.0, 0.0), (165.0, (4000.0, 7000.0), -9.0, 4.0),
             (196.0, (5500.0, 7900.0), -3.0, 0.0), (262.0, (4000.0, 5500.0), -15.0, 6.0),
             (294.0, (4200.0, 7900.0), -1.0, 0.0), (392.0, (6000.0, 7900.0), -8.0, 5.0),
             (98.0, (4000.0, 7900.0), -10.0, 3.0), (440.0, (4500.0, 6500.0), -5.0, 0.0))
    for k, (f0, band, db, vib) in enumerate(tones):
        f0 = f0 * 1.06 ** r if abs(f0 * 1.06 ** r - 220.0) > 5 else f0 * 1.06 ** (r + 1)
        out.append((f"tone_{int(f0)}_noise_{int(band[0] // 1000)}k_{int(band[1] // 1000)}k",
                    partial(mc.synth_tone_noise, seed=300 + k + k0, f0=f0, seconds=5.0, noise_band=band, noise_db=db,
                            vibrato_hz=vib)))
    return out


#: Melodic GM programs used when shifting music recipes (never 6, 27, 34 or 65: the eval clips' programs).
PROGRAMS = (0, 1, 2, 4, 5, 8, 10, 11, 12, 13, 16, 19, 21, 24, 25, 26, 28, 30, 40, 41, 46, 52, 56, 57, 60, 61, 66, 68,
            71, 73, 80, 81, 84, 88, 90)
DRUM_STYLES = ("rock", "disco", "breaks", "ride")
EVAL_VOICES = ("en-us+f4", "en-gb-scotland+m5")


def _shift_voice(voice: str, r: int) -> str:
    lang, var = voice.split("+")
    sex, num = var[0], int(var[1:])
    out = f"{lang}+{sex}{(num - 1 + 2 * r) % 5 + 1}"
    return out if out not in EVAL_VOICES else f"{lang}+{sex}{(num + 2 * r) % 5 + 1}"


def recipes(r: int):
    """(name, render) of round ``r``: round 0 is the lists above; later rounds shift every recipe."""
    sfx = f"_r{r}" if r else ""
    jobs = []
    for voice, speed, sents in SPEECH:
        v = _shift_voice(voice, r) if r else voice
        name = "speech_" + v.replace("-", "_").replace("+", "_") + sfx
        jobs.append((name, partial(mc.speech_clip, voice=v, speed=speed + 7 * r * (-1) ** r, sentences=sents)))
    for name, seed, builder, secs, dry, kw in MUSIC:
        kw = dict(kw)
        if r:
            for key in ("prog", "chord_prog", "lead_prog", "pad_prog"):
                if key in kw:
                    kw[key] = PROGRAMS[(PROGRAMS.index(kw[key]) + 7 * r) % len(PROGRAMS)] \
                        if kw[key] in PROGRAMS else kw[key]
            if "style" in kw:
                kw["style"] = DRUM_STYLES[(DRUM_STYLES.index(kw["style"]) + r) % len(DRUM_STYLES)]
            if "drums" in kw:
                kw["drums"] = DRUM_STYLES[(DRUM_STYLES.index(kw["drums"]) + r) % len(DRUM_STYLES)]
            kw["bpm"] = kw["bpm"] * (1 + 0.08 * r)
            kw["root"] = kw.get("root", 60) + (2 * r) % 7 if "root" in kw else None
            if kw["root"] is None:
                del kw["root"]
        jobs.append((name + sfx, partial(mc.music_clip, seed=seed + 50 * r, builder=builder, seconds=secs, dry=dry,
                                         **kw)))
    for name, render in synthetic(r):
        jobs.append((name + sfx, render))
    return jobs


#: Real recordings: (Debian package, glob, name prefix; the prefix sets the type via ``vaelib.categories.category_of``).
#: ``sound-icons`` files are typed one by one in :data:`SOUND_ICON_TYPES`; the rest of that package is "other".
REAL_SOURCES = (
    ("oxygen-sounds", "/usr/share/sounds/Oxygen-*.ogg", "oxygen"),
    ("sound-icons", "/usr/share/sounds/sound-icons/*.wav", "icon"),
    ("lmms-common", "/usr/share/lmms/samples/drums/*.ogg", "drums_lmms"),
    ("lmms-common", "/usr/share/lmms/samples/beats/*.ogg", "drums_lmms_beats"),
    ("lmms-common", "/usr/share/lmms/samples/basses/*.ogg", "music_lmms_basses"),
    ("lmms-common", "/usr/share/lmms/samples/bassloops/*.ogg", "music_lmms_bassloops"),
    ("lmms-common", "/usr/share/lmms/samples/instruments/*.ogg", "music_lmms_instruments"),
    ("lmms-common", "/usr/share/lmms/samples/latin/*.ogg", "music_lmms_latin"),
    ("lmms-common", "/usr/share/lmms/samples/stringsnpads/*.ogg", "music_lmms_pads"),
    ("lmms-common", "/usr/share/lmms/samples/effects/*.ogg", "lmms_effects"),
    ("lmms-common", "/usr/share/lmms/samples/misc/*.ogg", "lmms_misc"),
)
#: More real recordings (``--real-extra``; added for the third bundled version): event sounds and ringtones of two
#: other desktops, Sonic Pi's sample library (CC0 / CC-BY / MIT, per their copyright files) and real speech from
#: KLettres. Sonic Pi files are typed one by one in :data:`SONIC_PI_TYPES`. An optional fourth field keeps every
#: k-th file of the sorted glob.
REAL_SOURCES_EXTRA = (
    ("deepin-sound-theme", "/usr/share/sounds/deepin/stereo/*.wav", "deepin"),
    ("lomiri-sounds", "/usr/share/sounds/lomiri/camera/*/*.ogg", "lomiri_camera"),
    ("lomiri-sounds", "/usr/share/sounds/lomiri/notifications/*.ogg", "lomiri_notify"),
    ("lomiri-sounds", "/usr/share/sounds/lomiri/ringtones/*.ogg", "music_lomiri_ring"),
    ("sonic-pi-samples", "/usr/share/sonic-pi/samples/*.flac", "sonicpi"),
    # real speech: letters and syllables spoken in 19 languages (GPL-2+); every 6th file (~8.5 min of 51)
    ("klettres-data", "/usr/share/klettres/*/*/*.ogg", "speech_klettres", 6),
)
#: Still more real recordings (``--real-more``; added for the fourth round, docs/restorers.md): recorded game voice
#: acting in 15 voice packs (every 4th file), game effects, and game and orchestral music (Hedgewars, GPL-2; The
#: Battle for Wesnoth's soundtrack, GPL-2+; Frozen Bubble, GPL-2; Tux Typing, GPL-3 / CC). Files longer than
#: :data:`EXCERPT_S`'s start + length are cut to that excerpt (whole soundtrack tracks would outweigh the rest).
REAL_SOURCES_MORE = (
    ("hedgewars-data", "/usr/share/games/hedgewars/Data/Sounds/voices/*/*.ogg", "speech_hedgewars", 4),
    ("hedgewars-data", "/usr/share/games/hedgewars/Data/Sounds/*.ogg", "hedgewars"),
    ("hedgewars-data", "/usr/share/games/hedgewars/Data/Music/*.ogg", "music_hedgewars"),
    ("wesnoth-1.16-music", "/usr/share/games/wesnoth/1.16/data/core/music/*.ogg", "music_wesnoth"),
    ("frozen-bubble-data", "/usr/share/games/frozen-bubble/snd/*.ogg", "frozen_bubble"),
    ("tuxtype-data", "/usr/share/tuxtype/sounds/*.[wo][ag][vg]", "tuxtype"),
)
#: (start, length) in seconds of the excerpt kept of a long ``--real-more`` file.
EXCERPT_S = (20.0, 20.0)
SONIC_PI_TYPES = {"drums": ("bd_", "sn_", "drum_", "tabla_", "perc_", "glitch_perc", "loop_amen", "loop_breakbeat",
                            "loop_perc", "loop_tabla", "loop_compus", "loop_safari", "elec_filt_snare", "elec_hi_snare",
                            "elec_lo_snare", "elec_mid_snare", "elec_snare", "elec_hollow_kick", "elec_soft_kick",
                            "elec_cymbal", "elec_fuzz_tom"),
                  "music": ("ambi_", "bass_", "guit_", "glitch_bass", "loop_drone")}
SOUND_ICON_TYPES = {"music": ("cembalo", "chord", "electric-piano", "guitar", "klavichord", "piano", "trumpet",
                              "violoncello", "xylofon"),
                    "drums": ("percussion", "cymbaly")}
FROZEN_BUBBLE_TYPES = {"music": ("frozen-mainzik", "introzik")}
TUXTYPE_TYPES = {"music": ("amidst_the_raindrops", "chiptune2", "tuxi")}
#: Files of the chosen packages left out because they correlate with a sound-theme-freedesktop sound
#: (max normalised cross-correlation at 8 kHz ≥ 0.5; Oxygen-Im-Message-In is message-new-instant).
EXCLUDED = (
    "/usr/share/lmms/samples/misc/dong02.ogg",
    "/usr/share/sounds/Oxygen-Im-Message-In.ogg",
    "/usr/share/sounds/Oxygen-Im-Network-Problems.ogg",
    "/usr/share/sounds/Oxygen-Im-New-Mail.ogg",
    "/usr/share/sounds/Oxygen-Im-Sms.ogg",
    "/usr/share/sounds/Oxygen-Sys-Error-Printing.ogg",
    "/usr/share/sounds/Oxygen-Sys-List-Match-No.ogg",
    "/usr/share/sounds/Oxygen-Sys-Log-Out.ogg",
    "/usr/share/sounds/Oxygen-Sys-Question.ogg",
    "/usr/share/sounds/Oxygen-Sys-Warning.ogg",
    "/usr/share/sonic-pi/samples/elec_plip.flac",  # --real-extra: short clicks, 0.51 / 0.58 (not copies)
    "/usr/share/sonic-pi/samples/tabla_tas1.flac",
    "/usr/share/klettres/es/syllab/mo.ogg",  # --real-extra: short syllables vs. spoken announcements, 0.51-0.53
    "/usr/share/klettres/es/syllab/qui.ogg",
    "/usr/share/klettres/ru/syllab/russ.ogg",
)
#: The fixed held-out set written to ``heldout.lst``: the 42 files the second bundled restorers held out (their
#: seeded 15 % split), so that restorers trained on different data are compared on the same, never-trained clips
#: (``vaelib train-restorer --holdout-files OUT/heldout.lst``).
HELDOUT = (
    "chirp_log_down_7900_300.flac",
    "chirp_log_down_7900_600_r2.flac",
    "drums_breaks_slow_r1.flac",
    "drums_disco_wet_r1.flac",
    "drums_lmms_beats_909beat01.flac",
    "drums_lmms_beats_rave_hihat02.flac",
    "drums_lmms_chain02.flac",
    "drums_rock_fast_r2.flac",
    "lmms_effects_start02.flac",
    "music_band_jazz_r1.flac",
    "music_celesta_r2.flac",
    "music_lmms_bassloops_tb303_01.flac",
    "music_lmms_bassloops_techno_bass01.flac",
    "music_lmms_bassloops_techno_synth04.flac",
    "music_lmms_latin_latin_guitar01.flac",
    "music_lmms_latin_latin_guitar03.flac",
    "music_lmms_pads_chorus02.flac",
    "music_lmms_pads_juno_pad01.flac",
    "music_piano_bright_r2.flac",
    "music_strings_choir_r2.flac",
    "music_strings_pad.flac",
    "music_strings_synth_r1.flac",
    "music_strings_synth_r2.flac",
    "noise_bursts_s203.flac",
    "noise_bursts_s303_r2.flac",
    "oxygen_chain01.flac",
    "oxygen_sys_app_negative.flac",
    "oxygen_sys_list_end.flac",
    "oxygen_sys_log_out_long.flac",
    "speech_de_m4_r2.flac",
    "speech_en_gb_x_rp_f5_r2.flac",
    "speech_en_us_f5_r1.flac",
    "speech_en_us_m3_r1.flac",
    "speech_es_m1_r1.flac",
    "speech_fr_fr_m3.flac",
    "speech_nl_m1.flac",
    "speech_sv_m1_r2.flac",
    "speech_sv_m2.flac",
    "tone_294_noise_4k_7k.flac",
    "tone_330_noise_4k_7k_r2.flac",
    "tone_392_noise_6k_7k.flac",
    "tone_98_noise_4k_7k.flac",
)
FORBIDDEN = Path("/usr/share/sounds/freedesktop")
CHAIN_MIN_S, CHAIN_MAX_S, GAP_S = 1.5, 8.0, 0.2
DUP_LIMIT = 0.5


def _forbidden(path) -> bool:
    p = Path(path).resolve()
    return p == FORBIDDEN or FORBIDDEN in p.parents


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_")


def _typed_prefix(stem: str, prefix: str) -> str:
    """The name prefix of one file: per-file types for ``sound-icons`` and Sonic Pi, else the source's prefix."""
    table = {"icon": SOUND_ICON_TYPES, "sonicpi": SONIC_PI_TYPES, "frozen_bubble": FROZEN_BUBBLE_TYPES,
             "tuxtype": TUXTYPE_TYPES}.get(prefix)
    if table is None:
        return prefix
    for kind, words in table.items():
        if stem.lower().startswith(words):
            return f"{kind}_{prefix}"
    return prefix


class _DupGuard:
    """Max normalised cross-correlation (8 kHz) of a clip with the freedesktop sounds, when they are installed."""

    def __init__(self):
        from vaelib.audio import load_audio

        self.refs = []
        for f in sorted((FORBIDDEN / "stereo").glob("*.oga")) if FORBIDDEN.is_dir() else []:
            try:
                y = load_audio(f, sr=8000, min_samples=1).astype(np.float64)
            except Exception:  # noqa: BLE001 - an unreadable reference cannot match anything
                continue
            self.refs.append((f.name, y / (np.linalg.norm(y) + 1e-12)))

    def worst(self, x16: np.ndarray) -> tuple[float, str]:
        from scipy.signal import fftconvolve, resample_poly

        if not self.refs:
            return 0.0, ""
        x = resample_poly(x16.astype(np.float64), 1, 2)
        x = x / (np.linalg.norm(x) + 1e-12)
        return max((float(np.abs(fftconvolve(x, y[::-1])).max()), name) for name, y in self.refs)


class _LikeGuard:
    """Max normalised cross-correlation of a clip with every audio file under some folders (e.g. the real-recordings
    test and selection sets of ``scripts/make_realtest.py``), by that script's own measure (mean-free, unit-norm
    4 kHz signals, any lag), so that a training file is checked against those sets exactly as they were built."""

    def __init__(self, folders=()):
        from make_realtest import _env4k, load16k

        from vaelib.audio import find_audio

        self.names, refs = [], []
        for folder in folders:
            for f in find_audio(folder):
                self.names.append(str(f))
                refs.append(_env4k(load16k(f)))
        self.refs = refs
        self.longest = max(map(len, refs), default=0)
        self._spectra: dict[int, np.ndarray] = {}

    def worst(self, x16: np.ndarray) -> tuple[float, str]:
        from make_realtest import _env4k

        if not self.refs:
            return 0.0, ""
        a = _env4k(x16)
        nfft = 1 << (len(a) + self.longest - 1).bit_length()
        if nfft not in self._spectra:  # every reference's spectrum once per FFT size (a few powers of two)
            self._spectra[nfft] = np.conj(np.stack([np.fft.rfft(r, nfft) for r in self.refs]))
        c = np.abs(np.fft.irfft(np.fft.rfft(a, nfft)[None] * self._spectra[nfft], nfft)).max(axis=1)
        k = int(np.argmax(c))
        return float(c[k]), self.names[k]


def _excerpt(x: np.ndarray) -> np.ndarray:
    start, length = (int(v * mc.SR) for v in EXCERPT_S)
    return x[start:start + length] if len(x) > start + length else x


def real_clips(sources=REAL_SOURCES, like: _LikeGuard | None = None, excerpt: bool = False, dropped=None):
    """(name, waveform at 16 kHz) of the real-recording part, in a fixed order; prints what it skips.

    ``like``: files correlating ≥ :data:`DUP_LIMIT` with one of its files are left out; with a ``dropped`` list, a
    file that close to a freedesktop sound is left out too (without one, that stops the script: :data:`EXCLUDED` is
    curated by hand), each appended as (file, score, matching file); ``excerpt``: long files are cut to
    :data:`EXCERPT_S`."""
    import glob

    from vaelib.audio import load_audio

    guard = _DupGuard()
    out = []
    for package, pattern, prefix, *every in sources:
        if _forbidden(pattern.split("*")[0]):
            raise SystemExit(f"error: {pattern} is under {FORBIDDEN} (the real-recordings test set)")
        files = sorted(glob.glob(pattern))[:: every[0] if every else 1]
        if not files:
            raise SystemExit(f"error: no files match {pattern}; apt-get install --no-install-recommends {package}")
        groups: dict[str, list] = {}
        for f in files:
            if _forbidden(f):
                raise SystemExit(f"error: {f} is under {FORBIDDEN} (the real-recordings test set)")
            if f in EXCLUDED:
                print(f"  excluded (close to a freedesktop sound): {f}")
                continue
            try:
                x = load_audio(f, sr=mc.SR, min_samples=1).astype(np.float64)
            except Exception as exc:  # noqa: BLE001 - a few package files are not readable by libsndfile
                print(f"  skipped (unreadable): {f} ({type(exc).__name__})")
                continue
            if not np.any(x):
                print(f"  skipped (silent): {f}")
                continue
            if excerpt:
                x = _excerpt(x)
            score, ref = guard.worst(x)
            if score >= DUP_LIMIT and dropped is None:
                raise SystemExit(f"error: {f} correlates {score:.2f} with freedesktop {ref}; add it to EXCLUDED")
            if score < DUP_LIMIT and like is not None:
                score, ref = like.worst(x)
            if score >= DUP_LIMIT:
                print(f"  dropped (correlates {score:.2f} with {ref}): {f}")
                dropped.append((f, score, ref))
                continue
            root = pattern.split("*")[0]
            stem = "_".join(Path(f).relative_to(root).with_suffix("").parts) if "/" in pattern[len(root):] \
                else Path(f).stem  # globbed folders name the file too (klettres: one "a.ogg" per language)
            pre = _typed_prefix(stem, prefix)
            if len(x) >= CHAIN_MIN_S * mc.SR:
                out.append((f"{pre}_{_slug(stem.removeprefix('Oxygen-'))}", x))
            else:
                groups.setdefault(pre, []).append(mc.normalise(x))
        for pre, pieces in groups.items():
            chains, cur = [], []
            gap = np.zeros(int(GAP_S * mc.SR))
            for x in pieces:
                if cur and sum(map(len, cur)) + len(x) > CHAIN_MAX_S * mc.SR:
                    chains.append(cur)
                    cur = []
                cur += [x, gap]
            if cur:
                if chains and sum(map(len, cur)) < 3.0 * mc.SR:
                    chains[-1] += cur
                else:
                    chains.append(cur)
            out += [(f"{pre}_chain{k:02d}", np.concatenate(c)) for k, c in enumerate(chains)]
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, required=True, help="new (or empty) output folder")
    ap.add_argument("--rounds", type=int, default=1,
                    help="rounds of the recipe list; round r > 0 shifts voices, seeds, programs and pitches")
    ap.add_argument("--real", action="store_true",
                    help="also add real recordings from other Debian packages (REAL_SOURCES; never freedesktop)")
    extra = sorted({src[0] for src in REAL_SOURCES_EXTRA})
    ap.add_argument("--real-extra", nargs="*", default=None, metavar="PACKAGE", choices=extra,
                    help=f"with --real: also REAL_SOURCES_EXTRA, all of it or these packages ({', '.join(extra)})")
    more = sorted({src[0] for src in REAL_SOURCES_MORE})
    ap.add_argument("--real-more", nargs="*", default=None, metavar="PACKAGE", choices=more,
                    help=f"also REAL_SOURCES_MORE (long files cut to an excerpt), all of it or these packages "
                         f"({', '.join(more)}); works without --real")
    ap.add_argument("--exclude-like", type=Path, nargs="*", default=[], metavar="DIR",
                    help="leave out every real training file that correlates >= 0.5 with an audio file under these "
                         "folders (e.g. the test and selection sets of make_realtest.py; listed in dropped.csv)")
    args = ap.parse_args(argv)
    if args.real_extra is not None and not args.real:
        print("error: --real-extra adds to --real; pass both", file=sys.stderr)
        return 2
    if _forbidden(args.out):
        print(f"error: refusing to write under {FORBIDDEN}", file=sys.stderr)
        return 2
    if args.out.exists() and any(args.out.iterdir()):
        print(f"error: {args.out} is not empty; pass a new folder", file=sys.stderr)
        return 2
    if args.rounds:
        mc.check_tools()
    args.out.mkdir(parents=True, exist_ok=True)
    total = 0.0
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        jobs = []
        for r in range(args.rounds):
            jobs.extend(recipes(r))
        for name, render in jobs:
            x = mc.normalise(np.asarray(render(tmp), dtype=np.float64))
            dur = mc.write_clip(mc.Clip(name, ".", "x", "", "", render), x, args.out)
            total += dur
            print(f"{name:36s} {dur:5.2f} s  >4 kHz {100 * mc.high_band_fraction(x):5.1f} %")
    if args.real or args.real_more is not None:
        import soundfile as sf

        like = _LikeGuard(args.exclude_like) if args.exclude_like else None
        dropped: list = []
        real = []
        if args.real:
            picked = tuple(src for src in REAL_SOURCES_EXTRA if args.real_extra is not None
                           and (not args.real_extra or src[0] in args.real_extra))
            real += real_clips(REAL_SOURCES + picked, like=like, dropped=dropped if like is not None else None)
        if args.real_more is not None:
            picked = tuple(src for src in REAL_SOURCES_MORE if not args.real_more or src[0] in args.real_more)
            real += real_clips(picked, like=like, excerpt=True, dropped=dropped)
        if like is not None or dropped:
            import csv

            with open(args.out / "dropped.csv", "w", newline="", encoding="utf-8") as fh:
                w = csv.writer(fh)
                w.writerow(["file", "max_xcorr", "like"])
                w.writerows((f, f"{score:.3f}", ref) for f, score, ref in dropped)
        for name, x in real:
            if (args.out / f"{name}.flac").exists():
                raise SystemExit(f"error: two clips named {name}")
            x = mc.normalise(x)
            sf.write(args.out / f"{name}.flac", x.astype(np.float32), mc.SR, format="FLAC", subtype="PCM_16")
            total += len(x) / mc.SR
            print(f"{name:36s} {len(x) / mc.SR:5.2f} s  >4 kHz {100 * mc.high_band_fraction(x):5.1f} %")
        jobs += real
    from vaelib.audio import write_audio_list

    held = [n for n in HELDOUT if (args.out / n).is_file()]
    write_audio_list(args.out / "heldout.lst", held)
    print(f"{len(jobs)} clips, {total:.1f} s in {args.out}; {len(held)} of them in heldout.lst (fixed held-out set)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
