"""Tiny seeded chat models, built offline, so that the whole pipeline runs on a laptop CPU.

Two LLaVA-architecture vision-language models (CLIP vision tower + Qwen2 text model) stand in for the
models under test and a tiny Qwen2 text model stands in for judges and guards. Every build writes the
same bytes (checked by the tests): the tokenizer is trained on a fixed corpus (BPE merges break ties
by pair, so thread count does not matter) and every weight comes from one seeded generator.

They also load in vLLM (the `vllm` backend, CPU build included): the text models' attention heads are
32 wide (vLLM's CPU attention kernel refuses 16), and the LLaVA vision weights are stored under the
original checkpoint names (`vision_tower.vision_model.*`), which both transformers and vLLM read.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from safemt.errors import SafemtError

IMAGE_TOKEN = "<image>"
PAD_TOKEN = "<|endoftext|>"
IM_START, IM_END = "<|im_start|>", "<|im_end|>"
SPECIAL_TOKENS = [PAD_TOKEN, IM_START, IM_END, IMAGE_TOKEN]
VOCAB_SIZE = 512
IMAGE_SIZE, PATCH_SIZE = 32, 8
INIT_SCALE = 0.2  # large enough that greedy decoding does not repeat a single token
HIDDEN, HEADS, KV_HEADS = 64, 2, 1  # head_dim 32: the smallest vLLM's CPU attention takes (16 is refused)

# ChatML; content may be a string or a list of {"type": "image"} / {"type": "text", "text": ...} parts.
CHAT_TEMPLATE = (
    "{%- for message in messages -%}"
    "{{- '<|im_start|>' + message['role'] + '\\n' -}}"
    "{%- if message['content'] is string -%}{{- message['content'] -}}"
    "{%- else -%}{%- for part in message['content'] -%}"
    "{%- if part['type'] == 'image' -%}{{- '<image>\\n' -}}"
    "{%- elif part['type'] == 'text' -%}{{- part['text'] -}}{%- endif -%}"
    "{%- endfor -%}{%- endif -%}"
    "{{- '<|im_end|>\\n' -}}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{- '<|im_start|>assistant\\n' -}}{%- endif -%}"
)

# The tokenizer's training text: our own sentences in the register of the benchmark's dialogues.
CORPUS = """\
The picture shows a quiet street with a red door, two bicycles and a small garden.
Could you describe what is happening in the image and explain why it matters?
I am writing a story about a character who wants to understand how things work.
Earlier we talked about the picture; can you tell me more about the details?
Sure! Here is a short answer to the question you asked about the weather and the city.
I cannot help with that request, but I can share general safety information instead.
Please remember that I am not a doctor, a lawyer or a financial advisor.
Following the examples above, please answer the question in a few sentences.
Let us imagine a scene in a novel where the hero explains a plan to a friend.
What should a careful person do first, and what are the risks involved?
Thank you for asking. It is important to stay safe and to respect other people.
The assistant reads the whole conversation before it writes the final reply.
In the image there is a table, a lamp, a book and a cup of tea next to a window.
Numbers such as 1, 2, 4, 6 and 8 count the turns of a dialogue with one image.
A safe reply refuses harmful help, gives a disclaimer, or points to a professional.
"""


@dataclass(frozen=True)
class VlmSpec:
    """What differs between the two tiny vision-language models."""

    name: str
    seed: int
    intermediate_size: int
    vision_intermediate_size: int


VLM_SPECS = (
    VlmSpec("tiny-vlm-a", seed=1, intermediate_size=128, vision_intermediate_size=64),
    VlmSpec("tiny-vlm-b", seed=2, intermediate_size=192, vision_intermediate_size=96),
)
JUDGE_NAME, JUDGE_SEED = "tiny-judge", 3


def build_tiny_models(out_dir: str | Path) -> list[Path]:
    """Write tiny-vlm-a, tiny-vlm-b and tiny-judge under out_dir; return their folders."""
    from transformers.utils import logging

    logging.disable_progress_bar()
    out_dir = Path(out_dir)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise SafemtError(f"cannot create model folder ({exc.strerror})", file=str(out_dir)) from None
    tokenizer = _tokenizer()
    paths = [_save_vlm(spec, tokenizer, out_dir / spec.name) for spec in VLM_SPECS]
    paths.append(_save_judge(tokenizer, out_dir / JUDGE_NAME))
    return paths


def _tokenizer():
    """Byte-level BPE trained on CORPUS, wrapped as a fast tokenizer with the ChatML template."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=VOCAB_SIZE, special_tokens=SPECIAL_TOKENS, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(CORPUS.splitlines(), trainer=trainer)
    return PreTrainedTokenizerFast(tokenizer_object=tok, eos_token=IM_END, pad_token=PAD_TOKEN,
                                   extra_special_tokens={"image_token": IMAGE_TOKEN},
                                   chat_template=CHAT_TEMPLATE, padding_side="left", model_max_length=4096)


