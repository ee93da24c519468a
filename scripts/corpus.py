#!/usr/bin/env python3
"""Build whittle's exporter corpus: tiny random-weight models exported the way users export.

    bash scripts/corpus_venv.sh                       # once: torch, transformers, timm (.venv-corpus)
    .venv-corpus/bin/python scripts/corpus.py --setup # same thing, from Python
    .venv-corpus/bin/python scripts/corpus.py --regenerate [--only a,b] [--keep-going]

Everything is built from config objects in code (no hub access, no pretrained weights),
seeded, with hidden 64 / 2 layers / vocab 512 (transformers) or shrunk widths and depths
(timm CNNs), and exported with `torch.onnx.export(..., dynamo=False)` (the TorchScript
exporter) at opset 17 with dynamic batch / sequence axes (dynamic_axes); BERT, LLaMA (KV),
ViT and ResNet also with the dynamo exporter (`dynamo=True`, opset 18) as NAME_dynamo. Decoders are also
exported with KV-cache inputs (past_key_values.N.key/value -> present.N.key/value), and the
T5 and Whisper decoders on their own (encoder_hidden_states as an input, self-attention
cache). ResNet, MobileNetV2 and RegNet are also exported with training=PRESERVE (NAME_bn),
which keeps BatchNormalization nodes that the default export fuses into the Convs. BERT,
GPT-2 and ViT are further passed through `onnxruntime.transformers.optimizer` (com.microsoft
contrib ops) as extra entries.

Parameters that come out of the initialiser constant (LayerNorm weights = 1, biases = 0)
get seeded noise, and BatchNorm running statistics are randomised, so that a backend that
drops a bias or a scale is caught.

Layout written (the checker tests/corpus/check.py needs only onnx/onnxruntime/numpy):

    tests/corpus/models/NAME.onnx                 weights inline
    tests/corpus/data/NAME/shape{0,1}.npz         inputs (by graph input name), two shapes
    tests/corpus/data/NAME/shape{0,1}.expected.npz onnxruntime's outputs (by graph output name)
    tests/corpus/manifest.tsv                     name family exporter opset inputs status notes
    tests/corpus/VERSIONS.txt                     the toolchain that produced them

The graph is traced at a third shape (different from both test shapes) so that a size the
tracer baked into the graph shows up as an onnxruntime/torch mismatch at the test shapes;
such entries are kept (the expected outputs are onnxruntime's) with status `ort-mismatch`.
A family that fails to export is recorded as `export-failed` with the error.
"""
from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
import traceback
import warnings

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CORPUS = os.path.join(REPO, "tests", "corpus")
OPSET = 17
SEED = 1234
VOCAB = 512
TORCH_TOL = 1e-4  # onnxruntime vs torch at the test shapes


def setup() -> int:
    return subprocess.call(["bash", os.path.join(REPO, "scripts", "corpus_venv.sh")])


# ----------------------------------------------------------------------------- helpers
# (imports of torch & co. are deferred so that --help and --setup work without them)

def _np():
    import numpy as np
    return np


def rng_for(name: str, shape_idx: int):
    import zlib
    np = _np()
    return np.random.default_rng(SEED + 1000 * shape_idx + zlib.crc32(name.encode()) % 1000)


def perturb(model, seed: int) -> None:
    """Give constant-initialised parameters (norm scales, biases) and BN statistics noise."""
    import torch
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for _, p in model.named_parameters():
            if p.numel() > 0 and p.dtype.is_floating_point and bool(torch.all(p == p.flatten()[0])):
                p.add_(torch.randn(p.shape, generator=g) * 0.1)
        for mod in model.modules():
            if isinstance(mod, torch.nn.modules.batchnorm._BatchNorm) and mod.running_mean is not None:
                mod.running_mean.copy_(torch.randn(mod.running_mean.shape, generator=g) * 0.1)
                mod.running_var.copy_(torch.rand(mod.running_var.shape, generator=g) + 0.5)


class Spec:
    """One corpus entry.

    build() -> torch module (eval) whose forward takes the inputs positionally, in order
    make(name, shape_idx) -> dict name -> np.ndarray (shape_idx 0, 1 = test shapes, 2 = trace)
    """

    def __init__(self, name, family, build, make, input_names, output_names, dynamic_axes, notes=""):
        self.name, self.family, self.build, self.make = name, family, build, make
        self.input_names, self.output_names, self.dynamic_axes = input_names, output_names, dynamic_axes
        self.notes = notes
        self.exporter = "torchscript"
        self.opset = OPSET
        self.ort_optimize = None  # (model_type, num_heads, hidden)
        self.export_kw = {}  # extra torch.onnx.export arguments (torchscript); "training": "preserve"
        self.post_check = None  # fn(onnx path) -> note; raises when the export is not what the entry is for


SPECS: list[Spec] = []


def spec(*a, **k) -> Spec:
    s = Spec(*a, **k)
    SPECS.append(s)
    return s


class Wrap:
    """Lazily-built torch.nn.Module around fn(model, *inputs) -> tuple of tensors."""

    @staticmethod
    def make(model, fn):
        import torch

        class W(torch.nn.Module):
            def __init__(self):
                super().__init__()
                self.m = model

            def forward(self, *args):
                out = fn(self.m, *args)
                return tuple(out) if isinstance(out, (tuple, list)) else (out,)

        return W().eval()


# ----------------------------------------------------------------------------- input makers

TEXT_SHAPES = {0: (1, 8), 1: (2, 5), 2: (2, 6)}
KV_SHAPES = {0: (1, 1, 7), 1: (2, 3, 4), 2: (2, 2, 5)}  # batch, new tokens, past length


