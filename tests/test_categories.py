"""The one rule for a clip's audio type (vaelib.categories), used by eval, the restorers and the reports."""

from vaelib.categories import CATEGORIES, category_index, category_of


def test_file_and_folder_words():
    assert category_of("a/speech_en_us.flac") == "speech"
    assert category_of("music_band_rock.wav") == "music"
    assert category_of("x/drums_hats16.flac") == "percussion"
    assert category_of("chirp_log.flac") == "other"
    assert category_of("/data/percussion/take1.wav") == "percussion"  # a parent folder names the type
    assert category_of("/data/birds/take1.wav") == "other"
    assert category_index("x/drums_hats16.flac") == CATEGORIES.index("percussion")
    assert category_index("x/speech_a.wav", categories=("speech", "other")) == 0
    assert category_index("x/music_a.wav", categories=("speech", "other")) == 1  # unlisted -> the last one


def test_manifest_label_wins_and_kind_is_a_fallback(tmp_path):
    (tmp_path / "sub").mkdir()
    (tmp_path / "manifest.csv").write_text("file,category,kind\nsub/music_x.wav,speech,\nsub/tone.wav,,synthetic\n"
                                           "sub/drums_y.wav,,music\nsub/z.wav,birds,\n")
    assert category_of(tmp_path / "sub" / "music_x.wav") == "speech"  # an explicit label beats the file name
    assert category_of(tmp_path / "sub" / "tone.wav") == "other"  # kind synthetic -> other
    assert category_of(tmp_path / "sub" / "drums_y.wav") == "percussion"  # the file name beats the descriptive kind
    assert category_of(tmp_path / "sub" / "z.wav") == "other"  # a label outside the taxonomy
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "manifest.csv").write_bytes(b"file,category\n\xff\xfe,speech\n")
    assert category_of(tmp_path / "bad" / "speech_a.wav") == "speech"  # an unreadable manifest is ignored


def test_demo_corpus_types():
    from vaelib.audio import find_audio

    got = {p.name: category_of(p) for p in find_audio("demo")}
    assert got["drums_hats16.flac"] == "percussion" and got["tone_220_noise_4k_8k.flac"] == "other"
    assert got["speech_en_us_f4.flac"] == "speech" and got["music_harpsichord.flac"] == "music"
