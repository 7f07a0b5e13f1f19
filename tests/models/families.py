"""Tiny models of the vision-language families whose processors run offline (Pillow image processors),
built like `safemt models tiny`: the project's byte-level BPE tokenizer with each family's special
tokens, a seeded two-layer text model, a two-layer vision tower, the family's own processor class and
a chat template in the family's style. Used to check that the hf backend batches every family.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from safemt.models import tiny_weights as tiny

IMAGE = 32


def _tokenizer(extra: list[str], image_token: str, template: str, **named: str):
    """The tiny tokenizer plus special tokens; `named` become attributes (boi_token=..., ...)."""
    from transformers import PreTrainedTokenizerFast

    base = tiny._tokenizer()
    tokens = [t for t in [*extra, image_token, *named.values()] if t not in base.get_vocab()]
    base.add_special_tokens({"additional_special_tokens": tokens})
    return PreTrainedTokenizerFast(tokenizer_object=base._tokenizer, eos_token=tiny.IM_END, pad_token=tiny.PAD_TOKEN,
                                   bos_token=named.get("bos_token"),
                                   extra_special_tokens={"image_token": image_token,
                                                         **{k: v for k, v in named.items() if k != "bos_token"}},
                                   chat_template=template, padding_side="left", model_max_length=4096)


def _template(image_text: str) -> str:
    """ChatML, with the family's image placeholder text where an image part is."""
    return tiny.CHAT_TEMPLATE.replace("'<image>\\n'", repr(image_text + "\n"))


def _text(tok, **extra):
    cfg = tiny._text_config(tok, 128)
    for k, v in extra.items():
        setattr(cfg, k, v)
    return cfg


def _save(model, processor, tok, path: Path, seed: int) -> Path:
    tiny._seeded_init(model, seed)
    model.generation_config = tiny._generation_config(tok)
    model.save_pretrained(path)
    processor.save_pretrained(path)
    return path


def llava_next(path: Path) -> Path:
    from transformers import (CLIPVisionConfig, LlavaNextConfig, LlavaNextForConditionalGeneration,
                              LlavaNextImageProcessorPil, LlavaNextProcessor)

    template = _template("<image>")
    tok = _tokenizer([], "<image>", template)
    vision = CLIPVisionConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
                              image_size=IMAGE, patch_size=8, projection_dim=32)
    pinpoints = [[IMAGE, IMAGE], [IMAGE, 2 * IMAGE], [2 * IMAGE, IMAGE]]
    config = LlavaNextConfig(vision_config=vision, text_config=_text(tok), image_grid_pinpoints=pinpoints,
                             image_token_index=tok.convert_tokens_to_ids("<image>"),
                             vision_feature_select_strategy="default", vision_feature_layer=-1)
    image_processor = LlavaNextImageProcessorPil(size={"shortest_edge": IMAGE}, image_grid_pinpoints=pinpoints,
                                                 crop_size={"height": IMAGE, "width": IMAGE})
    processor = LlavaNextProcessor(image_processor=image_processor, tokenizer=tok, patch_size=8,
                                   vision_feature_select_strategy="default", chat_template=template,
                                   image_token="<image>", num_additional_image_tokens=1)
    return _save(LlavaNextForConditionalGeneration(config), processor, tok, path, seed=11)


def gemma3(path: Path) -> Path:
    from transformers import (Gemma3Config, Gemma3ForConditionalGeneration, Gemma3ImageProcessorPil,
                              Gemma3Processor, Gemma3TextConfig, SiglipVisionConfig)

    template = _template("<start_of_image>")
    tok = _tokenizer([], "<image_soft_token>", template, boi_token="<start_of_image>", eoi_token="<end_of_image>")
    text = Gemma3TextConfig(vocab_size=len(tok), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                            num_attention_heads=4, num_key_value_heads=2, head_dim=16, sliding_window=64,
                            max_position_embeddings=4096, initializer_range=tiny.INIT_SCALE,
                            pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id, bos_token_id=None)
    vision = SiglipVisionConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
                                image_size=IMAGE, patch_size=8)
    config = Gemma3Config(text_config=text, vision_config=vision, mm_tokens_per_image=4,
                          boi_token_index=tok.convert_tokens_to_ids("<start_of_image>"),
                          eoi_token_index=tok.convert_tokens_to_ids("<end_of_image>"),
                          image_token_index=tok.convert_tokens_to_ids("<image_soft_token>"))
    image_processor = Gemma3ImageProcessorPil(size={"height": IMAGE, "width": IMAGE}, do_pan_and_scan=False)
    processor = Gemma3Processor(image_processor=image_processor, tokenizer=tok, chat_template=template,
                                image_seq_length=4)
    return _save(Gemma3ForConditionalGeneration(config), processor, tok, path, seed=12)