def text_maker(names, vocab=VOCAB, pad_id=0, pad=True, lo=5, shapes=TEXT_SHAPES):
    """input_ids (+ attention_mask, token_type_ids); shape 1's second row is padded to length 3."""
    np = _np()

    def make(model_name, i):
        rng = rng_for(model_name, i)
        b, s = shapes[i]
        ids = rng.integers(lo, vocab, size=(b, s), dtype=np.int64)
        mask = np.ones((b, s), np.int64)
        if pad and i == 1 and b > 1:
            mask[1, 3:] = 0
            ids[1, 3:] = pad_id
        feeds = {}
        for n in names:
            if n == "input_ids":
                feeds[n] = ids
            elif n == "attention_mask":
                feeds[n] = mask
            elif n == "token_type_ids":
                tt = np.zeros((b, s), np.int64)
                tt[:, s // 2:] = 1
                feeds[n] = tt
            elif n == "decoder_input_ids":
                feeds[n] = rng.integers(lo, vocab, size=(b, max(2, s - 3)), dtype=np.int64)
            else:
                raise KeyError(n)
        return feeds

    return make


def image_maker(shapes, channels=3):
    np = _np()

    def make(model_name, i):
        rng = rng_for(model_name, i)
        b, h, w = shapes[i]
        return {"pixel_values": rng.standard_normal((b, channels, h, w)).astype(np.float32)}

    return make


IMG_FIXED = {0: (1, 32, 32), 1: (2, 32, 32), 2: (3, 32, 32)}
IMG_DYN = {0: (1, 32, 32), 1: (2, 48, 40), 2: (2, 64, 64)}
IMG_AXES = {"pixel_values": {0: "batch"}}
IMG_AXES_HW = {"pixel_values": {0: "batch", 2: "height", 3: "width"}}


# ----------------------------------------------------------------------------- transformers: encoders

def hf_encoder(name, family, cfg_fn, model_cls, inputs=("input_ids", "attention_mask"), outputs=None,
               pad_id=0, vocab=VOCAB, ort_opt=None, notes=""):
    outputs = outputs or ["last_hidden_state"]

    def build():
        import torch
        import transformers
        torch.manual_seed(SEED)
        cfg = cfg_fn(transformers)
        cfg._attn_implementation = "eager"
        m = getattr(transformers, model_cls)(cfg).eval()
        perturb(m, SEED)

        def fn(m, *args):
            o = m(**dict(zip(inputs, args)))
            return [o[k] for k in outputs]

        return Wrap.make(m, fn)

    axes = {n: {0: "batch", 1: "decoder_sequence" if n.startswith("decoder_") else "sequence"} for n in inputs}
    seq = "decoder_sequence" if "decoder_input_ids" in inputs else "sequence"
    for o in outputs:
        axes[o] = {0: "batch", 1: seq} if o in ("last_hidden_state", "logits") else {0: "batch"}
    s = spec(name, family, build, text_maker(list(inputs), vocab=vocab, pad_id=pad_id), list(inputs), outputs, axes,
             notes)
    if ort_opt:
        s.ort_optimize = ort_opt
    return s


H = dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=4, intermediate_size=128, vocab_size=VOCAB,
         max_position_embeddings=64)

hf_encoder("bert", "BERT", lambda t: t.BertConfig(**H), "BertModel",
           inputs=("input_ids", "attention_mask", "token_type_ids"),
           outputs=["last_hidden_state", "pooler_output"], ort_opt=("bert", 4, 64))
hf_encoder("distilbert", "DistilBERT",
           lambda t: t.DistilBertConfig(vocab_size=VOCAB, dim=64, n_layers=2, n_heads=4, hidden_dim=128,
                                        max_position_embeddings=64), "DistilBertModel")
hf_encoder("roberta", "RoBERTa", lambda t: t.RobertaConfig(**dict(H, max_position_embeddings=66)), "RobertaModel",
           pad_id=1, outputs=["last_hidden_state", "pooler_output"])
hf_encoder("albert", "ALBERT", lambda t: t.AlbertConfig(embedding_size=32, **H), "AlbertModel",
           inputs=("input_ids", "attention_mask", "token_type_ids"), outputs=["last_hidden_state", "pooler_output"])
hf_encoder("electra", "ELECTRA", lambda t: t.ElectraConfig(embedding_size=32, **H), "ElectraModel",
           inputs=("input_ids", "attention_mask", "token_type_ids"))
hf_encoder("deberta_v2", "DeBERTa-v2",
           lambda t: t.DebertaV2Config(**dict(H, relative_attention=True, position_buckets=16,
                                               max_relative_positions=32, pos_att_type=["p2c", "c2p"],
                                               position_biased_input=False)), "DebertaV2Model",
           inputs=("input_ids", "attention_mask", "token_type_ids"))
hf_encoder("mpnet", "MPNet", lambda t: t.MPNetConfig(**dict(H, max_position_embeddings=66)), "MPNetModel", pad_id=1)
hf_encoder("t5_encoder", "T5 encoder",
           lambda t: t.T5Config(vocab_size=VOCAB, d_model=64, d_kv=16, d_ff=128, num_layers=2, num_heads=4,
                                relative_attention_num_buckets=16), "T5EncoderModel")
hf_encoder("clip_text", "CLIP text",
           lambda t: t.CLIPTextConfig(vocab_size=VOCAB, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                                      num_attention_heads=4, max_position_embeddings=32, eos_token_id=2),
           "CLIPTextModel", outputs=["last_hidden_state", "pooler_output"])
hf_encoder("bart", "BART",
           lambda t: t.BartConfig(vocab_size=VOCAB, d_model=64, encoder_layers=2, decoder_layers=2,
                                  encoder_attention_heads=4, decoder_attention_heads=4, encoder_ffn_dim=128,
                                  decoder_ffn_dim=128, max_position_embeddings=64),
           "BartForConditionalGeneration", inputs=("input_ids", "attention_mask", "decoder_input_ids"),
           outputs=["logits"], pad_id=1, notes="seq2seq: encoder + decoder, no cache")


# ----------------------------------------------------------------------------- transformers: decoders

