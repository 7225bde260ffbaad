"""kecam 1.3.1's group_norm uses tensorflow_addons' GroupNormalization: tf-keras has the same."""

from tf_keras.layers import GroupNormalization  # noqa: F401
