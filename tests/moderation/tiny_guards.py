"""Tiny seeded models of the guards' own families, built offline for the guard tests.

- ShieldGemma 2: `ShieldGemma2ForImageClassification` (Gemma 3 text model, SigLIP vision tower) with a
  real `ShieldGemma2Processor`. Its chat template and two policy definitions are written for the test
  in the structure of the real ones (the policy text inside safety-policy markers, a Yes/No question);
  they are not the model's trained texts.
- Qwen3Guard-Gen: a `Qwen3ForCausalLM` with a ChatML template; WildGuard: a `MistralForCausalLM` whose
  template is resources/chat_templates/wildguard.jinja (set on the model entry, as the paper profile does).
"""

from __future__ import annotations

from pathlib import Path

SG2_SPECIAL = ["<pad>", "<eos>", "<bos>", "<start_of_turn>", "<end_of_turn>", "<start_of_image>", "<end_of_image>",
               "<image_soft_token>", "Yes", "No"]
# The test's own template, shaped like ShieldGemma 2's: a user turn with the image, then the policy
# between safety-policy markers and a Yes/No question, then the model's turn.
SG2_TEMPLATE = (
    "{{ bos_token }}{%- for message in messages -%}<start_of_turn>user\n"
    "{%- for part in message['content'] -%}{%- if part['type'] == 'image' -%}<start_of_image>{%- else -%}"
    "Policy under test:\n<BEGIN_SAFETY_POLICY>\n{{ part['text'] }}\n</END_SAFETY_POLICY>\n"
    "Does the picture break it? Yes or No.{%- endif -%}{%- endfor -%}<end_of_turn>\n{%- endfor -%}"
    "<start_of_turn>model\n")
SG2_POLICIES = {"harm": "The picture must not show people being hurt.", "gore": "The picture must not show blood."}


def _seeded(model, seed: int, scale: float = 0.2) -> None:
    import torch

    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, param in sorted(model.named_parameters()):
            if param.dim() >= 2:
                param.copy_(torch.randn(param.shape, generator=gen) * scale)
            elif name.endswith("bias"):
                param.zero_()
            else:
                param.fill_(1.0)


def build_shieldgemma2(path: Path, seed: int = 5) -> Path:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import (Gemma3TextConfig, PreTrainedTokenizerFast, ShieldGemma2Config,
                              ShieldGemma2ForImageClassification, ShieldGemma2Processor, SiglipVisionConfig)
    from transformers.models.gemma3.image_processing_pil_gemma3 import Gemma3ImageProcessorPil

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=300, special_tokens=SG2_SPECIAL, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator([*SG2_POLICIES.values(), "Policy under test: does the picture break it?"], trainer=trainer)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token="<bos>", eos_token="<eos>", pad_token="<pad>", padding_side="left",
        extra_special_tokens={"boi_token": "<start_of_image>", "eoi_token": "<end_of_image>",
                              "image_token": "<image_soft_token>"})
    ids = tokenizer.convert_tokens_to_ids
    text = Gemma3TextConfig(vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                            num_attention_heads=4, num_key_value_heads=2, head_dim=16, max_position_embeddings=512,
                            sliding_window=64, pad_token_id=tokenizer.pad_token_id, bos_token_id=tokenizer.bos_token_id,
                            eos_token_id=tokenizer.eos_token_id)
    vision = SiglipVisionConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
                                image_size=32, patch_size=8)
    config = ShieldGemma2Config(text_config=text, vision_config=vision, mm_tokens_per_image=4,
                                boi_token_index=ids("<start_of_image>"), eoi_token_index=ids("<end_of_image>"),
                                image_token_index=ids("<image_soft_token>"))
    config.yes_token_index, config.no_token_index = ids("Yes"), ids("No")
    model = ShieldGemma2ForImageClassification(config)
    _seeded(model, seed)
    processor = ShieldGemma2Processor(image_processor=Gemma3ImageProcessorPil(size={"height": 32, "width": 32}),
                                      tokenizer=tokenizer, chat_template=SG2_TEMPLATE, image_seq_length=4,
                                      policy_definitions=SG2_POLICIES)
    model.save_pretrained(path)
    processor.save_pretrained(path)
    return path