def hf_decoder(name, family, cfg_fn, model_cls="AutoModelForCausalLM", kv=True, ort_opt=None, notes=""):
    def build_model():
        import torch
        import transformers
        torch.manual_seed(SEED)
        cfg = cfg_fn(transformers)
        cfg._attn_implementation = "eager"
        if model_cls == "AutoModelForCausalLM":
            m = transformers.AutoModelForCausalLM.from_config(cfg, attn_implementation="eager")
        else:
            m = getattr(transformers, model_cls)(cfg)
        m = m.eval()
        perturb(m, SEED)
        return m

    def build_plain():
        m = build_model()
        return Wrap.make(m, lambda m, ids, mask: [m(input_ids=ids, attention_mask=mask, use_cache=False).logits])

    inputs = ["input_ids", "attention_mask"]
    axes = {"input_ids": {0: "batch", 1: "sequence"}, "attention_mask": {0: "batch", 1: "sequence"},
            "logits": {0: "batch", 1: "sequence"}}
    plain = spec(name, family, build_plain, text_maker(inputs), inputs, ["logits"], axes, notes)
    plain.ort_optimize = ort_opt
    if not kv:
        return

    # KV-cache variant: learn the cache layout (layers, per-layer key/value shapes) with one dry run.
    state = {}

    def cache_layout():
        if "layout" not in state:
            import torch
            m = build_model()
            with torch.no_grad():
                o = m(input_ids=torch.ones(1, 3, dtype=torch.long), use_cache=True)
            layout = []
            for layer in o.past_key_values.layers:
                k, v = layer.keys, layer.values
                assert k.shape[0] == 1 and k.shape[2] == 3 and v.shape[2] == 3, (k.shape, v.shape)
                layout.append((tuple(k.shape[1:2]) + tuple(k.shape[3:]), tuple(v.shape[1:2]) + tuple(v.shape[3:])))
            state["layout"] = layout
            state["config"] = m.config
        return state["layout"]

    def build_kv():
        from transformers import DynamicCache
        m = build_model()
        n = len(cache_layout())

        def fn(m, ids, mask, *past):
            cache = DynamicCache(ddp_cache_data=[(past[2 * i], past[2 * i + 1]) for i in range(n)], config=m.config)
            o = m(input_ids=ids, attention_mask=mask, past_key_values=cache, use_cache=True)
            outs = [o.logits]
            for layer in o.past_key_values.layers:
                outs += [layer.keys, layer.values]
            return outs

        return Wrap.make(m, fn)

    def make_kv(model_name, i):
        np = _np()
        rng = rng_for(model_name, i)
        b, s, p = KV_SHAPES[i]
        feeds = {"input_ids": rng.integers(5, VOCAB, size=(b, s), dtype=np.int64),
                 "attention_mask": np.ones((b, p + s), np.int64)}
        for li, (ks, vs) in enumerate(cache_layout()):
            feeds[f"past_key_values.{li}.key"] = rng.standard_normal((b, ks[0], p) + ks[1:]).astype(np.float32)
            feeds[f"past_key_values.{li}.value"] = rng.standard_normal((b, vs[0], p) + vs[1:]).astype(np.float32)
        return feeds

    n_layers = 2
    past = [f"past_key_values.{i}.{k}" for i in range(n_layers) for k in ("key", "value")]
    present = [p.replace("past_key_values", "present") for p in past]
    kv_axes = {"input_ids": {0: "batch", 1: "sequence"}, "attention_mask": {0: "batch", 1: "total_sequence"},
               "logits": {0: "batch", 1: "sequence"}}
    kv_axes.update({p: {0: "batch", 2: "past_sequence"} for p in past})
    kv_axes.update({p: {0: "batch", 2: "total_sequence"} for p in present})
    spec(name + "_kv", family, build_kv, make_kv, inputs + past, ["logits"] + present, kv_axes,
         "with KV cache" + (f"; {notes}" if notes else ""))


D = dict(vocab_size=VOCAB, hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
         max_position_embeddings=128)

hf_decoder("gpt2", "GPT-2", lambda t: t.GPT2Config(vocab_size=VOCAB, n_embd=64, n_layer=2, n_head=4, n_positions=128, n_inner=128),
           ort_opt=("gpt2", 4, 64))
hf_decoder("gpt_neox", "GPT-NeoX", lambda t: t.GPTNeoXConfig(**D, rotary_pct=0.25))
hf_decoder("opt", "OPT", lambda t: t.OPTConfig(vocab_size=VOCAB, hidden_size=64, ffn_dim=128, num_hidden_layers=2,
                                              num_attention_heads=4, word_embed_proj_dim=64,
                                              max_position_embeddings=128))
hf_decoder("bloom", "BLOOM", lambda t: t.BloomConfig(vocab_size=VOCAB, hidden_size=64, n_layer=2, n_head=4))
hf_decoder("llama", "LLaMA", lambda t: t.LlamaConfig(**D, num_key_value_heads=2))
hf_decoder("mistral", "Mistral", lambda t: t.MistralConfig(**D, num_key_value_heads=2, sliding_window=None))
hf_decoder("qwen2", "Qwen2", lambda t: t.Qwen2Config(**D, num_key_value_heads=2))
hf_decoder("phi3", "Phi-3", lambda t: t.Phi3Config(**D, num_key_value_heads=2, pad_token_id=0))
hf_decoder("gemma", "Gemma", lambda t: t.GemmaConfig(**D, num_key_value_heads=1, head_dim=16))


# Seq2seq decoders on their own (the encoder's output is an input): one decoding step with
# the self-attention cache as inputs (past_key_values.N.key/value -> present.N.key/value);
# cross-attention keys/values are recomputed from encoder_hidden_states. Narrower than the
# decoders above (d_model 32, vocab 128) to stay within the corpus budget.

