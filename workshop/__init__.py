"""The segmentation workshop's helper library.

Each module is one stage of the data path (see README): ``config`` -> ``data`` -> ``augment`` ->
``models`` -> ``losses`` -> ``metrics`` -> ``engine`` -> ``inference`` / ``viz``.
Exercises live in ``workshop.tasks``.

Layers (tested by tests/test_layers.py, where the lists are written out):

* **the book**, what the notebooks teach: ``config``, ``env``, ``augment``, ``data.io`` /
  ``data.datasets`` / ``data.loaders`` / ``data.polygons``, ``models``, ``losses``, ``metrics``,
  ``hooks``, ``engine``, ``inference``, ``multiclass``, ``viz``, ``widgets``, ``instance.stages`` /
  ``polygons`` / ``data`` / ``model`` / ``viz`` / ``engine`` / ``evaluate``, and ``tasks``;
* **the machinery**, what makes it a tool, added around the book through hooks: ``cli``, ``runs``,
  ``recipe``, ``budget``, ``distributed``, ``launch``, ``estimate``, ``fingerprint``, ``baselines``,
  ``tensorboard``, ``evaluate`` (the command), ``notebook``, ``data.check``, ``instance.runs`` /
  ``cli`` / ``budget`` / ``plan`` / ``sizing`` / ``predict``;
* **shared**: ``errors``, ``weights`` and every way data arrives (``data.sources``, ``data.formats``,
  the registry, downloads, the generator); **the grader**: ``grading``.

The book imports nothing from the machinery or the grader, and no import circle exists anywhere.
"""

__version__ = "0.1.0"