def build_text_guard(path: Path, family: str, seed: int) -> Path:
    """A tiny text-only guard of FAMILY (qwen3 or mistral) with the project's tiny tokenizer."""
    from transformers import GenerationConfig, MistralConfig, MistralForCausalLM, Qwen3Config, Qwen3ForCausalLM

    from safemt.models.tiny_weights import _tokenizer

    tokenizer = _tokenizer()
    common = dict(vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                  num_attention_heads=4, num_key_value_heads=2, head_dim=16, max_position_embeddings=4096,
                  tie_word_embeddings=False, eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
                  bos_token_id=None)
    config_class, model_class = {"qwen3": (Qwen3Config, Qwen3ForCausalLM),
                                 "mistral": (MistralConfig, MistralForCausalLM)}[family]
    model = model_class(config_class(**common))
    _seeded(model, seed)
    model.generation_config = GenerationConfig(do_sample=False, eos_token_id=tokenizer.eos_token_id,
                                               pad_token_id=tokenizer.pad_token_id)
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


# A Llama-3-style header template written for the test (not Llama Guard's: that one holds its
# instructions and categories, and lives in the model's own files).
MLLAMA_TEMPLATE = (
    "{{ bos_token }}{%- for m in messages -%}<|start_header_id|>{{ m['role'] }}<|end_header_id|>\n\n"
    "{%- if m['content'] is string -%}{{ m['content'] }}{%- else -%}{%- for p in m['content'] -%}"
    "{%- if p['type'] == 'image' -%}<|image|>{%- else -%}{{ p['text'] }}{%- endif -%}{%- endfor -%}{%- endif -%}"
    "<|eot_id|>{%- endfor -%}{%- if add_generation_prompt -%}<|start_header_id|>assistant<|end_header_id|>\n\n"
    "{%- endif -%}")


def build_mllama(path: Path, seed: int = 11) -> Path:
    """A tiny `MllamaForConditionalGeneration` (Llama Guard 3 Vision's family: cross-attention to a tiled
    vision encoder) with a real `MllamaProcessor`."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import GenerationConfig, MllamaConfig, MllamaForConditionalGeneration, MllamaProcessor
    from transformers import PreTrainedTokenizerFast
    from transformers.models.mllama.configuration_mllama import MllamaTextConfig, MllamaVisionConfig
    from transformers.models.mllama.image_processing_pil_mllama import MllamaImageProcessorPil

    from safemt.models.tiny_weights import CORPUS

    special = ["<|finetune_right_pad_id|>", "<|begin_of_text|>", "<|eot_id|>", "<|image|>", "<|start_header_id|>",
               "<|end_header_id|>"]
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=512, special_tokens=special, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(CORPUS.splitlines(), trainer=trainer)
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<|begin_of_text|>", eos_token="<|eot_id|>",
                                        pad_token="<|finetune_right_pad_id|>", padding_side="left",
                                        extra_special_tokens={"image_token": "<|image|>"}, chat_template=MLLAMA_TEMPLATE)
    vision = MllamaVisionConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_global_layers=1,
                                attention_heads=2, image_size=16, patch_size=8, max_num_tiles=2, vision_output_dim=64,
                                intermediate_layers_indices=[0], supported_aspect_ratios=[[1, 1], [1, 2], [2, 1]])
    text = MllamaTextConfig(vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                            num_attention_heads=4, num_key_value_heads=2, cross_attention_layers=[1],
                            max_position_embeddings=4096, eos_token_id=tokenizer.eos_token_id,
                            pad_token_id=tokenizer.pad_token_id, bos_token_id=tokenizer.bos_token_id,
                            tie_word_embeddings=False)
    model = MllamaForConditionalGeneration(MllamaConfig(vision_config=vision, text_config=text,
                                                        image_token_index=tokenizer.convert_tokens_to_ids("<|image|>")))
    _seeded(model, seed)
    model.generation_config = GenerationConfig(do_sample=False, eos_token_id=tokenizer.eos_token_id,
                                               pad_token_id=tokenizer.pad_token_id)
    processor = MllamaProcessor(image_processor=MllamaImageProcessorPil(size={"height": 16, "width": 16}, max_image_tiles=2),
                                tokenizer=tokenizer, chat_template=MLLAMA_TEMPLATE)
    model.save_pretrained(path)
    processor.save_pretrained(path)
    return path