S2S_VOCAB = 128
S2S_SHAPES = {0: (1, 8, 6), 1: (2, 5, 9), 2: (2, 6, 5)}  # batch, tokens, encoder length
S2S_KV_SHAPES = {0: (1, 1, 7, 6), 1: (2, 3, 4, 9), 2: (2, 2, 5, 5)}  # batch, new tokens, past, encoder length


def _t5_s2s(t):
    return t.T5ForConditionalGeneration(t.T5Config(vocab_size=S2S_VOCAB, d_model=16, d_kv=8, d_ff=32, num_layers=2,
                                                   num_decoder_layers=2, num_heads=2,
                                                   relative_attention_num_buckets=16))


def _whisper_s2s(t):
    return t.WhisperForConditionalGeneration(
        t.WhisperConfig(vocab_size=S2S_VOCAB, num_mel_bins=16, d_model=16, encoder_layers=1, decoder_layers=2,
                        encoder_attention_heads=2, decoder_attention_heads=2, encoder_ffn_dim=32, decoder_ffn_dim=32,
                        max_source_positions=16, max_target_positions=32, pad_token_id=1, bos_token_id=2,
                        eos_token_id=3, decoder_start_token_id=2))


def hf_s2s_decoder(name, family, ctor, d_model, ids_name, kv, notes=""):
    """The decoder of a seq2seq model (ctor(transformers) -> *ForConditionalGeneration), fed
    ids_name and encoder_hidden_states (and, with kv, the self-attention cache); output logits."""

    def build_model():
        import torch
        import transformers
        torch.manual_seed(SEED)
        m = ctor(transformers)
        m.config._attn_implementation = "eager"
        m = m.eval()
        perturb(m, SEED)
        return m

    def enc_out(enc):
        from transformers.modeling_outputs import BaseModelOutput
        return BaseModelOutput(last_hidden_state=enc)

    state = {}

    def cache_layout():  # per layer (heads, head_dim) of the self-attention key and value
        if "layout" not in state:
            import torch
            m = build_model()
            with torch.no_grad():
                o = m(encoder_outputs=enc_out(torch.zeros(1, 4, d_model)),
                      decoder_input_ids=torch.ones(1, 3, dtype=torch.long), use_cache=True)
            layout = []
            for layer in o.past_key_values.self_attention_cache.layers:
                k, v = layer.keys, layer.values
                assert k.shape[0] == 1 and k.shape[2] == 3 and v.shape[2] == 3, (k.shape, v.shape)
                layout.append((tuple(k.shape[1:2]) + tuple(k.shape[3:]), tuple(v.shape[1:2]) + tuple(v.shape[3:])))
            state["layout"] = layout
        return state["layout"]

    def build():
        m = build_model()
        if not kv:
            return Wrap.make(m, lambda m, ids, enc: [m(encoder_outputs=enc_out(enc), decoder_input_ids=ids,
                                                       use_cache=False).logits])
        from transformers import DynamicCache, EncoderDecoderCache
        n = len(cache_layout())

        def fn(m, ids, enc, *past):
            self_cache = DynamicCache(ddp_cache_data=[(past[2 * i], past[2 * i + 1]) for i in range(n)],
                                      config=m.config)
            cache = EncoderDecoderCache(self_cache, DynamicCache(config=m.config))
            o = m(encoder_outputs=enc_out(enc), decoder_input_ids=ids, past_key_values=cache, use_cache=True)
            outs = [o.logits]
            for layer in o.past_key_values.self_attention_cache.layers:
                outs += [layer.keys, layer.values]
            return outs

        return Wrap.make(m, fn)

    def make(model_name, i):
        np = _np()
        rng = rng_for(model_name, i)
        if kv:
            b, s, p, e = S2S_KV_SHAPES[i]
        else:
            (b, s, e), p = S2S_SHAPES[i], 0
        feeds = {ids_name: rng.integers(5, S2S_VOCAB, size=(b, s), dtype=np.int64),
                 "encoder_hidden_states": rng.standard_normal((b, e, d_model)).astype(np.float32)}
        if kv:
            for li, (ks, vs) in enumerate(cache_layout()):
                feeds[f"past_key_values.{li}.key"] = rng.standard_normal((b, ks[0], p) + ks[1:]).astype(np.float32)
                feeds[f"past_key_values.{li}.value"] = rng.standard_normal((b, vs[0], p) + vs[1:]).astype(np.float32)
        return feeds

    inputs = [ids_name, "encoder_hidden_states"]
    axes = {ids_name: {0: "batch", 1: "sequence"}, "encoder_hidden_states": {0: "batch", 1: "encoder_sequence"},
            "logits": {0: "batch", 1: "sequence"}}
    outputs = ["logits"]
    if kv:
        n_layers = 2
        past = [f"past_key_values.{i}.{k}" for i in range(n_layers) for k in ("key", "value")]
        present = [p.replace("past_key_values", "present") for p in past]
        axes.update({p: {0: "batch", 2: "past_sequence"} for p in past})
        axes.update({p: {0: "batch", 2: "total_sequence"} for p in present})
        inputs, outputs = inputs + past, outputs + present
    return spec(name, family, build, make, inputs, outputs, axes,
                "; ".join(x for x in ("decoder only, encoder output as input", "self-attention KV cache" if kv else "",
                                      notes) if x))


hf_s2s_decoder("t5_decoder_kv", "T5 decoder", _t5_s2s, 16, "input_ids", kv=True,
               notes="d_model 16, 2 heads, vocab 128, relative position bias")
# No cache (use_cache=False) and no attention mask: transformers' masking_utils looks for packed
# sequences in the position ids with torch.diff, which the TorchScript exporter cannot export
# (aten::diff at opset 17): recorded as export-failed; the KV entry below exports.
hf_s2s_decoder("whisper_decoder", "Whisper decoder", _whisper_s2s, 16, "decoder_input_ids", kv=False,
               notes="d_model 16, 2 heads, vocab 128")