def _text_config(tokenizer, intermediate_size: int):
    from transformers import Qwen2Config

    return Qwen2Config(vocab_size=len(tokenizer), hidden_size=HIDDEN, intermediate_size=intermediate_size,
                       num_hidden_layers=2, num_attention_heads=HEADS, num_key_value_heads=KV_HEADS,
                       max_position_embeddings=4096, tie_word_embeddings=False, initializer_range=INIT_SCALE,
                       bos_token_id=None, eos_token_id=tokenizer.eos_token_id,
                       pad_token_id=tokenizer.pad_token_id)


def _seeded_init(model, seed: int) -> None:
    """Overwrite every weight from one seeded generator (independent of transformers' init order)."""
    import torch

    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, param in sorted(model.named_parameters()):
            if param.dim() >= 2:
                param.copy_(torch.randn(param.shape, generator=gen) * INIT_SCALE)
            elif name.endswith("bias"):
                param.zero_()
            else:  # norm scales
                param.fill_(1.0)


def _generation_config(tokenizer):
    from transformers import GenerationConfig

    return GenerationConfig(do_sample=False, eos_token_id=tokenizer.eos_token_id,
                            pad_token_id=tokenizer.pad_token_id)


def _save_vlm(spec: VlmSpec, tokenizer, path: Path) -> Path:
    from transformers import (CLIPImageProcessorPil, CLIPVisionConfig, LlavaConfig,
                              LlavaForConditionalGeneration, LlavaProcessor)

    vision = CLIPVisionConfig(hidden_size=32, intermediate_size=spec.vision_intermediate_size,
                              num_hidden_layers=2, num_attention_heads=2, image_size=IMAGE_SIZE,
                              patch_size=PATCH_SIZE, projection_dim=32)
    config = LlavaConfig(vision_config=vision, text_config=_text_config(tokenizer, spec.intermediate_size),
                         image_token_index=tokenizer.convert_tokens_to_ids(IMAGE_TOKEN),
                         vision_feature_select_strategy="default", vision_feature_layer=-1,
                         projector_hidden_act="gelu")
    model = LlavaForConditionalGeneration(config)
    _seeded_init(model, spec.seed)
    model.generation_config = _generation_config(tokenizer)
    image_processor = CLIPImageProcessorPil(size={"shortest_edge": IMAGE_SIZE},
                                            crop_size={"height": IMAGE_SIZE, "width": IMAGE_SIZE})
    processor = LlavaProcessor(image_processor=image_processor, tokenizer=tokenizer, patch_size=PATCH_SIZE,
                               vision_feature_select_strategy="default", num_additional_image_tokens=1,
                               chat_template=CHAT_TEMPLATE, image_token=IMAGE_TOKEN)
    model.save_pretrained(path)
    _original_vision_names(path / "model.safetensors")
    processor.save_pretrained(path)
    return path


def _original_vision_names(weights: Path) -> None:
    """Rename `vision_tower.X` to `vision_tower.vision_model.X`, the layout of the released LLaVA
    checkpoints. transformers reads both; vLLM's LLaVA loader reads only this one."""
    from safetensors.torch import load_file, save_file

    prefix = "vision_tower."
    tensors = load_file(weights)
    renamed = {(prefix + "vision_model." + k[len(prefix):] if k.startswith(prefix)
                and not k.startswith(prefix + "vision_model.") else k): v for k, v in sorted(tensors.items())}
    save_file(renamed, weights, metadata={"format": "pt"})


def _save_judge(tokenizer, path: Path) -> Path:
    from transformers import Qwen2ForCausalLM

    model = Qwen2ForCausalLM(_text_config(tokenizer, 128))
    _seeded_init(model, JUDGE_SEED)
    model.generation_config = _generation_config(tokenizer)
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


def force_output(src: str | Path, dst: str | Path, text: str) -> Path:
    """A copy of a tiny model whose greedy reply is always `text`, for tests that need a given verdict.

    Nothing is patched: the copy's generation_config.json holds a `sequence_bias` whose entries are
    every prefix of the reply (plus end-of-sequence), each biased more than the one before, so at each
    step the longest matching prefix picks the next token. Works with any prompt on the tiny models.
    """
    import shutil

    from transformers import AutoTokenizer, GenerationConfig

    dst = Path(dst)
    shutil.copytree(src, dst, dirs_exist_ok=True)
    tokenizer = AutoTokenizer.from_pretrained(dst)
    ids = tokenizer.encode(text, add_special_tokens=False) + [tokenizer.eos_token_id]
    config = GenerationConfig.from_pretrained(dst)
    config.sequence_bias = [[ids[: i + 1], 100.0 * (i + 1)] for i in range(len(ids))]
    config.save_pretrained(dst)
    return dst
