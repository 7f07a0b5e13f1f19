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
