"""Where today's checker does not give a real case the result a fitting checker gives.

``KNOWN_MISSES`` maps a case id to (mechanism, what the checker says instead). ``tests/test_real_catalogue.py``
marks these cases ``xfail(strict=True)``: when a checker fix makes one fit, its test XPASSes, fails, and
the entry is to be removed here. ``benchmarks/real_catalogue_report.py`` groups the misses by mechanism.
Measured on the checker of 2026-11-29 (the working tree at the time).
"""

from __future__ import annotations

MECHANISMS: dict[str, str] = {
    "mask-rank": "a mask of another rank (code that adds the head axis itself, `mask.unsqueeze(1)`) breaks the "
    "shapes, and the shape signature is read as 'keys and values reshaped with the query length'",
    "param-names": "a parameter-name mismatch (missing W_*.bias) is explained by an unrelated structural "
    "diagnosis ('no output projection')",
    "raw-error": "an input-rank or batch-size assumption ends in a raw exception with no diagnosis of the assumption",
    "default-arg": "a different default value is read as ignoring the argument",
    "ordering": "ordering of failures: an earlier layer (interface, dtype, signature) fails first and the "
    "ladder stops before the important difference is named",
    "compound": "several differences at once get only 'wrong values': each diagnosis hypothesis models one mistake",
    "hypothesis-text": "a hypothesis matches, but its explanation describes another situation",
    "lazy-modules": "the grader itself crashes on nn.LazyLinear (loading reference weights into uninitialised "
    "parameters), rejecting correct code",
}

KNOWN_MISSES: dict[str, tuple[str, str]] = {
    # mask-rank
    "annotated_transformer/MultiHeadAttention": (
        "mask-rank",
        "output shape [2, 6, 16] for [2, 3, 16]; 'keys and values reshaped using the QUERY's length'",
    ),
    "samlynnevans_transformer/MultiHeadAttention": (
        "mask-rank",
        "output shape [2, 6, 16] for [2, 3, 16]; 'keys and values reshaped using the QUERY's length'",
    ),
    # param-names
    "jadore_attention/MultiHeadAttention": (
        "param-names",
        "missing W_*.bias, unexpected layer_norm.*; 'returns the concatenated heads directly' (W_o)",
    ),
    "hkproj_transformer/MultiHeadAttention": (
        "param-names",
        "missing W_q/W_k/W_v/W_o.bias; 'returns the concatenated heads directly' (no W_o)",
    ),
    "tunz_transformer/MultiHeadAttention": (
        "param-names",
        "missing W_*.bias; 'returns the concatenated heads directly' (no W_o)",
    ),
    # raw-error
    "hyunwoongko_transformer/scaled_dot_product_attention": (
        "raw-error",
        "raised ValueError: not enough values to unpack (expected 4, got 3); nothing about 4-D inputs",
    ),
    "jadore_attention/scaled_dot_product_attention": (
        "raw-error",
        "raised IndexError: Dimension out of range; nothing about 4-D inputs",
    ),
    "annotated_transformer/greedy_decode": (
        "raw-error",
        "raised RuntimeError: The expanded size of the tensor (1) must match ... (3); nothing about "
        "batches of more than one row",
    ),
    "hkproj_transformer/greedy_decode": (
        "raw-error",
        "raised RuntimeError: The expanded size of the tensor (1) must match ... (3); nothing about "
        "batches of more than one row",
    ),
    "samlynnevans_transformer/beam_search": (
        "raw-error",
        "raised IndexError: index 0 is out of bounds (no hypothesis finished); nothing about finished hypotheses",
    ),
    # default-arg
    "hyunwoongko_transformer/LayerNorm": (
        "default-arg",
        "'Your LayerNorm ignores the `eps` it was given' (it uses it; only its default is 1e-12)",
    ),
    # ordering
    "hyunwoongko_transformer/create_masks": (
        "ordering",
        "'tgt_mask ... should be a torch.bool tensor, but yours is torch.uint8'; the padding on the "
        "query axis is not reported",
    ),
    "annotated_transformer/Transformer": (
        "ordering",
        "lists missing generator.weight/bias and unexpected generator.proj.*; nothing about tying the "
        "generator to the target embedding",
    ),
    "hkproj_transformer/Transformer": (
        "ordering",
        "lists the parameter names that differ; nothing about tying the generator to the embedding",
    ),
    "gordicaleksa_transformer/TransformerLRScheduler": (
        "ordering",
        "only 'got an unexpected keyword argument factor'; nothing about step() calling optimizer.step()",
    ),
    "tunz_transformer/TransformerLRScheduler": (
        "ordering",
        "only 'got an unexpected keyword argument factor'; nothing about step() calling optimizer.step()",
    ),
    "jadore_attention/TransformerLRScheduler": (
        "ordering",
        "only 'has no `get_lr` method'; nothing about step() calling optimizer.step()",
    ),
    "bewhitehorse_transformer_practice/TransformerLRScheduler": (
        "ordering",
        "only 'step() should return a number' and a TypeError for step(100); nothing about step() "
        "calling optimizer.step()",
    ),
    "haesung_dl_paper/TransformerLRScheduler": (
        "ordering",
        "only 'has no `get_lr` method'; the rate set on param_groups[0] only is not reported",
    ),
    # compound
    "jadore_attention/LabelSmoothingLoss": (
        "compound",
        "only 'wrong values (yours 32.13 where 2.674 is expected)': neither the sum nor the V-1 distribution is named",
    ),
    "gordicaleksa_transformer/LabelSmoothingLoss": (
        "compound",
        "only 'wrong values': neither KL, V-2 nor the batchmean over padding is named",
    ),
    "tunz_transformer/LabelSmoothingLoss": (
        "compound",
        "only 'wrong values': neither the subtracted entropy (KL) nor V-1 is named",
    ),
    "samlynnevans_transformer/PositionalEncoding": (
        "compound",
        "only 'Your table `pe`: wrong values' (then the output): the doubled exponent is not named, "
        "although the table alone shows it",
    ),
    # hypothesis-text
    "jadore_attention/beam_search": (
        "hypothesis-text",
        "the beam_size=3 result, then 'With beam_size=1 your beam search should give exactly "
        "the greedy result' (its output equals the greedy decoding; finished hypotheses are not mentioned)",
    ),
    "hkproj_transformer/beam_search": (
        "hypothesis-text",
        "the beam_size=3 result, then 'With beam_size=1 your beam search should give exactly "
        "the greedy result'; nothing about summing raw logits",
    ),
    # lazy-modules
    "d2l/FeedForwardNetwork": (
        "lazy-modules",
        "'The checker itself ran into a problem ... Can't access the shape of an uninitialized parameter'",
    ),
    "d2l/EncoderLayer": (
        "lazy-modules",
        "'The checker itself ran into a problem' in the own-parts test (its LazyLinear "
        "feed-forward network): a correct layer rejected",
    ),
}
