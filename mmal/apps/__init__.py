"""The command-line programs: ``mmal <command>`` (:mod:`.main`), and ``tools/*.py`` wrap the same code."""
