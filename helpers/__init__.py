"""Helpers for the apparent-personality tutorial series.

One module per stage of the pipeline, in data-flow order:

- ``helpers.video``: open a clip, read its properties, read chosen frames.
- ``helpers.faces``: detect, trim and crop faces (``video_to_faces``).
- ``helpers.sequences``: make face sequences a fixed length, with masks.
- ``helpers.synthetic``: draw the bundled face photo into frames (tests, demo data, benchmarks).
- ``helpers.demo``: the offline synthetic demo dataset in the First Impressions layout.
- ``helpers.dataset``: find clips and annotations of First Impressions V2, splits.
- ``helpers.cache``: ``prepare``: every clip to a cached face sequence, with a manifest.
- ``helpers.inputs``: a tf.data pipeline streaming from the cache.
- ``helpers.models``: the article's model (head fixed) and a light default model.
- ``helpers.metrics``: the challenge metric, the train-mean baseline, Pearson r.
- ``helpers.training``: train, evaluate and predict.
- ``helpers.plots``: the pictures the notebooks show.
- ``helpers.quiet``: TensorFlow's and FFmpeg's start-up chatter silenced (on by ``import helpers``).
- ``helpers.setup``: the notebooks' setup (repairs OpenCV on Colab); ``helpers.repository``: links.

Run ``python -m helpers --help`` for the command line.
"""

from helpers import quiet as _quiet

__version__ = "0.1.0"

# Before anything imports TensorFlow: its first import in this process is then quiet,
# whoever makes it (a notebook's `import keras`, or helpers.models).
_quiet.install()

#: The Big Five traits, in the fixed order used for model targets and outputs.
TRAITS: tuple[str, ...] = (
    "extraversion",
    "neuroticism",
    "agreeableness",
    "conscientiousness",
    "openness",
)

#: Every key of a First Impressions V2 annotation file (the five traits plus ``interview``).
ANNOTATION_KEYS: tuple[str, ...] = TRAITS + ("interview",)
