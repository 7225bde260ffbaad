"""Stand-in for tensorflow_addons, which kecam 1.3.1 imports: only what it uses."""

from . import layers  # noqa: F401