def idefics3(path: Path) -> Path:
    from transformers import (Idefics3Config, Idefics3ForConditionalGeneration, Idefics3ImageProcessorPil,
                              Idefics3Processor, Idefics3VisionConfig, LlamaConfig)

    template = _template("<image>")
    tok = _tokenizer(["<fake_token_around_image>", "<end_of_utterance>", "<global-img>"], "<image>", template)
    text = LlamaConfig(vocab_size=len(tok), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                       num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=4096,
                       pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id, bos_token_id=None,
                       tie_word_embeddings=False)
    vision = Idefics3VisionConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
                                  image_size=IMAGE, patch_size=8)
    config = Idefics3Config(vision_config=vision, text_config=text, scale_factor=2,
                            image_token_id=tok.convert_tokens_to_ids("<image>"))
    image_processor = Idefics3ImageProcessorPil(size={"longest_edge": IMAGE}, max_image_size={"longest_edge": IMAGE},
                                                do_image_splitting=False)
    processor = Idefics3Processor(image_processor=image_processor, tokenizer=tok, image_seq_len=4,
                                  chat_template=template)
    return _save(Idefics3ForConditionalGeneration(config), processor, tok, path, seed=13)


def mllama(path: Path) -> Path:
    from transformers import (MllamaConfig, MllamaForConditionalGeneration, MllamaImageProcessorPil,
                              MllamaProcessor, MllamaTextConfig, MllamaVisionConfig)

    template = _template("<|image|>")
    tok = _tokenizer(["<|python_tag|>"], "<|image|>", template, bos_token="<|begin_of_text|>")
    text = MllamaTextConfig(vocab_size=len(tok), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                            cross_attention_layers=[1], num_attention_heads=4, num_key_value_heads=2,
                            max_position_embeddings=4096, pad_token_id=tok.pad_token_id,
                            eos_token_id=tok.eos_token_id, bos_token_id=tok.bos_token_id)
    vision = MllamaVisionConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_global_layers=1,
                                attention_heads=2, image_size=IMAGE, patch_size=8, max_num_tiles=4,
                                intermediate_layers_indices=[0], vision_output_dim=64)
    config = MllamaConfig(vision_config=vision, text_config=text,
                          image_token_index=tok.convert_tokens_to_ids("<|image|>"))
    image_processor = MllamaImageProcessorPil(size={"height": IMAGE, "width": IMAGE}, max_image_tiles=4)
    processor = MllamaProcessor(image_processor=image_processor, tokenizer=tok, chat_template=template)
    return _save(MllamaForConditionalGeneration(config), processor, tok, path, seed=14)


def llava_onevision(path: Path) -> Path:
    """LLaVA-OneVision (LLaVAShield's family): anyres tiling over a SigLIP tower, a Qwen2 text model. Its
    processor holds a video processor, which needs torchvision: buildable in .venv-vllm only (so not in
    FAMILIES, which the core environment runs)."""
    from transformers import (LlavaOnevisionConfig, LlavaOnevisionForConditionalGeneration,
                              LlavaOnevisionImageProcessorPil, LlavaOnevisionProcessor, LlavaOnevisionVideoProcessor,
                              SiglipVisionConfig)

    template = _template("<image>")
    tok = _tokenizer(["<video>"], "<image>", template, video_token="<video>")
    vision = SiglipVisionConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
                                image_size=IMAGE, patch_size=8)
    pinpoints = [[IMAGE, IMAGE], [IMAGE, 2 * IMAGE], [2 * IMAGE, IMAGE]]
    config = LlavaOnevisionConfig(vision_config=vision, text_config=_text(tok), image_grid_pinpoints=pinpoints,
                                  image_token_index=tok.convert_tokens_to_ids("<image>"),
                                  video_token_index=tok.convert_tokens_to_ids("<video>"),
                                  vision_feature_select_strategy="full", vision_feature_layer=-1,
                                  vision_aspect_ratio="anyres_max_9")
    processor = LlavaOnevisionProcessor(
        image_processor=LlavaOnevisionImageProcessorPil(size={"height": IMAGE, "width": IMAGE},
                                                        image_grid_pinpoints=pinpoints),
        video_processor=LlavaOnevisionVideoProcessor(size={"height": IMAGE, "width": IMAGE}), tokenizer=tok,
        num_image_tokens=(IMAGE // 8) ** 2, vision_feature_select_strategy="full", chat_template=template,
        image_token="<image>", video_token="<video>")
    return _save(LlavaOnevisionForConditionalGeneration(config), processor, tok, path, seed=15)


FAMILIES: dict[str, Callable[[Path], Path]] = {
    "llava_next": llava_next,
    "gemma3": gemma3,
    "idefics3": idefics3,
    "mllama": mllama,
}
