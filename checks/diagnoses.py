"""Known mistakes: diagnosis id -> a beginner's explanation, the paper section, and the PyTorch doc.

The ids are the shared vocabulary of the checker and the bug catalogue (``tests/catalogue/``; the
original ones are listed in ``tests/test_checker_diagnoses.py``'s ``SHARED_IDS``, the ones marked
"checker" below were added here). Each explanation says WHAT the
numbers show and WHERE to look, never the line of code that fixes it.

The checker recognises every mistake by its effect on the numbers (the learner's output equals the
reference's output computed under that mistake), never by reading source code.
"""

from __future__ import annotations

from typing import NamedTuple

PAPER = "https://arxiv.org/abs/1706.03762"
DOCS = "https://docs.pytorch.org/docs/stable/"


class Diagnosis(NamedTuple):
    text: str  # what the numbers say, in a beginner's words
    section: str  # paper section ("" when not from the paper)
    doc: str  # one PyTorch documentation page ("" when none fits)


def _g(name: str) -> str:
    return f"{DOCS}generated/{name}.html"


DIAGNOSES: dict[str, Diagnosis] = {
    # ---------------------------------------------------------------- chapter 00: softmax
    "softmax_wrong_axis": Diagnosis(
        "Your softmax normalises over the wrong axis: the values that should sum to 1 are the ones "
        "along `dim`, but yours sum to 1 along another axis (or over the whole tensor).",
        "3.2.1",
        _g("torch.softmax"),
    ),
    "softmax_not_stable": Diagnosis(
        "Your softmax overflows for large inputs: exp(1000) is inf in floating point, and inf/inf is "
        "NaN. Softmax does not change when the same number is subtracted from every input along `dim`; "
        "think about which number keeps every exp() small.",
        "3.2.1",
        _g("torch.exp"),
    ),
    "softmax_not_normalised": Diagnosis(
        "Your softmax's outputs do not sum to 1 along `dim`: a probability distribution needs the "
        "exponentials divided by their total.",
        "3.2.1",
        _g("torch.softmax"),
    ),
    # ---------------------------------------------------------------- chapter 01: embeddings
    "embedding_no_scale": Diagnosis(
        "Your embedding output equals the plain lookup table: section 3.4 multiplies the embedding "
        "weights by a factor that depends on d_model.",
        "3.4",
        _g("torch.nn.Embedding"),
    ),
    "embedding_wrong_scale": Diagnosis(
        "Your embedding output is scaled, but by the wrong factor: re-read the last sentence of "
        "section 3.4 (multiply, and by which power of d_model?).",
        "3.4",
        _g("torch.nn.Embedding"),
    ),
    # ---------------------------------------------------------------- chapter 02: positional encoding
    "pe_sin_cos_swapped": Diagnosis(
        "Your table has cosine where sine belongs and sine where cosine belongs: in section 3.5 the "
        "EVEN feature indices (0, 2, 4, ...) get the sine.",
        "3.5",
        _g("torch.sin"),
    ),
    "pe_wrong_frequencies": Diagnosis(
        "Your table has sines and cosines, but of the wrong frequencies: check the exponent 2i/d_model "
        "in section 3.5 (what is i for feature 2i and for feature 2i+1?) and that the position is "
        "divided by 10000^(2i/d_model).",
        "3.5",
        _g("torch.pow"),
    ),
    "pe_wrong_layout": Diagnosis(
        "(checker) Your table's sines and cosines are in the wrong places: section 3.5 interleaves them "
        "(sine at feature 2i, cosine at 2i+1) instead of putting all the sines first and all the cosines after.",
        "3.5",
        _g("torch.Tensor.index_put_"),
    ),
    "pe_table_rows": Diagnosis(
        "(checker) Your table `pe` has another number of rows than max_seq_length: it needs one row per "
        "position a sequence can have, and positions count from 0.",
        "3.5",
        _g("torch.arange"),
    ),
    "pe_positions_from_one": Diagnosis(
        "(checker) Your positions start at 1: the first token of a sequence is at position pos = 0 in the "
        "formulas of section 3.5 (look at the numbers you give torch.arange, and at the rows you add).",
        "3.5",
        _g("torch.arange"),
    ),
    "pe_not_buffer": Diagnosis(
        "Your table `pe` is not registered as a buffer: a plain attribute does not follow the model "
        "in .to(device) and is not saved with it; an nn.Parameter would be trained, but the encoding "
        "is fixed.",
        "3.5",
        _g("torch.nn.Module") + "#torch.nn.Module.register_buffer",
    ),
    "pe_no_length_error": Diagnosis(
        "Your PositionalEncoding does not stop a sequence longer than max_seq_length with a clear "
        "message of its own (a confusing shape error from deep inside torch, or a silent wrong "
        "result, does not tell the user what to change).",
        "3.5",
        "https://docs.python.org/3/tutorial/errors.html#raising-exceptions",
    ),
    "pe_dropout_inside": Diagnosis(
        "Your PositionalEncoding changes its output in train mode: in this workbook dropout on the "
        "sum of embeddings and positions belongs to the Encoder/Decoder, not here.",
        "5.4",
        _g("torch.nn.Dropout"),
    ),
    "pe_returns_table": Diagnosis(
        "(checker) Your PositionalEncoding returns the encoding without the input: its output is the same "
        "whatever x is. In section 3.5 the positional encodings are ADDED to the input embeddings (they have the "
        "same dimension d_model so that the two can be summed), and the module's output has x's shape.",
        "3.5",
        "",
    ),
    "pe_wrong_axis": Diagnosis(
        "Your positional encoding is taken along the wrong axis: positions run along the sequence "
        "axis (dim 1 of [B, S, d]), not the batch axis.",
        "3.5",
        _g("torch.Tensor.size"),
    ),
    # ---------------------------------------------------------------- chapter 03: attention
    "attn_no_scale": Diagnosis(
        "Your attention weights equal softmax(QKᵀ) without the scale: equation 1 divides the scores "
        "by a factor before the softmax (section 3.2.1 explains why).",
        "3.2.1",
        _g("torch.matmul"),
    ),
    "attn_scale_by_dk": Diagnosis(
        "Your scores are divided by d_k itself: equation 1 divides by its square root.", "3.2.1", _g("torch.sqrt")
    ),
    "attn_softmax_wrong_axis": Diagnosis(
        "Your softmax runs over the query axis: each query's weights over the KEYS should sum to 1 "
        "(the last axis of the scores).",
        "3.2.1",
        _g("torch.softmax"),
    ),
    "attn_mask_polarity": Diagnosis(
        "Your mask is applied the wrong way round (inverted): in this workbook True means 'may attend' (the "
        "convention of F.scaled_dot_product_attention's boolean mask), so the positions to block are where the "
        "mask is False. nn.Transformer's masks use the opposite convention (True = blocked): code written for "
        "them blocks exactly the keys it should keep.",
        "3.2.3",
        _g("torch.nn.functional.scaled_dot_product_attention"),
    ),
    "attn_mask_ignored": Diagnosis(
        "Your output is the same with and without the mask: masked keys must get zero weight.",
        "3.2.3",
        _g("torch.Tensor.masked_fill"),
    ),
    "attn_returns_scores": Diagnosis(
        "The weights you return are the scores before the softmax: the second output should be the "
        "attention distribution itself.",
        "3.2.1",
        _g("torch.softmax"),
    ),
    "attn_fixed_rank": Diagnosis(
        "(checker) Your attention works for inputs with one number of axes but not with another: the "
        "contract's attention accepts any number of leading axes, [B, S, d_k] as well as [B, h, S, d_k]. "
        "Look for axes counted from the front (axes 2 and 3, a shape unpacked into a fixed number of "
        "names, a product made for 3-D tensors only); counting them from the end (-2 and -1: the sequence "
        "and feature axes) works for every rank.",
        "3.2.1",
        _g("torch.Tensor.transpose"),
    ),
    "attn_key_not_transposed": Diagnosis(
        "(checker) Your scores multiply the queries by the keys as they are, Q K, with the key untransposed: "
        "equation 1 multiplies by the TRANSPOSED key, Q Kᵀ, so that each score is the dot product of one query "
        "with one key ([S_q, d_k] times [d_k, S_k] gives [S_q, S_k]). Q K only runs when S_k happens to equal "
        "d_k. Look at which tensor your score uses (a transposed copy computed but not used is easy to miss).",
        "3.2.1",
        _g("torch.Tensor.transpose"),
    ),
    # ---------------------------------------------------------------- chapter 04: multi-head attention
    "mha_kv_reshaped_with_query_length": Diagnosis(
        "Your multi-head attention works when queries and keys have the same length but breaks when "
        "they differ (cross-attention): the keys and values are reshaped using the QUERY's length.",
        "3.2.2",
        _g("torch.Tensor.view"),
    ),
    "mha_mask_rank": Diagnosis(
        "(checker) Your multi-head attention changes the mask's shape: the contract's masks are already "
        "4-D and broadcastable to [B, h, S_q, S_k] ([B, 1, 1, S_k] for padding, [B, 1, T, T] or [1, 1, T, T] "
        "for the future mask), so they have their head axis already: pass them on as they are. Code "
        "written for 3-D masks ([B, 1, S] or [B, T, T], as in The Annotated Transformer) adds that axis "
        "itself (an unsqueeze of axis 1), and with a 4-D mask the scores grow a fifth axis.",
        "3.2.3",
        _g("torch.Tensor.unsqueeze"),
    ),
    "mha_projection_no_bias": Diagnosis(
        "(checker) Your projections have no bias (the `.bias` entries listed as missing): in this workbook "
        "W_q, W_k, W_v and W_o are linear layers WITH a bias, nn.Linear's default, as the contract fixes "
        "(the paper writes plain matrices, and many implementations leave the bias out). The checker "
        "loads the reference's weights by name, biases included.",
        "3.2.2",
        _g("torch.nn.Linear"),
    ),
    "mha_projection_names": Diagnosis(
        "(checker) Your parameters include weights under names of your own (the `unexpected` entries) where the "
        "contract's projections are missing: the four projections are linear layers named W_q, W_k, W_v and W_o, "
        "each from d_model to d_model with a bias, and the checker loads the reference's weights by these names. "
        "One fused linear layer for the queries, keys and values together has none of these names either.",
        "3.2.2",
        _g("torch.nn.Linear"),
    ),
    "mha_heads_not_transposed": Diagnosis(
        "Your heads are split but not moved in front of the sequence axis (or split with a view that "
        "mixes positions): attention then runs over the wrong axis. Compare the axis order your "
        "attention function expects, [B, h, S, d_k], with what you give it.",
        "3.2.2",
        _g("torch.Tensor.transpose"),
    ),
    "mha_no_output_projection": Diagnosis(
        "Your multi-head attention returns the concatenated heads directly: equation 3 ends with one "
        "more linear projection, W_o.",
        "3.2.2",
        _g("torch.nn.Linear"),
    ),
    "mha_projection_mixup": Diagnosis(
        "Your projections are mixed up: one of W_q, W_k, W_v is applied to the wrong input (queries "
        "use W_q, keys W_k, values W_v).",
        "3.2.2",
        _g("torch.nn.Linear"),
    ),
    "mha_weights_not_stored": Diagnosis(
        "After forward, `attention_weights` should hold this call's weights, shape [B, h, S_q, S_k] "
        "(the chapters plot them).",
        "3.2.2",
        _g("torch.Tensor.detach"),
    ),
    "mha_no_divisibility_error": Diagnosis(
        "MultiHeadAttention(d_model, num_heads) should refuse a d_model that num_heads does not "
        "divide, with a clear message: otherwise the heads silently lose features.",
        "3.2.2",
        "https://docs.python.org/3/tutorial/errors.html#raising-exceptions",
    ),
    "mha_concat_wrong": Diagnosis(
        "Your heads are merged back in the wrong order: after attention the tensor is [B, h, S, d_k]; "
        "reshaping it to [B, S, d] without first putting the heads next to d_k mixes positions and heads.",
        "3.2.2",
        _g("torch.Tensor.contiguous"),
    ),
    "mha_scale_by_d_model": Diagnosis(
        "(checker) Your attention scores are scaled with d_model: each head works in d_k = "
        "d_model / h dimensions, and equation 1 scales by the square root of that.",
        "3.2.2",
        _g("torch.sqrt"),
    ),
    "mha_dropout_inside": Diagnosis(
        "(checker) Your attention changes its output in train mode: in this workbook attention has no "
        "dropout of its own (section 5.4 puts dropout on each sub-layer's output, in the layers).",
        "5.4",
        _g("torch.nn.Dropout"),
    ),
    # ---------------------------------------------------------------- chapter 05: feed-forward
    "ffn_missing_relu": Diagnosis(
        "Your feed-forward network is linear: equation 2 has a ReLU between the two linear maps "
        "(without it, two linear maps are just one).",
        "3.3",
        _g("torch.nn.ReLU"),
    ),
    "ffn_wrong_activation": Diagnosis(
        "Your feed-forward network uses an activation other than the paper's ReLU (equation 2: max(0, ·)).",
        "3.3",
        _g("torch.nn.ReLU"),
    ),
    "ffn_dropout_inside": Diagnosis(
        "Your feed-forward network changes its output in train mode: in this workbook it has no dropout "
        "of its own (the layer applies dropout to its output).",
        "5.4",
        _g("torch.nn.Dropout"),
    ),
    "ffn_conv1d": Diagnosis(
        "(checker) Your feed-forward network is built from convolutions (nn.Conv1d with kernel_size=1): that "
        "computes the same position-wise map, but the contract's W_1 and W_2 are nn.Linear layers, whose "
        "weights have no kernel axis and which need no transposing of the input.",
        "3.3",
        _g("torch.nn.Linear"),
    ),
    "ffn_hidden_width": Diagnosis(
        "(checker) Your feed-forward network's hidden layer does not have d_ff features: equation 2's inner "
        "layer has dimensionality d_ff (2048 in the paper), the constructor's second argument.",
        "3.3",
        _g("torch.nn.Linear"),
    ),
    # ---------------------------------------------------------------- chapter 06: layer norm
    "ln_unbiased_variance": Diagnosis(
        "Your variance divides by d-1 (the unbiased estimate, torch's default for .var() and .std()); "
        "layer norm uses the biased one, dividing by d.",
        "3.1",
        _g("torch.var"),
    ),
    "ln_eps_outside_sqrt": Diagnosis(
        "Your epsilon is added outside the square root: on inputs with a tiny variance that gives a "
        "very different result. Compare where the formula on the nn.LayerNorm page puts it.",
        "3.1",
        _g("torch.nn.LayerNorm"),
    ),
    "ln_wrong_axis": Diagnosis(
        "Your mean and variance are taken over the wrong axis: layer norm normalises each position's "
        "features, the LAST axis.",
        "3.1",
        _g("torch.nn.LayerNorm"),
    ),
    "ln_no_affine": Diagnosis(
        "Your LayerNorm ignores its learnable `weight` and/or `bias`: the normalised value is then "
        "scaled by weight and shifted by bias.",
        "3.1",
        _g("torch.nn.LayerNorm"),
    ),
    "ln_eps_ignored": Diagnosis(
        "(checker) Your LayerNorm ignores the `eps` it was given: LayerNorm(d_model, eps=0.1) must use 0.1.",
        "3.1",
        _g("torch.nn.LayerNorm"),
    ),
    "ln_default_eps": Diagnosis(
        "(checker) Your LayerNorm's default `eps` is not the contract's 1e-5: built without an eps, "
        "LayerNorm(d_model) must behave like LayerNorm(d_model, eps=1e-5). Some libraries use another "
        "default (BERT's 1e-12, for example); look at the default value in your constructor's signature.",
        "3.1",
        _g("torch.nn.LayerNorm"),
    ),
    "ln_std_of_wrong_thing": Diagnosis(
        "Your normaliser divides by the spread of the wrong quantity (for example of the input "
        "instead of the centred input, or the variance instead of its square root).",
        "3.1",
        _g("torch.nn.LayerNorm"),
    ),
    # ---------------------------------------------------------------- chapters 07-08: layers and stacks
    "prenorm": Diagnosis(
        "Your layer normalises BEFORE the sub-layer (pre-norm). The paper's layer is post-norm: "
        "LayerNorm(x + Sublayer(x)). Pre-norm is a popular later variant, but not this exercise.",
        "3.1",
        _g("torch.nn.LayerNorm"),
    ),
    "dropout_after_residual": Diagnosis(
        "Your dropout is applied after the residual add (it drops parts of x itself): section 5.4 puts "
        "it on each sub-layer's output, before it is added to x.",
        "5.4",
        _g("torch.nn.Dropout"),
    ),
    "missing_residual": Diagnosis(
        "Your layer has no residual connection: each sub-layer's output is added to its input before "
        "the norm, x + Sublayer(x).",
        "3.1",
        "",
    ),
    "mask_not_passed": Diagnosis("Your layer ignores the mask it was given: pass it on to the attention.", "3.2.3", ""),
    "norms_shared": Diagnosis(
        "Your layer uses one LayerNorm object in several places: each sub-layer has its own norm with its own weights.",
        "3.1",
        _g("torch.nn.ModuleList"),
    ),
    "layers_shared": Diagnosis(
        "Your stack repeats the SAME layer object: the N layers must be independent copies with their own weights.",
        "3.1",
        _g("torch.nn.ModuleList"),
    ),
    "missing_embedding_dropout": Diagnosis(
        "No dropout is applied to the sum of the embeddings and the positional encodings (section 5.4).",
        "5.4",
        _g("torch.nn.Dropout"),
    ),
    "final_layer_norm": Diagnosis(
        "Your stack has an extra LayerNorm after the last layer: the paper's post-norm layers already "
        "end with a norm (a final norm belongs to pre-norm models).",
        "3.1",
        _g("torch.nn.LayerNorm"),
    ),
    "embedding_layer_norm": Diagnosis(
        "(checker) Your stack normalises the embeddings: it has a LayerNorm of its own on the sum of the scaled "
        "embeddings and the positional encodings, before the first layer (as BERT does). The paper's stack has "
        "no norm there: the sum goes through dropout straight into the first layer, and each layer's own norms "
        "do the normalising.",
        "3.4",
        _g("torch.nn.LayerNorm"),
    ),
    "pe_not_added": Diagnosis(
        "(checker) Your stack's output is what it would be without the positional encoding: the "
        "positions are never added to the embeddings.",
        "3.5",
        "",
    ),
    "embedding_dropout_missing_or_extra": Diagnosis(
        "Dropout in the embedding path is in the wrong place: section 5.4 applies it once, to the SUM "
        "of the scaled embeddings and the positional encodings.",
        "5.4",
        _g("torch.nn.Dropout"),
    ),
    "dropout_missing": Diagnosis(
        "(checker) Your layer's output is the same in train mode as in eval mode: section 5.4 applies "
        "dropout to each sub-layer's output before the residual add.",
        "5.4",
        _g("torch.nn.Dropout"),
    ),
    "dropout_per_sublayer": Diagnosis(
        "(checker) Your dropout is not applied once to each sub-layer's output: section 5.4 applies dropout "
        "to the output of EVERY sub-layer, exactly once, before it is added to the sub-layer's input and "
        "normalised. Follow each sub-layer's output in your forward, from the sub-layer to its residual add.",
        "5.4",
        _g("torch.nn.Dropout"),
    ),
    "sublayer_not_normalised": Diagnosis(
        "(checker) One of your layer's sub-layers is not normalised: in the post-norm layer of section 3.1 EVERY "
        "sub-layer ends with its own LayerNorm, LayerNorm(x + Sublayer(x)), the last one included, and the next "
        "sub-layer (or the layer's caller) gets that normalised sum. Follow each residual add in your forward and "
        "look at what happens to its result.",
        "3.1",
        _g("torch.nn.LayerNorm"),
    ),
    "sublayer_unused": Diagnosis(
        "(checker) One of your layer's sub-layers has no effect on its output: each sub-layer's result is "
        "what the residual connection adds to the sub-layer's input, x + Sublayer(x). Look at what your "
        "forward adds after computing it.",
        "3.1",
        "",
    ),
    "cross_attn_kv_from_decoder": Diagnosis(
        "Your cross-attention takes its keys and values from the decoder: they come from the encoder "
        "output (the 'memory'), only the queries come from the decoder.",
        "3.2.3",
        "",
    ),
    "cross_attn_query_from_input": Diagnosis(
        "(checker) Your cross-attention takes its queries from the layer's input x: they come from the output of "
        "the first sub-layer (the masked self-attention, after its residual add and norm1), the same tensor the "
        "cross-attention's residual is added to. Only the keys and values come from the encoder output.",
        "3.2.3",
        "",
    ),
    "cross_attn_wrong_mask": Diagnosis(
        "Your cross-attention uses the target mask: the keys there are SOURCE positions, so it needs "
        "the source (padding) mask.",
        "3.2.3",
        "",
    ),
    "self_attn_no_future_mask": Diagnosis(
        "Your decoder's self-attention can see future target positions: it needs the target mask.", "3.2.3", ""
    ),
    # ---------------------------------------------------------------- chapter 08: masks
    "padding_mask_polarity": Diagnosis(
        "Your padding mask is True at the padding: in this workbook True means 'may attend', so real "
        "tokens are True and padding is False.",
        "3.2.3",
        _g("torch.nn.functional.scaled_dot_product_attention"),
    ),
    "padding_mask_shape": Diagnosis(
        "Your padding mask has the wrong shape: it must be [B, 1, 1, L] so that it broadcasts over "
        "the heads and the query positions of the scores [B, h, L_q, L].",
        "3.2.3",
        _g("torch.Tensor.unsqueeze"),
    ),
    "future_mask_upper": Diagnosis(
        "Your future mask is the wrong triangle: position t may attend to positions 0..t (on and BELOW "
        "the diagonal), not to later ones.",
        "3.2.3",
        _g("torch.tril"),
    ),
    "mask_convention_inverted": Diagnosis(
        "(checker) Your mask is the exact opposite of the expected one: True where attention is blocked (the "
        "padding, the future) and False where it is allowed. That is the convention of nn.Transformer's masks "
        "(True = blocked); in this workbook a mask is True where a query MAY attend (the convention of "
        "F.scaled_dot_product_attention's boolean mask), and the attention blocks where the mask is False.",
        "3.2.3",
        _g("torch.nn.functional.scaled_dot_product_attention"),
    ),
    "mask_additive_float": Diagnosis(
        "(checker) Your mask is a float mask to be ADDED to the scores (0 where attention is allowed, -inf where "
        "it is blocked), the kind nn.Transformer's attn_mask takes. This workbook's masks are boolean, True = may "
        "attend, and the attention fills the scores where the mask is False: a float mask read that way "
        "(nonzero = True) says the opposite of what you meant.",
        "3.2.3",
        _g("torch.nn.functional.scaled_dot_product_attention"),
    ),
    "future_mask_excludes_diagonal": Diagnosis(
        "Your future mask blocks the diagonal: a position may attend to itself.", "3.2.3", _g("torch.tril")
    ),
    "tgt_mask_missing_padding": Diagnosis(
        "Your target mask blocks the future but not the target padding: it should combine both.",
        "3.2.3",
        _g("torch.logical_and"),
    ),
    "tgt_mask_missing_future": Diagnosis(
        "Your target mask blocks padding but not the future: it should combine both.", "3.2.3", _g("torch.tril")
    ),
    "tgt_mask_padding_on_queries": Diagnosis(
        "(checker) Your target mask puts the padding on the wrong axis: it blocks the rows of the padded "
        "QUERY positions instead of the columns of the padded KEY positions. The padding part must "
        "broadcast like a [B, 1, 1, T] mask (over the query axis), as the padding mask of the source does; "
        "compare which axis your padding mask is unsqueezed on.",
        "3.2.3",
        _g("torch.Tensor.unsqueeze"),
    ),
    # ---------------------------------------------------------------- chapter 09: the model
    "generator_not_tied": Diagnosis(
        "Your output layer (generator) has its own weight: section 3.4 shares it with the target "
        "embedding (the same Parameter object, not a copy of its values).",
        "3.4",
        _g("torch.nn.Linear"),
    ),
    "generator_not_linear": Diagnosis(
        "(checker) Your output layer (`generator`) is not the one section 3.4 describes: the contract's "
        "generator is itself an nn.Linear from d_model to the target vocabulary (so its parameters are "
        "named generator.weight and generator.bias), not a module that wraps one, and its weight is tied "
        "to the target embedding: the same Parameter object as the decoder's embedding matrix. It returns "
        "logits (no log-softmax), and the model's forward applies it.",
        "3.4",
        _g("torch.nn.Linear"),
    ),
    "shared_embeddings_not_tied": Diagnosis(
        "With share_embeddings=True the encoder's embedding should be the very same Parameter as the "
        "decoder's (one vocabulary, section 3.4).",
        "3.4",
        _g("torch.nn.Embedding"),
    ),
    "no_xavier_init": Diagnosis(
        "Your weight matrices do not look Xavier-uniform initialised: every parameter with more than "
        "one dimension should start from that distribution.",
        "",
        f"{DOCS}nn.init.html#torch.nn.init.xavier_uniform_",
    ),
    "forward_masks_wrong": Diagnosis(
        "Your forward builds the wrong masks (or none): use the padding masks of src and tgt and the "
        "future mask, as create_masks does.",
        "3.2.3",
        "",
    ),
    "softmax_in_forward": Diagnosis(
        "Your forward returns probabilities (or log-probabilities), not logits: the loss applies its "
        "own log-softmax, so the model should return the generator's raw output.",
        "3.4",
        _g("torch.nn.functional.cross_entropy"),
    ),
    # ---------------------------------------------------------------- chapter 10: training
    "lr_never_set": Diagnosis(
        "Your scheduler computes the rate but the optimizer never sees it: each parameter group's "
        "'lr' must be updated.",
        "5.3",
        f"{DOCS}optim.html#per-parameter-options",
    ),
    "lr_one_group_only": Diagnosis(
        "(checker) Your scheduler writes the rate into the first parameter group only (param_groups[0]): "
        "an optimizer can have several groups (for example the parameters that get no weight decay), "
        "and the others keep their old rate.",
        "5.3",
        f"{DOCS}optim.html#per-parameter-options",
    ),
    "lr_steps_the_optimizer": Diagnosis(
        "(checker) Your scheduler is an optimizer wrapper (like The Annotated Transformer's NoamOpt): "
        "its step() sets the rate and then steps the optimizer as well. In this workbook's training "
        "loop the scheduler only sets the rate and the loop steps the optimizer itself, so a wrapper "
        "would update the weights twice per batch.",
        "5.3",
        f"{DOCS}optim.html#how-to-adjust-learning-rate",
    ),
    "lr_step_off_by_one": Diagnosis(
        "Your step counter is off by one: the first call to step() is step 1.",
        "5.3",
        f"{DOCS}optim.html#how-to-adjust-learning-rate",
    ),
    "lr_formula_wrong": Diagnosis(
        "Your rate does not follow equation 3 of section 5.3 (check each exponent and the min).",
        "5.3",
        f"{DOCS}optim.html#how-to-adjust-learning-rate",
    ),
    "lr_times_initial_lr": Diagnosis(
        "(checker) Your rate is equation 3 multiplied by the learning rate the optimizer was built with. Equation 3 "
        "is the rate itself: the scheduler overwrites the optimizer's lr, whatever number it started from "
        "(torch's LambdaLR, for one, multiplies its lambda by that initial lr).",
        "5.3",
        f"{DOCS}generated/torch.optim.lr_scheduler.LambdaLR.html",
    ),
    "lr_constant": Diagnosis(
        "(checker) Your learning rate is the same at every step: equation 3 of section 5.3 depends on the step "
        "number, rising linearly during the warmup and then decaying. Look at where your scheduler computes the "
        "rate and whether the step number it uses changes from one call to the next.",
        "5.3",
        f"{DOCS}optim.html#how-to-adjust-learning-rate",
    ),
    "lr_factor_ignored": Diagnosis(
        "Your rate ignores `factor`: it multiplies the whole formula.",
        "5.3",
        f"{DOCS}optim.html#how-to-adjust-learning-rate",
    ),
    "ls_no_ignore_index": Diagnosis(
        "Your loss counts the padding positions: targets equal to ignore_index must not contribute.",
        "5.4",
        _g("torch.nn.functional.cross_entropy"),
    ),
    "ls_wrong_distribution": Diagnosis(
        "Your smoothed target spreads the smoothing mass over the wrong number of classes: in this "
        "workbook it is spread evenly over all V classes (the convention of F.cross_entropy's label_smoothing).",
        "5.4",
        _g("torch.nn.functional.cross_entropy"),
    ),
    "ls_sum_not_mean": Diagnosis(
        "Your loss is not the mean over the non-padding tokens (it is a sum, or a mean that also counts padding).",
        "5.4",
        _g("torch.nn.functional.cross_entropy"),
    ),
    "ls_probs_not_logprobs": Diagnosis(
        "Your loss uses probabilities where cross-entropy needs log-probabilities.",
        "5.4",
        _g("torch.nn.functional.log_softmax"),
    ),
    "ls_smoothing_ignored": Diagnosis(
        "Your loss equals plain cross-entropy: the smoothing value is not used.",
        "5.4",
        _g("torch.nn.functional.cross_entropy"),
    ),
    "ls_kl_divergence": Diagnosis(
        "(checker) Your loss is the KL divergence to the smoothed target, which differs from the "
        "cross-entropy the contract asks for by the target's entropy (a constant).",
        "5.4",
        _g("torch.nn.KLDivLoss"),
    ),
    # ---------------------------------------------------------------- chapter 11: inference
    "greedy_no_early_stop": Diagnosis(
        "Your greedy decoding keeps going after every row has finished: stop as soon as all rows "
        "have emitted the end token.",
        "6.1",
        "",
    ),
    "greedy_pads_to_max_len": Diagnosis(
        "(checker) Your greedy decoding returns max_len columns even when every row finished earlier: the "
        "columns after the last row's end token are padding only. The contract's output is [B, L] with "
        "L <= max_len: it ends at the step where the last row finished (look at what you do with the tokens "
        "after the loop).",
        "6.1",
        _g("torch.cat"),
    ),
    "greedy_no_padding_after_end": Diagnosis(
        "A row that has finished keeps getting real tokens: after its end token, fill it with padding.",
        "6.1",
        _g("torch.Tensor.masked_fill"),
    ),
    "greedy_drops_last_end": Diagnosis(
        "(checker) Your decoding stops one step too early when the rows finish: the last end token (the one that "
        "finishes the last unfinished row) is never appended to the output. The step that emits it still belongs "
        "to the output; only then is every row finished and the loop stops. Look at the order of your stop test "
        "and the step that adds the new tokens.",
        "6.1",
        _g("torch.cat"),
    ),
    "greedy_max_len_off_by_one": Diagnosis(
        "(checker) Your decoding returns at most max_len - 1 tokens per row: when no row finishes earlier, the "
        "output has max_len tokens per row, the start token included. Count how many times your loop runs.",
        "6.1",
        "",
    ),
    "greedy_pad_not_pad_idx": Diagnosis(
        "(checker) Your finished rows are filled with another token than the pad_idx you were given (with "
        "pad_idx=0 the two look the same): after a row's end token, every position holds pad_idx, whatever "
        "number it is.",
        "6.1",
        _g("torch.Tensor.masked_fill"),
    ),
    "greedy_start_not_start_idx": Diagnosis(
        "(checker) Your output does not start with the start_idx you were given: it starts with the same token "
        "whatever start_idx is (with start_idx=1 the two look the same). Every output row, and every hypothesis "
        "of a beam, begins with start_idx.",
        "6.1",
        _g("torch.full"),
    ),
    "greedy_end_not_end_idx": Diagnosis(
        "(checker) Your decoding does not use the end_idx you were given to tell when a row has finished: it "
        "stops at another, fixed token (with end_idx=2 the two look the same).",
        "6.1",
        "",
    ),
    "greedy_uses_first_position": Diagnosis(
        "Your next token comes from the wrong position's logits: the prediction for the next token is "
        "at the LAST position of the decoder output.",
        "6.1",
        _g("torch.argmax"),
    ),
    "greedy_missing_start_token": Diagnosis("Your output rows do not start with the start token.", "6.1", ""),
    "greedy_wrong_masks": Diagnosis(
        "Your decoding gives the model the wrong masks (no future mask or no source padding mask).", "3.2.3", ""
    ),
    "beam_no_length_penalty": Diagnosis(
        "Your beam search compares finished hypotheses by their raw log-probability: section 6.1 uses "
        "a length penalty (alpha), otherwise short outputs always win.",
        "6.1",
        "https://arxiv.org/abs/1609.08144",
    ),
    "beam_wrong_length_penalty": Diagnosis(
        "Your length penalty is not the one asked for: finished hypotheses get logP / ((5+|Y|)/6)^alpha "
        "(Wu et al. 2016), partial ones are ranked by logP.",
        "6.1",
        "https://arxiv.org/abs/1609.08144",
    ),
    "beam_returns_first_finished": Diagnosis(
        "Your beam search returns the first hypothesis that finishes, not the best-scoring one.", "6.1", ""
    ),
    "beam_not_greedy_at_one": Diagnosis(
        "With beam_size=1 your beam search should give exactly the greedy result.", "6.1", ""
    ),
    "greedy_batch_of_one": Diagnosis(
        "(checker) Your greedy decoding works for one sentence at a time only, but it is graded on batches "
        "(src is [B, S] with B > 1, one sentence per row): look at every tensor you build while decoding "
        "(the start tokens, each step's next tokens). Each needs one row per sentence, and each row's next "
        "token comes from that row's own logits.",
        "6.1",
        _g("torch.cat"),
    ),
    "beam_no_finished_hypothesis": Diagnosis(
        "(checker) Your beam search breaks when no hypothesis has reached end_idx by max_len: then there "
        "is no finished hypothesis to return, and it should return the best unfinished one instead.",
        "6.1",
        "",
    ),
    "beam_sums_logits": Diagnosis(
        "(checker) Your beam search adds up the generator's raw logits: its choice changes when all the "
        "logits of a step move by the same amount, although the probabilities do not. A hypothesis's "
        "score is the sum of the LOG-PROBABILITIES of its tokens (log_softmax over the vocabulary).",
        "6.1",
        _g("torch.nn.functional.log_softmax"),
    ),
    "beam_extends_finished": Diagnosis(
        "(checker) Your beam search keeps extending hypotheses that are finished: its result depends on "
        "what the model predicts AFTER the end token. A hypothesis that has emitted end_idx is finished: "
        "set it aside with its score; it gets no more tokens and no more log-probabilities.",
        "6.1",
        "",
    ),
    "beam_acts_greedy": Diagnosis(
        "(checker) With beam_size > 1 your beam search returns exactly the greedy result: look at how each "
        "step chooses the hypotheses it keeps (the beam_size best over all hypotheses and all next tokens, "
        "by their total log-probability).",
        "6.1",
        "",
    ),
    # ---------------------------------------------------------------- any exercise
    "inplace_input_modification": Diagnosis(
        "Your code changes an input tensor in place: the caller's data must stay as it was.",
        "",
        f"{DOCS}notes/autograd.html#in-place-operations-with-autograd",
    ),
    "float64_fails": Diagnosis(
        "Your code does not work in float64 (double precision): build new tensors with the input's dtype.",
        "",
        f"{DOCS}tensor_attributes.html#torch-dtype",
    ),
    "device_not_kept": Diagnosis(
        "Your output is not on the input's device: create new tensors on `x.device`.",
        "",
        f"{DOCS}tensor_attributes.html#torch-device",
    ),
    "returns_wrong_type": Diagnosis("Your code returns the wrong type of object.", "", ""),
    "nan_or_inf": Diagnosis(
        "Your output contains NaN or inf: look for a division by zero, a log of 0, or exp() of a large number.",
        "",
        _g("torch.isfinite"),
    ),
    "wrong_signature": Diagnosis(
        "(checker) The arguments do not match the exercise's signature (see the exercise text).", "", ""
    ),
    "unused_parameter": Diagnosis("(checker) A parameter never influences the output, so it never learns.", "", ""),
    "wrong_gradient": Diagnosis(
        "(checker) The gradients differ from the reference's.", "", f"{DOCS}notes/autograd.html"
    ),
    "no_gradient": Diagnosis(
        "(checker) The output is cut off from the computation graph, so nothing can learn.",
        "",
        f"{DOCS}notes/autograd.html",
    ),
    "too_slow": Diagnosis("(checker) The check ran out of time.", "", ""),
    "uses_faulty_part": Diagnosis(
        "(checker) This exercise is right, but a part it uses (from an earlier exercise) is not.", "", ""
    ),
    "constructor_argument_order": Diagnosis(
        "(checker) Your constructor fails with the contract's arguments but works with the same values in "
        "another order: its parameters seem to come in another order than the exercise's signature.",
        "",
        "",
    ),
}


# Ids whose test message already says everything: no extra "Likely cause" paragraph.
SILENT = {
    "wrong_signature",
    "unused_parameter",
    "wrong_gradient",
    "no_gradient",
    "too_slow",
    "uses_faulty_part",
    "constructor_argument_order",
    "returns_wrong_type",
    "inplace_input_modification",
    "float64_fails",
    "device_not_kept",
}


def explain(diagnosis: str) -> str:
    """One paragraph for the learner: what the numbers show, the paper section, the PyTorch doc."""
    entry = DIAGNOSES.get(diagnosis)
    if entry is None or diagnosis in SILENT:
        return ""
    text = entry.text
    if text.startswith("(checker) "):
        text = text[len("(checker) ") :]
    refs = []
    if entry.section:
        refs.append(f"paper section {entry.section}")
    if entry.doc:
        refs.append(entry.doc)
    return "Likely cause: " + text + (f" (See {'; '.join(refs)}.)" if refs else "")