hf_s2s_decoder("whisper_decoder_kv", "Whisper decoder", _whisper_s2s, 16, "decoder_input_ids", kv=True,
               notes="d_model 16, 2 heads, vocab 128")


# ----------------------------------------------------------------------------- transformers: vision / audio

def hf_image(name, family, cfg_fn, model_cls, outputs, shapes=IMG_FIXED, axes=IMG_AXES, out_axes=None, notes=""):
    def build():
        import torch
        import transformers
        torch.manual_seed(SEED)
        cfg = cfg_fn(transformers)
        try:
            cfg._attn_implementation = "eager"
        except Exception:
            pass
        m = getattr(transformers, model_cls)(cfg).eval()
        perturb(m, SEED)

        def fn(m, px):
            o = m(pixel_values=px)
            return [o[k] for k in outputs]

        return Wrap.make(m, fn)

    all_axes = dict(axes)
    for o in outputs:
        all_axes[o] = (out_axes or {}).get(o, {0: "batch"})
    spec(name, family, build, image_maker(shapes), ["pixel_values"], outputs, all_axes, notes)


V = dict(image_size=32, patch_size=8, num_channels=3, hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
         intermediate_size=128)

hf_image("clip_vision", "CLIP vision", lambda t: t.CLIPVisionConfig(**V), "CLIPVisionModel",
         ["last_hidden_state", "pooler_output"])
hf_image("vit", "ViT", lambda t: t.ViTConfig(**V, num_labels=10), "ViTForImageClassification", ["logits"])
SPECS[-1].ort_optimize = ("vit", 4, 64)
hf_image("deit", "DeiT", lambda t: t.DeiTConfig(**V), "DeiTModel", ["last_hidden_state", "pooler_output"])
hf_image("swin", "Swin",
         lambda t: t.SwinConfig(image_size=32, patch_size=2, embed_dim=16, depths=[1, 1, 1], num_heads=[1, 2, 4],
                                window_size=4, num_labels=10), "SwinForImageClassification", ["logits"])
hf_image("segformer", "SegFormer",
         lambda t: t.SegformerConfig(num_channels=3, num_encoder_blocks=4, depths=[1, 1, 1, 1], sr_ratios=[8, 4, 2, 1],
                                     hidden_sizes=[16, 32, 48, 64], num_attention_heads=[1, 1, 2, 2],
                                     decoder_hidden_size=32, num_labels=5),
         "SegformerForSemanticSegmentation", ["logits"], shapes=IMG_DYN, axes=IMG_AXES_HW,
         out_axes={"logits": {0: "batch", 2: "h4", 3: "w4"}})


def build_detr():
    import torch
    import transformers
    torch.manual_seed(SEED)
    backbone = transformers.ResNetConfig(embedding_size=16, hidden_sizes=[16, 32, 48, 64], depths=[1, 1, 1, 1],
                                         out_features=["stage4"])
    cfg = transformers.DetrConfig(use_timm_backbone=False, backbone_config=backbone, use_pretrained_backbone=False,
                                  d_model=64, encoder_layers=1, decoder_layers=1, encoder_attention_heads=4,
                                  decoder_attention_heads=4, encoder_ffn_dim=128, decoder_ffn_dim=128, num_queries=10,
                                  num_labels=5)
    m = transformers.DetrForObjectDetection(cfg).eval()
    perturb(m, SEED)
    return Wrap.make(m, lambda m, px: [(o := m(pixel_values=px)).logits, o.pred_boxes])


spec("detr", "DETR", build_detr, image_maker({0: (1, 64, 64), 1: (2, 48, 64), 2: (2, 64, 80)}), ["pixel_values"],
     ["logits", "pred_boxes"], dict(IMG_AXES_HW, logits={0: "batch"}, pred_boxes={0: "batch"}),
     "ResNet backbone (transformers), 1+1 layers, 10 queries")


def build_whisper():
    import torch
    import transformers
    torch.manual_seed(SEED)
    cfg = transformers.WhisperConfig(vocab_size=VOCAB, num_mel_bins=16, d_model=64, encoder_layers=2, decoder_layers=2,
                                     encoder_attention_heads=4, decoder_attention_heads=4, encoder_ffn_dim=128,
                                     decoder_ffn_dim=128, max_source_positions=16, max_target_positions=32,
                                     pad_token_id=1, bos_token_id=2, eos_token_id=3, decoder_start_token_id=2)
    cfg._attn_implementation = "eager"
    m = transformers.WhisperModel(cfg).get_encoder().eval()
    perturb(m, SEED)
    return Wrap.make(m, lambda m, x: [m(input_features=x).last_hidden_state])


def make_whisper(name, i):
    np = _np()
    b = {0: 1, 1: 2, 2: 3}[i]
    return {"input_features": rng_for(name, i).standard_normal((b, 16, 32)).astype(np.float32)}


spec("whisper_encoder", "Whisper encoder", build_whisper, make_whisper, ["input_features"], ["last_hidden_state"],
     {"input_features": {0: "batch"}, "last_hidden_state": {0: "batch"}},
     "16 mel bins x 32 frames (the encoder requires 2*max_source_positions frames)")


def build_wav2vec2():
    import torch
    import transformers
    torch.manual_seed(SEED)
    cfg = transformers.Wav2Vec2Config(vocab_size=32, hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
                                      intermediate_size=128, conv_dim=(32, 32, 32), conv_stride=(5, 2, 2),
                                      conv_kernel=(10, 3, 3), num_conv_pos_embeddings=16,
                                      num_conv_pos_embedding_groups=4, feat_extract_norm="group")
    cfg._attn_implementation = "eager"
    m = transformers.Wav2Vec2ForCTC(cfg).eval()
    perturb(m, SEED)
    return Wrap.make(m, lambda m, x: [m(input_values=x).logits])


