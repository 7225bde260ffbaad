"""Empty stand-in for tensorflow_datasets, which kecam 1.3.1's coco/data.py imports."""
