"""The book's tooling, kept apart from the concepts: nothing under ``minit2i/`` imports it.

- ``minit2i.tools.execute``: re-run the chapter notebooks in place and record how
  (``python -m minit2i.tools.execute``);
- ``minit2i.tools.assignments``: the exercise convention, its structure check, and the student
  versions (``python -m minit2i.tools.assignments build|check|grade``);
- ``minit2i.tools.autograde``: run students' notebooks with the hidden tests put back and score
  them (the ``grade`` command);
- ``minit2i.tools.cli``: the command line of ``assignments``, which imports both of the above;
- ``minit2i.tools.ship``: rebuild the checkpoints the package ships, from nothing
  (``python -m minit2i.tools.ship --preset cpu``);
- ``minit2i.tools.checks``: what the exercises' tests call to say, in words, what a check
  expected and what it got.

The notebook tools need ``nbformat`` and ``nbclient`` (``pip install "minit2i[tools]"``);
``ship`` and ``checks`` need only what ``minit2i`` needs, so the chapters import ``checks``
wherever they run. See the book's page "For instructors".
"""