def make_wav(name, i):
    np = _np()
    b, n = {0: (1, 800), 1: (2, 640), 2: (2, 720)}[i]
    return {"input_values": rng_for(name, i).standard_normal((b, n)).astype(np.float32)}


spec("wav2vec2", "wav2vec2", build_wav2vec2, make_wav, ["input_values"], ["logits"],
     {"input_values": {0: "batch", 1: "samples"}, "logits": {0: "batch", 1: "frames"}}, "CTC head, group-norm extractor")


# ----------------------------------------------------------------------------- timm CNNs

def timm_cnn(name, family, ctor, shapes=IMG_DYN, notes="") -> Spec:
    def build():
        import torch
        import timm  # noqa: F401
        torch.manual_seed(SEED)
        m = ctor().eval()
        perturb(m, SEED)
        return Wrap.make(m, lambda m, x: [m(x)])

    return spec(name, family, build, image_maker(shapes), ["pixel_values"], ["logits"],
                dict(IMG_AXES_HW, logits={0: "batch"}), notes)


def _timm(model, **kw):
    import timm
    return timm.create_model(model, pretrained=False, num_classes=10, **kw)


def _effnet():
    from timm.models.efficientnet import _gen_efficientnet
    return _gen_efficientnet("efficientnet_b0", channel_multiplier=0.25, depth_multiplier=0.25, num_classes=10,
                             pretrained=False)


def _mnv2():
    import torch
    from timm.layers import BatchNormAct2d
    from timm.models.efficientnet import _gen_mobilenet_v2
    m = _gen_mobilenet_v2("mobilenetv2_100", 0.25, depth_multiplier=0.5, num_classes=10, pretrained=False)
    # the 1280-wide head is most of the weights: shrink it to 128 (same ops: 1x1 conv, BN, ReLU6)
    m.conv_head = torch.nn.Conv2d(m.conv_head.in_channels, 128, 1, bias=False)
    m.bn2 = BatchNormAct2d(128, act_layer=torch.nn.ReLU6)
    m.classifier = torch.nn.Linear(128, 10)
    return m


def _mnv3():
    import torch
    from timm.models.mobilenetv3 import _gen_mobilenet_v3
    m = _gen_mobilenet_v3("mobilenetv3_small_100", 0.35, num_classes=10, pretrained=False)
    # the 1024-wide head is most of the weights: shrink it to 128 (same ops)
    m.conv_head = torch.nn.Conv2d(m.conv_head.in_channels, 128, 1, bias=True)
    m.classifier = torch.nn.Linear(128, 10)
    return m


def _regnet():
    from timm.models.regnet import RegNet, RegNetCfg
    return RegNet(RegNetCfg(w0=16, wa=16.0, wm=1.4, group_size=8, depth=4, se_ratio=0.25, stem_width=16),
                  num_classes=10)


timm_cnn("resnet", "ResNet", lambda: _timm("resnet18", layers=(1, 1, 1, 1), channels=(16, 32, 48, 64), stem_width=16),
         notes="timm resnet18 layout, widths 16-64, 1 block/stage")
timm_cnn("convnext", "ConvNeXt", lambda: _timm("convnext_atto", depths=(1, 1, 1, 1), dims=(16, 32, 48, 64)),
         notes="timm convnext_atto layout, dims 16-64")
timm_cnn("mobilenetv2", "MobileNetV2", _mnv2, notes="timm mobilenetv2_100 x0.25 width, x0.5 depth, head 128")
timm_cnn("mobilenetv3", "MobileNetV3", _mnv3, notes="timm mobilenetv3_small_100 x0.35 width, head 128 (hard-swish, SE)")
timm_cnn("efficientnet", "EfficientNet", _effnet, notes="timm efficientnet_b0 x0.25 width/depth (SiLU, SE)")
timm_cnn("regnet", "RegNet", _regnet, notes="timm RegNetY-style (SE, grouped conv), 4 stages x 1 block")


# BatchNormalization kept in the graph. In eval mode the TorchScript exporter's default
# (training=EVAL) fuses Conv+BN, so no entry above has a BN node; other exporters, and
# torch.onnx.export(..., training=TrainingMode.PRESERVE), keep them (PRESERVE also skips
# constant folding). The model is in eval() mode, so the BNs are exported in inference form
# (training_mode=0, one output); post_check insists on it. Narrower than the entries above,
# and smaller images, to stay within the corpus budget.

IMG_SMALL = {0: (1, 16, 16), 1: (2, 24, 20), 2: (2, 32, 28)}


def require_inference_bn(path) -> str:
    import onnx
    g = onnx.load(path).graph
    bns = [n for n in g.node if n.op_type == "BatchNormalization"]
    if not bns:
        raise RuntimeError("no BatchNormalization node in the exported graph")
    for n in bns:
        mode = next((a.i for a in n.attribute if a.name == "training_mode"), 0)
        if mode != 0 or len([o for o in n.output if o]) != 1:
            raise RuntimeError(f"BatchNormalization {n.name} not in inference form (training_mode={mode}, "
                               f"{len(n.output)} outputs)")
    convs = sum(n.op_type == "Conv" for n in g.node)
    return f"{len(bns)} BatchNormalization (training_mode=0), {convs} Conv"


def timm_cnn_bn(name, family, ctor, notes="") -> Spec:
    s = timm_cnn(name, family, ctor, shapes=IMG_SMALL,
                 notes=(notes + "; " if notes else "") + "training=PRESERVE, do_constant_folding=False (BN kept)")
    s.export_kw = {"training": "preserve", "do_constant_folding": False}
    s.post_check = require_inference_bn
    return s


