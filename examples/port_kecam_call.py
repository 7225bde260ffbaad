"""Port kecam call sites to MLX: the usage examples of kecam's ``attention_layers`` README.

In kecam each example builds a Keras graph from a tensor; here the same call takes the tensor's
shape (without the batch axis) and returns an MLX module to call on a batched array.
"""

import mlx.core as mx

from mlx_attention import attention_layers

# kecam:  aa = attention_layers.RelativePositionalEmbedding()
#         aa(tf.ones([1, 4, 14, 16, 256])).shape  ->  [1, 4, 14, 16, 14, 16]
aa = attention_layers.RelativePositionalEmbedding(input_shape=(4, 14, 16, 256))
print("RelativePositionalEmbedding:", aa(mx.ones([1, 4, 14, 16, 256])).shape)

x = mx.random.normal([1, 28, 28, 192])

# kecam:  inputs = keras.layers.Input([28, 28, 192])
#         nn = attention_layers.outlook_attention(inputs, 4, 192)
# kecam's README swaps the arguments: kecam's order is (inputs, embed_dim, num_heads).
# kecam blocks also need a non-empty name=, the prefix of the Keras layers they create.
outlook = attention_layers.outlook_attention((28, 28, 192), 192, 4, name="outlook_")
print("outlook_attention:", outlook(x).shape)

# kecam:  nn = attention_layers.split_attention_conv2d(inputs, 384)
split = attention_layers.split_attention_conv2d((28, 28, 192), 384, name="split_")
print("split_attention_conv2d:", split(x).shape)

# kecam:  nn = attention_layers.cot_attention(inputs, kernel_size=3)
cot = attention_layers.cot_attention((28, 28, 192), kernel_size=3, name="cot_")
print("cot_attention:", cot(x).shape)
