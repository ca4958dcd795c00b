"""Helpers for the apparent-personality tutorial series.

One module per stage of the pipeline, in data-flow order (each imports only modules
before it; ``.importlinter`` checks it, the README's "Architecture" section lists them):

- ``helpers.quiet``: TensorFlow's and FFmpeg's start-up chatter silenced (on by ``import helpers``).
- ``helpers.repository``: the one setting behind every Colab/Binder link.
- ``helpers.setup``: the notebooks' setup cell (repairs OpenCV on Colab).
- ``helpers.atomic``: atomic file writes.
- ``helpers.video``: open a clip, read its properties, read chosen frames.
- ``helpers.faces``: detect, follow, trim and crop faces (``video_to_faces``).
- ``helpers.sequences``: make face sequences a fixed length, with masks (padding).
- ``helpers.synthetic``: draw real face photos into frames (tests, demo data, benchmarks).
- ``helpers.archives``: unpack the distributed zips safely.
- ``helpers.dataset``: First Impressions assembly: clips, splits, labels (``assemble``).
- ``helpers.metrics``: the challenge metric, the train-mean and same-video baselines, Pearson r.
- ``helpers.audit``: the group file (``read_groups``) and an audit by group with by-person intervals.
- ``helpers.raters``: raters comparing clips in pairs and a Bradley-Terry-Luce fit, in miniature.
- ``helpers.labels``: label statistics, the two baselines, the split schemes (official, by-video).
- ``helpers.demo_labels``: the demo dataset's people, official splits and labels.
- ``helpers.demo``: the offline synthetic demo dataset in the First Impressions layout.
- ``helpers.cache``: the cache format: one file per clip and a manifest.
- ``helpers.prepare``: the prepare run: every clip to a cached face sequence.
- ``helpers.runs``: the run folder's format: read, write, replace atomically (``read_run``).
- ``helpers.inputs``: a tf.data pipeline streaming from the cache.
- ``helpers.models``: the models and their registry ``MODELS``.
- ``helpers.training``: train and evaluate (into run folders, ``helpers.runs``).
- ``helpers.plots``: the pictures the notebooks show.
- ``helpers.predict``: score new clips with a run, a row per clip with its status.
- ``helpers.explain``: what a model looks at: frame order, occlusion, factor probe.
- ``helpers.series``: the notebooks' shared data folders and settings (``ensure_cache``, ...).
- ``helpers.notebooks``: execute the notebooks in place; check their outputs for chatter and machine paths.

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

#: The official splits (code values), in the order reports list them.
SPLITS: tuple[str, ...] = ("train", "validation", "test")

#: Every key of a First Impressions V2 annotation file (the five traits plus ``interview``).
ANNOTATION_KEYS: tuple[str, ...] = TRAITS + ("interview",)