def _mnv2_bn():
    import torch
    from timm.layers import BatchNormAct2d
    from timm.models.efficientnet import _gen_mobilenet_v2
    m = _gen_mobilenet_v2("mobilenetv2_100", 0.25, depth_multiplier=0.25, num_classes=10, pretrained=False)
    # drop the last two (160-, 320-wide) stages and shrink the head to 64: most of the weights, no new ops
    m.blocks = m.blocks[:-2]
    m.conv_head = torch.nn.Conv2d(m.blocks[-1][-1].conv_pwl.out_channels, 64, 1, bias=False)
    m.bn2 = BatchNormAct2d(64, act_layer=torch.nn.ReLU6)
    m.classifier = torch.nn.Linear(64, 10)
    return m


def _regnet_bn():
    from timm.models.regnet import RegNet, RegNetCfg
    return RegNet(RegNetCfg(w0=8, wa=8.0, wm=1.4, group_size=8, depth=4, se_ratio=0.25, stem_width=8),
                  num_classes=10)


timm_cnn_bn("resnet_bn", "ResNet",
            lambda: _timm("resnet18", layers=(1, 1, 1, 1), channels=(8, 16, 16, 16), stem_type="deep", stem_width=4),
            notes="timm resnet18 layout with a deep stem (3 convs), widths 4-16, 1 block/stage")
timm_cnn_bn("mobilenetv2_bn", "MobileNetV2", _mnv2_bn,
            notes="timm mobilenetv2_100 x0.25 width, x0.25 depth, last two stages dropped, head 64 (depthwise conv, ReLU6)")
timm_cnn_bn("regnet_bn", "RegNet", _regnet_bn, notes="timm RegNetY-style (SE, grouped conv), widths 8-32")


# ----------------------------------------------------------------------------- dynamo exporter extras
# A few entries also through torch.onnx.export(..., dynamo=True) at opset 18 (torch.export
# graphs: different op patterns from the TorchScript exporter), weights inline.

DYNAMO_OPSET = 18


def dynamo_variant(base: str) -> None:
    b = next(x for x in SPECS if x.name == base)
    d = spec(base + "_dynamo", b.family, b.build, lambda _n, i, b=b: b.make(b.name, i), b.input_names,
             b.output_names, b.dynamic_axes, (b.notes + "; " if b.notes else "") + "dynamo exporter")
    d.exporter = "dynamo"
    d.opset = DYNAMO_OPSET


for _base in ("bert", "llama_kv", "vit", "resnet"):
    dynamo_variant(_base)


# ----------------------------------------------------------------------------- export machinery

def onnx_inputs_desc(model) -> str:
    import onnx
    elem = {v: k.lower() for k, v in onnx.TensorProto.DataType.items()}
    parts = []
    for i in model.graph.input:
        t = i.type.tensor_type
        dims = [d.dim_param or str(d.dim_value) for d in t.shape.dim]
        parts.append(f"{i.name}:{elem.get(t.elem_type, t.elem_type)}[{','.join(dims)}]")
    return " ".join(parts)


def rel_l2(a, b) -> float:
    np = _np()
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if a.shape != b.shape:
        return float("inf")
    return float(np.linalg.norm(a - b) / max(np.linalg.norm(b), 1e-30))


def ort_session(path):
    import onnxruntime as ort
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.log_severity_level = 3
    return ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])


def torch_run(module, feeds: dict, names: list[str]):
    import torch
    with torch.no_grad():
        outs = module(*[torch.from_numpy(feeds[n]) for n in names])
    return [o.detach().numpy() for o in outs]


def write_entry(name, path, feeds_per_shape, torch_outs_per_shape, out_dir_data):
    """Run onnxruntime at both shapes, save inputs + expected; return (status, notes)."""
    np = _np()
    sess = ort_session(path)
    in_names = [i.name for i in sess.get_inputs()]
    out_names = [o.name for o in sess.get_outputs()]
    ddir = os.path.join(out_dir_data, name)
    shutil.rmtree(ddir, ignore_errors=True)
    os.makedirs(ddir)
    worst = 0.0
    for si, feeds in enumerate(feeds_per_shape):
        feeds = {k: v for k, v in feeds.items() if k in in_names}
        outs = sess.run(None, feeds)
        np.savez(os.path.join(ddir, f"shape{si}.npz"), **feeds)
        np.savez(os.path.join(ddir, f"shape{si}.expected.npz"), **dict(zip(out_names, outs)))
        if torch_outs_per_shape is not None:
            for got, ref in zip(outs, torch_outs_per_shape[si]):
                worst = max(worst, rel_l2(got, ref))
    if worst > TORCH_TOL:
        return "ort-mismatch", f"onnxruntime vs torch rel_l2 {worst:.1e} (sizes baked by the tracer?)"
    return "ok", (f"ort vs torch rel_l2 {worst:.1e}" if torch_outs_per_shape is not None else "")


def export_one(s: Spec, models_dir, data_dir):
    import torch
    mod = s.build()
    trace_feeds = s.make(s.name, 2)
    args = tuple(torch.from_numpy(trace_feeds[n]) for n in s.input_names)
    path = os.path.join(models_dir, s.name + ".onnx")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if s.exporter == "dynamo":
            # the module's forward takes *args: one dynamic_shapes entry (a tuple) for it
            shapes = (tuple({ax: torch.export.Dim.DYNAMIC for ax in s.dynamic_axes.get(n, {})}
                            for n in s.input_names),)
            torch.onnx.export(mod, args, path, input_names=s.input_names, output_names=s.output_names,
                              dynamic_shapes=shapes, opset_version=s.opset, dynamo=True, external_data=False,
                              verbose=False)
        else:
            kw = dict(do_constant_folding=True)
            kw.update(s.export_kw)
            if kw.get("training") == "preserve":
                kw["training"] = torch.onnx.TrainingMode.PRESERVE
            torch.onnx.export(mod, args, path, input_names=s.input_names, output_names=s.output_names,
                              dynamic_axes=s.dynamic_axes, opset_version=s.opset, dynamo=False, **kw)
    check_note = s.post_check(path) if s.post_check else ""
    feeds = [s.make(s.name, i) for i in (0, 1)]
    touts = [torch_run(mod, f, s.input_names) for f in feeds]
    status, notes = write_entry(s.name, path, feeds, touts, data_dir)
    return mod, path, feeds, touts, status, "; ".join(x for x in (check_note, notes) if x)


def ort_optimize_one(s: Spec, src_path, feeds, touts, models_dir, data_dir):
    from onnxruntime.transformers.optimizer import optimize_model
    import onnx
    model_type, heads, hidden = s.ort_optimize
    name = s.name + "_ortopt"
    path = os.path.join(models_dir, name + ".onnx")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        opt = optimize_model(src_path, model_type=model_type, num_heads=heads, hidden_size=hidden)
    opt.save_model_to_file(path)
    m = onnx.load(path)
    contrib = sorted({n.op_type for n in m.graph.node if n.domain == "com.microsoft"})
    status, notes = write_entry(name, path, feeds, touts, data_dir)
    notes = f"com.microsoft ops: {','.join(contrib) or 'none'}; {notes}"
    return name, path, status, notes


def versions_text() -> str:
    from importlib.metadata import version
    lines = [f"python {sys.version.split()[0]}"]
    for p in ("torch", "transformers", "timm", "onnx", "onnxruntime", "onnxscript", "numpy"):
        try:
            lines.append(f"{p} {version(p)}")
        except Exception:
            lines.append(f"{p} (not installed)")
    lines.append("(triton uninstalled after installing torch: exporting does not need it)")
    return "\n".join(lines) + "\n"


def regenerate(only: list[str] | None) -> int:
    import onnx
    import torch
    torch.set_num_threads(1)
    models_dir = os.path.join(CORPUS, "models")
    data_dir = os.path.join(CORPUS, "data")
    os.makedirs(models_dir, exist_ok=True)
    os.makedirs(data_dir, exist_ok=True)
    manifest_path = os.path.join(CORPUS, "manifest.tsv")
    rows = {}
    if only and os.path.exists(manifest_path):  # partial run: keep the other rows
        with open(manifest_path) as f:
            for line in f.read().splitlines()[1:]:
                rows[line.split("\t")[0]] = line
    t_all = time.time()
    for s in SPECS:
        if only and s.name not in only:
            continue
        t = time.time()
        try:
            _, path, feeds, touts, status, notes = export_one(s, models_dir, data_dir)
            m = onnx.load(path)
            kb = os.path.getsize(path) / 1024
            rows[s.name] = "\t".join([s.name, s.family, s.exporter, str(s.opset), onnx_inputs_desc(m), status,
                                      "; ".join(x for x in (notes, s.notes, f"{kb:.0f} KB") if x)])
            print(f"{status:<14} {s.name:<18} {kb:7.0f} KB {time.time() - t:5.1f}s  {notes}", flush=True)
            if s.ort_optimize:
                t = time.time()
                try:
                    name, opath, ostatus, onotes = ort_optimize_one(s, path, feeds, touts, models_dir, data_dir)
                    om = onnx.load(opath)
                    kb = os.path.getsize(opath) / 1024
                    rows[name] = "\t".join([name, s.family, "torchscript+ort-transformers-optimizer", str(OPSET),
                                            onnx_inputs_desc(om), ostatus, f"{onotes}; {kb:.0f} KB"])
                    print(f"{ostatus:<14} {name:<18} {kb:7.0f} KB {time.time() - t:5.1f}s  {onotes}", flush=True)
                except Exception as e:
                    name = s.name + "_ortopt"
                    err = f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"[:300]
                    rows[name] = "\t".join([name, s.family, "torchscript+ort-transformers-optimizer", str(OPSET), "",
                                            "export-failed", err])
                    print(f"export-failed  {name:<18} {err}", flush=True)
        except Exception as e:
            err = f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"[:300]
            for p in (os.path.join(models_dir, s.name + ".onnx"),):
                if os.path.exists(p):
                    os.remove(p)
            shutil.rmtree(os.path.join(data_dir, s.name), ignore_errors=True)
            rows[s.name] = "\t".join([s.name, s.family, s.exporter, str(s.opset), "", "export-failed", err])
            print(f"export-failed  {s.name:<18} {err}", flush=True)
            if os.environ.get("CORPUS_TRACEBACK"):
                traceback.print_exc()
    order = [s.name for s in SPECS] + [s.name + "_ortopt" for s in SPECS if s.ort_optimize]
    with open(manifest_path, "w") as f:
        f.write("name\tfamily\texporter\topset\tinputs\tstatus\tnotes\n")
        for n in sorted(rows, key=lambda n: order.index(n) if n in order else len(order)):
            f.write(rows[n].replace("\n", " ") + "\n")
    with open(os.path.join(CORPUS, "VERSIONS.txt"), "w") as f:
        f.write(versions_text())
    total = sum(os.path.getsize(os.path.join(dp, fn)) for dp, _, fns in os.walk(CORPUS) for fn in fns
                if "/models" in dp or "/data" in dp)
    print(f"regenerated in {time.time() - t_all:.0f}s; models+data {total / 1e6:.1f} MB")
    return 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--setup", action="store_true", help="create .venv-corpus (scripts/corpus_venv.sh)")
    ap.add_argument("--regenerate", action="store_true", help="rebuild tests/corpus/ models, data, manifest")
    ap.add_argument("--only", help="comma-separated entry names (others keep their manifest rows)")
    ap.add_argument("--list", action="store_true", help="list the entry names")
    a = ap.parse_args()
    if a.list:
        for s in SPECS:
            print(f"{s.name:<18} {s.family}")
        return 0
    if a.setup:
        rc = setup()
        if rc or not a.regenerate:
            return rc
    if a.regenerate:
        return regenerate(a.only.split(",") if a.only else None)
    ap.print_help()
    return 2


if __name__ == "__main__":
    sys.exit(main())
